// Merging on models the tests write themselves: formulas checked by hand, parameter filters and gradients,
// seeded DARE masks, dtypes, sharded inputs and outputs, config errors.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomMerge

/// Writes a tiny Hugging Face model directory: config.json and model.safetensors (or shards).
func writeModel(
    _ dir: String, _ tensors: [(String, [Float], [Int])], layers: Int = 2, shardBytes: Int = 0, extra: [String: String] = [:]
) throws {
    try FS.makeDirectory(dir)
    try FS.writeAtomically(
        #"{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": \#(layers), "torch_dtype": "float32"}"#,
        to: dir + "/config.json")
    for (k, v) in extra { try FS.writeAtomically(v, to: dir + "/" + k) }
    let ts = tensors.map { (name: $0.0, tensor: Tensor(floats: $0.1, shape: $0.2)) }
    if shardBytes == 0 {
        try SafeTensors.write(ts, metadata: [("format", "pt")], to: dir + "/model.safetensors")
        return
    }
    // Shards of at most shardBytes, and the index.
    var shards: [[(name: String, tensor: Tensor)]] = [[]]
    var size = 0
    for t in ts.sorted(by: { $0.name < $1.name }) {
        if size > 0 && size + t.tensor.bytes.count > shardBytes {
            shards.append([])
            size = 0
        }
        shards[shards.count - 1].append(t)
        size += t.tensor.bytes.count
    }
    var map = JSONObject()
    for (i, s) in shards.enumerated() {
        let file = "model-\(String(i + 1).leftPadded(5))-of-\(String(shards.count).leftPadded(5)).safetensors"
        try SafeTensors.write(s, to: dir + "/" + file)
        for t in s { map.append(t.name, .string(file)) }
    }
    let index: JSONValue = ["metadata": ["total_size": .int(size)], "weight_map": .object(map)]
    try FS.writeAtomically(index.jsonString, to: dir + "/model.safetensors.index.json")
}

