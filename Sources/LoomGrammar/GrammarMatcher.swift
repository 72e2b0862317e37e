// The byte-level matcher of a compiled schema: a stack of frames, one per open value (object, array, string, literal,
// number), fed one byte at a time. A frame that is complete but could grow (a number, an enum value that prefixes
// another) hands a byte it cannot take to its parent. The state is a handful of 24-byte frames, so copying it is
// cheap: TokenMask keeps one state per trie depth and copies the parent's before each byte.

import LoomCore

/// One open value. Fields by kind and phase are documented at the phase constants below.
public struct GrammarFrame: Equatable, Sendable {
    var node: Int32
    var phase: Int32
    var a: Int32
    var b: Int32
    var v: Int64
}

// Phases (0 is always "not started").
// object: 1 after '{'; 2 in a key literal (a: trie node, b: first candidate property); 3 after property a's value
// array: 1 after '['; 2 after item number a; 3 after ',' (a items so far)
// string: 1 in the body (a: code points so far; b: pending UTF-8 continuation count | low << 8 | high << 16);
//         2 after '\'; 3 in \uXXXX (b: digits | value << 4)
// literals: a: trie node (the root before the first byte)
// integer: 1 after '-'; 2 in the digits (a: digit count, b: 1 when negative, v: magnitude)
// number: 1 after '-'; 2 after a leading 0; 3 integer digits (a count); 4 after '.'; 5 fraction digits (b count);
//         6 after 'e'; 7 after the exponent's sign; 8 exponent digits (b count)

extension JSONSchemaGrammar {
    @inline(__always) func frame(for node: Int32) -> GrammarFrame {
        let n = nodes[Int(node)]
        return GrammarFrame(node: node, phase: 0, a: n.kind == .literals ? n.child : 0, b: 0, v: 0)
    }

    @inline(__always) func trieChild(_ t: Int32, _ c: UInt8) -> Int32 {
        var i = Int(childStart[Int(t)])
        let e = Int(childStart[Int(t) + 1])
        while i < e {
            if childByte[i] == c { return childNode[i] }
            i += 1
        }
        return -1
    }

    @inline(__always) func integerFeasible(negative: Bool, magnitude m: Int64, digits d: Int32, lo: Int64, hi: Int64) -> Bool {
        @inline(__always) func hit(_ a: Int64, _ b: Int64) -> Bool { negative ? (-b <= hi && -a >= lo) : (a <= hi && b >= lo) }
        if !(negative && m == 0) && hit(m, m) { return true }
        if m == 0 { return false }
        var p: Int64 = 1
        var j = d
        while j < Int32(Self.integerDigits) {
            p &*= 10
            if hit(m &* p, m &* p &+ p &- 1) { return true }
            j += 1
        }
        return false
    }

    /// Whether a frame is a complete value that may still grow (a number, an enum value that prefixes another).
    @inline(__always) func canEnd(_ f: GrammarFrame) -> Bool {
        let n = nodes[Int(f.node)]
        switch n.kind {
        case .literals: return trieValue[Int(f.a)] >= 0
        case .integer:
            guard f.phase == 2 else { return false }
            let neg = f.b == 1
            if neg && f.v == 0 { return false }
            let value = neg ? -f.v : f.v
            return value >= n.lo && value <= n.hi
        case .number: return f.phase == 2 || f.phase == 3 || f.phase == 5 || f.phase == 8
        default: return false
        }
    }

