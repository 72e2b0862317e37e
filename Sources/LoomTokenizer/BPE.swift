// Stage 3 of the Hugging Face pipeline: the BPE model turns one piece into token ids. The piece starts as one symbol
// per byte (byte-level) or per character, then the lowest-ranked adjacent pair of the merge list is merged, the
// leftmost first among equals, until no pair in the list is left. This is what tokenizers' heap-based `merge_all`
// computes; short words use a scan over a rank array, long ones a heap, both checked against the plain loop in
// `ReferenceTokenizer`.

import Foundation
import LoomCore

/// Pair -> (rank, merged id), open addressing on the packed pair.
final class MergeTable: @unchecked Sendable {
    let keys: UnsafeMutablePointer<UInt64>
    let values: UnsafeMutablePointer<UInt64>
    let mask: Int
    static let empty = UInt64.max

    init(_ merges: [(Int32, Int32, Int32)]) {
        var cap = 16
        while cap < merges.count * 2 { cap <<= 1 }
        mask = cap - 1
        keys = .allocate(capacity: cap)
        keys.initialize(repeating: MergeTable.empty, count: cap)
        values = .allocate(capacity: cap)
        values.initialize(repeating: 0, count: cap)
        for (rank, m) in merges.enumerated() {
            let k = MergeTable.key(m.0, m.1)
            var i = MergeTable.slot(k) & mask
            while keys[i] != MergeTable.empty && keys[i] != k { i = (i + 1) & mask }
            // A repeated pair keeps its first (lowest) rank, as tokenizers does when reading a merge list.
            if keys[i] == k { continue }
            keys[i] = k
            values[i] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m.2))
        }
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    @inline(__always) static func slot(_ k: UInt64) -> Int { Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> 29) }

    /// rank << 32 | merged id, or `empty`.
    @inline(__always) func lookup(_ a: Int32, _ b: Int32) -> UInt64 {
        let k = MergeTable.key(a, b)
        var i = MergeTable.slot(k) & mask
        while true {
            let x = keys[i]
            if x == k { return values[i] }
            if x == MergeTable.empty { return MergeTable.empty }
            i = (i + 1) & mask
        }
    }
}

public struct BPEModel: Sendable {
    /// Token string -> id.
    public let vocab: Vocabulary
    /// Id -> token string ("" for an id the vocabulary skips).
    public let tokens: [String]
    /// The merges in rank order, as ids (left, right, merged).
    public let merges: [(Int32, Int32, Int32)]
    public let unkToken: String?
    public let byteFallback: Bool
    public let fuseUnk: Bool
    public let ignoreMerges: Bool
    let table: MergeTable
    /// Id of the byte-level character of each byte (-1: not in the vocabulary).
    let byteIds: [Int32]
    /// Id of each `<0xXX>` token (byte fallback), -1 when absent.
    let fallbackIds: [Int32]

