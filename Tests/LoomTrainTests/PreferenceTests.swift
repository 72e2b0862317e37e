// DPO and ORPO: against the PyTorch/TRL reference tensors of $LOOM_SHARED/fixtures/llama-tiny/prefs.safetensors
// (losses, metrics and every gradient entry within bounds from the error analysis of ErrorBounds.swift), packed pairs
// against the same pairs unpacked, records in TRL's preference formats, and the stage end to end.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

/// DPO and ORPO in float64 (the fixture README's formulas, written again) over the reference model of ErrorBounds.swift:
/// the error scale of every token's log-probability is carried into the sequence sums, the loss, the metrics and the
/// per-token weights of the gradient (through the loss's first and second derivatives, taken by central differences
/// of these float64 formulas).
struct ReferencePreference {
    let loss: PreferenceLoss

    static func softplus(_ t: Double) -> Double { t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)) }
    static func log1mexp(_ a: Double) -> Double { a > -M_LN2 ? log(-expm1(a)) : log1p(-exp(a)) }

    /// One pair's term of the mean loss from x = [chosen, rejected, reference chosen, reference rejected] (sums).
    func term(_ x: [Double], _ counts: (Int, Int)) -> Double {
        switch loss {
        case .dpo(let beta): return Self.softplus(-beta * ((x[0] - x[1]) - (x[2] - x[3])))
        case .orpo(let lambda, _): return lambda * Self.softplus(-logOdds(x, counts))
        }
    }

    func logOdds(_ x: [Double], _ counts: (Int, Int)) -> Double {
        let ac = x[0] / Double(counts.0), ar = x[1] / Double(counts.1)
        return (ac - ar) - (Self.log1mexp(ac) - Self.log1mexp(ar))
    }

    /// The metrics Loom reports, per pair (averaged over pairs like the loss).
    func metrics(_ x: [Double], _ counts: (Int, Int)) -> [String: Double] {
        switch loss {
        case .dpo(let beta):
            let (rc, rr) = (beta * (x[0] - x[2]), beta * (x[1] - x[3]))
            return ["logps/chosen": x[0], "logps/rejected": x[1], "rewards/chosen": rc, "rewards/rejected": rr, "rewards/margins": rc - rr]
        case .orpo(let lambda, _):
            let lo = logOdds(x, counts), ac = x[0] / Double(counts.0), ar = x[1] / Double(counts.1)
            return [
                "log_odds_chosen": lo, "log_odds_ratio": -Self.softplus(-lo), "rewards/chosen": lambda * ac,
                "rewards/rejected": lambda * ar, "rewards/margins": lambda * (ac - ar),
            ]
        }
    }

    static func derivative(_ f: ([Double]) -> Double, _ x: [Double], _ k: Int) -> Double {
        let h = 1e-4 * max(1, abs(x[k]))
        var a = x, b = x
        a[k] += h
        b[k] -= h
        return (f(a) - f(b)) / (2 * h)
    }

    /// Loss, metrics and gradients (each with its error scale) of `batches` for the policy `r`, with the DPO
    /// reference log-probabilities (value, sd) per sequence.
    func run(_ r: ReferenceLlama, batches: [PreferenceBatch], references: [Segment: (Double, Double)] = [:])
        -> (loss: (Double, Double), metrics: [String: (Double, Double)], grads: [String: Rounded])
    {
        let pairs = Double(batches.reduce(0) { $0 + $1.pairs })
        let promptInNLL: Bool? = { if case .orpo(_, let p) = loss { return p } else { return nil } }()
        let nllTokens = Double(promptInNLL.map { p in batches.reduce(0) { $0 + $1.nllTargets(promptIncluded: p) } } ?? 0)
        var total = 0.0, variance = 0.0, nll = 0.0, nllVariance = 0.0
        var metricSums: [String: (Double, Double)] = [:]
        var grads: [String: Rounded] = [:]
        for pb in batches {
            r.forward(pb.batch)
            let lp = r.crossEntropy(targets: pb.batch.targets, weights: [Double](repeating: 0, count: pb.batch.targets.count)).logps
            var sum = [Double](repeating: 0, count: pb.segments.count), sumVar = sum, count = [Int](repeating: 0, count: sum.count)
            for n in pb.sequence.indices where pb.sequence[n] >= 0 && pb.completion[n] {
                let s = Int(pb.sequence[n])
                sum[s] += lp.v[n]
                sumVar[s] += lp.sd[n] * lp.sd[n]
                count[s] += 1
            }
            var coef = [Double](repeating: 0, count: sum.count), coefSD = coef
            for k in 0..<pb.pairs {
                let (c, j) = (2 * k, 2 * k + 1)
                let refs = references.isEmpty ? (0.0, 0.0, 0.0, 0.0) : (
                    references[pb.segments[c]]!.0, references[pb.segments[j]]!.0, references[pb.segments[c]]!.1, references[pb.segments[j]]!.1)
                let x = [sum[c], sum[j], refs.0, refs.1], sd = [sumVar[c].squareRoot(), sumVar[j].squareRoot(), refs.2, refs.3]
                let f = { (x: [Double]) in term(x, (count[c], count[j])) }
                total += f(x) / pairs
                // The references' errors enter the loss here; the policy's, token by token below.
                variance += (2...3).reduce(0.0) { $0 + pow(Self.derivative(f, x, $1) * sd[$1] / pairs, 2) }
                for (name, m) in metrics(x, (count[c], count[j])) {
                    let g = { (x: [Double]) in metrics(x, (count[c], count[j]))[name]! }
                    let v = (0...3).reduce(0.0) { $0 + pow(Self.derivative(g, x, $1) * sd[$1] / pairs, 2) }
                    metricSums[name] = ((metricSums[name]?.0 ?? 0) + m / pairs, (metricSums[name]?.1 ?? 0) + v)
                }
                for (side, i) in [(c, 0), (j, 1)] {
                    let d = { (x: [Double]) in Self.derivative(f, x, i) }
                    coef[side] = d(x) / pairs
                    coefSD[side] = (0...3).reduce(0.0) { $0 + pow(Self.derivative(d, x, $1) * sd[$1] / pairs, 2) }.squareRoot()
                }
            }
            // Per token: w = −d loss/d logp (the completion's −coef, plus ORPO's NLL share), its error from the
            // sequences' errors, and the float32 rounding of the weight Loom stores.
            var w = [Double](repeating: 0, count: lp.count), wSD = w
            for n in lp.v.indices where pb.sequence[n] >= 0 {
                let s = Int(pb.sequence[n])
                if pb.completion[n] { (w[n], wSD[n]) = (-coef[s], coefSD[s]) }
                if let p = promptInNLL, s % 2 == 0, p || pb.completion[n] {
                    w[n] += 1 / nllTokens
                    nll -= lp.v[n] / nllTokens
                    nllVariance += pow(lp.sd[n] / nllTokens, 2)
                }
                variance += pow(w[n] * lp.sd[n], 2)
                wSD[n] = rss(wSD[n], u32 * w[n])
            }
            r.crossEntropy(targets: pb.batch.targets, weights: w, weightErrors: wSD)
            r.backward()
            for (name, g) in r.grads { grads[name] = grads[name].map { $0 + g } ?? g }
        }
        if promptInNLL != nil { metricSums["nll_loss"] = (nll, nllVariance) }
        return ((total + nll, variance.squareRoot()), metricSums.mapValues { ($0.0, $0.1.squareRoot()) }, grads)
    }

    /// Per sequence of `rows`: Σ log p over its completion (value, sd), from the model `r`, `batchSize` rows at a time
    /// (as PreferenceObjective.referenceLogps).
    static func sequenceLogps(_ r: ReferenceLlama, data: DatasetBuilder, rows: [Row], batchSize: Int = 8) -> [Segment: (Double, Double)] {
        var out: [Segment: (Double, Double)] = [:]
        for i in stride(from: 0, to: rows.count, by: batchSize) {
            let pb = data.preferenceBatch(Array(rows[i..<min(rows.count, i + batchSize)]))
            r.forward(pb.batch)
            let lp = r.crossEntropy(targets: pb.batch.targets, weights: [Double](repeating: 0, count: pb.batch.targets.count)).logps
            for (s, seg) in pb.segments.enumerated() {
                let ns = pb.sequence.indices.filter { pb.sequence[$0] == Int32(s) && pb.completion[$0] }
                out[seg] = (ns.reduce(0.0) { $0 + lp.v[$1] }, ns.reduce(0.0) { $0 + lp.sd[$1] * lp.sd[$1] }.squareRoot())
            }
        }
        return out
    }
}

