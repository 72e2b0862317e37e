// The text a person reads in a record of any of the project's shapes (DESIGN.md's record table), for stages that
// work on text whatever the record is: dedup of generated SFT/preference data, the report.

public enum RecordText {
    /// `text`; the contents of `messages`' turns, one a line; `prompt`, `chosen`, `rejected` (strings or message
    /// lists) and `completion`, one a line; the members of a packed window, blank-line separated; or
    /// `instruction`/`input`/`output`. nil when the record has none of these.
    public static func text(_ r: JSONValue) -> String? {
        if let t = r["text"]?.stringValue { return t }
        if let m = r["messages"]?.arrayValue { return turns(m) }
        if r["prompt"] != nil || r["chosen"] != nil {
            return ["prompt", "chosen", "rejected", "completion"].compactMap { k -> String? in
                guard let v = r[k] else { return nil }
                if let s = v.stringValue { return s }
                return v.arrayValue.map(turns)
            }.joined(separator: "\n")
        }
        if let members = r["members"]?.arrayValue { return members.map { text($0) ?? "" }.joined(separator: "\n\n") }
        if let i = r["instruction"]?.stringValue {
            return [i, r["input"]?.stringValue ?? "", r["output"]?.stringValue ?? ""].filter { !$0.isEmpty }
                .joined(separator: "\n")
        }
        return nil
    }

    /// The turns' contents, one a line (a content given as a list of parts contributes its text parts).
    public static func turns(_ m: [JSONValue]) -> String {
        m.compactMap { turn -> String? in
            guard let c = turn["content"] else { return nil }
            if let s = c.stringValue { return s }
            return c.arrayValue?.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
