// MinHash signatures and LSH banding.

import CLoomKernels
import LoomCore

/// `numPerm` seeded hash functions h_p(x) = ((a_p * x + b_p) mod 2^64) >> 32 over 32-bit shingle keys
/// (Dietzfelbinger's multiply-add-shift, 2-independent). A signature is the minimum of each over a document's
/// shingles; two signatures agree in a slot with probability about the Jaccard similarity of the shingle sets.
public struct MinHasher: Sendable {
    public let numPerm: Int
    public let seed: UInt64
    let a: [UInt64]
    let b: [UInt64]

    public init(numPerm: Int, seed: UInt64) {
        self.numPerm = numPerm
        self.seed = seed
        var g = SplitMix64(seed: seed)
        var a: [UInt64] = []
        var b: [UInt64] = []
        for _ in 0..<numPerm {
            a.append(g.next())
            b.append(g.next())
        }
        self.a = a
        self.b = b
    }

    /// The 32-bit key a 64-bit shingle hash is hashed from.
    @inline(__always) static func key(_ h: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: h ^ (h >> 32)) }

    /// Writes the signature of `shingles` (64-bit hashes) to `sig[0..<numPerm]`. `keys` is scratch space.
    public func signature(
        _ shingles: UnsafeBufferPointer<UInt64>, keys: inout [UInt32], into sig: UnsafeMutablePointer<UInt32>,
        reference: Bool = false
    ) {
        sig.update(repeating: .max, count: numPerm)
        keys.removeAll(keepingCapacity: true)
        for h in shingles { keys.append(MinHasher.key(h)) }
        keys.withUnsafeBufferPointer { k in
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    if reference {
                        loom_minhash_update_reference(k.baseAddress, k.count, a.baseAddress, b.baseAddress, sig, numPerm)
                    } else {
                        loom_minhash_update(k.baseAddress, k.count, a.baseAddress, b.baseAddress, sig, numPerm)
                    }
                }
            }
        }
    }

    /// The fraction of equal slots: the MinHash estimate of Jaccard similarity.
    public static func estimate(_ x: UnsafePointer<UInt32>, _ y: UnsafePointer<UInt32>, numPerm: Int) -> Double {
        Double(loom_signature_matches(x, y, numPerm)) / Double(numPerm)
    }

    public static var kernelVariant: String { String(cString: loom_minhash_variant()) }
}

/// Bands x rows for locality-sensitive hashing: two documents become a candidate pair when all `rows` slots of at
/// least one of `bands` bands agree, which happens with probability 1 - (1 - s^rows)^bands at similarity s.
public struct LSHParameters: Equatable, Sendable, Codable {
    public var bands: Int
    public var rows: Int

    public init(bands: Int, rows: Int) {
        self.bands = bands
        self.rows = rows
    }

    /// The probability that a pair with Jaccard similarity `s` becomes a candidate.
    public func candidateProbability(_ s: Double) -> Double {
        1 - pow1(1 - pow1(s, rows), bands)
    }

    /// datasketch's method: the bands x rows (bands * rows <= numPerm) minimising
    /// fpWeight * (area under the candidate curve below the threshold) +
    /// fnWeight * (area above the curve above the threshold).
    public static func optimal(threshold t: Double, numPerm: Int, fpWeight: Double, fnWeight: Double)
        -> LSHParameters
    {
        // Composite Simpson's rule on fixed grids over [0, t] and [t, 1]; s^rows is computed once per rows value.
        // The curves are smooth: 200 intervals agree with adaptive quadrature (scipy) to 1e-9.
        let n = 200
        let below = (0...n).map { t * Double($0) / Double(n) }
        let above = (0...n).map { t + (1 - t) * Double($0) / Double(n) }
        let weight = (0...n).map { $0 == 0 || $0 == n ? 1.0 : ($0 % 2 == 1 ? 4.0 : 2.0) }
        var best = LSHParameters(bands: 1, rows: 1)
        var bestError = Double.infinity
        for r in 1...numPerm {
            let belowR = below.map { pow1($0, r) }
            let aboveR = above.map { pow1($0, r) }
            for b in 1...(numPerm / r) {
                var fp = 0.0
                var fn = 0.0
                for i in 0...n {
                    fp += weight[i] * (1 - pow1(1 - belowR[i], b))
                    fn += weight[i] * pow1(1 - aboveR[i], b)
                }
                let e = fpWeight * fp * (t / Double(n) / 3) + fnWeight * fn * ((1 - t) / Double(n) / 3)
                if e < bestError {
                    bestError = e
                    best = LSHParameters(bands: b, rows: r)
                }
            }
        }
        return best
    }
}

@inline(__always) func pow1(_ x: Double, _ n: Int) -> Double {
    var r = 1.0
    var b = x
    var e = n
    while e > 0 {
        if e & 1 == 1 { r *= b }
        b *= b
        e >>= 1
    }
    return r
}
