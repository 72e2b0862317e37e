// Text -> shingle hashes. Two steps: `Normalizer` rewrites the text (NFKC, case folding, punctuation, whitespace;
// each switchable) into bytes whose tokens are separated by single spaces; `Shingler` cuts those into word or
// character n-grams and hashes each to 64 bits. Duplicates are found on the sorted, unique hashes.

import Foundation

/// What normalisation does before shingling. The defaults keep punctuation: stripping it merges "cells." with
/// "cells" and moved pairs across the threshold on the project's near-duplicate corpus (precision 0.93 instead of
/// 1.0 against word-5-gram ground truth), while case folding changed almost nothing there.
public struct Normalization: Codable, Equatable, Sendable {
    /// Unicode NFKC (compatibility composition: "ﬁ" -> "fi", full-width -> ASCII, "²" -> "2").
    public var nfkc = true
    /// Case folding (Unicode lower-case mapping, plus ß -> ss and final sigma -> σ).
    public var casefold = true
    /// Replace Unicode punctuation (general category P) with a space.
    public var stripPunctuation = false
    /// Collapse runs of whitespace to one space and trim the ends. Off: tokens are what `text.split(" ")` gives,
    /// empty ones included.
    public var collapseWhitespace = true

    public init() {}

    static let keys = ["nfkc", "casefold", "strip_punctuation", "collapse_whitespace"]
}

/// Rewrites text per `Normalization` into a reusable byte buffer. ASCII text takes a byte-table path; other text
/// goes through Foundation/Unicode once per document.
public struct Normalizer {
    public let options: Normalization
    /// For each ASCII byte: 0 if it separates tokens (whitespace, and punctuation when stripped), else the byte
    /// it becomes (lower-cased when case folding). `keep` is the same without whitespace (collapsing off).
    private var map = [UInt8](repeating: 0, count: 128)
    private var keep = [UInt8](repeating: 0, count: 128)
    /// For each ASCII scalar: 1 if the Unicode path counts it as whitespace, 2 if as punctuation to strip (its
    /// properties, looked up once here instead of once per character).
    private var kind = [UInt8](repeating: 0, count: 128)
    /// Non-ASCII scalars met so far (one Normalizer serves one thread).
    private let cache = ScalarCache()

    public init(_ options: Normalization) {
        self.options = options
        for c in 0..<128 {
            let u = Unicode.Scalar(UInt8(c))
            if u.properties.isWhitespace || (c >= 0x1C && c <= 0x1F) { kind[c] = 1 }
            if options.stripPunctuation && u.properties.generalCategory.isPunctuation { kind[c] |= 2 }
        }
        for c in 0..<128 {
            let out = options.casefold && c >= 0x41 && c <= 0x5A ? UInt8(c + 32) : UInt8(c)
            let white = c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0
            let punct = options.stripPunctuation && Unicode.Scalar(UInt8(c)).properties.generalCategory.isPunctuation
            map[c] = white || punct ? 0 : out
            keep[c] = punct ? 0x20 : out
        }
    }

    /// Normalises `text` (UTF-8) into `out` (cleared first).
    public func normalize(_ text: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        if isASCII(text) {
            normalizeASCII(text, into: &out)
        } else {
            var folded: [UInt8] = []
            if !foldFast(text, into: &folded) {
                // Not valid UTF-8: the whole text through Foundation (invalid bytes become U+FFFD there).
                folded = Array(fold(String(decoding: text, as: UTF8.self)).utf8)
            }
            folded.withUnsafeBufferPointer { separate($0, into: &out) }
        }
    }

    /// The reference: the old path, the whole text through Foundation, then the scalar loop on properties (tests
    /// compare the fast path with it).
    public func normalizeReference(_ text: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        if isASCII(text) {
            normalizeASCII(text, into: &out)
        } else {
            normalizeUnicode(fold(String(decoding: text, as: UTF8.self)), into: &out)
        }
    }

    /// NFKC then case folding (lower case, ß -> ss, ς -> σ) of a whole string, through Foundation. The two
    /// replacements are made scalar by scalar (String's replacingOccurrences works on grapheme clusters and left
    /// a ß alone when a combining character followed it).
    func fold(_ text: String) -> String {
        var s = options.nfkc ? text.precomposedStringWithCompatibilityMapping : text
        if options.casefold {
            s = s.lowercased()
            if s.unicodeScalars.contains(where: { $0 == "ß" || $0 == "ς" }) {
                var v = String.UnicodeScalarView()
                for u in s.unicodeScalars {
                    switch u {
                    case "ß": v.append(contentsOf: "ss".unicodeScalars)
                    case "ς": v.append("σ")
                    default: v.append(u)
                    }
                }
                s = String(v)
            }
        }
        return s
    }

