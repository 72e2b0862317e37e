// Which tokens of a vocabulary may come next under a grammar: the mask constrained decoding applies to the logits.
//
// TokenTrie is the vocabulary prepared once (whatever the grammar): every token's bytes in a prefix tree laid out in
// depth-first order, each node with the index of the node after its subtree, so a walk that rejects a byte skips
// every token that starts with that prefix in one step, and tokens sharing a prefix share the work of matching it
// (the sorted-token trie of llguidance / XGrammar). Tokens without bytes (special and control tokens) are not in it
// and are never allowed.
//
// What does not depend on the state is precomputed (XGrammar's "context-independent tokens"): a token made only of
// whole characters that may stand unescaped in a JSON string ("pure" tokens: no quote, backslash, control byte or
// partial UTF-8 sequence) is allowed inside a string's body exactly when its code points fit in the room left. So
// for each room r up to `pureLimit` a bitset of the pure tokens of at most r code points is kept, and inside a string
// the mask is that bitset OR the trie walk over the other ("impure") tokens only. Everywhere else the walk covers
// the whole trie; outside strings almost every first byte is rejected at once.
//
// `referenceMask` is the plain definition: every token's bytes through a copy of the matcher. Tests check the two
// agree at every step.

import LoomCore

/// A flattened prefix tree over byte strings, in depth-first order.
struct FlatTrie {
    var byte: [UInt8] = []
    /// Depth of each node (1 for a first byte).
    var depth: [UInt16] = []
    /// The node after this node's subtree.
    var skip: [Int32] = []
    /// Tokens ending at node i: ids[idStart[i]..<idStart[i + 1]].
    var idStart: [Int32] = [0]
    var ids: [Int32] = []
    var maxDepth = 0

    /// From (bytes, id) pairs (any order; bytes non-empty).
    init(_ entries: [([UInt8], Int32)]) {
        let sorted = entries.sorted { a, b in
            a.0.lexicographicallyPrecedes(b.0) || (a.0 == b.0 && a.1 < b.1)
        }
        var path: [Int32] = []  // open nodes, by depth - 1
        var previous: [UInt8] = []
        for (bytes, id) in sorted {
            var common = 0
            while common < min(bytes.count, previous.count) && bytes[common] == previous[common] { common += 1 }
            if common == bytes.count && bytes.count == previous.count {
                // Same bytes as the previous token: the same node.
                ids.append(id)
                idStart[idStart.count - 1] = Int32(ids.count)
                continue
            }
            // Close the nodes deeper than the common prefix.
            while path.count > common {
                skip[Int(path.removeLast())] = Int32(byte.count)
            }
            for d in common..<bytes.count {
                path.append(Int32(byte.count))
                byte.append(bytes[d])
                depth.append(UInt16(d + 1))
                skip.append(0)
                idStart.append(Int32(ids.count))
            }
            ids.append(id)
            idStart[idStart.count - 1] = Int32(ids.count)
            maxDepth = max(maxDepth, bytes.count)
            previous = bytes
        }
        while let n = path.popLast() { skip[Int(n)] = Int32(byte.count) }
    }

    var nodeCount: Int { byte.count }
}

/// A vocabulary prepared for masking: token bytes, the token trie, and the pure-string-token tables.
public final class TokenTrie: @unchecked Sendable {
    public let vocabSize: Int
    /// Bytes of each token (nil: never allowed).
    public let tokens: [[UInt8]?]
    let full: FlatTrie
    let impure: FlatTrie
    /// pureUpTo[r]: bitset (vocabSize bits) of the pure tokens of 1...r code points, r in 0...pureLimit.
    let pureUpTo: [[UInt64]]
    public let pureLimit: Int
    public var pureCount: Int { pureUpTo.last.map { $0.reduce(0) { $0 + $1.nonzeroBitCount } } ?? 0 }
    public var trieNodes: Int { full.nodeCount }
    public var impureTrieNodes: Int { impure.nodeCount }

    /// Code points of `b` when it is whole characters that need no escape in a JSON string, else nil.
    static func pureLength(_ b: [UInt8]) -> Int? {
        var i = 0
        var n = 0
        while i < b.count {
            let c = b[i]
            if c < 0x80 {
                if c < 0x20 || c == 0x22 || c == 0x5C { return nil }
                i += 1
            } else {
                let (len, low, high): (Int, UInt8, UInt8)
                switch c {
                case 0xC2...0xDF: (len, low, high) = (2, 0x80, 0xBF)
                case 0xE0: (len, low, high) = (3, 0xA0, 0xBF)
                case 0xED: (len, low, high) = (3, 0x80, 0x9F)
                case 0xE1...0xEF: (len, low, high) = (3, 0x80, 0xBF)
                case 0xF0: (len, low, high) = (4, 0x90, 0xBF)
                case 0xF1...0xF3: (len, low, high) = (4, 0x80, 0xBF)
                case 0xF4: (len, low, high) = (4, 0x80, 0x8F)
                default: return nil
                }
                guard i + len <= b.count, b[i + 1] >= low, b[i + 1] <= high else { return nil }
                for k in 2..<max(2, len) where b[i + k] < 0x80 || b[i + k] > 0xBF { return nil }
                i += len
            }
            n += 1
        }
        return n
    }

