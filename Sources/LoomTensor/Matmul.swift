// Matrix products through OpenBLAS (`cblas_sgemm`), on row-major Float32 buffers. The plain triple loop stays as
// the reference the tests check it against.

import COpenBLAS
import LoomCore

public enum Matmul {
    /// C[m x n] = alpha * op(A) op(B) + beta * C, row-major; op(X) is X or its transpose. A is m x k (k x m when
    /// transposed), B is k x n (n x k when transposed).
    public static func gemm(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int,
        transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(transposeA ? m : k), b, Int32(transposeB ? k : n), beta, c,
            Int32(n))
    }

    /// The reference: the same product by loops, in Double.
    public static func reference(
        _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false
    ) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * m + i] : a[i * k + p]
                    let y = transposeB ? b[j * k + p] : b[p * n + j]
                    s += Double(x) * Double(y)
                }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    /// OpenBLAS threads (1 when several Swift threads call gemm at once: ../shared/NATIVE.md).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The kernel OpenBLAS chose at load (e.g. "Haswell", "Cooperlake").
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
