// The Llama architecture as transformers defines it (LlamaForCausalLM), forward and backward side by side:
//   h = embed(ids)
//   per layer: x = rmsnorm(h)·w1; q,k,v = x Wqᵀ, x Wkᵀ, x Wvᵀ; RoPE (half-split) on q, k; grouped KV heads;
//              h += o_proj(softmax(q kᵀ / sqrt(hd) + mask) v); x2 = rmsnorm(h)·w2; h += down(silu(gate x2) ⊙ up x2)
//   logits = lm_head(rmsnorm(h)·wf)   (lm_head = embed when tied)
// The mask is causal and block-diagonal over packed documents: token t of a row sees tokens segStart[t]...t, and
// positions restart at every document, so packed documents train exactly as if they were alone.
// Activations for backward are kept in a workspace sized for the batch shape and reused across steps.

import CTensorKernels
import Foundation
import LoomCore
import LoomTensor

/// A batch of B rows of T tokens. `targets[n]` is the token position n must predict (< 0: no loss there);
/// `positions[n]` its rotary position; `segStart[n]` the index (within its row) of its document's first token.
public struct Batch: Sendable {
    public var rows: Int
    public var length: Int
    public var tokens: [Int32]
    public var targets: [Int32]
    public var positions: [Int32]
    public var segStart: [Int32]

    public init(rows: Int, length: Int, tokens: [Int32], targets: [Int32], positions: [Int32], segStart: [Int32]) {
        self.rows = rows
        self.length = length
        self.tokens = tokens
        self.targets = targets
        self.positions = positions
        self.segStart = segStart
    }

    /// Unpacked rows: every row one document from position 0; targets = next token, or ignored where `labels`
    /// (same shape, the transformers convention: labels[t+1] is what position t predicts) is negative.
    public init(rows: Int, length: Int, tokens: [Int32], labels: [Int32]? = nil) {
        let l = labels ?? tokens
        var targets = [Int32](repeating: -1, count: rows * length)
        for r in 0..<rows {
            for t in 0..<(length - 1) { targets[r * length + t] = l[r * length + t + 1] }
        }
        self.init(
            rows: rows, length: length, tokens: tokens, targets: targets,
            positions: (0..<rows * length).map { Int32($0 % length) },
            segStart: [Int32](repeating: 0, count: rows * length))
    }

    public var targetCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let params: ParameterStore

    struct LayerOffsets {
        var ln1 = 0, q = 0, k = 0, v = 0, o = 0, ln2 = 0, gate = 0, up = 0, down = 0
    }
    let layers: [LayerOffsets]
    let embedOffset: Int
    let normOffset: Int
    let headOffset: Int
    let cosTable: [Float]
    let sinTable: [Float]
    var work: Workspace?
    /// Low-rank adapters on the projections (nil: none). With adapters, `trainBase = false` freezes the base:
    /// its weight gradients are not computed.
    public var lora: LoRA?
    public var trainBase = true