    /// `tokens[id]`: the bytes token `id` adds to the text, nil for tokens that must never be generated (special,
    /// control, unused). Tokens beyond `tokens.count` up to `vocabSize` (a model's padded vocabulary) are never allowed.
    public init(tokens given: [[UInt8]?], vocabSize: Int? = nil, pureLimit: Int = 64) {
        let V = max(vocabSize ?? given.count, given.count)
        self.vocabSize = V
        tokens = given.map { $0?.isEmpty == true ? nil : $0 }
        let words = (V + 63) / 64
        var all: [([UInt8], Int32)] = []
        var others: [([UInt8], Int32)] = []
        var byLength = [[Int32]](repeating: [], count: pureLimit + 1)
        for (i, t) in tokens.enumerated() {
            guard let t else { continue }
            all.append((t, Int32(i)))
            if let n = Self.pureLength(t), n >= 1, n <= pureLimit {
                byLength[n].append(Int32(i))
            } else {
                others.append((t, Int32(i)))
            }
        }
        full = FlatTrie(all)
        impure = FlatTrie(others)
        var limit = 0
        for n in 1...max(1, pureLimit) where n < byLength.count && !byLength[n].isEmpty { limit = n }
        self.pureLimit = limit
        var tables: [[UInt64]] = [[UInt64](repeating: 0, count: words)]
        var bits = [UInt64](repeating: 0, count: words)
        if limit >= 1 {
            for n in 1...limit {
                for id in byLength[n] { bits[Int(id) >> 6] |= 1 << UInt64(id & 63) }
                tables.append(bits)
            }
        }
        pureUpTo = tables
    }
}

/// Masks over one vocabulary under one grammar. Thread-safe: each call uses its own scratch space.
public final class TokenMask: @unchecked Sendable {
    public let grammar: JSONSchemaGrammar
    public let trie: TokenTrie

    public init(grammar: JSONSchemaGrammar, trie: TokenTrie) {
        self.grammar = grammar
        self.trie = trie
    }

    public var vocabSize: Int { trie.vocabSize }
    public var words: Int { (trie.vocabSize + 63) / 64 }

    /// Sets the bit of every token that may come next (bit t of word t / 64; other bits are left as they are).
    public func fill(_ m: GrammarMatcher, _ allowed: UnsafeMutablePointer<UInt64>) {
        if let room = m.stringRoom {
            if room > 0 {
                let table = trie.pureUpTo[min(room, trie.pureLimit)]
                table.withUnsafeBufferPointer { t in
                    for w in 0..<t.count { allowed[w] |= t[w] }
                }
            }
            walk(trie.impure, m, allowed)
        } else {
            walk(trie.full, m, allowed)
        }
    }

    /// The fast mask as a new bitset.
    public func mask(_ m: GrammarMatcher) -> [UInt64] {
        var bits = [UInt64](repeating: 0, count: words)
        bits.withUnsafeMutableBufferPointer { fill(m, $0.baseAddress!) }
        return bits
    }

    /// The reference mask: every token's bytes through a copy of the matcher.
    public func referenceMask(_ m: GrammarMatcher) -> [UInt64] {
        var bits = [UInt64](repeating: 0, count: words)
        let F = grammar.maxFrames + 1
        var scratch = [GrammarFrame](repeating: m.frames[0], count: F)
        scratch.withUnsafeMutableBufferPointer { s in
            let p = s.baseAddress!
            for (id, t) in trie.tokens.enumerated() {
                guard let t else { continue }
                var n = m.count
                m.withFrames { f in for i in 0..<n { p[i] = f[i] } }
                var ok = true
                for c in t where !grammar.feed(p, &n, c) {
                    ok = false
                    break
                }
                if ok { bits[id >> 6] |= 1 << UInt64(id & 63) }
            }
        }
        return bits
    }

    /// Depth-first over the trie with one matcher state per depth: a rejected byte skips the node's subtree.
    func walk(_ t: FlatTrie, _ m: GrammarMatcher, _ allowed: UnsafeMutablePointer<UInt64>) {
        let nodes = t.nodeCount
        guard nodes > 0 else { return }
        let F = grammar.maxFrames + 1
        let levels = t.maxDepth + 1
        let states = UnsafeMutablePointer<GrammarFrame>.allocate(capacity: levels * F)
        defer { states.deallocate() }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: levels)
        defer { counts.deallocate() }
        m.withFrames { f in for i in 0..<f.count { states[i] = f[i] } }
        counts[0] = m.count
        let g = grammar
        t.byte.withUnsafeBufferPointer { byte in
            t.depth.withUnsafeBufferPointer { depth in
                t.skip.withUnsafeBufferPointer { skip in
                    t.idStart.withUnsafeBufferPointer { idStart in
                        t.ids.withUnsafeBufferPointer { ids in
                            var i = 0
                            while i < nodes {
                                let d = Int(depth[i])
                                let parent = states + (d - 1) * F
                                let child = states + d * F
                                var n = counts[d - 1]
                                for k in 0..<n { child[k] = parent[k] }
                                if g.feed(child, &n, byte[i]) {
                                    counts[d] = n
                                    var k = Int(idStart[i])
                                    let e = Int(idStart[i + 1])
                                    while k < e {
                                        let id = Int(ids[k])
                                        allowed[id >> 6] |= 1 << UInt64(id & 63)
                                        k += 1
                                    }
                                    i += 1
                                } else {
                                    i = Int(skip[i])
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
