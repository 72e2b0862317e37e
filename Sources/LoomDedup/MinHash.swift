// MinHash signatures and LSH banding.

import CLoomKernels

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
        var g = SplitMix64(state: seed)
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
        var best = LSHParameters(bands: 1, rows: 1)
        var bestError = Double.infinity
        for b in 1...numPerm {
            for r in 1...(numPerm / b) {
                let p = LSHParameters(bands: b, rows: r)
                let fp = integrate(0, t) { p.candidateProbability($0) }
                let fn = integrate(t, 1) { 1 - p.candidateProbability($0) }
                let e = fpWeight * fp + fnWeight * fn
                if e < bestError {
                    bestError = e
                    best = p
                }
            }
        }
        return best
    }

    /// Composite Simpson's rule; the curves are smooth, 200 intervals agree with adaptive quadrature to 1e-9.
    static func integrate(_ lo: Double, _ hi: Double, _ f: (Double) -> Double) -> Double {
        let n = 200
        let h = (hi - lo) / Double(n)
        var s = f(lo) + f(hi)
        for i in 1..<n { s += f(lo + Double(i) * h) * (i % 2 == 1 ? 4 : 2) }
        return s * h / 3
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
