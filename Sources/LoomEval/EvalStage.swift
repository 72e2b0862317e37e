// `loom eval MODEL DATA... -o OUT`: a model (and optionally a LoRA adapter) scored on evaluation records with the
// definitions lm-evaluation-harness uses (docs/evaluation.md):
//   multiple choice  log-likelihood of delimiter + choice after the context; acc = the most likely choice is gold,
//                    acc_norm = the same with each log-likelihood divided by the choice's length in bytes;
//   generation       the greedy reply to the turns before the last assistant turn against that turn: exact match and
//                    token F1 after SQuAD's normalisation;
//   perplexity       text records scored whole in rolling windows of the model's length: per token, per byte (and bits
//                    per byte) and per word, so models with different tokenizers compare.
// Writes `metrics.json` (every figure with a 95% bootstrap interval, per task) and `items.jsonl` (every item's score).

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

public struct EvalConfig: Codable, Equatable, Sendable {
    public var model = ""
    /// A LoRA adapter directory (PEFT layout) folded into the model first.
    public var adapter: String?
    public var data: [String] = []
    /// Longest input a request may have (default: the model's context, at most 2048).
    public var maxLength: Int?
    /// Rows per forward pass for log-likelihoods.
    public var rows = 1
    /// Few-shot examples before each multiple-choice item, drawn from `fewshotFrom` (same task, another document).
    public var fewshot = 0
    public var fewshotFrom: String?
    /// Most items per task (nil: all), the first ones in reading order.
    public var limit: Int?
    /// Most tokens of a generated answer.
    public var maxTokens = 64
    /// Start every sequence with the tokenizer's beginning-of-text token: auto (when it has one), yes, no.
    public var bos = "auto"
    /// Between a multiple-choice context and each choice (lm-evaluation-harness's target_delimiter).
    public var delimiter = " "
    public var resamples = 1000
    public var seed = 1234
    /// Generation requests decoded together.
    public var concurrency = 8

    public init() {}
    public static let keys = [
        "model", "adapter", "data", "max_length", "rows", "fewshot", "fewshot_from", "limit", "max_tokens", "bos", "delimiter",
        "resamples", "seed", "concurrency",
    ]

    enum CodingKeys: String, CodingKey {
        case model, adapter, data, maxLength, rows, fewshot, fewshotFrom, limit, maxTokens, bos, delimiter, resamples, seed, concurrency
    }

    /// Every option but `model` may be left out.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        adapter = try c.decodeIfPresent(String.self, forKey: .adapter)
        data = try c.decodeIfPresent([String].self, forKey: .data) ?? []
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength)
        rows = try c.decodeIfPresent(Int.self, forKey: .rows) ?? 1
        fewshot = try c.decodeIfPresent(Int.self, forKey: .fewshot) ?? 0
        fewshotFrom = try c.decodeIfPresent(String.self, forKey: .fewshotFrom)
        limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 64
        bos = try c.decodeIfPresent(String.self, forKey: .bos) ?? "auto"
        delimiter = try c.decodeIfPresent(String.self, forKey: .delimiter) ?? " "
        resamples = try c.decodeIfPresent(Int.self, forKey: .resamples) ?? 1000
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 1234
        concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? 8
    }

    public func validate() throws {
        guard !model.isEmpty else { throw LoomError("eval: give the model (a model directory or .gguf file)") }
        guard !data.isEmpty else { throw LoomError("eval: give the data to evaluate on") }
        guard ["auto", "yes", "no"].contains(bos) else { throw LoomError("eval: bos must be auto, yes or no (got '\(bos)')") }
        guard rows >= 1, maxTokens >= 1, resamples >= 0, concurrency >= 1, fewshot >= 0 else {
            throw LoomError("eval: rows, max_tokens and concurrency must be positive; resamples and fewshot not negative")
        }
        if let m = maxLength, m < 2 { throw LoomError("eval: max_length must be at least 2") }
        if fewshot > 0, fewshotFrom == nil { throw LoomError("eval: fewshot needs fewshot_from (the train side's items)") }
    }
}

/// One generation item.
struct GenerationItem {
    var id: String
    var task: String
    var prompt: [(role: String, content: String)]
    var reference: String
}

struct TextItem {
    var id: String
    var task: String
    var text: String
}

/// The evaluation records of some inputs, by kind; bad records go to `reject`.
struct EvalItems {
    var choice: [ChoiceItem] = []
    var generation: [GenerationItem] = []
    var text: [TextItem] = []

