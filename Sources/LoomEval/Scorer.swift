// Log-likelihoods of token sequences under a Loom model, the quantity lm-evaluation-harness's `loglikelihood` and
// `loglikelihood_rolling` requests ask for:
//   a request is a token sequence and how many of its last tokens to score; the model reads all tokens but the last
//   (cut from the left to `maxLength`, as the harness does) and the score is Σ log p(token | tokens before it) over
//   the scored ones.
// Requests are packed several to a row, each a document of its own (positions restart, attention stays inside it:
// the trainer's block-diagonal mask), so no compute goes to padding; logits are computed for every position of a
// row (the head is chunked for large vocabularies) and only the scored ones are read.

import Foundation
import LoomCore
import LoomTrain

/// A sequence and how many of its last tokens are scored (1...count-1).
public struct LoglikRequest: Sendable, Equatable {
    public var tokens: [Int32]
    public var scored: Int
    public init(tokens: [Int32], scored: Int) {
        self.tokens = tokens
        self.scored = scored
    }
}

public struct LoglikResult: Sendable, Equatable {
    /// Σ log p over the scored tokens (natural log).
    public var logprob: Double
    /// Tokens scored (after truncation to the model's length).
    public var tokens: Int
    /// Every scored token was the model's most likely one (lm-evaluation-harness's `is_greedy`).
    public var greedy: Bool
}

public final class LoglikScorer {
    public let model: LlamaModel
    /// Most tokens a request's input may hold (the row length): longer ones lose their first tokens.
    public let maxLength: Int
    /// Rows per forward pass.
    public let rows: Int

    public init(model: LlamaModel, maxLength: Int? = nil, rows: Int = 1) {
        self.model = model
        self.maxLength = min(maxLength ?? 2048, model.config.maxPositions)
        self.rows = max(1, rows)
    }

    /// The KV-cached session the shared-context path runs on (made on first use).
    private var session: InferenceSession?

    /// Scores several continuations of one context, the context run once: its tokens stay in a KV cache (as much of
    /// them as the previous call shared is kept), the last context position's logits score every continuation's
    /// first token, and each continuation's other tokens run on top of the cache. The same sums as `score` on
    /// `context + continuation` requests (the same kernels; the cache changes only the order of additions). Nil when
    /// a sequence is longer than `maxLength + 1` (the harness would cut its start: `score` does that).
    public func scoreShared(context: [Int32], continuations: [[Int32]]) throws -> [LoglikResult]? {
        guard !context.isEmpty, continuations.allSatisfy({ !$0.isEmpty && context.count + $0.count <= maxLength + 1 }) else { return nil }
        if session == nil { session = InferenceSession(model: model, maxLength: maxLength) }
        let s = session!
        // Keep the cached prefix this context shares (few-shot examples, the same context), but always run at least
        // its last token: its logits are not cached.
        var shared = 0
        while shared < min(s.tokens.count, context.count - 1), s.tokens[shared] == context[shared] { shared += 1 }
        s.truncate(to: shared)
        let logits = try s.append(Array(context[shared...]))
        let V = logits.count
        var mx = -Float.infinity, arg = 0
        for i in 0..<V where logits[i] > mx {
            mx = logits[i]
            arg = i
        }
        var sum = 0.0
        for i in 0..<V { sum += exp(Double(logits[i] - mx)) }
        let lse = Double(mx) + log(sum)
        var out: [LoglikResult] = []
        for cont in continuations {
            var lp = Double(logits[Int(cont[0])]) - lse
            var greedy = arg == Int(cont[0])
            if cont.count > 1 {
                s.truncate(to: context.count)
                let r = try s.appendScoring(Array(cont.dropLast()), targets: Array(cont.dropFirst()))
                lp += r.logprobs.reduce(0.0) { $0 + Double($1) }
                greedy = greedy && r.greedy.allSatisfy { $0 }
            }
            out.append(LoglikResult(logprob: lp, tokens: cont.count, greedy: greedy))
        }
        s.truncate(to: context.count)
        return out
    }

