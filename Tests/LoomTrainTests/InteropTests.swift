// Checkpoints cross between Loom and transformers both ways with the same logits (within rounding: bounds from the
// float64 reference of ErrorBounds.swift): a model written by transformers' save_pretrained loads in Loom, and a model
// Loom writes loads with from_pretrained. Runs when python3 with torch and transformers is installed
// (Benchmarks/peers/hf_interop.py), skips otherwise.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

func pythonHas(_ modules: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import \(modules)"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

func runPythonChecked(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + args
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    if p.terminationStatus != 0 {
        throw LoomError("python3 \(args.joined(separator: " ")) failed: \(String(decoding: data, as: UTF8.self).suffix(800))")
    }
}

let interopScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Benchmarks/peers/hf_interop.py").path

final class CheckpointInteropTests: XCTestCase {
    override func setUpWithError() throws {
        guard pythonHas("torch, transformers, safetensors") else {
            throw XCTSkip("python3 with torch and transformers not installed: interop checks skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
        }
        Compute.configure(threads: 2)
    }

    func logits(_ m: LlamaModel, _ ids: [Int32], rows: Int) -> [Float] {
        let b = Batch(rows: rows, length: ids.count / rows, tokens: ids)
        let p = m.forward(b)
        return Array(UnsafeBufferPointer(start: p, count: ids.count * m.config.vocabSize))
    }

    /// Loom and transformers are two float32 evaluations: per logit 8·√(sd_loom² + sd_torch²), each from the float64
    /// reference `r` (transformers adds its RMSNorm and softmax sums in float32; both sides' RoPE tables included).
    func bound(_ r: ReferenceLlama, _ ids: [Int32], rows: Int) -> [Double] {
        let b = Batch(rows: rows, length: ids.count / rows, tokens: ids)
        r.loomKernels = true
        r.forward(b)
        let loom = r.logits.sd
        r.loomKernels = false
        r.forward(b)
        return differenceBound(loom, r.logits.sd)
    }

    func testTransformersCheckpointLoadsInLoom() throws {
        for (name, args) in [("untied-gqa", ["--kv-heads", "2"]), ("tied-mha", ["--tied", "--kv-heads", "4"])] {
            let dir = tempDir("hf-\(name)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try runPythonChecked([interopScript, "write", dir] + args)
            let m = try LlamaModel.load(directory: dir)
            XCTAssertEqual(m.config.tieWordEmbeddings, name.hasPrefix("tied"))
            XCTAssertEqual(m.config.ropeTheta, 5000)
            let ex = try tensors(dir + "/expected.safetensors")
            let ids = ex["input_ids"]!.int64s().map(Int32.init)
            let got = logits(m, ids, rows: 2)
            // Per logit: 8·√(sd_loom² + sd_torch²), from the float64 reference (bound(_:_:rows:)).
            let r = assertWithinBound(doubles(got), doubles(ex["logits"]!.floats()), bound(ReferenceLlama(model: m), ids, rows: 2), name)
            print("transformers checkpoint \(name) in Loom: logits' worst difference/bound \(r)")
        }
    }

    /// Small configs of each family Loom writes: Llama (GQA), Qwen 2 (q/k/v biases, tied) and Gemma 3 (its norms,
    /// q/k norms, a sliding window shorter than the sequence, two rotary bases, GELU, tied).
    static var familyConfigs: [(String, LlamaConfig)] {
        let llama = LlamaConfig(vocabSize: 200, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2, maxPositions: 64)
        var qwen = LlamaConfig(vocabSize: 200, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2, ropeTheta: 1e6, rmsNormEps: 1e-6, maxPositions: 64, tieWordEmbeddings: true)
        qwen.family = .qwen2
        qwen.attentionBias = true
        var gemma = LlamaConfig(vocabSize: 200, hiddenSize: 32, intermediateSize: 64, numLayers: 3, numHeads: 4, numKVHeads: 1, headDim: 16, ropeTheta: 1e6, rmsNormEps: 1e-6, maxPositions: 64, tieWordEmbeddings: true)
        gemma.family = .gemma3
        gemma.queryPreAttnScalar = 16
        gemma.slidingWindow = 6
        gemma.slidingLayers = [true, true, false]
        gemma.localRopeTheta = 10000
        gemma.padTokenId = 0
        return [("llama", llama), ("qwen2", qwen), ("gemma3", gemma)]
    }

    /// A model of each family written by Loom loads with from_pretrained and gives Loom's logits.
    func testLoomCheckpointLoadsInTransformers() throws {
        for (name, c) in Self.familyConfigs {
            let dir = tempDir("loom-out-\(name)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let m = try LlamaModel(config: c)
            m.initialize(seed: 21, std: 0.1)
            // Norm weights away from their initial values, so (1 + w) versus w would show.
            for info in m.params.infos where info.shape.count == 1 {
                for j in 0..<info.count { m.params.values.pointer[info.offset + j] += Float((j % 7) - 3) / 50 }
            }
            try m.save(directory: dir + "/model")
            let ids = randomTokens(2 * 24, vocab: 200, seed: 4)
            let mine = logits(m, ids, rows: 2)
            let out = dir + "/logits.safetensors"
            try SafeTensors.write([("input_ids", Tensor(int64s: ids.map(Int64.init), shape: [2, 24]))], to: out)
            try runPythonChecked([interopScript, "logits", dir + "/model", out])
            let hf = try tensors(out)["logits_hf"]!.floats()
            if c.family == .llama {
                // Per logit: 8·√(sd_loom² + sd_torch²), from the float64 reference (bound(_:_:rows:)).
                let r = assertWithinBound(doubles(mine), doubles(hf), bound(ReferenceLlama(model: m), ids, rows: 2), name)
                print("Loom checkpoint in transformers (\(name)): logits' worst difference/bound \(r)")
            } else {
                // ReferenceLlama has no Qwen 2 or Gemma 3 layers: the issue's bar, 1e-4 (the fixtures README's
                // tolerance for an f32 implementation; the gemma3/qwen2 fixture tests measure ~3e-6).
                XCTAssertLessThanOrEqual(maxAbs(mine, hf), 1e-4, name)
            }
        }
    }

    /// A LoRA adapter written by Loom, loaded with PEFT onto the same base, gives Loom's logits (each family).
    func testLoRAAdapterLoadsWithPEFT() throws {
        guard pythonHas("peft") else { throw XCTSkip("peft not installed: LoRA interop check skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)") }
        for (name, c) in Self.familyConfigs {
            let dir = tempDir("peft-\(name)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let m = try LlamaModel(config: c)
            m.initialize(seed: 22, std: 0.1)
            try m.save(directory: dir + "/base")
            let lora = try LoRA(config: LoRAConfig(rank: 4, alpha: 8, dropout: 0.1, seed: 2), model: c)
            var r = SplitMix64(seed: 1)
            for info in lora.params.infos where info.name.hasSuffix("lora_B.weight") {
                for j in 0..<info.count { lora.params.values.pointer[info.offset + j] = Float(Int(r.next() % 2001) - 1000) / 5000 }
            }
            try lora.save(directory: dir + "/adapter", baseModel: dir + "/base")
            lora.training = false
            m.lora = lora
            let ids = randomTokens(2 * 16, vocab: 200, seed: 8)
            let mine = logits(m, ids, rows: 2)
            let out = dir + "/logits.safetensors"
            try SafeTensors.write([("input_ids", Tensor(int64s: ids.map(Int64.init), shape: [2, 16]))], to: out)
            try runPythonChecked([interopScript, "peft", dir + "/base", dir + "/adapter", out])
            let hf = try tensors(out)["logits_hf"]!.floats()
            if c.family == .llama {
                // As above, with the adapter path's own rounding carried as weight errors (loraReference).
                let worst = assertWithinBound(doubles(mine), doubles(hf), bound(loraReference(m, lora, merged: false), ids, rows: 2), "PEFT")
                print("Loom LoRA adapter in PEFT: logits' worst difference/bound \(worst)")
            } else {
                XCTAssertLessThanOrEqual(maxAbs(mine, hf), 1e-4, name)  // as above
            }
        }
    }
}
