// Eigen-decomposition of a symmetric matrix through LAPACK's ssyevd (divide and conquer), which OpenBLAS carries.
// Used for principal components (the reduced space the approximate neighbour index searches in).

import COpenBLAS
import LoomCore

public enum SymmetricEigen {
    /// Eigenvalues (ascending) and unit eigenvectors of the symmetric n x n matrix `a` (row-major; only its upper
    /// triangle is read). `vectors[i * n + j]` is component j of the eigenvector of `values[i]`.
    public static func decompose(_ a: [Float], n: Int) throws -> (values: [Float], vectors: [Float]) {
        guard n > 0, a.count == n * n else { throw LoomError("eigen-decomposition: \(a.count) values for a \(n) x \(n) matrix") }
        // Row-major upper triangle = column-major lower triangle; LAPACK writes the eigenvectors as columns of its
        // column-major result, which are the rows of the row-major buffer.
        var m = a
        var w = [Float](repeating: 0, count: n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var qwork: Float = 0
        var qiwork: Int32 = 0
        // Workspace query first, then the decomposition.
        ssyevd_("V", "L", &nn, &m, &lda, &w, &qwork, &lwork, &qiwork, &liwork, &info, 1, 1)
        guard info == 0 else { throw LoomError("eigen-decomposition: ssyevd workspace query failed (info \(info))") }
        lwork = Int32(qwork.rounded(.up))
        liwork = qiwork
        var work = [Float](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        ssyevd_("V", "L", &nn, &m, &lda, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
        guard info == 0 else { throw LoomError("eigen-decomposition of a \(n) x \(n) matrix did not converge (ssyevd info \(info))") }
        return (w, m)
    }
}
