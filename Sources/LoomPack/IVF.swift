// Approximate nearest neighbours for large corpora: an inverted-file index (IVF), as faiss's IndexIVFFlat.
// Spherical k-means (seeded, fixed iterations) on a sample gives `lists` unit centroids; every vector goes to the
// list of its nearest centroid (its home list), and each document's neighbours are searched in the `probes` lists
// whose centroids are nearest to it. Search is blocked products, list by list: first each list's members against
// themselves, so every document starts from its best list-mates and later offers mostly fall below its threshold;
// then, for each list, the documents that probe it from elsewhere (its visitors) against its members. Every
// similarity computed is offered to both documents of the pair, so a pair is found when either one probes the
// other's list (on 100,000 MiniLM vectors: recall@10 0.90 -> 0.96 at the same cost).
// Products are int8 by default (CLoomKernels/int8.c: each vector quantised with its own scale; AVX-512 VNNI where
// the CPU has it, 64 multiply-adds an instruction against float32 FMA's 16). Each document keeps k + rescoreMargin
// candidates, re-scored in float32, so the similarities returned are exact. Each document keeps its top k by
// (similarity, then lower index), an order with a single answer, and int8 sums are exact integers, so the result
// does not depend on the number of threads.

import CLoomKernels
import Dispatch
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
    /// Similarities in int8 (each vector quantised with its own scale; AVX-512 VNNI or AVX2 kernels). Each document
    /// keeps k + `rescoreMargin` candidates, re-scored in float32: the similarities returned are exact, only the
    /// choice of candidates is approximate. On by default where the CPU has AVX2 or VNNI; on the portable path the
    /// int8 loop would be slower than OpenBLAS's float32 products, so the default is float32 there.
    public var int8 = Int8Rows.fast
    public var rescoreMargin = 8

    public init() {}

    public func listCount(_ n: Int) -> Int { max(1, min(n, lists ?? Int(Double(n).squareRoot().rounded()))) }
}

public enum ApproximateNeighbours {
    /// Like Neighbours.exact, from an IVF index over the same vectors (unit rows of `dim`).
    public static func ivf(_ v: [Float], dim: Int, k: Int, config: IVFConfig = IVFConfig(), jobs: Int = 1) -> [[(index: Int, similarity: Float)]] {
        let n = v.count / dim
        guard n > 1 else { return Array(repeating: [], count: n) }
        let kk = min(k, n - 1)
        guard config.int8 else { return TopK.lists(merging: [search(v, n: n, dim: dim, k: kk, config: config, jobs: jobs).top], n: n, k: kk) }
        let found = search(v, n: n, dim: dim, k: min(n - 1, kk + max(0, config.rescoreMargin)), config: config, jobs: jobs)
        return rescore(v, dim: dim, candidates: found.top, order: found.order, k: kk, jobs: jobs)
    }

