// Batched decoding (BatchDecoder.swift) against the single-sequence reference (InferenceSession) on the tiny fixture
// models ($LOOM_SHARED/fixtures/{llama,gemma3,qwen2}-tiny): the logits of every sequence at every step, with prompts
// of different lengths prefilled in chunks beside sequences that decode, sequences joining mid-way and finishing
// early; the scheduler's generations (greedy, sampled, constrained, stop strings, streaming) equal one-at-a-time
// ones; and the partial-selection sampler draws exactly the token of the full sort it replaces.
//
// Tolerances. Batched and single-sequence decoding evaluate the same float32 operations on the same inputs; only the
// products differ in how their sums are ordered and blocked (an [rows, k]·[k, n] sgemm instead of a [1, k] one, and
// OpenBLAS's kernels pick their blocking by shape). The attention, norms and activations are the same calls on the
// same rows. So the two are two float32 evaluations of one function whose rounding errors are independent:
//   - llama-tiny: per logit λ·√2·sd, sd the probabilistic error scale of a float32 evaluation from the float64
//     running error analysis (ErrorBounds.swift; the bound GenerationTests uses between cached and full forwards);
//   - gemma3-tiny and qwen2-tiny (families ReferenceLlama does not model): each float32 evaluation is within the
//     fixtures' logits bar of 1e-4 of the float64 truth (ArchitectureFixtureTests' header: every sum of n ≤ 172
//     products is within n·u·Σ|terms| whatever its order, below 2.5e-4 worst case and ~1e-6 typical at these
//     magnitudes), so the two are within 2·1e-4 of each other.
// Greedy tokens must be equal: a different argmax would need two logits within 2e-4 of each other, which the test
// reports (the top-2 gap) if it happens.

import CTensorKernels
import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

/// A real constraint (not a stand-in): only even token ids; complete after 4 tokens, nothing but a stop after 7.
final class EvenTokens: TokenConstraint {
    var count = 0
    func allowedTokens(_ allowed: UnsafeMutablePointer<UInt64>, vocabSize: Int) {
        for t in stride(from: 0, to: vocabSize, by: 2) { allowed[t / 64] |= 1 << UInt64(t % 64) }
    }
    func accept(_ token: Int32) {
        precondition(token % 2 == 0, "the constraint was not applied")
        count += 1
    }
    var isComplete: Bool { count >= 4 }
    var mustStop: Bool { count >= 7 }
}

