// Preference training: DPO (Rafailov et al. 2023, arXiv 2305.18290) and ORPO (Hong et al. 2024, arXiv 2403.07691)
// on prompt/chosen/rejected pairs, in TRL's preference format (strings, or message lists through the chat template;
// the prompt may be left implicit as the messages chosen and rejected share). The formulas are in docs/training.md.
//
// A pair is two segments over the same prompt: prompt + chosen completion, prompt + rejected completion; a
// sequence's log-probability is the sum of log p over its completion tokens only. A row holds whole pairs (both
// segments of a pair are always in the same row), several when they fit: every segment is its own document in the
// block-diagonal mask, so a packed row gives the loss and gradient of the same pairs unpacked.
//
// The gradient reuses the cross-entropy kernel: a sequence's log-probability is a sum of log p(target) over its
// positions, so d(loss)/d(logits[n]) = (d loss / d logp_seq) · (onehot − softmax) = w_n · (softmax − onehot) with
// w_n = −d loss / d logp_seq for every completion position n of the sequence: `weightedCrossEntropy` writes exactly
// that, and `backward` does the rest.
//
// DPO's reference log-probabilities are computed once, before training, with the reference model (by default the
// starting model, as TRL copies it), and kept per sequence; no reference model is held while training.

import Foundation
import LoomCore
import LoomTensor

/// One preference pair as two segments over the same prompt tokens; `loss` marks the completion tokens whose
/// log-probabilities make the sequence's log-probability.
public struct PreferencePair: Equatable, Sendable {
    public var chosen: Segment
    public var rejected: Segment
    /// Prompt tokens at the start of both segments.
    public var promptLength: Int
    /// The pair was longer than the sequence limit and lost the start of its prompt (or the end of a completion).
    public var truncated: Bool

    public init(chosen: Segment, rejected: Segment, promptLength: Int, truncated: Bool = false) {
        self.chosen = chosen
        self.rejected = rejected
        self.promptLength = promptLength
        self.truncated = truncated
    }
}

extension Segment: Hashable {
    public func hash(into h: inout Hasher) {
        h.combine(tokens)
        h.combine(loss)
    }
}

extension DatasetBuilder {
    /// A prompt or completion: a string, or a list of {role, content} messages.
    enum PreferenceText {
        case text(String)
        case messages([(role: String, content: String)])

        init?(_ v: JSONValue?) {
            guard let v else { return nil }
            if let s = v.stringValue {
                self = .text(s)
                return
            }
            guard let ms = v.arrayValue, !ms.isEmpty else { return nil }
            var out: [(role: String, content: String)] = []
            for m in ms {
                guard let role = m["role"]?.stringValue, let content = m["content"]?.stringValue else { return nil }
                out.append((role, content))
            }
            self = .messages(out)
        }

        func messages(role: String) -> [(role: String, content: String)] {
            switch self {
            case .text(let s): return [(role, s)]
            case .messages(let m): return m
            }
        }

        var isMessages: Bool {
            if case .messages = self { return true }
            return false
        }
    }