    /// The list-by-list search: each document's top k among the members of the lists it probes (and, symmetric,
    /// the visitors of its own list), merged over the workers; and the documents list by list (`order`).
    static func search(_ v: [Float], n: Int, dim: Int, k kk: Int, config: IVFConfig, jobs: Int) -> (top: TopK, order: [Int32]) {
        let nl = config.listCount(n)
        let probes = min(config.probes, nl)
        Matmul.setThreads(1)
        let centroids = kmeans(v, n: n, dim: dim, lists: nl, config: config, jobs: jobs)
        // Each vector's `probes` nearest lists, nearest first; its home list is the first. Chosen by float32
        // products (k-means' own assignments are int8): on sparse hashing vectors int8 centroid similarities chose
        // slightly worse lists, and these products are one per document and list, a small share of the time.
        let near = nearestLists(v, n: n, dim: dim, centroids: centroids, lists: nl, count: probes, jobs: jobs)
        let q8 = config.int8 ? Int8Rows(v, n: n, dim: dim, jobs: jobs) : nil
        var members = [[Int32]](repeating: [], count: nl)
        var visitors = [[Int32]](repeating: [], count: nl)
        for q in 0..<n {
            members[Int(near[q * probes])].append(Int32(q))
            for p in 1..<max(1, probes) { visitors[Int(near[q * probes + p])].append(Int32(q)) }
        }
        // Lists dealt round-robin to the workers, largest first; each worker keeps a top-k for every document.
        func deal(_ work: [Int]) -> [[Int]] {
            let order: [Int] = (0..<nl).sorted { work[$0] != work[$1] ? work[$0] > work[$1] : $0 < $1 }
            let workers = max(1, min(jobs, nl))
            return (0..<workers).map { w in stride(from: w, to: order.count, by: workers).map { order[$0] } }
        }
        // First each list against itself, so every document starts from its best among its own list's members and
        // the offers from other lists mostly fall below its threshold; then the visitors (documents probing a list
        // that is not their own) against each list's members.
        let home = TopK.merged(
            (try? parallelMap(deal(members.map { $0.count * $0.count }), jobs: jobs) { (lists: [Int]) -> TopK in
                var scan = ListScan(v: v, dim: dim, q8: q8, top: TopK(n: n, k: kk))
                // Each document's list is empty when its row comes, and a list's members are distinct.
                for l in lists { scan.run(rows: members[l][...], members: members[l], symmetric: false, distinct: true) }
                return scan.top
            }) ?? [], n: n, k: kk)
        let partial = (try? parallelMap(deal((0..<nl).map { visitors[$0].count * members[$0].count }), jobs: jobs) { (lists: [Int]) -> TopK in
            var scan = ListScan(v: v, dim: dim, q8: q8, top: home)
            for l in lists { scan.run(rows: visitors[l][...], members: members[l], symmetric: config.symmetric) }
            return scan.top
        }) ?? []
        return (TopK.merged(partial, n: n, k: kk), members.flatMap { $0 })
    }

