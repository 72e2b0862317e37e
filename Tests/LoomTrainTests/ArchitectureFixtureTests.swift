// Gemma 3, Qwen 2 and Llama 3 (rope scaling) against reference tensors computed with transformers in float64
// ($LOOM_SHARED/fixtures/{gemma3,qwen2,llama3}-tiny and lora-gemma3-tiny, described in the fixtures README):
// logits, hidden states, causal-LM and SFT losses, every gradient, and a PEFT adapter's gradients and merge.
//
// Bounds (the fixtures README): the references are float64; an f32 transformers run differs from them by at most
// 2.9e-6 on logits, 9.1e-7 on losses and 2.5e-6 of a tensor's max |grad|. Loom's f32 forward sums the same
// products in other orders (OpenBLAS kernels by CPU), each sum of n ≤ 128 terms within n·u·Σ|terms| (u = 2^-24):
// with the fixtures' magnitudes (|logit| ≲ 3, Σ|terms| ≲ 30) that is below 2.5e-4 worst case and ~1e-6 typical, so
// the bars — logits 1e-4, loss 1e-5, gradients 1e-3 relative (‖Δ‖/‖g‖) — hold on any summation order
// with a margin of 30 or more on the typical error; hidden states are held to the logits' bound.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

final class ArchitectureFixtureTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    func fixture(_ name: String) throws -> String {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: \(name) fixture tests skipped") }
        let dir = shared + "/fixtures/" + name
        guard FileManager.default.fileExists(atPath: dir + "/io.safetensors") else { throw XCTSkip("\(dir) not present") }
        return dir
    }

    /// Forward, loss, backward of one fixture against its reference, for the plain and the SFT labels.
    func check(_ name: String, family: ModelFamily, length T: Int) throws {
        let dir = try fixture(name)
        let io = try tensors(dir + "/io.safetensors")
        let model = try LlamaModel.load(directory: dir)
        XCTAssertEqual(model.config.family, family)
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        XCTAssertEqual(ids.count, 2 * T)
        let V = model.config.vocabSize, D = model.config.hiddenSize
        for (labels, lossName, prefix) in [(nil, "loss", "grad."), (io["sft.labels"]!.int64s().map { Int32(max(-1, $0)) }, "sft.loss", "sft.grad.")] {
            let batch = Batch(rows: 2, length: T, tokens: ids, labels: labels)
            model.params.grads.zero()
            let logits = model.forward(batch)
            if labels == nil {
                let got = Array(UnsafeBufferPointer(start: logits, count: 2 * T * V))
                let err = maxAbs(got, io["logits"]!.floats())
                XCTAssertLessThanOrEqual(err, 1e-4, "\(name) logits")
                XCTAssertLessThanOrEqual(maxAbs(Array(UnsafeBufferPointer(start: model.work!.resid[0], count: 2 * T * D)), io["hidden.embed"]!.floats()), 1e-4, "\(name) embeddings")
                for l in 0..<model.config.numLayers {
                    let h = Array(UnsafeBufferPointer(start: model.work!.resid[l + 1], count: 2 * T * D))
                    XCTAssertLessThanOrEqual(maxAbs(h, io["hidden.layer.\(l)"]!.floats()), 1e-4, "\(name) layer \(l)")
                }
                print("\(name): logits max abs error \(err)")
            }
            let n = batch.targetCount
            let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(n)) / Double(n)
            XCTAssertEqual(loss, Double(io[lossName]!.floats()[0]), accuracy: 1e-5, "\(name) \(lossName)")
            model.backward()
            var worst = 0.0
            for info in model.params.infos {
                let want = try XCTUnwrap(io[prefix + info.name], "\(name) \(prefix)\(info.name)").floats()
                let e = relativeError(model.params.tensor(info, gradient: true).floats(), want)
                XCTAssertLessThanOrEqual(e, 1e-3, "\(name) \(prefix)\(info.name)")
                worst = max(worst, e)
            }
            print("\(name) \(lossName): loss error \(abs(loss - Double(io[lossName]!.floats()[0]))), worst gradient relative error \(worst)")
        }
    }

    func testGemma3MatchesTransformers() throws { try check("gemma3-tiny", family: .gemma3, length: 24) }
    func testQwen2MatchesTransformers() throws { try check("qwen2-tiny", family: .qwen2, length: 24) }
    func testLlama3RopeScalingMatchesTransformers() throws { try check("llama3-tiny", family: .llama, length: 64) }

    /// The rotary inverse frequencies equal transformers' float32 ones (bit for bit: the same float32 arithmetic).
    func testRotaryFrequenciesEqualTransformers() throws {
        for (name, key, theta, local) in [
            ("llama3-tiny", "rope.inv_freq", nil as Double?, false), ("qwen2-tiny", "rope.inv_freq", nil, false),
            ("gemma3-tiny", "rope.inv_freq.full_attention", nil, false), ("gemma3-tiny", "rope.inv_freq.sliding_attention", nil, true),
        ] {
            let dir = try fixture(name)
            let c = try LlamaConfig.load(dir)
            let want = try tensors(dir + "/io.safetensors")[key].map { $0.floats() } ?? (try tensors(dir + "/io.safetensors")["rope.inv_freq"]!.floats())
            let got = RopeScaling.inverseFrequencies(
                theta: local ? c.localRopeTheta! : (theta ?? c.ropeTheta), dim: c.headDim, scaling: local ? nil : c.ropeScaling)
            XCTAssertEqual(got, want, "\(name) \(key)")
        }
    }

    func testGemma3ConfigReadsLayerTypesAndWritesThemBack() throws {
        let dir = try fixture("gemma3-tiny")
        let c = try LlamaConfig.load(dir)
        XCTAssertEqual(c.slidingLayers, [true, true, true, false])
        XCTAssertEqual(c.slidingWindow, 8)
        XCTAssertEqual(c.localRopeTheta, 10000)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.queryPreAttnScalar, 32)
        XCTAssertEqual(c.embeddingScale, 8)
        // Written from the fields (no source), read back the same.
        var fresh = c
        fresh.source = nil
        XCTAssertEqual(try LlamaConfig.parse(fresh.json, source: "written"), c)
        // Without layer_types, transformers' period-6 default.
        var j = try JSONValue.parse(try FS.readText(dir + "/config.json")).objectValue!
        j["layer_types"] = nil
        j["num_hidden_layers"] = 12
        XCTAssertEqual(try LlamaConfig.parse(.object(j), source: "t").slidingLayers.map { $0 ? 1 : 0 }, [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0])
        j["model_type"] = "gemma3"
        XCTAssertThrowsError(try LlamaConfig.parse(.object(j), source: "t")) { XCTAssertTrue("\($0)".contains("gemma3_text")) }
    }

    /// The PEFT adapter on gemma3-tiny: loads, its gradients (base frozen) and the merged model's logits.
    func testGemma3LoRAMatchesPEFT() throws {
        let dir = try fixture("lora-gemma3-tiny")
        let io = try tensors(dir + "/io.safetensors")
        let model = try LlamaModel.load(directory: try fixture("gemma3-tiny"))
        let adapter = try LoRA.load(directory: dir, model: model.config)
        model.lora = adapter
        model.trainBase = false
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let V = model.config.vocabSize
        for (labels, lossName, prefix) in [(nil, "loss", "grad."), (io["sft.labels"]!.int64s().map { Int32(max(-1, $0)) }, "sft.loss", "sft.grad.")] {
            let batch = Batch(rows: 2, length: 24, tokens: ids, labels: labels)
            adapter.params.grads.zero()
            let logits = model.forward(batch)
            if labels == nil {
                XCTAssertLessThanOrEqual(maxAbs(Array(UnsafeBufferPointer(start: logits, count: 2 * 24 * V)), io["logits"]!.floats()), 1e-4, "adapter logits")
            }
            let n = batch.targetCount
            let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(n)) / Double(n)
            XCTAssertEqual(loss, Double(io[lossName]!.floats()[0]), accuracy: 1e-5, lossName)
            model.backward()
            var worst = 0.0, checked = 0
            for (key, t) in io where key.hasPrefix(prefix + "base_model.") {
                let info = try XCTUnwrap(adapter.params.info(String(key.dropFirst(prefix.count + LoRA.prefix.count))), key)
                let e = relativeError(adapter.params.tensor(info, gradient: true).floats(), t.floats())
                XCTAssertLessThanOrEqual(e, 1e-3, key)
                worst = max(worst, e)
                checked += 1
            }
            XCTAssertEqual(checked, 56)
            print("lora-gemma3-tiny \(lossName): worst LoRA gradient relative error \(worst)")
        }
        // Merged into the base: the merged logits.
        let merged = try LlamaModel.load(directory: try fixture("gemma3-tiny"))
        adapter.merge(into: merged)
        let logits = merged.forward(Batch(rows: 2, length: 24, tokens: ids))
        XCTAssertLessThanOrEqual(maxAbs(Array(UnsafeBufferPointer(start: logits, count: 2 * 24 * V)), io["merged.logits"]!.floats()), 1e-4, "merged logits")
    }
}