    /// The pair of a `prompt`/`chosen`/`rejected` record, or why it cannot be used. Strings: prompt = bos + text,
    /// completion = text + eos, every completion token trained. Messages (any of the three a list): the chat
    /// template renders prompt + completion, and the completion's trained pieces (the assistant's content and its
    /// end-of-turn token) carry the loss; the completion's header (`<|im_start|>assistant\n`) is not trained, like
    /// the generation prompt TRL adds. Without `prompt`, chosen and rejected conversations give their shared
    /// leading messages as the prompt (TRL's implicit prompt). A sequence longer than `length` keeps the end of the
    /// prompt (TRL's truncation_mode keep_end), then the start of the completion.
    public func preferencePair(of r: JSONValue) -> Result<PreferencePair, LoomError> {
        guard let chosenIn = PreferenceText(r["chosen"]), let rejectedIn = PreferenceText(r["rejected"]) else {
            return .failure(
                LoomError("record has no usable 'chosen' and 'rejected' (strings or lists of role/content messages; DPO and ORPO read prompt/chosen/rejected pairs)"))
        }
        var promptIn = PreferenceText(r["prompt"])
        var chosenX = chosenIn, rejectedX = rejectedIn
        if promptIn == nil {
            if r["prompt"] != nil { return .failure(LoomError("'prompt' is neither a string nor a list of role/content messages")) }
            guard case .messages(let c) = chosenIn, case .messages(let j) = rejectedIn else {
                return .failure(LoomError("record has no 'prompt' (an implicit prompt needs chosen and rejected as conversations)"))
            }
            var k = 0
            while k < min(c.count, j.count), c[k].role == j[k].role, c[k].content == j[k].content { k += 1 }
            guard k > 0, k < c.count, k < j.count else {
                return .failure(LoomError("record has no 'prompt', and chosen and rejected share no leading messages to use as one"))
            }
            promptIn = .messages(Array(c[..<k]))
            chosenX = .messages(Array(c[k...]))
            rejectedX = .messages(Array(j[k...]))
        }
        guard let promptIn else { return .failure(LoomError("record has no 'prompt'")) }
        let conversational = promptIn.isMessages || chosenX.isMessages || rejectedX.isMessages
        var prompt: [Int32]
        var completions: [(tokens: [Int32], loss: [Bool])] = []
        if conversational {
            let pm = promptIn.messages(role: "user")
            let p = chatSegment(pm)
            prompt = p.tokens
            for (side, c) in [("chosen", chosenX), ("rejected", rejectedX)] {
                let full = chatSegment(pm + c.messages(role: "assistant"))
                guard full.tokens.count > prompt.count, full.tokens.starts(with: prompt) else {
                    return .failure(LoomError("the chat template does not render the prompt as a prefix of prompt + \(side)"))
                }
                let loss = Array(full.loss[prompt.count...])
                guard loss.contains(true) else {
                    return .failure(LoomError("'\(side)' has no assistant message to learn from"))
                }
                completions.append((Array(full.tokens[prompt.count...]), loss))
            }
        } else {
            guard case .text(let ps) = promptIn, case .text(let cs) = chosenX, case .text(let rs) = rejectedX else {
                return .failure(LoomError("record mixes formats"))
            }
            prompt = (codec.bosId.map { [$0] } ?? []) + codec.encode(ps)
            for s in [cs, rs] {
                let t = codec.encode(s) + [codec.eosId]
                completions.append((t, [Bool](repeating: true, count: t.count)))
            }
        }
        // Truncation: keep the prompt's end, then cut completions to what is left.
        var truncated = false
        let longest = max(completions[0].tokens.count, completions[1].tokens.count)
        if prompt.count + longest > length {
            truncated = true
            let keep = min(prompt.count, max(1, length - longest))
            prompt = Array(prompt.suffix(keep))
            let room = length - prompt.count
            for i in 0..<2 where completions[i].tokens.count > room {
                completions[i] = (Array(completions[i].tokens.prefix(room)), Array(completions[i].loss.prefix(room)))
            }
            for (i, side) in ["chosen", "rejected"].enumerated() where !completions[i].loss.contains(true) {
                return .failure(LoomError("'\(side)' keeps no trained token within seq_len \(length)"))
            }
        }
        let mask = [Bool](repeating: false, count: prompt.count)
        return .success(
            PreferencePair(
                chosen: Segment(tokens: prompt + completions[0].tokens, loss: mask + completions[0].loss),
                rejected: Segment(tokens: prompt + completions[1].tokens, loss: mask + completions[1].loss),
                promptLength: prompt.count, truncated: truncated))
    }

    /// Tokens in a preference row: room for one pair of two sequences of `length` tokens.
    public var preferenceRowLength: Int { 2 * length }

    /// Rows of whole pairs in input order, packed greedily: segments chosen₀, rejected₀, chosen₁, rejected₁, ...
    public func preferenceRows(_ pairs: [PreferencePair]) -> [Row] {
        var rows: [Row] = []
        var open = Row(segments: [])
        for p in pairs {
            let n = p.chosen.tokens.count + p.rejected.tokens.count
            if !open.segments.isEmpty, open.tokenCount + n > preferenceRowLength {
                rows.append(open)
                open = Row(segments: [])
            }
            open.segments += [p.chosen, p.rejected]
        }
        if !open.segments.isEmpty { rows.append(open) }
        return rows
    }

