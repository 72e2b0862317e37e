// Small lookup structures for the hot loops (the rules look at every character and every word n-gram): a set of
// characters with a bit test for ASCII, and a hash table keyed by 64-bit hashes without Swift's per-lookup
// SipHash.

/// A set of Unicode scalars: ASCII as two 64-bit masks, the rest in a Set.
public struct CharSet: Sendable {
    var low: UInt64 = 0
    var high: UInt64 = 0
    var rest = Set<UInt32>()

    init(_ s: String) { for u in s.unicodeScalars { insert(u.value) } }

    mutating func insert(_ c: UInt32) {
        if c < 64 {
            low |= 1 << UInt64(c)
        } else if c < 128 {
            high |= 1 << UInt64(c - 64)
        } else {
            rest.insert(c)
        }
    }

    func union(_ o: CharSet) -> CharSet {
        var s = self
        s.low |= o.low
        s.high |= o.high
        s.rest.formUnion(o.rest)
        return s
    }

    @inline(__always) func contains(_ c: UInt32) -> Bool {
        if c < 64 { return low & (1 << UInt64(c)) != 0 }
        if c < 128 { return high & (1 << UInt64(c - 64)) != 0 }
        return !rest.isEmpty && rest.contains(c)
    }
}

/// Open addressing on 64-bit keys that are already hashes (Poly's): each key's value is a count, the index it was
/// first seen at, and a length.
struct HashCounts {
    private var keys: [UInt64]
    private var used: [Bool]
    private(set) var counts: [Int32]
    private(set) var firsts: [Int32]
    private(set) var lengths: [Int32]
    private let mask: Int

    init(capacity: Int) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        keys = [UInt64](repeating: 0, count: n)
        used = [Bool](repeating: false, count: n)
        counts = [Int32](repeating: 0, count: n)
        firsts = [Int32](repeating: 0, count: n)
        lengths = [Int32](repeating: 0, count: n)
        mask = n - 1
    }

    @inline(__always) private func slot(_ k: UInt64) -> Int {
        var i = Int(truncatingIfNeeded: (k ^ (k >> 29)) &* 0xBF58_476D_1CE4_E5B9 >> 32) & mask
        while used[i] && keys[i] != k { i = (i + 1) & mask }
        return i
    }

    /// Adds one occurrence; returns whether the key was new.
    @discardableResult
    mutating func add(_ k: UInt64, first: Int, length: Int) -> Bool {
        let i = slot(k)
        if used[i] {
            counts[i] += 1
            return false
        }
        used[i] = true
        keys[i] = k
        counts[i] = 1
        firsts[i] = Int32(truncatingIfNeeded: first)
        lengths[i] = Int32(truncatingIfNeeded: length)
        return true
    }

    /// The entry with the largest count, the first seen among equals: (count, length).
    func mostFrequent() -> (count: Int, length: Int) {
        var best = -1
        for i in 0..<used.count where used[i] {
            if best < 0 || counts[i] > counts[best] || (counts[i] == counts[best] && firsts[i] < firsts[best]) { best = i }
        }
        return best < 0 ? (0, 0) : (Int(counts[best]), Int(lengths[best]))
    }
}