/// The KV-cache sampler on the families: logits after each chunk of the prompt equal the full forward's (the
/// fixture's transformers logits), across Gemma's sliding window (T = 24 > W = 8) and Qwen's biases.
final class FamilyGenerationTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    func testCachedLogitsEqualTheFullForward() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: fixture tests skipped") }
        for (name, T) in [("gemma3-tiny", 24), ("qwen2-tiny", 24), ("llama3-tiny", 64)] {
            let dir = shared + "/fixtures/" + name
            guard FileManager.default.fileExists(atPath: dir + "/io.safetensors") else { throw XCTSkip("\(dir) not present") }
            let io = try tensors(dir + "/io.safetensors")
            let model = try LlamaModel.load(directory: dir)
            let V = model.config.vocabSize
            let ids = io["input_ids"]!.int64s().map(Int32.init)
            let want = io["logits"]!.floats()
            for row in 0..<2 {
                let session = InferenceSession(model: model, chunk: 5)
                var at = 0
                // Chunks of 1, 2, 3, ... tokens: the cache is read at every offset, the window's start included.
                var size = 1
                while at < T {
                    let n = min(size, T - at)
                    let got = try session.append(Array(ids[(row * T + at)..<(row * T + at + n)]))
                    at += n
                    size += 1
                    let ref = Array(want[((row * T + at - 1) * V)..<((row * T + at) * V)])
                    // Bound: as the fixture logits (1e-4, the file header), the cache changing only the order of sums.
                    XCTAssertLessThanOrEqual(maxAbs(got, ref), 1e-4, "\(name) row \(row) after \(at) tokens")
                }
            }
        }
    }
}

