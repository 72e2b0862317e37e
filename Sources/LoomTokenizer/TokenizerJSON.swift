// Reading and writing Hugging Face tokenizer.json. Components Loom reads are rebuilt from their JSON; on writing,
// the components of a loaded file are written back as they were read (key order kept) and added_tokens and model
// are written from the tokenizer. The layout is serde_json's pretty printer (two-space indent, `"key": value`), the
// one tokenizers' `save` uses, so a tokenizer Loom trains is byte-identical to the one tokenizers trains.

import Foundation
import LoomCore

extension Tokenizer {
    public convenience init(json: JSONValue, bosToken: String? = nil, eosToken: String? = nil) throws {
        try self.init(json: json, vocabEntries: nil, bosToken: bosToken, eosToken: eosToken)
    }

    convenience init(json: JSONValue, vocabEntries: [(String, Int)]?, bosToken: String?, eosToken: String?) throws {
        guard let top = json.objectValue else { throw LoomError("tokenizer.json is not a JSON object") }
        guard let m = top["model"] else { throw LoomError("tokenizer.json has no model") }
        let model = try BPEModel(json: m, vocabEntries: vocabEntries)
        func component<T>(_ key: String, _ make: (JSONValue) throws -> T) throws -> T? {
            guard let v = top[key], v != .null else { return nil }
            return try make(v)
        }
        let added = try (top["added_tokens"]?.arrayValue ?? []).map { try AddedToken(json: $0) }
        self.init(
            model: model, normalizer: try component("normalizer", Normalizer.init(json:)),
            preTokenizer: try component("pre_tokenizer", PreTokenizer.init(json:)),
            postProcessor: try component("post_processor", PostProcessor.init(json:)),
            decoder: try component("decoder", TokenDecoder.init(json:)), addedTokens: added, bosToken: bosToken,
            eosToken: eosToken, source: top)
    }

    /// The tokenizer.json value. Merges are written as pairs (`["a", "b"]`, tokenizers >= 0.20) or as `"a b"`.
    public func jsonValue(mergesAsPairs: Bool = true) -> JSONValue {
        var o = JSONObject()
        o.append("version", source["version"] ?? "1.0")
        o.append("truncation", source["truncation"] ?? .null)
        o.append("padding", source["padding"] ?? .null)
        o.append("added_tokens", .array(addedTokens.map { $0.json }))
        o.append("normalizer", source["normalizer"] ?? .null)
        o.append("pre_tokenizer", source["pre_tokenizer"] ?? preTokenizer?.json ?? .null)
        o.append("post_processor", source["post_processor"] ?? postProcessor?.json ?? .null)
        o.append("decoder", source["decoder"] ?? decoder?.json ?? .null)
        o.append("model", model.json(mergesAsPairs: mergesAsPairs))
        return .object(o)
    }

    /// Writes tokenizer.json.
    public func save(_ path: String, mergesAsPairs: Bool = true) throws {
        var out: [UInt8] = []
        PrettyJSON.write(jsonValue(mergesAsPairs: mergesAsPairs), to: &out, indent: 0)
        do {
            try Data(out).write(to: URL(fileURLWithPath: path))
        } catch {
            throw LoomError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

extension PostProcessor {
    /// The JSON of a post-processor Loom creates (loaded ones keep their own).
    var json: JSONValue {
        switch self {
        case .byteLevel:
            return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        case .template, .sequence:
            return .null
        }
    }
}

extension TokenDecoder {
    var json: JSONValue {
        switch self {
        case .byteLevel: return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        case .replace(let a, let b): return ["type": "Replace", "pattern": ["String": .string(a)], "content": .string(b)]
        case .byteFallback: return ["type": "ByteFallback"]
        case .fuse: return ["type": "Fuse"]
        case .strip(let c, let start, let stop):
            return ["type": "Strip", "content": .string(String(c)), "start": .int(start), "stop": .int(stop)]
        case .metaspace(let r, let scheme):
            return ["type": "Metaspace", "replacement": .string(String(r)), "prepend_scheme": .string(scheme.rawValue), "split": true]
        case .sequence(let list): return ["type": "Sequence", "decoders": .array(list.map { $0.json })]
        }
    }
}

/// serde_json's PrettyFormatter: two spaces per level, `"key": value`, empty containers as `[]` / `{}`.
public enum PrettyJSON {
    public static func write(_ v: JSONValue, to out: inout [UInt8], indent: Int) {
        func pad(_ n: Int) { out.append(contentsOf: repeatElement(0x20, count: 2 * n)) }
        switch v {
        case .array(let a):
            if a.isEmpty {
                out.append(contentsOf: "[]".utf8)
                return
            }
            out.append(contentsOf: "[\n".utf8)
            for (i, x) in a.enumerated() {
                pad(indent + 1)
                write(x, to: &out, indent: indent + 1)
                out.append(contentsOf: (i + 1 < a.count ? ",\n" : "\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            if o.count == 0 {
                out.append(contentsOf: "{}".utf8)
                return
            }
            out.append(contentsOf: "{\n".utf8)
            for (i, p) in o.pairs.enumerated() {
                pad(indent + 1)
                JSONValue.writeString(p.key, to: &out)
                out.append(contentsOf: ": ".utf8)
                write(p.value, to: &out, indent: indent + 1)
                out.append(contentsOf: (i + 1 < o.count ? ",\n" : "\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "}"))
        default:
            v.write(to: &out)
        }
    }
}