    public init(
        vocab: Vocabulary, merges: [(String, String)], unkToken: String? = nil, byteFallback: Bool = false,
        fuseUnk: Bool = false, ignoreMerges: Bool = false
    ) throws {
        self.vocab = vocab
        let size = Int(vocab.values.max() ?? -1) + 1
        // Ids may skip a few numbers, not leave billions unused (the table below has a slot for each).
        guard size - vocab.count <= BPEModel.maxUnusedIds else {
            throw LoomError("vocabulary: the largest id, \(size - 1), leaves \(size - vocab.count) ids unused (at most \(BPEModel.maxUnusedIds))")
        }
        var tokens = [String](repeating: "", count: size)
        var taken = [Bool](repeating: false, count: size)
        for (t, i) in vocab {
            guard i >= 0 else { throw LoomError("vocabulary: token \(t) has a negative id \(i)") }
            // Two tokens with one id would decode as one of them, and a written tokenizer.json would lose the other.
            guard !taken[Int(i)] else { throw LoomError("vocabulary: tokens \(tokens[Int(i)].debugDescription) and \(t.debugDescription) both have id \(i)") }
            taken[Int(i)] = true
            tokens[Int(i)] = t
        }
        self.tokens = tokens
        var m: [(Int32, Int32, Int32)] = []
        m.reserveCapacity(merges.count)
        for (n, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw LoomError("merge \(n + 1) (\(a) \(b)): a part is not in the vocabulary")
            }
            guard let ic = vocab[a + b] else { throw LoomError("merge \(n + 1) (\(a) \(b)): \(a + b) is not in the vocabulary") }
            m.append((ia, ib, ic))
        }
        self.merges = m
        self.unkToken = unkToken
        self.byteFallback = byteFallback
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
        table = MergeTable(m)
        byteIds = (0..<256).map { vocab[ByteLevel.alphabet[$0]] ?? -1 }
        fallbackIds = (0..<256).map { vocab[String(format: "<0x%02X>", $0)] ?? -1 }
    }

    public static let maxUnusedIds = 1 << 20

    public var merged: [(String, String)] { merges.map { (tokens[Int($0.0)], tokens[Int($0.1)]) } }

    /// The initial symbols of a piece: one per byte (byte-level input) or per character, with unknown characters
    /// handled as tokenizers does (byte fallback, the unknown token, or dropped).
    func initialSymbols(_ p: UnsafePointer<UInt8>, _ n: Int, byteLevel: Bool, into s: inout [Int32]) {
        s.removeAll(keepingCapacity: true)
        if byteLevel {
            for i in 0..<n {
                let id = byteIds[Int(p[i])]
                if id >= 0 { s.append(id) } else { unknown(p + i, 1, &s) }
            }
            return
        }
        let str = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        var off = 0
        for u in str.unicodeScalars {
            let len = UTF8.width(u)
            if let id = vocab[String(u)] { s.append(id) } else { unknown(p + off, len, &s) }
            off += len
        }
    }

    private func unknown(_ p: UnsafePointer<UInt8>, _ len: Int, _ s: inout [Int32]) {
        if byteFallback, (0..<len).allSatisfy({ fallbackIds[Int(p[$0])] >= 0 }) {
            for i in 0..<len { s.append(fallbackIds[Int(p[i])]) }
            return
        }
        guard let u = unkToken, let id = vocab[u] else { return }
        if fuseUnk, s.last == id { return }
        s.append(id)
    }

    /// Merges `s` in place.
    func merge(_ s: inout [Int32], ranks: inout [UInt64]) {
        let n = s.count
        if n < 2 { return }
        if n > 96 {
            mergeLong(&s)
            return
        }
        ranks.removeAll(keepingCapacity: true)
        for i in 0..<(n - 1) { ranks.append(table.lookup(s[i], s[i + 1])) }
        var count = n
        s.withUnsafeMutableBufferPointer { sp in
            ranks.withUnsafeMutableBufferPointer { rp in
                while count > 1 {
                    var best = MergeTable.empty
                    var at = -1
                    for i in 0..<(count - 1) where rp[i] < best {
                        best = rp[i]
                        at = i
                    }
                    if at < 0 { break }
                    // rank << 32 | id: comparing whole values compares ranks (a rank has one merged id).
                    sp[at] = Int32(bitPattern: UInt32(truncatingIfNeeded: best))
                    let tail = count - at - 2
                    if tail > 0 {
                        (sp.baseAddress! + at + 1).update(from: sp.baseAddress! + at + 2, count: tail)
                        (rp.baseAddress! + at + 1).update(from: rp.baseAddress! + at + 2, count: tail - 1)
                    }
                    count -= 1
                    if at > 0 { rp[at - 1] = table.lookup(sp[at - 1], sp[at]) }
                    if at < count - 1 { rp[at] = table.lookup(sp[at], sp[at + 1]) }
                }
            }
        }
        s.removeLast(n - count)
    }

    /// The same merges for long pieces: a linked list of symbols and a heap of (rank, position).
    func mergeLong(_ s: inout [Int32]) {
        let n = s.count
        var next = [Int](0..<n).map { $0 + 1 }
        var prev = [Int](0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            let r = table.lookup(s[i], s[i + 1])
            if r != MergeTable.empty { heap.push(r >> 32, i, Int32(bitPattern: UInt32(truncatingIfNeeded: r))) }
        }
        while let top = heap.pop() {
            let i = top.pos
            guard alive[i], next[i] < n else { continue }
            let j = next[i]
            let r = table.lookup(s[i], s[j])
            guard r != MergeTable.empty, r >> 32 == top.rank else { continue }
            s[i] = top.id
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 {
                let r = table.lookup(s[prev[i]], s[i])
                if r != MergeTable.empty { heap.push(r >> 32, prev[i], Int32(bitPattern: UInt32(truncatingIfNeeded: r))) }
            }
            if next[i] < n {
                let r = table.lookup(s[i], s[next[i]])
                if r != MergeTable.empty { heap.push(r >> 32, i, Int32(bitPattern: UInt32(truncatingIfNeeded: r))) }
            }
        }
        var out: [Int32] = []
        var i = 0
        while i < n {
            out.append(s[i])
            i = next[i]
        }
        s = out
    }
}

