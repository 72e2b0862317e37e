// The model against reference tensors computed by PyTorch/transformers in float64
// ($LOOM_SHARED/fixtures/llama-tiny, described in its README): logits, hidden states, the causal-LM and SFT losses
// and every parameter's gradient, and parameters after 1 and 3 AdamW steps. Every comparison is entry by entry
// against a bound from the error analysis in ErrorBounds.swift, which holds whatever order a CPU's BLAS adds in.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

func fixtureDirectory() throws -> String {
    guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: llama-tiny fixture tests skipped") }
    let dir = shared + "/fixtures/llama-tiny"
    guard FileManager.default.fileExists(atPath: dir + "/io.safetensors") else { throw XCTSkip("\(dir) not present") }
    return dir
}

func tensors(_ path: String) throws -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: try SafeTensors.read(path).tensors.map { ($0.name, $0.tensor) })
}

/// ||a - b|| / ||b||.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    var d = 0.0, n = 0.0
    for i in 0..<b.count {
        d += Double(a[i] - b[i]) * Double(a[i] - b[i])
        n += Double(b[i]) * Double(b[i])
    }
    return (d / max(n, 1e-30)).squareRoot()
}

func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

final class FixtureTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    func loadModel() throws -> (LlamaModel, [String: Tensor]) {
        let dir = try fixtureDirectory()
        return (try LlamaModel.load(directory: dir), try tensors(dir + "/io.safetensors"))
    }

    /// The fixture's scalars in float64 (scalars.json), so losses carry no float32 storage error.
    func scalars() throws -> JSONValue { try JSONValue.parse(try FS.readText(try fixtureDirectory() + "/scalars.json")) }

    func testConfigReadsBothRopeForms() throws {
        let dir = try fixtureDirectory()
        let c = try LlamaConfig.load(dir)
        XCTAssertEqual(c.vocabSize, 512)
        XCTAssertEqual(c.numKVHeads, 2)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.ropeTheta, 10000)
        var j = try JSONValue.parse(try FS.readText(dir + "/config.json")).objectValue!
        j["rope_theta"] = nil
        j["rope_parameters"] = ["rope_theta": 500000.0, "rope_type": "default"]
        XCTAssertEqual(try LlamaConfig.parse(.object(j), source: "t").ropeTheta, 500000)
        j["rope_parameters"] = nil
        j["rope_theta"] = 250000.0
        XCTAssertEqual(try LlamaConfig.parse(.object(j), source: "t").ropeTheta, 250000)
        j["rope_parameters"] = ["rope_theta": 1.0, "rope_type": "yarn"]
        XCTAssertThrowsError(try LlamaConfig.parse(.object(j), source: "t")) { XCTAssertTrue("\($0)".contains("yarn")) }
    }

    func testLogitsAndLossMatchTransformers() throws {
        let (model, io) = try loadModel()
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let batch = Batch(rows: 2, length: 16, tokens: ids)
        let logits = model.forward(batch)
        let got = doubles(Array(UnsafeBufferPointer(start: logits, count: 2 * 16 * 512)))
        let want = io["logits"]!.floats()
        let ref = ReferenceLlama(model: model)
        ref.forward(batch)
        // Per logit: 8 sd of the float32 forward's rounding error (running error analysis, both sides' RoPE tables
        // included) + the fixture's float32 storage. The float64 reference must sit inside it too.
        let logitBound = ref.logits.bound
        let bound = want.indices.map { logitBound[$0] + storageBound(want[$0]) }
        let margin = assertWithinBound(got, doubles(want), bound, "logits")
        // A check of the analysis, not of Loom: the float64 reference itself within the same bound of the fixture.
        assertWithinBound(ref.logits.v, doubles(want), bound, "reference logits")
        print("llama-tiny: logits max abs error \(zip(got, want).map { abs($0 - Double($1)) }.max()!), worst error/bound \(margin)")
        for (name, i) in [("hidden.layer.0", 1), ("hidden.layer.1", 2)] {
            let h = doubles(Array(UnsafeBufferPointer(start: model.work!.resid[i], count: 2 * 16 * 64)))
            let want = io[name]!.floats()
            // The residual stream after layer i: 8 sd of its rounding error + storage.
            let b = ref.resid[i].bound
            let r = assertWithinBound(h, doubles(want), want.indices.map { b[$0] + storageBound(want[$0]) }, name)
            print("llama-tiny: \(name) worst error/bound \(r)")
        }
        let loss = model.crossEntropy(targets: batch.targets, scale: 1) / Double(batch.targetCount)
        XCTAssertEqual(batch.targetCount, 30)
        let ce = ref.crossEntropy(targets: batch.targets, weights: [Double](repeating: 1.0 / 30, count: 32))
        // The mean of 30 token losses, each moving by Σ p_i δz_i − δz_y: 8 sd from the logits' errors; against
        // scalars.json's float64 loss, so no storage term.
        let wantLoss = try XCTUnwrap(try scalars()["loss"]?.doubleValue)
        XCTAssertEqual(loss, wantLoss, accuracy: lambda * ce.sd)
        print("llama-tiny: loss error \(abs(loss - wantLoss)), bound \(lambda * ce.sd)")
    }

    func checkGradients(labels: [Int32]?, lossName: String, prefix: String) throws {
        let (model, io) = try loadModel()
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let batch = Batch(rows: 2, length: 16, tokens: ids, labels: labels)
        model.params.grads.zero()
        model.forward(batch)
        let count = batch.targetCount
        let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(count)) / Double(count)
        model.backward()
        let ref = ReferenceLlama(model: model)
        ref.forward(batch)
        // Loom scales by the float32 1/count: a weight error of u/count, carried into every gradient.
        let ce = ref.crossEntropy(
            targets: batch.targets, weights: [Double](repeating: 1 / Double(count), count: 32),
            weightErrors: [Double](repeating: u32 / Double(count), count: 32))
        ref.backward()
        // The mean token loss: 8 sd from the logits' errors (as in testLogitsAndLossMatchTransformers).
        let wantLoss = try XCTUnwrap(try scalars()[lossName]?.doubleValue)
        XCTAssertEqual(loss, wantLoss, accuracy: lambda * ce.sd, lossName)
        var worst = (0.0, ""), worstReference = 0.0
        for info in model.params.infos {
            let want = try XCTUnwrap(io[prefix + info.name], prefix + info.name).floats()
            let got = doubles(model.params.tensor(info, gradient: true).floats())
            let g = try XCTUnwrap(ref.grads[info.name], info.name)
            // Per entry: 8 sd of the backward's rounding error (the forward's carried through every product of the
            // backward, plus each product's own √k·u·|A||B|) + the fixture's float32 storage.
            let gb = g.bound
            let bound = want.indices.map { gb[$0] + storageBound(want[$0]) }
            let r = assertWithinBound(got, doubles(want), bound, "\(prefix)\(info.name)")
            if r > worst.0 { worst = (r, info.name) }
            // A check of the analysis: the float64 reference's own gradient within the same bound of the fixture.
            worstReference = max(worstReference, assertWithinBound(g.v, doubles(want), bound, "reference \(prefix)\(info.name)"))
        }
        print(
            "llama-tiny \(lossName): loss error \(abs(loss - wantLoss)) (bound \(lambda * ce.sd)), gradients' worst error/bound \(worst.0) (\(worst.1)); float64 reference's \(worstReference)"
        )
    }

    func testGradientsMatchTransformers() throws {
        try checkGradients(labels: nil, lossName: "loss", prefix: "grad.")
    }

    func testSFTMaskedLossAndGradientsMatch() throws {
        let io = try tensors(try fixtureDirectory() + "/io.safetensors")
        let labels = io["sft.labels"]!.int64s().map { Int32(max(-1, $0)) }
        try checkGradients(labels: labels, lossName: "sft.loss", prefix: "sft.grad.")
    }

    /// Loom's AdamW given torch's own step-1 gradients (io grad.*): only the optimiser's arithmetic differs.
    func testAdamWStepWithTheFixtureGradients() throws {
        let dir = try fixtureDirectory()
        let (model, io) = try loadModel()
        let ref = try tensors(dir + "/adamw.safetensors")
        var gradients = [Float](repeating: 0, count: model.params.count)
        for info in model.params.infos {
            let g = try XCTUnwrap(io["grad." + info.name]).floats()
            for j in 0..<info.count { gradients[info.offset + j] = g[j] }
        }
        gradients.withUnsafeBufferPointer { model.params.grads.pointer.update(from: $0.baseAddress!, count: $0.count) }
        let before = model.params.values.array
        let opt = AdamW(count: model.params.count, settings: AdamWSettings(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1))
        opt.update(model.params, lr: 1e-3)
        // The stored gradients are torch's float64 ones rounded to float32 (within u·|g|).
        let adam = AdamWBound(gradients: [gradients], radii: [gradients.map { u32 * Double(abs($0)) }])
        var worst = 0.0
        for info in model.params.infos {
            let want = ref["step1.param.\(info.name)"]!.floats()
            let got = model.params.tensor(info).floats()
            // Per entry: Loom's rounding of one step (≈ 3 ulps of p, AdamWBound.rounding), the stored gradient's half
            // ulp through g/(|g| + eps) (≤ lr·u/4), and the fixture's float32 storage.
            let bound = want.indices.map { j -> Double in
                let i = info.offset + j
                return adam.rounding(before: before[i], after: got[j]) + adam.deviation(i) + storageBound(want[j])
            }
            worst = max(worst, assertWithinBound(doubles(got), doubles(want), bound, "step 1 \(info.name)"))
        }
        print("llama-tiny AdamW step 1 from torch's gradients: worst error/bound \(worst)")
    }

    /// Three AdamW steps with Loom's own gradients against torch's. At each step the reference gradient is within
    /// Δ_t of Loom's: 8 sd of Loom's rounding from the float64 reference at Loom's parameters, which also carries the
    /// parameters' own bound R from the steps before (as weight errors, R/8) to torch's gradient at its parameters.
    /// Δ_t goes through Adam (AdamWBound.deviation) to R_t, which the fixture's step 1 and step 3 must satisfy.
    func testAdamWStepsMatchTorch() throws {
        let dir = try fixtureDirectory()
        let (model, io) = try loadModel()
        let ref = try tensors(dir + "/adamw.safetensors")
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let batch = Batch(rows: 2, length: 16, tokens: ids)
        let opt = AdamW(count: model.params.count, settings: AdamWSettings(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1))
        let losses = try XCTUnwrap(try scalars()["adamw.losses_before_steps_1_2_3_and_after_3"]?.arrayValue).compactMap(\.doubleValue)
        var adam = AdamWBound()
        var radius = [Double](repeating: 0, count: model.params.count)  // R: |Loom's parameter − torch's|
        for step in 1...3 {
            let reference = ReferenceLlama(model: model)
            reference.weightErrors = Dictionary(uniqueKeysWithValues: model.params.infos.map {
                ($0.name, radius[$0.offset..<$0.offset + $0.count].map { $0 / lambda })
            })
            reference.forward(batch)
            let n = batch.targetCount
            let ce = reference.crossEntropy(
                targets: batch.targets, weights: [Double](repeating: 1 / Double(n), count: 32),
                weightErrors: [Double](repeating: u32 / Double(n), count: 32))
            reference.backward()
            model.params.grads.zero()
            model.forward(batch)
            let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(n)) / Double(n)
            // The loss before the step: 8 sd, now also carrying R through the forward.
            XCTAssertEqual(loss, losses[step - 1], accuracy: lambda * ce.sd, "loss before step \(step)")
            model.backward()
            let g = model.params.grads.array
            var delta = [Double](repeating: 0, count: g.count)
            for info in model.params.infos {
                let e = reference.grads[info.name]!.bound
                for j in 0..<info.count { delta[info.offset + j] = e[j] }
            }
            adam.gradients.append(g)
            adam.radii.append(delta)
            let before = model.params.values.array
            opt.update(model.params, lr: 1e-3)
            let after = model.params.values.array
            for info in model.params.infos {
                let decay = info.decays ? 1 - 1e-3 * 0.1 : 1.0
                for j in info.offset..<info.offset + info.count {
                    radius[j] = radius[j] * decay + adam.deviation(j) + adam.rounding(before: before[j], after: after[j])
                }
            }
            guard step != 2 else { continue }
            var worst = (0.0, ""), largest = (0.0, 0.0), capped = 0
            for info in model.params.infos {
                let want = ref["step\(step).param.\(info.name)"]!.floats()
                // Per entry: R_t (above) + the fixture's storage. Where Loom's gradient is at the level of its own
                // error, R_t reaches lr per step: there g/(|g| + eps) has no stable sign to compare.
                let bound = want.indices.map { radius[info.offset + $0] + storageBound(want[$0]) }
                let got = doubles(Array(after[info.offset..<info.offset + info.count]))
                let r = assertWithinBound(got, doubles(want), bound, "step \(step) \(info.name)")
                if r > worst.0 { worst = (r, info.name) }
                for j in want.indices where abs(got[j] - Double(want[j])) > largest.0 { largest = (abs(got[j] - Double(want[j])), bound[j]) }
                capped += bound.filter { $0 > 1e-4 * Double(step) }.count
            }
            print(
                "llama-tiny AdamW step \(step): worst error/bound \(worst.0) (\(worst.1)); largest error \(largest.0) against its bound \(largest.1); \(capped) entries with a bound over 1e-4 per step"
            )
        }
        XCTAssertEqual(ref["step1.param.model.norm.weight"]!.shape, [64])
    }
}