    static func read(_ paths: [String], limit: Int?, reject: (Reject) throws -> Void) throws -> EvalItems {
        var items = EvalItems()
        var perTask: [String: Int] = [:]
        func take(_ task: String) -> Bool {
            perTask[task, default: 0] += 1
            return limit.map { perTask[task]! <= $0 } ?? true
        }
        try RecordSource.resolve(paths).forEachRecord(
            { r, path, line in
                let fallback = "\(URL(fileURLWithPath: path).lastPathComponent):\(line)"
                let id = r["id"]?.stringValue ?? r["id"]?.intValue.map(String.init) ?? fallback
                do {
                    if let c = try ChoiceItem.from(r, fallbackID: fallback) {
                        if take(c.task ?? "multiple_choice") { items.choice.append(c) }
                    } else if let m = r["messages"] {
                        guard let turns = m.arrayValue, !turns.isEmpty else { throw LoomError("'messages' must be a non-empty list") }
                        var parsed: [(role: String, content: String)] = []
                        for (i, t) in turns.enumerated() {
                            guard let role = t["role"]?.stringValue, let content = t["content"]?.stringValue else {
                                throw LoomError("messages[\(i)] needs 'role' and 'content' strings")
                            }
                            parsed.append((role, content))
                        }
                        guard let last = parsed.lastIndex(where: { $0.role == "assistant" }), last > 0 else {
                            throw LoomError("a generation record needs an assistant turn after the prompt")
                        }
                        let task = r["task"]?.stringValue ?? "generation"
                        if take(task) {
                            items.generation.append(
                                GenerationItem(id: id, task: task, prompt: Array(parsed[..<last]), reference: parsed[last].content))
                        }
                    } else if let text = r["text"]?.stringValue {
                        guard !text.isEmpty else { throw LoomError("'text' is empty") }
                        let task = r["task"]?.stringValue ?? "perplexity"
                        if take(task) { items.text.append(TextItem(id: id, task: task, text: text)) }
                    } else {
                        throw LoomError("not an evaluation record: it needs 'choices', 'messages' or 'text'")
                    }
                } catch let e as LoomError {
                    try reject(Reject(source: path, reason: e.message, line: line, id: id))
                }
            },
            bad: { e, path, line in
                try reject(Reject(source: path, reason: e.description, line: line, byte: e.offset))
            })
        return items
    }
}

public struct EvalStage: Stage {
    public let settings: EvalConfig
    let threads: Int

    public init(config: EvalConfig, threads: Int) throws {
        try config.validate()
        settings = config
        self.threads = threads
    }

    public var name: String { "eval" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] {
        var i = [settings.model, settings.adapter].compactMap { $0 }.filter { FS.exists(FS.join($0, Manifest.fileName)) }.map { StageInput.stage($0) }
        i += RecordSource.stageInputs(settings.data)
        if let f = settings.fewshotFrom { i += RecordSource.stageInputs([f]) }
        if !settings.model.lowercased().hasSuffix(".gguf"), !FS.exists(FS.join(settings.model, Manifest.fileName)) {
            let dir = LlamaModel.directory(inStep: settings.model)
            i += ["config.json", "model.safetensors", "tokenizer.json"].map { FS.join(dir, $0) }.filter(FS.exists).map { .file($0) }
        } else if settings.model.lowercased().hasSuffix(".gguf") {
            i.append(.file(settings.model))
        }
        return i
    }
    public var sideFiles: [String] { ["metrics.json", "items.jsonl"] }

    public func run(_ ctx: StageContext) throws {
        Compute.configure(threads: threads)
        let dir = LlamaModel.directory(inStep: settings.model)
        var chat = try ChatModel.load(directory: dir)
        if let a = settings.adapter {
            try LoRA.load(directory: a, model: chat.model.config).merge(into: chat.model)
            chat = try ChatModel(model: chat.model, codec: chat.codec, name: chat.name, directory: chat.directory, chat: chat.chat)
        }
        chat.maxBatch = settings.concurrency
        let items = try EvalItems.read(settings.data, limit: settings.limit) { try ctx.reject($0) }
        let fewshotPool = try settings.fewshotFrom.map { try EvalItems.read([$0], limit: nil) { _ in }.choice } ?? []
        let evaluator = Evaluator(chat: chat, settings: settings)
        let total = items.choice.count + items.generation.count + items.text.count
        guard total > 0 else { throw LoomError("eval: no evaluation records in \(settings.data.joined(separator: ", "))") }
        ctx.progress.begin(totalItems: total, unit: "items")
        let started = Date()

        var scored: [ScoredItem] = []
        scored += try evaluator.multipleChoice(items.choice, fewshotPool: fewshotPool) { ctx.progress.add(items: $0) }
        let mcSeconds = Date().timeIntervalSince(started)
        scored += evaluator.perplexity(items.text) { ctx.progress.add(items: $0) }
        scored += try evaluator.generation(items.generation) { ctx.progress.add(items: $0) }

        let metrics = Evaluator.metrics(scored, resamples: settings.resamples, seed: UInt64(settings.seed))
        var out = JSONObject()
        out["model"] = .string(dir)
        if let a = settings.adapter { out["adapter"] = .string(a) }
        out["tasks"] = .object(metrics)
        if !items.choice.isEmpty {
            out["multiple_choice_items_per_second"] = .double(Double(items.choice.count) / max(mcSeconds, 1e-9))
        }
        try FS.writeAtomically(JSONValue.object(out).prettyString + "\n", to: ctx.sideFilePath("metrics.json"))
        let f = try BufferedFile(creating: ctx.sideFilePath("items.jsonl"))
        for s in scored {
            var line: [UInt8] = []
            s.json.write(to: &line)
            line.append(UInt8(ascii: "\n"))
            try f.write(line)
        }
        try f.close()
        for (task, m) in metrics {
            ctx.setValue(task, m)
            Log.info("eval \(task): \(Evaluator.summary(m))")
        }
        ctx.setCount("items", scored.count)
    }
}