    /// Feeds one byte to the stack `s[0..<count]` (room for maxFrames). False: the byte cannot come next (the
    /// stack is then undefined).
    public func feed(_ s: UnsafeMutablePointer<GrammarFrame>, _ count: inout Int, _ c: UInt8) -> Bool {
        while count > 0 {
            let top = count - 1
            var f = s[top]
            let n = nodes[Int(f.node)]
            switch n.kind {
            case .string:
                switch f.phase {
                case 0:
                    guard c == 0x22 else { return false }
                    s[top].phase = 1
                    return true
                case 1:
                    if f.b != 0 {
                        let low = UInt8(truncatingIfNeeded: f.b >> 8), high = UInt8(truncatingIfNeeded: f.b >> 16)
                        guard c >= low && c <= high else { return false }
                        let left = (f.b & 3) - 1
                        s[top].b = left == 0 ? 0 : left | (0x80 << 8) | (0xBF << 16)
                        return true
                    }
                    if c == 0x22 {
                        guard f.a >= n.minN else { return false }
                        count -= 1
                        return true
                    }
                    guard f.a < n.maxN else { return false }
                    if c < 0x80 {
                        guard c >= 0x20 else { return false }
                        if c == 0x5C { s[top].phase = 2 }
                        s[top].a = f.a + 1
                        return true
                    }
                    let pending: Int32
                    switch c {
                    case 0xC2...0xDF: pending = 1 | (0x80 << 8) | (0xBF << 16)
                    case 0xE0: pending = 2 | (0xA0 << 8) | (0xBF << 16)
                    case 0xED: pending = 2 | (0x80 << 8) | (0x9F << 16)
                    case 0xE1...0xEF: pending = 2 | (0x80 << 8) | (0xBF << 16)
                    case 0xF0: pending = 3 | (0x90 << 8) | (0xBF << 16)
                    case 0xF1...0xF3: pending = 3 | (0x80 << 8) | (0xBF << 16)
                    case 0xF4: pending = 3 | (0x80 << 8) | (0x8F << 16)
                    default: return false
                    }
                    s[top].a = f.a + 1
                    s[top].b = pending
                    return true
                case 2:
                    switch c {
                    case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: s[top].phase = 1
                    case 0x75:
                        s[top].phase = 3
                        s[top].b = 0
                    default: return false
                    }
                    return true
                default:
                    let h: Int32
                    switch c {
                    case 0x30...0x39: h = Int32(c) - 0x30
                    case 0x41...0x46: h = Int32(c) - 0x41 + 10
                    case 0x61...0x66: h = Int32(c) - 0x61 + 10
                    default: return false
                    }
                    let digits = (f.b & 15) + 1
                    let value = (f.b >> 4) << 4 | h
                    // No UTF-16 surrogates: D800-DFFF is ruled out at the second digit.
                    if digits == 2 && value >= 0xD8 && value <= 0xDF { return false }
                    if digits == 4 {
                        s[top].phase = 1
                        s[top].b = 0
                    } else {
                        s[top].b = digits | value << 4
                    }
                    return true
                }
            case .object:
                switch f.phase {
                case 0:
                    guard c == 0x7B else { return false }
                    s[top].phase = 1
                    return true
                case 1:
                    if c == 0x7D {
                        guard !requiredFrom[Int(n.reqStart)] else { return false }
                        count -= 1
                        return true
                    }
                    guard n.count > 0 else { return false }
                    f.phase = 2
                    f.a = keyRoot[Int(n.start)]
                    f.b = 0
                    s[top] = f
                    continue
                case 2:
                    let next = trieChild(f.a, c)
                    guard next >= 0 else { return false }
                    let value = trieValue[Int(next)]
                    if value >= 0 {
                        // A key literal ends with ':' (so none prefixes another): the value comes next.
                        let property = f.b + value
                        s[top].phase = 3
                        s[top].a = property
                        s[count] = frame(for: propChild[Int(n.start + property)])
                        count += 1
                    } else {
                        s[top].a = next
                    }
                    return true
                default:
                    let following = f.a + 1
                    if c == 0x2C {
                        guard following < n.count else { return false }
                        s[top].phase = 2
                        s[top].a = keyRoot[Int(n.start + following)]
                        s[top].b = following
                        return true
                    }
                    guard c == 0x7D, !requiredFrom[Int(n.reqStart + following)] else { return false }
                    count -= 1
                    return true
                }
            case .array:
                switch f.phase {
                case 0:
                    guard c == 0x5B else { return false }
                    s[top].phase = 1
                    return true
                case 1:
                    if c == 0x5D {
                        guard n.minN == 0 else { return false }
                        count -= 1
                        return true
                    }
                    guard n.maxN > 0 else { return false }
                    s[top].phase = 2
                    s[top].a = 1
                    s[count] = frame(for: n.child)
                    count += 1
                    continue
                case 2:
                    if c == 0x2C {
                        guard f.a < n.maxN else { return false }
                        s[top].phase = 3
                        return true
                    }
                    guard c == 0x5D, f.a >= n.minN else { return false }
                    count -= 1
                    return true
                default:
                    s[top].phase = 2
                    s[top].a = f.a + 1
                    s[count] = frame(for: n.child)
                    count += 1
                    continue
                }
            case .literals:
                let next = trieChild(f.a, c)
                if next < 0 {
                    guard trieValue[Int(f.a)] >= 0 else { return false }
                    count -= 1
                    continue
                }
                if trieValue[Int(next)] >= 0 && childStart[Int(next)] == childStart[Int(next) + 1] {
                    count -= 1
                } else {
                    s[top].a = next
                }
                return true
            case .integer:
                let digit = c >= 0x30 && c <= 0x39
                switch f.phase {
                case 0, 1:
                    if f.phase == 0 && c == 0x2D {
                        guard n.lo <= min(n.hi, -1) else { return false }
                        s[top].phase = 1
                        return true
                    }
                    guard digit else { return false }
                    let neg = f.phase == 1
                    let m = Int64(c - 0x30)
                    guard integerFeasible(negative: neg, magnitude: m, digits: 1, lo: n.lo, hi: n.hi) else { return false }
                    s[top].phase = 2
                    s[top].a = 1
                    s[top].b = neg ? 1 : 0
                    s[top].v = m
                    return true
                default:
                    if digit && f.v != 0 && f.a < Int32(Self.integerDigits) {
                        let m = f.v * 10 + Int64(c - 0x30)
                        if integerFeasible(negative: f.b == 1, magnitude: m, digits: f.a + 1, lo: n.lo, hi: n.hi) {
                            s[top].a = f.a + 1
                            s[top].v = m
                            return true
                        }
                    }
                    guard canEnd(f) else { return false }
                    count -= 1
                    continue
                }
            case .number:
                let digit = c >= 0x30 && c <= 0x39
                switch f.phase {
                case 0, 1:
                    if f.phase == 0 && c == 0x2D {
                        s[top].phase = 1
                        return true
                    }
                    guard digit else { return false }
                    s[top].phase = c == 0x30 ? 2 : 3
                    s[top].a = 1
                    return true
                case 2, 3:
                    if digit && f.phase == 3 && f.a < Int32(Self.numberDigits) {
                        s[top].a = f.a + 1
                        return true
                    }
                    if c == 0x2E {
                        s[top].phase = 4
                        return true
                    }
                    if c == 0x65 || c == 0x45 {
                        s[top].phase = 6
                        return true
                    }
                    count -= 1
                    continue
                case 4:
                    guard digit else { return false }
                    s[top].phase = 5
                    s[top].b = 1
                    return true
                case 5:
                    if digit && f.b < Int32(Self.numberDigits) {
                        s[top].b = f.b + 1
                        return true
                    }
                    if c == 0x65 || c == 0x45 {
                        s[top].phase = 6
                        return true
                    }
                    count -= 1
                    continue
                case 6:
                    if c == 0x2B || c == 0x2D {
                        s[top].phase = 7
                        return true
                    }
                    guard digit else { return false }
                    s[top].phase = 8
                    s[top].b = 1
                    return true
                case 7:
                    guard digit else { return false }
                    s[top].phase = 8
                    s[top].b = 1
                    return true
                default:
                    if digit && f.b < Int32(Self.exponentDigits) {
                        s[top].b = f.b + 1
                        return true
                    }
                    count -= 1
                    continue
                }
            }
        }
        return false
    }
}