    /// The parameter names and shapes, in transformers' naming.
    public static func parameterSpecs(_ c: LlamaConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim, i = c.intermediateSize
        var s: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabSize, d])]
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            s += [
                (p + "input_layernorm.weight", [d]), (p + "self_attn.q_proj.weight", [qd, d]),
                (p + "self_attn.k_proj.weight", [kvd, d]), (p + "self_attn.v_proj.weight", [kvd, d]),
                (p + "self_attn.o_proj.weight", [d, qd]), (p + "post_attention_layernorm.weight", [d]),
                (p + "mlp.gate_proj.weight", [i, d]), (p + "mlp.up_proj.weight", [i, d]),
                (p + "mlp.down_proj.weight", [d, i]),
            ]
        }
        s.append(("model.norm.weight", [d]))
        if !c.tieWordEmbeddings { s.append(("lm_head.weight", [c.vocabSize, d])) }
        return s
    }

    public init(config: LlamaConfig) throws {
        try config.validate()
        self.config = config
        let store = ParameterStore(LlamaModel.parameterSpecs(config))
        params = store
        func off(_ n: String) -> Int { store.info(n)!.offset }
        layers = (0..<config.numLayers).map { l in
            let p = "model.layers.\(l)."
            return LayerOffsets(
                ln1: off(p + "input_layernorm.weight"), q: off(p + "self_attn.q_proj.weight"),
                k: off(p + "self_attn.k_proj.weight"), v: off(p + "self_attn.v_proj.weight"),
                o: off(p + "self_attn.o_proj.weight"), ln2: off(p + "post_attention_layernorm.weight"),
                gate: off(p + "mlp.gate_proj.weight"), up: off(p + "mlp.up_proj.weight"),
                down: off(p + "mlp.down_proj.weight"))
        }
        embedOffset = off("model.embed_tokens.weight")
        normOffset = off("model.norm.weight")
        headOffset = config.tieWordEmbeddings ? embedOffset : off("lm_head.weight")
        // RoPE tables in double, as transformers' default rope: inv_freq[i] = theta^(-2i/hd), angle = pos*inv_freq.
        let half = config.headDim / 2
        var cosT = [Float](repeating: 0, count: config.maxPositions * half)
        var sinT = cosT
        for p in 0..<config.maxPositions {
            for i in 0..<half {
                let invFreq = 1.0 / pow(config.ropeTheta, Double(2 * i) / Double(config.headDim))
                let a = Double(p) * invFreq
                cosT[p * half + i] = Float(cos(a))
                sinT[p * half + i] = Float(sin(a))
            }
        }
        cosTable = cosT
        sinTable = sinT
    }

    /// transformers' initialisation: N(0, 0.02) for matrices, 1 for norm weights; seeded.
    public func initialize(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        let v = params.values.pointer
        for info in params.infos {
            if info.shape.count == 1 {
                for j in 0..<info.count { v[info.offset + j] = 1 }
                continue
            }
            var j = 0
            while j < info.count {
                // Box-Muller: two normals from two uniforms in (0, 1].
                let u1 = Double((rng.next() >> 11) + 1) / Double(1 << 53)
                let u2 = Double(rng.next() >> 11) / Double(1 << 53)
                let r = (-2 * log(u1)).squareRoot()
                v[info.offset + j] = Float(r * cos(2 * .pi * u2)) * std
                if j + 1 < info.count { v[info.offset + j + 1] = Float(r * sin(2 * .pi * u2)) * std }
                j += 2
            }
        }
    }

    // MARK: - Forward

    /// Runs the model on a batch and keeps what backward needs. Returns a pointer to the logits [rows*length, vocab]
    /// (valid until the next forward; `crossEntropy` overwrites them with their gradient).
    @discardableResult
    public func forward(_ batch: Batch) -> UnsafeMutablePointer<Float> {
        let c = config
        let B = batch.rows, T = batch.length, N = B * T
        precondition(batch.tokens.count == N && batch.targets.count == N && batch.positions.count == N)
        if work == nil || work!.rows != B || work!.length != T || work!.threads != Compute.threads {
            work = Workspace(config: c, rows: B, length: T)
        }
        let w = work!
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd
        let P = params.values.pointer
        let eps = Float(c.rmsNormEps)
        w.tokens = batch.tokens
        w.positions = batch.positions
        w.segStart = batch.segStart
        for (n, tok) in batch.tokens.enumerated() {
            precondition(tok >= 0 && Int(tok) < c.vocabSize, "token id \(tok) outside the vocabulary")
            precondition(Int(batch.positions[n]) < c.maxPositions, "position beyond max_position_embeddings")
            (w.resid[0] + n * D).update(from: P + embedOffset + Int(tok) * D, count: D)
        }
        for l in 0..<c.numLayers {
            let L = layers[l]
            let h = w.resid[l]
            rmsnorm(w.ln1[l], w.rstd1[l], h, P + L.ln1, N, D, eps)
            Matmul.parallelGemm(w.ln1[l], P + L.q, w.q[l], m: N, n: qd, k: D, transposeB: true)
            Matmul.parallelGemm(w.ln1[l], P + L.k, w.k[l], m: N, n: kvd, k: D, transposeB: true)
            Matmul.parallelGemm(w.ln1[l], P + L.v, w.v[l], m: N, n: kvd, k: D, transposeB: true)
            if let a = lora {
                a.forward(l, .q, x: w.ln1[l], y: w.q[l], rows: N)
                a.forward(l, .k, x: w.ln1[l], y: w.k[l], rows: N)
                a.forward(l, .v, x: w.ln1[l], y: w.v[l], rows: N)
            }
            rope(w.q[l], N, H, forward: true)
            rope(w.k[l], N, G, forward: true)
            attentionForward(l, B: B, T: T)
            // resid2 = h + atty · Woᵀ
            w.resid2[l].update(from: h, count: N * D)
            Matmul.parallelGemm(w.atty[l], P + L.o, w.resid2[l], m: N, n: D, k: qd, transposeB: true, beta: 1)
            lora?.forward(l, .o, x: w.atty[l], y: w.resid2[l], rows: N)
            rmsnorm(w.ln2[l], w.rstd2[l], w.resid2[l], P + L.ln2, N, D, eps)
            Matmul.parallelGemm(w.ln2[l], P + L.gate, w.gate[l], m: N, n: I, k: D, transposeB: true)
            Matmul.parallelGemm(w.ln2[l], P + L.up, w.up[l], m: N, n: I, k: D, transposeB: true)
            if let a = lora {
                a.forward(l, .gate, x: w.ln2[l], y: w.gate[l], rows: N)
                a.forward(l, .up, x: w.ln2[l], y: w.up[l], rows: N)
            }
            let (g, u, a) = (w.gate[l], w.up[l], w.act[l])
            Compute.parallel(N * I, grain: 4096) { r in
                tk_swiglu_forward(a + r.lowerBound, g + r.lowerBound, u + r.lowerBound, r.count)
            }
            w.resid[l + 1].update(from: w.resid2[l], count: N * D)
            Matmul.parallelGemm(w.act[l], P + L.down, w.resid[l + 1], m: N, n: D, k: I, transposeB: true, beta: 1)
            lora?.forward(l, .down, x: w.act[l], y: w.resid[l + 1], rows: N)
        }
        rmsnorm(w.lnf, w.rstdf, w.resid[c.numLayers], P + normOffset, N, D, eps)
        Matmul.parallelGemm(w.lnf, P + headOffset, w.logits, m: N, n: c.vocabSize, k: D, transposeB: true)
        return w.logits
    }

    func rmsnorm(
        _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>, _ inp: UnsafeMutablePointer<Float>,
        _ weight: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int, _ eps: Float
    ) {
        Compute.parallel(N, grain: 64) { r in
            tk_rmsnorm_forward(out + r.lowerBound * D, rstd + r.lowerBound, inp + r.lowerBound * D, weight, r.count, D, eps)
        }
    }

    func rope(_ x: UnsafeMutablePointer<Float>, _ N: Int, _ heads: Int, forward: Bool) {
        let hd = config.headDim
        let w = work!
        w.positions.withUnsafeBufferPointer { pos in
            cosTable.withUnsafeBufferPointer { ct in
                sinTable.withUnsafeBufferPointer { st in
                    let (pp, cp, sp) = (pos.baseAddress!, ct.baseAddress!, st.baseAddress!)
                    Compute.parallel(N, grain: 64) { r in
                        let xp = x + r.lowerBound * heads * hd
                        if forward {
                            tk_rope_forward(xp, pp + r.lowerBound, cp, sp, r.count, heads, hd)
                        } else {
                            tk_rope_backward(xp, pp + r.lowerBound, cp, sp, r.count, heads, hd)
                        }
                    }
                }
            }
        }
    }

    /// softmax(q kᵀ / sqrt(hd) + mask) v per row and query head; query head h reads KV head h / (H / G).
    func attentionForward(_ l: Int, B: Int, T: Int) {
        let c = config, w = work!
        let H = c.numHeads, G = c.numKVHeads, hd = c.headDim, per = H / G
        let qd = H * hd, kvd = G * hd
        let scale = Float(1 / Double(hd).squareRoot())
        let (q, k, v, att, y) = (w.q[l], w.k[l], w.v[l], w.att[l], w.atty[l])
        w.segStart.withUnsafeBufferPointer { seg in
            let segp = seg.baseAddress!
            Compute.parallel(B * G) { r in
                for task in r {
                    let b = task / G, g = task % G
                    let kp = k + b * T * kvd + g * hd, vp = v + b * T * kvd + g * hd
                    for h in (g * per)..<((g + 1) * per) {
                        let qp = q + b * T * qd + h * hd
                        let s = att + (b * H + h) * T * T
                        Matmul.gemm(qp, lda: qd, kp, ldb: kvd, s, ldc: T, m: T, n: T, k: hd, transposeB: true)
                        tk_attention_softmax_forward(s, segp + b * T, T, scale)
                        Matmul.gemm(s, lda: T, vp, ldb: kvd, y + b * T * qd + h * hd, ldc: qd, m: T, n: hd, k: T)
                    }
                }
            }
        }
    }

    // MARK: - Loss

    /// Cross-entropy of the last forward's logits against `targets`: returns the sum over targeted positions and
    /// replaces the logits by d(scale · sum)/d logits, ready for `backward`.
    public func crossEntropy(targets: [Int32], scale: Float) -> Double {
        let w = work!, V = config.vocabSize
        let N = targets.count
        var partial = [Double](repeating: 0, count: Compute.threads)
        let logits = w.logits
        targets.withUnsafeBufferPointer { tp in
            let t = tp.baseAddress!
            partial.withUnsafeMutableBufferPointer { pb in
                let pp = pb.baseAddress!
                Compute.parallel(N, grain: 16) { r in
                    let slot = r.lowerBound * Compute.threads / N
                    pp[slot] = tk_cross_entropy_forward_backward(logits + r.lowerBound * V, t + r.lowerBound, r.count, V, scale)
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// Weighted cross-entropy of the last forward's logits: returns Σ weights[n]·(−log p(targets[n])) and replaces
    /// the logits by its gradient (weights[n]·(softmax − onehot) per row), ready for `backward`. With every weight
    /// equal to `scale` this is `crossEntropy`; preference objectives give each sequence's tokens its own weight.
    public func weightedCrossEntropy(targets: [Int32], weights: [Float]) -> Double {
        let w = work!, V = config.vocabSize
        let N = targets.count
        precondition(weights.count == N)
        var partial = [Double](repeating: 0, count: Compute.threads)
        let logits = w.logits
        targets.withUnsafeBufferPointer { tp in
            weights.withUnsafeBufferPointer { wp in
                partial.withUnsafeMutableBufferPointer { pb in
                    let (t, wt, pp) = (tp.baseAddress!, wp.baseAddress!, pb.baseAddress!)
                    Compute.parallel(N, grain: 16) { r in
                        let slot = r.lowerBound * Compute.threads / N
                        pp[slot] = tk_cross_entropy_weighted(
                            logits + r.lowerBound * V, t + r.lowerBound, wt + r.lowerBound, r.count, V)
                    }
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// log p(target) at every position of the last forward (0 where the target is < 0); logits unchanged.
    public func targetLogProbs(targets: [Int32]) -> [Float] {
        let w = work!, V = config.vocabSize, N = targets.count
        var out = [Float](repeating: 0, count: N)
        let logits = w.logits
        targets.withUnsafeBufferPointer { tp in
            out.withUnsafeMutableBufferPointer { ob in
                let (t, o) = (tp.baseAddress!, ob.baseAddress!)
                Compute.parallel(N, grain: 16) { r in
                    tk_target_logprobs(o + r.lowerBound, logits + r.lowerBound * V, t + r.lowerBound, r.count, V)
                }
            }
        }
        return out
    }

    /// Logits pointer of the last forward (for objectives that write their own gradient into it).
    public var logits: UnsafeMutablePointer<Float> { work!.logits }

    // MARK: - Backward

    /// Accumulates d(loss)/d(parameters) into `params.grads`, given d(loss)/d(logits) in the logits buffer.
    public func backward() {
        let c = config, w = work!
        let B = w.rows, T = w.length, N = B * T
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd, V = c.vocabSize
        let P = params.values.pointer, Gr = params.grads.pointer
        let dres = w.dresid, dln = w.dln
        // lm_head: dW += dlogitsᵀ · lnf; dlnf = dlogits · W.
        let base = trainBase
        if base { Matmul.parallelGemm(w.logits, w.lnf, Gr + headOffset, m: V, n: D, k: N, transposeA: true, beta: 1) }
        Matmul.parallelGemm(w.logits, P + headOffset, dln, m: N, n: D, k: V)
        dres.update(repeating: 0, count: N * D)
        rmsnormBackward(dres, Gr + normOffset, dln, w.resid[c.numLayers], P + normOffset, w.rstdf, N, D)
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let L = layers[l]
            // MLP: out = resid2 + act · Wdownᵀ.
            if base { Matmul.parallelGemm(dres, w.act[l], Gr + L.down, m: D, n: I, k: N, transposeA: true, beta: 1) }
            Matmul.parallelGemm(dres, P + L.down, w.dact, m: N, n: I, k: D)
            lora?.backward(l, .down, x: w.act[l], dy: dres, dx: w.dact, rows: N)
            let (dg, du, da, g, u) = (w.dgate, w.dup, w.dact, w.gate[l], w.up[l])
            Compute.parallel(N * I, grain: 4096) { r in
                let o = r.lowerBound
                tk_swiglu_backward(dg + o, du + o, da + o, g + o, u + o, r.count)
            }
            if base {
                Matmul.parallelGemm(w.dgate, w.ln2[l], Gr + L.gate, m: I, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(w.dup, w.ln2[l], Gr + L.up, m: I, n: D, k: N, transposeA: true, beta: 1)
            }
            Matmul.parallelGemm(w.dgate, P + L.gate, dln, m: N, n: D, k: I)
            Matmul.parallelGemm(w.dup, P + L.up, dln, m: N, n: D, k: I, beta: 1)
            if let a = lora {
                a.backward(l, .gate, x: w.ln2[l], dy: w.dgate, dx: dln, rows: N)
                a.backward(l, .up, x: w.ln2[l], dy: w.dup, dx: dln, rows: N)
            }
            rmsnormBackward(dres, Gr + L.ln2, dln, w.resid2[l], P + L.ln2, w.rstd2[l], N, D)
            // Attention: resid2 = resid + atty · Woᵀ.
            if base { Matmul.parallelGemm(dres, w.atty[l], Gr + L.o, m: D, n: qd, k: N, transposeA: true, beta: 1) }
            Matmul.parallelGemm(dres, P + L.o, w.datty, m: N, n: qd, k: D)
            lora?.backward(l, .o, x: w.atty[l], dy: dres, dx: w.datty, rows: N)
            attentionBackward(l, B: B, T: T)
            rope(w.dq, N, H, forward: false)
            rope(w.dk, N, G, forward: false)
            if base {
                Matmul.parallelGemm(w.dq, w.ln1[l], Gr + L.q, m: qd, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(w.dk, w.ln1[l], Gr + L.k, m: kvd, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(w.dv, w.ln1[l], Gr + L.v, m: kvd, n: D, k: N, transposeA: true, beta: 1)
            }
            Matmul.parallelGemm(w.dq, P + L.q, dln, m: N, n: D, k: qd)
            Matmul.parallelGemm(w.dk, P + L.k, dln, m: N, n: D, k: kvd, beta: 1)
            Matmul.parallelGemm(w.dv, P + L.v, dln, m: N, n: D, k: kvd, beta: 1)
            if let a = lora {
                a.backward(l, .q, x: w.ln1[l], dy: w.dq, dx: dln, rows: N)
                a.backward(l, .k, x: w.ln1[l], dy: w.dk, dx: dln, rows: N)
                a.backward(l, .v, x: w.ln1[l], dy: w.dv, dx: dln, rows: N)
            }
            rmsnormBackward(dres, Gr + L.ln1, dln, w.resid[l], P + L.ln1, w.rstd1[l], N, D)
        }
        // Embedding: rows of the gradient gather back to their tokens (serial: tokens repeat).
        let ge = Gr + embedOffset
        for (n, tok) in w.tokens.enumerated() {
            let row = ge + Int(tok) * D, src = dres + n * D
            for i in 0..<D { row[i] += src[i] }
        }
    }

    /// dinp += rmsnorm backward; dweight += its gradient (per-thread partial sums added in thread order).
    func rmsnormBackward(
        _ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
        _ inp: UnsafeMutablePointer<Float>, _ weight: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
        _ N: Int, _ D: Int
    ) {
        let w = work!
        let parts = w.normScratch
        parts.update(repeating: 0, count: Compute.threads * D)
        Compute.parallel(N, grain: 64) { r in
            let slot = r.lowerBound * Compute.threads / N
            tk_rmsnorm_backward(
                dinp + r.lowerBound * D, parts + slot * D, dout + r.lowerBound * D, inp + r.lowerBound * D, weight,
                rstd + r.lowerBound, r.count, D)
        }
        for s in 0..<Compute.threads {
            for i in 0..<D { dweight[i] += parts[s * D + i] }
        }
    }

    func attentionBackward(_ l: Int, B: Int, T: Int) {
        let c = config, w = work!
        let H = c.numHeads, G = c.numKVHeads, hd = c.headDim, per = H / G
        let qd = H * hd, kvd = G * hd
        let scale = Float(1 / Double(hd).squareRoot())
        let (q, k, v, att) = (w.q[l], w.k[l], w.v[l], w.att[l])
        let (dy, dq, dk, dv, scratch) = (w.datty, w.dq, w.dk, w.dv, w.attScratch)
        w.segStart.withUnsafeBufferPointer { seg in
            let segp = seg.baseAddress!
            Compute.parallel(B * G) { r in
                let ds = scratch + (r.lowerBound * Compute.threads / (B * G)) * T * T
                for task in r {
                    let b = task / G, g = task % G
                    let kp = k + b * T * kvd + g * hd, vp = v + b * T * kvd + g * hd
                    let dkp = dk + b * T * kvd + g * hd, dvp = dv + b * T * kvd + g * hd
                    for h in (g * per)..<((g + 1) * per) {
                        let qp = q + b * T * qd + h * hd, dqp = dq + b * T * qd + h * hd
                        let dyp = dy + b * T * qd + h * hd
                        let p = att + (b * H + h) * T * T
                        let first: Float = h == g * per ? 0 : 1
                        // dV += Pᵀ dY; dP = dY Vᵀ; dS = softmax backward (scale folded in); dQ = dS K; dK += dSᵀ Q.
                        Matmul.gemm(p, lda: T, dyp, ldb: qd, dvp, ldc: kvd, m: T, n: hd, k: T, transposeA: true, beta: first)
                        Matmul.gemm(dyp, lda: qd, vp, ldb: kvd, ds, ldc: T, m: T, n: T, k: hd, transposeB: true)
                        tk_attention_softmax_backward(ds, p, segp + b * T, T, scale)
                        Matmul.gemm(ds, lda: T, kp, ldb: kvd, dqp, ldc: qd, m: T, n: hd, k: T)
                        Matmul.gemm(ds, lda: T, qp, ldb: qd, dkp, ldc: kvd, m: T, n: hd, k: T, transposeA: true, beta: first)
                    }
                }
            }
        }
    }
}

/// Buffers for one batch shape: activations of every layer (kept for backward) and gradient scratch.
final class Workspace {
    let rows: Int, length: Int
    let threads = Compute.threads
    var tokens: [Int32] = [], positions: [Int32] = [], segStart: [Int32] = []
    private var owned: [FloatBuffer] = []
    var resid: [UnsafeMutablePointer<Float>] = []
    var ln1: [UnsafeMutablePointer<Float>] = [], rstd1: [UnsafeMutablePointer<Float>] = []
    var q: [UnsafeMutablePointer<Float>] = [], k: [UnsafeMutablePointer<Float>] = [], v: [UnsafeMutablePointer<Float>] = []
    var att: [UnsafeMutablePointer<Float>] = [], atty: [UnsafeMutablePointer<Float>] = []
    var resid2: [UnsafeMutablePointer<Float>] = []
    var ln2: [UnsafeMutablePointer<Float>] = [], rstd2: [UnsafeMutablePointer<Float>] = []
    var gate: [UnsafeMutablePointer<Float>] = [], up: [UnsafeMutablePointer<Float>] = [], act: [UnsafeMutablePointer<Float>] = []
    var lnf: UnsafeMutablePointer<Float>, rstdf: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>
    var dresid: UnsafeMutablePointer<Float>, dln: UnsafeMutablePointer<Float>
    var dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dact: UnsafeMutablePointer<Float>
    var datty: UnsafeMutablePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>
    var dv: UnsafeMutablePointer<Float>, attScratch: UnsafeMutablePointer<Float>, normScratch: UnsafeMutablePointer<Float>

    init(config c: LlamaConfig, rows: Int, length: Int) {
        self.rows = rows
        self.length = length
        let N = rows * length, D = c.hiddenSize, I = c.intermediateSize
        let qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        var owned: [FloatBuffer] = []
        func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
            let b = FloatBuffer(count: n)
            owned.append(b)
            return b.pointer
        }
        resid = (0...c.numLayers).map { _ in buf(N * D) }
        for _ in 0..<c.numLayers {
            ln1.append(buf(N * D)); rstd1.append(buf(N))
            q.append(buf(N * qd)); k.append(buf(N * kvd)); v.append(buf(N * kvd))
            att.append(buf(rows * c.numHeads * length * length)); atty.append(buf(N * qd))
            resid2.append(buf(N * D)); ln2.append(buf(N * D)); rstd2.append(buf(N))
            gate.append(buf(N * I)); up.append(buf(N * I)); act.append(buf(N * I))
        }
        lnf = buf(N * D); rstdf = buf(N); logits = buf(N * c.vocabSize)
        dresid = buf(N * D); dln = buf(N * D)
        dgate = buf(N * I); dup = buf(N * I); dact = buf(N * I)
        datty = buf(N * qd); dq = buf(N * qd); dk = buf(N * kvd); dv = buf(N * kvd)
        attScratch = buf(max(1, Compute.threads) * length * length)
        normScratch = buf(max(1, Compute.threads) * D)
        self.owned = owned
    }
}
