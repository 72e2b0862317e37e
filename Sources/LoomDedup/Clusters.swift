// From per-document rows to clusters: LSH candidate pairs from equal band keys, verification (exact Jaccard over
// the shingle spool, or the MinHash estimate), union-find, and the keep policy. Everything here is a function of
// the table's rows in order, so the single-process command and the sharded join compute the same clusters.

import Foundation
import LoomCore

public enum Verification: String, Codable, Sendable, CaseIterable {
    /// Exact Jaccard similarity of the two shingle sets.
    case exact
    /// The MinHash estimate (fraction of equal signature slots).
    case estimate
}

public enum KeepPolicy: String, Codable, Sendable, CaseIterable {
    /// The document that comes first in the input.
    case first
    /// The document with the longest text (in Unicode scalars); ties go to the first.
    case longest
}

/// A verified duplicate pair (a < b in input order).
struct DuplicatePair {
    var a: Int
    var b: Int
    var estimate: Double
    var jaccard: Double?
}

struct Cluster {
    var kept: Int
    var removed: [Int]
}

struct ClusterResult {
    var pairs: [DuplicatePair] = []
    var clusters: [Cluster] = []
    var removed: [Bool] = []
    var candidates = 0
    var largeBuckets = 0
}

enum Clustering {
    /// Buckets larger than this link every member to the bucket's first member instead of forming all pairs,
    /// so a text repeated a million times costs a million pairs, not half a trillion.
    static let allPairsBucket = 64

    /// Candidate pairs (a << 32 | b, a < b), sorted and unique: documents whose keys agree in at least one band.
    static func candidates(_ t: DocTable, jobs: Int) throws -> (pairs: [UInt64], largeBuckets: Int) {
        let bands = t.bands
        let eligible = (0..<t.count).filter { !t.blank[$0] }
        let perBand = try parallelMap(Array(0..<bands), jobs: jobs) { band -> ([UInt64], Int) in
            // key << 32 | document: sorting groups equal keys with their documents in input order.
            var entries: [UInt64] = []
            entries.reserveCapacity(eligible.count)
            t.bandKeys.withUnsafeBufferPointer { keys in
                for d in eligible { entries.append(UInt64(keys[d * bands + band]) << 32 | UInt64(d)) }
            }
            radixSortByHigh32(&entries)
            var pairs: [UInt64] = []
            var large = 0
            var i = 0
            while i < entries.count {
                let key = entries[i] >> 32
                var j = i + 1
                while j < entries.count, entries[j] >> 32 == key { j += 1 }
                let n = j - i
                if n > 1 {
                    let doc = { (x: Int) in entries[x] & 0xFFFF_FFFF }
                    if n <= allPairsBucket {
                        for x in i..<(j - 1) {
                            for y in (x + 1)..<j { pairs.append(doc(x) << 32 | doc(y)) }
                        }
                    } else {
                        large += 1
                        for y in (i + 1)..<j { pairs.append(doc(i) << 32 | doc(y)) }
                    }
                }
                i = j
            }
            return (pairs, large)
        }
        var all: [UInt64] = []
        for (p, _) in perBand { all += p }
        all.sort()
        var w = 0
        for r in 0..<all.count where r == 0 || all[r] != all[w - 1] {
            all[w] = all[r]
            w += 1
        }
        all.removeLast(all.count - w)
        return (all, perBand.reduce(0) { $0 + $1.1 })
    }

    /// |A ∩ B| / |A ∪ B| of two shingle hash lists (any order, repeats allowed), with one open-addressing table:
    /// each slot holds a hash and whether it was seen in A, in B, or in both. Linear in the list lengths.
    static func jaccard(_ x: UnsafeBufferPointer<UInt64>, _ y: UnsafeBufferPointer<UInt64>) -> Double {
        if x.isEmpty && y.isEmpty { return 1 }
        var bits = 4
        while (1 << bits) < 2 * (x.count + y.count) { bits += 1 }
        let size = 1 << bits
        let mask = size - 1
        let keys = UnsafeMutablePointer<UInt64>.allocate(capacity: size)
        let state = UnsafeMutablePointer<UInt8>.allocate(capacity: size)  // 0 empty, 1 A, 2 B, 3 both
        state.initialize(repeating: 0, count: size)
        defer {
            keys.deallocate()
            state.deallocate()
        }
        @inline(__always) func slot(_ v: UInt64) -> Int {
            var i = Int(truncatingIfNeeded: (v &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - bits))
            while state[i] != 0 && keys[i] != v { i = (i + 1) & mask }
            return i
        }
        var onlyA = 0
        for v in x {
            let i = slot(v)
            if state[i] == 0 {
                keys[i] = v
                state[i] = 1
                onlyA += 1
            }
        }
        var both = 0
        var onlyB = 0
        for v in y {
            let i = slot(v)
            switch state[i] {
            case 0:
                keys[i] = v
                state[i] = 2
                onlyB += 1
            case 1:
                state[i] = 3
                both += 1
                onlyA -= 1
            default: break
            }
        }
        return Double(both) / Double(onlyA + onlyB + both)
    }

    static func estimate(_ t: DocTable, _ a: Int, _ b: Int) -> Double {
        let p = t.numPerm
        return t.signatures.withUnsafeBufferPointer { s in
            MinHasher.estimate(s.baseAddress! + a * p, s.baseAddress! + b * p, numPerm: p)
        }
    }

