// Where the model tests get their tolerances: a float64 Llama forward and backward (the formulas of the fixture
// README, written again here) that carries, beside every value, the scale of the error a float32 evaluation of the
// same operations makes: a running error analysis (Higham, "Accuracy and Stability of Numerical Algorithms", ch. 3)
// in its probabilistic form (Higham & Mary, "A New Approach to Probabilistic Rounding Error Analysis", SIAM J. Sci.
// Comput. 41, 2019). Rounding errors are independent, mean zero and at most u = 2^-24 (exp, sqrt, cos: 2u); then a
// result's error is Σ_k c_k·δ_k and, by Hoeffding, |Σ c_k δ_k| ≤ λ·u·‖c‖₂ except with probability 2·exp(−λ²/2).
// `sd` below is u·‖c‖₂, computed alongside the value:
//   - a float32 operation adds u·|result| (one rounding);
//   - a sum of n products in any order or blocking, with or without FMA, adds √n·u·Σ|a_i b_i| (n roundings, each of
//     a partial sum no larger than Σ|a_i b_i|): the order a CPU's BLAS adds in (Haswell, SkylakeX, Zen, ...) does not
//     enter, which is what makes the tolerances hold on every machine;
//   - an input's error moves a result by ∂f/∂x times it (first order); errors from different inputs are combined in
//     quadrature, as the model's independence has it;
//   - Loom's own kernels (CTensorKernels: norms, softmax, cross-entropy) add in double and round once to float32.
// A test's tolerance is λ·sd with λ = 8: a false alarm has probability ≤ 2·exp(−32) ≈ 3e-14 per entry. The worst-case
// form of the same analysis (errors added in absolute value) is useless here: each |W|·e step overestimates ‖W·e‖
// by ~√n, and through two layers the bound on a logit comes out near 4e5.

import COpenBLAS
import Foundation
import LoomTensor
import XCTest

@testable import LoomTrain

/// The float32 unit roundoff.
let u32 = 0x1p-24

/// Standard deviations in a tolerance (see above).
let lambda = 8.0

/// γ_n = n·u/(1 − n·u): the worst-case relative bound on a float32 sum of n products in any order.
func gamma(_ n: Int) -> Double {
    let x = Double(n) * u32
    return x / (1 - x)
}

/// Terms combined in quadrature.
func rss(_ xs: Double...) -> Double { xs.reduce(0) { $0 + $1 * $1 }.squareRoot() }

/// Exact (float64) values and, entry by entry, the scale `sd` of a float32 evaluation's error (see above).
struct Rounded {
    var v: [Double]
    var sd: [Double]
    init(_ v: [Double], _ sd: [Double]) {
        precondition(v.count == sd.count)
        self.v = v
        self.sd = sd
    }
    init(exact v: [Double]) { self.init(v, [Double](repeating: 0, count: v.count)) }
    init(zeros n: Int) { self.init(exact: [Double](repeating: 0, count: n)) }
    var count: Int { v.count }
    /// The tolerance: λ·sd.
    var bound: [Double] { sd.map { lambda * $0 } }

    /// a + b in float32: one rounding.
    static func + (a: Rounded, b: Rounded) -> Rounded {
        var r = Rounded(zeros: a.count)
        for i in 0..<a.count {
            r.v[i] = a.v[i] + b.v[i]
            r.sd[i] = rss(a.sd[i], b.sd[i], u32 * r.v[i])
        }
        return r
    }
}

/// op(A)·op(B) in float64, row-major: A is m×k (k×m when `ta`), B is k×n (n×k when `tb`).
func dgemm(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, ta: Bool = false, tb: Bool = false) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    guard m > 0, n > 0, k > 0 else { return c }
    cblas_dgemm(
        CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
        1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, &c, Int32(n))
    return c
}

/// A matrix product before its own rounding: the value, the variance its factors' errors carry
/// (A²·sd_B² + sd_A²·B²), and |A|·|B|, which the rounding of its k-term sums scales with.
struct Product {
    var v: [Double]
    var carried: [Double]
    var magnitude: [Double]
    var k: Int
}

