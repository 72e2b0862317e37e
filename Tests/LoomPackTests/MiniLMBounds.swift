// Where the MiniLM tests get their tolerances: the encoder (MiniLM.swift's forward) again in float64, carrying beside
// every value the scale `sd` of the error Loom's float32 evaluation makes: the probabilistic running error analysis
// of LoomTrainTests/ErrorBounds.swift (Higham & Mary, SIAM J. Sci. Comput. 41, 2019). Each rounding is independent,
// mean zero, at most u = 2^-24; a sum of n products in any order (BLAS, or the reassociated and AVX-512 or baseline
// loops of CLoomKernels) adds √n·u·Σ|a_i b_i|; inputs' errors are carried through first derivatives and combined in
// quadrature. Loom's own approximations count like roundings of their size: erf within 5e-7 (Abramowitz & Stegun
// 7.1.26 is within 1.5e-7; float32 evaluation adds the rest, as BertKernelTests checks) and exp within 4e-7
// relative (the Cephes polynomial, checked likewise). A tolerance is λ·sd, λ = 8 (a false alarm ≤ 2·exp(−32)).

import COpenBLAS
import Foundation

@testable import LoomPack

let u32 = 0x1p-24
let lambda = 8.0
let erfError = 5e-7, expError = 4e-7

func rss(_ xs: Double...) -> Double { xs.reduce(0) { $0 + $1 * $1 }.squareRoot() }

/// Exact values and the scale of a float32 evaluation's error, entry by entry.
struct Rounded {
    var v: [Double]
    var sd: [Double]
    init(zeros n: Int) {
        v = [Double](repeating: 0, count: n)
        sd = v
    }
}

/// A·Bᵀ in float64, row-major: A is m×k, B is n×k.
func dgemmT(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
    return c
}

/// The float64 MiniLM encoder of one sentence with error scales.
struct MiniLMReference {
    let m: MiniLMEmbedder

    /// x·Wᵀ (W [n, k], exact): the input's error carried (sd_x²·W²), and √k·u·|x|·|W| for the sum's rounding.
    func linear(_ x: Rounded, rows: Int, k: Int, _ w: [Float], n: Int) -> Rounded {
        let wd = w.map(Double.init)
        var y = Rounded(zeros: rows * n)
        y.v = dgemmT(x.v, wd, m: rows, n: n, k: k)
        let carried = dgemmT(x.sd.map { $0 * $0 }, wd.map { $0 * $0 }, m: rows, n: n, k: k)
        let mag = dgemmT(x.v.map(abs), wd.map(abs), m: rows, n: n, k: k)
        for i in y.v.indices { y.sd[i] = (carried[i] + Double(k) * pow(u32 * mag[i], 2)).squareRoot() }
        return y
    }

    /// Loom's loom_add_layernorm: v = x + bias + res (two adds), mean and variance as float32 sums, then
    /// (v − mean)·inv·γ + β. Inputs' errors through the normalisation's Jacobian (δv − mean(δv) − x̂·mean(x̂ δv));
    /// the mean's rounding shifts every entry, the variance's scales them by half its relative error.
    func layerNorm(_ x: Rounded, bias: [Float]?, res: Rounded?, _ g: [Float], _ b: [Float], rows: Int) -> Rounded {
        let h = m.config.hidden, eps = Double(m.config.eps)
        var y = Rounded(zeros: rows * h)
        for r in 0..<rows {
            var v = [Double](repeating: 0, count: h), sv = v
            for c in 0..<h {
                let j = r * h + c
                let partial = x.v[j] + Double(bias?[c] ?? 0)
                v[c] = partial + (res?.v[j] ?? 0)
                sv[c] = rss(x.sd[j], res?.sd[j] ?? 0, u32 * partial, u32 * v[c])
            }
            let mean = v.reduce(0, +) / Double(h)
            let d = v.map { $0 - mean }
            let variance = d.reduce(0) { $0 + $1 * $1 } / Double(h)
            let inv = 1 / (variance + eps).squareRoot()
            let xh = d.map { $0 * inv }
            let meanErr = rss(Double(h).squareRoot() * u32 * v.reduce(0) { $0 + abs($1) } / Double(h), u32 * mean)
            let varRel = rss(Double(h).squareRoot() * u32, 2 * u32)
            let sumSq = sv.reduce(0) { $0 + $1 * $1 }.squareRoot() / Double(h)
            let proj = zip(xh, sv).reduce(0) { $0 + pow($1.0 * $1.1, 2) }.squareRoot() / Double(h)
            for c in 0..<h {
                let gi = Double(g[c]) * inv
                y.v[r * h + c] = xh[c] * Double(g[c]) + Double(b[c])
                y.sd[r * h + c] = rss(
                    gi * sv[c], gi * sumSq, gi * abs(xh[c]) * proj, gi * meanErr, xh[c] * Double(g[c]) * (0.5 * varRel + 2 * u32),
                    2 * u32 * d[c] * gi, u32 * y.v[r * h + c])
            }
        }
        return y
    }