    /// Candidates, verification, components and the keep policy.
    static func run(
        _ t: DocTable, store: ShingleStore?, threshold: Double, verify: Verification, keep: KeepPolicy, jobs: Int,
        progress: LoomCore.Progress? = nil
    ) throws -> ClusterResult {
        var result = ClusterResult()
        var clock = PhaseClock()
        let (cands, large) = try candidates(t, jobs: jobs)
        clock.lap("candidates")
        result.candidates = cands.count
        result.largeBuckets = large
        // Verify in slices, in parallel; keep the order of the sorted candidates.
        let slice = max(1024, cands.count / max(1, jobs * 8) + 1)
        let slices = stride(from: 0, to: cands.count, by: slice).map { $0..<min(cands.count, $0 + slice) }
        let verified = try parallelMap(slices, jobs: jobs) { range -> [DuplicatePair] in
            var out: [DuplicatePair] = []
            for c in cands[range] {
                let a = Int(c >> 32)
                let b = Int(c & 0xFFFF_FFFF)
                let est = estimate(t, a, b)
                switch verify {
                case .estimate:
                    if est >= threshold { out.append(DuplicatePair(a: a, b: b, estimate: est, jaccard: nil)) }
                case .exact:
                    let j = try store!.jaccard(a, b, table: t)
                    if j >= threshold { out.append(DuplicatePair(a: a, b: b, estimate: est, jaccard: j)) }
                }
            }
            return out
        }
        result.pairs = verified.flatMap { $0 }
        clock.lap("verify")
        var uf = UnionFind(t.count)
        for p in result.pairs { uf.union(p.a, p.b) }
        result.clusters = components(&uf, count: t.count, keep: keep, length: t.textLength)
        result.removed = [Bool](repeating: false, count: t.count)
        for c in result.clusters { for r in c.removed { result.removed[r] = true } }
        return result
    }

    /// Groups of size > 1, each with the member the policy keeps; clusters ordered by their kept document.
    static func components(_ uf: inout UnionFind, count: Int, keep: KeepPolicy, length: [UInt32]) -> [Cluster] {
        var members: [Int: [Int]] = [:]
        for d in 0..<count where uf.size(d) > 1 { members[uf.find(d), default: []].append(d) }
        var clusters: [Cluster] = []
        for (_, m) in members {
            var k = m[0]
            if keep == .longest {
                for d in m where length[d] > length[k] { k = d }
            }
            clusters.append(Cluster(kept: k, removed: m.filter { $0 != k }))
        }
        clusters.sort { $0.kept < $1.kept }
        return clusters
    }

    /// Exact mode: documents with equal content hashes.
    static func exact(_ t: DocTable, keep: KeepPolicy) -> ClusterResult {
        var order = (0..<t.count).filter { !t.blank[$0] }
        let h = t.contentHash
        order.sort { x, y in
            let a = (h[2 * x], h[2 * x + 1])
            let b = (h[2 * y], h[2 * y + 1])
            return a != b ? a < b : x < y
        }
        var uf = UnionFind(t.count)
        var result = ClusterResult()
        var i = 0
        while i < order.count {
            var j = i + 1
            while j < order.count, h[2 * order[j]] == h[2 * order[i]], h[2 * order[j] + 1] == h[2 * order[i] + 1] {
                uf.union(order[i], order[j])
                result.pairs.append(DuplicatePair(a: order[i], b: order[j], estimate: 1, jaccard: 1))
                j += 1
            }
            i = j
        }
        result.clusters = components(&uf, count: t.count, keep: keep, length: t.textLength)
        result.removed = [Bool](repeating: false, count: t.count)
        for c in result.clusters { for r in c.removed { result.removed[r] = true } }
        return result
    }
}

/// Union-find with path halving and union by size.
struct UnionFind {
    private var parent: [Int32]
    private var sizes: [Int32]

    init(_ n: Int) {
        parent = (0..<n).map { Int32($0) }
        sizes = [Int32](repeating: 1, count: n)
    }

    mutating func find(_ x: Int) -> Int {
        var x = x
        while Int(parent[x]) != x {
            parent[x] = parent[Int(parent[x])]
            x = Int(parent[x])
        }
        return x
    }

    mutating func union(_ a: Int, _ b: Int) {
        var ra = find(a)
        var rb = find(b)
        if ra == rb { return }
        if sizes[ra] < sizes[rb] { swap(&ra, &rb) }
        parent[rb] = Int32(ra)
        sizes[ra] += sizes[rb]
    }

    mutating func size(_ x: Int) -> Int { Int(sizes[find(x)]) }
}

/// Stable LSD radix sort on the upper 32 bits (four byte-wide passes). Entries arrive in document order, so equal
/// keys keep their documents ascending.
func radixSortByHigh32(_ a: inout [UInt64]) {
    let n = a.count
    guard n > 1 else { return }
    var tmp = [UInt64](repeating: 0, count: n)
    for pass in 0..<4 {
        let shift = UInt64(32 + 8 * pass)
        var counts = [Int](repeating: 0, count: 257)
        a.withUnsafeBufferPointer { src in
            for x in src { counts[Int((x >> shift) & 0xFF) + 1] += 1 }
        }
        for i in 1..<257 { counts[i] += counts[i - 1] }
        a.withUnsafeBufferPointer { src in
            tmp.withUnsafeMutableBufferPointer { dst in
                for x in src {
                    let b = Int((x >> shift) & 0xFF)
                    dst[counts[b]] = x
                    counts[b] += 1
                }
            }
        }
        swap(&a, &tmp)
    }
}