func product(_ a: Rounded, _ b: Rounded, m: Int, n: Int, k: Int, ta: Bool = false, tb: Bool = false) -> Product {
    var carried = [Double](repeating: 0, count: m * n)
    if a.sd.contains(where: { $0 != 0 }) {
        let t = dgemm(a.sd.map { $0 * $0 }, b.v.map { $0 * $0 }, m: m, n: n, k: k, ta: ta, tb: tb)
        for i in carried.indices { carried[i] += t[i] }
    }
    if b.sd.contains(where: { $0 != 0 }) {
        let t = dgemm(a.v.map { $0 * $0 }, b.sd.map { $0 * $0 }, m: m, n: n, k: k, ta: ta, tb: tb)
        for i in carried.indices { carried[i] += t[i] }
    }
    return Product(
        v: dgemm(a.v, b.v, m: m, n: n, k: k, ta: ta, tb: tb), carried: carried,
        magnitude: dgemm(a.v.map(abs), b.v.map(abs), m: m, n: n, k: k, ta: ta, tb: tb), k: k)
}

/// Products added into one float32 buffer (GEMM with beta = 1), optionally onto an earlier value: one sum of K = Σk
/// (+1) terms, so sd² = Σ carried + sd_base² + (√K·u·(Σ|A||B| + |base|))².
func accumulate(_ ps: [Product], onto base: Rounded? = nil) -> Rounded {
    let n = ps[0].v.count
    var r = base ?? Rounded(zeros: n)
    var variance = r.sd.map { $0 * $0 }
    var mag = base?.v.map(abs) ?? [Double](repeating: 0, count: n)
    let terms = Double(ps.reduce(0) { $0 + $1.k } + (base == nil ? 0 : 1))
    for p in ps {
        for i in 0..<n {
            r.v[i] += p.v[i]
            variance[i] += p.carried[i]
            mag[i] += p.magnitude[i]
        }
    }
    for i in 0..<n { r.sd[i] = (variance[i] + terms * pow(u32 * mag[i], 2)).squareRoot() }
    return r
}

/// Llama in float64 with error scales, for a model's weights and one batch. `forward` fills the activations,
/// `crossEntropy` the loss and d loss / d logits, `backward` every parameter's gradient.
final class ReferenceLlama {
    let c: LlamaConfig
    var w: [String: [Double]]
    /// |table − cos(pos·θ_i)| (the same for sin) for the RoPE tables of both sides of a comparison. Loom's tables are
    /// the exact values rounded once (≤ u); transformers computes inv_freq, the angle and cos/sin in float32 (fixture
    /// README): inv_freq within 2u relative, the angle within 3u·pos·θ_i, cos/sin within 1 ulp more. So
    /// u·(3·pos·θ_i + 3) covers Loom against the fixture, and Loom against transformers.
    var ropeTableError: (Int, Int) -> Double
    /// The weights' own error scales (per entry; none by default): to carry a difference in the parameters
    /// themselves (an earlier optimiser step's) through to the outputs and gradients.
    var weightErrors: [String: [Double]] = [:]
    /// false: the other side adds in float32 where Loom's kernels add in double (transformers' RMSNorm and softmax),
    /// so those sums round like any sum of n terms (√n·u of their magnitude).
    var loomKernels = true

    // The batch and its activations (names as in LlamaModel's workspace).
    var batch = Batch(rows: 0, length: 0, tokens: [])
    var N = 0
    var resid: [Rounded] = []
    var ln1: [Rounded] = [], rstd1: [Rounded] = [], q: [Rounded] = [], k: [Rounded] = [], v: [Rounded] = []
    var att: [[Rounded]] = [], atty: [Rounded] = [], resid2: [Rounded] = [], ln2: [Rounded] = [], rstd2: [Rounded] = []
    var gate: [Rounded] = [], up: [Rounded] = [], act: [Rounded] = []
    var lnf = Rounded(zeros: 0), rstdf = Rounded(zeros: 0)
    var logits = Rounded(zeros: 0)
    var dlogits = Rounded(zeros: 0)
    var grads: [String: Rounded] = [:]

    init(config: LlamaConfig, weights: [String: [Float]]) {
        c = config
        w = weights.mapValues { $0.map(Double.init) }
        ropeTableError = { pos, i in
            let theta = pow(config.ropeTheta, -Double(2 * i) / Double(config.headDim))
            return u32 * (3 * Double(pos) * theta + 3)
        }
    }

    convenience init(model: LlamaModel) {
        let p = model.params
        self.init(config: model.config, weights: Dictionary(uniqueKeysWithValues: p.infos.map { ($0.name, p.tensor($0).floats()) }))
    }

