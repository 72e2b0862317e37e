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

    /// Offsets of a layer's tensors in the parameter store; -1 where the family has none. `ln2` is the norm before
    /// the MLP (Llama's post_attention_layernorm, Gemma's pre_feedforward_layernorm); `postAttn` and `postFfw` are
    /// Gemma's norms of the attention and MLP outputs.
    struct LayerOffsets {
        var ln1 = 0, q = 0, k = 0, v = 0, o = 0, ln2 = 0, gate = 0, up = 0, down = 0
        var bq = -1, bk = -1, bv = -1, qNorm = -1, kNorm = -1, postAttn = -1, postFfw = -1
    }
    let layers: [LayerOffsets]
    let embedOffset: Int
    let normOffset: Int
    let headOffset: Int
    /// Rotary tables [maxPositions][headDim/2]: index 0 for full-attention layers (rope_theta, scaled), 1 for
    /// sliding layers (the local base) where the family has them; `layerRope[l]` picks one.
    let ropeTables: [(cos: [Float], sin: [Float])]
    let layerRope: [Int]
    var cosTable: [Float] { ropeTables[0].cos }
    var sinTable: [Float] { ropeTables[0].sin }
    /// The norm weights as the kernels multiply by them: the parameters themselves, or 1 + w for Gemma (refreshed
    /// from the parameters at every forward; their gradient is the parameters' gradient).
    let normEffective: FloatBuffer
    let normSlots: [Int: Int]
    var work: Workspace?
    /// Low-rank adapters on the projections (nil: none). With adapters, `trainBase = false` freezes the base:
    /// its weight gradients are not computed.
    public var lora: LoRA?
    public var trainBase = true
    /// Rows of logits computed at a time by the loss (nil: all of them while [rows, vocab] stays under 32 M
    /// floats, else chunks of about 32 M floats).
    public var logitChunkRows: Int?

    /// The parameter names and shapes, in transformers' naming.
    public static func parameterSpecs(_ c: LlamaConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim, i = c.intermediateSize
        var s: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabSize, d])]
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            s.append((p + "input_layernorm.weight", [d]))
            for (name, rows) in [("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)] {
                s.append((p + "self_attn.\(name).weight", [rows, d]))
                if c.attentionBias { s.append((p + "self_attn.\(name).bias", [rows])) }
            }
            s.append((p + "self_attn.o_proj.weight", [d, qd]))
            if c.gemmaNorms {
                s += [(p + "self_attn.q_norm.weight", [c.headDim]), (p + "self_attn.k_norm.weight", [c.headDim])]
            }
            s.append((p + "post_attention_layernorm.weight", [d]))
            if c.gemmaNorms {
                s += [(p + "pre_feedforward_layernorm.weight", [d]), (p + "post_feedforward_layernorm.weight", [d])]
            }
            s += [(p + "mlp.gate_proj.weight", [i, d]), (p + "mlp.up_proj.weight", [i, d]), (p + "mlp.down_proj.weight", [d, i])]
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
        func off(_ n: String) -> Int { store.info(n)?.offset ?? -1 }
        layers = (0..<config.numLayers).map { l in
            let p = "model.layers.\(l)."
            let gemma = config.gemmaNorms
            return LayerOffsets(
                ln1: off(p + "input_layernorm.weight"), q: off(p + "self_attn.q_proj.weight"),
                k: off(p + "self_attn.k_proj.weight"), v: off(p + "self_attn.v_proj.weight"),
                o: off(p + "self_attn.o_proj.weight"),
                ln2: off(p + (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")),
                gate: off(p + "mlp.gate_proj.weight"), up: off(p + "mlp.up_proj.weight"),
                down: off(p + "mlp.down_proj.weight"), bq: off(p + "self_attn.q_proj.bias"),
                bk: off(p + "self_attn.k_proj.bias"), bv: off(p + "self_attn.v_proj.bias"),
                qNorm: off(p + "self_attn.q_norm.weight"), kNorm: off(p + "self_attn.k_norm.weight"),
                postAttn: gemma ? off(p + "post_attention_layernorm.weight") : -1,
                postFfw: off(p + "post_feedforward_layernorm.weight"))
        }
        embedOffset = off("model.embed_tokens.weight")
        normOffset = off("model.norm.weight")
        headOffset = config.tieWordEmbeddings ? embedOffset : off("lm_head.weight")
        // Norm weights as multiplied: a slot of normEffective per norm for Gemma's (1 + w).
        var slots: [Int: Int] = [:]
        var used = 0
        if config.gemmaNorms {
            for info in store.infos where info.name.hasSuffix("norm.weight") {
                slots[info.offset] = used
                used += info.count
            }
        }
        normSlots = slots
        normEffective = FloatBuffer(count: used)
        // RoPE as transformers computes it: inv_freq in float32, angle = float32(pos) * inv_freq in float32,
        // cos and sin of that angle (rounded once from double).
        func table(_ theta: Double, _ scaling: RopeScaling?) -> (cos: [Float], sin: [Float]) {
            let inv = RopeScaling.inverseFrequencies(theta: theta, dim: config.headDim, scaling: scaling)
            let half = config.headDim / 2
            var cosT = [Float](repeating: 0, count: config.maxPositions * half)
            var sinT = cosT
            for p in 0..<config.maxPositions {
                for i in 0..<half {
                    let a = Double(Float(p) * inv[i])
                    cosT[p * half + i] = Float(cos(a))
                    sinT[p * half + i] = Float(sin(a))
                }
            }
            return (cosT, sinT)
        }
        var tables = [table(config.ropeTheta, config.ropeScaling)]
        if let local = config.localRopeTheta, config.slidingWindow != nil { tables.append(table(local, nil)) }
        ropeTables = tables
        layerRope = (0..<config.numLayers).map { config.isSliding($0) && tables.count > 1 ? 1 : 0 }
    }

    /// transformers' initialisation: N(0, 0.02) for matrices, 1 for norm weights (0 for Gemma's, which scale by
    /// 1 + w), 0 for biases; seeded.
    public func initialize(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        let v = params.values.pointer
        for info in params.infos {
            if info.shape.count == 1 {
                let one: Float = info.name.hasSuffix("norm.weight") && !config.gemmaNorms ? 1 : 0
                for j in 0..<info.count { v[info.offset + j] = one }
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

    /// Recomputes Gemma's (1 + w) norm weights from the parameters (every forward does; call it before using
    /// `normWeight` outside a forward after the parameters changed).
    public func refreshNormWeights() {
        guard !normSlots.isEmpty else { return }
        let v = params.values.pointer, e = normEffective.pointer
        for info in params.infos {
            guard let slot = normSlots[info.offset] else { continue }
            for j in 0..<info.count { e[slot + j] = 1 + v[info.offset + j] }
        }
    }

    /// The weight a norm's kernel multiplies by, given the norm parameter's offset.
    func normWeight(_ offset: Int) -> UnsafeMutablePointer<Float> {
        if let slot = normSlots[offset] { return normEffective.pointer + slot }
        return params.values.pointer + offset
    }

    // MARK: - Forward

    /// Runs the model on a batch and keeps what backward needs. Returns a pointer to the logits [rows*length, vocab]
    /// (valid until the next forward; `crossEntropy` overwrites them with their gradient).
    @discardableResult
    public func forward(_ batch: Batch) -> UnsafeMutablePointer<Float> {
        let c = config
        let B = batch.rows, T = batch.length, N = B * T
        precondition(batch.tokens.count == N && batch.targets.count == N && batch.positions.count == N)
        if work == nil || work!.rows != B || work!.length != T || work!.threads != Compute.threads
            || (logitChunkRows != nil && work!.headRows != min(B * T, logitChunkRows!))
        {
            work = Workspace(config: c, rows: B, length: T, headRows: logitChunkRows)
        }
        let w = work!
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd
        let P = params.values.pointer
        let eps = Float(c.rmsNormEps)
        refreshNormWeights()
        w.tokens = batch.tokens
        w.positions = batch.positions
        w.segStart = batch.segStart
        if let W = c.slidingWindow {
            // A sliding layer's token t sees max(its document's start, t - W + 1)...t.
            w.segSliding = (0..<N).map { n in max(batch.segStart[n], Int32(n % T - W + 1)) }
        }
        let scale = c.embeddingScale
        for (n, tok) in batch.tokens.enumerated() {
            precondition(tok >= 0 && Int(tok) < c.vocabSize, "token id \(tok) outside the vocabulary")
            precondition(Int(batch.positions[n]) < c.maxPositions, "position beyond max_position_embeddings")
            let row = w.resid[0] + n * D, src = P + embedOffset + Int(tok) * D
            if scale == 1 { row.update(from: src, count: D) } else { for i in 0..<D { row[i] = src[i] * scale } }
        }
        let sandwich = c.gemmaNorms
        for l in 0..<c.numLayers {
            let L = layers[l]
            let h = w.resid[l]
            rmsnorm(w.xn, w.rstd1[l], h, normWeight(L.ln1), N, D, eps)
            // q and k before their norms (Gemma) go to qpre/kpre, kept for backward.
            let qOut = sandwich ? w.qpre[l] : w.q[l], kOut = sandwich ? w.kpre[l] : w.k[l]
            Matmul.parallelGemm(w.xn, P + L.q, qOut, m: N, n: qd, k: D, transposeB: true)
            Matmul.parallelGemm(w.xn, P + L.k, kOut, m: N, n: kvd, k: D, transposeB: true)
            Matmul.parallelGemm(w.xn, P + L.v, w.v[l], m: N, n: kvd, k: D, transposeB: true)
            if L.bq >= 0 {
                addBias(qOut, P + L.bq, N, qd)
                addBias(kOut, P + L.bk, N, kvd)
                addBias(w.v[l], P + L.bv, N, kvd)
            }
            if let a = lora {
                a.forward(l, .q, x: w.xn, y: qOut, rows: N)
                a.forward(l, .k, x: w.xn, y: kOut, rows: N)
                a.forward(l, .v, x: w.xn, y: w.v[l], rows: N)
            }
            if sandwich {
                rmsnorm(w.q[l], w.rstdq[l], w.qpre[l], normWeight(L.qNorm), N * H, hd, eps)
                rmsnorm(w.k[l], w.rstdk[l], w.kpre[l], normWeight(L.kNorm), N * G, hd, eps)
            }
            rope(w.q[l], N, H, table: layerRope[l], forward: true)
            rope(w.k[l], N, G, table: layerRope[l], forward: true)
            attentionForward(l, B: B, T: T)
            w.resid2[l].update(from: h, count: N * D)
            if sandwich {
                // resid2 = h + norm(atty · Woᵀ)
                Matmul.parallelGemm(w.atty[l], P + L.o, w.ao[l], m: N, n: D, k: qd, transposeB: true)
                lora?.forward(l, .o, x: w.atty[l], y: w.ao[l], rows: N)
                rmsnorm(w.normed, w.rstdAo[l], w.ao[l], normWeight(L.postAttn), N, D, eps)
                add(w.resid2[l], w.normed, N * D)
            } else {
                // resid2 = h + atty · Woᵀ
                Matmul.parallelGemm(w.atty[l], P + L.o, w.resid2[l], m: N, n: D, k: qd, transposeB: true, beta: 1)
                lora?.forward(l, .o, x: w.atty[l], y: w.resid2[l], rows: N)
            }
            rmsnorm(w.xn, w.rstd2[l], w.resid2[l], normWeight(L.ln2), N, D, eps)
            Matmul.parallelGemm(w.xn, P + L.gate, w.gate[l], m: N, n: I, k: D, transposeB: true)
            Matmul.parallelGemm(w.xn, P + L.up, w.up[l], m: N, n: I, k: D, transposeB: true)
            if let a = lora {
                a.forward(l, .gate, x: w.xn, y: w.gate[l], rows: N)
                a.forward(l, .up, x: w.xn, y: w.up[l], rows: N)
            }
            activation(l)
            w.resid[l + 1].update(from: w.resid2[l], count: N * D)
            if sandwich {
                Matmul.parallelGemm(w.act, P + L.down, w.mo[l], m: N, n: D, k: I, transposeB: true)
                lora?.forward(l, .down, x: w.act, y: w.mo[l], rows: N)
                rmsnorm(w.normed, w.rstdMo[l], w.mo[l], normWeight(L.postFfw), N, D, eps)
                add(w.resid[l + 1], w.normed, N * D)
            } else {
                Matmul.parallelGemm(w.act, P + L.down, w.resid[l + 1], m: N, n: D, k: I, transposeB: true, beta: 1)
                lora?.forward(l, .down, x: w.act, y: w.resid[l + 1], rows: N)
            }
        }
        rmsnorm(w.lnf, w.rstdf, w.resid[c.numLayers], normWeight(normOffset), N, D, eps)
        w.headDone = false
        // A large vocabulary's logits are computed chunk by chunk by the loss (forEachLogitRows).
        if w.chunkedHead { return w.logits }
        Matmul.parallelGemm(w.lnf, P + headOffset, w.logits, m: N, n: c.vocabSize, k: D, transposeB: true)
        if let cap = c.finalLogitSoftcap {
            let (x, kept, V) = (w.logits, w.capped!, c.vocabSize)
            Compute.parallel(N * V, grain: 1 << 16) { r in tk_softcap_forward(x + r.lowerBound, kept + r.lowerBound, r.count, Float(cap)) }
        }
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

    /// The MLP's activation of layer l into the workspace's one `act` buffer (forward, and again in backward,
    /// which is cheaper than keeping N x intermediate floats per layer): silu(gate)·up, or gelu_tanh(gate)·up.
    func activation(_ l: Int) {
        let w = work!, n = w.rows * w.length * config.intermediateSize, gemma = config.gemmaNorms
        let (g, u, a) = (w.gate[l], w.up[l], w.act)
        Compute.parallel(n, grain: 4096) { r in
            if gemma {
                tk_geglu_forward(a + r.lowerBound, g + r.lowerBound, u + r.lowerBound, r.count)
            } else {
                tk_swiglu_forward(a + r.lowerBound, g + r.lowerBound, u + r.lowerBound, r.count)
            }
        }
    }

    /// x[r] += bias for N rows of C.
    func addBias(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafeMutablePointer<Float>, _ N: Int, _ C: Int) {
        Compute.parallel(N, grain: 64) { r in tk_add_bias(x + r.lowerBound * C, bias, r.count, C) }
    }

    /// x += y over n floats.
    func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        Compute.parallel(n, grain: 1 << 14) { r in tk_add(x + r.lowerBound, y + r.lowerBound, r.count) }
    }

    func rope(_ x: UnsafeMutablePointer<Float>, _ N: Int, _ heads: Int, table: Int, forward: Bool) {
        let hd = config.headDim
        let w = work!
        w.positions.withUnsafeBufferPointer { pos in
            ropeTables[table].cos.withUnsafeBufferPointer { ct in
                ropeTables[table].sin.withUnsafeBufferPointer { st in
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

    /// softmax(q kᵀ · scale + mask) v per row and query head; query head h reads KV head h / (H / G). The mask is
    /// causal within each document and, in sliding layers, the last `slidingWindow` positions. The probabilities
    /// are not kept: backward computes them again (attentionProbabilities), so memory holds one T x T block per
    /// thread, not one per head and layer.
    func attentionForward(_ l: Int, B: Int, T: Int) {
        let c = config, w = work!
        let H = c.numHeads, G = c.numKVHeads, hd = c.headDim, per = H / G
        let qd = H * hd, kvd = G * hd
        let (v, y) = (w.v[l], w.atty[l])
        // One task a (row, query head): every thread busy even with one KV head (Gemma) and one row.
        Compute.parallelParts(B * H) { part, r in
            let s = w.attScratch + part * 2 * T * T
            for task in r {
                let b = task / H, h = task % H, g = h / per
                attentionProbabilities(l, b: b, h: h, T: T, into: s)
                Matmul.gemm(s, lda: T, v + b * T * kvd + g * hd, ldb: kvd, y + b * T * qd + h * hd, ldc: qd, m: T, n: hd, k: T)
            }
        }
    }

    /// Row b, query head h of layer l: P = softmax(q kᵀ · scale + mask) into s ([T, T]), the same bits in forward
    /// and backward.
    func attentionProbabilities(_ l: Int, b: Int, h: Int, T: Int, into s: UnsafeMutablePointer<Float>) {
        let c = config, w = work!
        let hd = c.headDim, g = h / (c.numHeads / c.numKVHeads)
        let qd = c.numHeads * hd, kvd = c.numKVHeads * hd
        Matmul.gemm(w.q[l] + b * T * qd + h * hd, lda: qd, w.k[l] + b * T * kvd + g * hd, ldb: kvd, s, ldc: T, m: T, n: T, k: hd, transposeB: true)
        (c.isSliding(l) ? w.segSliding : w.segStart).withUnsafeBufferPointer { seg in
            tk_attention_softmax_forward(s, seg.baseAddress! + b * T, T, c.attentionScale)
        }
    }

    // MARK: - Loss

    /// Runs `body` over the logits of every row of the last forward, with the row range it gets: all rows at once
    /// when the forward computed them, else chunks of `Workspace.headRows` rows computed here from the final
    /// norm's output (a 262,144-token vocabulary makes [rows, vocab] the largest tensor of a step: chunks keep it
    /// off, as Liger's fused linear cross-entropy does). With `gradient`, `body` leaves d(loss)/d(logits) in the
    /// rows, and each chunk's gradient goes on through the head at once (d lnf rows, the head weights' gradient).
    func forEachLogitRows(gradient: Bool, _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let w = work!, c = config, N = w.rows * w.length
        guard w.chunkedHead else {
            body(0..<N, w.logits)
            return
        }
        let V = c.vocabSize, D = c.hiddenSize
        let P = params.values.pointer
        var start = 0
        while start < N {
            let rows = start..<min(N, start + w.headRows), n = rows.count
            Matmul.parallelGemm(w.lnf + start * D, P + headOffset, w.logits, m: n, n: V, k: D, transposeB: true)
            if let cap = c.finalLogitSoftcap {
                let (x, kept) = (w.logits, w.capped!)
                Compute.parallel(n * V, grain: 1 << 16) { r in tk_softcap_forward(x + r.lowerBound, kept + r.lowerBound, r.count, Float(cap)) }
            }
            body(rows, w.logits)
            if gradient { headBackward(rows: rows) }
            start = rows.upperBound
        }
        if gradient { w.headDone = true }
    }

    /// The head's backward for rows whose d(loss)/d(logits) is in the logits buffer (from its start): soft-cap,
    /// the head weights' gradient (unless frozen), and d(lnf) for those rows into `dln`.
    func headBackward(rows: Range<Int>) {
        let w = work!, c = config, V = c.vocabSize, D = c.hiddenSize, n = rows.count
        if let cap = c.finalLogitSoftcap {
            let (dx, kept) = (w.logits, w.capped!)
            Compute.parallel(n * V, grain: 1 << 16) { r in tk_softcap_backward(dx + r.lowerBound, kept + r.lowerBound, r.count, Float(cap)) }
        }
        if trainBase {
            Matmul.parallelGemm(w.logits, w.lnf + rows.lowerBound * D, params.grads.pointer + headOffset, m: V, n: D, k: n, transposeA: true, beta: 1)
        }
        Matmul.parallelGemm(w.logits, params.values.pointer + headOffset, w.dln + rows.lowerBound * D, m: n, n: D, k: V)
    }

    /// Σ over `rows` of `kernel(logits of a row range, its first row, its count)`, the ranges split across threads.
    func sumOverRows(_ rows: Range<Int>, _ logits: UnsafeMutablePointer<Float>, _ kernel: (UnsafeMutablePointer<Float>, Int, Int) -> Double) -> Double {
        let V = config.vocabSize
        return Compute.parallelSum(rows.count, grain: 16) { r in kernel(logits + r.lowerBound * V, rows.lowerBound + r.lowerBound, r.count) }
    }

    /// Cross-entropy of the last forward's logits against `targets`: returns the sum over targeted positions and
    /// replaces the logits by d(scale · sum)/d logits, ready for `backward` (scale 0: the loss only).
    public func crossEntropy(targets: [Int32], scale: Float) -> Double {
        let V = config.vocabSize
        var total = 0.0
        targets.withUnsafeBufferPointer { tp in
            let t = tp.baseAddress!
            forEachLogitRows(gradient: scale != 0) { rows, logits in
                total += sumOverRows(rows, logits) { l, first, count in tk_cross_entropy_forward_backward(l, t + first, count, V, scale) }
            }
        }
        return total
    }

    /// Weighted cross-entropy of the last forward's logits: returns Σ weights[n]·(−log p(targets[n])) and replaces
    /// the logits by its gradient (weights[n]·(softmax − onehot) per row), ready for `backward`. With every weight
    /// equal to `scale` this is `crossEntropy`; preference objectives give each sequence's tokens its own weight.
    public func weightedCrossEntropy(targets: [Int32], weights: [Float]) -> Double {
        let V = config.vocabSize
        precondition(weights.count == targets.count)
        var total = 0.0
        targets.withUnsafeBufferPointer { tp in
            weights.withUnsafeBufferPointer { wp in
                let (t, wt) = (tp.baseAddress!, wp.baseAddress!)
                forEachLogitRows(gradient: true) { rows, logits in
                    total += sumOverRows(rows, logits) { l, first, count in tk_cross_entropy_weighted(l, t + first, wt + first, count, V) }
                }
            }
        }
        return total
    }

    /// log p(target) at every position of the last forward (0 where the target is < 0); logits unchanged.
    public func targetLogProbs(targets: [Int32]) -> [Float] {
        let V = config.vocabSize, N = targets.count
        var out = [Float](repeating: 0, count: N)
        targets.withUnsafeBufferPointer { tp in
            out.withUnsafeMutableBufferPointer { ob in
                let (t, o) = (tp.baseAddress!, ob.baseAddress!)
                forEachLogitRows(gradient: false) { rows, logits in
                    Compute.parallel(rows.count, grain: 16) { r in
                        let first = rows.lowerBound + r.lowerBound
                        tk_target_logprobs(o + first, logits + r.lowerBound * V, t + first, r.count, V)
                    }
                }
            }
        }
        return out
    }

    /// log p(target) at every position of the last forward, and whether the target was the most likely token there
    /// (targets < 0: 0 and true); logits unchanged. What evaluation's log-likelihood requests read.
    public func targetLogProbsAndGreedy(targets: [Int32]) -> (logprobs: [Float], greedy: [Bool]) {
        var out = [Float](repeating: 0, count: targets.count)
        var greedy = [UInt8](repeating: 1, count: targets.count)
        forEachLogitRows(gradient: false) { rows, logits in
            LlamaModel.scoreRows(logits, targets: Array(targets[rows]), vocab: config.vocabSize, into: &out, &greedy, at: rows.lowerBound)
        }
        return (out, greedy.map { $0 != 0 })
    }

    /// log p(target) and whether the target is the row's argmax for `targets.count` rows of logits, in parallel over
    /// rows, written at `at...` of `logprobs` and `greedy`.
    static func scoreRows(
        _ logits: UnsafeMutablePointer<Float>, targets: [Int32], vocab V: Int, into logprobs: inout [Float], _ greedy: inout [UInt8], at: Int
    ) {
        targets.withUnsafeBufferPointer { tp in
            logprobs.withUnsafeMutableBufferPointer { ob in
                greedy.withUnsafeMutableBufferPointer { gb in
                    let (t, o, g) = (tp.baseAddress!, ob.baseAddress! + at, gb.baseAddress! + at)
                    Compute.parallel(targets.count, grain: 16) { r in
                        tk_target_logprobs_greedy(o + r.lowerBound, g + r.lowerBound, logits + r.lowerBound * V, t + r.lowerBound, r.count, V)
                    }
                }
            }
        }
    }

    /// Logits pointer of the last forward (for objectives that write their own gradient into it). With a chunked
    /// head (a large vocabulary) it holds one chunk only: use the loss functions above.
    public var logits: UnsafeMutablePointer<Float> { work!.logits }

    // MARK: - Backward

    /// Accumulates d(loss)/d(parameters) into `params.grads`, given d(loss)/d(logits) in the logits buffer.
    public func backward() {
        let c = config, w = work!
        let B = w.rows, T = w.length, N = B * T
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd, V = c.vocabSize
        let P = params.values.pointer
        // The base's gradient buffer only when it trains (reading it allocates it).
        let Gr = trainBase ? params.grads.pointer : params.values.pointer
        let dres = w.dresid, dln = w.dln
        let sandwich = c.gemmaNorms
        // lm_head: dW += dlogitsᵀ · lnf; dlnf = dlogits · W (a chunked head did it in the loss).
        let base = trainBase
        if w.chunkedHead {
            precondition(w.headDone, "backward with a chunked head needs a loss with gradient since the forward")
        } else {
            headBackward(rows: 0..<N)
        }
        dres.update(repeating: 0, count: N * D)
        rmsnormBackward(dres, normGrad(normOffset), dln, w.resid[c.numLayers], normWeight(normOffset), w.rstdf, N, D)
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let L = layers[l]
            // MLP: out = resid2 + act · Wdownᵀ (Gemma: resid2 + norm(act · Wdownᵀ)); dy is d/d(act · Wdownᵀ).
            var dy = sandwich ? outputNormBackward(L.postFfw, saved: w.mo[l], rstd: w.rstdMo[l], N, D) : dres
            activation(l)
            // The pre-MLP norm's output again (cheaper than keeping it per layer): the same kernel on the same inputs.
            rmsnorm(w.xn, w.rstd2[l], w.resid2[l], normWeight(L.ln2), N, D, c.rmsNormEpsilon)
            if base { Matmul.parallelGemm(dy, w.act, Gr + L.down, m: D, n: I, k: N, transposeA: true, beta: 1) }
            Matmul.parallelGemm(dy, P + L.down, w.dact, m: N, n: I, k: D)
            lora?.backward(l, .down, x: w.act, dy: dy, dx: w.dact, rows: N)
            let (dg, du, da, g, u) = (w.dgate, w.dup, w.dact, w.gate[l], w.up[l])
            Compute.parallel(N * I, grain: 4096) { r in
                let o = r.lowerBound
                if sandwich {
                    tk_geglu_backward(dg + o, du + o, da + o, g + o, u + o, r.count)
                } else {
                    tk_swiglu_backward(dg + o, du + o, da + o, g + o, u + o, r.count)
                }
            }
            if base {
                Matmul.parallelGemm(w.dgate, w.xn, Gr + L.gate, m: I, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(w.dup, w.xn, Gr + L.up, m: I, n: D, k: N, transposeA: true, beta: 1)
            }
            Matmul.parallelGemm(w.dgate, P + L.gate, dln, m: N, n: D, k: I)
            Matmul.parallelGemm(w.dup, P + L.up, dln, m: N, n: D, k: I, beta: 1)
            if let a = lora {
                a.backward(l, .gate, x: w.xn, dy: w.dgate, dx: dln, rows: N)
                a.backward(l, .up, x: w.xn, dy: w.dup, dx: dln, rows: N)
            }
            rmsnormBackward(dres, normGrad(L.ln2), dln, w.resid2[l], normWeight(L.ln2), w.rstd2[l], N, D)
            // Attention: resid2 = resid + atty · Woᵀ (Gemma: resid + norm(atty · Woᵀ)).
            dy = sandwich ? outputNormBackward(L.postAttn, saved: w.ao[l], rstd: w.rstdAo[l], N, D) : dres
            if base { Matmul.parallelGemm(dy, w.atty[l], Gr + L.o, m: D, n: qd, k: N, transposeA: true, beta: 1) }
            Matmul.parallelGemm(dy, P + L.o, w.datty, m: N, n: qd, k: D)
            lora?.backward(l, .o, x: w.atty[l], dy: dy, dx: w.datty, rows: N)
            attentionBackward(l, B: B, T: T)
            rope(w.dq, N, H, table: layerRope[l], forward: false)
            rope(w.dk, N, G, table: layerRope[l], forward: false)
            // Gemma: q and k went through their norms before RoPE; back through them to the projections.
            var (dQ, dK) = (w.dq, w.dk)
            if sandwich {
                w.dqpre.update(repeating: 0, count: N * qd)
                w.dkpre.update(repeating: 0, count: N * kvd)
                rmsnormBackward(w.dqpre, normGrad(L.qNorm), w.dq, w.qpre[l], normWeight(L.qNorm), w.rstdq[l], N * H, hd)
                rmsnormBackward(w.dkpre, normGrad(L.kNorm), w.dk, w.kpre[l], normWeight(L.kNorm), w.rstdk[l], N * G, hd)
                (dQ, dK) = (w.dqpre, w.dkpre)
            }
            rmsnorm(w.xn, w.rstd1[l], w.resid[l], normWeight(L.ln1), N, D, c.rmsNormEpsilon)
            if base {
                Matmul.parallelGemm(dQ, w.xn, Gr + L.q, m: qd, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(dK, w.xn, Gr + L.k, m: kvd, n: D, k: N, transposeA: true, beta: 1)
                Matmul.parallelGemm(w.dv, w.xn, Gr + L.v, m: kvd, n: D, k: N, transposeA: true, beta: 1)
                if L.bq >= 0 {
                    // A bias's gradient is the column sum of its output's gradient: onesᵀ · dY.
                    Matmul.parallelGemm(w.ones, dQ, Gr + L.bq, m: 1, n: qd, k: N, beta: 1)
                    Matmul.parallelGemm(w.ones, dK, Gr + L.bk, m: 1, n: kvd, k: N, beta: 1)
                    Matmul.parallelGemm(w.ones, w.dv, Gr + L.bv, m: 1, n: kvd, k: N, beta: 1)
                }
            }
            Matmul.parallelGemm(dQ, P + L.q, dln, m: N, n: D, k: qd)
            Matmul.parallelGemm(dK, P + L.k, dln, m: N, n: D, k: kvd, beta: 1)
            Matmul.parallelGemm(w.dv, P + L.v, dln, m: N, n: D, k: kvd, beta: 1)
            if let a = lora {
                a.backward(l, .q, x: w.xn, dy: dQ, dx: dln, rows: N)
                a.backward(l, .k, x: w.xn, dy: dK, dx: dln, rows: N)
                a.backward(l, .v, x: w.xn, dy: w.dv, dx: dln, rows: N)
            }
            rmsnormBackward(dres, normGrad(L.ln1), dln, w.resid[l], normWeight(L.ln1), w.rstd1[l], N, D)
        }
        // Embedding: rows of the gradient gather back to their tokens (serial: tokens repeat), times the embedding
        // scale; Gemma's pad row takes none (nn.Embedding's padding_idx).
        guard base else { return }
        let ge = Gr + embedOffset, scale = c.embeddingScale
        let skip: Int32 = c.family == .gemma3 ? Int32(c.padTokenId ?? -1) : -1
        for (n, tok) in w.tokens.enumerated() where tok != skip {
            let row = ge + Int(tok) * D, src = dres + n * D
            if scale == 1 { for i in 0..<D { row[i] += src[i] } } else { for i in 0..<D { row[i] += src[i] * scale } }
        }
    }

    /// Gemma's norm of a sublayer's output y (h += norm(y)): d/dy from d/dh (the residual stream's gradient), in
    /// the `dsub` buffer; the norm's weight gradient accumulated.
    func outputNormBackward(
        _ offset: Int, saved y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int
    ) -> UnsafeMutablePointer<Float> {
        let w = work!
        w.dsub.update(repeating: 0, count: N * D)
        rmsnormBackward(w.dsub, normGrad(offset), w.dresid, y, normWeight(offset), rstd, N, D)
        return w.dsub
    }

    /// Where a norm's weight gradient goes: the parameter's gradient, or scratch when the base is frozen (so a
    /// LoRA run never allocates the base's gradient buffer).
    func normGrad(_ offset: Int) -> UnsafeMutablePointer<Float> {
        trainBase ? params.grads.pointer + offset : work!.discard
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
        Compute.parallelParts(N, grain: 64) { slot, r in
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
        let qd = H * hd, kvd = G * hd, N = B * T
        let scale = c.attentionScale
        let (q, k, v) = (w.q[l], w.k[l], w.v[l])
        let (dy, dq) = (w.datty, w.dq)
        // One task a (row, query head), as forward. Heads of one KV group add into the same dK and dV rows, so each
        // thread accumulates into its own copy (part p's at kvPartials + p·2·N·kvd), summed in part order after.
        let parts = min(Compute.threads, B * H)
        w.kvPartials.update(repeating: 0, count: parts * 2 * N * kvd)
        (c.isSliding(l) ? w.segSliding : w.segStart).withUnsafeBufferPointer { seg in
            let segp = seg.baseAddress!
            Compute.parallelParts(B * H) { part, r in
                let p = w.attScratch + part * 2 * T * T, ds = p + T * T
                let dk = w.kvPartials + part * 2 * N * kvd, dv = dk + N * kvd
                for task in r {
                    let b = task / H, h = task % H, g = h / per
                    let kp = k + b * T * kvd + g * hd, vp = v + b * T * kvd + g * hd
                    let dkp = dk + b * T * kvd + g * hd, dvp = dv + b * T * kvd + g * hd
                    let qp = q + b * T * qd + h * hd, dqp = dq + b * T * qd + h * hd
                    let dyp = dy + b * T * qd + h * hd
                    attentionProbabilities(l, b: b, h: h, T: T, into: p)
                    // dV += Pᵀ dY; dP = dY Vᵀ; dS = softmax backward (scale folded in); dQ = dS K; dK += dSᵀ Q.
                    Matmul.gemm(p, lda: T, dyp, ldb: qd, dvp, ldc: kvd, m: T, n: hd, k: T, transposeA: true, beta: 1)
                    Matmul.gemm(dyp, lda: qd, vp, ldb: kvd, ds, ldc: T, m: T, n: T, k: hd, transposeB: true)
                    tk_attention_softmax_backward(ds, p, segp + b * T, T, scale)
                    Matmul.gemm(ds, lda: T, kp, ldb: kvd, dqp, ldc: qd, m: T, n: hd, k: T)
                    Matmul.gemm(ds, lda: T, qp, ldb: qd, dkp, ldc: kvd, m: T, n: hd, k: T, transposeA: true, beta: 1)
                }
            }
        }
        // dK, dV = the parts' sums, in part order (the same bits for a given thread count).
        let (dkOut, dvOut, partials) = (w.dk, w.dv, w.kvPartials)
        Compute.parallel(N * kvd, grain: 1 << 14) { r in
            for i in r {
                var sk: Float = 0, sv: Float = 0
                for pt in 0..<parts {
                    sk += partials[pt * 2 * N * kvd + i]
                    sv += partials[pt * 2 * N * kvd + N * kvd + i]
                }
                dkOut[i] = sk
                dvOut[i] = sv
            }
        }
    }
}

/// Buffers for one batch shape: activations of every layer (kept for backward) and gradient scratch.
final class Workspace {
    let rows: Int, length: Int
    let threads = Compute.threads
    var tokens: [Int32] = [], positions: [Int32] = [], segStart: [Int32] = [], segSliding: [Int32] = []
    private var owned: [FloatBuffer] = []
    var resid: [UnsafeMutablePointer<Float>] = []
    var rstd1: [UnsafeMutablePointer<Float>] = []
    var q: [UnsafeMutablePointer<Float>] = [], k: [UnsafeMutablePointer<Float>] = [], v: [UnsafeMutablePointer<Float>] = []
    var atty: [UnsafeMutablePointer<Float>] = []
    var resid2: [UnsafeMutablePointer<Float>] = []
    var rstd2: [UnsafeMutablePointer<Float>] = []
    /// The input norm's or pre-MLP norm's output of the layer being computed (recomputed in backward).
    var xn: UnsafeMutablePointer<Float>
    var gate: [UnsafeMutablePointer<Float>] = [], up: [UnsafeMutablePointer<Float>] = []
    /// The MLP activation of the layer being computed (recomputed in backward).
    var act: UnsafeMutablePointer<Float>
    // Gemma: q and k before their norms and the norms' 1/rms, the attention and MLP outputs before theirs.
    var qpre: [UnsafeMutablePointer<Float>] = [], kpre: [UnsafeMutablePointer<Float>] = []
    var rstdq: [UnsafeMutablePointer<Float>] = [], rstdk: [UnsafeMutablePointer<Float>] = []
    var ao: [UnsafeMutablePointer<Float>] = [], rstdAo: [UnsafeMutablePointer<Float>] = []
    var mo: [UnsafeMutablePointer<Float>] = [], rstdMo: [UnsafeMutablePointer<Float>] = []
    var lnf: UnsafeMutablePointer<Float>, rstdf: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>
    /// The soft-capped logits (kept for backward) when the config caps them.
    var capped: UnsafeMutablePointer<Float>?
    var dresid: UnsafeMutablePointer<Float>, dln: UnsafeMutablePointer<Float>
    var dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dact: UnsafeMutablePointer<Float>
    var datty: UnsafeMutablePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>
    var dv: UnsafeMutablePointer<Float>, attScratch: UnsafeMutablePointer<Float>, normScratch: UnsafeMutablePointer<Float>
    var normed: UnsafeMutablePointer<Float>, dsub: UnsafeMutablePointer<Float>
    /// Each thread's dK and dV during attention backward ([threads][2][N, kvd]).
    var kvPartials: UnsafeMutablePointer<Float>
    var dqpre: UnsafeMutablePointer<Float>, dkpre: UnsafeMutablePointer<Float>, ones: UnsafeMutablePointer<Float>
    /// Logits rows computed at once: all of them, or chunks when [rows, vocab] would pass 32 M floats (128 MB).
    let headRows: Int
    var chunkedHead: Bool { headRows < rows * length }
    /// A chunked head's loss has sent the gradient through the head since the last forward.
    var headDone = false
    /// Where a frozen base's norm-weight gradients go.
    var discard: UnsafeMutablePointer<Float>

    init(config c: LlamaConfig, rows: Int, length: Int, headRows chunk: Int? = nil) {
        self.rows = rows
        self.length = length
        let N = rows * length, D = c.hiddenSize, I = c.intermediateSize
        let qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        let gemma = c.gemmaNorms
        var owned: [FloatBuffer] = []
        func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
            let b = FloatBuffer(count: n)
            owned.append(b)
            return b.pointer
        }
        resid = (0...c.numLayers).map { _ in buf(N * D) }
        for _ in 0..<c.numLayers {
            rstd1.append(buf(N))
            q.append(buf(N * qd)); k.append(buf(N * kvd)); v.append(buf(N * kvd))
            atty.append(buf(N * qd))
            resid2.append(buf(N * D)); rstd2.append(buf(N))
            gate.append(buf(N * I)); up.append(buf(N * I))
            if gemma {
                qpre.append(buf(N * qd)); kpre.append(buf(N * kvd))
                rstdq.append(buf(N * c.numHeads)); rstdk.append(buf(N * c.numKVHeads))
                ao.append(buf(N * D)); rstdAo.append(buf(N)); mo.append(buf(N * D)); rstdMo.append(buf(N))
            }
        }
        // Chunks of 32 M floats (128 MB; 128 rows of a 262,144 vocabulary): smaller ones cost more than they save, as
        // OpenBLAS packs the head's weights again for every chunk (gemma-3-270m LoRA: 32 rows 89, 128 rows 105
        // tokens/s).
        headRows = chunk.map { min(N, max(1, $0)) } ?? (N * c.vocabSize <= 1 << 25 ? N : max(1, (1 << 25) / c.vocabSize))
        act = buf(N * I); xn = buf(N * D)
        lnf = buf(N * D); rstdf = buf(N); logits = buf(headRows * c.vocabSize)
        capped = c.finalLogitSoftcap == nil ? nil : buf(headRows * c.vocabSize)
        discard = buf(max(D, c.headDim))
        dresid = buf(N * D); dln = buf(N * D)
        dgate = buf(N * I); dup = buf(N * I); dact = buf(N * I)
        datty = buf(N * qd); dq = buf(N * qd); dk = buf(N * kvd); dv = buf(N * kvd)
        attScratch = buf(max(1, Compute.threads) * 2 * length * length)
        normScratch = buf(max(1, Compute.threads) * max(D, c.headDim))
        normed = buf(gemma ? N * D : 1); dsub = buf(gemma ? N * D : 1)
        kvPartials = buf(max(1, Compute.threads) * 2 * N * kvd)
        dqpre = buf(gemma ? N * qd : 1); dkpre = buf(gemma ? N * kvd : 1)
        ones = buf(N)
        ones.update(repeating: 1, count: N)
        self.owned = owned
    }
}