    /// A batch of preference rows, padded to `preferenceRowLength`: targets are the next token at every position of
    /// every sequence (ORPO's NLL may include the prompt), with the sequence each position belongs to and whether
    /// its target is a completion token.
    public func preferenceBatch(_ rows: [Row]) -> PreferenceBatch {
        let T = preferenceRowLength
        var tokens = [Int32](repeating: codec.padId, count: rows.count * T)
        var targets = [Int32](repeating: -1, count: rows.count * T)
        var positions = [Int32](repeating: 0, count: rows.count * T)
        var seg = [Int32](repeating: 0, count: rows.count * T)
        var sequence = [Int32](repeating: -1, count: rows.count * T)
        var completion = [Bool](repeating: false, count: rows.count * T)
        var segments: [Segment] = []
        for (b, row) in rows.enumerated() {
            precondition(row.segments.count % 2 == 0 && row.tokenCount <= T, "a preference row holds whole pairs")
            var at = 0
            for s in row.segments {
                let id = Int32(segments.count)
                segments.append(s)
                for (i, tok) in s.tokens.enumerated() {
                    let n = b * T + at + i
                    tokens[n] = tok
                    positions[n] = Int32(i)
                    seg[n] = Int32(at)
                    if i + 1 < s.tokens.count {
                        targets[n] = s.tokens[i + 1]
                        sequence[n] = id
                        completion[n] = s.loss[i + 1]
                    }
                }
                at += s.tokens.count
            }
            for t in at..<T { seg[b * T + t] = Int32(t) }
        }
        return PreferenceBatch(
            batch: Batch(rows: rows.count, length: T, tokens: tokens, targets: targets, positions: positions, segStart: seg),
            sequence: sequence, completion: completion, segments: segments)
    }
}

/// A batch of preference rows. Sequence 2k is pair k's chosen, 2k+1 its rejected.
public struct PreferenceBatch: Sendable {
    public var batch: Batch
    /// The sequence position n's target belongs to (−1: padding or a sequence's last token).
    public var sequence: [Int32]
    /// Position n's target is a completion token (it counts in the sequence's log-probability).
    public var completion: [Bool]
    /// The batch's sequences in order.
    public var segments: [Segment]
    public var pairs: Int { segments.count / 2 }

    /// Targets of chosen sequences the ORPO NLL averages over: every target (prompt included) or completion only.
    public func nllTargets(promptIncluded: Bool) -> Int {
        var n = 0
        for i in sequence.indices where sequence[i] >= 0 && sequence[i] % 2 == 0 && (promptIncluded || completion[i]) { n += 1 }
        return n
    }

    /// Per sequence: Σ log p over completion targets and their count, from per-position log-probabilities.
    public func sequenceLogps(_ logps: [Float]) -> (sum: [Double], count: [Int]) {
        var sum = [Double](repeating: 0, count: segments.count), count = [Int](repeating: 0, count: segments.count)
        for n in sequence.indices where sequence[n] >= 0 && completion[n] {
            sum[Int(sequence[n])] += Double(logps[n])
            count[Int(sequence[n])] += 1
        }
        return (sum, count)
    }
}

/// The preference losses and their settings.
public enum PreferenceLoss: Equatable, Sendable {
    /// DPO with the sigmoid loss: −log σ(β ((πc − πr) − (refc − refr))).
    case dpo(beta: Double)
    /// ORPO: NLL(chosen) − λ log σ(log odds(āc) − log odds(ār)); the NLL over the chosen sequence's every target
    /// (prompt included, as TRL 1.16) or over its completion only (the paper, older TRL).
    case orpo(lambda: Double, promptInNLL: Bool)
}

