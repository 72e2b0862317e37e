// One text under the rules: its scalars and what several rule sets share (words, lines), computed once.

public final class FilterDocument {
    public let text: Scalars
    public let meta: [String: Double]
    private var _words: [Range<Int>]?
    private var _wordHashes: [UInt64]?

    /// `meta`: numbers from the record the rules may use (the OCR confidence of its pages).
    public init(_ text: String, meta: [String: Double] = [:]) {
        self.text = text.unicodeScalars.map(\.value)
        self.meta = meta
    }

    /// datatrove's `split_into_words(text)`.
    public var words: [Range<Int>] {
        if let w = _words { return w }
        let w = WordSplitter.words(text)
        _words = w
        return w
    }

    /// A polynomial hash of each word's scalars (see `Poly`).
    var wordHashes: [UInt64] {
        if let h = _wordHashes { return h }
        let h = words.map { Poly.hash(text, $0) }
        _wordHashes = h
        return h
    }

    func string(_ r: Range<Int>) -> String {
        var s = String.UnicodeScalarView()
        for c in text[r] { if let u = Unicode.Scalar(c) { s.append(u) } }
        return String(s)
    }

    func equals(_ r: Range<Int>, _ word: Scalars) -> Bool {
        r.count == word.count && text[r].elementsEqual(word)
    }

    func count(_ needle: Scalars) -> Int { Lines.count(text, 0..<text.count, needle) }
}

/// A polynomial hash modulo 2^64 whose value for a concatenation follows from its parts' (h(xy) = h(x)·B^|y| + h(y)),
/// so n-grams of words, joined with or without a space, hash from per-word values without building strings.
/// Two different n-grams of one text share a hash with probability about 2^-64 per pair.
enum Poly {
    static let base: UInt64 = 0x9E37_79B9_7F4A_7C15 | 1

    static func hash(_ t: Scalars, _ r: Range<Int>) -> UInt64 {
        var h: UInt64 = 0
        for i in r { h = h &* base &+ UInt64(t[i]) &+ 1 }
        return h
    }

    static func power(_ n: Int) -> UInt64 {
        var p: UInt64 = 1
        var b = base
        var e = n
        while e > 0 {
            if e & 1 == 1 { p = p &* b }
            b = b &* b
            e >>= 1
        }
        return p
    }
}

/// Line and paragraph splitting with Python's semantics.
public enum Lines {
    /// Python's str.splitlines(): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029 end a line; a last
    /// terminator gives no empty line after it.
    public static func splitlines(_ t: Scalars, _ r: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = r.lowerBound
        var i = r.lowerBound
        while i < r.upperBound {
            let c = t[i]
            let isBreak = c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85
                || c == 0x2028 || c == 0x2029
            if isBreak {
                out.append(start..<i)
                if c == 0x0D && i + 1 < r.upperBound && t[i + 1] == 0x0A { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < r.upperBound { out.append(start..<r.upperBound) }
        return out
    }

    /// Python's str.split("\n"): every piece, empty ones included.
    public static func splitNewline(_ t: Scalars, _ r: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = r.lowerBound
        for i in r where t[i] == 0x0A {
            out.append(start..<i)
            start = i + 1
        }
        out.append(start..<r.upperBound)
        return out
    }

    /// re.split("\n{min,}", ...): pieces between runs of at least `min` newlines, empty ones included.
    public static func splitNewlineRuns(_ t: Scalars, _ r: Range<Int>, min: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = r.lowerBound
        var i = r.lowerBound
        while i < r.upperBound {
            if t[i] == 0x0A {
                var j = i
                while j < r.upperBound && t[j] == 0x0A { j += 1 }
                if j - i >= min {
                    out.append(start..<i)
                    start = j
                }
                i = j
            } else {
                i += 1
            }
        }
        out.append(start..<r.upperBound)
        return out
    }

    /// Python's str.strip(): the range without whitespace at either end.
    public static func strip(_ t: Scalars, _ r: Range<Int>) -> Range<Int> {
        var lo = r.lowerBound
        var hi = r.upperBound
        while lo < hi && Chars.isSpace(t[lo]) { lo += 1 }
        while hi > lo && Chars.isSpace(t[hi - 1]) { hi -= 1 }
        return lo..<hi
    }

    /// Non-overlapping occurrences of `needle` (Python's str.count).
    public static func count(_ t: Scalars, _ r: Range<Int>, _ needle: Scalars) -> Int {
        guard !needle.isEmpty, r.count >= needle.count else { return 0 }
        var n = 0
        var i = r.lowerBound
        let first = needle[0]
        while i + needle.count <= r.upperBound {
            if t[i] == first && t[i..<(i + needle.count)].elementsEqual(needle) {
                n += 1
                i += needle.count
            } else {
                i += 1
            }
        }
        return n
    }

    static func hasPrefix(_ t: Scalars, _ r: Range<Int>, _ p: Scalars) -> Bool {
        r.count >= p.count && t[r.lowerBound..<(r.lowerBound + p.count)].elementsEqual(p)
    }

    static func hasSuffix(_ t: Scalars, _ r: Range<Int>, _ p: Scalars) -> Bool {
        r.count >= p.count && t[(r.upperBound - p.count)..<r.upperBound].elementsEqual(p)
    }

    /// Python's str.split() with no argument: runs of non-whitespace.
    static func whitespaceWords(_ t: Scalars, _ r: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = r.lowerBound
        while i < r.upperBound {
            while i < r.upperBound && Chars.isSpace(t[i]) { i += 1 }
            let s = i
            while i < r.upperBound && !Chars.isSpace(t[i]) { i += 1 }
            if i > s { out.append(s..<i) }
        }
        return out
    }
}

/// Python's find_duplicates over pieces of a text: how many pieces repeat an earlier one, and their characters.
func findDuplicates(_ t: Scalars, _ pieces: [Range<Int>]) -> (elements: Int, chars: Int) {
    var seen = HashCounts(capacity: pieces.count)
    var elements = 0
    var chars = 0
    for p in pieces {
        // The hash of the piece's characters and its length (Poly's hashes of different lengths may not collide).
        if !seen.add(Poly.hash(t, p) ^ (UInt64(p.count) &* 0x9E37_79B9_7F4A_7C15), first: 0, length: 0) {
            elements += 1
            chars += p.count
        }
    }
    return (elements, chars)
}

extension String {
    var scalars: Scalars { unicodeScalars.map(\.value) }
}
