// Threads for the trainer's kernels. OpenBLAS runs single-threaded (../shared/NATIVE.md: several Swift threads
// calling sgemm oversubscribe otherwise) and Loom splits each product and each row-wise kernel into contiguous
// ranges, one per thread. A split never changes which elements a thread computes in which order for a fixed
// thread count, so results are bit-identical run to run.

import COpenBLAS
import Dispatch

public enum Compute {
    /// Threads used by `parallel` and the split products. Set once before training (`configure`).
    nonisolated(unsafe) public private(set) static var threads = 1

    /// Sets the thread count and puts OpenBLAS on one thread.
    public static func configure(threads n: Int) {
        threads = max(1, n)
        openblas_set_num_threads(1)
    }

    /// Runs body on `count` items split into at most `threads` contiguous ranges of at least `grain` items.
    public static func parallel(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelParts(count, grain: grain) { _, r in body(r) }
    }

    /// As `parallel`, with each range's part index (0 ..< threads, distinct across the ranges of one call): for
    /// per-thread partial results that are then added in part order.
    public static func parallelParts(_ count: Int, grain: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let parts = min(threads, max(1, count / max(1, grain)))
        if parts <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let b = UnsafeBody(body)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = count * p / parts, hi = count * (p + 1) / parts
                if lo < hi { b.body(p, lo..<hi) }
            }
        }
    }

    /// Σ body(range) over `parallel`'s ranges, added in range order (bit-identical run to run).
    public static func parallelSum(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Double) -> Double {
        var partial = [Double](repeating: 0, count: threads)
        partial.withUnsafeMutableBufferPointer { pb in
            let pp = pb.baseAddress!
            parallelParts(count, grain: grain) { p, r in pp[p] = body(r) }
        }
        return partial.reduce(0, +)
    }

    struct UnsafeBody: @unchecked Sendable {
        let body: (Int, Range<Int>) -> Void
        init(_ body: @escaping (Int, Range<Int>) -> Void) { self.body = body }
    }
}