    func weight(_ name: String) -> Rounded { Rounded(w[name]!, weightErrors[name] ?? [Double](repeating: 0, count: w[name]!.count)) }
    var headName: String { c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight" }

    // MARK: Forward

    func forward(_ b: Batch) {
        batch = b
        N = b.rows * b.length
        let D = c.hiddenSize, I = c.intermediateSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        let embed = weight("model.embed_tokens.weight")
        resid = [Rounded(
            b.tokens.flatMap { Array(embed.v[Int($0) * D..<(Int($0) + 1) * D]) },
            b.tokens.flatMap { Array(embed.sd[Int($0) * D..<(Int($0) + 1) * D]) })]
        ln1 = []; rstd1 = []; q = []; k = []; v = []; att = []; atty = []; resid2 = []; ln2 = []; rstd2 = []
        gate = []; up = []; act = []
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            let (x1, r1) = rmsnorm(resid[l], weight(p + "input_layernorm.weight"))
            ln1.append(x1); rstd1.append(r1)
            q.append(rope(accumulate([product(x1, weight(p + "self_attn.q_proj.weight"), m: N, n: qd, k: D, tb: true)]), c.numHeads, inverse: false))
            k.append(rope(accumulate([product(x1, weight(p + "self_attn.k_proj.weight"), m: N, n: kvd, k: D, tb: true)]), c.numKVHeads, inverse: false))
            v.append(accumulate([product(x1, weight(p + "self_attn.v_proj.weight"), m: N, n: kvd, k: D, tb: true)]))
            let (probs, y) = attention(q[l], k[l], v[l])
            att.append(probs); atty.append(y)
            resid2.append(accumulate([product(y, weight(p + "self_attn.o_proj.weight"), m: N, n: D, k: qd, tb: true)], onto: resid[l]))
            let (x2, r2) = rmsnorm(resid2[l], weight(p + "post_attention_layernorm.weight"))
            ln2.append(x2); rstd2.append(r2)
            gate.append(accumulate([product(x2, weight(p + "mlp.gate_proj.weight"), m: N, n: I, k: D, tb: true)]))
            up.append(accumulate([product(x2, weight(p + "mlp.up_proj.weight"), m: N, n: I, k: D, tb: true)]))
            act.append(swiglu(gate[l], up[l]))
            resid.append(accumulate([product(act[l], weight(p + "mlp.down_proj.weight"), m: N, n: D, k: I, tb: true)], onto: resid2[l]))
        }
        (lnf, rstdf) = rmsnorm(resid[c.numLayers], weight("model.norm.weight"))
        logits = accumulate([product(lnf, weight(headName), m: N, n: c.vocabSize, k: D, tb: true)])
    }

    /// y = x·r·w per row, r = 1/sqrt(mean(x²) + eps): the sum of squares (in double) carries 2x·sd_x, r half its
    /// relative change plus one rounding to float32; y two multiplies.
    func rmsnorm(_ x: Rounded, _ wt: Rounded) -> (Rounded, Rounded) {
        let D = c.hiddenSize, n = x.count / D
        var y = Rounded(zeros: x.count), r = Rounded(zeros: n)
        for row in 0..<n {
            var ss = 0.0, vss = 0.0
            for i in 0..<D {
                let j = row * D + i
                ss += x.v[j] * x.v[j]
                vss += pow(2 * x.v[j] * x.sd[j], 2)
            }
            if !loomKernels { vss += Double(D) * pow(u32 * ss, 2) }
            let ms = ss / Double(D) + c.rmsNormEps
            let rv = 1 / ms.squareRoot()
            r.v[row] = rv
            r.sd[row] = rv * rss(0.5 * vss.squareRoot() / Double(D) / ms, u32)
            for i in 0..<D {
                let j = row * D + i
                y.v[j] = x.v[j] * rv * wt.v[i]
                y.sd[j] = rss(rv * wt.v[i] * x.sd[j], x.v[j] * wt.v[i] * r.sd[row], x.v[j] * rv * wt.sd[i], 2 * u32 * y.v[j])
            }
        }
        return (y, r)
    }

    /// Half-split RoPE on every head (inverse: the backward rotation): the inputs' errors, the tables' error times
    /// the rotated pair, and two products and a sum (√2·u·(|a c| + |b s|)).
    func rope(_ x: Rounded, _ heads: Int, inverse: Bool) -> Rounded {
        let hd = c.headDim, half = hd / 2
        var y = x
        for n in 0..<N {
            let pos = Int(batch.positions[n])
            for h in 0..<heads {
                let o = (n * heads + h) * hd
                for i in 0..<half {
                    let angle = Double(pos) * pow(c.ropeTheta, -Double(2 * i) / Double(hd))
                    let cs = cos(angle), sn = inverse ? -sin(angle) : sin(angle), te = ropeTableError(pos, i)
                    let (a, b, ea, eb) = (x.v[o + i], x.v[o + i + half], x.sd[o + i], x.sd[o + i + half])
                    y.v[o + i] = a * cs - b * sn
                    y.v[o + i + half] = b * cs + a * sn
                    y.sd[o + i] = rss(cs * ea, sn * eb, te * a, te * b, 2.0.squareRoot() * u32 * (abs(a * cs) + abs(b * sn)))
                    y.sd[o + i + half] = rss(cs * eb, sn * ea, te * a, te * b, 2.0.squareRoot() * u32 * (abs(b * cs) + abs(a * sn)))
                }
            }
        }
        return y
    }

