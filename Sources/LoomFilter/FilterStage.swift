// `loom filter`: named rule sets over `text` records. In drop mode a record that fails a rule goes to
// rejects.jsonl with the rule, the check, the measured value and the threshold, and the rest are written on; in
// score mode every record is kept and carries its measurements in `meta.quality` (docs/filter.md).
// Records without a string `text` (conversations, preference pairs) pass through unchanged and are counted.

import Foundation
import LoomCore

public struct FilterConfig: Sendable {
    public static let ruleNames = ["gopher-quality", "gopher-repetition", "c4", "fineweb", "ocr", "domain"]
    public static let defaultRules = ["gopher-repetition", "gopher-quality", "fineweb", "ocr"]
    public static let keys = ["rules", "mode", "seed"] + ruleNames

    /// The rule sets, in the order they are checked.
    public var rules = FilterConfig.defaultRules
    /// "drop" or "score".
    public var mode = "drop"
    /// Each rule set's options, by rule name (e.g. "gopher-quality": {"min_doc_words": 30}).
    public var options: [String: JSONValue] = [:]

    public init() {}

    /// From a pipeline step's options or the CLI's (`rules` as a list or a comma-separated string).
    public static func from(_ o: JSONValue, context: String) throws -> FilterConfig {
        guard let obj = o.objectValue ?? (o == .null ? JSONObject() : nil) else {
            throw LoomError("\(context): filter options must be a mapping")
        }
        var c = FilterConfig()
        for (k, v) in obj {
            switch k {
            case "rules":
                if let s = v.stringValue {
                    c.rules = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                } else if let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) {
                    c.rules = a.compactMap(\.stringValue)
                } else {
                    throw LoomError("\(context): filter rules must be a list of rule names")
                }
            case "mode":
                c.mode = v.stringValue ?? ""
            case "jobs":
                continue
            default:
                let name = k.replacingOccurrences(of: "_", with: "-")
                guard ruleNames.contains(name) else {
                    throw LoomError(
                        "\(context): unknown filter option '\(k)' (allowed: rules, mode, jobs, input, and a rule's name: \(ruleNames.joined(separator: ", ")))")
                }
                c.options[name] = v
            }
        }
        try c.validate(context: context)
        return c
    }

    public func validate(context: String) throws {
        guard ["drop", "score"].contains(mode) else {
            throw LoomError("\(context): filter mode must be drop or score (got '\(mode)')")
        }
        guard !rules.isEmpty else { throw LoomError("\(context): filter needs at least one rule set") }
        for r in rules where !FilterConfig.ruleNames.contains(r) {
            throw LoomError("\(context): unknown rule set '\(r)' (available: \(FilterConfig.ruleNames.joined(separator: ", ")))")
        }
        if rules.contains("domain") && options["domain"]?["seeds"]?.stringValue == nil {
            throw LoomError("\(context): the domain rule needs seeds: a file or directory of in-domain records (domain: { seeds: FILE })")
        }
        _ = try ruleSets()
    }

    /// The rule sets other than `domain`, built from their options.
    public func ruleSets() throws -> [any RuleSet] {
        try rules.compactMap { r -> (any RuleSet)? in
            let o = options[r]
            switch r {
            case "gopher-quality": return try GopherQuality(options: o)
            case "gopher-repetition": return try GopherRepetition(options: o)
            case "c4": return try C4Quality(options: o)
            case "fineweb": return try FineWebQuality(options: o)
            case "ocr": return try OCRQuality(options: o)
            case "domain": return try DomainRule(options: o)
            default: return nil
            }
        }
    }
}

public struct FilterStage: Stage {
    public let settings: FilterConfig
    public let input: String
    let sets: [any RuleSet]
    let embedder: TextEmbedderFactory?
    let jobs: Int
    public var name: String { "filter" }
    public var inputs: [StageInput] {
        var i = RecordSource.stageInputs([input])
        if let d = sets.compactMap({ $0 as? DomainRule }).first { i += RecordSource.stageInputs([d.seeds]) }
        return i
    }

