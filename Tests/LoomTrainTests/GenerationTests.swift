// The KV-cached incremental forward against the full forward (LlamaModel.forward, the training path), and the
// sampler's contracts: greedy is argmax, seeded sampling repeats, top-k 1 is greedy, stop strings and tokens.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

/// The full forward's logits at the last position of `tokens` (one row, positions from 0).
func fullLastLogits(_ m: LlamaModel, _ tokens: [Int32]) -> [Float] {
    let V = m.config.vocabSize
    let p = m.forward(Batch(rows: 1, length: tokens.count, tokens: tokens))
    return Array(UnsafeBufferPointer(start: p + (tokens.count - 1) * V, count: V))
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// The cached and the full forward are two float32 evaluations of the same logits, their rounding independent: per
/// entry 8·√2 sd, sd from the float64 reference (ErrorBounds.swift) at the last position of `tokens`.
func cacheBound(_ m: LlamaModel, _ tokens: [Int32]) -> [Double] {
    let r = ReferenceLlama(model: m)
    r.forward(Batch(rows: 1, length: tokens.count, tokens: tokens))
    let V = m.config.vocabSize
    return r.logits.sd[(tokens.count - 1) * V..<tokens.count * V].map { lambda * 2.0.squareRoot() * $0 }
}

final class GenerationTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    /// A prompt appended in chunks of 1, 5 and 64 tokens, then tokens one at a time: at every step the cached
    /// path's logits equal the full forward's last-position logits within rounding (untied and tied heads, GQA).
    func testCachedLogitsEqualFullForward() throws {
        for tied in [false, true] {
            let m = try tinyModel(seed: 11, vocab: 64, tied: tied)
            let seq = randomTokens(30, vocab: 64, seed: 5)
            var worst = 0.0
            defer { print("cached logits, tied \(tied): worst difference/bound \(worst)") }
            for chunk in [1, 5, 64] {
                let s = InferenceSession(model: m, chunk: chunk)
                let prompt = Array(seq.prefix(17))
                var logits = try s.append(prompt)
                // Per logit: 8·√2 sd of two float32 evaluations (cacheBound).
                worst = max(worst, assertWithinBound(doubles(logits), doubles(fullLastLogits(m, prompt)), cacheBound(m, prompt), "chunk \(chunk) tied \(tied)"))
                for t in 17..<seq.count {
                    logits = try s.append([seq[t]])
                    let prefix = Array(seq.prefix(t + 1))
                    // As above.
                    worst = max(worst, assertWithinBound(
                        doubles(logits), doubles(fullLastLogits(m, prefix)), cacheBound(m, prefix), "position \(t) chunk \(chunk) tied \(tied)"))
                }
                XCTAssertEqual(s.length, seq.count)
            }
        }
    }

    /// The cache can be cut back and refilled: a shared prefix is reused, the rest recomputed.
    func testTruncateAndReuse() throws {
        let m = try tinyModel(seed: 3)
        let a = randomTokens(12, vocab: 64, seed: 1), b = randomTokens(6, vocab: 64, seed: 2)
        let s = InferenceSession(model: m, chunk: 4)
        _ = try s.append(a)
        s.truncate(to: 7)
        let logits = try s.append(b)
        // Per logit: 8·√2 sd of two float32 evaluations (cacheBound).
        let full = Array(a.prefix(7)) + b
        assertWithinBound(doubles(logits), doubles(fullLastLogits(m, full)), cacheBound(m, full), "after truncation")
        XCTAssertThrowsError(try s.append([64]))  // outside the vocabulary
        XCTAssertThrowsError(try s.append(randomTokens(64, vocab: 64, seed: 9)))  // beyond the context of 64
    }

    /// Greedy generation with the cache gives the tokens of greedy decoding by the full forward, re-run on the
    /// whole sequence at every step.
    func testGreedyMatchesFullRecompute() throws {
        let m = try tinyModel(seed: 21)
        let prompt = randomTokens(9, vocab: 64, seed: 4)
        var seq = prompt
        for _ in 0..<20 {
            let logits = fullLastLogits(m, seq)
            let top = Int(Sampler.argmax(logits))
            let second = logits.indices.filter { $0 != top }.max { logits[$0] < logits[$1] }!
            // Tokens can be compared exactly only where the lead of the top logit exceeds what rounding can move
            // the two logits by, cacheBound on each; checked at every step, so the comparison below is sound.
            let b = cacheBound(m, seq)
            XCTAssertGreaterThan(Double(logits[top] - logits[second]), b[top] + b[second], "step \(seq.count - 9)")
            seq.append(Int32(top))
        }
        let s = InferenceSession(model: m)
        let r = try s.generate(prompt: prompt, options: SamplingOptions(maxTokens: 20), decode: { _ in "" })
        XCTAssertEqual(r.tokens, Array(seq[9...]))
        XCTAssertEqual(r.finishReason, "length")
        XCTAssertEqual(r.promptTokens, 9)
        // A second request with the same prompt reuses the cache and gives the same answer.
        XCTAssertEqual(try s.generate(prompt: prompt, options: SamplingOptions(maxTokens: 20), decode: { _ in "" }).tokens, r.tokens)
    }

    func testSamplingIsSeededAndRespectsTopKTopP() throws {
        let m = try tinyModel(seed: 8)
        let prompt = randomTokens(5, vocab: 64, seed: 6)
        let s = InferenceSession(model: m)
        func run(_ o: SamplingOptions) throws -> [Int32] { try s.generate(prompt: prompt, options: o, decode: { _ in "" }).tokens }
        let hot = SamplingOptions(temperature: 1.5, seed: 42, maxTokens: 24)
        let a = try run(hot), b = try run(hot)
        XCTAssertEqual(a, b)
        var other = hot
        other.seed = 43
        XCTAssertNotEqual(try run(other), a)
        // top_k 1 and a tiny top_p both leave only the most likely token: greedy.
        let greedy = try run(SamplingOptions(maxTokens: 24))
        XCTAssertNotEqual(a, greedy)
        XCTAssertEqual(try run(SamplingOptions(temperature: 1.5, topK: 1, seed: 42, maxTokens: 24)), greedy)
        XCTAssertEqual(try run(SamplingOptions(temperature: 1.5, topP: 1e-9, seed: 42, maxTokens: 24)), greedy)
        // top-k 3: every sampled token is among the 3 most likely at its step.
        var seq = prompt
        let k3 = try run(SamplingOptions(temperature: 2, topK: 3, seed: 7, maxTokens: 16))
        for t in k3 {
            let l = fullLastLogits(m, seq)
            let top = (0..<64).sorted { l[$0] > l[$1] }.prefix(3)
            XCTAssertTrue(top.contains(Int(t)))
            seq.append(t)
        }
        XCTAssertThrowsError(try run(SamplingOptions(topP: 0)))
        XCTAssertThrowsError(try run(SamplingOptions(maxTokens: 0)))
    }

    /// Stop strings cut the text before them (also across tokens); stop tokens end generation and stay out of the
    /// text; the streamed pieces add up to the text and never show part of a stop string.
    func testStopStringsAndTokens() throws {
        let m = try tinyModel(seed: 2, vocab: 64)
        let prompt = randomTokens(4, vocab: 64, seed: 3)
        let s = InferenceSession(model: m)
        // Letters for ids: id i decodes to the character at i in this alphabet.
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_")
        let decode: ([Int32]) -> String = { ids in String(ids.map { alphabet[Int($0)] }) }
        let free = try s.generate(prompt: prompt, options: SamplingOptions(maxTokens: 30), decode: decode)
        XCTAssertEqual(free.text.count, 30)
        // A stop string made of generated characters 10...12: the text ends right before it.
        let chars = Array(free.text)
        let stop = String(chars[10...12])
        let first = free.text.range(of: stop)!.lowerBound
        var pieces: [String] = []
        let cut = try s.generate(
            prompt: prompt, options: SamplingOptions(maxTokens: 30, stop: [stop]), decode: decode,
            onText: { pieces.append($0); return true })
        XCTAssertEqual(cut.text, String(free.text[..<first]))
        XCTAssertEqual(cut.finishReason, "stop")
        XCTAssertEqual(pieces.joined(), cut.text)
        // A stop token: the 6th generated token.
        let stopToken = free.tokens[5]
        let k = free.tokens.firstIndex(of: stopToken)!
        let byToken = try s.generate(
            prompt: prompt, options: SamplingOptions(maxTokens: 30, stopTokens: [stopToken]), decode: decode)
        XCTAssertEqual(byToken.tokens, Array(free.tokens.prefix(k + 1)))
        XCTAssertEqual(byToken.text, String(free.text.prefix(k)))
        XCTAssertEqual(byToken.finishReason, "stop")
    }
}
