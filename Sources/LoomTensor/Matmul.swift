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

extension Matmul {
    /// C[m x n] = alpha * op(A) op(B) + beta * C with explicit leading dimensions (row-major), so blocks inside
    /// larger matrices (one attention head's columns) multiply without copies.
    public static func gemm(
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>,
        ldc: Int, m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1,
        beta: Float = 0
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `gemm` split across `Compute.threads`: by rows of C when there are enough, else by columns. Contiguous
    /// matrices (lda/ldb/ldc from the shapes).
    public static func parallelGemm(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int,
        transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        let lda = transposeA ? m : k, ldb = transposeB ? k : n
        if Compute.threads <= 1 || m * n * k < 1 << 18 {
            gemm(a, lda: lda, b, ldb: ldb, c, ldc: n, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                alpha: alpha, beta: beta)
            return
        }
        if m >= n || m >= 64 * Compute.threads {
            // Split rows of C: rows of op(A), i.e. rows of A, or columns of A when transposed.
            Compute.parallel(m, grain: 16) { r in
                let ap = transposeA ? a + r.lowerBound : a + r.lowerBound * lda
                gemm(ap, lda: lda, b, ldb: ldb, c + r.lowerBound * n, ldc: n, m: r.count, n: n, k: k,
                    transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
            }
        } else {
            Compute.parallel(n, grain: 16) { r in
                let bp = transposeB ? b + r.lowerBound * ldb : b + r.lowerBound
                gemm(a, lda: lda, bp, ldb: ldb, c + r.lowerBound, ldc: n, m: m, n: r.count, k: k,
                    transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
            }
        }
    }
}