    func visible(_ row: Int, _ t: Int, _ j: Int) -> Bool {
        j <= t && j >= Int(batch.segStart[row * batch.length + t])
    }

    /// One head's rows of a [N, heads·hd] matrix, as a T×hd matrix.
    func slice(_ x: Rounded, row b: Int, head h: Int, heads: Int) -> Rounded {
        let T = batch.length, hd = c.headDim
        var s = Rounded(zeros: T * hd)
        for t in 0..<T {
            for d in 0..<hd {
                let j = ((b * T + t) * heads + h) * hd + d
                s.v[t * hd + d] = x.v[j]
                s.sd[t * hd + d] = x.sd[j]
            }
        }
        return s
    }

    func unslice(_ s: Rounded, into x: inout Rounded, row b: Int, head h: Int, heads: Int) {
        let T = batch.length, hd = c.headDim
        for t in 0..<T {
            for d in 0..<hd {
                let j = ((b * T + t) * heads + h) * hd + d
                x.v[j] = s.v[t * hd + d]
                x.sd[j] = s.sd[t * hd + d]
            }
        }
    }

    var scale: Double { 1 / Double(c.headDim).squareRoot() }

    /// softmax(q kᵀ·scale + mask) v per row and head. Scores: the product's error times scale, plus 2u|s| (the
    /// float32 scale and the multiply). Softmax: δp_j = p_j(δs_j − Σ p_i δs_i) with δs_j including u|s_j − max| (the
    /// rounded exponent), plus exp (2u), the same 2u through the (double) sum, the reciprocal and the multiply.
    func attention(_ q: Rounded, _ k: Rounded, _ v: Rounded) -> ([Rounded], Rounded) {
        let T = batch.length, hd = c.headDim, H = c.numHeads, G = c.numKVHeads
        var probs: [Rounded] = []
        var y = Rounded(zeros: N * H * hd)
        for b in 0..<batch.rows {
            for h in 0..<H {
                let g = h / (H / G)
                let Q = slice(q, row: b, head: h, heads: H), K = slice(k, row: b, head: g, heads: G)
                let V = slice(v, row: b, head: g, heads: G)
                let S = product(Q, K, m: T, n: T, k: hd, tb: true)
                var P = Rounded(zeros: T * T)
                for t in 0..<T {
                    let js = (0..<T).filter { visible(b, t, $0) }
                    var s = [Double](repeating: 0, count: T), es = s
                    for j in js {
                        let x = t * T + j
                        s[j] = S.v[x] * scale
                        es[j] = rss(scale * S.carried[x].squareRoot(), scale * Double(hd).squareRoot() * u32 * S.magnitude[x], 2 * u32 * s[j])
                    }
                    let mx = js.map { s[$0] }.max()!
                    let z = js.reduce(0.0) { $0 + exp(s[$1] - mx) }
                    for j in js { es[j] = rss(es[j], u32 * (s[j] - mx)) }
                    var common = 0.0  // Σ p_i² sd_i²
                    for j in js {
                        P.v[t * T + j] = exp(s[j] - mx) / z
                        common += pow(P.v[t * T + j] * es[j], 2)
                    }
                    for j in js {
                        let p = P.v[t * T + j]
                        let sum = loomKernels ? 0 : Double(js.count).squareRoot() * u32
                        P.sd[t * T + j] = p * rss(es[j], common.squareRoot(), 2 * u32, 2 * u32, u32, u32, sum)
                    }
                }
                probs.append(P)
                let Y = accumulate([product(P, V, m: T, n: hd, k: T)])
                unslice(Y, into: &y, row: b, head: h, heads: H)
            }
        }
        return (probs, y)
    }

    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// silu(g)·up: the inputs' errors through silu', and exp (2u), add, divide and two multiplies.
    func swiglu(_ g: Rounded, _ u: Rounded) -> Rounded {
        var a = Rounded(zeros: g.count)
        for i in 0..<g.count {
            let x = g.v[i], s = sigmoid(x), silu = x * s, d1 = s * (1 + x * (1 - s))
            a.v[i] = silu * u.v[i]
            a.sd[i] = rss(d1 * u.v[i] * g.sd[i], silu * u.sd[i], 6 * u32 * a.v[i])
        }
        return a
    }

