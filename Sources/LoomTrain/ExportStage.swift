// `export:` — the pipeline step after train or merge that writes the model as one GGUF file (`model.gguf` in the
// step's directory) for llama.cpp and Ollama: `loom model export` as a stage, so a pipeline ends with a file a user
// can serve. A LoRA adapter step is folded into its base first.

import Foundation
import LoomCore
import LoomTensor

public struct ExportConfig: Codable, Equatable, Sendable {
    /// The model directory (a train or merge step's output, a Hugging Face directory, or a .gguf file).
    public var model = ""
    /// A LoRA adapter directory folded into `model` before export.
    public var adapter: String?
    /// The 2-D weights' type: f32, f16 or q8_0.
    public var type = "f16"
    public var name: String?

    public init() {}
    public static let keys = ["model", "adapter", "type", "name"]

    enum CodingKeys: String, CodingKey { case model, adapter, type, name }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        adapter = try c.decodeIfPresent(String.self, forKey: .adapter)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "f16"
        name = try c.decodeIfPresent(String.self, forKey: .name)
    }
}

public struct ExportStage: Stage {
    public let settings: ExportConfig
    let type: GGMLType

    public init(config: ExportConfig) throws {
        guard let t = GGMLType(name: config.type), [.f32, .f16, .q8_0].contains(t) else {
            throw LoomError("export: type '\(config.type)' is not one of f32, f16, q8_0")
        }
        settings = config
        type = t
    }

    /// The directory holding config.json (a merge step writes its model into `model/`).
    var modelDirectory: String { LlamaModel.directory(inStep: settings.model) }

    public var name: String { "export" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] {
        [settings.model, settings.adapter].compactMap { $0 }.filter { FS.exists(FS.join($0, Manifest.fileName)) }.map { .stage($0) }
    }
    public var sideFiles: [String] { ["model.gguf"] }

    public func run(_ ctx: StageContext) throws {
        var source = try GGUFImport.modelDirectory(modelDirectory)
        if let a = settings.adapter {
            // Folded into the base and written as a model directory in the step's scratch space.
            let model = try LlamaModel.load(directory: source)
            try LoRA.load(directory: a, model: model.config).merge(into: model)
            let merged = FS.join(ctx.workDirectory, "merged")
            try model.save(directory: merged)
            for f in ["tokenizer.json", "tokenizer_config.json"] where FS.exists(FS.join(source, f)) {
                try FileManager.default.copyItem(atPath: FS.join(source, f), toPath: FS.join(merged, f))
            }
            source = merged
        }
        let s = try GGUFExport.write(directory: source, to: ctx.sideFilePath("model.gguf"), type: type, name: settings.name)
        ctx.setCount("tensors", s.tensors)
        ctx.setCount("bytes", s.bytes)
        ctx.setValue("tokenizer", .bool(s.tokenizer))
        ctx.setValue("chat_template", .bool(s.chatTemplate))
        Log.info("export: \(s.tensors) tensors, \(s.bytes) bytes -> model.gguf")
    }
}
