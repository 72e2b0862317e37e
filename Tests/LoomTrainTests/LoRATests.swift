// LoRA adapters: zero B leaves the model unchanged, gradients of A and B match finite differences (with and
// without dropout), merging folds the adapters into the weights, PEFT files round-trip, and training moves only
// the adapters.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

/// The float64 reference (ErrorBounds.swift) of a model with adapters, as the merged weights W + s·B·A. The
/// rounding the adapter path adds is carried as weight errors: x·Aᵀ then ·Bᵀ (in + r terms) and the add onto x·Wᵀ
/// are a sum of in + r + 1 products per output, √(in + r + 1)·u·s·|B||A| per weight; merged instead, the merge
/// itself rounds each weight once in a sum of r + 1 terms: √(r + 1)·u·(|W| + s·|B||A|).
func loraReference(_ m: LlamaModel, _ lora: LoRA, merged: Bool) -> ReferenceLlama {
    var weights: [String: [Float]] = [:], errors: [String: [Double]] = [:]
    for info in m.params.infos { weights[info.name] = m.params.tensor(info).floats() }
    let s = Double(lora.config.scale), r = lora.config.rank
    var exact: [String: [Double]] = weights.mapValues { $0.map(Double.init) }
    for info in lora.params.infos where info.name.hasSuffix(".lora_A.weight") {
        let module = String(info.name.dropLast(".lora_A.weight".count))
        let a = lora.params.tensor(info).floats().map(Double.init)
        let b = lora.params.tensor(lora.params.info(module + ".lora_B.weight")!).floats().map(Double.init)
        let inDim = info.shape[1], outDim = b.count / r
        let ba = dgemm(b, a, m: outDim, n: inDim, k: r), mag = dgemm(b.map(abs), a.map(abs), m: outDim, n: inDim, k: r)
        let w = exact[module + ".weight"]!
        exact[module + ".weight"] = zip(w, ba).map { $0 + s * $1 }
        errors[module + ".weight"] = (0..<w.count).map { j in
            merged ? Double(r + 1).squareRoot() * u32 * (abs(w[j]) + s * mag[j]) : Double(inDim + r + 1).squareRoot() * u32 * s * mag[j]
        }
    }
    let ref = ReferenceLlama(config: m.config, weights: weights)
    ref.w = exact
    ref.weightErrors = errors
    return ref
}