    // MARK: Loss

    /// Σ_t weights[t]·CE_t over positions with a target, and d/dlogits = weights[t]·(softmax − onehot). A token's CE
    /// moves by Σ_i p_i δz_i − δz_y; δz_i includes the logits' error, u|z_i − max| (the rounded exponent) and 2u
    /// (exp); the sum and the logs are in double. d/dlogits adds the reciprocal, the weight and the multiply (3u),
    /// and u for the subtraction at the target. `weightErrors` are the weights' own error scales. Returns the loss
    /// and its error scale, and per position log p(target) (one more rounding where it is stored as float32).
    @discardableResult
    func crossEntropy(targets: [Int32], weights: [Double], weightErrors: [Double]? = nil) -> (loss: Double, sd: Double, logps: Rounded) {
        let V = c.vocabSize
        dlogits = Rounded(zeros: logits.count)
        var logps = Rounded(zeros: N)
        var loss = 0.0, variance = 0.0
        for n in 0..<N where targets[n] >= 0 {
            let y = Int(targets[n]), o = n * V
            let z = Array(logits.v[o..<o + V])
            let mx = z.max()!
            let zs = z.reduce(0.0) { $0 + exp($1 - mx) }
            var e1 = [Double](repeating: 0, count: V), common = 0.0
            var p = e1
            for i in 0..<V {
                p[i] = exp(z[i] - mx) / zs
                e1[i] = rss(logits.sd[o + i], u32 * (z[i] - mx), 2 * u32)
                if i != y { common += pow(p[i] * e1[i], 2) }
            }
            // −log p_y = lse − z_y moves by Σ_{i≠y} p_i δz_i − (1 − p_y) δz_y.
            let ce = mx + log(zs) - z[y]
            let sce = rss(common.squareRoot(), (1 - p[y]) * e1[y])
            logps.v[n] = -ce
            logps.sd[n] = rss(sce, u32 * ce)
            let wt = weights[n], ew = weightErrors?[n] ?? 0
            loss += wt * ce
            variance += pow(wt * sce, 2) + pow(ew * ce, 2)
            let allCommon = (common + pow(p[y] * e1[y], 2)).squareRoot()
            for i in 0..<V {
                let d = wt * (p[i] - (i == y ? 1 : 0))
                dlogits.v[o + i] = d
                dlogits.sd[o + i] = rss(
                    wt * p[i] * rss(e1[i], allCommon, 3 * u32), ew * (p[i] - (i == y ? 1 : 0)), u32 * d)
            }
        }
        return (loss, variance.squareRoot(), logps)
    }

    // MARK: Backward

