// The records `loom eval` scores and `loom tasks` writes (docs/evaluation.md), one JSON object a line:
//   multiple choice  {"id", "doc_id", "task", "context", "choices": [String], "gold": Int}
//                    scored as lm-evaluation-harness does: the log-likelihood of " " + choice after the context;
//   generation       {"id", "messages": [{role, content}]}: the turns before the last assistant turn are the
//                    prompt, that turn's content the reference;
//   perplexity       {"id", "text"}.
// A record is one kind by the fields it has (choices, then messages, then text).

import LoomCore

/// One multiple-choice item.
public struct ChoiceItem: Sendable, Equatable {
    public var id: String
    public var docId: String?
    public var task: String?
    public var context: String
    public var choices: [String]
    public var gold: Int

    public init(id: String, docId: String? = nil, task: String? = nil, context: String, choices: [String], gold: Int) {
        self.id = id
        self.docId = docId
        self.task = task
        self.context = context
        self.choices = choices
        self.gold = gold
    }

    /// The record form (the `meta` given is carried along).
    public func json(meta: JSONValue? = nil) -> JSONValue {
        var o = JSONObject()
        o["id"] = .string(id)
        if let d = docId { o["doc_id"] = .string(d) }
        if let t = task { o["task"] = .string(t) }
        o["context"] = .string(context)
        o["choices"] = .array(choices.map { .string($0) })
        o["gold"] = .int(gold)
        if let m = meta { o["meta"] = m }
        return .object(o)
    }

    /// Reads a record; nil when it is not a multiple-choice record, an error when it is one with a bad field.
    public static func from(_ r: JSONValue, fallbackID: String) throws -> ChoiceItem? {
        guard let cs = r["choices"] else { return nil }
        guard let arr = cs.arrayValue, arr.count >= 2 else { throw LoomError("'choices' must be a list of at least two strings") }
        let choices = try arr.map { v -> String in
            guard let s = v.stringValue else { throw LoomError("'choices' must hold strings") }
            return s
        }
        guard let context = r["context"]?.stringValue else { throw LoomError("a multiple-choice record needs 'context' (a string)") }
        guard let gold = r["gold"]?.intValue, gold >= 0, gold < choices.count else {
            throw LoomError("'gold' must be the index of the right choice (0..<\(choices.count))")
        }
        let id = r["id"]?.stringValue ?? r["id"]?.intValue.map(String.init) ?? fallbackID
        return ChoiceItem(
            id: id, docId: r["doc_id"]?.stringValue, task: r["task"]?.stringValue, context: context, choices: choices, gold: gold)
    }
}
