// The three kinds of evaluation over one model, each as lm-evaluation-harness (0.4, HF backend) computes it:
//   - multiple choice: `_encode_pair` (trailing whitespace of the context moves to the continuation; the
//     continuation's tokens are those of context+continuation after the context's own tokens), one log-likelihood
//     request per choice, `acc` = argmax, `acc_norm` = argmax of loglik / len(choice), `acc_bytes` the same by UTF-8 bytes;
//   - perplexity: `loglikelihood_rolling` (disjoint windows of max_length predicted tokens, the first after the
//     prefix token), summed per document; token/byte/word perplexity and bits per byte over the whole set;
//   - generation: greedy decoding of the reply, EM and F1 after SQuAD's normalisation.

import Foundation
import LoomCore
import LoomTrain

/// One scored item: what items.jsonl holds and what the metrics aggregate.
struct ScoredItem {
    var id: String
    var task: String
    var kind: String
    /// Per-item scores averaged by the metrics (acc, acc_norm, exact_match, f1).
    var scores: [(String, Double)] = []
    /// Perplexity sums: log-likelihood and the counts it is divided by.
    var logprob = 0.0, tokens = 0, bytes = 0, words = 0
    var extra = JSONObject()

    var json: JSONValue {
        var o = JSONObject()
        o["id"] = .string(id)
        o["task"] = .string(task)
        o["kind"] = .string(kind)
        for (k, v) in scores { o[k] = .double(v) }
        if kind == "perplexity" {
            o["logprob"] = .double(logprob)
            o["tokens"] = .int(tokens)
            o["bytes"] = .int(bytes)
            o["words"] = .int(words)
        }
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }
}

final class Evaluator {
    let chat: ChatModel
    let settings: EvalConfig
    let scorer: LoglikScorer
    /// The token every sequence starts with (nil: none), and the one an empty context or a window starts from.
    let bos: Int32?
    let prefixToken: Int32

    init(chat: ChatModel, settings: EvalConfig) {
        self.chat = chat
        self.settings = settings
        scorer = LoglikScorer(model: chat.model, maxLength: settings.maxLength, rows: settings.rows)
        let codecBOS = chat.codec.bosId
        switch settings.bos {
        case "yes": bos = codecBOS ?? chat.codec.eosId
        case "no": bos = nil
        default: bos = codecBOS
        }
        prefixToken = codecBOS ?? chat.codec.eosId
    }

    func encode(_ s: String) -> [Int32] { (bos.map { [$0] } ?? []) + chat.codec.encode(s) }

    /// lm-evaluation-harness's `_encode_pair` as one request.
    func request(context: String, continuation: String) -> LoglikRequest? {
        guard let (c, k) = encodePair(context: context, continuation: continuation) else { return nil }
        return LoglikRequest(tokens: c + k, scored: k.count)
    }

    /// lm-evaluation-harness's `_encode_pair`: the context's tokens and the continuation's (nil: it has none).
    func encodePair(context: String, continuation: String) -> ([Int32], [Int32])? {
        var ctx = context, cont = continuation
        let trimmed = ctx.reversed().prefix(while: { $0.isWhitespace }).count
        if trimmed > 0 {
            cont = String(ctx.suffix(trimmed)) + cont
            ctx = String(ctx.dropLast(trimmed))
        }
        var contextTokens: [Int32], continuationTokens: [Int32]
        if ctx.isEmpty {
            contextTokens = [prefixToken]
            continuationTokens = chat.codec.encode(cont)
        } else {
            contextTokens = encode(ctx)
            let whole = encode(ctx + cont)
            continuationTokens = Array(whole.dropFirst(contextTokens.count))
        }
        guard !continuationTokens.isEmpty else { return nil }
        return (contextTokens, continuationTokens)
    }

    /// The few-shot prefix for an item: `k` examples of the same task from other documents, each
    /// context + delimiter + gold choice, separated by blank lines (the harness's default layout).
    func fewshotPrefix(_ item: ChoiceItem, pool: [ChoiceItem], index: Int) -> String {
        guard settings.fewshot > 0 else { return "" }
        let candidates = pool.filter { $0.task == item.task && ($0.docId == nil || $0.docId != item.docId) && $0.id != item.id }
        guard !candidates.isEmpty else { return "" }
        var rng = SplitMix64(seed: UInt64(settings.seed) &+ UInt64(index) &* 0x9E37_79B9)
        var picked: [ChoiceItem] = []
        var order = Array(candidates.indices)
        rng.shuffle(&order)
        for i in order.prefix(settings.fewshot) { picked.append(candidates[i]) }
        return picked.map { $0.context + settings.delimiter + $0.choices[$0.gold] }.joined(separator: "\n\n") + "\n\n"
    }

