// DPO and ORPO: against the PyTorch/TRL reference tensors of $LOOM_SHARED/fixtures/llama-tiny/prefs.safetensors
// (loss within 1e-5, every parameter's gradient within 1e-3 relative), packed pairs against the same pairs unpacked,
// records in TRL's preference formats, and the stage end to end.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

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

    func checkGradients(_ model: LlamaModel, _ ref: [String: Tensor], prefix: String) throws {
        for info in model.params.infos {
            let want = try XCTUnwrap(ref[prefix + info.name], prefix + info.name).floats()
            let got = model.params.tensor(info, gradient: true).floats()
            XCTAssertLessThanOrEqual(relativeError(got, want), 1e-3, "\(prefix)\(info.name)")
        }
    }

    /// Both layouts of the fixture pairs: one pair per row (sequence limit 16), and both pairs packed in one row.
    func layouts(_ pairs: [PreferencePair]) -> [(String, DatasetBuilder, [Row])] {
        let unpacked = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 16)
        let packed = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 32)
        let a = unpacked.preferenceRows(pairs), b = packed.preferenceRows(pairs)
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(b.count, 1)
        return [("unpacked", unpacked, a), ("packed", packed, b)]
    }

    func testDPOMatchesTRLFixture() throws {
        let dir = try fixtureDirectory()
        let p = try tensors(dir + "/prefs.safetensors")
        let pairs = fixturePairs(p)
        XCTAssertEqual(pairs.map { $0.chosen.loss.filter { $0 }.count }, [8, 9])
        for (name, builder, rows) in layouts(pairs) {
            // Reference log-probabilities once, from ref/, before the policy exists.
            var references: [Segment: Double]
            do {
                let ref = try LlamaModel.load(directory: dir + "/ref")
                references = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: rows, batchSize: 8)
            }
            for (i, pair) in pairs.enumerated() {
                XCTAssertEqual(references[pair.chosen]!, Double(p["dpo.ref_chosen_logps"]!.floats()[i]), accuracy: 1e-4, name)
                XCTAssertEqual(references[pair.rejected]!, Double(p["dpo.ref_rejected_logps"]!.floats()[i]), accuracy: 1e-4, name)
            }
            let model = try LlamaModel.load(directory: dir)
            let objective = PreferenceObjective(loss: .dpo(beta: 0.1), data: builder)
            objective.references = references
            model.params.grads.zero()
            let r = objective.accumulate(model: model, microBatches: [rows])
            XCTAssertEqual(r.loss, scalar(p["dpo.loss"]), accuracy: 1e-5, "\(name) DPO loss")
            XCTAssertEqual(r.metrics["logps/chosen"]!, mean(p["dpo.policy_chosen_logps"]), accuracy: 1e-4, name)
            XCTAssertEqual(r.metrics["logps/rejected"]!, mean(p["dpo.policy_rejected_logps"]), accuracy: 1e-4, name)
            // z = dpo.logits; the margin is β·mean(z); accuracy counts z > 0.
            let z = p["dpo.logits"]!.floats().map(Double.init)
            XCTAssertEqual(r.metrics["rewards/margins"]!, 0.1 * (z[0] + z[1]) / 2, accuracy: 1e-5, name)
            XCTAssertEqual(r.metrics["rewards/accuracies"]!, Double(z.filter { $0 > 0 }.count) / 2, name)
            try checkGradients(model, p, prefix: "dpo.grad.")
            // Evaluation (forward only) gives the same loss and leaves the gradients alone.
            let before = model.params.tensor(model.params.infos[0], gradient: true).floats()
            XCTAssertEqual(objective.evaluate(model: model, rows: rows, batchSize: 1)!.loss, r.loss, accuracy: 1e-6)
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
            XCTAssertEqual(r.loss, scalar(p["orpo.loss"]), accuracy: 1e-5, "\(name) ORPO loss")
            XCTAssertEqual(r.metrics["nll_loss"]!, scalar(p["orpo.nll"]), accuracy: 1e-5, name)
            XCTAssertEqual(r.metrics["log_odds_chosen"]!, mean(p["orpo.log_odds"]), accuracy: 1e-5, name)
            XCTAssertEqual(r.metrics["log_odds_ratio"]!, mean(p["orpo.log_sigmoid_log_odds"]), accuracy: 1e-5, name)
            try checkGradients(model, p, prefix: "orpo.grad.")
            // The completion-only NLL variant (scalars only in the fixture).
            let c = PreferenceObjective(loss: .orpo(lambda: 0.1, promptInNLL: false), data: builder)
            let e = try XCTUnwrap(c.evaluate(model: model, rows: rows, batchSize: 8))
            XCTAssertEqual(e.loss, scalar(p["orpo.loss_completion_only_nll"]), accuracy: 1e-5, name)
            XCTAssertEqual(e.metrics["nll_loss"]!, scalar(p["orpo.nll_completion_only"]), accuracy: 1e-5, name)
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
        for (k, v) in references { XCTAssertEqual(packedRefs[k]!, v, accuracy: 1e-4 * abs(v)) }
        for loss in [PreferenceLoss.dpo(beta: 0.5), .orpo(lambda: 0.5, promptInNLL: true), .orpo(lambda: 0.5, promptInNLL: false)] {
            let o = PreferenceObjective(loss: loss, data: builder)
            o.references = references
            model.params.grads.zero()
            // Unpacked: 9 rows in micro-batches of 4, 4, 1; packed: its rows in one micro-batch.
            let a = o.accumulate(model: model, microBatches: [Array(unpacked[0..<4]), Array(unpacked[4..<8]), [unpacked[8]]])
            let ga = model.params.grads.pointer, n = model.params.count
            let gradA = Array(UnsafeBufferPointer(start: ga, count: n))
            model.params.grads.zero()
            let b = o.accumulate(model: model, microBatches: [packed])
            let gradB = Array(UnsafeBufferPointer(start: model.params.grads.pointer, count: n))
            XCTAssertEqual(a.loss, b.loss, accuracy: 1e-5 * abs(a.loss), "\(loss)")
            XCTAssertGreaterThan(gradA.map(abs).max()!, 0)
            XCTAssertLessThanOrEqual(relativeError(gradB, gradA), 1e-4, "\(loss) gradients")
            for (k, v) in a.metrics { XCTAssertEqual(b.metrics[k]!, v, accuracy: 1e-4 * max(1, abs(v)), "\(loss) \(k)") }
        }
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
        XCTAssertEqual(PreferenceMath.logSigmoid(-800), -800, accuracy: 1e-9)
        XCTAssertEqual(PreferenceMath.logSigmoid(800), 0, accuracy: 1e-12)
        XCTAssertEqual(PreferenceMath.logSigmoid(0), -log(2), accuracy: 1e-15)
        XCTAssertEqual(PreferenceMath.log1mexp(-1e-20), log(1e-20), accuracy: 1e-9)
        XCTAssertEqual(PreferenceMath.log1mexp(-50), -exp(-50), accuracy: 1e-30)
        XCTAssertEqual(PreferenceMath.log1mexp(-1), log(1 - exp(-1)), accuracy: 1e-15)
        // The pair term's derivatives against central differences of its loss.
        for loss in [PreferenceLoss.dpo(beta: 0.3), .orpo(lambda: 0.7, promptInNLL: true)] {
            let f = { (c: Double, r: Double) in
                PreferenceMath.pairTerm(loss, chosen: c, chosenCount: 5, rejected: r, rejectedCount: 3, refChosen: -9, refRejected: -4).term
            }
            let t = PreferenceMath.pairTerm(loss, chosen: -7, chosenCount: 5, rejected: -5, rejectedCount: 3, refChosen: -9, refRejected: -4)
            let h = 1e-5
            XCTAssertEqual(t.dChosen, (f(-7 + h, -5) - f(-7 - h, -5)) / (2 * h), accuracy: 1e-7, "\(loss)")
            XCTAssertEqual(t.dRejected, (f(-7, -5 + h) - f(-7, -5 - h)) / (2 * h), accuracy: 1e-7, "\(loss)")
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
        // The policy starts as the reference: every reward 0, loss log 2.
        XCTAssertEqual(lines[0]["loss"]!.doubleValue!, log(2), accuracy: 1e-5)
        XCTAssertEqual(lines[0]["rewards/margins"]!.doubleValue!, 0, accuracy: 1e-5)
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
        XCTAssertGreaterThan(abs(first["rewards/margins"]!.doubleValue!), 1e-4)
        // The stored values belong to their run only.
        let builder = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: 64)
        let pairs = try textPairs(12).map { try builder.preferencePair(of: $0).get() }
        let loaded = try XCTUnwrap(PreferenceObjective.loadReferences(stored, pairs: pairs, fingerprint: readFingerprint(stored)))
        let fresh = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: builder.preferenceRows(pairs), batchSize: 4)
        for (k, v) in fresh { XCTAssertEqual(loaded[k]!, v, accuracy: 1e-9) }
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
