// Chat templates for supervised fine-tuning: how a conversation is laid out as one text, and which parts of it the
// model is trained on. A template is a JSON file in templates/chat/ (chatml.json is the default):
//
//   {"name": "chatml", "begin": "",
//    "roles": {"user": {"prefix": "<|im_start|>user\n", "suffix": "<|im_end|>", "after": "\n"}, ...},
//    "generation_prompt": "<|im_start|>assistant\n", "trim_content": false, "special_tokens": [...]}
//
// A message renders as prefix + content + suffix + after. The assistant spans are the assistant messages' content
// and suffix (the end token the model must learn to emit), as UTF-8 byte ranges of the text; the SFT objective
// masks every token outside them (`Tokenizer.encodeChat`).

import Foundation
import LoomCore

public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

public struct ChatTemplate: Equatable, Sendable {
    public struct Role: Equatable, Sendable {
        public var prefix: String
        public var suffix: String
        public var after: String
        public init(prefix: String, suffix: String, after: String) {
            self.prefix = prefix
            self.suffix = suffix
            self.after = after
        }
    }

    public var name: String
    public var begin: String
    public var roles: [String: Role]
    public var generationPrompt: String
    public var trimContent: Bool
    /// The added tokens the template relies on (a tokenizer for it should have them).
    public var specialTokens: [String]
    /// Roles whose messages are trained on.
    public var trainedRoles: Set<String> = ["assistant"]
    /// Templates without a system role (Gemma's): a leading system message's content is put before the first user
    /// message's, joined by this separator.
    public var systemIntoFirstUser: String?

    public init(
        name: String, begin: String = "", roles: [String: Role], generationPrompt: String, trimContent: Bool = false,
        specialTokens: [String]
    ) {
        self.name = name
        self.begin = begin
        self.roles = roles
        self.generationPrompt = generationPrompt
        self.trimContent = trimContent
        self.specialTokens = specialTokens
    }

    public init(json: JSONValue, source: String = "chat template") throws {
        guard let n = json["name"]?.stringValue else { throw LoomError("\(source): no \"name\"") }
        guard let rs = json["roles"]?.objectValue, rs.count > 0 else { throw LoomError("\(source): no \"roles\" object") }
        var roles: [String: Role] = [:]
        for (k, v) in rs {
            guard let p = v["prefix"]?.stringValue, let s = v["suffix"]?.stringValue else {
                throw LoomError("\(source): role \(k) needs \"prefix\" and \"suffix\" strings")
            }
            roles[k] = Role(prefix: p, suffix: s, after: v["after"]?.stringValue ?? "")
        }
        name = n
        begin = json["begin"]?.stringValue ?? ""
        self.roles = roles
        generationPrompt = json["generation_prompt"]?.stringValue ?? ""
        trimContent = json["trim_content"]?.boolValue ?? false
        specialTokens = (json["special_tokens"]?.arrayValue ?? []).compactMap(\.stringValue)
        systemIntoFirstUser = json["system_into_first_user"]?.stringValue
    }

    /// The messages as the template lays them out: a leading system message folded into the first user message
    /// where the template has no system role of its own (`system_into_first_user`).
    public func arranged(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let sep = systemIntoFirstUser, roles["system"] == nil, let first = messages.first, first.role == "system"
        else { return messages }
        var rest = Array(messages.dropFirst())
        let system = trimContent ? first.content.trimmingCharacters(in: .whitespacesAndNewlines) : first.content
        if let u = rest.firstIndex(where: { $0.role == "user" }) {
            rest[u].content = system + sep + rest[u].content
        } else {
            rest.insert(ChatMessage(role: "user", content: system), at: 0)
        }
        return rest
    }

    /// Reads a template file.
    public static func load(_ path: String) throws -> ChatTemplate {
        guard let d = FileManager.default.contents(atPath: path) else { throw LoomError("cannot read \(path)") }
        return try ChatTemplate(text: String(decoding: d, as: UTF8.self), source: path)
    }

    /// A template from the text of its JSON file; `source` names the file in errors.
    public init(text: String, source: String) throws {
        do {
            try self.init(json: try JSONValue.parse(text), source: source)
        } catch let e as JSONParseError {
            throw LoomError("\(source): \(e)")
        }
    }

    /// `templates/chat/NAME.json` in a templates directory.
    public static func named(_ name: String, templates: String) throws -> ChatTemplate {
        try load(FS.join(FS.join(templates, "chat"), name + ".json"))
    }

    /// The conversation as one text and the byte ranges of the trained parts. With `addGenerationPrompt` the text
    /// ends with the opening of an assistant turn (for generation).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = false) throws -> (
        text: String, assistantSpans: [Range<Int>]
    ) {
        var out = begin
        var spans: [Range<Int>] = []
        for (i, m) in arranged(messages).enumerated() {
            guard let r = roles[m.role] else {
                throw LoomError(
                    "message \(i + 1): role \"\(m.role)\" is not in chat template \(name) (roles: \(roles.keys.sorted().joined(separator: ", ")))")
            }
            let content = trimContent ? m.content.trimmingCharacters(in: .whitespacesAndNewlines) : m.content
            out += r.prefix
            let start = out.utf8.count
            out += content
            out += r.suffix
            if trainedRoles.contains(m.role) { spans.append(start..<out.utf8.count) }
            out += r.after
        }
        if addGenerationPrompt { out += generationPrompt }
        return (out, spans)
    }
}

extension Tokenizer {
    /// The ids of a rendered conversation and, per id, whether it is trained on: its text starts inside an
    /// assistant span. The ids are those of encoding the whole text (no boundary effects between turns).
    public func encodeChat(_ messages: [ChatMessage], template: ChatTemplate, addGenerationPrompt: Bool = false) throws
        -> (ids: [Int32], trained: [Bool])
    {
        let (text, spans) = try template.render(messages, addGenerationPrompt: addGenerationPrompt)
        let (ids, offsets) = encodeWithOffsets(text)
        var trained = [Bool](repeating: false, count: ids.count)
        var s = 0
        for (k, o) in offsets.enumerated() {
            while s < spans.count && spans[s].upperBound <= o.lowerBound { s += 1 }
            if s < spans.count && spans[s].contains(o.lowerBound) { trained[k] = true }
        }
        return (ids, trained)
    }
}
