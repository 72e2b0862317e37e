import LoomCore
import XCTest

@testable import LoomTensor

final class MatmulTests: XCTestCase {
    func testGemmMatchesTheReferenceInEveryLayout() {
        var rng = SplitMix64(seed: 11)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (64, 172, 64), (17, 31, 129)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float(rng.below(2001)) / 1000 - 1 }
                    let b = (0..<(k * n)).map { _ in Float(rng.below(2001)) / 1000 - 1 }
                    var c = [Float](repeating: 0, count: m * n)
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                Matmul.gemm(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, m: m, n: n, k: k, transposeA: ta, transposeB: tb)
                            }
                        }
                    }
                    let r = Matmul.reference(a, b, m: m, n: n, k: k, transposeA: ta, transposeB: tb)
                    let mag = Matmul.reference(a.map(abs), b.map(abs), m: m, n: n, k: k, transposeA: ta, transposeB: tb)
                    for i in c.indices {
                        // Worst case for a float32 sum of k products in any order, blocking or FMA: γ_k·Σ|a_i b_i|,
                        // γ_k = k·u/(1 − k·u) (Higham, Thm 3.5); plus the reference's own rounding to float32 (u·|r|).
                        let u = 0x1p-24, gamma = Double(k) * u / (1 - Double(k) * u)
                        XCTAssertEqual(Double(c[i]), Double(r[i]), accuracy: gamma * Double(mag[i]) * (1 + u) + u * Double(abs(r[i])), "\(m)x\(n)x\(k) \(ta) \(tb)")
                    }
                }
            }
        }
        XCTAssertFalse(Matmul.coreName.isEmpty)
    }
}
