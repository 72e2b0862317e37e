// The arithmetic of each merge method on one tensor, in place on Float buffers, with Double accumulation. The
// formulas are in docs/merging.md; they follow mergekit 0.1.5 where it differs from the papers.

import Foundation
import LoomCore

enum Kernels {
    /// Σ wᵢ xᵢ (÷ Σ wᵢ when normalizing), into `out` (which may be one of the inputs).
    static func linear(
        _ xs: [UnsafeBufferPointer<Float>], weights: [Double], normalize: Bool, into out: UnsafeMutableBufferPointer<Float>
    ) {
        let divisor = normalize ? weights.reduce(0, +) : 1
        let n = out.count
        let m = xs.count
        for i in 0..<n {
            var s = 0.0
            for j in 0..<m { s += weights[j] * Double(xs[j][i]) }
            out[i] = Float(s / divisor)
        }
    }

    /// Spherical interpolation of two flattened tensors (mergekit 0.1.5): norms ≤ 1e-8 count as 1; |cos| > 0.9995
    /// falls back to linear interpolation. Returns true when the spherical branch was taken.
    @discardableResult
    static func slerp(
        t: Double, _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>
    ) -> Bool {
        let n = out.count
        var aa = 0.0, bb = 0.0, ab = 0.0
        for i in 0..<n {
            let x = Double(a[i]), y = Double(b[i])
            aa += x * x
            bb += y * y
            ab += x * y
        }
        var na = aa.squareRoot(), nb = bb.squareRoot()
        if !(na > 1e-8) { na = 1 }
        if !(nb > 1e-8) { nb = 1 }
        let dot = min(1, max(-1, ab / (na * nb)))
        var ca = 1 - t, cb = t
        let spherical = n > 0 && abs(dot) <= 0.9995
        if spherical {
            let theta = acos(dot)
            let s = sin(theta)
            ca = sin((1 - t) * theta) / s
            cb = sin(t * theta) / s
        }
        for i in 0..<n { out[i] = Float(ca * Double(a[i]) + cb * Double(b[i])) }
        return spherical
    }

    /// Zeroes all but the `k` entries of largest magnitude (ties at the threshold: the first ones in order). An
    /// exact radix select on the magnitudes' bit patterns: three counting passes, no sort, no copy.
    static func keepLargest(_ x: UnsafeMutableBufferPointer<Float>, k: Int) {
        let n = x.count
        if k >= n { return }
        if k <= 0 {
            for i in 0..<n { x[i] = 0 }
            return
        }
        var prefix: UInt32 = 0
        var prefixMask: UInt32 = 0
        var remaining = k
        var hist = [Int](repeating: 0, count: 1 << 11)
        for (shift, bits) in [(UInt32(21), 11), (UInt32(10), 11), (UInt32(0), 10)] {
            let width = 1 << bits
            for i in 0..<width { hist[i] = 0 }
            let digitMask = UInt32(width - 1)
            hist.withUnsafeMutableBufferPointer { h in
                for i in 0..<n {
                    let b = x[i].bitPattern & 0x7FFF_FFFF
                    if b & prefixMask == prefix { h[Int((b >> shift) & digitMask)] += 1 }
                }
            }
            var bucket = width - 1
            while hist[bucket] < remaining {
                remaining -= hist[bucket]
                bucket -= 1
            }
            prefix |= UInt32(bucket) << shift
            prefixMask |= digitMask << shift
        }
        // `prefix` is now the k-th largest magnitude; `remaining` of the entries equal to it are kept.
        var equalLeft = remaining
        for i in 0..<n {
            let b = x[i].bitPattern & 0x7FFF_FFFF
            if b > prefix { continue }
            if b == prefix, equalLeft > 0 {
                equalLeft -= 1
                continue
            }
            x[i] = 0
        }
    }

    static func l1(_ x: UnsafeBufferPointer<Float>) -> Double {
        var s = 0.0
        for v in x { s += Double(abs(v)) }
        return s
    }

    /// mergekit's norm matching: ‖before‖₁ / ‖after‖₁, or 1 when either is below 1e-7.
    static func l1Scale(before: Double, after: Double) -> Double {
        before < 1e-7 || after < 1e-7 ? 1 : before / after
    }

    /// base + λ · mix(wᵢ · sᵢ · δᵢ) where δᵢ are the (already sparsified) task vectors and sᵢ their rescale factors.
    /// With `consensus` (TIES), each entry keeps only the weighted deltas whose sign matches the sign of their
    /// sum (sum ≥ 0 counts as +), and normalizing divides by the kept weights (0 → 1); without it, normalizing
    /// divides by Σ wᵢ (|Σ wᵢ| < 1e-8 → 1).
    static func taskArithmetic(
        base: UnsafeMutableBufferPointer<Float>, deltas: [UnsafeBufferPointer<Float>], weights: [Double],
        scales: [Double], consensus: Bool, normalize: Bool, lambda: Double
    ) {
        let n = base.count
        let m = deltas.count
        let w = zip(weights, scales).map { $0 * $1 }
        var plainDivisor = weights.reduce(0, +)
        if abs(plainDivisor) < 1e-8 { plainDivisor = 1 }
        var wd = [Double](repeating: 0, count: m)
        for i in 0..<n {
            var mixed = 0.0
            if consensus {
                var sum = 0.0
                for j in 0..<m {
                    wd[j] = w[j] * Double(deltas[j][i])
                    sum += wd[j]
                }
                let positive = sum >= 0
                var divisor = 0.0
                for j in 0..<m where (positive && wd[j] > 0) || (!positive && wd[j] < 0) {
                    mixed += wd[j]
                    divisor += weights[j]
                }
                if normalize { mixed /= divisor == 0 ? 1 : divisor }
            } else {
                for j in 0..<m { mixed += w[j] * Double(deltas[j][i]) }
                if normalize { mixed /= plainDivisor }
            }
            base[i] = Float(Double(base[i]) + lambda * mixed)
        }
    }

    // MARK: - Output dtypes

    /// Float to bfloat16 with round-to-nearest-even (as torch's `.to(torch.bfloat16)`), NaN kept quiet.
    @inline(__always) static func bf16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}
