// `sample:` — generations from a trained model as records (`prompt`, `completion`), so a pipeline ends by showing
// what its model says. Greedy by default, so the same model gives the same text every run.

import Foundation
import LoomCore
import LoomTensor

public struct SampleConfig: Codable, Equatable, Sendable {
    public var model = ""
    /// A LoRA adapter directory (PEFT layout, e.g. a `train` step with lora_rank) folded into `model` first.
    public var adapter: String?
    public var prompts: [String] = []
    /// Prompts go through the chat template as a user turn (the default), or are continued as plain text.
    public var chat = true
    public var maxTokens = 64
    public var temperature = 0.0
    public var seed = 0

    public init() {}
    public static let keys = ["model", "adapter", "prompts", "chat", "max_tokens", "temperature", "seed"]

    enum CodingKeys: String, CodingKey { case model, adapter, prompts, chat, maxTokens, temperature, seed }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        adapter = try c.decodeIfPresent(String.self, forKey: .adapter)
        prompts = try c.decode([String].self, forKey: .prompts)
        chat = try c.decodeIfPresent(Bool.self, forKey: .chat) ?? true
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 64
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature) ?? 0
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 0
    }
}

public struct SampleStage: Stage {
    public let settings: SampleConfig
    public let threads: Int

    public init(config: SampleConfig, threads: Int) throws {
        guard !config.prompts.isEmpty else { throw LoomError("sample: give at least one prompt in 'prompts'") }
        guard config.maxTokens > 0 else { throw LoomError("sample: max_tokens must be positive") }
        settings = config
        self.threads = threads
    }

    /// The directory holding config.json (a merge step writes its model into `model/`).
    var modelDirectory: String { LlamaModel.directory(inStep: settings.model) }

    public var name: String { "sample" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] {
        [settings.model, settings.adapter].compactMap { $0 }.filter { FS.exists(FS.join($0, Manifest.fileName)) }.map { .stage($0) }
    }

    public func run(_ ctx: StageContext) throws {
        Compute.configure(threads: threads)
        var m = try ChatModel.load(directory: modelDirectory)
        if let a = settings.adapter {
            // The adapter folded into the weights (the sampler reads the weights, not the adapters).
            try LoRA.load(directory: a, model: m.model.config).merge(into: m.model)
            m = try ChatModel(model: m.model, codec: m.codec, name: m.name, directory: modelDirectory, chat: m.chat)
        }
        for (i, prompt) in settings.prompts.enumerated() {
            let o = SamplingOptions(
                temperature: settings.temperature, seed: UInt64(settings.seed + i), maxTokens: settings.maxTokens)
            let r = settings.chat ? try m.reply([("user", prompt)], options: o) : try m.continuation(prompt, options: o)
            var meta = JSONObject()
            meta.append("model", .string(modelDirectory))
            meta.append("finish_reason", .string(r.finishReason))
            meta.append("prompt_tokens", .int(r.promptTokens))
            meta.append("completion_tokens", .int(r.completionTokens))
            meta.append(
                "provenance",
                ["generator": "sample", "model": .string(modelDirectory), "seed": .int(settings.seed + i), "chat": .bool(settings.chat)])
            try ctx.output.write(
                .object(JSONObject([
                    ("id", .string("sample-\(i)")), ("prompt", .string(prompt)), ("completion", .string(r.text)),
                    ("meta", .object(meta)),
                ])))
            Log.info("sample \(i + 1): \(prompt) -> \(r.text.prefix(120).replacingOccurrences(of: "\n", with: " "))")
        }
    }
}