    /// Each document's candidates re-scored in float32: its k best by exact similarity (then lower index).
    /// Documents are taken list by list (`order`), so neighbours' candidates, mostly the same rows, stay in cache.
    static func rescore(_ v: [Float], dim: Int, candidates: TopK, order: [Int32], k: Int, jobs: Int) -> [[(index: Int, similarity: Float)]] {
        let n = candidates.counts.count, ck = candidates.k
        let block = 2048
        let starts = Array(stride(from: 0, to: order.count, by: block))
        let parts = (try? parallelMap(starts, jobs: jobs) { start -> [[(index: Int, similarity: Float)]] in
            var out: [[(index: Int, similarity: Float)]] = []
            var sims = [Float](repeating: 0, count: ck)
            v.withUnsafeBufferPointer { p in
                sims.withUnsafeMutableBufferPointer { s in
                    for q32 in order[start..<min(order.count, start + block)] {
                        let q = Int(q32)
                        let have = Int(candidates.counts[q])
                        for r in 0..<have { s[r] = loom_dot(p.baseAddress! + q * dim, p.baseAddress! + Int(candidates.ids[q * ck + r]) * dim, dim) }
                        var row = (0..<have).map { (index: Int(candidates.ids[q * ck + $0]), similarity: s[$0]) }
                        row.sort { TopK.before($0.similarity, $0.index, $1.similarity, $1.index) }
                        out.append(Array(row.prefix(k)))
                    }
                }
            }
            return out
        }) ?? []
        var result = [[(index: Int, similarity: Float)]](repeating: [], count: n)
        var i = 0
        for part in parts {
            for row in part {
                result[Int(order[i])] = row
                i += 1
            }
        }
        return result
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
        let quantizedPoints = config.int8 ? Int8Rows(pts, n: sampleCount, dim: dim, jobs: jobs) : nil
        for _ in 0..<config.iterations {
            let assign = nearestLists(pts, n: sampleCount, dim: dim, centroids: cent, lists: lists, count: 1, jobs: jobs, quantized: quantizedPoints)
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
    /// With `quantized` (the rows of v in int8), the similarities to the centroids are int8 products too.
    static func nearestLists(_ v: [Float], n: Int, dim: Int, centroids: [Float], lists: Int, count: Int, jobs: Int, quantized: Int8Rows? = nil) -> [Int32] {
        let block = max(1, min(4096, (1 << 22) / max(1, lists)))
        let starts = Array(stride(from: 0, to: n, by: block))
        var packed = Int8Rows.Packed()
        if let quantized { Int8Rows(centroids, n: lists, dim: dim, jobs: 1).pack((0..<Int32(lists)).map { $0 }, into: &packed) }
        let parts = (try? parallelMap(starts, jobs: jobs) { start -> [Int32] in
            let rows = min(block, n - start)
            var sims = [Float](repeating: 0, count: rows * lists)
            if let quantized {
                var a: [UInt8] = []
                var scales: [Float] = []
                quantized.gatherLeft((Int32(start)..<Int32(start + rows)).map { $0 }[...], into: &a, scales: &scales)
                quantized.products(a, scales: scales, rows: rows, packed: packed, into: &sims)
            } else {
                v.withUnsafeBufferPointer { p in
                    centroids.withUnsafeBufferPointer { c in
                        sims.withUnsafeMutableBufferPointer { s in
                            Matmul.gemm(p.baseAddress! + start * dim, c.baseAddress!, s.baseAddress!, m: rows, n: lists, k: dim, transposeB: true)
                        }
                    }
                }
            }
            // The top-k kernel picks each row's lists. Rows are numbered from `lists` up, so that no row id equals a
            // list id (the kernel skips an entry whose row and column are the same document).
            var top = TopK(n: lists + rows, k: count)
            top.offerBlock(sims: sims, rows: (Int32(lists)..<Int32(lists + rows)).map { $0 }[...], columns: (0..<Int32(lists)).map { $0 }, symmetric: false, distinct: true)
            var out = [Int32](repeating: 0, count: rows * count)
            for r in 0..<rows {
                for i in 0..<count { out[r * count + i] = top.ids[(lists + r) * count + i] }
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

/// One worker's search state: its top k and the buffers its products reuse.
struct ListScan {
    let v: [Float]
    let dim: Int
    let q8: Int8Rows?
    var top: TopK
    var a: [Float] = []
    var b: [Float] = []
    var sims: [Float] = []
    var packed = Int8Rows.Packed()
    var au: [UInt8] = []
    var ascale: [Float] = []

    init(v: [Float], dim: Int, q8: Int8Rows?, top: TopK) {
        self.v = v
        self.dim = dim
        self.q8 = q8
        self.top = top
    }

    /// Offers the similarities of `rows` against one list's members.
    mutating func run(rows vis: ArraySlice<Int32>, members mem: [Int32], symmetric: Bool, distinct: Bool = false) {
        guard !mem.isEmpty, !vis.isEmpty else { return }
        if let q8 { q8.pack(mem, into: &packed) } else { ApproximateNeighbours.gather(v, dim: dim, rows: mem, into: &b) }
        // Rows in blocks, so the similarity block stays in the cache.
        let block = max(8, (q8 == nil ? 1 << 20 : 1 << 18) / max(1, mem.count))
        var s = vis.startIndex
        while s < vis.endIndex {
            let e = min(vis.endIndex, s + block)
            let rows = e - s
            if sims.count < rows * mem.count { sims = [Float](repeating: 0, count: rows * mem.count) }
            if let q8 {
                q8.gatherLeft(vis[s..<e], into: &au, scales: &ascale)
                q8.products(au, scales: ascale, rows: rows, packed: packed, into: &sims)
            } else {
                ApproximateNeighbours.gather(v, dim: dim, rows: vis[s..<e], into: &a)
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        sims.withUnsafeMutableBufferPointer { sp in
                            Matmul.gemm(ap.baseAddress!, bp.baseAddress!, sp.baseAddress!, m: rows, n: mem.count, k: dim, transposeB: true)
                        }
                    }
                }
            }
            top.offerBlock(sims: sims, rows: vis[s..<e], columns: mem, symmetric: symmetric, distinct: distinct)
            s = e
        }
    }
}

/// Vectors quantised to int8 for the IVF search's products (CLoomKernels' loom_i8_*): signed rows for the lists'
/// members, the same + 128 as unsigned rows for the visitors, and each row's scale.
struct Int8Rows {
    /// Whether this CPU runs a vector int8 kernel (AVX-512 VNNI, or AVX2's vpmaddubsw), not the portable loop.
    static let fast = String(cString: loom_i8_variant()) != "baseline x86-64"

    /// Bytes a row: dim rounded up to 4 (the padding is zero).
    let padded: Int
    var signed: [Int8]
    var unsigned: [UInt8]
    var scales: [Float]

    init(_ v: [Float], n: Int, dim: Int, jobs: Int) {
        padded = (dim + 3) / 4 * 4
        let p = padded
        var q = [Int8](repeating: 0, count: n * p)
        var u = [UInt8](repeating: 0, count: n * p)
        var s = [Float](repeating: 0, count: n)
        // Quantised in `jobs` slices of rows at once, each writing its own rows.
        let slices = max(1, min(jobs, n / 1024))
        v.withUnsafeBufferPointer { x in
            q.withUnsafeMutableBufferPointer { qb in
                u.withUnsafeMutableBufferPointer { ub in
                    s.withUnsafeMutableBufferPointer { sb in
                        let out = QuantiseTarget(x: x.baseAddress!, q: qb.baseAddress!, u: ub.baseAddress!, s: sb.baseAddress!)
                        DispatchQueue.concurrentPerform(iterations: slices) { w in
                            let r0 = w * n / slices, r1 = (w + 1) * n / slices
                            loom_i8_quantize(out.x + r0 * dim, r1 - r0, dim, p, out.q + r0 * p, out.u + r0 * p, out.s + r0)
                        }
                    }
                }
            }
        }
        signed = q
        unsigned = u
        scales = s
    }

    /// The buffers the quantising threads write disjoint rows of.
    private struct QuantiseTarget: @unchecked Sendable {
        let x: UnsafePointer<Float>
        let q: UnsafeMutablePointer<Int8>
        let u: UnsafeMutablePointer<UInt8>
        let s: UnsafeMutablePointer<Float>
    }

    /// A list's members, packed for the products.
    struct Packed {
        var bytes: [Int8] = []
        var sums: [Int32] = []
        var scales: [Float] = []
        var rows = 0
        var rowBytes: [Int8] = []
    }

    func pack(_ rows: [Int32], into p: inout Packed) {
        let dp = padded
        p.rows = rows.count
        p.rowBytes.removeAll(keepingCapacity: true)
        p.scales.removeAll(keepingCapacity: true)
        signed.withUnsafeBufferPointer { q in
            for r in rows {
                p.rowBytes.append(contentsOf: UnsafeBufferPointer(rebasing: q[(Int(r) * dp)..<(Int(r) * dp + dp)]))
                p.scales.append(scales[Int(r)])
            }
        }
        let size = loom_i8_packed_size(rows.count, dp)
        if p.bytes.count < size { p.bytes = [Int8](repeating: 0, count: size) }
        if p.sums.count < rows.count { p.sums = [Int32](repeating: 0, count: rows.count) }
        p.rowBytes.withUnsafeBufferPointer { b in
            p.bytes.withUnsafeMutableBufferPointer { o in
                p.sums.withUnsafeMutableBufferPointer { s in loom_i8_pack(b.baseAddress, rows.count, dp, o.baseAddress, s.baseAddress) }
            }
        }
    }

    func gatherLeft(_ rows: ArraySlice<Int32>, into out: inout [UInt8], scales s: inout [Float]) {
        let dp = padded
        out.removeAll(keepingCapacity: true)
        s.removeAll(keepingCapacity: true)
        unsigned.withUnsafeBufferPointer { u in
            for r in rows {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[(Int(r) * dp)..<(Int(r) * dp + dp)]))
                s.append(scales[Int(r)])
            }
        }
    }

    /// sims[i * members + j] for the gathered left rows against the packed members.
    func products(_ a: [UInt8], scales s: [Float], rows: Int, packed p: Packed, into sims: inout [Float], portable: Bool = false) {
        let dp = padded
        a.withUnsafeBufferPointer { ap in
            s.withUnsafeBufferPointer { sp in
                p.bytes.withUnsafeBufferPointer { bp in
                    p.sums.withUnsafeBufferPointer { sums in
                        p.scales.withUnsafeBufferPointer { bs in
                            sims.withUnsafeMutableBufferPointer { o in
                                loom_i8_products(ap.baseAddress, rows, bp.baseAddress, p.rows, dp, sums.baseAddress, sp.baseAddress, bs.baseAddress, o.baseAddress, portable ? 1 : 0)
                            }
                        }
                    }
                }
            }
        }
    }
}
