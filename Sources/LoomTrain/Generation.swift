// Sampling from a Llama model with a KV cache: the prompt runs in chunks, then one token at a time, each step
// reading the keys and values of every earlier position from the cache instead of recomputing them.
//   per layer, for the n new tokens at positions p..p+n-1:
//     x = rmsnorm(h)·w1; q = x Wqᵀ; K[p..], V[p..] = x Wkᵀ, x Wvᵀ (written straight into the cache); RoPE on q, K[p..]
//     h += o_proj(softmax(q K[0..p+n]ᵀ / sqrt(hd) + causal) V[0..p+n]); h += down(silu(gate x2) ⊙ up x2)
//   logits of the last new token = lm_head(rmsnorm(h_last)·wf)
// The same kernels and family rules as LlamaModel.forward (CTensorKernels rmsnorm, rope, swiglu/geglu; OpenBLAS
// products; Qwen 2's biases; Gemma 3's scaled embeddings, (1 + w) norms, q/k norms, norms after attention and MLP,
// sliding-window layers with their own rotary base), so the cached path gives the full forward's logits (checked in
// GenerationTests and against transformers' generate). Sampling: greedy, or temperature with top-k
// and top-p, drawn from SplitMix64 with the caller's seed; stop tokens, stop strings and a token budget end it.

import CTensorKernels
import Foundation
import LoomCore
import LoomTensor

/// One sequence's keys and values per layer ([maxLength, kvHeads * headDim] each) and the scratch buffers of an
/// incremental forward over chunks of at most `chunk` tokens.
public final class InferenceSession: @unchecked Sendable {
    public let model: LlamaModel
    /// Most positions the cache holds (the model's max_position_embeddings unless asked for fewer).
    public let maxLength: Int
    /// Tokens processed per forward when a prompt is appended.
    public let chunk: Int
    /// Positions filled so far.
    public private(set) var length = 0
    /// The tokens in the cache, in order.
    public private(set) var tokens: [Int32] = []

    struct Layer {
        var ln1, q, k, v, o, ln2, gate, up, down: UnsafeMutablePointer<Float>
        var bq, bk, bv, qNorm, kNorm, postAttn, postFfw: UnsafeMutablePointer<Float>?
    }
    let layers: [Layer]
    let embed, finalNorm, head: UnsafeMutablePointer<Float>
    private var owned: [FloatBuffer] = []
    let kCache: [UnsafeMutablePointer<Float>], vCache: [UnsafeMutablePointer<Float>]
    let x, xn, rstd, q, atty, gate, up, act, scores, logitsBuffer: UnsafeMutablePointer<Float>
    /// Gemma: a layer output before its norm, q and k before theirs.
    let sub, qpre, kpre: UnsafeMutablePointer<Float>

