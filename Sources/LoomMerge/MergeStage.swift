// The pipeline step `merge:`: a stage whose output directory holds `model/` (the merged Hugging Face directory) and
// the manifest. Its inputs are the models' files (or, for a model that is an earlier step's output, that step's
// manifest), so a re-run with the same models and config is skipped.

import Foundation
import LoomCore

public struct MergeStage: Stage {
    public let mergeConfig: MergeConfig
    public let maxShardBytes: Int
    public let masksPath: String?
    public let copyTokenizer: Bool
    public let searchDirectories: [String]

    public init(
        config: MergeConfig, searchDirectories: [String], maxShardBytes: Int = 5_000_000_000, masksPath: String? = nil,
        copyTokenizer: Bool = true
    ) {
        mergeConfig = config
        self.searchDirectories = searchDirectories
        self.maxShardBytes = maxShardBytes
        self.masksPath = masksPath
        self.copyTokenizer = copyTokenizer
    }

    /// Resolved when the stage is about to run (a model may be the output of an earlier step of the same pipeline).
    /// A model that cannot be found shows as its first candidate path, which the runner reports as missing.
    public var inputs: [StageInput] {
        var inputs: [StageInput] = []
        for name in mergeConfig.inputs {
            guard let dir = try? Merger.resolve(name, searchDirectories: searchDirectories),
                let m = try? HFModel(name: name, directory: dir)
            else {
                inputs.append(.file(name.hasPrefix("/") ? name : FS.join(searchDirectories.first ?? ".", name)))
                continue
            }
            let parent = (m.directory as NSString).deletingLastPathComponent
            if FS.exists(FS.join(m.directory, Manifest.fileName)) {
                inputs.append(.stage(m.directory))  // a train step's directory: the weights beside its manifest
            } else if FS.exists(FS.join(parent, Manifest.fileName)), (m.directory as NSString).lastPathComponent == "model" {
                inputs.append(.stage(parent))  // a merge step's directory: the weights in its model/
            } else {
                inputs += m.inputFiles.map { .file($0) }
            }
        }
        if let masksPath { inputs.append(.file(masksPath)) }
        return inputs
    }

    public var name: String { "merge" }
    public var sideFiles: [String] { ["model"] }

    public var config: JSONValue {
        var o = JSONObject()
        o.append("merge", mergeConfig.json)
        o.append("max_shard_bytes", .int(maxShardBytes))
        o.append("dare_masks", masksPath.map { .string($0) } ?? .null)
        o.append("copy_tokenizer", .bool(copyTokenizer))
        return .object(o)
    }

    public func run(_ ctx: StageContext) throws {
        var options = MergeOptions()
        options.maxShardBytes = maxShardBytes
        options.copyTokenizer = copyTokenizer
        options.searchDirectories = searchDirectories
        options.progress = ctx.progress
        if let masksPath { options.masks = try SafeTensorsDropMask(path: masksPath) }
        let report = try Merger.merge(mergeConfig, output: ctx.sideFilePath("model"), options: options)
        ctx.setCount("tensors", report.tensors)
        ctx.setCount("parameters", report.parameters)
        ctx.setCount("bytes", report.bytes)
        ctx.setValue("method", .string(mergeConfig.method.rawValue))
        ctx.setValue("files", .array(report.files.map { .string($0) }))
        if !report.notes.isEmpty { ctx.setValue("notes", .array(report.notes.map { .string($0) })) }
    }
}

extension MergeOptions {
    /// Parses a size: bytes, or a number with K/KB, M/MB, G/GB (powers of 1000), KiB/MiB/GiB (powers of 1024), or
    /// B for billions (mergekit's `--out-shard-size 5B`).
    public static func parseSize(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9),
            ("K", 1e3), ("M", 1e6), ("G", 1e9), ("B", 1e9),
        ]
        for (u, f) in units where s.uppercased().hasSuffix(u.uppercased()) {
            guard let x = Double(s.dropLast(u.count).trimmingCharacters(in: .whitespaces)), x >= 0 else { return nil }
            return Int(x * f)
        }
        return Int(s).flatMap { $0 >= 0 ? $0 : nil }
    }
}
