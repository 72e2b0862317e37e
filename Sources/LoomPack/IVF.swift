// Approximate nearest neighbours for large corpora: an inverted-file index (IVF), as faiss's IndexIVFFlat.
// Spherical k-means (seeded, fixed iterations) on a sample gives `lists` unit centroids; every vector goes to the
// list of its nearest centroid, and each document's neighbours are searched in the `probes` lists whose centroids
// are nearest to it. Search is blocked matrix products: for each list, all documents that probe it (its visitors)
// against its members in one gemm. Every similarity computed is offered to both documents of the pair, so a pair is
// found when either one probes the other's list (on 100,000 MiniLM vectors: recall@10 0.90 -> 0.96 at the same
// cost). Each document keeps its top k by (similarity, then lower index), an order with a single answer, so the
// result does not depend on the number of threads.

import Foundation
import LoomCore
import LoomTensor

public struct IVFConfig: Codable, Equatable, Sendable {
    /// Inverted lists (k-means centroids); nil: sqrt(n), at least 1.
    public var lists: Int?
    /// Lists searched per document.
    public var probes = 16
    public var iterations = 10
    /// Training points per list (a seeded sample of the vectors).
    public var samplePerList = 32
    public var seed: UInt64 = 1
    /// Each computed similarity is offered to both documents of the pair (a pair is found when either one probes
    /// the other's list).
    public var symmetric = true

    public init() {}

    public func listCount(_ n: Int) -> Int { max(1, min(n, lists ?? Int(Double(n).squareRoot().rounded()))) }
}

