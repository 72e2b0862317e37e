// Stage 5 of the Hugging Face pipeline: the decoder turns tokens back into text. ByteLevel maps each character of
// the tokens back to its byte and reads the bytes as UTF-8 (invalid sequences become U+FFFD, as Rust's
// from_utf8_lossy does); a token with a character outside the byte alphabet (an added token) is taken as its own
// UTF-8, as tokenizers does.

import LoomCore

public indirect enum TokenDecoder: Equatable, Sendable {
    case byteLevel
    case sequence([TokenDecoder])

    /// The bytes of the decoded text (ByteLevel only changes characters to bytes).
    func bytes(_ tokens: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens {
            if let b = ByteLevel.decode(t) { out.append(contentsOf: b) } else { out.append(contentsOf: t.utf8) }
        }
        return out
    }

    public func decode(_ tokens: [String]) -> String {
        String(decoding: bytes(tokens), as: UTF8.self)
    }

    init(json: JSONValue) throws {
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "ByteLevel": self = .byteLevel
        case "Sequence":
            let list = try (json["decoders"]?.arrayValue ?? []).map { try TokenDecoder(json: $0) }
            guard list.allSatisfy({ $0 == .byteLevel }) else { throw LoomError("decoder Sequence: only ByteLevel steps are supported") }
            self = .sequence(list)
        default: throw LoomError("decoder \(type) is not supported (ByteLevel)")
        }
    }
}
