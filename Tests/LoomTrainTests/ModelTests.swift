// Properties of the model that need no reference file: packed documents train as if alone, the gradient is the
// derivative of the loss (finite differences), and threads do not change results. Tolerances come from the float64
// reference model of ErrorBounds.swift run on the same batches.

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

/// The same batch through the float64 reference (ErrorBounds.swift): the loss's error scale and every gradient
/// entry's, in the model's flat parameter order.
func referenceLossAndGrads(_ m: LlamaModel, _ b: Batch) -> (sd: Double, grads: [Double]) {
    let r = ReferenceLlama(model: m)
    r.forward(b)
    let n = Double(b.targetCount)
    let ce = r.crossEntropy(
        targets: b.targets, weights: [Double](repeating: 1 / n, count: b.targets.count),
        weightErrors: [Double](repeating: u32 / n, count: b.targets.count))
    r.backward()
    var sd = [Double](repeating: 0, count: m.params.count)
    for info in m.params.infos {
        for (j, x) in r.grads[info.name]!.sd.enumerated() { sd[info.offset + j] = x }
    }
    return (ce.sd, sd)
}

/// Two float32 evaluations with independent rounding: entry by entry, 8·√(sd_a² + sd_b²).
func differenceBound(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { lambda * rss($0, $1) } }

