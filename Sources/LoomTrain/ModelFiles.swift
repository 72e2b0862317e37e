// Loading and saving a model in the Hugging Face layout: `config.json` + `model.safetensors` with transformers'
// tensor names (F32 written; F32, F16 and BF16 read), so transformers' `from_pretrained` opens what Loom writes.

import Foundation
import LoomCore
import LoomTensor

extension LlamaModel {
    /// Loads `DIR/config.json` and `DIR/model.safetensors` (or the shards listed in model.safetensors.index.json).
    public static func load(directory: String) throws -> LlamaModel {
        if !FS.exists(FS.join(directory, "config.json")), FS.exists(FS.join(directory, "adapter_config.json")) {
            throw LoomError(
                "\(directory) is a LoRA adapter, not a model: fold it into its base with 'loom lora merge BASE \(directory) -o OUT'")
        }
        let config = try LlamaConfig.load(directory)
        let model = try LlamaModel(config: config)
        var tensors: [(name: String, tensor: Tensor)] = []
        let single = FS.join(directory, "model.safetensors")
        let index = FS.join(directory, "model.safetensors.index.json")
        if FS.exists(single) {
            tensors = try SafeTensors.read(single).tensors
        } else if FS.exists(index) {
            let j = try JSONValue.parse(try FS.readText(index))
            let files = Set((j["weight_map"]?.objectValue ?? JSONObject()).compactMap { $0.value.stringValue }).sorted()
            for f in files { tensors += try SafeTensors.read(FS.join(directory, f)).tensors }
        } else {
            throw LoomError("\(directory): no model.safetensors (a Hugging Face model directory is expected)")
        }
        // A tied checkpoint may still carry lm_head.weight; an untied one must have it. safetensors' save_model
        // keeps one name of a tied pair, and may keep lm_head.weight alone: then it is the embedding.
        if config.tieWordEmbeddings, !tensors.contains(where: { $0.name == "model.embed_tokens.weight" }),
            let head = tensors.first(where: { $0.name == "lm_head.weight" })
        {
            tensors.append((name: "model.embed_tokens.weight", tensor: head.tensor))
        }
        try model.params.load(tensors, source: directory)
        return model
    }

    /// Writes config.json and model.safetensors (F32) into `directory`.
    public func save(directory: String, metadata: [(String, String)] = [("format", "pt")]) throws {
        try FS.makeDirectory(directory)
        try config.write(to: directory)
        let tensors = params.infos.map { (name: $0.name, tensor: params.tensor($0)) }
        try SafeTensors.write(tensors, metadata: metadata, to: FS.join(directory, "model.safetensors"))
    }
}