/// Numerically stable pieces of the losses.
public enum PreferenceMath {
    /// log σ(x).
    public static func logSigmoid(_ x: Double) -> Double { x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)) }
    /// σ(x).
    public static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
    /// log(1 − eᵃ) for a < 0 (Mächler's log1mexp).
    public static func log1mexp(_ a: Double) -> Double { a > -M_LN2 ? log(-expm1(a)) : log1p(-exp(a)) }

    /// One pair's term of the mean loss (before dividing by the pair count), d(term)/d(chosen logp sum) and
    /// d(term)/d(rejected logp sum), and its metrics. DPO reads the sums; ORPO the averages (sum / count).
    public static func pairTerm(
        _ loss: PreferenceLoss, chosen: Double, chosenCount: Int, rejected: Double, rejectedCount: Int,
        refChosen: Double, refRejected: Double
    ) -> (term: Double, dChosen: Double, dRejected: Double, metrics: [String: Double]) {
        switch loss {
        case .dpo(let beta):
            let z = (chosen - rejected) - (refChosen - refRejected)
            let g = -beta * sigmoid(-beta * z)  // d(−log σ(βz))/dz
            let rc = beta * (chosen - refChosen), rr = beta * (rejected - refRejected)
            return (
                -logSigmoid(beta * z), g, -g,
                [
                    "rewards/chosen": rc, "rewards/rejected": rr, "rewards/margins": rc - rr,
                    "rewards/accuracies": rc > rr ? 1 : 0, "logps/chosen": chosen, "logps/rejected": rejected,
                ]
            )
        case .orpo(let lambda, _):
            // Averages below 0 by a hair at least, so log(1 − eᵃ) stays finite when a sequence is certain.
            let ac = min(chosen / Double(chosenCount), -1e-12), ar = min(rejected / Double(rejectedCount), -1e-12)
            let x = (ac - ar) - (log1mexp(ac) - log1mexp(ar))
            let g = -lambda * sigmoid(-x)  // d(−λ log σ(x))/dx
            // dx/dāc = 1/(1 − e^āc), dx/dār = −1/(1 − e^ār), dā/dsum = 1/count.
            let dc = g / (-expm1(ac)) / Double(chosenCount), dr = -g / (-expm1(ar)) / Double(rejectedCount)
            return (
                -lambda * logSigmoid(x), dc, dr,
                [
                    "log_odds_ratio": logSigmoid(x), "log_odds_chosen": x, "rewards/chosen": lambda * ac,
                    "rewards/rejected": lambda * ar, "rewards/margins": lambda * (ac - ar),
                    "rewards/accuracies": ac > ar ? 1 : 0,
                ]
            )
        }
    }
}

/// DPO or ORPO as the trainer's objective.
public final class PreferenceObjective: RowObjective {
    public let loss: PreferenceLoss
    public let data: DatasetBuilder
    /// DPO: the reference model's log-probability of every sequence (Σ over completion tokens), by sequence.
    public var references: [Segment: Double] = [:]

    public init(loss: PreferenceLoss, data: DatasetBuilder) {
        self.loss = loss
        self.data = data
    }

    /// The reference log-probabilities of every sequence of `rows`, from `model` (forward only, `batchSize` rows
    /// at a time). Computed once before training; the reference model can go afterwards.
    public static func referenceLogps(model: LlamaModel, data: DatasetBuilder, rows: [Row], batchSize: Int) -> [Segment: Double] {
        var out: [Segment: Double] = [:]
        for i in stride(from: 0, to: rows.count, by: max(1, batchSize)) {
            let pb = data.preferenceBatch(Array(rows[i..<min(rows.count, i + batchSize)]))
            model.forward(pb.batch)
            let (sum, _) = pb.sequenceLogps(model.targetLogProbs(targets: pb.batch.targets))
            for (k, s) in pb.segments.enumerated() { out[s] = sum[k] }
        }
        return out
    }

    /// Writes the reference log-probabilities of `pairs` (F64 `chosen`, `rejected`, in pair order) with the run's
    /// fingerprint, atomically.
    public static func saveReferences(_ refs: [Segment: Double], pairs: [PreferencePair], fingerprint: String, to path: String) throws {
        func tensor(_ v: [Double]) -> Tensor { Tensor(shape: [v.count], dtype: .f64, bytes: v.withUnsafeBytes { Array($0) }) }
        let c = pairs.map { refs[$0.chosen] ?? .nan }, r = pairs.map { refs[$0.rejected] ?? .nan }
        try SafeTensors.write(
            [("chosen", tensor(c)), ("rejected", tensor(r))], metadata: [("fingerprint", fingerprint)], to: path + ".tmp")
        try FS.rename(path + ".tmp", path)
    }

