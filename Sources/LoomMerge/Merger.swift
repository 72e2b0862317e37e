// `loom merge`: reads a mergekit config, opens every model lazily, merges tensor by tensor and streams the result
// into a Hugging Face directory (config.json from the base model, or the first model; model.safetensors, sharded
// above --max-shard-size with model.safetensors.index.json; tokenizer files copied). Only one tensor of each model
// is in memory at a time, so memory stays near the largest tensor times the number of models.

import Foundation
import LoomCore
import LoomTensor

public struct MergeOptions: Sendable {
    /// A new shard starts when the next tensor would take the current one past this many bytes (5 GB, as
    /// mergekit and transformers; 0 = never shard).
    public var maxShardBytes = 5_000_000_000
    /// DARE drop masks; nil: `SeededDropMask(seed: config.randomSeed)`.
    public var masks: (any DropMaskProvider)?
    public var copyTokenizer = true
    /// Where a relative model path is looked for, in order (the current directory first, as mergekit).
    public var searchDirectories = ["."]
    /// Reports progress (tensors and bytes written).
    public var progress: LoomCore.Progress?
    public init() {}
}

public struct MergeReport: Sendable {
    public var tensors = 0
    public var parameters = 0
    public var bytes = 0
    /// The weight files written, in order.
    public var files: [String] = []
    /// For slerp: how many tensors took the spherical branch (the rest were linear).
    public var sphericalTensors = 0
    /// Tensors copied from the base model unchanged (integer buffers).
    public var copiedTensors = 0
    public var notes: [String] = []
}

public enum Merger {
    /// The directory of a model named in a config.
    public static func resolve(_ name: String, searchDirectories: [String]) throws -> String {
        var tried: [String] = []
        let candidates = name.hasPrefix("/") ? [name] : searchDirectories.map { FS.join($0, name) }
        for c in candidates {
            let p = (c as NSString).standardizingPath
            if let d = HFModel.locate(p) { return d }
            tried.append(p)
        }
        throw LoomError(
            "model '\(name)' not found (looked for a directory with model.safetensors or model.safetensors.index.json at \(tried.joined(separator: ", "))); loom merge reads local Hugging Face directories, it does not download")
    }

    /// Opens the config's inputs, in mergekit's order (the listed models, then the base model if not listed).
    public static func open(_ config: MergeConfig, searchDirectories: [String]) throws -> [HFModel] {
        try config.inputs.map { try HFModel(name: $0, directory: try resolve($0, searchDirectories: searchDirectories)) }
    }