public enum ApproximateNeighbours {
    /// Like Neighbours.exact, from an IVF index over the same vectors (unit rows of `dim`).
    public static func ivf(_ v: [Float], dim: Int, k: Int, config: IVFConfig = IVFConfig(), jobs: Int = 1) -> [[(index: Int, similarity: Float)]] {
        let n = v.count / dim
        guard n > 1 else { return Array(repeating: [], count: n) }
        let kk = min(k, n - 1)
        let nl = config.listCount(n)
        let probes = min(config.probes, nl)
        Matmul.setThreads(1)
        let centroids = kmeans(v, n: n, dim: dim, lists: nl, config: config, jobs: jobs)
        // Each vector's `probes` nearest lists, nearest first; its home list is the first.
        let near = nearestLists(v, n: n, dim: dim, centroids: centroids, lists: nl, count: probes, jobs: jobs)
        var members = [[Int32]](repeating: [], count: nl)
        var visitors = [[Int32]](repeating: [], count: nl)
        for q in 0..<n {
            members[Int(near[q * probes])].append(Int32(q))
            for p in 0..<probes { visitors[Int(near[q * probes + p])].append(Int32(q)) }
        }
        // Lists dealt round-robin to the workers, largest first; each worker keeps a top-k for every document.
        let work: [Int] = (0..<nl).map { visitors[$0].count * members[$0].count }
        let order: [Int] = (0..<nl).sorted { work[$0] != work[$1] ? work[$0] > work[$1] : $0 < $1 }
        let workers = max(1, min(jobs, nl))
        let groups: [[Int]] = (0..<workers).map { w in stride(from: w, to: order.count, by: workers).map { order[$0] } }
        let partial = (try? parallelMap(groups, jobs: workers) { (lists: [Int]) -> TopK in
            var top = TopK(n: n, k: kk)
            var a: [Float] = []
            var b: [Float] = []
            var sims: [Float] = []
            for l in lists {
                let mem = members[l], vis = visitors[l]
                guard !mem.isEmpty, !vis.isEmpty else { continue }
                gather(v, dim: dim, rows: mem, into: &b)
                // Visitors in blocks, so the similarity block stays small.
                let block = max(1, (1 << 20) / max(1, mem.count))
                var s = 0
                while s < vis.count {
                    let e = min(vis.count, s + block)
                    gather(v, dim: dim, rows: vis[s..<e], into: &a)
                    let rows = e - s
                    if sims.count < rows * mem.count { sims = [Float](repeating: 0, count: rows * mem.count) }
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            sims.withUnsafeMutableBufferPointer { sp in
                                Matmul.gemm(ap.baseAddress!, bp.baseAddress!, sp.baseAddress!, m: rows, n: mem.count, k: dim, transposeB: true)
                            }
                        }
                    }
                    top.offerBlock(sims: sims, rows: vis[s..<e], columns: mem, symmetric: config.symmetric)
                    s = e
                }
            }
            return top
        }) ?? []
        return TopK.lists(merging: partial, n: n, k: kk)
    }

    static func gather<C: Collection>(_ v: [Float], dim: Int, rows: C, into out: inout [Float]) where C.Element == Int32 {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(rows.count * dim)
        v.withUnsafeBufferPointer { p in
            for r in rows { out.append(contentsOf: UnsafeBufferPointer(rebasing: p[(Int(r) * dim)..<(Int(r) * dim + dim)])) }
        }
    }

    /// Spherical k-means on a seeded sample: unit centroids, `lists` x dim.
    static func kmeans(_ v: [Float], n: Int, dim: Int, lists: Int, config: IVFConfig, jobs: Int) -> [Float] {
        var rng = SplitMix64(seed: config.seed)
        var perm = Array(0..<n)
        let sampleCount = min(n, max(lists, lists * config.samplePerList))
        for i in 0..<sampleCount {
            let j = i + rng.below(n - i)
            perm.swapAt(i, j)
        }
        let sample = Array(perm[0..<sampleCount]).sorted().map { Int32($0) }
        var pts: [Float] = []
        gather(v, dim: dim, rows: sample, into: &pts)
        var cent: [Float] = []
        gather(pts, dim: dim, rows: (0..<lists).map { Int32($0 * sampleCount / lists) }, into: &cent)
        for _ in 0..<config.iterations {
            let assign = nearestLists(pts, n: sampleCount, dim: dim, centroids: cent, lists: lists, count: 1, jobs: jobs)
            var sums = [Float](repeating: 0, count: lists * dim)
            var counts = [Int](repeating: 0, count: lists)
            for i in 0..<sampleCount {
                let c = Int(assign[i])
                counts[c] += 1
                for d in 0..<dim { sums[c * dim + d] += pts[i * dim + d] }
            }
            var reseed = 0
            for c in 0..<lists {
                if counts[c] == 0 {
                    // An empty list restarts from a sample point (seeded walk through the sample).
                    let i = (c * 7919 + reseed * 104_729) % sampleCount
                    reseed += 1
                    for d in 0..<dim { sums[c * dim + d] = pts[i * dim + d] }
                }
                var norm: Float = 0
                for d in 0..<dim { norm += sums[c * dim + d] * sums[c * dim + d] }
                let inv = norm > 0 ? 1 / norm.squareRoot() : 0
                for d in 0..<dim { cent[c * dim + d] = sums[c * dim + d] * inv }
            }
        }
        return cent
    }

    /// For each row, the `count` most similar centroids (most similar first; ties to the lower index), flat.
    static func nearestLists(_ v: [Float], n: Int, dim: Int, centroids: [Float], lists: Int, count: Int, jobs: Int) -> [Int32] {
        let block = max(1, min(4096, (1 << 22) / max(1, lists)))
        let starts = Array(stride(from: 0, to: n, by: block))
        let parts = (try? parallelMap(starts, jobs: jobs) { start -> [Int32] in
            let rows = min(block, n - start)
            var sims = [Float](repeating: 0, count: rows * lists)
            v.withUnsafeBufferPointer { p in
                centroids.withUnsafeBufferPointer { c in
                    sims.withUnsafeMutableBufferPointer { s in
                        Matmul.gemm(p.baseAddress! + start * dim, c.baseAddress!, s.baseAddress!, m: rows, n: lists, k: dim, transposeB: true)
                    }
                }
            }
            var out = [Int32](repeating: 0, count: rows * count)
            var bestS = [Float](repeating: 0, count: count)
            var bestI = [Int32](repeating: 0, count: count)
            for r in 0..<rows {
                var have = 0
                let base = r * lists
                for c in 0..<lists {
                    let s = sims[base + c]
                    if have < count {
                        var p = have
                        while p > 0 && bestS[p - 1] < s { bestS[p] = bestS[p - 1]; bestI[p] = bestI[p - 1]; p -= 1 }
                        bestS[p] = s
                        bestI[p] = Int32(c)
                        have += 1
                    } else if s > bestS[count - 1] {
                        var p = count - 1
                        while p > 0 && bestS[p - 1] < s { bestS[p] = bestS[p - 1]; bestI[p] = bestI[p - 1]; p -= 1 }
                        bestS[p] = s
                        bestI[p] = Int32(c)
                    }
                }
                for i in 0..<count { out[r * count + i] = bestI[i] }
            }
            return out
        }) ?? []
        return parts.flatMap { $0 }
    }

    /// recall@k of `approx` against `exact`: the mean share of each row's exact top k found in its approximate top k.
    public static func recall(_ approx: [[(index: Int, similarity: Float)]], exact: [[(index: Int, similarity: Float)]], k: Int) -> Double {
        var hit = 0
        var total = 0
        for (a, e) in zip(approx, exact) {
            let want = Set(e.prefix(k).map(\.index))
            hit += a.prefix(k).filter { want.contains($0.index) }.count
            total += want.count
        }
        return total == 0 ? 1 : Double(hit) / Double(total)
    }
}