final class LoRATests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    /// An adapter config from elsewhere may name any rank: above the smallest target's size it is an error, not an
    /// allocation of rank x (in + out) floats per projection (the fuzzing of adapter_config.json noticed it).
    func testRankAboveTheProjectionsIsAnError() throws {
        let c = try tinyModel(seed: 1).config
        XCTAssertThrowsError(try LoRA(config: LoRAConfig(rank: 1 << 40), model: c)) { e in
            XCTAssertTrue("\(e)".contains("smallest target projection"), "\(e)")
        }
        let widest = min(c.hiddenSize, c.numKVHeads * c.headDim)
        XCTAssertNoThrow(try LoRA(config: LoRAConfig(rank: widest), model: c))
    }

    func adapted(dropout: Double = 0, seed: UInt64 = 5) throws -> LlamaModel {
        let m = try tinyModel(seed: seed)
        let lora = try LoRA(config: LoRAConfig(rank: 4, alpha: 8, dropout: dropout, seed: 3), model: m.config)
        m.lora = lora
        m.trainBase = false
        return m
    }

    func randomizeB(_ lora: LoRA) {
        var r = SplitMix64(seed: 77)
        for info in lora.params.infos where info.name.hasSuffix("lora_B.weight") {
            for j in 0..<info.count { lora.params.values.pointer[info.offset + j] = Float(Int(r.next() % 2001) - 1000) / 10_000 }
        }
    }

    func logits(_ m: LlamaModel, _ b: Batch) -> [Float] {
        Array(UnsafeBufferPointer(start: m.forward(b), count: b.tokens.count * m.config.vocabSize))
    }

    func testZeroBLeavesTheModelUnchanged() throws {
        let m = try adapted()
        let b = Batch(rows: 2, length: 8, tokens: randomTokens(16, vocab: 64, seed: 1))
        let with = logits(m, b)
        m.lora = nil
        XCTAssertEqual(with, logits(m, b))
    }

    func checkFiniteDifferences(dropout: Double) throws {
        let m = try adapted(dropout: dropout)
        let lora = m.lora!
        randomizeB(lora)
        lora.dropoutSeed = 42
        let b = Batch(rows: 2, length: 8, tokens: randomTokens(16, vocab: 64, seed: 2))
        lora.params.grads.zero()
        m.params.grads.zero()
        m.forward(b)
        _ = m.crossEntropy(targets: b.targets, scale: 1 / Float(b.targetCount))
        m.backward()
        // The frozen base gets no gradient at all (its buffer, zeroed above, is never written).
        XCTAssertTrue(m.params.grads.array.allSatisfy { $0 == 0 }, "the frozen base's gradients stay zero")
        let grad = lora.params.grads.array
        func loss() -> Double {
            m.forward(b)
            return m.crossEntropy(targets: b.targets, scale: 1) / Double(b.targetCount)
        }
        // The loss's and the gradients' error scales from the reference of the adapted model (dropout changes which
        // inputs reach A, not the scale of the rounding).
        let ref = loraReference(m, lora, merged: false)
        ref.forward(b)
        let n = Double(b.targetCount)
        let lossSD = ref.crossEntropy(
            targets: b.targets, weights: [Double](repeating: 1 / n, count: b.targets.count),
            weightErrors: [Double](repeating: u32 / n, count: b.targets.count)).sd
        ref.backward()
        let s = Double(lora.config.scale), rank = lora.config.rank
        var r = SplitMix64(seed: 9)
        var worst = 0.0
        for info in lora.params.infos {
            // dA = s·Bᵀ·dW and dB = s·dW·Aᵀ with dW the merged weight's gradient: its error scale (reference) carried.
            let isA = info.name.hasSuffix(".lora_A.weight")
            let module = String(info.name.dropLast(".lora_A.weight".count))
            let other = lora.params.tensor(lora.params.info(module + (isA ? ".lora_B.weight" : ".lora_A.weight"))!).floats()
            let dW = ref.grads[module + ".weight"]!.sd, cols = ref.w[module + ".weight"]!.count / (isA ? other.count / rank : info.shape[0])
            for _ in 0..<2 {
                let j = Int(r.next() % UInt64(info.count)), i = info.offset + j
                let gradSD: Double
                if isA {  // A[k, c]: Σ_o B[o, k]·dW[o, c]
                    let (k, c) = (j / cols, j % cols)
                    gradSD = s * (0..<other.count / rank).reduce(0.0) { $0 + pow(Double(other[$1 * rank + k]) * dW[$1 * cols + c], 2) }.squareRoot()
                } else {  // B[o, k]: Σ_c dW[o, c]·A[k, c]
                    let (o, k) = (j / rank, j % rank)
                    gradSD = s * (0..<cols).reduce(0.0) { $0 + pow(dW[o * cols + $1] * Double(other[k * cols + $1]), 2) }.squareRoot()
                }
                let (numeric, bound) = centralDifference(at: lora.params.values.pointer + i, h: 1e-2, lossSD: lossSD, loss: loss)
                // The difference's own error (truncation and rounding: centralDifference) + 8 sd of the gradient's.
                let tol = bound + lambda * gradSD
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: tol, "\(info.name) dropout \(dropout)")
                worst = max(worst, abs(Double(grad[i]) - numeric) / tol)
            }
        }
        print("LoRA finite differences, dropout \(dropout): worst difference/bound \(worst)")
    }

    func testGradientsMatchFiniteDifferences() throws { try checkFiniteDifferences(dropout: 0) }
    func testGradientsMatchFiniteDifferencesWithDropout() throws { try checkFiniteDifferences(dropout: 0.3) }

    func testMergeAndPEFTFilesRoundTrip() throws {
        let m = try adapted()
        randomizeB(m.lora!)
        let b = Batch(rows: 1, length: 12, tokens: randomTokens(12, vocab: 64, seed: 3))
        let want = logits(m, b)
        let dir = tempDir("lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try m.lora!.save(directory: dir, baseModel: "base")
        let names = try SafeTensors.read(dir + "/adapter_model.safetensors").tensors.map(\.name)
        XCTAssertTrue(names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), "\(names.prefix(3))")
        let back = try LoRA.load(directory: dir, model: m.config)
        XCTAssertEqual(back.params.values.array, m.lora!.params.values.array)
        XCTAssertEqual(back.config.targets, m.lora!.config.targets)
        let lora = m.lora!
        lora.training = false
        let viaAdapter = loraReference(m, lora, merged: false), viaMerge = loraReference(m, lora, merged: true)
        viaAdapter.forward(b)
        viaMerge.forward(b)
        m.lora = nil
        lora.merge(into: m)
        // Two float32 evaluations of the same function, adapter path and merged weights: 8 sd of the difference,
        // each from the reference with its path's rounding carried as weight errors.
        let r = assertWithinBound(doubles(logits(m, b)), doubles(want), differenceBound(viaAdapter.logits.sd, viaMerge.logits.sd), "merged logits")
        print("LoRA merge: logits' worst difference/bound \(r)")
    }

    func testTrainingMovesOnlyTheAdapters() throws {
        let dir = tempDir("lora-train")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try recordsDirectory(textRecords(20), in: dir)
        var c = TrainConfig()
        c.steps = 4
        c.batchSize = 2
        c.seqLen = 64
        c.checkpointEvery = 2
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/base", options: RunOptions(quiet: true))
        c.loraRank = 4
        c.model = dir + "/base"
        c.preset = nil
        let r = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/lora", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.counts["trainable_parameters"]?.intValue, try LoRA(config: LoRAConfig(rank: 4), model: LlamaConfig.load(dir + "/base")).params.count)
        XCTAssertTrue(FS.exists(dir + "/lora/adapter_config.json"))
        XCTAssertFalse(FS.exists(dir + "/lora/model.safetensors"), "a LoRA run writes the adapter, not the model")
        let base = try LlamaModel.load(directory: dir + "/base")
        let lora = try LoRA.load(directory: dir + "/lora", model: base.config)
        XCTAssertTrue(lora.params.infos.filter { $0.name.hasSuffix("lora_B.weight") }.contains { info in
            lora.params.tensor(info).floats().contains { $0 != 0 }
        }, "B moved away from zero")
        // Killed after step 3 (checkpoint at 2) and resumed: the same adapter as an uninterrupted run.
        var stopped = try TrainStage(config: c, input: input, threads: 1)
        stopped.stopAfterStep = 3
        XCTAssertThrowsError(try StageRunner.run(stopped, directory: dir + "/lora-b", options: RunOptions(quiet: true)))
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/lora-b", options: RunOptions(quiet: true))
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/lora-a", options: RunOptions(quiet: true))
        XCTAssertEqual(try FS.readText(dir + "/lora-b/metrics.jsonl"), try FS.readText(dir + "/lora-a/metrics.jsonl"))
        XCTAssertEqual(
            FileManager.default.contents(atPath: dir + "/lora-b/adapter_model.safetensors"),
            FileManager.default.contents(atPath: dir + "/lora-a/adapter_model.safetensors"))
    }

    /// A tiny base model (DIR/base) trained a few steps, and a rank-4 adapter on it trained at a high rate (DIR/lora).
    func trainBaseAndAdapter(in dir: String) throws {
        let input = try recordsDirectory(textRecords(20), in: dir)
        var c = TrainConfig()
        c.steps = 3
        c.batchSize = 2
        c.seqLen = 64
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/base", options: RunOptions(quiet: true))
        c.loraRank = 4
        c.model = dir + "/base"
        c.preset = nil
        c.lr = 0.05
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/lora", options: RunOptions(quiet: true))
    }

    /// The sample step with `adapter`: the adapter folded into the base gives what the merged model gives.
    func testSampleStepFoldsTheAdapterIn() throws {
        let dir = tempDir("lora-sample")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trainBaseAndAdapter(in: dir)
        // The merged model written out, sampled without an adapter: the reference.
        let merged = try LlamaModel.load(directory: dir + "/base")
        try LoRA.load(directory: dir + "/lora", model: merged.config).merge(into: merged)
        try merged.save(directory: dir + "/merged")
        if FS.exists(dir + "/base/tokenizer.json") { try FileManager.default.copyItem(atPath: dir + "/base/tokenizer.json", toPath: dir + "/merged/tokenizer.json") }
        var s = SampleConfig()
        s.prompts = ["The quick brown", "A second prompt"]
        s.chat = false
        s.maxTokens = 12
        s.model = dir + "/base"
        s.adapter = dir + "/lora"
        let withAdapter = try StageRunner.run(SampleStage(config: s, threads: 1), directory: dir + "/s1", options: RunOptions(quiet: true))
        s.model = dir + "/merged"
        s.adapter = nil
        _ = try StageRunner.run(SampleStage(config: s, threads: 1), directory: dir + "/s2", options: RunOptions(quiet: true))
        s.model = dir + "/base"
        _ = try StageRunner.run(SampleStage(config: s, threads: 1), directory: dir + "/s3", options: RunOptions(quiet: true))
        XCTAssertEqual(withAdapter.manifest.records, 2)
        func completions(_ d: String) throws -> [String] {
            try FS.readText(d + "/part-00000.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0))["completion"]!.stringValue! }
        }
        XCTAssertEqual(try completions(dir + "/s1"), try completions(dir + "/s2"))
        XCTAssertNotEqual(try completions(dir + "/s1"), try completions(dir + "/s3"), "the adapter changes the samples")
    }

    /// The export step: a trained base with its adapter folded in, written as GGUF (f32), imports back as the
    /// merged model bit for bit.
    func testExportStepWritesTheMergedModelAsGGUF() throws {
        let dir = tempDir("lora-export")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trainBaseAndAdapter(in: dir)
        var e = ExportConfig()
        e.model = dir + "/base"
        e.adapter = dir + "/lora"
        e.type = "f32"
        let r = try StageRunner.run(try ExportStage(config: e), directory: dir + "/export", options: RunOptions(quiet: true))
        XCTAssertGreaterThan(r.manifest.counts["tensors"]?.intValue ?? 0, 0)
        let merged = try LlamaModel.load(directory: dir + "/base")
        try LoRA.load(directory: dir + "/lora", model: merged.config).merge(into: merged)
        let back = try LlamaModel.load(directory: try GGUFImport.modelDirectory(dir + "/export/model.gguf", cache: dir + "/cache"))
        XCTAssertEqual(back.config.numLayers, merged.config.numLayers)
        XCTAssertTrue(back.params.values.array == merged.params.values.array, "import(export(merged, f32)) is the merged model")
        XCTAssertThrowsError(try ExportStage(config: { var x = e; x.type = "q4_k"; return x }())) { XCTAssertTrue("\($0)".contains("q4_k")) }
    }
}