/// d loss/d x at one float32 parameter by central differences with step h, and a bound on the difference's error:
/// the truncation error, estimated from the same difference at 2h (Richardson: D(h) − f' ≈ (D(2h) − D(h))/3),
/// counted twice for that estimate's own O(h⁴) part, plus the two losses' rounding, 8·√2·sdLoss over the step (taken
/// as independent, though they share most roundings). The step is the one float32 takes, fl(x ± h) − x.
func centralDifference(at p: UnsafeMutablePointer<Float>, h: Float, lossSD: Double, loss: () -> Double) -> (Double, Double) {
    let old = p.pointee
    func difference(_ h: Float) -> (Double, Double) {
        p.pointee = old + h
        let (up, hUp) = (loss(), Double(p.pointee) - Double(old))
        p.pointee = old - h
        let (down, hDown) = (loss(), Double(old) - Double(p.pointee))
        p.pointee = old
        return ((up - down) / (hUp + hDown), hUp + hDown)
    }
    let (d1, step) = difference(h), (d2, _) = difference(2 * h)
    return (d1, 2 * abs(d2 - d1) / 3 + lambda * 2.0.squareRoot() * lossSD / step)
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
        let (sep, pk) = (referenceLossAndGrads(m, separate), referenceLossAndGrads(m, packed))
        // The two layouts are two float32 evaluations: 8 sd of their difference (reference model, both layouts).
        XCTAssertEqual(lossPacked, lossSep, accuracy: lambda * rss(sep.sd, pk.sd))
        let ba = Batch(rows: 1, length: 12, tokens: a), bb = Batch(rows: 1, length: 12, tokens: b)
        let la = lossAndGrads(m, ba).0, lb = lossAndGrads(m, bb).0
        let (sa, sb) = (referenceLossAndGrads(m, ba).sd, referenceLossAndGrads(m, bb).sd)
        // The mean of the two separate losses (equal lengths: the same as the token mean): three evaluations, 8 sd.
        XCTAssertEqual(lossPacked, (la + lb) / 2, accuracy: lambda * rss(pk.sd, sa / 2, sb / 2))
        // Every gradient entry, bound as above.
        let r = assertWithinBound(doubles(gradPacked), doubles(gradSep), differenceBound(pk.grads, sep.grads), "packed gradients")
        print("packed documents: gradients' worst difference/bound \(r)")
        // Without the mask the documents would see each other: the loss changes by more than rounding can.
        let leaky = Batch(rows: 1, length: 24, tokens: a + b, targets: targets,
            positions: (0..<24).map { Int32($0) }, segStart: [Int32](repeating: 0, count: 24))
        XCTAssertGreaterThan(abs(lossAndGrads(m, leaky).0 - lossSep), lambda * rss(referenceLossAndGrads(m, leaky).sd, sep.sd))
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
        let ba = Batch(rows: 1, length: 7, tokens: a), bb = Batch(rows: 1, length: 17, tokens: b)
        let lp = lossAndGrads(m, packed).0
        let la = lossAndGrads(m, ba).0
        let lb = lossAndGrads(m, bb).0
        // Three float32 evaluations: 8 sd of the combination's error (reference model on each batch).
        let (sp, sa, sb) = (referenceLossAndGrads(m, packed).sd, referenceLossAndGrads(m, ba).sd, referenceLossAndGrads(m, bb).sd)
        XCTAssertEqual(lp, (6 * la + 16 * lb) / 22, accuracy: lambda * rss(sp, 6 * sa / 22, 16 * sb / 22))
    }

    /// The analytic gradient against central differences of the loss, on a few entries of every tensor, with a
    /// tied head (so the embedding collects both of its gradients).
    func testGradientMatchesFiniteDifferences() throws {
        let m = try tinyModel(seed: 11, vocab: 32, tied: true)
        let batch = Batch(rows: 2, length: 8, tokens: randomTokens(16, vocab: 32, seed: 9))
        let (_, grad) = lossAndGrads(m, batch)
        let e = referenceLossAndGrads(m, batch)
        func loss() -> Double {
            m.forward(batch)
            return m.crossEntropy(targets: batch.targets, scale: 1) / Double(batch.targetCount)
        }
        var r = SplitMix64(seed: 5)
        var worst = 0.0
        for info in m.params.infos {
            for _ in 0..<3 {
                let i = info.offset + Int(r.next() % UInt64(info.count))
                let (numeric, bound) = centralDifference(at: m.params.values.pointer + i, h: 1e-2, lossSD: e.sd, loss: loss)
                // The difference's own error (truncation and rounding, centralDifference) + 8 sd of the gradient's.
                let tol = bound + lambda * e.grads[i]
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: tol, "\(info.name)[\(i - info.offset)]")
                worst = max(worst, abs(Double(grad[i]) - numeric) / tol)
            }
        }
        print("finite differences: worst difference/bound \(worst)")
    }

    func testThreadCountDoesNotChangeTheResult() throws {
        let m = try tinyModel(seed: 2)
        let batch = Batch(rows: 4, length: 16, tokens: randomTokens(64, vocab: 64, seed: 3))
        Compute.configure(threads: 1)
        let (l1, g1) = lossAndGrads(m, batch)
        Compute.configure(threads: 2)
        let (l2, g2) = lossAndGrads(m, batch)
        // Threads may split sums differently: two float32 evaluations, 8 sd of the difference per entry.
        let e = referenceLossAndGrads(m, batch)
        XCTAssertEqual(l1, l2, accuracy: lambda * 2.0.squareRoot() * e.sd)
        assertWithinBound(doubles(g2), doubles(g1), differenceBound(e.grads, e.grads), "gradients with 2 threads")
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
        let V = m.config.vocabSize
        let z = Array(UnsafeBufferPointer(start: m.logits, count: b.targets.count * V))
        let lp = m.targetLogProbs(targets: b.targets)
        let tol = b.targets.indices.filter { b.targets[$0] >= 0 }.reduce(0.0) { sum, t in
            let row = z[t * V..<(t + 1) * V]
            return sum + 2 * (u32 * Double(row.max()! - row.min()!) + 2 * u32) + u32 * Double(abs(lp[t]))
        } / Double(n)
        // The same logits through two kernels: the loss's exps of rounded exponents (each within u·|z_i − max| + 2u,
        // so its log-sum-exp and log p_y are too) against log p in double rounded once (u·|log p|); worst case.
        XCTAssertEqual(-lp.reduce(0) { $0 + Double($1) } / Double(n), loss, accuracy: tol)
        let l2 = m.weightedCrossEntropy(targets: b.targets, weights: [Float](repeating: 1 / Float(n), count: b.targets.count))
        m.backward()
        // The same per-token losses (one kernel; the weight scales only the gradient), summed as Σ w·CE with the
        // float32 w = 1/n against (Σ CE)/n: w's rounding (≤ u relative) and the double sums' (~n·2^-52).
        XCTAssertEqual(l2, loss, accuracy: (u32 + Double(n) * 0x1p-52) * loss)
        // The same kernel with the same float32 weight, then the same backward: bit for bit the same gradient.
        XCTAssertEqual(m.params.grads.array, grad)
    }
}