final class PreferenceTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    /// The fixture's two pairs as segments: each sequence its real tokens, completion positions from the mask.
    func fixturePairs(_ p: [String: Tensor]) -> [PreferencePair] {
        let T = 16
        func seg(_ side: String, _ i: Int) -> Segment {
            let ids = p["\(side)_input_ids"]!.int64s(), att = p["\(side)_attention_mask"]!.int64s()
            let mask = p["\(side)_completion_mask"]!.int64s()
            let n = (0..<T).filter { att[i * T + $0] != 0 }.count
            return Segment(
                tokens: (0..<n).map { Int32(ids[i * T + $0]) }, loss: (0..<n).map { mask[i * T + $0] != 0 })
        }
        let prompts = p["prompt_lengths"]!.int64s()
        return (0..<2).map { PreferencePair(chosen: seg("chosen", $0), rejected: seg("rejected", $0), promptLength: Int(prompts[$0])) }
    }

    func scalar(_ t: Tensor?) -> Double { Double(t!.floats()[0]) }
    func mean(_ t: Tensor?) -> Double { t!.floats().reduce(0) { $0 + Double($1) } / Double(t!.floats().count) }

    /// Both layouts of the fixture pairs: one pair per row (sequence limit 16), and both pairs packed in one row.
    func layouts(_ pairs: [PreferencePair]) -> [(String, DatasetBuilder, [Row])] {
        let unpacked = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 16)
        let packed = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 32)
        let a = unpacked.preferenceRows(pairs), b = packed.preferenceRows(pairs)
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(b.count, 1)
        return [("unpacked", unpacked, a), ("packed", packed, b)]
    }

    /// The fixture's scalars in float64 (scalars.json): no float32 storage error.
    func f64(_ key: String) throws -> [Double] {
        let j = try JSONValue.parse(try FS.readText(try fixtureDirectory() + "/scalars.json"))[key]
        return try XCTUnwrap(j?.arrayValue?.compactMap(\.doubleValue) ?? j?.doubleValue.map { [$0] }, key)
    }

    /// Every parameter's gradient against the fixture's, entry by entry: 8 sd of the float32 rounding (the reference
    /// model's backward with the loss's per-token weights and their errors) + the fixture's float32 storage.
    func checkGradients(_ model: LlamaModel, _ ref: [String: Tensor], prefix: String, expected: [String: Rounded]) throws -> Double {
        var worst = 0.0
        for info in model.params.infos {
            let want = try XCTUnwrap(ref[prefix + info.name], prefix + info.name).floats()
            let got = doubles(model.params.tensor(info, gradient: true).floats())
            let b = expected[info.name]!.bound
            // 8 sd (the reference's backward with the loss's weights) + the fixture's storage, entry by entry.
            worst = max(worst, assertWithinBound(got, doubles(want), want.indices.map { b[$0] + storageBound(want[$0]) }, prefix + info.name))
        }
        return worst
    }

    func testDPOMatchesTRLFixture() throws {
        let dir = try fixtureDirectory()
        let p = try tensors(dir + "/prefs.safetensors")
        let pairs = fixturePairs(p)
        XCTAssertEqual(pairs.map { $0.chosen.loss.filter { $0 }.count }, [8, 9])
        let refModel = try LlamaModel.load(directory: dir + "/ref")
        let (pc, pr) = (try f64("dpo.policy_chosen_logps"), try f64("dpo.policy_rejected_logps"))
        let (rc, rr) = (try f64("dpo.ref_chosen_logps"), try f64("dpo.ref_rejected_logps"))
        for (name, builder, rows) in layouts(pairs) {
            // Reference log-probabilities once, from ref/, before the policy exists.
            let references = PreferenceObjective.referenceLogps(model: refModel, data: builder, rows: rows, batchSize: 8)
            let expectedRefs = ReferencePreference.sequenceLogps(ReferenceLlama(model: refModel), data: builder, rows: rows)
            for (i, pair) in pairs.enumerated() {
                // A sum of 8–9 token log-probs (~−50): 8 sd of its rounding, each token's carried from its logits.
                XCTAssertEqual(references[pair.chosen]!, rc[i], accuracy: lambda * expectedRefs[pair.chosen]!.1, name)
                XCTAssertEqual(references[pair.rejected]!, rr[i], accuracy: lambda * expectedRefs[pair.rejected]!.1, name)
            }
            let model = try LlamaModel.load(directory: dir)
            let objective = PreferenceObjective(loss: .dpo(beta: 0.1), data: builder)
            objective.references = references
            model.params.grads.zero()
            let r = objective.accumulate(model: model, microBatches: [rows])
            let e = ReferencePreference(loss: .dpo(beta: 0.1)).run(
                ReferenceLlama(model: model), batches: [builder.preferenceBatch(rows)], references: expectedRefs)
            // Loss and metrics: 8 sd of the policy's and the reference's log-prob errors through their derivatives;
            // against scalars.json's float64 values (z from its four log-prob sums).
            XCTAssertEqual(r.loss, try f64("dpo.loss")[0], accuracy: lambda * e.loss.1, "\(name) DPO loss")
            XCTAssertEqual(r.metrics["logps/chosen"]!, (pc[0] + pc[1]) / 2, accuracy: lambda * e.metrics["logps/chosen"]!.1, name)
            XCTAssertEqual(r.metrics["logps/rejected"]!, (pr[0] + pr[1]) / 2, accuracy: lambda * e.metrics["logps/rejected"]!.1, name)
            // z = (πc − πr) − (refc − refr); the margin is β·mean(z); accuracy counts z > 0.
            let z = (0..<2).map { (pc[$0] - pr[$0]) - (rc[$0] - rr[$0]) }
            XCTAssertEqual(r.metrics["rewards/margins"]!, 0.1 * (z[0] + z[1]) / 2, accuracy: lambda * e.metrics["rewards/margins"]!.1, name)
            XCTAssertEqual(r.metrics["rewards/accuracies"]!, Double(z.filter { $0 > 0 }.count) / 2, name)
            let worst = try checkGradients(model, p, prefix: "dpo.grad.", expected: e.grads)
            print("llama-tiny DPO \(name): loss error \(abs(r.loss - (try f64("dpo.loss")[0]))) (bound \(lambda * e.loss.1)), gradients' worst error/bound \(worst)")
            // Evaluation (forward only), one row per batch: a second float32 evaluation, its own rounding
            // independent of the first, so within 8·√2 sd of it.
            let before = model.params.tensor(model.params.infos[0], gradient: true).floats()
            XCTAssertEqual(objective.evaluate(model: model, rows: rows, batchSize: 1)!.loss, r.loss, accuracy: lambda * 2.0.squareRoot() * e.loss.1)
            XCTAssertEqual(model.params.tensor(model.params.infos[0], gradient: true).floats(), before)
        }
    }

    func testORPOMatchesTRLFixture() throws {
        let dir = try fixtureDirectory()
        let p = try tensors(dir + "/prefs.safetensors")
        let pairs = fixturePairs(p)
        for (name, builder, rows) in layouts(pairs) {
            let model = try LlamaModel.load(directory: dir)
            let objective = PreferenceObjective(loss: .orpo(lambda: 0.1, promptInNLL: true), data: builder)
            XCTAssertEqual(builder.preferenceBatch(rows).nllTargets(promptIncluded: true), 27)
            XCTAssertEqual(builder.preferenceBatch(rows).nllTargets(promptIncluded: false), 17)
            model.params.grads.zero()
            let r = objective.accumulate(model: model, microBatches: [rows])
            let e = ReferencePreference(loss: .orpo(lambda: 0.1, promptInNLL: true)).run(
                ReferenceLlama(model: model), batches: [builder.preferenceBatch(rows)])
            // Loss, NLL and log-odds: 8 sd of the token log-probs' errors through their derivatives; against
            // scalars.json's float64 values (log σ(log odds) from its log odds).
            let logOdds = try f64("orpo.log_odds")
            XCTAssertEqual(r.loss, try f64("orpo.loss")[0], accuracy: lambda * e.loss.1, "\(name) ORPO loss")
            XCTAssertEqual(r.metrics["nll_loss"]!, try f64("orpo.nll")[0], accuracy: lambda * e.metrics["nll_loss"]!.1, name)
            XCTAssertEqual(r.metrics["log_odds_chosen"]!, (logOdds[0] + logOdds[1]) / 2, accuracy: lambda * e.metrics["log_odds_chosen"]!.1, name)
            let logSigmoid = logOdds.map { -ReferencePreference.softplus(-$0) }
            XCTAssertEqual(r.metrics["log_odds_ratio"]!, (logSigmoid[0] + logSigmoid[1]) / 2, accuracy: lambda * e.metrics["log_odds_ratio"]!.1, name)
            let worst = try checkGradients(model, p, prefix: "orpo.grad.", expected: e.grads)
            print("llama-tiny ORPO \(name): loss error \(abs(r.loss - (try f64("orpo.loss")[0]))) (bound \(lambda * e.loss.1)), gradients' worst error/bound \(worst)")
            let c = PreferenceObjective(loss: .orpo(lambda: 0.1, promptInNLL: false), data: builder)
            let got = try XCTUnwrap(c.evaluate(model: model, rows: rows, batchSize: 8))
            let ce = ReferencePreference(loss: .orpo(lambda: 0.1, promptInNLL: false)).run(
                ReferenceLlama(model: model), batches: [builder.preferenceBatch(rows)])
            // The completion-only NLL variant (scalars only in the fixture): 8 sd as above.
            XCTAssertEqual(got.loss, try f64("orpo.loss_completion_only_nll")[0], accuracy: lambda * ce.loss.1, name)
            XCTAssertEqual(got.metrics["nll_loss"]!, try f64("orpo.nll_completion_only")[0], accuracy: lambda * ce.metrics["nll_loss"]!.1, name)
        }
    }

    // MARK: - Packing

    func textPairs(_ n: Int) -> [JSONValue] {
        let answers = ["Aspirin lowers fever.", "It does nothing.", "Forty patients.", "The fever went up.", "Three days.", "Rarely, and mildly."]
        return (0..<n).map { (i: Int) -> JSONValue in
            let prompt: String = "Q\(i)? " + String(sentences[i % sentences.count].prefix(12 + i))
            let rejected: String = answers[(i + 1 + i / 3) % answers.count] + String(repeating: " no", count: i % 4)
            return ["id": .string("p\(i)"), "prompt": .string(prompt), "chosen": .string(answers[i % answers.count]), "rejected": .string(rejected)]
        }
    }

    /// Several pairs packed into one row (block-diagonal mask, positions restarting) give the loss and gradients of
    /// the same pairs one per row, for DPO (with a reference model of other weights) and both ORPO forms.
    func testPackedPairsGiveTheUnpackedLossAndGradients() throws {
        let builder = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 160)
        let pairs = try textPairs(9).map { try builder.preferencePair(of: $0).get() }
        let packed = builder.preferenceRows(pairs)
        let unpacked = pairs.map { Row(segments: [$0.chosen, $0.rejected]) }
        XCTAssertLessThan(packed.count, pairs.count / 2, "pairs should pack several to a row")
        XCTAssertGreaterThanOrEqual(packed.map { $0.segments.count / 2 }.max()!, 3)
        let config = LlamaConfig.preset("tiny", vocabSize: 259)!
        let model = try LlamaModel(config: config), ref = try LlamaModel(config: config)
        model.initialize(seed: 3, std: 0.1)
        ref.initialize(seed: 4, std: 0.1)
        let references = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: unpacked, batchSize: 4)
        let packedRefs = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: packed, batchSize: 2)
        XCTAssertEqual(Set(packedRefs.keys), Set(references.keys))
        // Two layouts are two float32 evaluations with independent rounding: they may differ by 8 sd of the
        // difference, √(sd_a² + sd_b²), each sd from the reference model run on that layout.
        let refA = ReferencePreference.sequenceLogps(ReferenceLlama(model: ref), data: builder, rows: unpacked, batchSize: 4)
        let refB = ReferencePreference.sequenceLogps(ReferenceLlama(model: ref), data: builder, rows: packed, batchSize: 2)
        for (k, v) in references { XCTAssertEqual(packedRefs[k]!, v, accuracy: lambda * rss(refA[k]!.1, refB[k]!.1)) }
        let microBatches = [Array(unpacked[0..<4]), Array(unpacked[4..<8]), [unpacked[8]]]
        var worst = 0.0
        for loss in [PreferenceLoss.dpo(beta: 0.5), .orpo(lambda: 0.5, promptInNLL: true), .orpo(lambda: 0.5, promptInNLL: false)] {
            let o = PreferenceObjective(loss: loss, data: builder)
            o.references = references
            model.params.grads.zero()
            // Unpacked: 9 rows in micro-batches of 4, 4, 1; packed: its rows in one micro-batch.
            let a = o.accumulate(model: model, microBatches: microBatches)
            let ga = model.params.grads.pointer, n = model.params.count
            let gradA = Array(UnsafeBufferPointer(start: ga, count: n))
            model.params.grads.zero()
            let b = o.accumulate(model: model, microBatches: [packed])
            let gradB = Array(UnsafeBufferPointer(start: model.params.grads.pointer, count: n))
            XCTAssertGreaterThan(gradA.map(abs).max()!, 0)
            // Both runs read the same reference log-probabilities: their errors do not enter the difference.
            let exact = references.mapValues { ($0, 0.0) }
            let ea = ReferencePreference(loss: loss).run(ReferenceLlama(model: model), batches: microBatches.map(builder.preferenceBatch), references: exact)
            let eb = ReferencePreference(loss: loss).run(ReferenceLlama(model: model), batches: [builder.preferenceBatch(packed)], references: exact)
            // Loss, metrics and every gradient entry: 8·√(sd_a² + sd_b²).
            XCTAssertEqual(a.loss, b.loss, accuracy: lambda * rss(ea.loss.1, eb.loss.1), "\(loss)")
            for (k, v) in a.metrics where k != "rewards/accuracies" {
                XCTAssertEqual(b.metrics[k]!, v, accuracy: lambda * rss(ea.metrics[k]!.1, eb.metrics[k]!.1), "\(loss) \(k)")
            }
            // A count of pairs whose reward margin is > 0: margins here are far from 0 next to their rounding.
            XCTAssertEqual(a.metrics["rewards/accuracies"], b.metrics["rewards/accuracies"], "\(loss)")
            for info in model.params.infos {
                let (sa, sb) = (ea.grads[info.name]!.sd, eb.grads[info.name]!.sd)
                let r = info.offset..<info.offset + info.count
                let bound = (0..<info.count).map { lambda * rss(sa[$0], sb[$0]) }
                // Per gradient entry: 8·√(sd_a² + sd_b²), each layout's sd from the reference.
                worst = max(worst, assertWithinBound(doubles(Array(gradB[r])), doubles(Array(gradA[r])), bound, "\(loss) \(info.name)"))
            }
        }
        print("packed against unpacked preference pairs: gradients' worst difference/bound \(worst)")
    }

    // MARK: - Records

    func testStringPairsTrainOnCompletionTokensOnly() throws {
        let b = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 64)
        let p = try b.preferencePair(of: ["prompt": "Q?", "chosen": "yes", "rejected": "no"]).get()
        XCTAssertEqual(p.promptLength, 2)
        XCTAssertEqual(p.chosen.tokens, [81, 63, 121, 101, 115, 256])
        XCTAssertEqual(p.chosen.loss, [false, false, true, true, true, true])
        XCTAssertEqual(p.rejected.tokens, [81, 63, 110, 111, 256])
        let batch = b.preferenceBatch(b.preferenceRows([p]))
        // Targets everywhere inside the sequences; completion flags on the completion's tokens (predicted from the
        // token before each); padding belongs to no sequence.
        XCTAssertEqual(Array(batch.batch.targets[0..<6]), [63, 121, 101, 115, 256, -1])
        XCTAssertEqual(Array(batch.completion[0..<6]), [false, true, true, true, true, false])
        XCTAssertEqual(Array(batch.sequence[0..<12]), [0, 0, 0, 0, 0, -1, 1, 1, 1, 1, -1, -1])
        XCTAssertEqual(Array(batch.batch.positions[6..<11]), [0, 1, 2, 3, 4])
        XCTAssertEqual(Array(batch.batch.segStart[6..<11]), [6, 6, 6, 6, 6])
        XCTAssertEqual(batch.batch.length, 128)
    }

    func testConversationalPairsThroughTheChatTemplate() throws {
        let b = DatasetBuilder(codec: ByteCodec(), objective: .orpo, length: 256)
        let prompt: JSONValue = [
            ["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello"], ["role": "user", "content": "Fever?"],
        ]
        let p = try b.preferencePair(
            of: ["prompt": prompt, "chosen": [["role": "assistant", "content": "Rest."]], "rejected": [["role": "assistant", "content": "Run."]]]
        ).get()
        let codec = ByteCodec()
        // Only the chosen answer and its <|im_end|> carry loss; the earlier assistant turn "Hello" is prompt.
        let trained = zip(p.chosen.tokens, p.chosen.loss).filter(\.1).map(\.0)
        XCTAssertEqual(codec.decode(trained), "Rest.<|im_end|>")
        XCTAssertEqual(codec.decode(Array(p.chosen.tokens.prefix(p.promptLength))), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nFever?<|im_end|>\n")
        XCTAssertEqual(codec.decode(Array(p.rejected.tokens.dropFirst(p.promptLength))), "<|im_start|>assistant\nRun.<|im_end|>\n")
        // Implicit prompt: the shared leading messages of two full conversations.
        let full = { (a: String) -> JSONValue in
            [["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello"], ["role": "user", "content": "Fever?"], ["role": "assistant", "content": .string(a)]]
        }
        let q = try b.preferencePair(of: ["chosen": full("Rest."), "rejected": full("Run.")]).get()
        XCTAssertEqual(q, p)
        // A string prompt with message completions is a user turn.
        let s = try b.preferencePair(of: ["prompt": "Fever?", "chosen": [["role": "assistant", "content": "Rest."]], "rejected": "Run."]).get()
        XCTAssertEqual(codec.decode(s.chosen.tokens), "<|im_start|>user\nFever?<|im_end|>\n<|im_start|>assistant\nRest.<|im_end|>\n")
    }

    func testLongPairsKeepThePromptEndAndBadRecordsSayWhy() throws {
        let b = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 16)
        let p = try b.preferencePair(of: ["prompt": "0123456789abcdef", "chosen": "XYZ", "rejected": "no"]).get()
        XCTAssertTrue(p.truncated)
        XCTAssertEqual(p.chosen.tokens.count, 16)
        XCTAssertEqual(ByteCodec().decode(p.chosen.tokens), "456789abcdefXYZ<|endoftext|>")
        XCTAssertEqual(ByteCodec().decode(p.rejected.tokens), "456789abcdefno<|endoftext|>")
        func reason(_ r: JSONValue) -> String {
            if case .failure(let e) = b.preferencePair(of: r) { return e.message }
            return "accepted"
        }
        XCTAssertTrue(reason(["prompt": "Q", "chosen": "a"]).contains("'rejected'"))
        XCTAssertTrue(reason(["chosen": "a", "rejected": "b"]).contains("no 'prompt'"))
        XCTAssertTrue(reason(["prompt": 3, "chosen": "a", "rejected": "b"]).contains("'prompt'"))
        XCTAssertTrue(reason(["prompt": "Q", "chosen": [["role": "user", "content": "x"]], "rejected": "b"]).contains("no assistant message"))
    }

    func testLossPiecesAreStable() {
        // exp(∓800) underflows to 0, so both are exact: −800 − log1p(0) and −log1p(0).
        XCTAssertEqual(PreferenceMath.logSigmoid(-800), -800)
        XCTAssertEqual(PreferenceMath.logSigmoid(800), 0)
        // −log1p(1) against log(2): two libm results, ≤ 1 ulp each.
        XCTAssertEqual(PreferenceMath.logSigmoid(0), -log(2), accuracy: 2 * log(2).ulp)
        // log(−expm1(a)) with −expm1(−1e-20) within 1 ulp of 1e-20 (the next term, 5e-41, is below its ulp): the
        // logs differ by ≤ 2^-52 plus their own rounding, within 2 ulps of 46.
        XCTAssertEqual(PreferenceMath.log1mexp(-1e-20), log(1e-20), accuracy: 2 * abs(log(1e-20)).ulp)
        // log1p(−x) = −x − x²/2 − ...: x² ≈ 4e-44 is far below x's ulp (2e-38); exp and log1p add ≤ 2 ulps.
        XCTAssertEqual(PreferenceMath.log1mexp(-50), -exp(-50), accuracy: 4 * exp(-50).ulp)
        // Two routes to log(0.632...): arguments within 2 ulps of each other (expm1; exp then 1 − x), through 1/x.
        let x: Double = 1 - exp(-1)
        XCTAssertEqual(PreferenceMath.log1mexp(-1), log(x), accuracy: 4 * x.ulp / x)
        // The pair term's derivatives against central differences of its loss, in double: truncation estimated
        // from the difference at 2h (Richardson, counted twice), plus the terms' rounding, 2·ulp(term)/(2h).
        for loss in [PreferenceLoss.dpo(beta: 0.3), .orpo(lambda: 0.7, promptInNLL: true)] {
            let f = { (c: Double, r: Double) in
                PreferenceMath.pairTerm(loss, chosen: c, chosenCount: 5, rejected: r, rejectedCount: 3, refChosen: -9, refRejected: -4).term
            }
            let t = PreferenceMath.pairTerm(loss, chosen: -7, chosenCount: 5, rejected: -5, rejectedCount: 3, refChosen: -9, refRejected: -4)
            let h = 1e-5
            let dc: (Double) -> Double = { h in (f(-7 + h, -5) - f(-7 - h, -5)) / (2 * h) }
            let dr: (Double) -> Double = { h in (f(-7, -5 + h) - f(-7, -5 - h)) / (2 * h) }
            let rounding: Double = 2 * t.term.ulp / (2 * h)
            let (tc, tr): (Double, Double) = (2 * abs(dc(2 * h) - dc(h)) / 3, 2 * abs(dr(2 * h) - dr(h)) / 3)
            XCTAssertEqual(t.dChosen, dc(h), accuracy: tc + rounding, "\(loss)")
            XCTAssertEqual(t.dRejected, dr(h), accuracy: tr + rounding, "\(loss)")
        }
    }

    // MARK: - The stage

    func stageConfig(_ objective: String, steps: Int) -> TrainConfig {
        var c = TrainConfig()
        c.objective = objective
        c.steps = steps
        c.batchSize = 4
        c.seqLen = 64
        c.lr = 3e-3
        c.warmup = 2
        c.evalEvery = 5
        c.checkpointEvery = 0
        c.evalFraction = 0.1
        return c
    }

    /// DPO through the stage: reference log-probabilities written once, rewards/margins grow from 0, bad records are
    /// rejected with their line; ORPO's loss falls.
    func testStageTrainsDPOAndORPO() throws {
        let dir = tempDir("dpo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var records = textPairs(24)
        records.insert(["id": "bad", "prompt": "Q", "chosen": "only one side"], at: 3)
        let input = try recordsDirectory(records, in: dir)
        var c = stageConfig("dpo", steps: 20)
        c.beta = 0.5
        let r = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/dpo", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.rejects, 1)
        XCTAssertTrue(try FS.readText(dir + "/dpo/rejects.jsonl").contains("\"line\":4"))
        XCTAssertEqual(r.manifest.counts["pairs"]?.intValue, 24)
        let refs = try FS.readText(dir + "/dpo/reference_logps.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(refs.count, 24)
        XCTAssertLessThan(refs[0]["chosen"]!.doubleValue!, 0)
        let lines = try FS.readText(dir + "/dpo/metrics.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.count, 20)
        // The policy starts as the reference: every reward 0, loss log 2, up to rounding: z = (πc − refc) − (πr − refr)
        // compares two evaluations of the same sums (the reference's in other batches), sd √2·√(sd_c² + sd_r²) from the
        // float64 reference of the stage's starting model; the loss moves by β/2 of a mean of z's, the margin by β.
        let start = try LlamaModel(config: LlamaConfig.preset("tiny", vocabSize: 259)!)
        start.initialize(seed: UInt64(c.seed))
        let sb = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: c.seqLen)
        let pairs = records.compactMap { try? sb.preferencePair(of: $0).get() }
        let sds = ReferencePreference.sequenceLogps(
            ReferenceLlama(model: start), data: sb, rows: pairs.map { Row(segments: [$0.chosen, $0.rejected]) })
        let sdZ = pairs.map { 2.0.squareRoot() * rss(sds[$0.chosen]!.1, sds[$0.rejected]!.1) }.max()!
        XCTAssertEqual(lines[0]["loss"]!.doubleValue!, log(2), accuracy: lambda * c.beta! / 2 * sdZ)
        XCTAssertEqual(lines[0]["rewards/margins"]!.doubleValue!, 0, accuracy: lambda * c.beta! * sdZ)
        print("DPO stage, first step: loss - log 2 = \(lines[0]["loss"]!.doubleValue! - log(2)) (bound \(lambda * c.beta! / 2 * sdZ)), margin \(lines[0]["rewards/margins"]!.doubleValue!) (bound \(lambda * c.beta! * sdZ))")
        // Training outcomes, not rounding: 20 steps at lr 3e-3 must separate chosen from rejected and lower the loss.
        XCTAssertGreaterThan(lines[19]["rewards/margins"]!.doubleValue!, 0.5)
        XCTAssertGreaterThan(lines[19]["rewards/accuracies"]!.doubleValue!, 0.7)
        XCTAssertLessThan(lines[19]["loss"]!.doubleValue!, 0.5)
        XCTAssertNotNil(lines[19]["eval_loss"]?.doubleValue)
        XCTAssertNotNil(lines[19]["eval_rewards/margins"]?.doubleValue)
        XCTAssertNil(lines[19]["eval_perplexity"])
        _ = try LlamaModel.load(directory: dir + "/dpo")

        let o = try StageRunner.run(
            TrainStage(config: stageConfig("orpo", steps: 20), input: input, threads: 2), directory: dir + "/orpo",
            options: RunOptions(quiet: true))
        XCTAssertFalse(o.failed)
        XCTAssertFalse(FS.exists(dir + "/orpo/reference_logps.jsonl"))
        let ol = try FS.readText(dir + "/orpo/metrics.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        // A training outcome, not rounding: 20 steps lower ORPO's loss by 30%.
        XCTAssertLessThan(ol[19]["loss"]!.doubleValue!, ol[0]["loss"]!.doubleValue! * 0.7)
        XCTAssertNotNil(ol[19]["log_odds_ratio"]?.doubleValue)
        XCTAssertLessThan(ol[19]["nll_loss"]!.doubleValue!, ol[0]["nll_loss"]!.doubleValue!)
    }

    /// DPO against a separate reference model: a run stopped after step 5 and run again gives the metrics and model
    /// bytes of an uninterrupted run (one thread), with the reference log-probabilities stored beside the checkpoints.
    func testDPOWithReferenceModelResumesExactly() throws {
        let dir = tempDir("dpo-resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try recordsDirectory(textPairs(12), in: dir)
        let ref = try LlamaModel(config: LlamaConfig.preset("tiny", vocabSize: 259)!)
        ref.initialize(seed: 9)
        try ref.save(directory: dir + "/ref")
        var c = stageConfig("dpo", steps: 8)
        c.refModel = dir + "/ref"
        c.checkpointEvery = 2
        c.evalFraction = 0
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/a", options: RunOptions(quiet: true))
        var stopped = try TrainStage(config: c, input: input, threads: 1)
        stopped.stopAfterStep = 5
        XCTAssertThrowsError(try StageRunner.run(stopped, directory: dir + "/b", options: RunOptions(quiet: true)))
        let stored = dir + "/b/checkpoints/reference_logps.safetensors"
        XCTAssertTrue(FS.exists(stored))
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/b", options: RunOptions(quiet: true))
        let a = try FS.readText(dir + "/a/metrics.jsonl")
        XCTAssertEqual(try FS.readText(dir + "/b/metrics.jsonl"), a)
        XCTAssertEqual(
            FileManager.default.contents(atPath: dir + "/b/model.safetensors"), FileManager.default.contents(atPath: dir + "/a/model.safetensors"))
        // The policy (a fresh model of seed 1) is not the reference: rewards differ from 0 at the first step.
        let first = try JSONValue.parse(String(a.split(separator: "\n")[0]))
        // Different weights, not rounding: the margin must clear what rounding alone can give, ≲ 3e-5 for a model of
        // this size (8 sd, as computed in testStageTrainsDPOAndORPO).
        XCTAssertGreaterThan(abs(first["rewards/margins"]!.doubleValue!), 1e-4)
        // The stored values belong to their run only.
        let builder = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 64)
        let pairs = try textPairs(12).map { try builder.preferencePair(of: $0).get() }
        let loaded = try XCTUnwrap(PreferenceObjective.loadReferences(stored, pairs: pairs, fingerprint: readFingerprint(stored)))
        let fresh = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: builder.preferenceRows(pairs), batchSize: 4)
        // Stored as F64 and recomputed by the same code on the same batches: the same numbers, bit for bit.
        for (k, v) in fresh { XCTAssertEqual(loaded[k]!, v) }
        XCTAssertNil(PreferenceObjective.loadReferences(stored, pairs: pairs, fingerprint: "another run"))
        let fp = try readFingerprint(stored)
        XCTAssertNil(PreferenceObjective.loadReferences(stored, pairs: Array(pairs.prefix(3)), fingerprint: fp))
    }

    func readFingerprint(_ path: String) throws -> String {
        try XCTUnwrap(SafeTensors.read(path).metadata.first { $0.0 == "fingerprint" }?.1)
    }

    func testPreferenceOptionsAreChecked() {
        var c = TrainConfig()
        c.beta = 0.1
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("beta is DPO's")) }
        c.objective = "dpo"
        XCTAssertNoThrow(try c.validate())
        c.beta = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("beta must be positive")) }
        c = TrainConfig()
        c.objective = "orpo"
        c.orpoNll = "prompt"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("full or completion")) }
        // cpt/sft configs encode as before (no preference keys), so their fingerprints do not change.
        let j = try? JSONValue(encoding: TrainConfig())
        XCTAssertNil(j?["beta"])
        XCTAssertNil(j?["orpo_nll"])
    }
}