    public init(model: LlamaModel, maxLength: Int? = nil, chunk: Int = 64) {
        let c = model.config
        self.model = model
        self.maxLength = min(maxLength ?? c.maxPositions, c.maxPositions)
        self.chunk = max(1, chunk)
        let p = model.params
        model.refreshNormWeights()
        layers = model.layers.map { o in
            let P = p.values.pointer
            func opt(_ off: Int) -> UnsafeMutablePointer<Float>? { off < 0 ? nil : P + off }
            func norm(_ off: Int) -> UnsafeMutablePointer<Float>? { off < 0 ? nil : model.normWeight(off) }
            return Layer(
                ln1: model.normWeight(o.ln1), q: P + o.q, k: P + o.k, v: P + o.v, o: P + o.o, ln2: model.normWeight(o.ln2),
                gate: P + o.gate, up: P + o.up, down: P + o.down, bq: opt(o.bq), bk: opt(o.bk), bv: opt(o.bv),
                qNorm: norm(o.qNorm), kNorm: norm(o.kNorm), postAttn: norm(o.postAttn), postFfw: norm(o.postFfw))
        }
        embed = p.values.pointer + model.embedOffset
        finalNorm = model.normWeight(model.normOffset)
        head = p.values.pointer + model.headOffset
        let D = c.hiddenSize, I = c.intermediateSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        let C = self.chunk, L = self.maxLength
        var owned: [FloatBuffer] = []
        func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
            let b = FloatBuffer(count: n)
            owned.append(b)
            return b.pointer
        }
        kCache = (0..<c.numLayers).map { _ in buf(L * kvd) }
        vCache = (0..<c.numLayers).map { _ in buf(L * kvd) }
        x = buf(C * D); xn = buf(C * D); rstd = buf(C * max(1, c.numHeads)); q = buf(C * qd); atty = buf(C * qd)
        sub = buf(c.gemmaNorms ? C * D : 1); qpre = buf(c.gemmaNorms ? C * qd : 1); kpre = buf(c.gemmaNorms ? C * kvd : 1)
        gate = buf(C * I); up = buf(C * I); act = buf(C * I)
        scores = buf(c.numHeads * C * L); logitsBuffer = buf(c.vocabSize)
        self.owned = owned
    }

    /// Empties the cache (the buffers stay allocated).
    public func reset() {
        length = 0
        tokens = []
    }

    /// Drops cached positions from `n` on (keeps a shared prompt prefix between requests).
    public func truncate(to n: Int) {
        length = min(length, max(0, n))
        tokens = Array(tokens.prefix(length))
    }

    /// Appends tokens to the sequence and returns the logits predicting the token after the last one.
    public func append(_ new: [Int32]) throws -> [Float] {
        guard !new.isEmpty else { throw LoomError("generation: nothing to append") }
        let V = model.config.vocabSize
        for t in new where t < 0 || Int(t) >= V {
            throw LoomError("generation: token id \(t) is outside the model's vocabulary (\(V))")
        }
        guard length + new.count <= maxLength else {
            throw LoomError("generation: \(length + new.count) tokens exceed the model's context of \(maxLength)")
        }
        var i = 0
        while i < new.count {
            let n = min(chunk, new.count - i)
            step(Array(new[i..<(i + n)]), last: i + n == new.count)
            i += n
        }
        return Array(UnsafeBufferPointer(start: logitsBuffer, count: V))
    }

    /// Appends tokens and scores them: `targets[j]` is the token expected after `new[j]` (< 0: none). Returns, per new
    /// token, log p(target) and whether the target was the most likely token (the first index of the maximum, as
    /// torch.argmax); 0 and true where there is no target. Only rows with a target go through the head, so scoring
    /// a continuation after a cached context costs its own tokens only: what evaluation's log-likelihoods need.
    public func appendScoring(_ new: [Int32], targets: [Int32]) throws -> (logprobs: [Float], greedy: [Bool]) {
        precondition(targets.count == new.count)
        guard !new.isEmpty else { return ([], []) }
        let V = model.config.vocabSize
        for t in new + targets where Int(t) >= V || t < -1 {
            throw LoomError("scoring: token id \(t) is outside the model's vocabulary (\(V))")
        }
        guard length + new.count <= maxLength else {
            throw LoomError("scoring: \(length + new.count) tokens exceed the context of \(maxLength)")
        }
        var logprobs = [Float](repeating: 0, count: new.count)
        var greedy = [UInt8](repeating: 1, count: new.count)
        var i = 0
        while i < new.count {
            let n = min(chunk, new.count - i)
            let rows = (0..<n).filter { targets[i + $0] >= 0 }
            step(Array(new[i..<(i + n)]), last: false)
            if !rows.isEmpty {
                let c = model.config, D = c.hiddenSize, m = rows.count
                if scoringLogits == nil { scoringLogits = FloatBuffer(count: chunk * V) }
                let lg = scoringLogits!.pointer
                for (r, j) in rows.enumerated() {
                    tk_rmsnorm_forward(xn + r * D, rstd, x + j * D, finalNorm, 1, D, Float(c.rmsNormEps))
                }
                Matmul.parallelGemm(xn, head, lg, m: m, n: V, k: D, transposeB: true)
                if let cap = c.finalLogitSoftcap {
                    Compute.parallel(m * V, grain: 1 << 16) { r in
                        for k in r { lg[k] = Float(cap) * tanhf(lg[k] / Float(cap)) }
                    }
                }
                var lp = [Float](repeating: 0, count: m)
                var g = [UInt8](repeating: 1, count: m)
                LlamaModel.scoreRows(lg, targets: rows.map { targets[i + $0] }, vocab: V, into: &lp, &g, at: 0)
                for (r, j) in rows.enumerated() {
                    logprobs[i + j] = lp[r]
                    greedy[i + j] = g[r]
                }
            }
            i += n
        }
        return (logprobs, greedy.map { $0 != 0 })
    }

    /// [chunk, vocab] logits of the rows `appendScoring` scores (allocated on first use).
    private var scoringLogits: FloatBuffer?

    /// One incremental forward over n ≤ chunk tokens at positions length..<length+n.
    func step(_ new: [Int32], last: Bool) {
        let c = model.config
        let n = new.count, p0 = length, L = p0 + n
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd, per = H / G
        let eps = Float(c.rmsNormEps)
        let scale = c.attentionScale
        let gemma = c.gemmaNorms
        let positions = (0..<n).map { Int32(p0 + $0) }
        let es = c.embeddingScale
        for (j, t) in new.enumerated() {
            let row = x + j * D, src = embed + Int(t) * D
            if es == 1 { row.update(from: src, count: D) } else { for i in 0..<D { row[i] = src[i] * es } }
        }
        for (l, w) in layers.enumerated() {
            rmsnorm(xn, x, w.ln1, n, D, eps)
            let kc = kCache[l], vc = vCache[l]
            let qOut = gemma ? qpre : q, kOut = gemma ? kpre : kc + p0 * kvd
            Matmul.parallelGemm(xn, w.q, qOut, m: n, n: qd, k: D, transposeB: true)
            Matmul.parallelGemm(xn, w.k, kOut, m: n, n: kvd, k: D, transposeB: true)
            Matmul.parallelGemm(xn, w.v, vc + p0 * kvd, m: n, n: kvd, k: D, transposeB: true)
            if let bq = w.bq, let bk = w.bk, let bv = w.bv {
                tk_add_bias(qOut, bq, n, qd)
                tk_add_bias(kOut, bk, n, kvd)
                tk_add_bias(vc + p0 * kvd, bv, n, kvd)
            }
            if let qn = w.qNorm, let kn = w.kNorm {
                rmsnorm(q, qpre, qn, n * H, hd, eps)
                rmsnorm(kc + p0 * kvd, kpre, kn, n * G, hd, eps)
            }
            let table = model.layerRope[l]
            rope(q, positions, n, H, table: table)
            rope(kc + p0 * kvd, positions, n, G, table: table)
            // Attention per query head against the cached keys of its KV group: row j sees keys lo...p0+j, where
            // lo is 0, or in a sliding layer the first of the window's positions.
            let window = c.isSliding(l) ? c.slidingWindow! : Int.max
            let (qp, sp, yp) = (q, scores, atty)
            Compute.parallel(H) { r in
                for h in r {
                    let g = h / per
                    let s = sp + h * n * L
                    Matmul.gemm(qp + h * hd, lda: qd, kc + g * hd, ldb: kvd, s, ldc: L, m: n, n: L, k: hd, transposeB: true)
                    for j in 0..<n {
                        let t = p0 + j
                        maskedSoftmax(s + j * L, from: window == Int.max ? 0 : max(0, t - window + 1), to: t + 1, count: L, scale: scale)
                    }
                    Matmul.gemm(s, lda: L, vc + g * hd, ldb: kvd, yp + h * hd, ldc: qd, m: n, n: hd, k: L)
                }
            }
            if let pa = w.postAttn {
                Matmul.parallelGemm(atty, w.o, sub, m: n, n: D, k: qd, transposeB: true)
                addNormed(sub, pa, n, D, eps)
            } else {
                Matmul.parallelGemm(atty, w.o, x, m: n, n: D, k: qd, transposeB: true, beta: 1)
            }
            rmsnorm(xn, x, w.ln2, n, D, eps)
            Matmul.parallelGemm(xn, w.gate, gate, m: n, n: I, k: D, transposeB: true)
            Matmul.parallelGemm(xn, w.up, up, m: n, n: I, k: D, transposeB: true)
            let (g, u, a) = (gate, up, act)
            Compute.parallel(n * I, grain: 4096) { r in
                if gemma {
                    tk_geglu_forward(a + r.lowerBound, g + r.lowerBound, u + r.lowerBound, r.count)
                } else {
                    tk_swiglu_forward(a + r.lowerBound, g + r.lowerBound, u + r.lowerBound, r.count)
                }
            }
            if let pf = w.postFfw {
                Matmul.parallelGemm(act, w.down, sub, m: n, n: D, k: I, transposeB: true)
                addNormed(sub, pf, n, D, eps)
            } else {
                Matmul.parallelGemm(act, w.down, x, m: n, n: D, k: I, transposeB: true, beta: 1)
            }
        }
        length = L
        tokens += new
        guard last else { return }
        let lastRow = x + (n - 1) * D
        tk_rmsnorm_forward(xn, rstd, lastRow, finalNorm, 1, D, eps)
        Matmul.parallelGemm(xn, head, logitsBuffer, m: 1, n: c.vocabSize, k: D, transposeB: true)
        if let cap = c.finalLogitSoftcap {
            for i in 0..<c.vocabSize { logitsBuffer[i] = Float(cap) * tanhf(logitsBuffer[i] / Float(cap)) }
        }
    }

    func rmsnorm(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafeMutablePointer<Float>, _ weight: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int, _ eps: Float) {
        let rs = rstd
        Compute.parallel(N, grain: 64) { r in
            tk_rmsnorm_forward(out + r.lowerBound * D, rs + r.lowerBound, inp + r.lowerBound * D, weight, r.count, D, eps)
        }
    }

    /// x += norm(y) (Gemma's norms of the attention and MLP outputs).
    func addNormed(_ y: UnsafeMutablePointer<Float>, _ weight: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int, _ eps: Float) {
        rmsnorm(xn, y, weight, N, D, eps)
        tk_add(x, xn, N * D)
    }

    func rope(_ v: UnsafeMutablePointer<Float>, _ positions: [Int32], _ N: Int, _ heads: Int, table: Int) {
        let hd = model.config.headDim
        positions.withUnsafeBufferPointer { pos in
            model.ropeTables[table].cos.withUnsafeBufferPointer { ct in
                model.ropeTables[table].sin.withUnsafeBufferPointer { st in
                    tk_rope_forward(v, pos.baseAddress!, ct.baseAddress!, st.baseAddress!, N, heads, hd)
                }
            }
        }
    }
}