    /// loom_attention for one sentence (t tokens): scores Σ_d (q_d·scale)·k_d, a softmax with Loom's exp, Σ_j p_j v_j.
    func attention(_ qkv: Rounded, t: Int) -> Rounded {
        let h = m.config.hidden, heads = m.config.heads, hd = h / heads, ld = 3 * h
        let scale = Double(1 / Float(hd).squareRoot())
        var out = Rounded(zeros: t * h)
        func slice(_ x: [Double], _ o: Int, _ f: (Double) -> Double) -> [Double] {
            (0..<t).flatMap { r in (0..<hd).map { f(x[r * ld + o + $0]) } }
        }
        for head in 0..<heads {
            let (qo, ko, vo) = (head * hd, h + head * hd, 2 * h + head * hd)
            let q = slice(qkv.v, qo) { $0 * scale }, sq = slice(qkv.sd, qo) { $0 * scale }
            let k = slice(qkv.v, ko) { $0 }, sk = slice(qkv.sd, ko) { $0 }
            let v = slice(qkv.v, vo) { $0 }, sv = slice(qkv.sd, vo) { $0 }
            let s = dgemmT(q, k, m: t, n: t, k: hd)
            let carried = zip(dgemmT(sq.map { $0 * $0 }, k.map { $0 * $0 }, m: t, n: t, k: hd), dgemmT(q.map { $0 * $0 }, sk.map { $0 * $0 }, m: t, n: t, k: hd)).map(+)
            let mag = dgemmT(q.map(abs), k.map(abs), m: t, n: t, k: hd)
            var p = [Double](repeating: 0, count: t * t), sp = p
            for i in 0..<t {
                let row = i * t..<(i + 1) * t
                let mx = s[row].max()!
                let z = s[row].reduce(0) { $0 + exp($1 - mx) }
                // The scores' errors (the product of q by the float32 scale rounds once more: hd + 1 terms), and the
                // rounded exponent.
                let ss = row.map { rss((carried[$0] + Double(hd + 1) * pow(u32 * mag[$0], 2)).squareRoot(), u32 * (s[$0] - mx)) }
                for j in 0..<t { p[i * t + j] = exp(s[i * t + j] - mx) / z }
                let common = (0..<t).reduce(0) { $0 + pow(p[i * t + $1] * ss[$1], 2) }.squareRoot()
                // Loom's exp: ≤ expError relative per term, also through the sum; the float32 sum of t terms, the
                // reciprocal and the multiply.
                for j in 0..<t {
                    sp[i * t + j] = p[i * t + j] * rss(ss[j], common, expError, expError, Double(t).squareRoot() * u32, 2 * u32)
                }
            }
            // Σ_j p_ij v_jd: P times V, with Vᵀ as dgemmT's second factor.
            let vt = (0..<hd).flatMap { d in (0..<t).map { v[$0 * hd + d] } }, svt = (0..<hd).flatMap { d in (0..<t).map { sv[$0 * hd + d] } }
            let o = dgemmT(p, vt, m: t, n: hd, k: t)
            let oc = zip(dgemmT(sp.map { $0 * $0 }, vt.map { $0 * $0 }, m: t, n: hd, k: t), dgemmT(p.map { $0 * $0 }, svt.map { $0 * $0 }, m: t, n: hd, k: t)).map(+)
            let om = dgemmT(p, vt.map(abs), m: t, n: hd, k: t)
            for i in 0..<t {
                for d in 0..<hd {
                    out.v[i * h + head * hd + d] = o[i * hd + d]
                    out.sd[i * h + head * hd + d] = (oc[i * hd + d] + Double(t) * pow(u32 * om[i * hd + d], 2)).squareRoot()
                }
            }
        }
        return out
    }

