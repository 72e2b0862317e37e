// What a dataset looks like, from one pass over its records: kinds, text lengths, declared languages, task types,
// and the distribution of every number the stages put in `meta.quality` (`loom filter --mode score`) and
// `meta.scores` (the generators: RC answers found verbatim, QA grounding, EDA verdicts on Verilog targets,
// preference length ratio and similarity). `loom stats` prints it; the report shows the same numbers.

import Foundation

/// n, mean and the 10th, 50th and 90th percentiles of a list of numbers (nearest rank, rounded to 4 decimals).
public enum Distribution {
    public static func summary(_ values: [Double]) -> JSONObject {
        let v = values.sorted()
        guard !v.isEmpty else { return JSONObject([("n", .int(0))]) }
        func r(_ x: Double) -> JSONValue { .double((x * 1e4).rounded() / 1e4) }
        func q(_ p: Double) -> JSONValue { r(v[min(v.count - 1, Int((p * Double(v.count - 1)).rounded()))]) }
        return JSONObject([
            ("n", .int(v.count)), ("mean", r(v.reduce(0, +) / Double(v.count))), ("p10", q(0.1)), ("p50", q(0.5)),
            ("p90", q(0.9)),
        ])
    }
}

/// Facts a record declares in its meta, whatever stage wrote it.
public enum RecordMeta {
    /// The task types of a generated record: reading-comprehension conversations hold several (meta.tasks),
    /// Verilog and preference records one (meta.task), evolved instructions their operation; else the generator.
    public static func tasks(_ r: JSONValue) -> [String] {
        let meta = r["meta"]
        if let ts = meta?["tasks"]?.arrayValue {
            let types = ts.compactMap { $0["type"]?.stringValue ?? $0.stringValue }
            if !types.isEmpty { return types }
        }
        if let t = meta?["task"]?.stringValue { return [t] }
        if let op = meta?["evol"]?["operation"]?.stringValue { return ["evol " + op] }
        if let g = meta?["provenance"]?["generator"]?.stringValue { return [g] }
        return []
    }

    /// The language a record declares: meta.language, PubMed's meta.languages, the OCR languages of a scanned PDF;
    /// Verilog sources count as "verilog".
    public static func declaredLanguages(_ r: JSONValue) -> [String] {
        let meta = r["meta"]
        if let l = meta?["language"]?.stringValue { return [code(l)] }
        if let ls = meta?["languages"]?.arrayValue?.compactMap(\.stringValue), !ls.isEmpty { return ls.map(code) }
        if meta?["format"]?.stringValue == "verilog"
            || (meta?["provenance"]?["generator"]?.stringValue ?? "").hasPrefix("verilog")
        {
            return ["verilog"]
        }
        if let l = meta?["ocr"]?["languages"]?.stringValue, meta?["ocr"]?["pages"]?.arrayValue?.isEmpty == false {
            return l.split(separator: "+").map { code(String($0)) }
        }
        return []
    }

    /// ISO 639-2 codes as PubMed and Tesseract write them, shown as the ISO 639-1 codes the miners write.
    public static func code(_ l: String) -> String {
        let map = [
            "eng": "en", "kor": "ko", "fre": "fr", "fra": "fr", "ger": "de", "deu": "de", "spa": "es", "ita": "it",
            "jpn": "ja", "chi": "zh", "zho": "zh", "rus": "ru", "por": "pt",
        ]
        return map[l.lowercased()] ?? l
    }

    /// "text", "messages", "preference", "window" (packed members), "completion" (prompt and completion) or
    /// "other": the record's shape.
    public static func kind(_ r: JSONValue) -> String {
        if r["text"] != nil { return "text" }
        if r["messages"] != nil { return "messages" }
        if r["chosen"] != nil { return "preference" }
        if r["members"] != nil { return "window" }
        if r["completion"] != nil { return "completion" }
        return "other"
    }
}

/// Scores of a preference pair (`meta.scores` of every pair a generator writes): DPO learns whatever separates
/// chosen from rejected, length included, so a dataset whose chosen answers are systematically longer teaches length.
public enum PairScores {
    /// `length_ratio`: chosen length / rejected length in characters (Unicode scalars; 1 is equal length);
    /// `similarity`: weighted Jaccard of the two token bags (sum of the smaller count over sum of the larger; tokens
    /// are runs of letters, digits and `_`, or single other characters; case kept), 1 for identical token bags.
    public static func measure(chosen: String, rejected: String) -> JSONObject {
        let a = chosen.unicodeScalars.count
        let b = rejected.unicodeScalars.count
        let ratio = Double(a) / Double(max(1, b))
        return JSONObject([
            ("length_ratio", .double((ratio * 1e4).rounded() / 1e4)),
            ("similarity", .double((similarity(chosen, rejected) * 1e4).rounded() / 1e4)),
        ])
    }