    /// The input tokens and targets of one request after truncation: input = tokens[..<n-1] (its last maxLength),
    /// target at input position i = tokens[i+1] where that token is scored.
    func layout(_ r: LoglikRequest) -> (input: ArraySlice<Int32>, targets: [Int32]) {
        precondition(r.tokens.count >= 2 && r.scored >= 1 && r.scored < r.tokens.count, "a request scores 1...count-1 tokens")
        let all = r.tokens.suffix(maxLength + 1)
        let input = all.dropLast()
        let n = input.count
        let scored = min(r.scored, n)
        var targets = [Int32](repeating: -1, count: n)
        let allArr = Array(all)
        for i in (n - scored)..<n { targets[i] = allArr[i + 1] }
        return (input, targets)
    }

    /// Scores every request; `progress` is told after each forward pass how many requests it finished.
    public func score(_ requests: [LoglikRequest], progress: (Int) -> Void = { _ in }) -> [LoglikResult] {
        var results = [LoglikResult](repeating: LoglikResult(logprob: 0, tokens: 0, greedy: true), count: requests.count)
        let layouts = requests.map(layout)
        // Longest first, each into the first row of the current batch with room (first-fit decreasing).
        let order = layouts.indices.sorted { layouts[$0].input.count > layouts[$1].input.count || (layouts[$0].input.count == layouts[$1].input.count && $0 < $1) }
        let T = min(maxLength, max(layouts.map(\.input.count).max() ?? 1, 1))
        var pending = order[...]
        while !pending.isEmpty {
            var rowsUsed = [Int](repeating: 0, count: rows)
            var placed: [(request: Int, row: Int, start: Int)] = []
            var rest: [Int] = []
            for q in pending {
                let len = layouts[q].input.count
                if let r = (0..<rows).first(where: { rowsUsed[$0] + len <= T }) {
                    placed.append((q, r, rowsUsed[r]))
                    rowsUsed[r] += len
                } else {
                    rest.append(q)
                    // Rows are filled longest first: once nothing of this length fits, shorter ones still may.
                    if rest.count > 4 * rows && rowsUsed.allSatisfy({ $0 > T / 2 }) { break }
                }
            }
            let consumed = Set(placed.map(\.request))
            pending = pending.filter { !consumed.contains($0) }[...]
            run(placed, layouts, T: T, into: &results)
            progress(placed.count)
        }
        return results
    }

    func run(_ placed: [(request: Int, row: Int, start: Int)], _ layouts: [(input: ArraySlice<Int32>, targets: [Int32])], T: Int, into results: inout [LoglikResult]) {
        let B = rows, N = B * T
        var tokens = [Int32](repeating: 0, count: N)
        var targets = [Int32](repeating: -1, count: N)
        var positions = [Int32](repeating: 0, count: N)
        var segStart = [Int32](repeating: 0, count: N)
        // Unused tails are one padding document of their own (pad token, no targets).
        var used = [Int](repeating: 0, count: B)
        for p in placed {
            let (input, t) = layouts[p.request]
            let base = p.row * T + p.start
            for (i, tok) in input.enumerated() {
                tokens[base + i] = tok
                targets[base + i] = t[i]
                positions[base + i] = Int32(i)
                segStart[base + i] = Int32(p.start)
            }
            used[p.row] = max(used[p.row], p.start + input.count)
        }
        let pad = Int32(max(0, model.config.padTokenId ?? 0))
        for r in 0..<B where used[r] < T {
            for i in used[r]..<T {
                tokens[r * T + i] = pad
                positions[r * T + i] = Int32(i - used[r])
                segStart[r * T + i] = Int32(used[r])
            }
        }
        model.forward(Batch(rows: B, length: T, tokens: tokens, targets: targets, positions: positions, segStart: segStart))
        let (lp, greedy) = model.targetLogProbsAndGreedy(targets: targets)
        for p in placed {
            let base = p.row * T + p.start
            let n = layouts[p.request].input.count
            var sum = 0.0, count = 0, allGreedy = true
            for i in 0..<n where targets[base + i] >= 0 {
                sum += Double(lp[base + i])
                count += 1
                allGreedy = allGreedy && greedy[base + i]
            }
            results[p.request] = LoglikResult(logprob: sum, tokens: count, greedy: allGreedy)
        }
    }
}