    public var config: JSONValue {
        var o = JSONObject()
        o["rules"] = .array(settings.rules.map { .string($0) })
        o["mode"] = .string(settings.mode)
        for s in sets { o[s.name] = .object(s.options) }
        return .object(o)
    }

    /// `embedder` makes the domain rule's vectors (the `loom` command passes LoomPack's); needed only with it.
    public init(config: FilterConfig, input: String, embedder: TextEmbedderFactory? = nil, jobs: Int = 1) throws {
        try config.validate(context: "filter")
        settings = config
        self.jobs = max(1, jobs)
        self.input = input
        sets = try config.ruleSets()
        self.embedder = embedder
        if sets.contains(where: { $0 is DomainRule }) && embedder == nil {
            throw LoomError("filter: the domain rule needs an embedder")
        }
    }

    /// One record's fate.
    enum Outcome {
        case keep(JSONValue, rewritten: Bool)
        case drop(rule: String, check: String, measure: Measure?)
        case noText
    }

    public func run(_ ctx: StageContext) throws {
        let source = try RecordSource.resolve([input])
        var domainSimilarity: DomainSimilarity?
        var rules = sets
        if let i = sets.firstIndex(where: { $0 is DomainRule }), var d = sets[i] as? DomainRule, let embedder {
            let sim = try DomainSimilarity(rule: d, source: source, factory: embedder, jobs: jobs)
            d.resolved = try sim.threshold(for: d, source: source, jobs: jobs)
            let sorted = sim.seedSimilarities.sorted()
            ctx.setValue(
                "domain",
                [
                    "seeds": .int(sim.seedCount), "background_records": .int(sim.backgroundCount),
                    "threshold": d.resolved.map { .double($0) } ?? .null,
                    "seed_score_p5": .double(Double(sorted[Int((0.05 * Double(sorted.count - 1)).rounded())])),
                    "seed_score_median": .double(Double(sorted[sorted.count / 2])),
                    "embedder": .string(sim.identity),
                ])
            rules[i] = d
            domainSimilarity = sim
        }
        ctx.progress.begin(totalBytes: source.totalBytes, unit: "records")
        let score = settings.mode == "score"
        var tally = Tally(rules: rules.map(\.name))
        var batch: [(record: JSONValue, path: String, line: Int)] = []

        func flush() throws {
            guard !batch.isEmpty else { return }
            let texts = batch.map { $0.record["text"]?.stringValue }
            let sims = try domainSimilarity?.similarities(texts, jobs: jobs)
            let outcomes = try parallelMap(Array(batch.indices), jobs: jobs) { i -> (Outcome, JSONObject?) in
                FilterStage.judge(batch[i].record, text: texts[i], similarity: sims?[i], rules: rules, score: score)
            }
            for (i, (o, q)) in outcomes.enumerated() {
                let b = batch[i]
                if let q { tally.observe(q) }
                switch o {
                case .noText:
                    tally.noText += 1
                    try ctx.output.write(b.record)
                case .keep(let r, let rewritten):
                    tally.kept += 1
                    if rewritten { tally.rewritten += 1 }
                    try ctx.output.write(r)
                case .drop(let rule, let check, let m):
                    tally.drop(rule, check)
                    var rej = Reject(
                        source: b.path, reason: "\(rule): \(check)" + (m.map { " (\($0.summary))" } ?? ""), line: b.line,
                        id: b.record["id"]?.stringValue ?? b.record["id"]?.intValue.map(String.init))
                    rej.fields["rule"] = .string(rule)
                    rej.fields["check"] = .string(check)
                    if let m {
                        rej.fields["metric"] = .string(m.metric)
                        rej.fields["value"] = m.value.isFinite ? .double(m.value) : .null
                        rej.fields["threshold"] = m.threshold.map { .double($0) } ?? .null
                    }
                    rej.raw = String((texts[i] ?? "").prefix(300))
                    try ctx.rejects.write(rej)
                }
            }
            batch.removeAll(keepingCapacity: true)
        }

        try source.forEachRecord(
            progress: ctx.progress,
            { r, path, line in
                batch.append((r, path, line))
                if batch.count >= 512 { try flush() }
            },
            bad: { e, path, line in
                tally.bad += 1
                try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line))
            })
        try flush()
        ctx.setCount("records", tally.kept + tally.dropped + tally.noText)
        ctx.setCount("kept", tally.kept)
        ctx.setCount("dropped", tally.dropped)
        ctx.setCount("without_text", tally.noText)
        ctx.setCount("rewritten", tally.rewritten)
        ctx.setCount("not_json", tally.bad)
        ctx.setValue("dropped_by", .object(tally.droppedBy))
        ctx.setValue("quality", .object(tally.summary()))
        if !ctx.options.quiet {
            Log.info(
                "filter: kept \(tally.kept) of \(tally.kept + tally.dropped) text records"
                    + (tally.noText > 0 ? " (\(tally.noText) without text passed through)" : ""))
        }
    }

    /// Runs the rule sets on one record: the outcome, and its measurements by rule (for the manifest's summary).
    static func judge(_ record: JSONValue, text: String?, similarity: Float?, rules: [any RuleSet], score: Bool)
        -> (Outcome, JSONObject?)
    {
        guard let text else { return (.noText, nil) }
        var meta: [String: Double] = [:]
        if let c = OCRQuality.confidence(record) { meta["ocr_confidence"] = c }
        if let similarity { meta["domain_similarity"] = Double(similarity) }
        var doc = FilterDocument(text, meta: meta)
        var quality = JSONObject()
        var failed: [String] = []
        var firstFailure: (String, String, Measure?)?
        var newText: String?
        for rule in rules {
            let out = rule.evaluate(doc)
            var m = JSONObject()
            for x in out.measures where m[x.metric] == nil {
                m[x.metric] = x.value.isFinite ? .double((x.value * 1e6).rounded() / 1e6) : .null
            }
            quality[rule.name] = .object(m)
            if let f = out.failure {
                failed.append("\(rule.name).\(f.check)")
                if firstFailure == nil { firstFailure = (rule.name, f.check, f.measure) }
                if !score { return (.drop(rule: rule.name, check: f.check, measure: f.measure), quality) }
            } else if let t = out.text, !score {
                // The rules after this one see the kept lines, as in a datatrove pipeline.
                newText = t
                doc = FilterDocument(t, meta: meta)
            }
        }
        if let (rule, check, m) = firstFailure, !score { return (.drop(rule: rule, check: check, measure: m), quality) }
        var r = record
        if let newText, case .object(var o) = r {
            o["text"] = .string(newText)
            r = .object(o)
        }
        if score, case .object(var o) = r {
            var meta = o["meta"]?.objectValue ?? JSONObject()
            var q = quality
            q["failed"] = .array(failed.map { .string($0) })
            meta["quality"] = .object(q)
            o["meta"] = .object(meta)
            r = .object(o)
        }
        return (.keep(r, rewritten: newText != nil), quality)
    }
}

/// Counts for the manifest: drops by rule and check, and the distribution of every measurement.
struct Tally {
    var kept = 0
    var dropped = 0
    var noText = 0
    var rewritten = 0
    var bad = 0
    var droppedBy = JSONObject()
    var values: [String: [Double]] = [:]
    let rules: [String]

    init(rules: [String]) { self.rules = rules }

    mutating func drop(_ rule: String, _ check: String) {
        dropped += 1
        var o = droppedBy[rule]?.objectValue ?? JSONObject()
        o[check] = .int((o[check]?.intValue ?? 0) + 1)
        droppedBy[rule] = .object(o)
    }

    mutating func observe(_ q: JSONObject) {
        for (rule, v) in q {
            for (metric, x) in v.objectValue ?? JSONObject() {
                if let d = x.doubleValue { values["\(rule).\(metric)", default: []].append(d) }
            }
        }
    }

    /// For every measurement: how many records had it, its mean and its 10th, 50th and 90th percentiles.
    func summary() -> JSONObject {
        var out = JSONObject()
        for k in values.keys.sorted() where !values[k]!.isEmpty { out[k] = .object(Distribution.summary(values[k]!)) }
        return out
    }
}
