// Loading and saving a model in the Hugging Face layout: `config.json` + `model.safetensors` with transformers'
// tensor names (F32 written; F32, F16 and BF16 read), so transformers' `from_pretrained` opens what Loom writes.

import Foundation
import LoomCore
import LoomTensor

extension LlamaModel {
    /// The directory holding config.json for a model named by a pipeline: the path itself, or its `model/`
    /// (a merge step writes its model there).
    public static func directory(inStep path: String) -> String {
        let nested = FS.join(path, "model")
        return !FS.exists(FS.join(path, "config.json")) && FS.exists(FS.join(nested, "config.json")) ? nested : path
    }

    /// Loads `DIR/config.json` and `DIR/model.safetensors` (or the shards listed in model.safetensors.index.json);
    /// a `.gguf` file is imported once into the cache and read from there (GGUFImport.modelDirectory).
    public static func load(directory given: String) throws -> LlamaModel {
        let directory = try GGUFImport.modelDirectory(given)
        if !FS.exists(FS.join(directory, "config.json")), FS.exists(FS.join(directory, "adapter_config.json")) {
            throw LoomError(
                "\(directory) is a LoRA adapter, not a model: fold it into its base with 'loom lora merge BASE \(directory) -o OUT'")
        }
        let config = try LlamaConfig.load(directory)
        let model = try LlamaModel(config: config)
        let single = FS.join(directory, "model.safetensors")
        let index = FS.join(directory, "model.safetensors.index.json")
        var files: [SafeTensorsFile] = []
        if FS.exists(single) {
            files = [try SafeTensorsFile(path: single)]
        } else if FS.exists(index) {
            let j = try JSONValue.parse(try FS.readText(index))
            let names = Set((j["weight_map"]?.objectValue ?? JSONObject()).compactMap { $0.value.stringValue }).sorted()
            files = try names.map { try SafeTensorsFile(path: FS.join(directory, $0)) }
        } else {
            throw LoomError("\(directory): no model.safetensors (a Hugging Face model directory is expected)")
        }
        // Each tensor read straight into the parameter buffer (memory stays near the model's size). A tied
        // checkpoint may still carry lm_head.weight; an untied one must have it. safetensors' save_model keeps one
        // name of a tied pair, and may keep lm_head.weight alone: then it is the embedding.
        func find(_ name: String) -> (SafeTensorsFile, SafeTensorsEntry)? {
            for f in files { if let e = f.entry(name) { return (f, e) } }
            return nil
        }
        for info in model.params.infos {
            var found = find(info.name)
            if found == nil, info.name == "model.embed_tokens.weight", config.tieWordEmbeddings { found = find("lm_head.weight") }
            guard let (file, entry) = found else { throw LoomError("\(directory): tensor '\(info.name)' is missing") }
            guard entry.shape == info.shape else {
                throw LoomError("\(file.path): tensor '\(info.name)' has shape \(entry.shape), the config says \(info.shape)")
            }
            guard [.f32, .f16, .bf16, .f64].contains(entry.dtype) else {
                throw LoomError("\(file.path): tensor '\(info.name)' has dtype \(entry.dtype.rawValue); expected a float type")
            }
            try file.readFloats(entry.name, into: UnsafeMutableBufferPointer(start: model.params.values.pointer + info.offset, count: info.count))
        }
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
