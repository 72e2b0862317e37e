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

    public init(_ options: Normalization) {
        self.options = options
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
            normalizeUnicode(String(decoding: text, as: UTF8.self), into: &out)
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

    private func normalizeUnicode(_ text: String, into out: inout [UInt8]) {
        var s = options.nfkc ? text.precomposedStringWithCompatibilityMapping : text
        if options.casefold {
            s = s.lowercased()
            if s.unicodeScalars.contains(where: { $0 == "ß" || $0 == "ς" }) {
                s = s.replacingOccurrences(of: "ß", with: "ss").replacingOccurrences(of: "ς", with: "σ")
            }
        }
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