    /// Every parameter's gradient of the last `crossEntropy`, in `grads`.
    func backward() {
        let D = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize
        let qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        grads = [:]
        let headGrad = accumulate([product(dlogits, lnf, m: V, n: D, k: N, ta: true)])
        let dlnf = accumulate([product(dlogits, weight(headName), m: N, n: D, k: V)])
        var (dres, dnorm) = rmsnormBackward(dlnf, resid[c.numLayers], rstdf, weight("model.norm.weight"))
        grads["model.norm.weight"] = dnorm
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let p = "model.layers.\(l)."
            grads[p + "mlp.down_proj.weight"] = accumulate([product(dres, act[l], m: D, n: I, k: N, ta: true)])
            let dact = accumulate([product(dres, weight(p + "mlp.down_proj.weight"), m: N, n: I, k: D)])
            let (dgate, dup) = swigluBackward(dact, gate[l], up[l])
            grads[p + "mlp.gate_proj.weight"] = accumulate([product(dgate, ln2[l], m: I, n: D, k: N, ta: true)])
            grads[p + "mlp.up_proj.weight"] = accumulate([product(dup, ln2[l], m: I, n: D, k: N, ta: true)])
            let dln2 = accumulate([
                product(dgate, weight(p + "mlp.gate_proj.weight"), m: N, n: D, k: I),
                product(dup, weight(p + "mlp.up_proj.weight"), m: N, n: D, k: I),
            ])
            let (dx2, dw2) = rmsnormBackward(dln2, resid2[l], rstd2[l], weight(p + "post_attention_layernorm.weight"))
            grads[p + "post_attention_layernorm.weight"] = dw2
            dres = dres + dx2
            grads[p + "self_attn.o_proj.weight"] = accumulate([product(dres, atty[l], m: D, n: qd, k: N, ta: true)])
            let datty = accumulate([product(dres, weight(p + "self_attn.o_proj.weight"), m: N, n: qd, k: D)])
            var (dq, dk, dv) = attentionBackward(l, datty)
            dq = rope(dq, c.numHeads, inverse: true)
            dk = rope(dk, c.numKVHeads, inverse: true)
            grads[p + "self_attn.q_proj.weight"] = accumulate([product(dq, ln1[l], m: qd, n: D, k: N, ta: true)])
            grads[p + "self_attn.k_proj.weight"] = accumulate([product(dk, ln1[l], m: kvd, n: D, k: N, ta: true)])
            grads[p + "self_attn.v_proj.weight"] = accumulate([product(dv, ln1[l], m: kvd, n: D, k: N, ta: true)])
            let dln1 = accumulate([
                product(dq, weight(p + "self_attn.q_proj.weight"), m: N, n: D, k: qd),
                product(dk, weight(p + "self_attn.k_proj.weight"), m: N, n: D, k: kvd),
                product(dv, weight(p + "self_attn.v_proj.weight"), m: N, n: D, k: kvd),
            ])
            let (dx1, dw1) = rmsnormBackward(dln1, resid[l], rstd1[l], weight(p + "input_layernorm.weight"))
            grads[p + "input_layernorm.weight"] = dw1
            dres = dres + dx1
        }
        // Embedding rows: the positions holding each token added in turn (onto the head's gradient when tied): one
        // float32 sum of count (+1) terms.
        let tied = c.tieWordEmbeddings
        var embed = tied ? headGrad : Rounded(zeros: V * D)
        var variance = embed.sd.map { $0 * $0 }
        var magnitude = tied ? headGrad.v.map(abs) : [Double](repeating: 0, count: V * D)
        var count = [Int](repeating: 0, count: V)
        for n in 0..<N {
            let t = Int(batch.tokens[n])
            count[t] += 1
            for i in 0..<D {
                embed.v[t * D + i] += dres.v[n * D + i]
                variance[t * D + i] += pow(dres.sd[n * D + i], 2)
                magnitude[t * D + i] += abs(dres.v[n * D + i])
            }
        }
        for t in 0..<V where count[t] > 0 {
            let terms = Double(count[t] + (tied ? 1 : 0))
            for i in 0..<D { embed.sd[t * D + i] = (variance[t * D + i] + terms * pow(u32 * magnitude[t * D + i], 2)).squareRoot() }
        }
        grads["model.embed_tokens.weight"] = embed
        if !tied { grads["lm_head.weight"] = headGrad }
    }

    /// RMSNorm backward per row: x̂ = x·r, a = dy·w, dx = r·(a − x̂·mean(a·x̂)), dw = Σ_rows dy·x̂. Each line's
    /// inputs' errors through its derivative, plus its own roundings (the mean is a double sum, rounded once; dw is
    /// a float32 sum of n products).
    func rmsnormBackward(_ dy: Rounded, _ x: Rounded, _ r: Rounded, _ wt: Rounded) -> (Rounded, Rounded) {
        let D = c.hiddenSize, n = x.count / D
        var dx = Rounded(zeros: x.count)
        var dw = Rounded(zeros: D), dwVar = [Double](repeating: 0, count: D), dwMag = dwVar
        for row in 0..<n {
            let rv = r.v[row], er = r.sd[row]
            var xh = [Double](repeating: 0, count: D), exh = xh, a = xh, ea = xh
            var dot = 0.0, vdot = 0.0
            for i in 0..<D {
                let j = row * D + i
                xh[i] = x.v[j] * rv
                exh[i] = rss(rv * x.sd[j], x.v[j] * er, u32 * xh[i])
                a[i] = dy.v[j] * wt.v[i]
                ea[i] = rss(wt.v[i] * dy.sd[j], dy.v[j] * wt.sd[i], u32 * a[i])
                dot += a[i] * xh[i]
                vdot += pow(a[i] * exh[i], 2) + pow(ea[i] * xh[i], 2)
                dw.v[i] += dy.v[j] * xh[i]
                dwVar[i] += pow(dy.sd[j] * xh[i], 2) + pow(dy.v[j] * exh[i], 2)
                dwMag[i] += abs(dy.v[j] * xh[i])
            }
            let mean = dot / Double(D), emean = rss(vdot.squareRoot() / Double(D), 2 * u32 * mean)
            for i in 0..<D {
                let j = row * D + i, inner = a[i] - xh[i] * mean
                dx.v[j] = rv * inner
                dx.sd[j] = rss(rv * ea[i], rv * exh[i] * mean, rv * xh[i] * emean, er * inner, rv * u32 * xh[i] * mean, 2 * u32 * rv * inner)
            }
        }
        // Loom adds per-thread partial sums: one sum of n (+1) products in some order.
        for i in 0..<D { dw.sd[i] = (dwVar[i] + Double(n + 1) * pow(u32 * dwMag[i], 2)).squareRoot() }
        return (dx, dw)
    }

    /// d silu(g)·up: dup = d·silu(g), dgate = d·up·silu'(g), with silu' = σ(1 + g(1 − σ)), silu'' = σ(1 − σ)(2 +
    /// g(1 − 2σ)). The rounding of silu' as Loom computes it: σ within 4u, 1 − σ within 4uσ + u|1 − σ| absolute, then
    /// four more steps.
    func swigluBackward(_ d: Rounded, _ g: Rounded, _ u: Rounded) -> (Rounded, Rounded) {
        var dg = Rounded(zeros: d.count), du = Rounded(zeros: d.count)
        for i in 0..<d.count {
            let x = g.v[i], s = sigmoid(x), silu = x * s
            let d1 = s * (1 + x * (1 - s)), d2 = s * (1 - s) * (2 + x * (1 - 2 * s))
            let dv = d.v[i], uv = u.v[i]
            du.v[i] = dv * silu
            du.sd[i] = rss(silu * d.sd[i], dv * d1 * g.sd[i], 6 * u32 * du.v[i])
            dg.v[i] = dv * uv * d1
            let d1Rounding = s * abs(x) * (4 * u32 * s + 2 * u32 * abs(1 - s)) + s * u32 * abs(1 + x * (1 - s)) + 8 * u32 * abs(d1)
            dg.sd[i] = rss(uv * d1 * d.sd[i], dv * d1 * u.sd[i], dv * uv * d2 * g.sd[i], dv * uv * d1Rounding, 2 * u32 * dg.v[i])
        }
        return (dg, du)
    }

    /// dV = Pᵀ dY, dP = dY Vᵀ, dS = scale·P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS K, dK = dSᵀ Q; the query heads of one KV
    /// head add into its dK and dV (one sum over all their rows). The row sum is in double, rounded once; dS adds a
    /// subtraction, two multiplies and the float32 scale.
    func attentionBackward(_ l: Int, _ dy: Rounded) -> (Rounded, Rounded, Rounded) {
        let T = batch.length, hd = c.headDim, H = c.numHeads, G = c.numKVHeads, per = H / G
        var dq = Rounded(zeros: N * H * hd), dk = Rounded(zeros: N * G * hd), dv = dk
        for b in 0..<batch.rows {
            for g in 0..<G {
                let K = slice(k[l], row: b, head: g, heads: G), V = slice(v[l], row: b, head: g, heads: G)
                var dKs: [Product] = [], dVs: [Product] = []
                for h in (g * per)..<((g + 1) * per) {
                    let P = att[l][b * H + h], dY = slice(dy, row: b, head: h, heads: H)
                    let Q = slice(q[l], row: b, head: h, heads: H)
                    dVs.append(product(P, dY, m: T, n: hd, k: T, ta: true))
                    let dP = accumulate([product(dY, V, m: T, n: T, k: hd, tb: true)])
                    var dS = Rounded(zeros: T * T)
                    for t in 0..<T {
                        let js = (0..<T).filter { visible(b, t, $0) }
                        var dot = 0.0, vdot = 0.0
                        for j in js {
                            let x = t * T + j
                            dot += P.v[x] * dP.v[x]
                            vdot += pow(P.sd[x] * dP.v[x], 2) + pow(P.v[x] * dP.sd[x], 2)
                        }
                        let edot = rss(vdot.squareRoot(), u32 * dot)
                        for j in js {
                            let x = t * T + j, inner = dP.v[x] - dot
                            dS.v[x] = scale * P.v[x] * inner
                            dS.sd[x] = scale * rss(P.sd[x] * inner, P.v[x] * dP.sd[x], P.v[x] * edot, 4 * u32 * P.v[x] * inner)
                        }
                    }
                    unslice(accumulate([product(dS, K, m: T, n: hd, k: T)]), into: &dq, row: b, head: h, heads: H)
                    dKs.append(product(dS, Q, m: T, n: hd, k: T, ta: true))
                }
                unslice(accumulate(dKs), into: &dk, row: b, head: g, heads: G)
                unslice(accumulate(dVs), into: &dv, row: b, head: g, heads: G)
            }
        }
        return (dq, dk, dv)
    }
}