/// A binary min-heap of (rank, position, merged id), ordered by rank then position.
struct MinHeap {
    var items: [(rank: UInt64, pos: Int, id: Int32)] = []

    @inline(__always) static func less(_ a: (rank: UInt64, pos: Int, id: Int32), _ b: (rank: UInt64, pos: Int, id: Int32)) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }

    mutating func push(_ rank: UInt64, _ pos: Int, _ id: Int32) {
        items.append((rank, pos, id))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !MinHeap.less(items[i], items[p]) { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> (rank: UInt64, pos: Int, id: Int32)? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < items.count && MinHeap.less(items[l], items[m]) { m = l }
            if r < items.count && MinHeap.less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
    }
}

// MARK: - tokenizer.json

extension BPEModel {
    /// `vocabEntries`: the vocabulary when it was read apart from the JSON (`VocabScan`), else json["vocab"].
    init(json: JSONValue, vocabEntries: [(String, Int)]? = nil) throws {
        guard json["type"]?.stringValue ?? "BPE" == "BPE" else {
            throw LoomError("model \(json["type"]?.stringValue ?? "?") is not supported (BPE only)")
        }
        for k in ["continuing_subword_prefix", "end_of_word_suffix", "dropout"] {
            if let v = json[k], v != .null { throw LoomError("model: \(k) \(v.jsonString) is not supported") }
        }
        var entries: [(String, Int?)] = []
        if let given = vocabEntries {
            entries = given.map { ($0.0, Optional($0.1)) }
        } else {
            guard let vobj = json["vocab"]?.objectValue else { throw LoomError("model without a vocab object") }
            entries = vobj.map { ($0.key, $0.value.intValue) }
        }
        var vocab = Vocabulary()
        vocab.reserveCapacity(entries.count)
        for (k, v) in entries {
            guard let i = v, i >= 0, i <= Int(Int32.max) else { throw LoomError("vocab: \(k) has no valid id") }
            vocab[k] = Int32(i)
        }
        var merges: [(String, String)] = []
        for (n, m) in (json["merges"]?.arrayValue ?? []).enumerated() {
            if let s = m.stringValue {
                // "a b": the parts are split at the first space (byte-level tokens never contain one).
                // Split by scalars: a space followed by a combining mark is one Character, not a " ".
                let scalars = s.unicodeScalars
                guard let sp = scalars.firstIndex(of: " ") else { throw LoomError("merge \(n + 1) \"\(s)\" has no space") }
                merges.append((String(scalars[..<sp]), String(scalars[scalars.index(after: sp)...])))
            } else if let a = m.arrayValue, a.count == 2, let x = a[0].stringValue, let y = a[1].stringValue {
                merges.append((x, y))
            } else {
                throw LoomError("merge \(n + 1) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        try self.init(
            vocab: vocab, merges: merges, unkToken: json["unk_token"]?.stringValue,
            byteFallback: json["byte_fallback"]?.boolValue ?? false, fuseUnk: json["fuse_unk"]?.boolValue ?? false,
            ignoreMerges: json["ignore_merges"]?.boolValue ?? false)
    }

    func json(mergesAsPairs: Bool) -> JSONValue {
        var v = JSONObject()
        for (i, t) in tokens.enumerated() where vocab[t] == Int32(i) { v.append(t, .int(i)) }
        let m: [JSONValue] = merged.map { mergesAsPairs ? [.string($0.0), .string($0.1)] : .string($0.0 + " " + $0.1) }
        return [
            "type": "BPE", "dropout": nil, "unk_token": unkToken.map { .string($0) } ?? .null,
            "continuing_subword_prefix": nil, "end_of_word_suffix": nil, "fuse_unk": .bool(fuseUnk),
            "byte_fallback": .bool(byteFallback), "ignore_merges": .bool(ignoreMerges), "vocab": .object(v),
            "merges": .array(m),
        ]
    }
}
