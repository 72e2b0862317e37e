// The model against reference tensors computed by PyTorch/transformers in float64
// ($LOOM_SHARED/fixtures/llama-tiny, described in its README): logits, hidden states, the causal-LM and SFT losses
// and every parameter's gradient, and parameters after 1 and 3 AdamW steps.

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
        let got = Array(UnsafeBufferPointer(start: logits, count: 2 * 16 * 512))
        let want = io["logits"]!.floats()
        XCTAssertLessThanOrEqual(maxAbs(got, want), 1e-4, "logits max abs error")
        print("llama-tiny: logits max abs error \(maxAbs(got, want))")
        for (name, i) in [("hidden.layer.0", 1), ("hidden.layer.1", 2)] {
            let h = Array(UnsafeBufferPointer(start: model.work!.resid[i], count: 2 * 16 * 64))
            XCTAssertLessThanOrEqual(maxAbs(h, io[name]!.floats()), 1e-4, name)
        }
        let loss = model.crossEntropy(targets: batch.targets, scale: 1) / Double(batch.targetCount)
        XCTAssertEqual(batch.targetCount, 30)
        XCTAssertEqual(loss, Double(io["loss"]!.floats()[0]), accuracy: 1e-5)
    }

    func checkGradients(labels: [Int32]?, lossName: String, prefix: String) throws {
        let (model, io) = try loadModel()
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let batch = Batch(rows: 2, length: 16, tokens: ids, labels: labels)
        model.params.grads.zero()
        model.forward(batch)
        let count = batch.targetCount
        let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(count)) / Double(count)
        XCTAssertEqual(loss, Double(io[lossName]!.floats()[0]), accuracy: 1e-5, lossName)
        model.backward()
        var worst = 0.0
        for info in model.params.infos {
            let want = try XCTUnwrap(io[prefix + info.name], prefix + info.name).floats()
            let got = model.params.tensor(info, gradient: true).floats()
            XCTAssertLessThanOrEqual(relativeError(got, want), 1e-3, "\(prefix)\(info.name)")
            worst = max(worst, relativeError(got, want))
        }
        print("llama-tiny \(lossName): loss error \(abs(loss - Double(io[lossName]!.floats()[0]))), worst gradient relative error \(worst)")
    }

    func testGradientsMatchTransformers() throws {
        try checkGradients(labels: nil, lossName: "loss", prefix: "grad.")
    }

    func testSFTMaskedLossAndGradientsMatch() throws {
        let io = try tensors(try fixtureDirectory() + "/io.safetensors")
        let labels = io["sft.labels"]!.int64s().map { Int32(max(-1, $0)) }
        try checkGradients(labels: labels, lossName: "sft.loss", prefix: "sft.grad.")
    }

    func testAdamWStepsMatchTorch() throws {
        let dir = try fixtureDirectory()
        let (model, io) = try loadModel()
        let ref = try tensors(dir + "/adamw.safetensors")
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let batch = Batch(rows: 2, length: 16, tokens: ids)
        let opt = AdamW(count: model.params.count, settings: AdamWSettings(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1))
        var worstParam: [Int: Float] = [:]
        var minGrad: [Float] = []
        for step in 1...3 {
            model.params.grads.zero()
            model.forward(batch)
            let n = batch.targetCount
            let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(n)) / Double(n)
            XCTAssertEqual(loss, Double(ref["step\(step).loss_before"]!.floats()[0]), accuracy: 1e-4, "loss before step \(step)")
            model.backward()
            // The smallest |grad| each entry has seen: where it is below 1e-6, g / (|g| + eps) amplifies f32 rounding
            // (the fixture README), so the strict 1e-5 comparison masks those entries.
            let g = model.params.grads.array
            if minGrad.isEmpty { minGrad = g.map(abs) } else { for i in 0..<g.count { minGrad[i] = min(minGrad[i], abs(g[i])) } }
            opt.update(model.params, lr: 1e-3)
            if step == 1 || step == 3 {
                var strictWorst: Float = 0
                for info in model.params.infos {
                    let want = ref["step\(step).param.\(info.name)"]!.floats()
                    let got = model.params.tensor(info).floats()
                    XCTAssertLessThanOrEqual(maxAbs(got, want), 3e-5, "step \(step) \(info.name)")
                    worstParam[step] = max(worstParam[step] ?? 0, maxAbs(got, want))
                    for j in 0..<info.count where minGrad[info.offset + j] >= 1e-6 {
                        strictWorst = max(strictWorst, abs(got[j] - want[j]))
                    }
                }
                XCTAssertLessThanOrEqual(strictWorst, 1e-5, "step \(step), entries with |grad| >= 1e-6")
                print("llama-tiny AdamW step \(step): max abs error \(worstParam[step]!), \(strictWorst) on entries with |grad| >= 1e-6")
            }
        }
        XCTAssertEqual(ref["step1.param.model.norm.weight"]!.shape, [64])
    }
}