/// softmax(scale · s[from..<to]) in place, zeros elsewhere (the causal mask, and a sliding window's start), in the
/// same order of operations as the training kernel: max, exp of the shifted scores, one division by the sum.
@inline(__always)
func maskedSoftmax(_ s: UnsafeMutablePointer<Float>, from: Int, to visible: Int, count: Int, scale: Float) {
    for i in 0..<from { s[i] = 0 }
    var m = -Float.infinity
    for i in from..<visible {
        s[i] *= scale
        if s[i] > m { m = s[i] }
    }
    var sum: Float = 0
    for i in from..<visible {
        let e = expf(s[i] - m)
        s[i] = e
        sum += e
    }
    let inv = 1 / sum
    for i in from..<visible { s[i] *= inv }
    for i in visible..<count { s[i] = 0 }
}

// MARK: - Sampling

/// How the next token is chosen and when generation ends.
public struct SamplingOptions: Sendable, Equatable {
    /// 0: greedy (the most likely token, the lowest id on ties, as torch's argmax).
    public var temperature: Double = 0
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches top_p (1: all).
    public var topP: Double = 1
    public var seed: UInt64 = 0
    /// Most tokens generated (the context length also ends generation).
    public var maxTokens: Int = 256
    /// Generation ends when the text contains one of these; the text is cut before it.
    public var stop: [String] = []
    /// Token ids that end generation (end of text, end of turn); not part of the text.
    public var stopTokens: Set<Int32> = []

