// Stage 5 of the Hugging Face pipeline: the decoder turns tokens back into text, as a chain of steps over the token
// strings (tokenizers' `decode_chain`):
// - ByteLevel maps each character of the tokens back to its byte and reads the bytes as UTF-8 (invalid sequences
//   become U+FFFD, as Rust's from_utf8_lossy does); a token with a character outside the byte alphabet (an added
//   token) is taken as its own UTF-8, as tokenizers does.
// - The SentencePiece-style chain of Llama-2/Mistral tokenizer.json files: Replace (a literal, "▁" -> " "),
//   ByteFallback (runs of <0xXX> tokens become their bytes read as UTF-8, or one U+FFFD a byte when they are not
//   valid UTF-8), Fuse (one string) and Strip (up to `start` leading and `stop` trailing copies of a character,
//   from each token).

import LoomCore

public indirect enum TokenDecoder: Equatable, Sendable {
    case byteLevel
    case replace(String, String)
    case byteFallback
    case fuse
    case strip(Character, start: Int, stop: Int)
    /// Metaspace: the replacement becomes a space, except in the first token, where it is dropped (unless the
    /// scheme is `never`).
    case metaspace(replacement: Character, prependScheme: PrependScheme)
    case sequence([TokenDecoder])

    /// One step of the chain.
    func chain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var out: [UInt8] = []
            for t in tokens {
                if let b = ByteLevel.decode(t) { out.append(contentsOf: b) } else { out.append(contentsOf: t.utf8) }
            }
            return [String(decoding: out, as: UTF8.self)]
        case .replace(let a, let b):
            return a.isEmpty ? tokens : tokens.map { $0.replacingOccurrences(of: a, with: b) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) {
                    out.append(s)
                } else {
                    out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Self.fallbackByte(t) { pending.append(b) } else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let c, let start, let stop):
            return tokens.map { t in
                var s = Substring(t)
                var n = 0
                while n < start, s.first == c { s.removeFirst(); n += 1 }
                n = 0
                while n < stop, s.last == c { s.removeLast(); n += 1 }
                return String(s)
            }
        case .metaspace(let r, let scheme):
            return tokens.enumerated().map { i, t in
                var o = ""
                for c in t {
                    if c == r {
                        if !(i == 0 && scheme != .never) { o.append(" ") }
                    } else {
                        o.append(c)
                    }
                }
                return o
            }
        case .sequence(let list):
            return list.reduce(tokens) { $1.chain($0) }
        }
    }

    /// The byte of a `<0xXX>` token (two hex digits), else nil.
    static func fallbackByte(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
            u[5] == UInt8(ascii: ">")
        else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    public func decode(_ tokens: [String]) -> String {
        chain(tokens).joined()
    }

    /// The bytes one token adds to decoded text when it is not the first token (a Strip or Metaspace step's
    /// first-token rule does not apply; a ByteLevel or ByteFallback step gives the token's bytes).
    public func bytes(ofToken t: String) -> [UInt8] {
        var s = t
        return step(&s) ?? Array(s.utf8)
    }

    /// One step on one token: its bytes when the step turns it into bytes, else nil with `s` rewritten.
    private func step(_ s: inout String) -> [UInt8]? {
        switch self {
        case .byteLevel: return ByteLevel.decode(s) ?? Array(s.utf8)
        case .replace(let a, let b):
            if !a.isEmpty { s = s.replacingOccurrences(of: a, with: b) }
            return nil
        case .byteFallback: return Self.fallbackByte(s).map { [$0] }
        case .fuse, .strip: return nil
        case .metaspace(let r, _):
            s = String(s.map { $0 == r ? " " : $0 })
            return nil
        case .sequence(let list):
            for d in list { if let b = d.step(&s) { return b } }
            return nil
        }
    }

    init(json: JSONValue) throws {
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "ByteLevel": self = .byteLevel
        case "Replace":
            guard let a = json["pattern"]?["String"]?.stringValue else {
                throw LoomError("decoder Replace: only a String pattern is supported")
            }
            self = .replace(a, json["content"]?.stringValue ?? "")
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            guard let c = json["content"]?.stringValue, c.count == 1 else {
                throw LoomError("decoder Strip: 'content' must be one character")
            }
            self = .strip(c.first!, start: json["start"]?.intValue ?? 0, stop: json["stop"]?.intValue ?? 0)
        case "Metaspace":
            let r = json["replacement"]?.stringValue ?? "▁"
            guard r.count == 1 else { throw LoomError("decoder Metaspace: replacement must be one character") }
            self = .metaspace(replacement: r.first!, prependScheme: try PrependScheme(metaspace: json, component: "decoder"))
        case "Sequence":
            self = .sequence(try (json["decoders"]?.arrayValue ?? []).map { try TokenDecoder(json: $0) })
        default: throw LoomError("decoder \(type) is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
        }
    }
}
