// `loom merge CONFIG.yaml -o OUT_DIR` and the pipeline step `merge:`.

import ArgumentParser
import Foundation
import LoomCore
import LoomMerge
import LoomTrain

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge model checkpoints from a mergekit YAML config (linear, slerp, task_arithmetic, ties, dare_linear, dare_ties).",
        discussion: """
            Reads mergekit's configuration format: merge_method, base_model,
            models (each with parameters such as weight and density), top-level
            parameters (t, normalize, lambda, rescale), dtype / out_dtype
            (float32, bfloat16, float16) and tokenizer_source. Any parameter may
            be a gradient over the layers ([0, 0.5, 1]) or a list of
            {filter: SUBSTRING, value: V} conditions on the tensor name.

            Models are local Hugging Face directories (config.json and
            model.safetensors, or shards with model.safetensors.index.json);
            relative paths are looked up from the current directory, then
            from the config file's folder. The output is a Hugging Face
            directory: config.json from the base model (or the first model),
            model.safetensors (sharded above --max-shard-size), tokenizer files
            copied, and mergekit_config.yml. Tensors are merged one at a time,
            so memory stays near the largest tensor times the number of models.

            DARE's drop masks come from SplitMix64 seeded by --random-seed (or
            random_seed: in the config), the same bytes on every run;
            --dare-masks FILE takes them from a safetensors file of U8 tensors
            named MODEL.TENSOR instead. 'rescale: paper' divides the kept deltas
            by the density (the DARE paper) instead of mergekit's L1-norm
            matching. Formulas: docs/merging.md.

            Examples:
              loom merge configs/ties.yml -o out/merged
              loom merge chat-vector.yml -o out/domain-chat --dtype bfloat16
              loom merge dare.yml -o out/dare --random-seed 7 --max-shard-size 2GB

            The chat vector (CP model + (chat − base), arXiv 2310.04799):
              merge_method: task_arithmetic
              base_model: Llama-2-7b
              models:
                - model: Llama-2-7b-domain-cp
                  parameters: {weight: 1.0}
                - model: Llama-2-7b-chat
                  parameters: {weight: 1.0}
              dtype: bfloat16
            """)

    @Argument(help: "The mergekit YAML config.")
    var config: String

    @Option(name: [.short, .customLong("output")], help: "The output Hugging Face model directory.")
    var output: String

    @Option(
        name: [.customLong("max-shard-size"), .customLong("out-shard-size")],
        help: "Largest weight file before the output is sharded (bytes, or 500MB, 2GB, 5B; 0 = one file).")
    var maxShardSize = "5GB"

    @Option(help: "Seed of DARE's drop masks (overrides random_seed in the config).")
    var randomSeed: UInt64?

    @Option(help: "Take DARE's drop masks from this safetensors file (U8 tensors named MODEL.TENSOR).")
    var dareMasks: String?

    @Option(help: "Write this dtype whatever the config says: float32, bfloat16 or float16.")
    var dtype: String?

    @Flag(help: "Do not copy tokenizer files into the output.")
    var noCopyTokenizer = false

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    func run() throws {
        Log.quiet = quiet
        do {
            var c = try MergeConfig.load(path: config)
            if let randomSeed { c.randomSeed = randomSeed }
            if let dtype {
                guard OutputDType(name: dtype) != nil else {
                    throw LoomError("--dtype \(dtype): expected float32, bfloat16 or float16")
                }
                c.outDtype = dtype
            }
            guard let shard = MergeOptions.parseSize(maxShardSize) else {
                throw LoomError("--max-shard-size \(maxShardSize): expected bytes or a size such as 500MB, 2GB, 5B")
            }
            var options = MergeOptions()
            options.maxShardBytes = shard
            options.copyTokenizer = !noCopyTokenizer
            let configDir = (config as NSString).deletingLastPathComponent
            options.searchDirectories = ["."] + (configDir.isEmpty ? [] : [configDir])
            if let dareMasks { options.masks = try SafeTensorsDropMask(path: dareMasks) }
            let progress = LoomCore.Progress(label: "merge", quiet: quiet)
            options.progress = progress
            let start = Date()
            c = try importingGGUF(c, search: options.searchDirectories)
            let report: MergeReport
            do {
                report = try Merger.merge(c, output: output, options: options)
            } catch {
                progress.finish()
                throw error
            }
            progress.finish()
            if !quiet {
                let seconds = Date().timeIntervalSince(start)
                let spherical = c.method == .slerp ? ", \(report.sphericalTensors) by slerp and \(report.tensors - report.sphericalTensors - report.copiedTensors) by lerp" : ""
                print(
                    "\(c.method.rawValue): \(report.tensors) tensors (\(LoomCore.Progress.count(report.parameters)) parameters\(spherical)) -> \(output) (\(report.files.joined(separator: ", ")); \(LoomCore.Progress.size(report.bytes))) in \(String(format: "%.1f", seconds)) s; peak memory \(String(format: "%.0f", peakMemoryMB())) MB"
                )
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

extension Steps {
    /// `- merge: { config: merge.yml }` or the mergekit keys inline (`merge_method`, `base_model`, `models`, ...),
    /// plus `max_shard_size`, `dare_masks`, `copy_tokenizer`. A model may be `@NAME` / `@N`, an earlier step's
    /// output (`@train`: the latest train step). Writes STEP_DIR/model.
    static func merge(_ ctx: StepContext) throws -> any Stage {
        guard case .object(var o) = ctx.step.options else { throw LoomError("\(ctx.location): options must be a mapping") }
        var loom: [String: JSONValue] = [:]
        for k in ["config", "max_shard_size", "dare_masks", "copy_tokenizer"] {
            if let v = o[k] { loom[k] = v; o[k] = nil }
        }
        var config: MergeConfig
        var search = [ctx.pipeline.baseDirectory]
        if let file = loom["config"] {
            guard let path = file.stringValue else { throw LoomError("\(ctx.location): 'config' must be a file path") }
            guard o.count == 0 else {
                throw LoomError(
                    "\(ctx.location): give either 'config: FILE' or the mergekit keys inline, not both (\(o.keys.joined(separator: ", ")))")
            }
            let resolved = ctx.resolve(path)
            config = try MergeConfig.load(path: resolved)
            search.append((resolved as NSString).deletingLastPathComponent)
        } else {
            config = try MergeConfig.from(.object(o), context: ctx.location)
        }
        // `@train`, `@3`: an earlier step's output directory (absolute, so it is not looked up again from the search
        // directories).
        config = try config.renamingModels { name in
            guard name.hasPrefix("@") else { return name }
            let dir = try ctx.resolveStep(name)
            return dir.hasPrefix("/") ? dir : FS.join(FileManager.default.currentDirectoryPath, dir)
        }
        config = try importingGGUF(config, search: search)
        var shard = 5_000_000_000
        if let s = loom["max_shard_size"] {
            guard let n = s.intValue ?? s.stringValue.flatMap(MergeOptions.parseSize) else {
                throw LoomError("\(ctx.location): max_shard_size must be bytes or a size such as 2GB")
            }
            shard = n
        }
        let masks = try loom["dare_masks"].map { v -> String in
            guard let p = v.stringValue else { throw LoomError("\(ctx.location): dare_masks must be a file path") }
            return ctx.resolve(p)
        }
        return MergeStage(
            config: config, searchDirectories: search, maxShardBytes: shard, masksPath: masks,
            copyTokenizer: loom["copy_tokenizer"]?.boolValue ?? true)
    }
}

/// Models given as .gguf files (found as given or in the search directories) replaced by their Hugging Face
/// directories, imported once into the cache (GGUFImport.modelDirectory): the merger reads safetensors.
func importingGGUF(_ c: MergeConfig, search: [String]) throws -> MergeConfig {
    try c.renamingModels { name in
        guard name.lowercased().hasSuffix(".gguf") else { return name }
        let candidates = name.hasPrefix("/") ? [name] : search.map { FS.join($0, name) }
        guard let file = candidates.first(where: { FS.exists($0) }) else {
            throw LoomError("merge: \(name) not found (looked in \(search.joined(separator: ", ")))")
        }
        return try GGUFImport.modelDirectory(file)
    }
}
