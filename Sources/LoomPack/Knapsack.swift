// Packing samples into context windows. Each window is filled by an exact 0/1 knapsack over the remaining samples'
// token lengths (subset sum on a bitset: which totals up to the capacity are reachable), so it holds the most
// tokens any subset of what is left can give it. First-fit-decreasing (FFD) is the baseline; whichever of the two
// needs fewer windows is returned, so packing is never worse than FFD.

import Foundation

public struct PackResult: Equatable, Sendable {
    /// Sample indices per window, in the order they were placed.
    public var bins: [[Int]]
    public var capacity: Int
    public var tokens: Int
    /// tokens / (windows * capacity).
    public var efficiency: Double { bins.isEmpty ? 1 : Double(tokens) / Double(bins.count * capacity) }
}

public enum Packer {
    /// First-fit decreasing: samples longest first, each into the first window with room.
    public static func firstFitDecreasing(_ lengths: [Int], capacity: Int) -> PackResult {
        let order = lengths.indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
        var bins: [[Int]] = []
        var free: [Int] = []
        // Windows by free space, to find the first one with room without scanning all of them: a segment tree of
        // the maximum free space over window indices.
        var tree = MaxTree()
        for i in order {
            let l = lengths[i]
            if let b = tree.firstAtLeast(l) {
                bins[b].append(i)
                free[b] -= l
                tree.set(b, free[b])
            } else {
                bins.append([i])
                free.append(capacity - l)
                tree.append(capacity - l)
            }
        }
        return PackResult(bins: bins, capacity: capacity, tokens: lengths.reduce(0, +))
    }

    /// Window by window, the subset of the remaining samples that fills it best (exact subset sum over lengths,
    /// with equal lengths bundled by binary splitting). Falls back to FFD's packing if that needs fewer windows.
    public static func knapsack(_ lengths: [Int], capacity: Int) -> PackResult {
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= capacity }, "every length must be in 1...capacity")
        // Samples of each length, in input order (taken from the front).
        var byLength = [[Int]](repeating: [], count: capacity + 1)
        for (i, l) in lengths.enumerated() { byLength[l].append(i) }
        var taken = [Int](repeating: 0, count: capacity + 1)
        var remaining = lengths.count
        var bins: [[Int]] = []
        let words = (capacity + 1 + 63) / 64
        var snapshots: [UInt64] = []
        var bundles: [(length: Int, copies: Int)] = []
        while remaining > 0 {
            // Bundles: for each length, 1, 2, 4, ... copies (binary splitting), as many as could fit.
            bundles.removeAll(keepingCapacity: true)
            for l in stride(from: capacity, through: 1, by: -1) {
                var left = min(byLength[l].count - taken[l], capacity / l)
                var k = 1
                while left > 0 {
                    let c = min(k, left)
                    bundles.append((l, c))
                    left -= c
                    k *= 2
                }
            }
            // Subset sum on a bitset; a snapshot before each bundle for the way back.
            snapshots.removeAll(keepingCapacity: true)
            var reach = [UInt64](repeating: 0, count: words)
            reach[0] = 1
            var best = 0
            for b in bundles {
                snapshots.append(contentsOf: reach)
                shiftOr(&reach, by: b.length * b.copies, limit: capacity)
                if bit(reach, capacity) { best = capacity; break }
            }
            if best < capacity { best = highestBit(reach, limit: capacity) }
            // Walk back: a bundle was used if the total was not reachable before it.
            var total = best
            var bin: [Int] = []
            var used = snapshots.count / words
            while total > 0 && used > 0 {
                used -= 1
                let base = used * words
                if snapshots[base + (total >> 6)] >> UInt64(total & 63) & 1 == 1 { continue }
                let b = bundles[used]
                for _ in 0..<b.copies {
                    bin.append(byLength[b.length][taken[b.length]])
                    taken[b.length] += 1
                }
                total -= b.length * b.copies
            }
            precondition(total == 0 && !bin.isEmpty, "knapsack reconstruction failed")
            remaining -= bin.count
            bins.append(bin.sorted())
        }
        let knap = PackResult(bins: bins, capacity: capacity, tokens: lengths.reduce(0, +))
        let ffd = firstFitDecreasing(lengths, capacity: capacity)
        return ffd.bins.count < knap.bins.count ? ffd : knap
    }

    @inline(__always) static func bit(_ b: [UInt64], _ i: Int) -> Bool { b[i >> 6] >> UInt64(i & 63) & 1 == 1 }

    static func highestBit(_ b: [UInt64], limit: Int) -> Int {
        var i = limit
        while i > 0 && !bit(b, i) { i -= 1 }
        return i
    }

    /// b |= b << s, keeping bits 0...limit.
    static func shiftOr(_ b: inout [UInt64], by s: Int, limit: Int) {
        guard s <= limit else { return }
        let wordShift = s >> 6
        let bitShift = UInt64(s & 63)
        b.withUnsafeMutableBufferPointer { p in
            var w = p.count - 1
            while w >= wordShift {
                let src = w - wordShift
                var v = p[src] << bitShift
                if bitShift > 0 && src > 0 { v |= p[src - 1] >> (64 - bitShift) }
                p[w] |= v
                w -= 1
            }
            let extra = (p.count * 64 - 1) - limit
            if extra > 0 { p[p.count - 1] &= UInt64.max >> UInt64(extra) }
        }
    }
}

/// Maximum over a growing array, with "first index whose value is at least x" in O(log n).
struct MaxTree {
    private var size = 1
    private var tree = [Int](repeating: Int.min, count: 2)
    private(set) var count = 0

    mutating func append(_ v: Int) {
        if count == size {
            let old = (0..<count).map { tree[size + $0] }
            size *= 2
            tree = [Int](repeating: Int.min, count: 2 * size)
            for (i, x) in old.enumerated() { tree[size + i] = x }
            for i in stride(from: size - 1, through: 1, by: -1) { tree[i] = max(tree[2 * i], tree[2 * i + 1]) }
        }
        count += 1
        set(count - 1, v)
    }

    mutating func set(_ i: Int, _ v: Int) {
        var p = size + i
        tree[p] = v
        p /= 2
        while p >= 1 {
            tree[p] = max(tree[2 * p], tree[2 * p + 1])
            p /= 2
        }
    }

    func firstAtLeast(_ x: Int) -> Int? {
        guard count > 0, tree[1] >= x else { return nil }
        var p = 1
        while p < size { p = tree[2 * p] >= x ? 2 * p : 2 * p + 1 }
        return p - size
    }
}
