// A Hugging Face model directory opened lazily: config.json, and either model.safetensors or the shards named by
// model.safetensors.index.json. Only headers are read when it opens; tensors are read one at a time.

import Foundation
import LoomCore
import LoomTensor

public final class HFModel: @unchecked Sendable {
    /// The model as the config names it.
    public let name: String
    public let directory: String
    /// config.json, when present.
    public let config: JSONValue?
    /// The safetensors files (one, or the shards in index order).
    public let files: [SafeTensorsFile]
    private let location: [String: Int]
    /// Tensor names, sorted.
    public let names: [String]

    /// Files besides the weights that describe the model (for fingerprints).
    public var inputFiles: [String] {
        var out = files.map(\.path)
        for f in ["config.json", "model.safetensors.index.json"] where FS.exists(FS.join(directory, f)) {
            out.append(FS.join(directory, f))
        }
        return out.sorted()
    }

    /// Finds a model directory: `path` itself, or `path/model` (a Loom stage directory that holds a model).
    public static func locate(_ path: String) -> String? {
        func hasWeights(_ d: String) -> Bool {
            FS.exists(FS.join(d, "model.safetensors")) || FS.exists(FS.join(d, "model.safetensors.index.json"))
        }
        if FS.isDirectory(path), hasWeights(path) { return path }
        let inner = FS.join(path, "model")
        if FS.isDirectory(inner), hasWeights(inner) { return inner }
        return nil
    }

    public init(name: String, directory: String) throws {
        self.name = name
        self.directory = directory
        guard FS.isDirectory(directory) else {
            throw LoomError(
                "model '\(name)': \(directory) is not a directory (loom merge reads local Hugging Face model directories: config.json + model.safetensors)")
        }
        let configPath = FS.join(directory, "config.json")
        if FS.exists(configPath) {
            do { config = try JSONValue.parse(try FS.readText(configPath)) } catch let e as JSONParseError {
                throw LoomError("\(configPath): \(e)")
            }
        } else {
            config = nil
        }
        let indexPath = FS.join(directory, "model.safetensors.index.json")
        let single = FS.join(directory, "model.safetensors")
        var files: [SafeTensorsFile] = []
        var location: [String: Int] = [:]
        if FS.exists(indexPath) {
            let index: JSONValue
            do { index = try JSONValue.parse(try FS.readText(indexPath)) } catch let e as JSONParseError {
                throw LoomError("\(indexPath): \(e)")
            }
            guard let map = index["weight_map"]?.objectValue else { throw LoomError("\(indexPath): no 'weight_map' object") }
            var fileIndex: [String: Int] = [:]
            for (tensor, f) in map {
                guard let file = f.stringValue, !file.contains("/"), !file.hasPrefix(".") else {
                    throw LoomError("\(indexPath): weight_map['\(tensor)'] is not a file name in the directory")
                }
                if fileIndex[file] == nil {
                    fileIndex[file] = files.count
                    files.append(try SafeTensorsFile(path: FS.join(directory, file)))
                }
                let i = fileIndex[file]!
                guard files[i].entry(tensor) != nil else {
                    throw LoomError("\(indexPath): weight_map puts '\(tensor)' in \(file), which has no such tensor")
                }
                location[tensor] = i
            }
        } else if FS.exists(single) {
            let f = try SafeTensorsFile(path: single)
            files = [f]
            for e in f.entries { location[e.name] = 0 }
        } else {
            let other = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt"].first { FS.exists(FS.join(directory, $0)) }
            throw LoomError(
                "model '\(name)': \(directory) has no model.safetensors or model.safetensors.index.json"
                    + (other.map { " (it has \($0); convert it to safetensors first)" } ?? ""))
        }
        self.files = files
        self.location = location
        names = location.keys.sorted()
    }

    public func entry(_ tensor: String) -> SafeTensorsEntry? { location[tensor].flatMap { files[$0].entry(tensor) } }

    public func floats(_ tensor: String) throws -> [Float] {
        guard let i = location[tensor] else { throw LoomError("model '\(name)' (\(directory)) has no tensor '\(tensor)'") }
        return try files[i].floats(tensor)
    }

    public func tensor(_ tensor: String) throws -> Tensor {
        guard let i = location[tensor] else { throw LoomError("model '\(name)' (\(directory)) has no tensor '\(tensor)'") }
        return try files[i].tensor(tensor)
    }

    /// `num_hidden_layers` (or `n_layer`, `num_layers`) from config.json, else one more than the largest layer index
    /// in the tensor names.
    public var layerCount: Int {
        for k in ["num_hidden_layers", "n_layer", "num_layers"] {
            if let n = config?[k]?.intValue, n > 0 { return n }
            if let n = config?["text_config"]?[k]?.intValue, n > 0 { return n }
        }
        return (names.compactMap(HFModel.layerIndex).max() ?? -1) + 1
    }

    /// The layer a tensor belongs to: the number after `layers.`, `h.`, `blocks.` or `layer.` in its name.
    public static func layerIndex(_ tensor: String) -> Int? {
        let parts = tensor.split(separator: ".")
        for (i, p) in parts.enumerated().dropLast() where ["layers", "h", "blocks", "layer"].contains(p) {
            if let n = Int(parts[i + 1]) { return n }
        }
        return nil
    }
}
