import Foundation
import LoomCore
import LoomTrain
import XCTest

@testable import LoomEval

let sharedRoot: String? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let dir = ProcessInfo.processInfo.environment["LOOM_SHARED"] ?? root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: dir) ? dir : nil
}()

func tempDir(_ name: String) -> String {
    let d = NSTemporaryDirectory() + "loom-eval-\(name)-" + UUID().uuidString.prefix(8)
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A random byte-level Llama (ids 0-255 bytes, then <|endoftext|> ...), as `loom train` leaves one without a tokenizer.
func randomModel(seed: UInt64 = 7, maxPositions: Int = 256) throws -> LlamaModel {
    let c = LlamaConfig(
        vocabSize: ByteCodec().vocabSize, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2,
        maxPositions: maxPositions)
    let m = try LlamaModel(config: c)
    m.initialize(seed: seed, std: 0.3)
    return m
}

/// The models the scorer is checked on: a random Llama, and the gemma3-tiny fixture (sliding layers, soft-capping,
/// (1 + w) norms) when $LOOM_SHARED is present.
func scorerModels() throws -> [(String, LlamaModel)] {
    var out = [("llama", try randomModel())]
    if let s = sharedRoot { out.append(("gemma3-tiny", try LlamaModel.load(directory: s + "/fixtures/gemma3-tiny"))) }
    return out
}

final class ScorerTests: XCTestCase {
    /// log p of each request computed alone: one row, positions from 0, the plain forward.
    func reference(_ m: LlamaModel, _ r: LoglikRequest) -> Double {
        let input = Array(r.tokens.dropLast())
        var targets = [Int32](repeating: -1, count: input.count)
        for i in (input.count - r.scored)..<input.count { targets[i] = r.tokens[i + 1] }
        m.forward(Batch(rows: 1, length: input.count, tokens: input, targets: targets, positions: (0..<input.count).map { Int32($0) }, segStart: [Int32](repeating: 0, count: input.count)))
        return m.targetLogProbs(targets: targets).reduce(0.0) { $0 + Double($1) }
    }

    func randomRequests(_ vocab: Int, count: Int, seed: UInt64) -> [LoglikRequest] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let n = 2 + rng.below(40)
            let tokens = (0..<n).map { _ in Int32(rng.below(vocab)) }
            return LoglikRequest(tokens: tokens, scored: 1 + rng.below(n - 1))
        }
    }

    // Tolerance: each log-probability is a float32 log-softmax of logits that are sums over hidden sizes of 32-64;
    // packing changes only which other rows share a matrix product (and so OpenBLAS's blocking), giving differences
    // of a few float32 ulps per logit (~1e-6 relative), at most ~1e-5 in a sum of up to 40 terms of magnitude ~6.
    func testPackedRequestsScoreAsIfAlone() throws {
        for (name, m) in try scorerModels() {
            let requests = randomRequests(min(m.config.vocabSize, 300), count: 30, seed: 3)
            for rows in [1, 3] {
                let s = LoglikScorer(model: m, maxLength: 64, rows: rows)
                let got = s.score(requests)
                for (r, g) in zip(requests, got) {
                    XCTAssertEqual(g.logprob, reference(m, r), accuracy: 1e-4, "\(name) rows \(rows)")
                    XCTAssertEqual(g.tokens, r.scored)
                }
            }
        }
    }

    /// Longer than maxLength + 1: the first tokens are cut, as the harness's `[-(max_length + 1):]`.
    func testLongRequestsLoseTheirStart() throws {
        let m = try randomModel()
        let r = LoglikRequest(tokens: (0..<50).map { Int32($0 % 200) }, scored: 5)
        let s = LoglikScorer(model: m, maxLength: 20)
        let cut = LoglikRequest(tokens: Array(r.tokens.suffix(21)), scored: 5)
        XCTAssertEqual(s.score([r])[0].logprob, reference(m, cut), accuracy: 1e-5)
    }

    // The cached path runs the same kernels in another grouping (context in chunks, each continuation on top), so
    // the same float32 bound as above.
    func testSharedContextEqualsSeparateRequests() throws {
        for (name, m) in try scorerModels() {
            let s = LoglikScorer(model: m, maxLength: 128)
            var rng = SplitMix64(seed: 11)
            let V = min(m.config.vocabSize, 300)
            for trial in 0..<6 {
                // Contexts share a prefix across trials (the cache keeps it) and some are longer than a chunk.
                let context = (0..<(5 + trial * 17)).map { i in Int32((i * 7 + (i > 20 ? trial : 0)) % V) }
                let conts = (0..<4).map { _ in (0..<(1 + rng.below(5))).map { _ in Int32(rng.below(V)) } }
                guard let shared = try s.scoreShared(context: context, continuations: conts) else { return XCTFail("not scored") }
                let separate = s.score(conts.map { LoglikRequest(tokens: context + $0, scored: $0.count) })
                for (a, b) in zip(shared, separate) {
                    XCTAssertEqual(a.logprob, b.logprob, accuracy: 1e-4, "\(name) trial \(trial)")
                    XCTAssertEqual(a.greedy, b.greedy, "\(name) trial \(trial)")
                }
            }
            XCTAssertNil(try s.scoreShared(context: [Int32](repeating: 1, count: 128), continuations: [[1, 2]]), "too long: left to score")
        }
    }
}

