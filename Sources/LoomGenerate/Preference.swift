// `loom generate preference`: preference pairs for DPO/ORPO from SFT samples. `chosen` is the sample's reference
// answer; `rejected` is a distractor (another answer of the same task type, or another label; no model needed) or
// a model's answer to the question alone, without the text it was asked about (SFT sampling). A pair whose
// rejected answer equals the chosen one is dropped. Every pair carries meta.scores: the chosen/rejected length ratio
// and their similarity (LoomCore's PairScores).

import Foundation
import LoomCore
import Mustache

public struct PreferenceConfig: Codable, Equatable, Sendable {
    /// "distractor" (rules) or "sample" (openai).
    public var rejected = "distractor"
    public var seed = 1
    public var qa = QAConfig()
    public init() {}
}

public struct PreferenceStage: Stage {
    public let settings: PreferenceConfig
    public let input: String
    let questionOnly: MustacheTemplate

    public init(config: PreferenceConfig, input: String, templates: String? = nil) throws {
        guard ["distractor", "sample"].contains(config.rejected) else {
            throw LoomError("generate preference: rejected must be distractor or sample (got '\(config.rejected)')")
        }
        settings = config
        self.input = input
        let dir = try templates ?? TemplateDirectory.locate()
        questionOnly = try TemplateDirectory.load(dir, "preference/question-only.mustache").template
    }

    public var name: String { "generate-preference" }
    public var config: JSONValue {
        var o = JSONObject()
        o.append("rejected", .string(settings.rejected))
        o.append("seed", .int(settings.seed))
        if settings.rejected == "sample" {
            if settings.qa.openai.backend == "openai" {
                o.append("base_url", .string(settings.qa.openai.baseURL))
            } else {
                o.append("backend", .string(settings.qa.openai.backend))
            }
            o.append("model", .string(settings.qa.openai.modelIdentity))
            o.append("parameters", settings.qa.openai.parameters)
            o.append("template", .string(SHA256.hex(questionOnly.description)))
        }
        return .object(o)
    }
    public var inputs: [StageInput] { RecordSource.stageInputs([input]) }

    /// One user/assistant turn of a sample.
    struct Turn: Sendable {
        var sample: String
        var index: Int
        var prompt: [JSONValue]
        var question: String
        var answer: String
        var type: String
        /// The conversation's `meta.language`, carried to its pairs.
        var language: String?
    }

    public func run(_ ctx: StageContext) throws {
        var turns: [Turn] = []
        try RecordSource.resolve([input]).forEachRecord(
            { r, path, line in
                guard let messages = r["messages"]?.arrayValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no 'messages'", line: line))
                    return
                }
                let id = r["id"]?.stringValue ?? "\(path):\(line)"
                let types = (r["meta"]?["tasks"]?.arrayValue ?? []).map { $0["type"]?.stringValue ?? "answer" }
                var k = 0
                for i in messages.indices.dropFirst() where messages[i]["role"]?.stringValue == "assistant"
                    && messages[i - 1]["role"]?.stringValue == "user"
                {
                    let user = messages[i - 1]["content"]?.stringValue ?? ""
                    let question = user.components(separatedBy: "\n\n").last ?? user
                    turns.append(
                        Turn(
                            sample: id, index: k, prompt: Array(messages[..<i]), question: question,
                            answer: messages[i]["content"]?.stringValue ?? "", type: k < types.count ? types[k] : "answer",
                            language: r["meta"]?["language"]?.stringValue))
                    k += 1
                }
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.progress.begin(totalBytes: nil, unit: "pairs")
        var byType: [String: [Int]] = [:]
        for (i, t) in turns.enumerated() { byType[t.type, default: []].append(i) }
        var dropped = 0
        var written = 0
        var failed = 0
        var chosenLonger = 0
        let backend: OpenAIBackend? =
            settings.rejected == "sample"
            ? try OpenAIBackend(
                config: settings.qa.openai, cache: settings.qa.noCache ? nil : try ResponseCache(path: settings.qa.cachePath))
            : nil
        try orderedParallelForEach(
            Array(turns.indices), jobs: backend == nil ? 1 : settings.qa.openai.concurrency,
            window: max(4, settings.qa.openai.concurrency * 4),
            produce: { i -> Result<String?, BackendError> in
                let t = turns[i]
                if let backend {
                    do {
                        return .success(try backend.complete([(role: "user", content: questionOnly.render(["question": t.question]))]))
                    } catch let e as BackendError { return .failure(e) } catch {
                        return .failure(BackendError(message: "\(error)", retryable: false))
                    }
                }
                // A distractor: the answer of another turn of the same type, picked with the seed.
                var rng = SplitMix64(seed: recordSeed(settings.seed, "\(t.sample)#\(t.index)"))
                let pool = (byType[t.type] ?? []).filter { turns[$0].answer != t.answer }
                guard !pool.isEmpty else { return .success(nil) }
                return .success(turns[pool[rng.below(pool.count)]].answer)
            },
            consume: { i, result in
                let t = turns[i]
                ctx.progress.add(items: 1)
                switch result {
                case .failure(let e):
                    failed += 1
                    try ctx.reject(Reject(source: input, reason: "the model server failed: \(e.message)", id: t.sample))
                case .success(let rejected):
                    guard let rejected, rejected.trimmingCharacters(in: .whitespacesAndNewlines)
                        != t.answer.trimmingCharacters(in: .whitespacesAndNewlines)
                    else {
                        dropped += 1
                        return
                    }
                    var meta = JSONObject()
                    meta.append(
                        "provenance",
                        provenance(
                            ids: [t.sample], generator: "preference",
                            templates: backend == nil ? [] : ["preference/question-only"],
                            backend: backend == nil ? "rules" : settings.qa.openai.backend,
                            model: backend == nil ? nil : settings.qa.openai.model, seed: settings.seed))
                    meta.append("rejected_from", .string(settings.rejected))
                    meta.append("task", .string(t.type))
                    if let l = t.language { meta.append("language", .string(l)) }
                    let scores = PairScores.measure(chosen: t.answer, rejected: rejected)
                    meta.append("scores", .object(scores))
                    if (scores["length_ratio"]?.doubleValue ?? 1) > 1 { chosenLonger += 1 }
                    var o = JSONObject()
                    o.append("id", .string("\(t.sample)#pref\(t.index)"))
                    o.append("prompt", .array(t.prompt))
                    o.append("chosen", [["role": "assistant", "content": .string(t.answer)]])
                    o.append("rejected", [["role": "assistant", "content": .string(rejected)]])
                    o.append("meta", .object(meta))
                    try ctx.output.write(.object(o))
                    written += 1
                }
            })
        ctx.setCount("pairs", written)
        ctx.setCount("dropped_equal", dropped)
        ctx.setCount("failed_requests", failed)
        // DPO learns length when chosen answers are systematically longer: 0.5 is no bias.
        if written > 0 { ctx.setValue("chosen_longer_share", .double((Double(chosenLonger) / Double(written) * 1e4).rounded() / 1e4)) }
    }
}