/// The loss over logits in chunks of rows (a large vocabulary's [rows, vocab] never whole) against all rows at once:
/// loss, log-probabilities and every gradient, tied (Gemma) and untied (Llama 3), with soft-capping on, for the
/// plain, the weighted and the frozen-base (LoRA) paths.
final class ChunkedHeadTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    func testChunkedLogitsGiveTheSameLossAndGradients() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: fixture tests skipped") }
        for (name, T, cap) in [("gemma3-tiny", 24, nil as Double?), ("llama3-tiny", 64, nil), ("gemma3-tiny", 24, 5.0)] {
            let dir = shared + "/fixtures/" + name
            guard FileManager.default.fileExists(atPath: dir + "/io.safetensors") else { throw XCTSkip("\(dir) not present") }
            let ids = try tensors(dir + "/io.safetensors")["input_ids"]!.int64s().map(Int32.init)
            let batch = Batch(rows: 2, length: T, tokens: ids)
            let weights = (0..<(2 * T)).map { Float($0 % 5) / 7 }
            func run(chunk: Int?, lora: Bool) throws -> (loss: Double, weighted: Double, logps: [Float], grads: [Float]) {
                let m = try LlamaModel.load(directory: dir)
                if let cap {
                    var c = m.config
                    c.finalLogitSoftcap = cap
                    let capped = try LlamaModel(config: c)
                    capped.params.values.copy(from: m.params.values)
                    return try run(capped, chunk: chunk, lora: lora)
                }
                return try run(m, chunk: chunk, lora: lora)
            }
            func run(_ m: LlamaModel, chunk: Int?, lora: Bool) throws -> (loss: Double, weighted: Double, logps: [Float], grads: [Float]) {
                m.logitChunkRows = chunk
                if lora {
                    let a = try LoRA(config: LoRAConfig(rank: 4, alpha: 8, dropout: 0, targets: Projection.allCases, seed: 3), model: m.config)
                    for i in 0..<a.params.count { a.params.values.pointer[i] = Float(i % 13) / 100 - 0.06 }
                    m.lora = a
                    m.trainBase = false
                }
                m.forward(batch)
                let logps = m.targetLogProbs(targets: batch.targets)
                let loss = m.crossEntropy(targets: batch.targets, scale: 1 / Float(batch.targetCount))
                m.backward()
                m.forward(batch)
                let weighted = m.weightedCrossEntropy(targets: batch.targets, weights: weights)
                m.backward()
                let grads = lora ? m.lora!.params.grads.array : m.params.grads.array
                return (loss, weighted, logps, grads)
            }
            for lora in [false, true] {
                let whole = try run(chunk: nil, lora: lora)
                for chunk in [1, 7, 2 * T - 1] {
                    let part = try run(chunk: chunk, lora: lora)
                    // Bound: the head's products are the same sums in other blockings (OpenBLAS by shape): a logit
                    // moves by ≲ D·u·Σ|x w| ≈ 64 · 6e-8 · 3 ≈ 1e-5, a loss (a mean) and a log-probability by as much,
                    // and gradients, sums over ≤ 48 rows of those, by ≲ 1e-5 relative to their tensor.
                    XCTAssertEqual(part.loss, whole.loss, accuracy: 1e-5, "\(name) cap \(String(describing: cap)) chunk \(chunk) lora \(lora)")
                    XCTAssertEqual(part.weighted, whole.weighted, accuracy: 1e-5 * max(1, abs(whole.weighted)))
                    XCTAssertLessThanOrEqual(maxAbs(part.logps, whole.logps), 1e-5)
                    XCTAssertLessThanOrEqual(relativeError(part.grads, whole.grads), 1e-5, "\(name) chunk \(chunk) lora \(lora) gradients")
                }
            }
        }
    }
}