// MARK: - AdamW

/// How far Loom's float32 AdamW can be from torch's float64 one (fixture README: decoupled decay, then
/// p −= lr·m̂/(√v̂ + eps), m̂ = Σ_s a_s g_s, v̂ = Σ_s b_s g_s², a_s = (1−β1)β1^(t−s)/(1−β1^t), b_s likewise with β2),
/// when each step's gradient may be off by a known amount.
struct AdamWBound {
    var lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8
    /// Per step so far: the gradient Loom used, and a bound on its distance from the reference's gradient.
    var gradients: [[Float]] = []
    var radii: [[Double]] = []

    /// |m̂| ≤ C_t·√v̂ by Cauchy–Schwarz, C_t = sqrt(Σ a_s²/b_s) (1 at step 1, 1.002 at step 3): no update of
    /// either side exceeds lr·C_t, whatever the gradients.
    var cap: Double {
        let t = gradients.count
        var c = 0.0
        for s in 1...t {
            let a = (1 - beta1) * pow(beta1, Double(t - s)) / (1 - pow(beta1, Double(t)))
            let b = (1 - beta2) * pow(beta2, Double(t - s)) / (1 - pow(beta2, Double(t)))
            c += a * a / b
        }
        return lr * c.squareRoot()
    }

    /// The largest change of the latest step's update for entry j over all gradient histories within the radii:
    /// lr·m̂/(√v̂ + eps) evaluated on intervals (m̂ ± Σ a_s Δ_s; v̂ from (|g_s| ∓ Δ_s)²), capped at lr·C_t. Where
    /// Δ_s ≪ |g_s| this is ≈ lr·Δ·eps/(|g| + eps)² at step 1; where |g| is at the level of Δ it reaches the cap:
    /// Adam's g/(|g| + eps) turns any doubt about a tiny gradient's sign into a doubt of ±lr.
    func deviation(_ j: Int) -> Double {
        let t = gradients.count
        var m = 0.0, rm = 0.0, v = 0.0, vlo = 0.0, vhi = 0.0
        for s in 1...t {
            let a = (1 - beta1) * pow(beta1, Double(t - s)) / (1 - pow(beta1, Double(t)))
            let b = (1 - beta2) * pow(beta2, Double(t - s)) / (1 - pow(beta2, Double(t)))
            let g = Double(gradients[s - 1][j]), d = radii[s - 1][j]
            m += a * g
            rm += a * d
            v += b * g * g
            vlo += b * pow(max(0, abs(g) - d), 2)
            vhi += b * pow(abs(g) + d, 2)
        }
        let center = lr * m / (v.squareRoot() + eps)
        let (nlo, nhi) = (m - rm, m + rm), (dlo, dhi) = (vlo.squareRoot() + eps, vhi.squareRoot() + eps)
        let lo = lr * (nlo >= 0 ? nlo / dhi : nlo / dlo), hi = lr * (nhi >= 0 ? nhi / dlo : nhi / dhi)
        let c = cap
        return max(abs(min(hi, c) - center), abs(max(lo, -c) - center))
    }

