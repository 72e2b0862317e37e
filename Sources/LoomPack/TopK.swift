// The per-document top k both neighbour searches keep (exact over the triangle, IVF over lists): every similarity
// a search computes is offered to one or both documents of its pair, and each document keeps its k best by
// (similarity, then lower index).

import CLoomKernels

/// A top k for every document, each sorted by similarity (descending), then index (ascending).
struct TopK {
    let k: Int
    var sims: [Float]
    var ids: [Int32]
    var counts: [Int32]
    /// Column thresholds for the C kernel.
    private var scratch: [Float] = []

    init(n: Int, k: Int) {
        self.k = k
        sims = [Float](repeating: 0, count: n * k)
        ids = [Int32](repeating: 0, count: n * k)
        counts = [Int32](repeating: 0, count: n)
    }

    @inline(__always) static func before(_ s: Float, _ i: Int, _ t: Float, _ j: Int) -> Bool { s > t || (s == t && i < j) }

    /// The similarity an offer to `q` must reach to be considered (-infinity while q's list is not full).
    @inline(__always) func threshold(_ q: Int) -> Float { Int(counts[q]) == k ? sims[q * k + k - 1] : -.infinity }

    /// Offers every entry of a similarity block (`rows` x `columns`, row-major) to its row's document and, when
    /// `symmetric`, to its column's document too (similarity is symmetric, so each product serves both ends).
    /// The C kernel `loom_topk_offer_block`: sixteen entries at a time are checked against the receivers' current
    /// thresholds, and the few that pass go through the ordered insert. Same result as `offerBlockReference`.
    /// `distinct`: the caller promises that no row's document already holds, or is offered twice, any of the
    /// columns (distinct columns, rows whose lists are empty): the row offers then skip the search for the id.
    /// `portable` runs the baseline x86-64 loop even where AVX-512 is available (the tests check both).
    mutating func offerBlock(sims block: [Float], rows: ArraySlice<Int32>, columns: [Int32], symmetric: Bool, distinct: Bool = false, portable: Bool = false) {
        let k = self.k
        if scratch.count < columns.count { scratch = [Float](repeating: 0, count: columns.count) }
        block.withUnsafeBufferPointer { b in
            rows.withUnsafeBufferPointer { r in
                columns.withUnsafeBufferPointer { c in
                    scratch.withUnsafeMutableBufferPointer { ct in
                        sims.withUnsafeMutableBufferPointer { s in
                            ids.withUnsafeMutableBufferPointer { i in
                                counts.withUnsafeMutableBufferPointer { n in
                                    loom_topk_offer_block(
                                        b.baseAddress, r.count, c.count, r.baseAddress, c.baseAddress, symmetric ? 1 : 0,
                                        ct.baseAddress, s.baseAddress, i.baseAddress, n.baseAddress, k, distinct ? 1 : 0, portable ? 1 : 0)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The simple version `offerBlock` is checked against.
    /// Entries below the receiver's current threshold are skipped before the ordered insert.
    mutating func offerBlockReference<R: Collection>(sims block: [Float], rows: R, columns: [Int32], symmetric: Bool) where R.Element == Int32 {
        let width = columns.count
        var colThreshold = columns.map { symmetric ? threshold(Int($0)) : .infinity }
        block.withUnsafeBufferPointer { b in
            columns.withUnsafeBufferPointer { cols in
                colThreshold.withUnsafeMutableBufferPointer { ct in
                    for (r, q32) in rows.enumerated() {
                        let q = Int(q32)
                        let row = b.baseAddress! + r * width
                        var t = threshold(q)
                        for j in 0..<width {
                            let s = row[j]
                            // The common case: below both thresholds, nothing to do.
                            guard s >= t || s >= ct[j] else { continue }
                            let m = Int(cols[j])
                            guard m != q else { continue }
                            if s >= t {
                                offer(q, m, s)
                                t = threshold(q)
                            }
                            if s >= ct[j] {
                                offer(m, q, s)
                                ct[j] = threshold(m)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Offers `id` at similarity `s` to document q's top k. An id already there keeps the larger of its two
    /// similarities, so the result is the top k of each id's best offer, whatever the order of the offers.
    @inline(__always) mutating func offer(_ q: Int, _ id: Int, _ s: Float) {
        guard k > 0 else { return }
        let base = q * k
        var have = Int(counts[q])
        if have == k && !Self.before(s, id, sims[base + k - 1], Int(ids[base + k - 1])) { return }
        for r in 0..<have where Int(ids[base + r]) == id {
            if s <= sims[base + r] { return }
            // Take the old entry out; the better one is inserted below.
            for x in r..<(have - 1) {
                sims[base + x] = sims[base + x + 1]
                ids[base + x] = ids[base + x + 1]
            }
            have -= 1
            counts[q] -= 1
            break
        }
        if have == k {
            have -= 1
        } else {
            counts[q] += 1
        }
        var p = have
        while p > 0 && Self.before(s, id, sims[base + p - 1], Int(ids[base + p - 1])) {
            sims[base + p] = sims[base + p - 1]
            ids[base + p] = ids[base + p - 1]
            p -= 1
        }
        sims[base + p] = s
        ids[base + p] = Int32(id)
    }

    /// Offers all of o's entries (the C kernel's inserts; `mergeReference` is the Swift version).
    mutating func merge(_ o: TopK) {
        let k = self.k, n = counts.count
        sims.withUnsafeMutableBufferPointer { s in
            ids.withUnsafeMutableBufferPointer { i in
                counts.withUnsafeMutableBufferPointer { c in
                    loom_topk_merge(s.baseAddress, i.baseAddress, c.baseAddress, o.sims, o.ids, o.counts, n, k)
                }
            }
        }
    }

    mutating func mergeReference(_ o: TopK) {
        for q in 0..<counts.count {
            for r in 0..<Int(o.counts[q]) { offer(q, Int(o.ids[q * k + r]), o.sims[q * k + r]) }
        }
    }

    /// Every document's list from the workers' partial top ks, merged.
    static func lists(merging parts: [TopK], n: Int, k: Int) -> [[(index: Int, similarity: Float)]] {
        let merged = merged(parts, n: n, k: k)
        return (0..<n).map { merged.list($0) }
    }

    /// The workers' partial top ks as one.
    static func merged(_ parts: [TopK], n: Int, k: Int) -> TopK {
        var merged = parts.first ?? TopK(n: n, k: k)
        for p in parts.dropFirst() { merged.merge(p) }
        return merged
    }

    func list(_ q: Int) -> [(index: Int, similarity: Float)] {
        (0..<Int(counts[q])).map { (Int(ids[q * k + $0]), sims[q * k + $0]) }
    }
}