    /// The stored reference log-probabilities, when the file is of this run (same fingerprint and pair count).
    public static func loadReferences(_ path: String, pairs: [PreferencePair], fingerprint: String) -> [Segment: Double]? {
        guard FS.exists(path), let f = try? SafeTensors.read(path),
            f.metadata.contains(where: { $0.0 == "fingerprint" && $0.1 == fingerprint })
        else { return nil }
        func values(_ name: String) -> [Double]? {
            guard let t = f.tensors.first(where: { $0.name == name })?.tensor, t.dtype == .f64, t.count == pairs.count else { return nil }
            return t.bytes.withUnsafeBytes { raw in (0..<t.count).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) } }
        }
        guard let c = values("chosen"), let r = values("rejected") else { return nil }
        var out: [Segment: Double] = [:]
        for (i, p) in pairs.enumerated() {
            out[p.chosen] = c[i]
            out[p.rejected] = r[i]
        }
        return out
    }

    var promptInNLL: Bool? {
        if case .orpo(_, let p) = loss { return p }
        return nil
    }

    /// Forward over the batches; with `train`, writes the gradient of the mean loss over all their pairs and runs
    /// backward after each. The loss: mean over pairs of the pair terms, plus ORPO's NLL (a token mean over all
    /// the batches' chosen targets).
    func run(model: LlamaModel, batches: [PreferenceBatch], train: Bool) -> ObjectiveResult? {
        let pairs = batches.reduce(0) { $0 + $1.pairs }
        guard pairs > 0 else { return nil }
        let nllTokens = promptInNLL.map { p in batches.reduce(0) { $0 + $1.nllTargets(promptIncluded: p) } } ?? 0
        var total = 0.0, nll = 0.0
        var metrics: [String: Double] = [:]
        for pb in batches {
            model.forward(pb.batch)
            let lp = model.targetLogProbs(targets: pb.batch.targets)
            let (sum, count) = pb.sequenceLogps(lp)
            var coef = [Double](repeating: 0, count: pb.segments.count)  // d(mean loss)/d(sequence logp)
            for k in 0..<pb.pairs {
                let c = 2 * k, r = 2 * k + 1
                var refC = 0.0, refR = 0.0
                if case .dpo = loss {
                    guard let a = references[pb.segments[c]], let b = references[pb.segments[r]] else {
                        preconditionFailure("DPO: a sequence without its reference log-probability")
                    }
                    (refC, refR) = (a, b)
                }
                let t = PreferenceMath.pairTerm(
                    loss, chosen: sum[c], chosenCount: count[c], rejected: sum[r], rejectedCount: count[r],
                    refChosen: refC, refRejected: refR)
                total += t.term / Double(pairs)
                coef[c] = t.dChosen / Double(pairs)
                coef[r] = t.dRejected / Double(pairs)
                for (key, v) in t.metrics { metrics[key, default: 0] += v / Double(pairs) }
            }
            var weights = [Float](repeating: 0, count: lp.count)
            for n in lp.indices where pb.sequence[n] >= 0 {
                let s = Int(pb.sequence[n])
                var w = 0.0
                if pb.completion[n] { w -= coef[s] }
                if let p = promptInNLL, s % 2 == 0, p || pb.completion[n] {
                    nll -= Double(lp[n]) / Double(nllTokens)
                    w += 1 / Double(nllTokens)
                }
                weights[n] = Float(w)
            }
            if train {
                _ = model.weightedCrossEntropy(targets: pb.batch.targets, weights: weights)
                model.backward()
            }
        }
        if promptInNLL != nil { metrics["nll_loss"] = nll }
        return ObjectiveResult(
            loss: total + nll, metrics: metrics, tokens: batches.reduce(0) { $0 + $1.batch.tokens.count })
    }

    public func accumulate(model: LlamaModel, microBatches: [[Row]]) -> ObjectiveResult {
        run(model: model, batches: microBatches.map(data.preferenceBatch), train: true)
            ?? ObjectiveResult(loss: 0, metrics: [:], tokens: 0)
    }

    public func evaluate(model: LlamaModel, rows: [Row], batchSize: Int) -> ObjectiveResult? {
        let batches = stride(from: 0, to: rows.count, by: max(1, batchSize)).map {
            data.preferenceBatch(Array(rows[$0..<min(rows.count, $0 + batchSize)]))
        }
        return run(model: model, batches: batches, train: false)
    }
}