    /// Loom's own rounding in one step against the exact formula with torch's float64 constants (worst case, it is
    /// Loom's own C loop): the decay, ≤ 1.5u·|p| (the float32 constant 1 − lr·wd within u/2, then the multiply), the
    /// final subtraction, ≤ u·|p|, and the update, ≤ 32u·lr (about a dozen roundings of the moments, the bias
    /// corrections and the division, each ≤ u of a quantity ≤ lr·C_t, plus the float32 β1, β2, lr, eps, whose
    /// representation errors reach 4u in 1 − β and 6u in 1 − β^t).
    func rounding(before: Float, after: Float) -> Double { u32 * (2 * Double(abs(before)) + Double(abs(after))) + 32 * u32 * lr }
}

// MARK: - Comparisons

/// Asserts |got − want| ≤ bound entry by entry; returns the largest |got − want| / bound (the margin, ≤ 1 passes).
@discardableResult
func assertWithinBound(
    _ got: [Double], _ want: [Double], _ bound: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line
) -> Double {
    precondition(got.count == want.count && want.count == bound.count)
    var worst = 0.0, at = 0
    for i in 0..<got.count where got[i] != want[i] {
        let r = abs(got[i] - want[i]) / bound[i]
        if r.isNaN || r > worst { (worst, at) = (r, i) }
        if r.isNaN { break }
    }
    XCTAssertLessThanOrEqual(
        worst, 1, "\(what): entry \(at) is \(got[at]), expected \(want[at]) within \(bound[at])", file: file, line: line)
    return worst
}

func doubles(_ x: [Float]) -> [Double] { x.map(Double.init) }

/// The fixture's stored value is its float64 reference rounded to float32: within u·|value| (half an ulp).
func storageBound(_ x: Float) -> Double { u32 * Double(abs(x)) }