    /// `fold` without sending the whole text through Foundation: equal to it on every input (tests: every record
    /// of the shared corpora, random strings of awkward characters). NFKC may be applied piecewise wherever the
    /// text has a normalization boundary, and there is one before every character that has canonical combining
    /// class 0, is no mark (so nothing before it can compose with it), no conjoining Hangul jamo, and is its own
    /// NFKC. ASCII characters are such; so are most others (é precomposed, µ, ’, Greek, CJK), whose folded form is
    /// looked up once per Normalizer. A run of other characters (combining marks, compatibility characters, jamo)
    /// goes through Foundation together with the character before it. Lower-casing is per character in the root
    /// locale but for final sigma, which case folding maps to σ anyway. False when the bytes are not valid UTF-8.
    func foldFast(_ t: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        let n = t.count
        out.reserveCapacity(n + n / 8)
        var i = 0
        var prevIn = -1, prevOut = -1  // where the previous (boundary) character starts, in the input and the output
        while i < n {
            let b = t[i]
            if b < 0x80 {
                prevIn = i
                prevOut = out.count
                out.append(options.casefold && b >= 0x41 && b <= 0x5A ? b + 32 : b)
                i += 1
                continue
            }
            guard let (u, len) = decodeScalar(t, i) else { return false }
            let e = cache.entry(u, self)
            if e.boundary {
                prevIn = i
                prevOut = out.count
                out.append(contentsOf: e.folded)
                i += len
                continue
            }
            // A run of characters without a boundary before them, with the character before the run.
            var j = i + len
            while j < n, t[j] >= 0x80 {
                guard let (v, l) = decodeScalar(t, j) else { return false }
                if cache.entry(v, self).boundary { break }
                j += l
            }
            let from = prevIn >= 0 ? prevIn : i
            if prevOut >= 0 { out.removeLast(out.count - prevOut) }
            out.append(contentsOf: fold(String(decoding: UnsafeBufferPointer(rebasing: t[from..<j]), as: UTF8.self)).utf8)
            prevIn = -1
            prevOut = -1
            i = j
        }
        return true
    }