    public init(
        temperature: Double = 0, topK: Int = 0, topP: Double = 1, seed: UInt64 = 0, maxTokens: Int = 256,
        stop: [String] = [], stopTokens: Set<Int32> = []
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.maxTokens = maxTokens
        self.stop = stop
        self.stopTokens = stopTokens
    }

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw LoomError("temperature must be a number >= 0") }
        guard topP > 0, topP <= 1 else { throw LoomError("top_p must be in (0, 1]") }
        guard topK >= 0 else { throw LoomError("top_k must be >= 0") }
        guard maxTokens >= 1 else { throw LoomError("max_tokens must be at least 1") }
    }
}

/// Picks tokens from logits: greedy, or temperature + top-k + top-p with a seeded generator.
public struct Sampler: Sendable {
    public let options: SamplingOptions
    var rng: SplitMix64

    public init(_ options: SamplingOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    public mutating func next(_ logits: [Float]) -> Int32 {
        if options.temperature <= 0 { return Sampler.argmax(logits) }
        let saved = rng
        if let t = nextFromHead(logits) { return t }
        rng = saved
        return nextByFullSort(logits)
    }

    /// The candidates' mass below e^-42 of the best one's: a tail token's weight is then < 2^-60 (see nextFromHead).
    static let tailLogRatio = -42.0

    /// `nextByFullSort`'s token without sorting the whole vocabulary, or nil when it cannot be sure of giving
    /// exactly the same one (then the caller sorts everything). The full sort orders candidates by descending logit
    /// (ties by id), and every quantity it computes depends only on a prefix of that order and on two sums over all
    /// candidates, `total` (of the weights e_i = exp((l_i − max)/T)) and `mass` (of the probabilities e_i/total up to
    /// top-p's cut), added in that order. The head here is the candidates with (l_i − max)/T ≥ −42 (a prefix of the
    /// order, since exp is monotone), found by one scan and sorted alone (top-k: only the k best, by selection).
    /// Every tail weight is below e^-42 < 2^-60; a float64 sum that has reached s ≥ 1 (the best token's weight is 1)
    /// does not move when a term below ulp(s)/2 is added, nor when more such terms follow, so `total` equals the
    /// head's sum exactly, and likewise `mass` once it is past ½ — both checked against the largest tail term before
    /// relying on them. Top-p's cut and the drawn token then lie in the head (else nil).
    mutating func nextFromHead(_ logits: [Float]) -> Int32? {
        let V = logits.count
        guard V > 0 else { return nil }
        let t = options.temperature
        var mx = logits[0]
        for v in logits where v > mx { mx = v }
        let m = Double(mx)
        guard m.isFinite else { return nil }
        // Head: l ≥ m + T·(−42), with a margin so rounding of the bound never drops a head token (checked below).
        let bound = m + t * (Self.tailLogRatio - 1)
        var keys: [UInt64] = []
        var tailMax = -Double.infinity, tailCount = 0
        keys.reserveCapacity(1024)
        for i in 0..<V {
            let l = Double(logits[i])
            if l >= bound {
                keys.append(Self.key(logits[i], i))
            } else {
                tailCount += 1
                if l > tailMax { tailMax = l }
            }
        }
        let k = options.topK > 0 && options.topK < V ? options.topK : V
        if keys.count > k {
            Self.selectLargest(&keys, k)
            keys.removeSubrange(k...)
        }
        Self.sortDescending(&keys)
        let order = keys.map { Int(UInt32.max - UInt32(truncatingIfNeeded: $0)) }
        // Candidates after top-k: the head, then (when the head has fewer than k) tail tokens.
        let tailInCandidates = order.count < k && tailCount > 0
        var probs = order.map { exp((Double(logits[$0]) - m) / t) }
        let total = probs.reduce(0, +)
        let tailWeight = tailInCandidates ? exp((tailMax - m) / t) : 0
        if tailInCandidates {
            // Adding any tail weight (≤ tailWeight) to the head's sum must leave it unchanged.
            guard tailWeight < total.ulp / 2, total >= 1 else { return nil }
        }
        for i in probs.indices { probs[i] /= total }
        let count = tailInCandidates ? k : order.count  // what the full sort's candidate list holds
        var keep = count
        if options.topP < 1 {
            var cum = 0.0
            var cut: Int?
            for (i, p) in probs.enumerated() {
                cum += p
                if cum >= options.topP {
                    cut = i + 1
                    break
                }
            }
            guard let cut else { return nil }  // the cut would fall in the tail
            keep = cut
        }
        let mass = probs[0..<min(keep, probs.count)].reduce(0, +)
        if keep > probs.count {
            // The tail's probabilities (≤ tailWeight / total) must not move `mass`.
            guard mass >= 0.5, tailWeight / total < mass.ulp / 2 else { return nil }
        }
        let u = Double(rng.next() >> 11) / Double(1 << 53) * mass
        var cum = 0.0
        for i in 0..<min(keep, probs.count) {
            cum += probs[i]
            if u < cum { return Int32(order[i]) }
        }
        if keep <= probs.count { return Int32(order[keep - 1]) }
        return nil  // the draw went past the head
    }

    /// A key whose descending order is the full sort's: by logit descending, then id ascending.
    @inline(__always)
    static func key(_ l: Float, _ i: Int) -> UInt64 {
        var b = l.bitPattern
        b = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000  // order-preserving map of floats to unsigned
        if l == 0 { b = 0x8000_0000 }  // -0 == +0
        return UInt64(b) << 32 | UInt64(UInt32.max - UInt32(i))
    }

    /// Sorts keys in descending order: a comparison sort for a few, else a least-significant-digit radix sort (16-bit
    /// digits, each pass stable, digits every key shares skipped) — the same order, in linear time.
    static func sortDescending(_ keys: inout [UInt64]) {
        let n = keys.count
        guard n > 4096 else {
            keys.sort(by: >)
            return
        }
        var other = [UInt64](repeating: 0, count: n)
        var counts = [Int](repeating: 0, count: 1 << 16)
        var inKeys = true  // where the current order is
        for shift in stride(from: 0, to: 64, by: 16) as StrideTo<UInt64> {
            keys.withUnsafeMutableBufferPointer { kb in
                other.withUnsafeMutableBufferPointer { ob in
                    counts.withUnsafeMutableBufferPointer { cb in
                        let (src, dst) = inKeys ? (kb, ob) : (ob, kb)
                        for b in 0..<cb.count { cb[b] = 0 }
                        for k in src { cb[Int(truncatingIfNeeded: (k >> shift) & 0xFFFF)] += 1 }
                        if cb[Int(truncatingIfNeeded: (src[0] >> shift) & 0xFFFF)] == n { return }  // one digit: skip
                        var start = 0
                        for b in stride(from: cb.count - 1, through: 0, by: -1) {
                            let c = cb[b]
                            cb[b] = start
                            start += c
                        }
                        for k in src {
                            let b = Int(truncatingIfNeeded: (k >> shift) & 0xFFFF)
                            dst[cb[b]] = k
                            cb[b] += 1
                        }
                        inKeys.toggle()
                    }
                }
            }
        }
        if !inKeys { keys = other }
    }

    /// Moves the k largest keys (distinct) to keys[0..<k], in no order (quickselect).
    static func selectLargest(_ keys: inout [UInt64], _ k: Int) {
        var lo = 0, hi = keys.count - 1
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        while lo < hi {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let pivot = keys[lo + Int((seed >> 33) % UInt64(hi - lo + 1))]
            // Partition descending: > pivot first.
            var i = lo, j = hi
            while i <= j {
                while keys[i] > pivot { i += 1 }
                while keys[j] < pivot { j -= 1 }
                if i <= j {
                    keys.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k - 1 <= j { hi = j } else if k - 1 >= i { lo = i } else { return }
        }
    }

    /// The original sampler, kept as the reference `next` is tested against: every candidate sorted.
    mutating func nextByFullSort(_ logits: [Float]) -> Int32 {
        let t = options.temperature
        // Candidates by descending logit (ties by id), cut to top-k.
        var order = Array(0..<logits.count)
        order.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        if options.topK > 0 && options.topK < order.count { order.removeSubrange(options.topK...) }
        let m = Double(logits[order[0]])
        var probs = order.map { exp((Double(logits[$0]) - m) / t) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        // top-p: the shortest prefix whose mass reaches top_p (at least one token).
        var keep = probs.count
        if options.topP < 1 {
            var cum = 0.0
            for (i, p) in probs.enumerated() {
                cum += p
                if cum >= options.topP {
                    keep = i + 1
                    break
                }
            }
        }
        let mass = probs[0..<keep].reduce(0, +)
        let u = Double(rng.next() >> 11) / Double(1 << 53) * mass
        var cum = 0.0
        for i in 0..<keep {
            cum += probs[i]
            if u < cum { return Int32(order[i]) }
        }
        return Int32(order[keep - 1])
    }
}

/// Restricts which tokens may come next: constrained decoding (e.g. the output must stay a prefix of a JSON document
/// matching a schema). One object per generation, advanced token by token; never shared between sequences.
public protocol TokenConstraint: AnyObject {
    /// Marks every token id that may come next in `allowed` (vocabSize bits, bit t of word t / 64; the caller clears
    /// it first). Stop tokens are the caller's business: they are allowed exactly when `isComplete`.
    func allowedTokens(_ allowed: UnsafeMutablePointer<UInt64>, vocabSize: Int)
    /// Moves past `token`, which `allowedTokens` allowed.
    func accept(_ token: Int32)
    /// Whether the output so far is a complete document (a stop token may end it here).
    var isComplete: Bool { get }
    /// Whether nothing but a stop may follow (generation ends here even without a stop token).
    var mustStop: Bool { get }
}

/// Applies a constraint to logits: disallowed tokens get -infinity; stop tokens stay only when the constraint is
/// complete. Returns false when no token at all is allowed.
@discardableResult
public func applyConstraint(
    _ constraint: TokenConstraint, to logits: UnsafeMutablePointer<Float>, vocabSize V: Int, stopTokens: Set<Int32>
) -> Bool {
    let words = (V + 63) / 64
    var bits = [UInt64](repeating: 0, count: words)
    bits.withUnsafeMutableBufferPointer { constraint.allowedTokens($0.baseAddress!, vocabSize: V) }
    let complete = constraint.isComplete
    for t in stopTokens where Int(t) < V && Int(t) >= 0 {
        if complete { bits[Int(t) / 64] |= 1 << UInt64(Int(t) % 64) } else { bits[Int(t) / 64] &= ~(1 << UInt64(Int(t) % 64)) }
    }
    var any = false
    for w in 0..<words {
        let b = bits[w]
        if b != 0 { any = true }
        if b == ~0 { continue }
        let base = w * 64
        for i in 0..<min(64, V - base) where b & (1 << UInt64(i)) == 0 { logits[base + i] = -.infinity }
    }
    return any
}

/// How many characters of generated `text` may be streamed: all when `final`, else all but an unfinished UTF-8
/// sequence (decoded as U+FFFD at the end) and any tail that could still grow into a stop string.
func streamableLength(_ text: String, stop: [String], final: Bool) -> Int {
    var ready = text.count
    guard !final else { return ready }
    if text.hasSuffix("\u{FFFD}") { ready -= 1 }
    for s in stop {
        var k = min(s.count - 1, text.count)
        while k > 0 {
            if text.hasSuffix(String(s.prefix(k))) { break }
            k -= 1
        }
        ready = min(ready, text.count - k)
    }
    return ready
}

/// What a generation produced.
public struct GenerationResult: Sendable, Equatable {
    /// The generated ids (a stop token included when one ended it; tokens after a stop string included).
    public var tokens: [Int32]
    /// The text, cut before a stop string; stop tokens are not in it.
    public var text: String
    /// "stop" (a stop token or string) or "length" (max tokens or the context ran out), as OpenAI reports it.
    public var finishReason: String
    public var promptTokens: Int
    public var completionTokens: Int { tokens.count }
}

extension InferenceSession {
    /// Generates from `prompt`. `decode` turns generated ids into text (for stop strings and streaming);
    /// `onText` receives each new piece of text as soon as it can no longer be part of a stop string or an
    /// unfinished UTF-8 character, and may return false to stop early. Reuses the cache when the prompt starts
    /// with the tokens already in it.
    public func generate(
        prompt: [Int32], options: SamplingOptions, constraint: TokenConstraint? = nil, decode: ([Int32]) -> String,
        onText: ((String) -> Bool)? = nil
    ) throws -> GenerationResult {
        try options.validate()
        guard !prompt.isEmpty else { throw LoomError("generation: the prompt has no tokens") }
        guard prompt.count < maxLength else {
            throw LoomError("generation: the prompt has \(prompt.count) tokens; the model's context is \(maxLength)")
        }
        // Keep the longest cached prefix of the prompt (at least one token must run to get logits).
        var shared = 0
        while shared < min(tokens.count, prompt.count - 1) && tokens[shared] == prompt[shared] { shared += 1 }
        truncate(to: shared)
        var logits = try append(Array(prompt[shared...]))
        var sampler = Sampler(options)
        var out: [Int32] = []
        var emitted = 0  // characters of the text already handed to onText
        var text = ""
        var finish = "length"
        var textIds: [Int32] = []
        func flush(final: Bool) -> Bool {
            guard let onText else { return true }
            let ready = streamableLength(text, stop: options.stop, final: final)
            guard ready > emitted else { return true }
            let start = text.index(text.startIndex, offsetBy: emitted)
            let end = text.index(text.startIndex, offsetBy: ready)
            emitted = ready
            return onText(String(text[start..<end]))
        }
        while out.count < options.maxTokens {
            if let constraint {
                if constraint.mustStop {
                    finish = "stop"
                    break
                }
                let ok = logits.withUnsafeMutableBufferPointer {
                    applyConstraint(constraint, to: $0.baseAddress!, vocabSize: $0.count, stopTokens: options.stopTokens)
                }
                guard ok else { throw LoomError("generation: the constraint allows no token after \(out.count) tokens") }
            }
            let next = sampler.next(logits)
            out.append(next)
            if options.stopTokens.contains(next) {
                finish = "stop"
                break
            }
            constraint?.accept(next)
            textIds.append(next)
            text = decode(textIds)
            if let cut = options.stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                text = String(text[..<cut])
                finish = "stop"
                break
            }
            if !flush(final: false) {
                finish = "stop"
                break
            }
            if out.count == options.maxTokens || length >= maxLength { break }
            logits = try append([next])
        }
        _ = flush(final: true)
        return GenerationResult(tokens: out, text: text, finishReason: finish, promptTokens: prompt.count)
    }
}
