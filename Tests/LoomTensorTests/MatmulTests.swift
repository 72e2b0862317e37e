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
                    for i in c.indices { XCTAssertEqual(c[i], r[i], accuracy: 1e-4 * Float(k), "\(m)x\(n)x\(k) \(ta) \(tb)") }
                }
            }
        }
        XCTAssertFalse(Matmul.coreName.isEmpty)
    }
}