    public static func similarity(_ x: String, _ y: String) -> Double {
        let a = bag(x)
        let b = bag(y)
        var inter = 0
        var union = 0
        for (t, n) in a {
            let m = b[t] ?? 0
            inter += min(n, m)
            union += max(n, m)
        }
        for (t, m) in b where a[t] == nil { union += m }
        return union == 0 ? 1 : Double(inter) / Double(union)
    }

    static func bag(_ s: String) -> [Substring: Int] {
        var out: [Substring: Int] = [:]
        var start: String.Index? = nil
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let word = c.isLetter || c.isNumber || c == "_"
            if word {
                if start == nil { start = i }
            } else {
                if let st = start {
                    out[s[st..<i], default: 0] += 1
                    start = nil
                }
                if !c.isWhitespace { out[s[i...i], default: 0] += 1 }
            }
            i = s.index(after: i)
        }
        if let st = start { out[s[st...], default: 0] += 1 }
        return out
    }
}

/// One pass over records; `summary` is what `loom stats --json` prints.
public struct RecordStats: Sendable {
    public private(set) var records = 0
    public private(set) var kinds: [String: Int] = [:]
    public private(set) var languages: [String: Int] = [:]
    public private(set) var tasks: [String: Int] = [:]
    /// Measure name -> values: text.chars, text.words, chosen.chars, rejected.chars, quality.RULE.METRIC,
    /// scores.NAME, tasks.TYPE.NAME.
    public private(set) var values: [String: [Double]] = [:]
    /// Measures whose values are yes/no (1/0): their mean is the share of yes.
    public private(set) var booleans: Set<String> = []
    /// Failed quality checks (meta.quality.failed) -> records.
    public private(set) var failed: [String: Int] = [:]

    public init() {}

    public mutating func add(_ r: JSONValue) {
        records += 1
        kinds[RecordMeta.kind(r), default: 0] += 1
        if let t = RecordText.text(r) {
            values["text.chars", default: []].append(Double(t.unicodeScalars.count))
            values["text.words", default: []].append(Double(t.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count))
        }
        for side in ["chosen", "rejected"] {
            guard let v = r[side] else { continue }
            let t = v.stringValue ?? v.arrayValue.map(RecordText.turns) ?? ""
            values[side + ".chars", default: []].append(Double(t.unicodeScalars.count))
        }
        let langs = RecordMeta.declaredLanguages(r)
        if langs.isEmpty { languages["(not declared)", default: 0] += 1 }
        for l in langs { languages[l, default: 0] += 1 }
        for t in RecordMeta.tasks(r) { tasks[t, default: 0] += 1 }
        if let q = r["meta"]?["quality"]?.objectValue {
            for (rule, v) in q {
                if rule == "failed" {
                    for f in v.arrayValue ?? [] { if let s = f.stringValue { failed[s, default: 0] += 1 } }
                    continue
                }
                for (k, x) in v.objectValue ?? JSONObject() {
                    if let d = x.doubleValue { values["quality.\(rule).\(k)", default: []].append(d) }
                }
            }
        }
        addScores(r)
    }

    /// Only the scores: meta.scores (numbers and yes/no, nested objects flattened with dots) and the per-task
    /// scores of meta.tasks (every number or yes/no beside a task's type, as tasks.TYPE.NAME).
    public mutating func addScores(_ r: JSONValue) {
        guard let meta = r["meta"] else { return }
        if let s = meta["scores"] { add("scores", s) }
        for t in meta["tasks"]?.arrayValue ?? [] {
            guard let o = t.objectValue, let type = o["type"]?.stringValue else { continue }
            for (k, v) in o where k != "type" && k != "template" { add("tasks.\(type).\(k)", v) }
        }
    }

    mutating func add(_ key: String, _ v: JSONValue) {
        switch v {
        case .bool(let b):
            values[key, default: []].append(b ? 1 : 0)
            booleans.insert(key)
        case .int, .double: values[key, default: []].append(v.doubleValue!)
        case .object(let o): for (k, x) in o { add(key + "." + k, x) }
        default: break
        }
    }

    /// The measures whose names start with `prefix`, sorted.
    public func measures(prefix: String = "") -> [String] { values.keys.filter { $0.hasPrefix(prefix) }.sorted() }

    public var summary: JSONObject {
        func counts(_ d: [String: Int]) -> JSONValue {
            .object(JSONObject(d.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, .int($0.value)) }))
        }
        var out = JSONObject()
        out["records"] = .int(records)
        out["kinds"] = .object(JSONObject(kinds.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) }))
        out["languages"] = counts(languages)
        out["tasks"] = counts(tasks)
        var dist = JSONObject()
        for k in values.keys.sorted() {
            var d = Distribution.summary(values[k]!)
            if booleans.contains(k) { d["yes_no"] = .bool(true) }
            dist[k] = .object(d)
        }
        out["distributions"] = .object(dist)
        out["failed"] = .object(JSONObject(failed.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) }))
        return out
    }
}