final class MergeTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("unit") }
    override func tearDown() { FS.remove(dir) }

    func merge(_ yaml: String, to output: String = "out", options: MergeOptions? = nil) throws -> SafeTensorsFile {
        var o = options ?? MergeOptions()
        o.searchDirectories = [dir]
        let config = try MergeConfig.parse(yaml: yaml, file: dir + "/merge.yml")
        try Merger.merge(config, output: dir + "/" + output, options: o)
        return try SafeTensorsFile(path: dir + "/" + output + "/model.safetensors")
    }

    /// Three two-layer models with attention, MLP, norm and embedding tensors; values from SplitMix64.
    func makeModels(count: Int = 3, shardBytes: Int = 0) throws -> [[String: [Float]]] {
        let shapes: [(String, [Int])] = [
            ("model.embed_tokens.weight", [8, 4]), ("model.layers.0.self_attn.q_proj.weight", [4, 4]),
            ("model.layers.0.mlp.up_proj.weight", [6, 4]), ("model.layers.1.self_attn.q_proj.weight", [4, 4]),
            ("model.layers.1.mlp.up_proj.weight", [6, 4]), ("model.norm.weight", [4]),
        ]
        var rng = SplitMix64(seed: 7)
        var all: [[String: [Float]]] = []
        for m in 0..<count {
            var ts: [(String, [Float], [Int])] = []
            var byName: [String: [Float]] = [:]
            for (name, shape) in shapes {
                let v = (0..<shape.reduce(1, *)).map { _ in Float(Double(rng.next() >> 11) * 0x1p-53 - 0.5) }
                ts.append((name, v, shape))
                byName[name] = v
            }
            try writeModel(dir + "/m\(m)", ts, shardBytes: shardBytes, extra: m == 0 ? ["tokenizer.json": "{\"model\": {}}"] : [:])
            all.append(byName)
        }
        return all
    }

    func testLinearIsTheWeightedMean() throws {
        let ms = try makeModels()
        let got = try merge(
            """
            merge_method: linear
            models:
              - model: m0
                parameters: {weight: 1.0}
              - model: m1
                parameters: {weight: 3.0}
            dtype: float32
            """)
        for (name, a) in ms[0] {
            let want = zip(a, ms[1][name]!).map { (Double($0) + 3 * Double($1)) / 4 }
            // Computed in double and rounded once to float32: within half an ulp, u·|y|.
            for (x, y) in zip(try got.floats(name), want) { XCTAssertEqual(Double(x), y, accuracy: 0x1p-24 * abs(y)) }
        }
        // config.json from the first model, tokenizer files copied, the config kept beside the weights.
        XCTAssertTrue(FS.exists(dir + "/out/config.json"))
        XCTAssertEqual(try FS.readText(dir + "/out/tokenizer.json"), "{\"model\": {}}")
        XCTAssertTrue(try FS.readText(dir + "/out/mergekit_config.yml").contains("\"merge_method\":\"linear\""))
    }

    /// mergekit's per-tensor filters and gradients: t for self_attn runs 0 → 1 across the two layers, the rest
    /// takes 0.5. Layer 0 attention is the base model, layer 1 attention the other one.
    func testSlerpFiltersAndGradients() throws {
        let ms = try makeModels()
        let got = try merge(
            """
            merge_method: slerp
            base_model: m0
            models:
              - model: m0
              - model: m1
            parameters:
              t:
                - filter: self_attn
                  value: [0, 1]
                - value: 0.5
            dtype: float32
            """)
        let q0 = try got.floats("model.layers.0.self_attn.q_proj.weight")
        let q1 = try got.floats("model.layers.1.self_attn.q_proj.weight")
        // t = 0 and 1: the coefficients are sin(θ)/sin(θ) = 1 and sin(0) = 0 exactly, so the inputs come back exactly.
        XCTAssertEqual(q0, ms[0]["model.layers.0.self_attn.q_proj.weight"]!)
        XCTAssertEqual(q1, ms[1]["model.layers.1.self_attn.q_proj.weight"]!)
        // t = 0.5 elsewhere: the spherical midpoint (sin(θ/2)/sin θ on both sides).
        let a = ms[0]["model.layers.0.mlp.up_proj.weight"]!.map(Double.init)
        let b = ms[1]["model.layers.0.mlp.up_proj.weight"]!.map(Double.init)
        let na = sqrt(a.reduce(0) { $0 + $1 * $1 }), nb = sqrt(b.reduce(0) { $0 + $1 * $1 })
        let theta = acos(zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (na * nb))
        let c = sin(theta / 2) / sin(theta)
        for (x, (p, q)) in zip(try got.floats("model.layers.0.mlp.up_proj.weight"), zip(a, b)) {
            // The same double formula rounded once to float32 (u·|y|), plus double rounding in c (a few 2^-52).
            XCTAssertEqual(Double(x), c * p + c * q, accuracy: 0x1p-24 * abs(c * p + c * q) + 0x1p-50 * (abs(c * p) + abs(c * q)))
        }
    }

    func testParameterEvaluation() {
        let grad = ParameterSetting.list([.int(0), .double(0.5), .int(1)])
        // One linear interpolation in double between list entries: within a few ulps of 1 (2^-50).
        XCTAssertEqual(grad.evaluate(tensor: "x", t: 0.25)?.doubleValue ?? -1, 0.25, accuracy: 0x1p-50)
        XCTAssertEqual(grad.evaluate(tensor: "x", t: 1)?.doubleValue ?? -1, 1, accuracy: 0x1p-50)
        let conds = ParameterSetting.conditions([
            .init(filter: "mlp", value: .scalar(.double(0.9))), .init(filter: nil, value: .scalar(.double(0.1))),
        ])
        XCTAssertEqual(conds.evaluate(tensor: "model.layers.3.mlp.up_proj.weight", t: 0)?.doubleValue, 0.9)
        XCTAssertEqual(conds.evaluate(tensor: "model.norm.weight", t: 0)?.doubleValue, 0.1)
        XCTAssertNil(ParameterSetting.conditions([.init(filter: "mlp", value: .scalar(.int(1)))]).evaluate(tensor: "a", t: 0))
        XCTAssertEqual(Merger.layerPosition("model.layers.3.mlp.up_proj.weight", layers: 4), 1)
        XCTAssertEqual(Merger.layerPosition("model.layers.1.mlp.up_proj.weight", layers: 3), 0.5)
        XCTAssertEqual(Merger.layerPosition("lm_head.weight", layers: 4), 0)
    }

    /// The chat-vector recipe: CP + (chat − base) is task_arithmetic with weights 1 and 1.
    func testChatVector() throws {
        let ms = try makeModels()
        let got = try merge(
            """
            merge_method: task_arithmetic
            base_model: m0        # the base the chat model was tuned from
            models:
              - model: m1         # continued pre-training on the domain
                parameters: {weight: 1.0}
              - model: m2         # the chat model
                parameters: {weight: 1.0}
            dtype: float32
            """)
        for (name, base) in ms[0] {
            for (i, x) in try got.floats(name).enumerated() {
                // Each delta θ − base rounds once in float32 (u·|δ|), the double sum once more on output (u·|y|).
                let (d1, d2) = (Double(ms[1][name]![i]) - Double(base[i]), Double(ms[2][name]![i]) - Double(base[i]))
                XCTAssertEqual(Double(x), Double(base[i]) + d1 + d2, accuracy: 0x1p-24 * (abs(Double(base[i]) + d1 + d2) + abs(d1) + abs(d2)))
            }
        }
    }

    /// TIES on hand-made numbers: trim to the top half by magnitude, elect the sign of the weighted sum, average
    /// the agreeing entries over their weights.
    func testTiesByHand() throws {
        try writeModel(dir + "/b", [("w", [0, 0, 0, 0], [4])])
        try writeModel(dir + "/x", [("w", [0.4, -0.1, 0.3, -0.8], [4])])
        try writeModel(dir + "/y", [("w", [-0.2, 0.5, 0.1, 0.6], [4])])
        let got = try merge(
            """
            merge_method: ties
            base_model: b
            models:
              - model: x
                parameters: {weight: 1.0, density: 0.5}
              - model: y
                parameters: {weight: 1.0, density: 0.5}
            """)
        // Trimmed: x → [0.4, 0, 0, -0.8], y → [0, 0.5, 0, 0.6]. Signs of sums: +, +, + (0 ≥ 0), − (−0.2).
        // Kept: [0.4], [0.5], none, [−0.8] → divided by the kept weights (1, 1, 0 → 1, 1).
        let w = try got.floats("w")
        // Each kept value is one input delta (δ − 0 exact) times weight 1 over a kept weight of 1: exact.
        XCTAssertEqual(w, [0.4, 0.5, 0, -0.8] as [Float])
    }

    func testKeepLargestMatchesSorting() {
        var rng = SplitMix64(seed: 3)
        for n in [1, 2, 7, 100, 5000] {
            var xs = (0..<n).map { _ in Float(Double(rng.next() >> 11) * 0x1p-53 - 0.5) }
            if n > 4 { xs[1] = xs[0]; xs[2] = -xs[0] }  // equal magnitudes
            for k in [0, 1, n / 3, n / 2, n - 1, n] {
                var y = xs
                y.withUnsafeMutableBufferPointer { Kernels.keepLargest($0, k: k) }
                let threshold = xs.map { abs($0) }.sorted(by: >)[max(0, min(n - 1, k - 1))]
                XCTAssertEqual(y.filter { $0 != 0 }.count, min(k, n), "n \(n) k \(k)")
                for (a, b) in zip(xs, y) where b != 0 { XCTAssertEqual(a, b); XCTAssertGreaterThanOrEqual(abs(a), threshold) }
                for (a, b) in zip(xs, y) where abs(a) > threshold { XCTAssertEqual(a, b, "n \(n) k \(k)") }
            }
        }
    }

    /// Loom's own DARE masks: the same seed gives the same bytes, another seed another merge; about `density` of
    /// each delta is kept.
    func testSeededDareIsDeterministic() throws {
        _ = try makeModels()
        func yaml(_ seed: Int) -> String {
            """
            merge_method: dare_ties
            base_model: m0
            random_seed: \(seed)
            models:
              - model: m1
                parameters: {weight: 0.5, density: 0.3}
              - model: m2
                parameters: {weight: 0.5, density: 0.3}
            """
        }
        _ = try merge(yaml(1), to: "a")
        _ = try merge(yaml(1), to: "b")
        _ = try merge(yaml(2), to: "c")
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/a/model.safetensors"))
        XCTAssertEqual(a, try Data(contentsOf: URL(fileURLWithPath: dir + "/b/model.safetensors")))
        XCTAssertNotEqual(a, try Data(contentsOf: URL(fileURLWithPath: dir + "/c/model.safetensors")))
        let m = try SeededDropMask(seed: 9).mask(model: "m", modelIndex: 0, tensor: "t", count: 100_000, density: 0.3)
        // Not rounding: the kept fraction of 100,000 Bernoulli(0.3) draws has sd √(0.21/1e5) = 0.0015; 0.01 is 7 sd.
        XCTAssertEqual(Double(m.reduce(0) { $0 + Int($1) }) / 100_000, 0.3, accuracy: 0.01)
        XCTAssertNotEqual(m, try SeededDropMask(seed: 9).mask(model: "m", modelIndex: 1, tensor: "t", count: 100_000, density: 0.3))
    }

    /// bfloat16 output: every value is the f32 merge rounded to nearest even; config.json says bfloat16.
    func testBFloat16Output() throws {
        _ = try makeModels()
        let yaml = """
            merge_method: linear
            models:
              - model: m0
                parameters: {weight: 0.5}
              - model: m1
                parameters: {weight: 0.5}
            dtype: %@
            """
        let f32 = try merge(yaml.replacingOccurrences(of: "%@", with: "float32"), to: "f32")
        let bf = try merge(yaml.replacingOccurrences(of: "%@", with: "bfloat16"), to: "bf16")
        for name in f32.names {
            XCTAssertEqual(bf.entry(name)?.dtype, .bf16)
            let raw = try bf.tensor(name).bytes
            let want = try f32.floats(name).map(Kernels.bf16)
            let got = (0..<want.count).map { UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8 }
            XCTAssertEqual(got, want, name)
        }
        XCTAssertTrue(try FS.readText(dir + "/bf16/config.json").contains("\"torch_dtype\":\"bfloat16\""))
        XCTAssertEqual(Kernels.bf16(1.0), 0x3F80)
        XCTAssertEqual(Kernels.bf16(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie: to even
        XCTAssertEqual(Kernels.bf16(Float(bitPattern: 0x3F81_8000)), 0x3F82)
    }

    /// Sharded inputs are read through their index; a small --max-shard-size writes shards and an index that give
    /// the same tensors as one file.
    func testShardedInputsAndOutputs() throws {
        _ = try makeModels(shardBytes: 200)
        let yaml = """
            merge_method: ties
            base_model: m0
            models:
              - model: m1
                parameters: {weight: 0.6, density: 0.5}
              - model: m2
                parameters: {weight: 0.4, density: 0.5}
            """
        let whole = try merge(yaml, to: "whole")
        var o = MergeOptions()
        o.maxShardBytes = 300
        o.searchDirectories = [dir]
        try Merger.merge(try MergeConfig.parse(yaml: yaml, file: "x.yml"), output: dir + "/sharded", options: o)
        XCTAssertFalse(FS.exists(dir + "/sharded/model.safetensors"))
        let index = try JSONValue.parse(try FS.readText(dir + "/sharded/model.safetensors.index.json"))
        let shards = Set((index["weight_map"]?.objectValue ?? JSONObject()).compactMap { $0.value.stringValue })
        XCTAssertGreaterThan(shards.count, 1)
        XCTAssertTrue(shards.allSatisfy { FS.exists(dir + "/sharded/" + $0) })
        let reread = try HFModel(name: "sharded", directory: dir + "/sharded")
        XCTAssertEqual(reread.names, whole.names.sorted())
        for name in whole.names { XCTAssertEqual(try reread.floats(name), try whole.floats(name)) }
    }

    func testConfigErrorsNameFileAndLine() throws {
        _ = try makeModels()
        func error(_ yaml: String) -> String {
            do {
                _ = try merge(yaml)
                return "no error"
            } catch { return "\(error)" }
        }
        let e1 = error("merge_method: linear\nmodels:\n  - model: m0\n    parameters: {weight: 1}\n  - model: m1\n")
        XCTAssertTrue(e1.contains("merge.yml:") && e1.contains("m1") && e1.contains("weight"), e1)
        let e2 = error("merge_method: frankenmerge\nmodels: [m0]\n")
        XCTAssertTrue(e2.contains("merge.yml:1") && e2.contains("available: linear"), e2)
        let e3 = error("merge_method: slerp\nbase_model: m0\nmodels: [m0, m1, m2]\nparameters: {t: 0.5}\n")
        XCTAssertTrue(e3.contains("exactly two"), e3)
        let e4 = error("merge_method: linear\nslices: []\nmodels: [m0]\n")
        XCTAssertTrue(e4.contains("merge.yml:2") && e4.contains("slices"), e4)
        let e5 = error("merge_method: task_arithmetic\nbase_model: m0\nmodels:\n  - model: nowhere\n    parameters: {weight: 1}\n")
        XCTAssertTrue(e5.contains("'nowhere' not found"), e5)
        let e6 = error("merge_method: linear\nmodels:\n  - model: m0\n    parameters: {weight: 1}\n  - model: m1\n    parameters: {weight: 1}\ndtype: float8\n")
        XCTAssertTrue(e6.contains("merge.yml:7") && e6.contains("float8"), e6)
    }

    /// A tensor missing from one model, or a different shape, stops the merge with a message naming both.
    func testMismatchedModels() throws {
        try writeModel(dir + "/p", [("a", [1, 2], [2]), ("b", [1], [1])])
        try writeModel(dir + "/q", [("a", [1, 2], [2])])
        try writeModel(dir + "/r", [("a", [1, 2, 3], [3]), ("b", [1], [1])])
        let head = "merge_method: linear\nmodels:\n  - model: p\n    parameters: {weight: 1}\n"
        XCTAssertThrowsError(try merge(head + "  - model: q\n    parameters: {weight: 1}\n")) {
            XCTAssertTrue("\($0)".contains("'q'") && "\($0)".contains("'b'"), "\($0)")
        }
        XCTAssertThrowsError(try merge(head + "  - model: r\n    parameters: {weight: 1}\n")) {
            XCTAssertTrue("\($0)".contains("shape [3]"), "\($0)")
        }
        // Writing over an input would delete its weights before they are read.
        XCTAssertThrowsError(try merge(head + "  - model: p\n    parameters: {weight: 1}\n", to: "p")) {
            XCTAssertTrue("\($0)".contains("is model 'p'"), "\($0)")
        }
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/p/model.safetensors").floats("a"), [1, 2])
    }
}

/// The pipeline stage and the `loom` binary (built beside this test bundle).
final class MergeStageTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("stage") }
    override func tearDown() { FS.remove(dir) }

    func models() throws {
        try writeModel(dir + "/base", [("w", [0, 1, 2, 3], [4]), ("ids", [0, 0], [2])])
        try writeModel(dir + "/ft", [("w", [1, 1, 1, 1], [4]), ("ids", [0, 0], [2])])
    }

    func testStageWritesModelAndSkipsWhenUpToDate() throws {
        try models()
        let yaml = "merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft\n    parameters: {weight: 0.5}\n"
        let config = try MergeConfig.parse(yaml: yaml, file: "m.yml")
        let stage = MergeStage(config: config, searchDirectories: [dir])
        let r1 = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        XCTAssertFalse(r1.skipped)
        XCTAssertEqual(r1.manifest.counts["tensors"]?.intValue, 2)
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/out/model/model.safetensors").floats("w"), [0.5, 1, 1.5, 2])
        XCTAssertTrue(try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true)).skipped)
        // A model inside an earlier step's directory: that step's manifest is the input.
        let again = MergeStage(
            config: try MergeConfig.parse(
                yaml: "merge_method: linear\nmodels:\n  - model: out\n    parameters: {weight: 1}\n", file: "n.yml"),
            searchDirectories: [dir])
        XCTAssertEqual(again.inputs, [.stage(dir + "/out")])
    }

    static var loom: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("loom").path
    }

    func run(_ args: [String], in cwd: String) throws -> (Int32, String) {
        guard FileManager.default.isExecutableFile(atPath: Self.loom) else { throw XCTSkip("\(Self.loom) not built") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.loom)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        let log = dir + "/.log-\(UUID().uuidString.prefix(6))"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: log)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try FS.readText(log))
    }

    /// A model given as a .gguf file (the tiny Gemma 3 fixture) is imported and merged: two halves of one model
    /// are that model (bit for bit: x/2 + x/2 = x in float32).
    func testGGUFModelsMerge() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: GGUF merge check skipped") }
        try FileManager.default.copyItem(atPath: shared + "/fixtures/gguf/gemma3-tiny-f32.gguf", toPath: dir + "/tiny.gguf")
        try FS.writeAtomically(
            "merge_method: linear\nmodels:\n  - model: tiny.gguf\n    parameters: {weight: 0.5}\n  - model: tiny.gguf\n    parameters: {weight: 0.5}\ndtype: float32\n",
            to: dir + "/g.yml")
        setenv("LOOM_CACHE", dir + "/cache", 1)
        defer { unsetenv("LOOM_CACHE") }
        let (status, text) = try run(["merge", "g.yml", "-o", "merged"], in: dir)
        XCTAssertEqual(status, 0, text)
        let imported = try FileManager.default.contentsOfDirectory(atPath: dir + "/cache/gguf").first { !$0.contains(".tmp") }
        let original = try SafeTensorsFile(path: dir + "/cache/gguf/" + XCTUnwrap(imported) + "/model.safetensors")
        let merged = try SafeTensorsFile(path: dir + "/merged/model.safetensors")
        for e in original.entries { XCTAssertEqual(try merged.floats(e.name), try original.floats(e.name), e.name) }
        XCTAssertTrue(FS.exists(dir + "/merged/tokenizer.json"))
    }

    func testCommandAndPipelineStep() throws {
        try models()
        try FS.writeAtomically(
            "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: ft\n    parameters: {weight: 1}\ndtype: bfloat16\n",
            to: dir + "/linear.yml")
        let (status, text) = try run(["merge", "linear.yml", "-o", "merged"], in: dir)
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("linear: 2 tensors"), text)
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/merged/model.safetensors").floats("w"), [0.5, 1, 1.5, 2])
        let (bad, message) = try run(["merge", "linear.yml", "-o", "x", "--max-shard-size", "lots"], in: dir)
        XCTAssertEqual(bad, 1)
        XCTAssertTrue(message.contains("--max-shard-size lots"), message)

        try FS.writeAtomically(
            """
            name: merges
            output: out
            steps:
              - merge: { config: linear.yml }
              - merge:
                  merge_method: task_arithmetic
                  base_model: base
                  models:
                    - model: out/01-merge
                      parameters: {weight: 1.0}
              - merge:
                  merge_method: linear
                  models:
                    - model: "@1"
                      parameters: {weight: 1.0}
                    - model: "@merge"
                      parameters: {weight: 3.0}
            """, to: dir + "/pipeline.yaml")
        let (ps, ptext) = try run(["run", "pipeline.yaml", "-q"], in: dir)
        XCTAssertEqual(ps, 0, ptext)
        // base + ((base + ft) / 2 − base) = (base + ft) / 2, written as f32: the base model's dtype (step 1 wrote bf16).
        let w = try SafeTensorsFile(path: dir + "/out/02-merge/model/model.safetensors")
        XCTAssertEqual(w.entry("w")?.dtype, .f32)
        XCTAssertEqual(try w.floats("w"), [0.5, 1, 1.5, 2])
        // Step 3 merges step 1 ("@1", bf16) and the latest merge before it ("@merge", step 2): equal values, so the
        // weighted mean is the same; its inputs are those steps' manifests.
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/out/03-merge/model/model.safetensors").floats("w"), [0.5, 1, 1.5, 2])
        let m3 = try JSONValue.parse(try FS.readText(dir + "/out/03-merge/manifest.json"))
        XCTAssertEqual(m3["inputs"]?.arrayValue?.compactMap { $0["kind"]?.stringValue }, ["stage", "stage"])
        let (again, atext) = try run(["run", "pipeline.yaml"], in: dir)
        XCTAssertEqual(again, 0)
        XCTAssertTrue(atext.contains("up to date"), atext)
    }
}