    /// The pooled, normalised vector of one sentence's ids, with error scales.
    func embed(_ ids: [Int32]) -> Rounded {
        let c = m.config, h = c.hidden, t = ids.count
        var x = Rounded(zeros: t * h)
        for (p, tok) in ids.enumerated() {
            for k in 0..<h {
                let wp = Double(m.word[Int(tok) * h + k]) + Double(m.position[p * h + k])
                x.v[p * h + k] = wp + Double(m.type0[k])
                x.sd[p * h + k] = rss(u32 * wp, u32 * x.v[p * h + k])
            }
        }
        x = layerNorm(x, bias: nil, res: nil, m.embG, m.embB, rows: t)
        for l in m.layers {
            var qkv = linear(x, rows: t, k: h, l.qkvW, n: 3 * h)
            for r in 0..<t {
                for k in 0..<3 * h {
                    qkv.v[r * 3 * h + k] += Double(l.qkvB[k])
                    qkv.sd[r * 3 * h + k] = rss(qkv.sd[r * 3 * h + k], u32 * qkv.v[r * 3 * h + k])
                }
            }
            let ctx = attention(qkv, t: t)
            x = layerNorm(linear(ctx, rows: t, k: h, l.outW, n: h), bias: l.outB, res: x, l.ln1G, l.ln1B, rows: t)
            var mid = linear(x, rows: t, k: h, l.interW, n: c.intermediate)
            for r in 0..<t {
                for k in 0..<c.intermediate {
                    // GELU(v) = v·Φ(v) through Loom's erf: the input's error through GELU' = Φ(v) + v·φ(v), erf's
                    // own error times v/2, and the bias add and four more roundings.
                    let j = r * c.intermediate + k
                    let v = mid.v[j] + Double(l.interB[k])
                    let phi = exp(-v * v / 2) / (2 * Double.pi).squareRoot(), cdf = 0.5 * (1 + erf(v / 2.0.squareRoot()))
                    mid.v[j] = v * cdf
                    mid.sd[j] = rss((cdf + v * phi) * rss(mid.sd[j], u32 * v), 0.5 * abs(v) * erfError, 4 * u32 * abs(v))
                }
            }
            x = layerNorm(linear(mid, rows: t, k: c.intermediate, l.downW, n: h), bias: l.downB, res: x, l.ln2G, l.ln2B, rows: t)
        }
        // Mean over tokens and x / |x| in double, rounded once to float32: δe = (δm − e(e·δm))/|m|.
        var mean = [Double](repeating: 0, count: h), meanSD = mean
        for k in 0..<h {
            mean[k] = (0..<t).reduce(0) { $0 + x.v[$1 * h + k] } / Double(t)
            meanSD[k] = (0..<t).reduce(0) { $0 + pow(x.sd[$1 * h + k], 2) }.squareRoot() / Double(t)
        }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        var e = Rounded(zeros: h)
        e.v = mean.map { $0 / norm }
        let along = zip(e.v, meanSD).reduce(0) { $0 + pow($1.0 * $1.1, 2) }.squareRoot()
        for k in 0..<h { e.sd[k] = rss(meanSD[k] / norm, abs(e.v[k]) * along / norm, u32 * e.v[k]) }
        return e
    }
}