    /// The scalar at `i` of valid UTF-8 (shortest form, no surrogates), and its length; nil otherwise.
    func decodeScalar(_ t: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = UInt32(t[i])
        func cont(_ k: Int) -> UInt32? {
            guard i + k < t.count, t[i + k] & 0xC0 == 0x80 else { return nil }
            return UInt32(t[i + k] & 0x3F)
        }
        var v: UInt32, len: Int
        switch b0 {
        case 0xC2...0xDF:
            guard let c1 = cont(1) else { return nil }
            v = (b0 & 0x1F) << 6 | c1
            len = 2
        case 0xE0...0xEF:
            guard let c1 = cont(1), let c2 = cont(2) else { return nil }
            v = (b0 & 0x0F) << 12 | c1 << 6 | c2
            guard v >= 0x800 else { return nil }
            len = 3
        case 0xF0...0xF4:
            guard let c1 = cont(1), let c2 = cont(2), let c3 = cont(3) else { return nil }
            v = (b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
            guard v >= 0x10000 else { return nil }
            len = 4
        default: return nil
        }
        guard let u = Unicode.Scalar(v) else { return nil }
        return (u, len)
    }

    /// The scalar loop over folded text: whitespace and stripped punctuation become single spaces (or, without
    /// collapsing, spaces one for one), as `normalizeUnicode` does, with ASCII classified by table.
    private func separate(_ s: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var pendingSpace = false
        var i = 0
        while i < s.count {
            let b = s[i]
            var white: Bool, punct: Bool, len = 1
            var isSpaceChar = b == 0x20
            if b < 0x80 {
                white = kind[Int(b)] & 1 != 0
                punct = kind[Int(b)] & 2 != 0
            } else {
                guard let (u, l) = decodeScalar(s, i) else {
                    // (cannot happen: the folded text is valid UTF-8) keep the byte.
                    out.append(b)
                    i += 1
                    continue
                }
                len = l
                let e = cache.entry(u, self)
                white = e.white
                punct = e.punct
                isSpaceChar = false
            }
            if options.collapseWhitespace {
                if white || punct {
                    pendingSpace = true
                    i += len
                    continue
                }
                if pendingSpace {
                    if !out.isEmpty { out.append(0x20) }
                    pendingSpace = false
                }
            } else if punct || (white && isSpaceChar) {
                out.append(0x20)
                i += len
                continue
            }
            for k in i..<(i + len) { out.append(s[k]) }
            i += len
        }
    }

    private func normalizeASCII(_ text: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        // Written through a raw pointer: the output is never longer than the input.
        let n = text.count
        out.append(contentsOf: repeatElement(0, count: n))
        let written = out.withUnsafeMutableBufferPointer { o -> Int in
            if !options.collapseWhitespace {
                keep.withUnsafeBufferPointer { keep in
                    for i in 0..<n { o[i] = keep[Int(text[i])] }
                }
                return n
            }
            return map.withUnsafeBufferPointer { map in
                var w = 0
                var pendingSpace = false
                for i in 0..<n {
                    let c = map[Int(text[i])]
                    if c == 0 {
                        pendingSpace = true
                        continue
                    }
                    if pendingSpace {
                        if w > 0 {
                            o[w] = 0x20
                            w += 1
                        }
                        pendingSpace = false
                    }
                    o[w] = c
                    w += 1
                }
                return w
            }
        }
        out.removeLast(n - written)
    }

    private func normalizeUnicode(_ s: String, into out: inout [UInt8]) {
        var pendingSpace = false
        var scalarBytes: [UInt8] = []
        for u in s.unicodeScalars {
            let white = u.properties.isWhitespace || (u.value >= 0x1C && u.value <= 0x1F)
            let punct = options.stripPunctuation && u.properties.generalCategory.isPunctuation
            if options.collapseWhitespace {
                if white || punct {
                    pendingSpace = true
                    continue
                }
                if pendingSpace {
                    if !out.isEmpty { out.append(0x20) }
                    pendingSpace = false
                }
            } else if punct || (white && u.value == 0x20) {
                out.append(0x20)
                continue
            }
            scalarBytes.removeAll(keepingCapacity: true)
            scalarBytes.append(contentsOf: String(u).utf8)
            out.append(contentsOf: scalarBytes)
        }
    }
}

/// What a Normalizer knows about a non-ASCII scalar: whether the text has a normalization boundary before it (and
/// then its folded form alone), and how the scalar loop classifies it.
final class ScalarCache {
    struct Entry {
        var boundary: Bool
        var folded: [UInt8]
        var white: Bool
        var punct: Bool
    }

    private var entries: [UInt32: Entry] = [:]

    func entry(_ u: Unicode.Scalar, _ n: Normalizer) -> Entry {
        if let e = entries[u.value] { return e }
        let p = u.properties
        let c = String(u)
        var boundary = p.canonicalCombiningClass == .notReordered
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: boundary = false
        default: break
        }
        // Conjoining jamo (and their extensions) compose with the syllable or jamo before them.
        if (0x1100...0x11FF).contains(u.value) || (0xA960...0xA97F).contains(u.value) || (0xD7B0...0xD7FF).contains(u.value) {
            boundary = false
        }
        if boundary && n.options.nfkc && c.precomposedStringWithCompatibilityMapping.unicodeScalars.elementsEqual(c.unicodeScalars) == false {
            boundary = false
        }
        let e = Entry(
            boundary: boundary, folded: boundary ? Array(n.fold(c).utf8) : [],
            white: p.isWhitespace || (u.value >= 0x1C && u.value <= 0x1F),
            punct: n.options.stripPunctuation && p.generalCategory.isPunctuation)
        entries[u.value] = e
        return e
    }
}

extension Unicode.GeneralCategory {
    var isPunctuation: Bool {
        switch self {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }
}

/// How text is cut into shingles.
public enum ShingleKind: String, Codable, Sendable, CaseIterable {
    /// n consecutive space-separated tokens of the normalised text.
    case word
    /// n consecutive Unicode scalars of the normalised text.
    case char
}

/// Cuts normalised text into n-gram shingles and hashes each to 64 bits. A text with fewer than n units is one
/// shingle; an empty text has none. Equal shingles get equal hashes; different ones collide with probability about
/// 2^-64.
public struct Shingler: Sendable {
    public let kind: ShingleKind
    public let n: Int

    public init(kind: ShingleKind, n: Int) {
        self.kind = kind
        self.n = max(1, n)
    }

