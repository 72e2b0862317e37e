// loom-bench batch: batched decoding (DecodeBatcher, continuous batching) on a real model — tokens/s of N
// concurrent requests (default 8) against the same N requests one at a time, in this process, same prompts, same
// options. "One at a time" is measured twice: through the batcher with one request in it (what ChatModel does
// when requests do not overlap), and through the single-sequence reference path (InferenceSession, one KV cache;
// what ChatModel ran before batching). Greedy by default, every request exactly --tokens new tokens (no stop
// token), so all three generate the same number of tokens; the generated ids are compared. Wall time covers the
// whole requests (prompt prefill + new tokens); best of --runs (default 2) after a warm-up.
//
//   loom-bench batch MODEL(.gguf or dir) [--requests 8] [--tokens 64] [--max-batch 8] [--threads 2]
//                    [--temperature T [--top-k 64] [--top-p 0.95]] [--runs N] [--stream-rows R] [--only reference,one,concurrent]

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

struct BatchBenchOptions {
    var requests = 8, tokens = 64, maxBatch = 8, threads = 2, runs = 2
    var temperature = 0.0
    /// With a temperature: top-k (0: the whole vocabulary) and top-p.
    var topK = 64, topP = 0.95
    /// Run only these modes (comma-separated: reference, one, concurrent): for profiling.
    var only: String?
    /// BatchForward.streamRows (0: every product through OpenBLAS's sgemm, as before the streaming kernel).
    var streamRows: Int?
}

let batchBenchPrompts = [
    "The patient presented with a three-day history of fever and",
    "In digital circuits, a D flip-flop captures the value of",
    "Photosynthesis converts light energy into chemical energy, which",
    "The committee reviewed the proposal and decided that",
    "Insulin resistance is a condition in which cells",
    "A hash table stores key-value pairs so that lookups",
    "The river flooded after weeks of heavy rain, and the town",
    "Randomised controlled trials are considered the strongest evidence because",
    "The recipe calls for two cups of flour, one egg and",
    "Transformers process a sequence of tokens by letting each position",
    "During the Renaissance, painters in Florence began to",
    "The enzyme's activity dropped sharply when the temperature",
    "Version control systems such as git record every change so that",
    "The mountain trail climbs steeply through pine forest before",
    "Antibiotic resistance spreads between bacteria through",
    "The orchestra tuned their instruments while the conductor",
]

func batchBench(model path: String, _ o: BatchBenchOptions) {
    Compute.configure(threads: o.threads)
    if let r = o.streamRows { BatchForward.streamRows = r }
    let model: ChatModel
    do { model = try ChatModel.load(directory: path) } catch {
        print("cannot load \(path): \(error)")
        exit(1)
    }
    model.maxBatch = o.maxBatch
    let c = model.model.config
    let prompts = (0..<o.requests).map { model.textTokens(batchBenchPrompts[$0 % batchBenchPrompts.count]) }
    let options = (0..<o.requests).map {
        SamplingOptions(temperature: o.temperature, topK: o.temperature > 0 ? o.topK : 0, topP: o.temperature > 0 ? o.topP : 1, seed: UInt64($0), maxTokens: o.tokens)
    }
    let total = o.requests * o.tokens
    print("model: \(model.name) (\(c.numLayers) layers, hidden \(c.hiddenSize), vocabulary \(c.vocabSize)); \(o.requests) requests of \(prompts.map(\.count).min()!)-\(prompts.map(\.count).max()!) prompt tokens, \(o.tokens) new tokens each, temperature \(o.temperature)\(o.temperature > 0 ? " (top-k \(o.topK), top-p \(o.topP))" : ""), \(o.threads) threads, max batch \(o.maxBatch), products of up to \(BatchForward.streamRows) rows streamed (tk_gemm_nt_rows), more through sgemm")
    _ = try? model.continuation(ids: prompts[0], options: SamplingOptions(maxTokens: 4))  // warm-up
    func time(_ body: () -> [[Int32]]) -> (Double, [[Int32]]) {
        var best = Double.infinity
        var out: [[Int32]] = []
        for _ in 0..<max(1, o.runs) {
            let t0 = Date()
            out = body()
            best = min(best, Date().timeIntervalSince(t0))
        }
        return (best, out)
    }
    func skip(_ mode: String) -> Bool { o.only.map { !$0.split(separator: ",").contains(Substring(mode)) } ?? false }
    let (tRef, refTokens) = skip("reference") ? (1, []) : time {
        (0..<o.requests).map { i in
            let s = InferenceSession(model: model.model, maxLength: prompts[i].count + o.tokens)
            return (try? s.generate(prompt: prompts[i], options: options[i], decode: { _ in "" }).tokens) ?? []
        }
    }
    let (tOne, oneTokens) = skip("one") ? (1, []) : time {
        (0..<o.requests).map { i in (try? model.continuation(ids: prompts[i], options: options[i]).tokens) ?? [] }
    }
    let passes0 = model.batcher.passes
    let (tAll, allTokens) = skip("concurrent") ? (1, []) : time {
        let box = TokenBox(o.requests)
        let group = DispatchGroup()
        for i in 0..<o.requests {
            DispatchQueue(label: "bench.request.\(i)").async(group: group) {
                box.set(i, (try? model.continuation(ids: prompts[i], options: options[i]).tokens) ?? [])
            }
        }
        group.wait()
        return box.all
    }
    let passes = (model.batcher.passes - passes0) / max(1, o.runs)
    func rate(_ t: Double) -> String { String(format: "%.1f", Double(total) / t) }
    print("")
    print("| mode | seconds | tokens/s | vs one at a time (InferenceSession) |")
    print("| --- | --- | --- | --- |")
    print("| one at a time, InferenceSession (single-sequence path) | \(String(format: "%.2f", tRef)) | \(rate(tRef)) | 1.00x |")
    print("| one at a time, through the batcher | \(String(format: "%.2f", tOne)) | \(rate(tOne)) | \(String(format: "%.2f", tRef / tOne))x |")
    print("| \(o.requests) concurrent, batched (max batch \(o.maxBatch)) | \(String(format: "%.2f", tAll)) | \(rate(tAll)) | \(String(format: "%.2f", tRef / tAll))x |")
    print("")
    let same = zip(refTokens, allTokens).filter { $0 == $1 }.count
    let sameOne = zip(refTokens, oneTokens).filter { $0 == $1 }.count
    print("generated ids equal to the single-sequence path: concurrent \(same)/\(o.requests), one at a time \(sameOne)/\(o.requests); \(passes) forward passes for the concurrent run (\(total) tokens), largest batch \(model.batcher.largestBatch)")
    print("concurrent / one at a time through the batcher: \(String(format: "%.2f", tOne / tAll))x tokens/s; concurrent / single-sequence path: \(String(format: "%.2f", tRef / tAll))x")
}

final class TokenBox: @unchecked Sendable {
    private let lock = NSLock()
    private var v: [[Int32]]
    init(_ n: Int) { v = Array(repeating: [], count: n) }
    func set(_ i: Int, _ t: [Int32]) { lock.withLock { v[i] = t } }
    var all: [[Int32]] { lock.withLock { v } }
}