final class RollingWindowTests: XCTestCase {
    /// lm-evaluation-harness's get_rolling_token_windows(range(10), prefix=-1 → here P, max_seq_len=4, context_len=1)
    /// after make_disjoint_window: ([P], 0..3), then windows predicting 4..7 and 8..9 from the tokens before them.
    func testWindowsAsTheHarnessCutsThem() throws {
        let m = try randomModel()
        let chat = try ChatModel(model: m, codec: ByteCodec(), name: "t")
        var c = EvalConfig()
        c.model = "x"
        c.data = ["y"]
        c.maxLength = 4
        let e = Evaluator(chat: chat, settings: c)
        let P = e.prefixToken
        let w = e.rollingRequests((0..<10).map { Int32($0) })
        XCTAssertEqual(w.map(\.tokens), [[P, 0, 1, 2, 3], [3, 4, 5, 6, 7], [5, 6, 7, 8, 9]])
        XCTAssertEqual(w.map(\.scored), [4, 4, 2])
        XCTAssertEqual(e.rollingRequests([5]).map(\.tokens), [[P, 5]])
    }

    func testWordCountIsPythonsSplit() {
        XCTAssertEqual(Evaluator.wordCount("a b  c"), 3)
        XCTAssertEqual(Evaluator.wordCount("  a b\n"), 4)  // ['', 'a', 'b', '']
        XCTAssertEqual(Evaluator.wordCount("one"), 1)
        XCTAssertEqual(Evaluator.wordCount("x\u{1F}y"), 2)
    }
}

final class MetricTests: XCTestCase {
    func testSQuADNormalisation() {
        XCTAssertEqual(AnswerMetrics.normalize("The  Cat, sat!"), "cat sat")
        XCTAssertEqual(AnswerMetrics.exactMatch("the Aspirin.", "aspirin"), 1)
        XCTAssertEqual(AnswerMetrics.exactMatch("aspirins", "aspirin"), 0)
        XCTAssertEqual(AnswerMetrics.f1("low dose aspirin", "aspirin"), 0.5, accuracy: 1e-12)  // p 1/3, r 1
        XCTAssertEqual(AnswerMetrics.f1("a a b", "a b b"), 2.0 / 3.0, accuracy: 1e-12)  // "a" dropped: [b] vs [b, b]
        XCTAssertEqual(AnswerMetrics.f1("", "x"), 0)
    }

    func testBootstrapIsSeededAndCoversTheMean() {
        let scores = (0..<400).map { Double(($0 * 7919) % 10 < 3 ? 1 : 0) }
        let a = Bootstrap.mean(scores), b = Bootstrap.mean(scores)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.value, 0.3, accuracy: 1e-12)
        XCTAssertLessThan(a.low, a.value)
        XCTAssertGreaterThan(a.high, a.value)
        // The binomial standard error is sqrt(0.3 * 0.7 / 400) = 0.0229; the 95% interval is about ±1.96 of it.
        XCTAssertEqual(a.high - a.low, 2 * 1.96 * 0.0229, accuracy: 0.02)
        let one = Bootstrap.mean([1])
        XCTAssertEqual([one.low, one.value, one.high], [1, 1, 1])
    }
}