    /// Every choice's log-likelihood. An item whose choices share their context tokens (the usual case) runs the
    /// context once (`scoreShared`); the others go through packed requests.
    func multipleChoice(_ items: [ChoiceItem], fewshotPool: [ChoiceItem], progress: (Int) -> Void) throws -> [ScoredItem] {
        guard !items.isEmpty else { return [] }
        var requests: [LoglikRequest] = []
        var owner: [(item: Int, choice: Int)] = []
        var ll = items.map { [Double](repeating: 0, count: $0.choices.count) }
        for (i, item) in items.enumerated() {
            let context = fewshotPrefix(item, pool: fewshotPool, index: i) + item.context
            let pairs = item.choices.map { encodePair(context: context, continuation: settings.delimiter + $0) }
            if pairs.allSatisfy({ $0 != nil }), Set(pairs.map { $0!.0 }).count == 1,
                let shared = try scorer.scoreShared(context: pairs[0]!.0, continuations: pairs.map { $0!.1 })
            {
                ll[i] = shared.map(\.logprob)
                progress(1)
                continue
            }
            for (c, p) in pairs.enumerated() {
                // A choice without tokens of its own keeps log-likelihood 0.
                guard let (ctx, cont) = p else { continue }
                requests.append(LoglikRequest(tokens: ctx + cont, scored: cont.count))
                owner.append((i, c))
            }
        }
        let results = scorer.score(requests)
        progress(Set(owner.map(\.item)).count)
        for (k, r) in results.enumerated() { ll[owner[k].item][owner[k].choice] = r.logprob }
        return items.enumerated().map { i, item in
            let lls = ll[i]
            // acc_norm divides by the choice's length in code points (Python's len(choice)), acc_bytes by its UTF-8
            // bytes: the harness's two normalisations, equal for ASCII choices.
            let norm = zip(lls, item.choices).map { $0 / Double(max(1, $1.unicodeScalars.count)) }
            let byteNorm = zip(lls, item.choices).map { $0 / Double(max(1, $1.utf8.count)) }
            let pred = Evaluator.argmax(lls), predNorm = Evaluator.argmax(norm), predBytes = Evaluator.argmax(byteNorm)
            var s = ScoredItem(id: item.id, task: item.task ?? "multiple_choice", kind: "multiple_choice")
            s.scores = [
                ("acc", pred == item.gold ? 1 : 0), ("acc_norm", predNorm == item.gold ? 1 : 0), ("acc_bytes", predBytes == item.gold ? 1 : 0),
            ]
            s.extra["gold"] = .int(item.gold)
            s.extra["pred"] = .int(pred)
            s.extra["loglik"] = .array(lls.map { .double($0) })
            return s
        }
    }

    /// The first index of the maximum (numpy's argmax).
    static func argmax(_ a: [Double]) -> Int {
        var best = 0
        for i in a.indices where a[i] > a[best] { best = i }
        return best
    }

    /// lm-evaluation-harness's `get_rolling_token_windows(..., context_len=1)` + `make_disjoint_window`, as requests.
    func rollingRequests(_ tokens: [Int32]) -> [LoglikRequest] {
        let L = scorer.maxLength
        guard !tokens.isEmpty else { return [] }
        var out: [LoglikRequest] = []
        let first = min(L, tokens.count)
        out.append(LoglikRequest(tokens: [prefixToken] + tokens[..<first], scored: first))
        var predicted = first
        while predicted < tokens.count {
            let n = min(tokens.count - predicted, L)
            let end = predicted + n
            // The window's input is the L tokens before `end` (as many as there are); its last n are scored.
            let start = max(0, end - L - 1)
            out.append(LoglikRequest(tokens: Array(tokens[start..<end]), scored: n))
            predicted = end
        }
        return out
    }

    func perplexity(_ items: [TextItem], progress: (Int) -> Void) -> [ScoredItem] {
        guard !items.isEmpty else { return [] }
        var requests: [LoglikRequest] = []
        var owner: [Int] = []
        for (i, item) in items.enumerated() {
            // Documents are scored from the prefix token: the text's own tokens carry no start token.
            let rs = rollingRequests(chat.codec.encode(item.text))
            requests += rs
            owner += [Int](repeating: i, count: rs.count)
        }
        let results = scorer.score(requests) { _ in }
        progress(items.count)
        var scored = items.map { item -> ScoredItem in
            var s = ScoredItem(id: item.id, task: item.task, kind: "perplexity")
            s.bytes = item.text.utf8.count
            // The harness's word count: re.split(r"\s+", text).
            s.words = Evaluator.wordCount(item.text)
            return s
        }
        for (k, r) in results.enumerated() {
            scored[owner[k]].logprob += r.logprob
            scored[owner[k]].tokens += r.tokens
        }
        return scored
    }