final class BatchDecoderTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    static let families = ["llama-tiny", "gemma3-tiny", "qwen2-tiny"]

    func fixture(_ name: String) throws -> (LlamaModel, [[Int32]], [Float]) {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: batched decoding fixture tests skipped") }
        let dir = shared + "/fixtures/" + name
        guard FileManager.default.fileExists(atPath: dir + "/io.safetensors") else { throw XCTSkip("\(dir) not present") }
        let io = try tensors(dir + "/io.safetensors")
        let ids = io["input_ids"]!.int64s().map(Int32.init)
        let T = ids.count / 2
        return (try LlamaModel.load(directory: dir), [Array(ids[0..<T]), Array(ids[T...])], io["logits"]!.floats())
    }

    /// Per-logit bound between a batched and a single-sequence evaluation after `tokens` (the file header).
    func bound(_ name: String, _ m: LlamaModel, _ tokens: [Int32]) -> [Double] {
        name == "llama-tiny" ? cacheBound(m, tokens) : [Double](repeating: 2e-4, count: m.config.vocabSize)
    }

    /// A scripted schedule straight through BatchForward: four sequences with prompts of 3 to 40 tokens (prefilled
    /// in chunks of 6, beside sequences already decoding), two joining at later passes, one finishing after 3
    /// tokens. At every pass every sequence's logits equal those of its own InferenceSession fed the same tokens,
    /// and the greedy token is the same; the logits that end a fixture prompt also equal the fixture's (1e-4).
    func testBatchedLogitsEqualTheSingleSequencePath() throws {
        for name in Self.families {
            let (model, rows, fixtureLogits) = try fixture(name)
            let V = model.config.vocabSize, T = rows[0].count
            let prompts: [[Int32]] = [
                Array(rows[0].prefix(3)), rows[1], Array(rows[0].prefix(T - 5)),
                randomTokens(40, vocab: V, seed: 77),
            ]
            let joinAt = [0, 0, 2, 5], newTokens = [14, 3, 12, 9]
            let engine = BatchForward(model: model)
            let chunk = 6
            struct Seq {
                let cache: SequenceCache
                let ref: InferenceSession
                var tokens: [Int32]
                var fed = 0
                var generated = 0
                var next: Int32?
            }
            var seqs: [Seq?] = prompts.indices.map { _ in nil }
            var pass = 0, worst = 0.0, passesWithMixedRows = 0, largest: Float = 0
            while pass < 200 {
                for i in prompts.indices where pass == joinAt[i] {
                    seqs[i] = Seq(cache: engine.newCache(), ref: InferenceSession(model: model, chunk: chunk), tokens: prompts[i])
                }
                var segments: [BatchForward.Segment] = [], owners: [Int] = []
                var refLogits: [[Float]?] = []
                for i in seqs.indices {
                    guard var s = seqs[i] else { continue }
                    if s.generated >= newTokens[i] { continue }
                    let feed: [Int32]
                    let want: Bool
                    if s.fed < prompts[i].count {
                        let end = min(prompts[i].count, s.fed + chunk)
                        feed = Array(prompts[i][s.fed..<end])
                        want = end == prompts[i].count
                        s.fed = end
                    } else {
                        feed = [s.next!]
                        want = true
                    }
                    let r = try s.ref.append(feed)
                    refLogits.append(want ? r : nil)
                    segments.append(.init(cache: s.cache, tokens: feed, wantLogits: want))
                    owners.append(i)
                    seqs[i] = s
                }
                if segments.isEmpty { break }
                if Set(segments.map { $0.tokens.count }).count > 1 { passesWithMixedRows += 1 }
                let out = engine.forward(segments)
                for (j, i) in owners.enumerated() {
                    XCTAssertEqual(seqs[i]!.cache.length, seqs[i]!.ref.length, "\(name) sequence \(i) pass \(pass)")
                    guard let ref = refLogits[j] else {
                        XCTAssertNil(out[j])
                        continue
                    }
                    let got = Array(UnsafeBufferPointer(start: try XCTUnwrap(out[j]), count: V))
                    let ctx = seqs[i]!.ref.tokens
                    worst = max(worst, assertWithinBound(doubles(got), doubles(ref), bound(name, model, ctx), "\(name) sequence \(i) pass \(pass)"))
                    largest = max(largest, maxAbs(got, ref))
                    if seqs[i]!.generated == 0, i < 3 {
                        // The prompt is a prefix of a fixture row: its logits are the fixture's at that position.
                        let row = i == 1 ? 1 : 0, at = prompts[i].count - 1
                        let want = Array(fixtureLogits[((row * T + at) * V)..<((row * T + at + 1) * V)])
                        XCTAssertLessThanOrEqual(maxAbs(got, want), 1e-4, "\(name) sequence \(i): the fixture's logits")
                    }
                    let g = Sampler.argmax(got), r = Sampler.argmax(ref)
                    let sorted = ref.sorted(by: >)
                    XCTAssertEqual(g, r, "\(name) sequence \(i) pass \(pass): greedy token (reference top-2 gap \(sorted[0] - sorted[1]))")
                    seqs[i]!.next = r
                    seqs[i]!.generated += 1
                }
                pass += 1
            }
            for i in prompts.indices {
                XCTAssertEqual(seqs[i]?.generated, newTokens[i], "\(name) sequence \(i) ran to its end")
                XCTAssertEqual(seqs[i]?.cache.length, prompts[i].count + newTokens[i] - 1)
                // Grown on demand (doubling from 16 positions, the 40-token prompt through 32 to 64), never the
                // model's whole context (128) up front.
                XCTAssertLessThanOrEqual(seqs[i]!.cache.capacity, 64)
            }
            XCTAssertGreaterThan(passesWithMixedRows, 0, "prefill chunks ran beside decoding rows")
            print("batched vs single, \(name): \(pass) passes, largest logit difference \(largest), worst difference/bound \(worst)")
        }
    }

    /// The scheduler end to end: a greedy request streams; at its third piece four more requests join (different
    /// prompts; one sampled with temperature, top-k and top-p, one constrained, one with a stop string, one ending
    /// after 3 tokens). Every result — tokens, text, finish reason, streamed pieces — equals InferenceSession.generate
    /// on the same request alone, and the five decoded together.
    func testConcurrentRequestsGiveTheSameResultsAsOneAtATime() throws {
        for name in Self.families {
            let (model, rows, _) = try fixture(name)
            let V = model.config.vocabSize
            let batcher = DecodeBatcher(model: model, maxBatch: 8, prefillChunk: 5)
            let decode: @Sendable ([Int32]) -> String = { ids in String(ids.map { Character(UnicodeScalar(UInt8(97 + Int($0) % 26))) }) }
            struct Job {
                var prompt: [Int32]
                var options: SamplingOptions
                var constrained = false
            }
            let jobs: [Job] = [
                Job(prompt: Array(rows[0].prefix(4)), options: SamplingOptions(maxTokens: 20)),
                Job(prompt: rows[1], options: SamplingOptions(maxTokens: 3)),
                Job(prompt: randomTokens(30, vocab: V, seed: 3), options: SamplingOptions(temperature: 0.8, topK: 50, topP: 0.9, seed: 11, maxTokens: 16)),
                Job(prompt: Array(rows[1].prefix(9)), options: SamplingOptions(maxTokens: 12, stopTokens: [0, 2]), constrained: true),
                Job(prompt: randomTokens(7, vocab: V, seed: 4), options: SamplingOptions(temperature: 1, seed: 5, maxTokens: 40, stop: ["e"])),
            ]
            // One at a time, the reference.
            var want: [GenerationResult] = []
            for j in jobs {
                let s = InferenceSession(model: model)
                var pieces: [String] = []
                var r = try s.generate(prompt: j.prompt, options: j.options, constraint: j.constrained ? EvenTokens() : nil, decode: decode) {
                    pieces.append($0)
                    return true
                }
                XCTAssertEqual(pieces.joined(), r.text)
                r.text = pieces.joined()
                want.append(r)
            }
            // Together.
            let results = ResultBox(jobs.count)
            let group = DispatchGroup()
            func launch(_ i: Int) {
                let j = jobs[i]
                DispatchQueue(label: "test.request.\(i)").async(group: group) {
                    var pieces: [String] = []
                    let r = Result {
                        try batcher.generate(prompt: j.prompt, options: j.options, constraint: j.constrained ? EvenTokens() : nil, decode: decode) {
                            pieces.append($0)
                            return true
                        }
                    }
                    results.set(i, r, pieces.joined())
                }
            }
            var seen = 0
            var firstPieces: [String] = []
            let first = try batcher.generate(prompt: jobs[0].prompt, options: jobs[0].options, decode: decode) { piece in
                firstPieces.append(piece)
                seen += 1
                if seen == 3 {
                    for i in 1..<jobs.count { launch(i) }
                    // This thread drives the passes, so nothing is admitted until it returns: wait for all four to
                    // queue (synchronisation, not a timing assertion), and they join at the next step.
                    while batcher.waitingCount < jobs.count - 1 { usleep(200) }
                }
                return true
            }
            group.wait()
            XCTAssertEqual(first, want[0], "\(name) request 0")
            XCTAssertEqual(firstPieces.joined(), first.text)
            for i in 1..<jobs.count {
                let (r, streamed) = results.get(i)
                let g = try XCTUnwrap(r).get()
                XCTAssertEqual(g, want[i], "\(name) request \(i)")
                XCTAssertEqual(streamed, g.text, "\(name) request \(i): the streamed pieces")
            }
            XCTAssertEqual(batcher.largestBatch, jobs.count, "\(name): all five decoded in one pass")
            XCTAssertEqual(batcher.waitingCount, 0)
        }
    }

    /// More requests than --max-batch: never more than maxBatch sequences in a pass, and every result still equals
    /// the one-at-a-time one.
    func testMaxBatchBoundsThePass() throws {
        let (model, rows, _) = try fixture("llama-tiny")
        let batcher = DecodeBatcher(model: model, maxBatch: 2)
        let decode: ([Int32]) -> String = { ids in ids.map(String.init).joined(separator: " ") }
        let prompts = (0..<6).map { Array(rows[$0 % 2].prefix(2 + $0)) }
        let want = try prompts.map { try InferenceSession(model: model).generate(prompt: $0, options: SamplingOptions(maxTokens: 6 + $0.count), decode: decode) }
        let got = try parallelMap(prompts, jobs: prompts.count) {
            try batcher.generate(prompt: $0, options: SamplingOptions(maxTokens: 6 + $0.count), decode: decode)
        }
        XCTAssertEqual(got, want)
        XCTAssertLessThanOrEqual(batcher.largestBatch, 2)
        XCTAssertGreaterThan(batcher.passes, 0)
    }

    /// Request errors stay with their request: a token outside the vocabulary is refused before it joins.
    func testBadRequestIsRefused() throws {
        let (model, _, _) = try fixture("llama-tiny")
        let batcher = DecodeBatcher(model: model)
        XCTAssertThrowsError(try batcher.generate(prompt: [1, 9999], options: SamplingOptions(), decode: { _ in "" }))
        XCTAssertThrowsError(try batcher.generate(prompt: [], options: SamplingOptions(), decode: { _ in "" }))
        XCTAssertEqual(try batcher.generate(prompt: [1, 5], options: SamplingOptions(maxTokens: 2), decode: { _ in "" }).tokens.count, 2)
    }

    /// The streaming product against float64, on every path this CPU runs (portable, AVX2, AVX-512): every shape class (rows 1-9: the 4-row tiles and the leftover rows;
    /// odd and even column counts: the 2-column pairs and the last column; k with and without a tail past the
    /// 16-lane blocks), written and accumulated. Bound per entry: γ_k·Σ|a_i b_i| (+ u·|c| for the final addition
    /// when accumulating), Higham's worst case for a float32 sum of k products in any order — the kernel's order is
    /// one of them.
    func testStreamingProductEqualsFloat64() {
        var r = SplitMix64(seed: 12)
        func rnd() -> Float { Float(Double(r.next() >> 11) / Double(1 << 53) * 2 - 1) }
        for (m, n, k) in [(1, 1, 1), (1, 7, 16), (2, 9, 33), (3, 8, 64), (4, 5, 172), (5, 6, 17), (8, 11, 640), (9, 3, 100)] {
            let a = (0..<m * k).map { _ in rnd() }, b = (0..<n * k).map { _ in rnd() }
            for accumulate in [false, true] {
                let c0 = (0..<m * n).map { _ in rnd() }
                for path in 0...tk_gemm_nt_best_path() {
                    var c = c0
                    tk_gemm_nt_rows_on(path, a, k, b, k, &c, n, m, n, k, accumulate ? 1 : 0)
                    for i in 0..<m {
                        for j in 0..<n {
                            var exact = 0.0, mag = 0.0
                            for p in 0..<k {
                                exact += Double(a[i * k + p]) * Double(b[j * k + p])
                                mag += abs(Double(a[i * k + p]) * Double(b[j * k + p]))
                            }
                            var bound = gamma(k) * mag
                            if accumulate {
                                exact += Double(c0[i * n + j])
                                bound += u32 * (abs(exact) + bound)
                            }
                            XCTAssertLessThanOrEqual(abs(Double(c[i * n + j]) - exact), bound, "path \(path) m \(m) n \(n) k \(k) (\(i), \(j)) accumulate \(accumulate)")
                        }
                    }
                }
            }
        }
    }

    // MARK: - The sampler

    /// The partial-selection sampler against the full sort it replaces (kept as `nextByFullSort`): the same token
    /// for the same seed, draw after draw, over flat and peaked logits, ties, masked (-inf) vocabularies,
    /// temperatures from 0.05 to 20 and top-k / top-p on and off; and the fast path answers nearly always.
    func testSamplerDrawsTheFullSortsToken() {
        var r = SplitMix64(seed: 99)
        func gauss() -> Double {
            let a = Double(r.next() >> 11) / Double(1 << 53), b = Double(r.next() >> 11) / Double(1 << 53)
            return (-2 * log(max(a, 1e-300))).squareRoot() * cos(2 * .pi * b)
        }
        var cases = 0, fast = 0
        for trial in 0..<200 {
            let V = [7, 64, 512, 3000, 8000][trial % 5]
            let scale = [0.01, 0.5, 2, 8, 40][(trial / 5) % 5]
            var logits = (0..<V).map { _ in Float(gauss() * scale) }
            switch trial % 4 {
            case 1: logits = logits.map { ($0 * 4).rounded() / 4 }  // many ties
            case 2: for i in 0..<V where r.next() % 10 != 0 { logits[i] = -.infinity }  // a constraint's mask
            case 3: logits[Int(r.next() % UInt64(V))] += 30  // one dominant token
            default: break
            }
            if logits.allSatisfy({ $0 == -.infinity }) { logits[0] = 0 }
            let o = SamplingOptions(
                temperature: [0.05, 0.7, 1, 3, 20][(trial / 3) % 5], topK: [0, 1, 5, 40, V][(trial / 7) % 5],
                topP: [1, 0.9, 0.5, 0.999][(trial / 11) % 4], seed: r.next())
            var a = Sampler(o), b = Sampler(o), c = Sampler(o)
            for draw in 0..<5 {
                cases += 1
                let want = b.nextByFullSort(logits)
                var probe = c
                if let f = probe.nextFromHead(logits) {
                    fast += 1
                    XCTAssertEqual(f, want, "trial \(trial) draw \(draw): the fast path")
                }
                XCTAssertEqual(a.next(logits), want, "trial \(trial) draw \(draw) (V \(V), scale \(scale), \(o))")
                _ = c.nextByFullSort(logits)
            }
        }
        // Also the real size: Gemma's 262,144 tokens.
        let big = (0..<262_144).map { _ in Float(gauss() * 3) }
        for seed in 0..<6 as Range<UInt64> {
            let o = SamplingOptions(temperature: 0.8, topK: seed % 2 == 0 ? 0 : 64, topP: seed % 3 == 0 ? 1 : 0.95, seed: seed)
            var a = Sampler(o), b = Sampler(o)
            XCTAssertEqual(a.next(big), b.nextByFullSort(big), "262,144 tokens, \(o)")
        }
        print("sampler: \(fast) of \(cases) draws on the fast path")
        XCTAssertGreaterThan(Double(fast), 0.9 * Double(cases))
    }

    /// sortDescending (radix above 4,096 keys) gives the comparison sort's order: keys spread over all 64 bits, keys
    /// sharing their high digits (skipped passes), and the sampler's own keys of a vocabulary's logits.
    func testSortDescending() {
        var r = SplitMix64(seed: 8)
        for n in [10, 5000, 70_000] {
            var spread = (0..<n).map { _ in r.next() }
            var shared = (0..<n).map { _ in 0xABCD_0000_0000_0000 | (r.next() % 100_000) }
            var logits = (0..<n).map { i in Sampler.key(Float(Int(r.next() % 200)) / 8 - 12, i) }
            for keys in [spread, shared, logits] {
                var got = keys
                Sampler.sortDescending(&got)
                XCTAssertEqual(got, keys.sorted(by: >), "n \(n)")
            }
            spread.removeAll(); shared.removeAll(); logits.removeAll()
        }
    }

    /// selectLargest puts exactly the k largest keys first.
    func testSelectLargest() {
        var r = SplitMix64(seed: 5)
        for n in [1, 2, 3, 10, 100, 1000] {
            for k in [1, n / 2 + 1, n] where k <= n {
                var keys = Array(Set((0..<n).map { j in r.next() % 5000 | UInt64(j) << 40 }))
                let want = Array(keys.sorted(by: >).prefix(k))
                Sampler.selectLargest(&keys, k)
                XCTAssertEqual(keys.prefix(k).sorted(by: >), want, "n \(n) k \(k)")
            }
        }
    }
}

/// Results written by request threads, read after they end.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [(Result<GenerationResult, Error>?, String)]
    init(_ n: Int) { results = Array(repeating: (nil, ""), count: n) }
    func set(_ i: Int, _ r: Result<GenerationResult, Error>, _ s: String) { lock.withLock { results[i] = (r, s) } }
    func get(_ i: Int) -> (Result<GenerationResult, Error>?, String) { lock.withLock { results[i] } }
}
