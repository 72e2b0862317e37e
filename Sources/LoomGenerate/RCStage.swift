// `loom generate rc`: reading-comprehension samples from chunks or documents, no model needed.

import Foundation
import LoomCore

public struct RCConfig: Codable, Equatable, Sendable {
    public var seed = 1
    public var maxPerTask = 2
    public var textField = "text"

    public init() {}

    public static let keys = ["method", "seed", "max_per_task", "text_field", "templates"]

    enum CodingKeys: String, CodingKey { case seed, maxPerTask, textField }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 1
        maxPerTask = try c.decodeIfPresent(Int.self, forKey: .maxPerTask) ?? 2
        textField = try c.decodeIfPresent(String.self, forKey: .textField) ?? "text"
    }
}

/// Each chunk becomes one SFT sample: the chunk (title taken out when it is a task) followed by its mined tasks
/// as user/assistant turns, in the TRL conversational format, with provenance.
public struct RCStage: Stage {
    public let settings: RCConfig
    public let input: String
    public let templateDirectory: String
    /// `--shard i/N`: samples for this shard's range of the input only; the term statistics are still taken
    /// over the whole input, so every shard mines what one run mines.
    public let shard: ShardSpec?
    /// The shard the output is recorded as: `shard`, or the one the input directory holds.
    let recordedShard: ShardSpec?

    public init(config: RCConfig, input: String, templates: String? = nil, shard: ShardSpec? = nil) throws {
        guard config.maxPerTask >= 1 else { throw LoomError("generate rc: max_per_task must be at least 1") }
        settings = config
        self.input = input
        self.shard = shard
        recordedShard = try outputShard(given: shard, input: input, stage: "generate rc")
        templateDirectory = try templates ?? TemplateDirectory.locate()
        // Load now so a broken template is an error before anything runs.
        _ = try RCTemplates(directory: templateDirectory, language: "en")
        _ = try RCTemplates(directory: templateDirectory, language: "ko")
    }

    public var name: String { "generate-rc" }
    public var config: JSONValue {
        guard case .object(var o) = (try? JSONValue(encoding: settings)) ?? .null else { return .null }
        // The phrasings are part of what the stage makes: a changed template re-runs it.
        let en = (try? FS.readText(FS.join(templateDirectory, "rc/en.yaml"))) ?? ""
        let ko = (try? FS.readText(FS.join(templateDirectory, "rc/ko.yaml"))) ?? ""
        o["templates_sha256"] = .string(SHA256.hex(en + "\u{0}" + ko))
        return withShard(.object(o), recordedShard)
    }
    public var inputs: [StageInput] { RecordSource.stageInputs([input]) }

    public func run(_ ctx: StageContext) throws {
        let reader = try InputRecords(input)
        let field = settings.textField
        // Pass 1: term statistics over the whole input.
        var stats = TermStatistics()
        try reader.forEachRecord({ r, _, _ in
            if let t = r[field]?.stringValue { stats.add(t) }
        }, bad: { _, _, _ in })
        let miner = RCMiner(
            templates: [
                "en": try RCTemplates(directory: templateDirectory, language: "en"),
                "ko": try RCTemplates(directory: templateDirectory, language: "ko"),
            ], statistics: stats)
        var m = miner
        m.maxPerTask = settings.maxPerTask
        // Pass 2: mine and write.
        ctx.progress.begin(totalBytes: reader.bytes(shard: shard), unit: "chunks")
        var counts: [String: Int] = [:]
        var samples = 0
        var without = 0
        var spanAnswers = 0
        var verbatimAnswers = 0
        try reader.forEachRecord(
            shard: shard, progress: ctx.progress,
            { r, path, line in
                guard let text = r[field]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string '\(field)'", line: line))
                    return
                }
                let id = r["id"]?.stringValue ?? "\(path):\(line)"
                let title = r["meta"]?["title"]?.stringValue
                // Per record, so the choice of phrasings does not depend on the order records are read in.
                let seed = recordSeed(settings.seed, id)
                let (shown, examples) = m.mine(text, title: title, seed: seed)
                guard !examples.isEmpty else {
                    without += 1
                    return
                }
                var messages: [JSONValue] = []
                for (i, e) in examples.enumerated() {
                    let user = i == 0 ? shown + "\n\n" + e.question : e.question
                    messages.append(["role": "user", "content": .string(user)])
                    messages.append(["role": "assistant", "content": .string(e.answer)])
                    counts[e.task.rawValue, default: 0] += 1
                }
                var ids = [id]
                if let d = r["doc_id"]?.stringValue { ids.append(d) }
                var meta = JSONObject()
                meta.append(
                    "provenance",
                    provenance(
                        ids: ids, generator: "reading-comprehension", templates: examples.map(\.template),
                        backend: "rules", model: nil, seed: settings.seed))
                meta.append("language", .string(RCMiner.language(text)))
                // Whether each answer is a span of the chunk (labels such as "Yes" are not spans: no flag).
                let found = RCMiner.normalized(text)
                var spans = 0
                var verbatim = 0
                meta.append(
                    "tasks",
                    .array(
                        examples.map { e in
                            var t = JSONObject([("type", .string(e.task.rawValue)), ("template", .string(e.template))])
                            if let v = RCMiner.verbatim(e, in: found) {
                                t.append("verbatim", .bool(v))
                                spans += 1
                                if v { verbatim += 1 }
                            }
                            return .object(t)
                        }))
                if spans > 0 {
                    meta.append("scores", ["verbatim": .double((Double(verbatim) / Double(spans) * 1e4).rounded() / 1e4)])
                }
                verbatimAnswers += verbatim
                spanAnswers += spans
                var o = JSONObject()
                o.append("id", .string(id + "#rc"))
                o.append("messages", .array(messages))
                o.append("meta", .object(meta))
                try ctx.output.write(.object(o))
                samples += 1
            },
            bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.setCount("samples", samples)
        ctx.setCount("chunks_without_tasks", without)
        ctx.setCount("span_answers", spanAnswers)
        ctx.setCount("span_answers_verbatim", verbatimAnswers)
        for (k, v) in counts.sorted(by: { $0.key < $1.key }) { ctx.setCount("task_" + k, v) }
    }
}
