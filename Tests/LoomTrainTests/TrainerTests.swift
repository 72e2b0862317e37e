// The training stage end to end on records written here: loss goes down, a killed run resumes to the same
// bytes, SFT trains on assistant tokens only, unusable records are rejected with their position.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

func tempDir(_ name: String) -> String {
    let d = NSTemporaryDirectory() + "loom-train-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: d)
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

func recordsDirectory(_ records: [JSONValue], in dir: String) throws -> String {
    let out = dir + "/records"
    _ = try StageRunner.run(RecordsStage(records: records), directory: out, options: RunOptions(quiet: true))
    return out
}

let sentences = [
    "The patient was given aspirin and the fever went down.", "Aspirin lowers fever in most patients.",
    "A fever is a rise in body temperature.", "The trial enrolled forty patients with fever.",
    "Most patients recovered within three days.", "Side effects were mild and rare.",
]

func textRecords(_ n: Int) -> [JSONValue] {
    (0..<n).map { i in ["id": .string("d\(i)"), "text": .string(sentences[i % sentences.count] + " " + sentences[(i * 7 + 3) % sentences.count])] }
}

final class TrainerTests: XCTestCase {
    func config(steps: Int) -> TrainConfig {
        var c = TrainConfig()
        c.steps = steps
        c.batchSize = 4
        c.seqLen = 64
        c.lr = 3e-3
        c.warmup = 2
        c.evalEvery = 3
        c.checkpointEvery = 2
        c.evalFraction = 0.1
        return c
    }

    func testLossGoesDownAndTheOutputIsAHuggingFaceModel() throws {
        let dir = tempDir("down")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try recordsDirectory(textRecords(40), in: dir)
        var c = config(steps: 40)
        c.evalEvery = 10
        let r = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/model", options: RunOptions(quiet: true))
        let lines = try FS.readText(dir + "/model/metrics.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.count, 40)
        let first = lines[0]["loss"]!.doubleValue!, last = lines[39]["loss"]!.doubleValue!
        // Not rounding: a fresh model (weights N(0, 0.02²), norms 1) has logits of sd √64·0.02 = 0.16, so its loss is
        // ln 259 + σ²/2 ≈ ln 259 + 0.013, moved by the batch's mean target logit (|·| ≲ 0.16); 0.3 covers both.
        XCTAssertEqual(first, log(259), accuracy: 0.3, "a fresh model starts near uniform over 259 byte-level ids")
        // A training outcome, not rounding: 40 steps on repetitive text cut the loss by 40%.
        XCTAssertLessThan(last, first * 0.6, "loss should fall on repetitive text: \(first) -> \(last)")
        XCTAssertNotNil(lines[39]["eval_loss"]?.doubleValue)
        XCTAssertEqual(r.manifest.counts["steps"]?.intValue, 40)
        let m = try LlamaModel.load(directory: dir + "/model")
        XCTAssertEqual(m.config.vocabSize, 259)
        XCTAssertTrue(try FS.readText(dir + "/model/loss.svg").contains("<polyline"))
        // Run again: up to date, nothing trained.
        let again = try StageRunner.run(TrainStage(config: c, input: input, threads: 2), directory: dir + "/model", options: RunOptions(quiet: true))
        XCTAssertTrue(again.skipped)
    }

    /// A run stopped after step 5 (its newest checkpoint is step 4) and run again gives the same metrics and the same
    /// model bytes as an uninterrupted run, with one thread.
    func testResumeFromCheckpointIsBitIdentical() throws {
        let dir = tempDir("resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try recordsDirectory(textRecords(30), in: dir)
        let c = config(steps: 8)
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/a", options: RunOptions(quiet: true))
        var stopped = try TrainStage(config: c, input: input, threads: 1)
        stopped.stopAfterStep = 5
        XCTAssertThrowsError(try StageRunner.run(stopped, directory: dir + "/b", options: RunOptions(quiet: true)))
        XCTAssertTrue(FS.exists(dir + "/b/checkpoints/step-000004/trainer_state.json"))
        XCTAssertEqual(try FS.readText(dir + "/b/checkpoints/metrics.jsonl").split(separator: "\n").count, 5)
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/b", options: RunOptions(quiet: true))
        XCTAssertEqual(try FS.readText(dir + "/b/metrics.jsonl"), try FS.readText(dir + "/a/metrics.jsonl"))
        XCTAssertEqual(
            FileManager.default.contents(atPath: dir + "/b/model.safetensors"), FileManager.default.contents(atPath: dir + "/a/model.safetensors"))
        // A different config never resumes another run's checkpoint.
        var other = c
        other.lr = 1e-3
        _ = try StageRunner.run(TrainStage(config: other, input: input, threads: 1), directory: dir + "/b", options: RunOptions(quiet: true))
        XCTAssertNotEqual(try FS.readText(dir + "/b/metrics.jsonl"), try FS.readText(dir + "/a/metrics.jsonl"))
    }

    /// A checkpoint is resumed only by the same run: when the starting model (an earlier stage) changes, the
    /// fine-tuning run starts over instead of continuing from weights trained on the old model.
    func testCheckpointsOfAnotherStartingModelAreNotResumed() throws {
        let dir = tempDir("base-changed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try recordsDirectory(textRecords(30), in: dir)
        var base = config(steps: 4)
        _ = try StageRunner.run(TrainStage(config: base, input: input, threads: 1), directory: dir + "/base", options: RunOptions(quiet: true))
        var c = config(steps: 8)
        c.model = dir + "/base"
        c.preset = nil
        var stopped = try TrainStage(config: c, input: input, threads: 1)
        stopped.stopAfterStep = 5
        XCTAssertThrowsError(try StageRunner.run(stopped, directory: dir + "/ft", options: RunOptions(quiet: true)))
        base.lr = 1e-2
        _ = try StageRunner.run(TrainStage(config: base, input: input, threads: 1), directory: dir + "/base", options: RunOptions(quiet: true))
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/ft", options: RunOptions(quiet: true))
        _ = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/fresh", options: RunOptions(quiet: true))
        XCTAssertEqual(try FS.readText(dir + "/ft/metrics.jsonl"), try FS.readText(dir + "/fresh/metrics.jsonl"))
    }

    func testSFTTrainsOnAssistantTokensOnly() throws {
        let b = DatasetBuilder(codec: ByteCodec(), objective: .sft, length: 128)
        let r: JSONValue = ["messages": [["role": "user", "content": "Hi?"], ["role": "assistant", "content": "Hello."]]]
        guard case .success(let segs) = b.segments(of: r) else { return XCTFail("not usable") }
        let s = segs[0]
        let codec = ByteCodec()
        XCTAssertEqual(codec.decode(s.tokens), "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n")
        let trained = codec.decode(zip(s.tokens, s.loss).filter { $0.1 }.map { $0.0 })
        XCTAssertEqual(trained, "Hello.<|im_end|>")
        // Alpaca-style records convert; targets in the batch are the trained tokens.
        let alpaca: JSONValue = ["instruction": "Add.", "input": "1+1", "output": "2"]
        guard case .success(let a) = b.segments(of: alpaca) else { return XCTFail("alpaca not usable") }
        XCTAssertEqual(codec.decode(a[0].tokens), "<|im_start|>user\nAdd.\n\n1+1<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n")
        let batch = b.batch(b.rows([(r, false)]))
        XCTAssertEqual(codec.decode(batch.targets.filter { $0 >= 0 }), "Hello.<|im_end|>")
        // Plain text mixed into SFT data is learned on every token, as in continued pre-training.
        guard case .success(let t) = b.segments(of: ["text": "Domain text."]) else { return XCTFail("text not usable") }
        XCTAssertEqual(codec.decode(t[0].tokens), "Domain text.<|endoftext|>")
        XCTAssertTrue(t[0].loss.allSatisfy { $0 })
        guard case .failure(let e) = b.segments(of: ["id": "x"]) else { return XCTFail("a record with nothing to learn was accepted") }
        XCTAssertTrue(e.message.contains("'text'"), e.message)
    }

    func testPackedWindowsBecomeRowsWithDocumentBoundaries() throws {
        let b = DatasetBuilder(codec: ByteCodec(), objective: .cpt, length: 32)
        let w: JSONValue = ["id": "pack-0", "members": [["text": "abc"], ["text": "defg"]]]
        let rows = b.rows([(w, true), (["text": "xy"], false)])
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0].segments.map(\.tokens.count), [4, 5])  // text + eos each
        let batch = b.batch([rows[0]])
        XCTAssertEqual(Array(batch.positions[0..<9]), [0, 1, 2, 3, 0, 1, 2, 3, 4])
        XCTAssertEqual(Array(batch.segStart[0..<9]), [0, 0, 0, 0, 4, 4, 4, 4, 4])
        XCTAssertEqual(batch.targets[3], -1, "the last token of a document predicts nothing across the boundary")
    }

    func testUnusableRecordsAreRejectedWithTheirLine() throws {
        let dir = tempDir("rejects")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var records: [JSONValue] = (0..<6).map { i in
            ["messages": [["role": "user", "content": .string("Question \(i)?")], ["role": "assistant", "content": .string("Answer \(i).")]]]
        }
        records.insert(["text": "no conversation here"], at: 2)
        records.append(["messages": [["role": "user", "content": "only a question"]]])
        let input = try recordsDirectory(records, in: dir)
        var c = config(steps: 2)
        c.objective = "sft"
        let r = try StageRunner.run(TrainStage(config: c, input: input, threads: 1), directory: dir + "/sft", options: RunOptions(quiet: true))
        // The plain-text record (line 3) is learned as text and counted; the question without an answer is rejected.
        XCTAssertEqual(r.manifest.rejects, 1)
        XCTAssertEqual(r.manifest.counts["text_records"]?.intValue, 1)
        let rejects = try FS.readText(dir + "/sft/rejects.jsonl")
        XCTAssertTrue(rejects.contains("\"line\":8"), rejects)
        XCTAssertTrue(rejects.contains("no assistant message"), rejects)
        records[2] = ["id": "nothing"]
        let bad = try recordsDirectory(records, in: dir + "/bad")
        let r2 = try StageRunner.run(TrainStage(config: c, input: bad, threads: 1), directory: dir + "/sft2", options: RunOptions(quiet: true))
        XCTAssertEqual(r2.manifest.rejects, 2)
        XCTAssertTrue(try FS.readText(dir + "/sft2/rejects.jsonl").contains("\"line\":3"))
    }

    func testBadOptionsAreClearErrors() {
        var c = TrainConfig()
        c.objective = "rlhf"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("cpt or sft")) }
        c = TrainConfig()
        c.preset = "huge"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("tiny, small")) }
    }
}

final class ChatTemplateTests: XCTestCase {
    /// The SFT chat format comes from templates/chat/chatml.json; the built-in fallback (for when no templates/
    /// directory can be found) renders exactly the same, and the Llama-3 template works the same way.
    func testTemplateFileAndFallbackAgree() throws {
        let file = try ChatFormat.named("chatml")
        let messages: [(role: String, content: String)] = [("system", "Be brief."), ("user", "Hi?"), ("assistant", "Hello.")]
        XCTAssertEqual(file.render(messages), ChatFormat.builtInChatML.render(messages))
        let llama3 = try ChatFormat.named("llama3")
        let b = DatasetBuilder(codec: ByteCodec(), objective: .sft, length: 256, chat: llama3)
        let s = b.chatSegment(messages)
        let trained = ByteCodec().decode(zip(s.tokens, s.loss).filter { $0.1 }.map { $0.0 })
        XCTAssertTrue(trained.hasPrefix("Hello."), trained)
        XCTAssertFalse(trained.contains("Hi?"))
    }
}