/// A position in a document: feed it bytes; ask whether the document is complete.
public struct GrammarMatcher: Sendable {
    public let grammar: JSONSchemaGrammar
    public private(set) var frames: [GrammarFrame]
    public private(set) var count: Int

    public init(_ grammar: JSONSchemaGrammar) {
        self.grammar = grammar
        frames = [GrammarFrame](repeating: GrammarFrame(node: 0, phase: 0, a: 0, b: 0, v: 0), count: grammar.maxFrames + 1)
        frames[0] = grammar.frame(for: grammar.root)
        count = 1
    }

    /// Feeds one byte; false (and the matcher unchanged) when it cannot come next.
    @discardableResult
    public mutating func feed(_ c: UInt8) -> Bool {
        var n = count
        var copy = frames
        let ok = copy.withUnsafeMutableBufferPointer { grammar.feed($0.baseAddress!, &n, c) }
        if ok {
            frames = copy
            count = n
        }
        return ok
    }

    /// Feeds bytes; false (and the matcher unchanged) when one of them cannot come next.
    @discardableResult
    public mutating func feed<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        var n = count
        var copy = frames
        let ok = copy.withUnsafeMutableBufferPointer { p in bytes.allSatisfy { grammar.feed(p.baseAddress!, &n, $0) } }
        if ok {
            frames = copy
            count = n
        }
        return ok
    }

    /// The document is complete here (it may still grow: a top-level number).
    public var isComplete: Bool { count == 0 || (count == 1 && grammar.canEnd(frames[0])) }

    /// The bytes that may come next.
    public var allowedBytes: [UInt8] {
        (0...255).compactMap { c in
            var m = self
            return m.feed(UInt8(c)) ? UInt8(c) : nil
        }
    }

    /// Complete, and nothing may follow.
    public var mustStop: Bool { count == 0 || (isComplete && allowedBytes.isEmpty) }

    /// Inside a string's body with no escape or UTF-8 character half written: the code points still allowed.
    public var stringRoom: Int? {
        guard count > 0 else { return nil }
        let f = frames[count - 1]
        guard f.phase == 1, f.b == 0 else { return nil }
        let n = grammar.nodes[Int(f.node)]
        guard n.kind == .string else { return nil }
        return Int(n.maxN - f.a)
    }

    /// The open frames, bottom first (for the trie walk's scratch states).
    func withFrames<R>(_ body: (UnsafeBufferPointer<GrammarFrame>) -> R) -> R {
        frames.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }
}
