// Stage 4 of the Hugging Face pipeline: the post-processor adds the special tokens a model expects around an encoded
// text (only when special tokens are asked for). ByteLevel adds none (it only trims offsets); TemplateProcessing
// (Llama-3's <|begin_of_text|> $A), BertProcessing, RobertaProcessing and Sequence are supported.

import LoomCore

public indirect enum PostProcessor: Equatable, Sendable {
    case byteLevel
    /// The single-sequence template: each item is a special token's ids or the sequence itself (nil).
    case template(single: [[Int32]?])
    case sequence([PostProcessor])

    /// `ids` with the template's special tokens around them.
    public func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .byteLevel: return ids
        case .template(let items):
            var out: [Int32] = []
            for item in items {
                if let special = item { out.append(contentsOf: special) } else { out.append(contentsOf: ids) }
            }
            return out
        case .sequence(let list): return list.reduce(ids) { $1.process($0) }
        }
    }

    /// The ids the template puts before the sequence (a bos token, for example).
    var prefix: [Int32] {
        switch self {
        case .byteLevel: return []
        case .template(let items): return Array(items.prefix { $0 != nil }.compactMap { $0 }.joined())
        case .sequence(let list): return list.flatMap { $0.prefix }
        }
    }

    init(json: JSONValue) throws {
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "ByteLevel": self = .byteLevel
        case "TemplateProcessing":
            var specials: [String: [Int32]] = [:]
            for (name, v) in json["special_tokens"]?.objectValue ?? JSONObject() {
                specials[name] = (v["ids"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
            }
            var items: [[Int32]?] = []
            for item in json["single"]?.arrayValue ?? [] {
                if let s = item["SpecialToken"] {
                    let name = s["id"]?.stringValue ?? ""
                    guard let ids = specials[name] else {
                        throw LoomError("post_processor TemplateProcessing: special token \(name) is not in special_tokens")
                    }
                    items.append(ids)
                } else if item["Sequence"] != nil {
                    items.append(nil)
                } else {
                    throw LoomError("post_processor TemplateProcessing: unknown template item \(item.jsonString)")
                }
            }
            self = .template(single: items)
        case "BertProcessing", "RobertaProcessing":
            guard let cls = json["cls"]?.arrayValue, cls.count == 2, let c = cls[1].intValue,
                let sep = json["sep"]?.arrayValue, sep.count == 2, let s = sep[1].intValue
            else { throw LoomError("post_processor \(type) without cls/sep") }
            self = .template(single: [[Int32(c)], nil, [Int32(s)]])
        case "Sequence": self = .sequence(try (json["processors"]?.arrayValue ?? []).map { try PostProcessor(json: $0) })
        default:
            throw LoomError("post_processor \(type) is not supported (ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)")
        }
    }
}