    /// len(re.split(r"\s+", text)): whitespace runs separate; a leading or trailing run adds an empty piece.
    static func wordCount(_ text: String) -> Int {
        var pieces = 1, inSpace = false
        for ch in text.unicodeScalars {
            // Python's \s: Unicode whitespace plus the separators U+001C...U+001F (str.isspace).
            if ch.properties.isWhitespace || (0x1C...0x1F).contains(ch.value) {
                if !inSpace { pieces += 1 }
                inSpace = true
            } else {
                inSpace = false
            }
        }
        return pieces
    }

    func generation(_ items: [GenerationItem], progress: @escaping (Int) -> Void) throws -> [ScoredItem] {
        guard !items.isEmpty else { return [] }
        let options = SamplingOptions(temperature: 0, maxTokens: settings.maxTokens)
        let lock = NSLock()
        let chat = self.chat
        // A prompt too long for the model loses its first tokens, leaving room for the answer (the harness cuts
        // generation contexts the same way).
        let room = max(1, min(chat.model.config.maxPositions, settings.maxLength ?? Int.max) - settings.maxTokens)
        var o = options
        o.stopTokens.formUnion(chat.stopTokens)
        return try parallelMap(items, jobs: settings.concurrency) { item in
            var ids = chat.promptTokens(item.prompt)
            let cut = ids.count > room
            if cut { ids = Array(ids.suffix(room)) }
            let r = try chat.continuation(ids: ids, options: o)
            let answer = r.text.trimmingCharacters(in: .whitespacesAndNewlines)
            var s = ScoredItem(id: item.id, task: item.task, kind: "generation")
            s.scores = [("exact_match", AnswerMetrics.exactMatch(answer, item.reference)), ("f1", AnswerMetrics.f1(answer, item.reference))]
            s.extra["prediction"] = .string(answer)
            s.extra["reference"] = .string(item.reference)
            if cut { s.extra["prompt_cut_to"] = .int(room) }
            lock.withLock { progress(1) }
            return s
        }
    }

    /// Per task: the mean of every per-item score, or the perplexities of the set, each with its interval.
    static func metrics(_ items: [ScoredItem], resamples: Int, seed: UInt64) -> JSONObject {
        var tasks: [String] = []
        var byTask: [String: [ScoredItem]] = [:]
        for s in items {
            if byTask[s.task] == nil { tasks.append(s.task) }
            byTask[s.task, default: []].append(s)
        }
        var out = JSONObject()
        for task in tasks {
            let group = byTask[task]!
            var m = JSONObject()
            m["kind"] = .string(group[0].kind)
            m["items"] = .int(group.count)
            if group[0].kind == "perplexity" {
                let lp = group.map(\.logprob)
                func ratio(_ count: (ScoredItem) -> Int, _ f: @escaping (Double) -> Double) -> Estimate {
                    let n = group.map(count)
                    return Bootstrap.estimate(count: group.count, resamples: resamples, seed: seed) { idx in
                        let total = idx.reduce(0) { $0 + n[$1] }
                        return f(-idx.reduce(0.0) { $0 + lp[$1] } / Double(max(1, total)))
                    }
                }
                m["token_perplexity"] = ratio(\.tokens, exp).json
                m["byte_perplexity"] = ratio(\.bytes, exp).json
                m["bits_per_byte"] = ratio(\.bytes, { $0 / log(2) }).json
                m["word_perplexity"] = ratio(\.words, exp).json
                m["tokens"] = .int(group.reduce(0) { $0 + $1.tokens })
            } else {
                for (name, _) in group[0].scores {
                    let values = group.map { s in s.scores.first(where: { $0.0 == name })?.1 ?? 0 }
                    m[name] = Bootstrap.mean(values, resamples: resamples, seed: seed).json
                }
            }
            out[task] = .object(m)
        }
        return out
    }

    /// "acc 0.41 [0.35, 0.47], acc_norm ..." for the log.
    static func summary(_ m: JSONValue) -> String {
        let names = ["acc", "acc_norm", "acc_bytes", "exact_match", "f1", "token_perplexity", "byte_perplexity", "bits_per_byte"]
        let parts: [String] = names.compactMap { name in
            guard let e = m[name], let v = e["value"]?.doubleValue, let ci = e["ci95"]?.arrayValue, ci.count == 2 else { return nil }
            return String(format: "%@ %.4f [%.4f, %.4f]", name, v, ci[0].doubleValue ?? 0, ci[1].doubleValue ?? 0)
        }
        return "\(m["items"]?.intValue ?? 0) items: " + parts.joined(separator: ", ")
    }
}