final class EvalStageTests: XCTestCase {
    func testScoresEveryKindAndRejectsBadRecords() throws {
        let dir = tempDir("stage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try randomModel(seed: 9)
        try model.save(directory: dir + "/model")
        let data = dir + "/items.jsonl"
        let lines = [
            #"{"id": "m1", "task": "toy", "context": "The sky is", "choices": ["blue", "green", "a very long choice"], "gold": 0}"#,
            #"{"id": "m2", "task": "toy", "context": "Salt is ", "choices": ["NaCl", "H2O"], "gold": 1}"#,
            #"{"id": "g1", "messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]}"#,
            #"{"id": "t1", "text": "Aspirin inhibits cyclooxygenase."}"#,
            #"{"id": "t2", "text": "Two groups were randomised."}"#,
            #"{"id": "b1", "context": "x", "choices": ["a", "b"], "gold": 5}"#,
            #"{"id": "b2", "nothing": 1}"#,
            "{not json",
        ]
        try lines.joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        var c = EvalConfig()
        c.model = dir + "/model"
        c.data = [data]
        c.maxTokens = 4
        c.resamples = 50
        let r = try StageRunner.run(try EvalStage(config: c, threads: 1), directory: dir + "/out", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.rejects, 3)
        let rejects = try FS.readText(dir + "/out/rejects.jsonl")
        XCTAssertTrue(rejects.contains("\"line\":6") && rejects.contains("'gold'"), rejects)
        XCTAssertTrue(rejects.contains("\"line\":7") && rejects.contains("\"line\":8"), rejects)
        let metrics = try JSONValue.parse(try FS.readText(dir + "/out/metrics.json"))
        XCTAssertEqual(metrics["tasks"]?["toy"]?["items"]?.intValue, 2)
        XCTAssertEqual(metrics["tasks"]?["generation"]?["items"]?.intValue, 1)
        XCTAssertEqual(metrics["tasks"]?["perplexity"]?["items"]?.intValue, 2)
        let items = try FS.readText(dir + "/out/items.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(items.map { $0["id"]?.stringValue ?? "" }, ["m1", "m2", "t1", "t2", "g1"])

        // Multiple choice: acc is argmax of the log-likelihoods; acc_norm of them divided by the choices' lengths.
        let chat = try ChatModel.load(directory: dir + "/model")
        let e = Evaluator(chat: chat, settings: c)
        for (item, rec) in zip(
            [("The sky is", ["blue", "green", "a very long choice"], 0), ("Salt is ", ["NaCl", "H2O"], 1)], items.prefix(2))
        {
            let lls = item.1.map { choice -> Double in
                let r = e.request(context: item.0, continuation: " " + choice)!
                return e.scorer.score([r])[0].logprob
            }
            let got = rec["loglik"]!.arrayValue!.map { $0.doubleValue! }
            for (a, b) in zip(got, lls) { XCTAssertEqual(a, b, accuracy: 1e-4) }
            XCTAssertEqual(rec["acc"]?.doubleValue, Evaluator.argmax(lls) == item.2 ? 1 : 0)
            let norm = zip(lls, item.1).map { $0 / Double($1.count) }
            XCTAssertEqual(rec["acc_norm"]?.doubleValue, Evaluator.argmax(norm) == item.2 ? 1 : 0)
        }
        // "Salt is " ends with a space: it moves to the continuation, so the context is "Salt is" and the
        // continuation "  NaCl" (the harness's _encode_pair).
        let pair = e.encodePair(context: "Salt is ", continuation: " NaCl")!
        XCTAssertEqual(ByteCodec().decode(pair.0), "Salt is")
        XCTAssertEqual(ByteCodec().decode(pair.1), "  NaCl")

        // Perplexity over the set: exp(-Σ log p / Σ tokens) with the byte model's tokens = bytes.
        let t1 = items[2], t2 = items[3]
        let lp = t1["logprob"]!.doubleValue! + t2["logprob"]!.doubleValue!
        let n = "Aspirin inhibits cyclooxygenase.".utf8.count + "Two groups were randomised.".utf8.count
        XCTAssertEqual(t1["tokens"]?.intValue, "Aspirin inhibits cyclooxygenase.".utf8.count)
        XCTAssertEqual(metrics["tasks"]?["perplexity"]?["token_perplexity"]?["value"]?.doubleValue ?? 0, exp(-lp / Double(n)), accuracy: 1e-9)
        XCTAssertEqual(metrics["tasks"]?["perplexity"]?["byte_perplexity"]?["value"]?.doubleValue ?? 0, exp(-lp / Double(n)), accuracy: 1e-9)
        // Generation: the greedy reply scored against "hi".
        let g = items[4]
        XCTAssertEqual(g["exact_match"]?.doubleValue, AnswerMetrics.exactMatch(g["prediction"]!.stringValue!, "hi"))
    }

    /// A conversation longer than the model's context is answered from its last tokens, not dropped or fatal.
    func testLongPromptsLoseTheirStart() throws {
        let dir = tempDir("long")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try randomModel(seed: 3, maxPositions: 64).save(directory: dir + "/model")
        let long = String(repeating: "word ", count: 40)
        try #"{"id": "g", "messages": [{"role": "user", "content": "\#(long)"}, {"role": "assistant", "content": "x"}]}"#
            .write(toFile: dir + "/g.jsonl", atomically: true, encoding: .utf8)
        var c = EvalConfig()
        c.model = dir + "/model"
        c.data = [dir + "/g.jsonl"]
        c.maxTokens = 8
        let r = try StageRunner.run(try EvalStage(config: c, threads: 1), directory: dir + "/out", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.rejects, 0)
        let item = try JSONValue.parse(try FS.readText(dir + "/out/items.jsonl").trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(item["prompt_cut_to"]?.intValue, 64 - 8)
    }

    func testConfigErrorsAreClear() {
        var c = EvalConfig()
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("give the model")) }
        c.model = "m"
        c.data = ["d"]
        c.bos = "maybe"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("bos must be")) }
        c.bos = "auto"
        c.fewshot = 2
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("fewshot_from")) }
    }
}
