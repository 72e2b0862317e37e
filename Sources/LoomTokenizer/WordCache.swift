// A cache from piece bytes to the piece's token ids (text repeats its words: most pieces are found here and skip
// the merges). Open addressing over a key arena and a value arena; cleared when full. One per encoder, so no locks.

import Foundation

final class WordCache {
    private var hashes: UnsafeMutablePointer<UInt64>
    /// keyStart, keyLen, valueStart, valueLen per slot.
    private var slots: UnsafeMutablePointer<Int32>
    private var mask: Int
    private var count = 0
    private var keys: UnsafeMutablePointer<UInt8>
    private var keyUsed = 0
    private let keyCap: Int
    private var values: UnsafeMutablePointer<Int32>
    private var valueUsed = 0
    private let valueCap: Int
    static let maxKey = 64

    init(slots n: Int = 1 << 16, keyBytes: Int = 2 << 20, values: Int = 1 << 20) {
        mask = n - 1
        hashes = .allocate(capacity: n)
        hashes.initialize(repeating: 0, count: n)
        slots = .allocate(capacity: 4 * n)
        keys = .allocate(capacity: keyBytes)
        keyCap = keyBytes
        self.values = .allocate(capacity: values)
        valueCap = values
    }

    deinit {
        hashes.deallocate()
        slots.deallocate()
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(n)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var s: UInt64 = 0
            while i < n {
                w |= UInt64(p[i]) << s
                s += 8
                i += 1
            }
            h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
        }
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        return h | 1
    }

    /// Appends the cached ids of the piece to `out`; false when absent.
    @inline(__always) func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64, into out: inout [Int32]) -> Bool {
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let x = hashes[i]
            if x == 0 { return false }
            if x == h {
                let s = slots + 4 * i
                if Int(s[1]) == n && memcmp(keys + Int(s[0]), p, n) == 0 {
                    let v = values + Int(s[2])
                    let c = Int(s[3])
                    if c == 1 { out.append(v[0]) } else { out.append(contentsOf: UnsafeBufferPointer(start: v, count: c)) }
                    return true
                }
            }
            i = (i + 1) & mask
        }
    }

    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64, _ ids: [Int32]) {
        if count * 2 > mask || keyUsed + n > keyCap || valueUsed + ids.count > valueCap { clear() }
        if keyUsed + n > keyCap || ids.count > valueCap { return }
        var i = Int(truncatingIfNeeded: h) & mask
        while hashes[i] != 0 { i = (i + 1) & mask }
        hashes[i] = h
        let s = slots + 4 * i
        (keys + keyUsed).update(from: p, count: n)
        s[0] = Int32(keyUsed)
        s[1] = Int32(n)
        keyUsed += n
        if !ids.isEmpty { ids.withUnsafeBufferPointer { (values + valueUsed).update(from: $0.baseAddress!, count: ids.count) } }
        s[2] = Int32(valueUsed)
        s[3] = Int32(ids.count)
        valueUsed += ids.count
        count += 1
    }

    func clear() {
        hashes.update(repeating: 0, count: mask + 1)
        count = 0
        keyUsed = 0
        valueUsed = 0
    }
}
