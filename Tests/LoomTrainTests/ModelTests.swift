// Properties of the model that need no reference file: packed documents train as if alone, the gradient is the
// derivative of the loss (finite differences), and threads do not change results.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

func tinyModel(seed: UInt64 = 7, vocab: Int = 64, tied: Bool = false) throws -> LlamaModel {
    let c = LlamaConfig(
        vocabSize: vocab, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2,
        maxPositions: 64, tieWordEmbeddings: tied)
    let m = try LlamaModel(config: c)
    m.initialize(seed: seed, std: 0.2)
    return m
}

func randomTokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
    var r = SplitMix64(seed: seed)
    return (0..<n).map { _ in Int32(r.next() % UInt64(vocab)) }
}

/// Loss (mean over targets) and gradients of one batch.
func lossAndGrads(_ m: LlamaModel, _ b: Batch) -> (Double, [Float]) {
    m.params.grads.zero()
    m.forward(b)
    let n = b.targetCount
    let loss = m.crossEntropy(targets: b.targets, scale: 1 / Float(n)) / Double(n)
    m.backward()
    return (loss, m.params.grads.array)
}

final class ModelTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    /// Two documents packed in one row (positions restarting, block-diagonal mask, no target across the boundary)
    /// give the loss and gradients of the two documents run as separate rows.
    func testPackedDocumentsTrainAsIfAlone() throws {
        let m = try tinyModel()
        let a = randomTokens(12, vocab: 64, seed: 1), b = randomTokens(12, vocab: 64, seed: 2)
        let separate = Batch(rows: 2, length: 12, tokens: a + b)
        let (lossSep, gradSep) = lossAndGrads(m, separate)
        var targets = [Int32](repeating: -1, count: 24)
        for t in 0..<11 { targets[t] = a[t + 1]; targets[12 + t] = b[t + 1] }
        let packed = Batch(
            rows: 1, length: 24, tokens: a + b, targets: targets,
            positions: (0..<24).map { Int32($0 % 12) }, segStart: (0..<24).map { $0 < 12 ? 0 : 12 })
        let (lossPacked, gradPacked) = lossAndGrads(m, packed)
        XCTAssertEqual(lossPacked, lossSep, accuracy: 1e-6)
        // The mean of the two separate losses (equal lengths: the same as the token mean).
        let la = lossAndGrads(m, Batch(rows: 1, length: 12, tokens: a)).0
        let lb = lossAndGrads(m, Batch(rows: 1, length: 12, tokens: b)).0
        XCTAssertEqual(lossPacked, (la + lb) / 2, accuracy: 1e-6)
        XCTAssertLessThan(relativeError(gradPacked, gradSep), 1e-5)
        // Without the mask the documents would see each other: the loss changes.
        let leaky = Batch(rows: 1, length: 24, tokens: a + b, targets: targets,
            positions: (0..<24).map { Int32($0) }, segStart: [Int32](repeating: 0, count: 24))
        XCTAssertGreaterThan(abs(lossAndGrads(m, leaky).0 - lossSep), 1e-4)
    }

    /// Unequal lengths: the packed loss is the token-weighted mean of the separate losses.
    func testPackedUnequalDocuments() throws {
        let m = try tinyModel(seed: 3)
        let a = randomTokens(7, vocab: 64, seed: 4), b = randomTokens(17, vocab: 64, seed: 5)
        var targets = [Int32](repeating: -1, count: 24)
        for t in 0..<6 { targets[t] = a[t + 1] }
        for t in 0..<16 { targets[7 + t] = b[t + 1] }
        let packed = Batch(rows: 1, length: 24, tokens: a + b, targets: targets,
            positions: (0..<24).map { Int32($0 < 7 ? $0 : $0 - 7) }, segStart: (0..<24).map { $0 < 7 ? 0 : 7 })
        let lp = lossAndGrads(m, packed).0
        let la = lossAndGrads(m, Batch(rows: 1, length: 7, tokens: a)).0
        let lb = lossAndGrads(m, Batch(rows: 1, length: 17, tokens: b)).0
        XCTAssertEqual(lp, (6 * la + 16 * lb) / 22, accuracy: 1e-6)
    }

    /// The analytic gradient against central differences of the loss, on a few entries of every tensor, with a
    /// tied head (so the embedding collects both of its gradients).
    func testGradientMatchesFiniteDifferences() throws {
        let m = try tinyModel(seed: 11, vocab: 32, tied: true)
        let batch = Batch(rows: 2, length: 8, tokens: randomTokens(16, vocab: 32, seed: 9))
        let (_, grad) = lossAndGrads(m, batch)
        func loss() -> Double {
            m.forward(batch)
            return m.crossEntropy(targets: batch.targets, scale: 1) / Double(batch.targetCount)
        }
        var r = SplitMix64(seed: 5)
        let v = m.params.values.pointer
        for info in m.params.infos {
            for _ in 0..<3 {
                let i = info.offset + Int(r.next() % UInt64(info.count))
                let old = v[i]
                let h: Float = 1e-2
                v[i] = old + h
                let up = loss()
                v[i] = old - h
                let down = loss()
                v[i] = old
                let numeric = (up - down) / (2 * Double(h))
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 2e-3 + 0.02 * abs(numeric), "\(info.name)[\(i - info.offset)]")
            }
        }
    }

    func testThreadCountDoesNotChangeTheResult() throws {
        let m = try tinyModel(seed: 2)
        let batch = Batch(rows: 4, length: 16, tokens: randomTokens(64, vocab: 64, seed: 3))
        Compute.configure(threads: 1)
        let (l1, g1) = lossAndGrads(m, batch)
        Compute.configure(threads: 2)
        let (l2, g2) = lossAndGrads(m, batch)
        XCTAssertEqual(l1, l2, accuracy: 1e-6)
        XCTAssertLessThan(relativeError(g2, g1), 1e-5)
    }

    func testSaveAndLoadRoundTrip() throws {
        let m = try tinyModel(seed: 4)
        let dir = NSTemporaryDirectory() + "loom-model-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try m.save(directory: dir)
        let back = try LlamaModel.load(directory: dir)
        XCTAssertEqual(back.config, m.config)
        XCTAssertEqual(back.params.values.array, m.params.values.array)
    }
}

final class WeightedLossTests: XCTestCase {
    /// Equal weights give exactly the plain cross-entropy and its gradient; log-probs agree with the loss.
    func testWeightedCrossEntropyMatchesThePlainOne() throws {
        Compute.configure(threads: 2)
        let m = try tinyModel(seed: 8)
        let b = Batch(rows: 2, length: 10, tokens: randomTokens(20, vocab: 64, seed: 6))
        let (loss, grad) = lossAndGrads(m, b)
        let n = b.targetCount
        m.params.grads.zero()
        m.forward(b)
        let lp = m.targetLogProbs(targets: b.targets)
        XCTAssertEqual(-lp.reduce(0) { $0 + Double($1) } / Double(n), loss, accuracy: 1e-5)
        let l2 = m.weightedCrossEntropy(targets: b.targets, weights: [Float](repeating: 1 / Float(n), count: b.targets.count))
        m.backward()
        XCTAssertEqual(l2, loss, accuracy: 1e-6)
        XCTAssertLessThan(relativeError(m.params.grads.array, grad), 1e-6)
    }
}