    /// Merges into `output` (created if needed; earlier weight files there are replaced).
    @discardableResult
    public static func merge(_ config: MergeConfig, output: String, options: MergeOptions = MergeOptions()) throws
        -> MergeReport
    {
        var report = MergeReport()
        report.notes = config.notes
        for n in config.notes { Log.info("note: \(n)") }
        let models = try open(config, searchDirectories: options.searchDirectories)
        let byName = Dictionary(models.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let reference = config.baseModel.flatMap { byName[$0] } ?? models[0]
        let masks = options.masks ?? SeededDropMask(seed: config.randomSeed)

        // What to write: the reference model's tensors, each checked against every other input.
        let outType = (config.outDtype ?? config.dtype).flatMap(OutputDType.init(name:))?.dtype
        var specs: [SafeTensorsWriter.Spec] = []
        var merged: Set<String> = []
        for name in reference.names {
            let e = reference.entry(name)!
            for m in models where m !== reference {
                guard let o = m.entry(name) else {
                    throw LoomError("model '\(m.name)' (\(m.directory)) has no tensor '\(name)', which '\(reference.name)' has")
                }
                guard o.shape == e.shape else {
                    throw LoomError(
                        "tensor '\(name)': model '\(m.name)' has shape \(o.shape), '\(reference.name)' has \(e.shape)")
                }
            }
            if isFloat(e.dtype) {
                specs.append(SafeTensorsWriter.Spec(name: name, dtype: outType ?? e.dtype, shape: e.shape))
                merged.insert(name)
            } else {
                specs.append(SafeTensorsWriter.Spec(name: name, dtype: e.dtype, shape: e.shape))
            }
        }
        for m in models where m !== reference {
            let extra = m.names.filter { reference.entry($0) == nil }
            if !extra.isEmpty {
                let note = "model '\(m.name)' has \(extra.count) tensors that '\(reference.name)' lacks (e.g. '\(extra[0])'); they are not in the output"
                report.notes.append(note)
                Log.warn(note)
            }
        }

        // Shards: greedy in name order, as transformers and mergekit cut them.
        let metadata = [("format", "pt")]
        var shards: [[SafeTensorsWriter.Spec]] = []
        var size = 0
        for s in specs {
            if shards.isEmpty || (options.maxShardBytes > 0 && size > 0 && size + s.byteCount > options.maxShardBytes) {
                shards.append([])
                size = 0
            }
            shards[shards.count - 1].append(s)
            size += s.byteCount
        }
        if shards.isEmpty { shards = [[]] }
        let fileNames =
            shards.count == 1
            ? ["model.safetensors"]
            : (1...shards.count).map {
                "model-\(String($0).leftPadded(5))-of-\(String(shards.count).leftPadded(5)).safetensors"
            }

        func absolute(_ p: String) -> String {
            URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path
        }
        for m in models where absolute(m.directory) == absolute(output) {
            throw LoomError("the output directory \(output) is model '\(m.name)': write the merge somewhere else")
        }
        try FS.makeDirectory(output)
        for f in FS.list(output)
        where f == "model.safetensors" || f == "model.safetensors.index.json"
            || (f.hasPrefix("model-") && (f.hasSuffix(".safetensors") || f.hasSuffix(".safetensors.tmp")))
        {
            FS.remove(FS.join(output, f))
        }

        let layers = reference.layerCount
        let total = specs.reduce(0) { $0 + $1.byteCount }
        options.progress?.begin(totalBytes: total, unit: "tensors")
        for (shard, file) in zip(shards, fileNames) {
            let writer = try SafeTensorsWriter(path: FS.join(output, file), tensors: shard, metadata: metadata)
            do {
                for spec in writer.order {
                    if merged.contains(spec.name) {
                        let t = layerPosition(spec.name, layers: layers)
                        let (values, spherical) = try mergeTensor(
                            spec.name, t: t, config: config, models: models, byName: byName, masks: masks)
                        if spherical { report.sphericalTensors += 1 }
                        try write(values, as: spec.dtype, name: spec.name, to: writer)
                    } else {
                        try writer.append(spec.name, tensor: try reference.tensor(spec.name))
                        report.copiedTensors += 1
                    }
                    report.tensors += 1
                    report.parameters += spec.shape.reduce(1, *)
                    options.progress?.add(items: 1, bytes: spec.byteCount)
                }
                try writer.finish()
            } catch {
                writer.abandon()
                throw error
            }
            report.files.append(file)
        }
        report.bytes = fileNames.reduce(0) { $0 + (FS.size(FS.join(output, $1)) ?? 0) }
        if shards.count > 1 {
            var map = JSONObject()
            for (shard, file) in zip(shards, fileNames) {
                for s in shard { map.append(s.name, .string(file)) }
            }
            map = JSONObject(map.pairs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
            let index: JSONValue = ["metadata": ["total_size": .int(total)], "weight_map": .object(map)]
            try FS.writeAtomically(index.jsonString + "\n", to: FS.join(output, "model.safetensors.index.json"))
        }

        try copyConfig(from: reference, to: output, dtype: outType)
        if options.copyTokenizer {
            let donor: HFModel
            if let src = config.tokenizerSource, src != "base" {
                donor = try byName[src] ?? HFModel(name: src, directory: try resolve(src, searchDirectories: options.searchDirectories))
            } else {
                donor = reference
            }
            for f in tokenizerFiles where FS.exists(FS.join(donor.directory, f)) {
                try copyFile(FS.join(donor.directory, f), to: FS.join(output, f))
            }
        }
        try FS.writeAtomically(config.json.jsonString + "\n", to: FS.join(output, "mergekit_config.yml"))
        return report
    }

    /// The files mergekit copies from the tokenizer donor.
    public static let tokenizerFiles = [
        "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model", "added_tokens.json",
        "merges.txt", "vocab.json", "vocab.txt", "chat_template.jinja", "chat_template.json", "generation_config.json",
    ]

    static func isFloat(_ d: DType) -> Bool { d == .f32 || d == .f16 || d == .bf16 || d == .f64 }

    /// mergekit's layer position t: layer i of L is i / (L − 1) (1 when L = 1); tensors outside the layers
    /// (embeddings, final norm, lm_head) take 0, as mergekit 0.1.5 plans them.
    public static func layerPosition(_ tensor: String, layers: Int) -> Double {
        guard let i = HFModel.layerIndex(tensor) else { return 0 }
        return layers > 1 ? Double(i) / Double(layers - 1) : 1
    }

    /// One output tensor as Float, and whether slerp took its spherical branch.
    static func mergeTensor(
        _ name: String, t: Double, config: MergeConfig, models: [HFModel], byName: [String: HFModel],
        masks: any DropMaskProvider
    ) throws -> ([Float], Bool) {
        switch config.method {
        case .linear:
            let weights = try models.map { try config.number("weight", model: $0.name, tensor: name, t: t, default: nil) }
            let normalize = try config.flag("normalize", tensor: name, t: t, default: true)
            if normalize, weights.reduce(0, +) == 0 {
                throw LoomError("tensor '\(name)': the weights sum to 0, so normalize: true would divide by zero")
            }
            var xs = try models.map { try $0.floats(name) }
            var first = xs.removeFirst()
            withBuffers(xs) { rest in
                first.withUnsafeMutableBufferPointer { out in
                    Kernels.linear([UnsafeBufferPointer(out)] + rest, weights: weights, normalize: normalize, into: out)
                }
            }
            return (first, false)
        case .slerp:
            let base = byName[config.baseModel!]!
            let other = models.first { $0 !== base }!
            let tv = try config.number("t", model: nil, tensor: name, t: t, default: nil)
            var a = try base.floats(name)
            let b = try other.floats(name)
            var spherical = false
            b.withUnsafeBufferPointer { bp in
                a.withUnsafeMutableBufferPointer { ap in
                    spherical = Kernels.slerp(t: tv, UnsafeBufferPointer(ap), bp, into: ap)
                }
            }
            return (a, spherical)
        default:
            let base = byName[config.baseModel!]!
            var b = try base.floats(name)
            var deltas: [[Float]] = []
            var weights: [Double] = []
            var scales: [Double] = []
            let rescale = try config.rescale(tensor: name, t: t)
            for m in models where m !== base {
                let weight = try config.number("weight", model: m.name, tensor: name, t: t, default: nil)
                let density = try config.number("density", model: m.name, tensor: name, t: t, default: 1)
                var d = try m.floats(name)
                var scale = 1.0
                try d.withUnsafeMutableBufferPointer { dp in
                    b.withUnsafeBufferPointer { bp in
                        for i in 0..<dp.count { dp[i] -= bp[i] }
                    }
                    guard density < 1 else { return }
                    switch config.method.sparsification {
                    case .none:
                        return
                    case .magnitude:
                        let before = rescale == .l1 ? Kernels.l1(UnsafeBufferPointer(dp)) : 0
                        let k = density <= 0 || dp.count == 0 ? 0 : max(1, Int(density * Double(dp.count)))
                        Kernels.keepLargest(dp, k: k)
                        scale = try sparsifiedScale(rescale, before: before, after: dp, density: density)
                    case .random:
                        let index = config.models.firstIndex { $0.name == m.name } ?? 0
                        let mask = try masks.mask(model: m.name, modelIndex: index, tensor: name, count: dp.count, density: density)
                        guard mask.count == dp.count else {
                            throw LoomError("drop mask for \(m.name).\(name) has \(mask.count) entries, the tensor \(dp.count)")
                        }
                        let before = rescale == .l1 ? Kernels.l1(UnsafeBufferPointer(dp)) : 0
                        for i in 0..<dp.count where mask[i] == 0 { dp[i] = 0 }
                        scale = try sparsifiedScale(rescale, before: before, after: dp, density: density)
                    }
                }
                deltas.append(d)
                weights.append(weight)
                scales.append(scale)
            }
            let normalize = try config.flag("normalize", tensor: name, t: t, default: config.method.defaultNormalize)
            let lambda = try config.number("lambda", model: nil, tensor: name, t: t, default: 1)
            let consensus = config.method.usesSignConsensus
            withBuffers(deltas) { ds in
                b.withUnsafeMutableBufferPointer { bp in
                    Kernels.taskArithmetic(
                        base: bp, deltas: ds, weights: weights, scales: scales, consensus: consensus, normalize: normalize,
                        lambda: lambda)
                }
            }
            return (b, false)
        }
    }

    private static func sparsifiedScale(
        _ rescale: DARERescale, before: Double, after: UnsafeMutableBufferPointer<Float>, density: Double
    ) throws -> Double {
        switch rescale {
        case .none: return 1
        case .l1: return Kernels.l1Scale(before: before, after: Kernels.l1(UnsafeBufferPointer(after)))
        case .paper: return density > 0 ? 1 / density : 1
        }
    }

    /// Calls `body` with buffer pointers to every array (kept alive for the call).
    private static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
        func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) throws -> R {
            if i == arrays.count { return try body(acc) }
            return try arrays[i].withUnsafeBufferPointer { try go(i + 1, acc + [$0]) }
        }
        return try go(0, [])
    }

