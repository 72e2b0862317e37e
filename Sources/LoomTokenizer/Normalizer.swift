// Stage 1 of the Hugging Face pipeline: the normaliser rewrites the text between added tokens before it is cut into
// pieces. Byte-level GPT-2 and Llama-3 tokenizers have none; the Unicode forms, lowercasing, Prepend, Replace (a
// literal) and Sequence are supported for other tokenizer.json files.

import Foundation
import LoomCore

public indirect enum Normalizer: Equatable, Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(String, String)
    case sequence([Normalizer])

    public func normalize(_ s: String) -> String {
        switch self {
        // ASCII text is its own NFC, NFD, NFKC and NFKD (no ASCII character has a decomposition): it skips Foundation.
        case .nfc: return Normalizer.isASCII(s) ? s : s.precomposedStringWithCanonicalMapping
        case .nfd: return Normalizer.isASCII(s) ? s : s.decomposedStringWithCanonicalMapping
        case .nfkc: return Normalizer.isASCII(s) ? s : s.precomposedStringWithCompatibilityMapping
        case .nfkd: return Normalizer.isASCII(s) ? s : s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let a, let b): return a.isEmpty ? s : s.replacingOccurrences(of: a, with: b)
        case .sequence(let list): return list.reduce(s) { $1.normalize($0) }
        }
    }

    static func isASCII(_ s: String) -> Bool { s.utf8.allSatisfy { $0 < 0x80 } }

    init(json: JSONValue) throws {
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Prepend": self = .prepend(json["prepend"]?.stringValue ?? "")
        case "Replace":
            guard let a = json["pattern"]?["String"]?.stringValue else {
                throw LoomError("normalizer Replace: only a String pattern is supported")
            }
            self = .replace(a, json["content"]?.stringValue ?? "")
        case "Sequence": self = .sequence(try (json["normalizers"]?.arrayValue ?? []).map { try Normalizer(json: $0) })
        default: throw LoomError("normalizer \(type) is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)")
        }
    }
}
