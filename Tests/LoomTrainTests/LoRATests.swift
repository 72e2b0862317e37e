// LoRA adapters: zero B leaves the model unchanged, gradients of A and B match finite differences (with and
// without dropout), merging folds the adapters into the weights, PEFT files round-trip, and training moves only
// the adapters.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

final class LoRATests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

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
        var r = SplitMix64(seed: 9)
        let v = lora.params.values.pointer
        for info in lora.params.infos {
            for _ in 0..<2 {
                let i = info.offset + Int(r.next() % UInt64(info.count))
                let old = v[i]
                v[i] = old + 1e-2
                let up = loss()
                v[i] = old - 1e-2
                let down = loss()
                v[i] = old
                let numeric = (up - down) / 2e-2
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 2e-3 + 0.02 * abs(numeric), "\(info.name) dropout \(dropout)")
            }
        }
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
        m.lora = nil
        lora.merge(into: m)
        XCTAssertLessThanOrEqual(maxAbs(logits(m, b), want), 1e-4)
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
}