    /// Writes Float values as `dtype`, converting in blocks.
    static func write(_ values: [Float], as dtype: DType, name: String, to writer: SafeTensorsWriter) throws {
        if dtype == .f32 {
            try values.withUnsafeBytes { try writer.append(name, bytes: $0) }
            return
        }
        try writer.beginPart(name)
        let block = 1 << 18
        var start = 0
        try values.withUnsafeBufferPointer { v in
            while start < v.count {
                let end = min(v.count, start + block)
                switch dtype {
                case .bf16:
                    let out = (start..<end).map { Kernels.bf16(v[$0]) }
                    try out.withUnsafeBytes { try writer.writePart($0) }
                case .f16:
                    let out = (start..<end).map { Float16(v[$0]).bitPattern }
                    try out.withUnsafeBytes { try writer.writePart($0) }
                case .f64:
                    let out = (start..<end).map { Double(v[$0]) }
                    try out.withUnsafeBytes { try writer.writePart($0) }
                default:
                    throw LoomError("cannot write tensor '\(name)' as \(dtype.rawValue)")
                }
                start = end
            }
        }
    }

    /// Copies config.json, setting `torch_dtype` (and transformers 5's `dtype`) when the output dtype differs.
    static func copyConfig(from model: HFModel, to output: String, dtype: DType?) throws {
        let src = FS.join(model.directory, "config.json")
        guard FS.exists(src) else {
            Log.warn("model '\(model.name)' has no config.json; the output has none either")
            return
        }
        let torchName: [DType: String] = [.f32: "float32", .bf16: "bfloat16", .f16: "float16"]
        if let dtype, let want = torchName[dtype], case .object(var o)? = model.config {
            var changed = false
            for k in ["torch_dtype", "dtype"] where o[k]?.stringValue != nil && o[k]?.stringValue != want {
                o[k] = .string(want)
                changed = true
            }
            if changed {
                try FS.writeAtomically(JSONValue.object(o).jsonString + "\n", to: FS.join(output, "config.json"))
                return
            }
        }
        try copyFile(src, to: FS.join(output, "config.json"))
    }

    static func copyFile(_ src: String, to dst: String) throws {
        let f = try BufferedFile(creating: dst + ".tmp")
        try f.append(contentsOfFile: src)
        try f.close()
        try FS.rename(dst + ".tmp", dst)
    }
}