    /// Writes the shingle hashes of `text` to `out` (cleared first), in text order, repeats included: MinHash does
    /// not care, and exact Jaccard deduplicates the few lists it compares. `units` is scratch space.
    public func shingles(_ text: UnsafeBufferPointer<UInt8>, units: inout [UInt64], into out: inout [UInt64]) {
        out.removeAll(keepingCapacity: true)
        units.removeAll(keepingCapacity: true)
        if text.isEmpty { return }
        // Unit hashes, written through a pointer (at most one unit per byte).
        units.append(contentsOf: repeatElement(0, count: text.count + 1))
        let count = units.withUnsafeMutableBufferPointer { u -> Int in
            var k = 0
            switch kind {
            case .word:
                // Tokens are split on single spaces, exactly like Python's text.split(" ") (an empty text is one
                // empty token there; here it has no shingles at all). A byte-wise multiply-xor hash, finished with
                // the token length and murmur3's mixer.
                var h = Hash.tokenSeed
                var length: UInt64 = 0
                for b in text {
                    if b == 0x20 {
                        u[k] = Hash.fmix(h ^ length)
                        k += 1
                        h = Hash.tokenSeed
                        length = 0
                    } else {
                        h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3
                        length &+= 1
                    }
                }
                u[k] = Hash.fmix(h ^ length)
                k += 1
            case .char:
                var start = 0
                while start < text.count {
                    var end = start + 1
                    while end < text.count, (text[end] & 0xC0) == 0x80 { end += 1 }
                    u[k] = Hash.bytes(text.baseAddress! + start, end - start, seed: Hash.tokenSeed)
                    k += 1
                    start = end
                }
            }
            return k
        }
        let width = min(n, count)
        out.append(contentsOf: repeatElement(0, count: count - width + 1))
        // A rolling polynomial over the unit hashes (mod 2^64, odd multiplier), then murmur3's mixer: each shingle
        // costs a few operations whatever n is. Equal unit sequences give equal hashes.
        let p = Hash.k
        var pn: UInt64 = 1  // p^width
        for _ in 0..<width { pn = pn &* p }
        units.withUnsafeBufferPointer { u in
            out.withUnsafeMutableBufferPointer { o in
                // h = sum of u[k + j] * p^(width - 1 - j); the seed is added after, so it does not roll.
                var h: UInt64 = 0
                for j in 0..<width { h = h &* p &+ u[j] }
                o[0] = Hash.finish(h &+ Hash.shingleSeed)
                if count > width {
                    for k in 1...(count - width) {
                        h = h &* p &+ u[k + width - 1] &- u[k - 1] &* pn
                        o[k] = Hash.finish(h &+ Hash.shingleSeed)
                    }
                }
            }
        }
    }
}

/// The 64-bit hashing the shingler and the content hash use: a multiply-xorshift over 8-byte words with the
/// murmur3 finaliser. Not cryptographic; chosen for speed and good mixing.
enum Hash {
    static let tokenSeed: UInt64 = 0x243F_6A88_85A3_08D3
    static let shingleSeed: UInt64 = 0x1319_8A2E_0370_7344
    static let k: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always) static func fmix(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    @inline(__always) static func combine(_ h: UInt64, _ x: UInt64) -> UInt64 {
        ((h ^ x) &* k).rotatedLeft(27) &+ 0x52DC_E729
    }

    @inline(__always) static func finish(_ h: UInt64) -> UInt64 { fmix(h) }

    static func bytes(_ p: UnsafePointer<UInt8>, _ count: Int, seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(count) &* k)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= count {
            h = combine(h, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i < count {
            var tail: UInt64 = 0
            for j in 0..<(count - i) { tail |= UInt64(p[i + j]) << (8 * UInt64(j)) }
            h = combine(h, tail)
        }
        return fmix(h)
    }
}

extension UInt64 {
    @inline(__always) func rotatedLeft(_ r: UInt64) -> UInt64 { (self << r) | (self >> (64 - r)) }
}


/// Whether every byte is below 0x80, eight bytes at a time.
func isASCII(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let base = b.baseAddress else { return true }
    let raw = UnsafeRawPointer(base)
    var i = 0
    var acc: UInt64 = 0
    while i + 8 <= b.count {
        acc |= raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        i += 8
    }
    while i < b.count {
        acc |= UInt64(b[i])
        i += 1
    }
    return acc & 0x8080_8080_8080_8080 == 0
}
