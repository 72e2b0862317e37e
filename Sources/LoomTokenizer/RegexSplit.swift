// The GPT-2 and Llama-3 pre-tokeniser regexes, matched by hand over the UTF-8 bytes of a valid string.
//
// At each position the alternatives are tried in the pattern's order and the first that matches wins (regex
// alternation is ordered, not longest). Quantifiers are greedy; where the pattern backtracks (`\s+(?!\S)`,
// `\s*[\r\n]+`) the result of the backtracking is computed directly:
//   \s+(?!\S)   a whitespace run followed by a non-space loses its last scalar (that scalar then starts the next
//               match: " word"), a run at the end is taken whole; a run of one before a non-space fails, and
//               the final \s+ takes it.
//   \s*[\r\n]+  takes the whitespace run up to and including its last \r or \n.

enum RegexSplit {
    @inline(__always) static func isLineBreak(_ c: UInt32) -> Bool { c == 0x0A || c == 0x0D }

    /// End of the run of scalars from `i` whose class has a bit of `mask` (mask 0: the "other" class, no bit set).
    @inline(__always) static func run(
        _ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, _ mask: UInt8, _ bmp: UnsafeMutablePointer<UInt8>
    ) -> Int {
        var j = i
        while j < end {
            let b = p[j]
            if b < 0x80 {
                let c = bmp[Int(b)]
                if mask == 0 ? c != 0 : c & mask == 0 { return j }
                j += 1
            } else {
                let (v, n) = decodeScalar(p, j)
                let c = scalarClass(v, bmp)
                if mask == 0 ? c != 0 : c & mask == 0 { return j }
                j += n
            }
        }
        return j
    }

    /// The whitespace run from `i`: its end, the start of its last scalar and the end of its last \r or \n (or -1).
    @inline(__always) static func spaceRun(
        _ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, _ bmp: UnsafeMutablePointer<UInt8>
    ) -> (end: Int, lastStart: Int, lineBreakEnd: Int) {
        var j = i
        var lastStart = i
        var lb = -1
        while j < end {
            let (v, n) = decodeScalar(p, j)
            if scalarClass(v, bmp) & classSpace == 0 { break }
            lastStart = j
            j += n
            if isLineBreak(v) { lb = j }
        }
        return (j, lastStart, lb)
    }

    /// The contraction after an apostrophe at `i` ('s 't 're 've 'm 'll 'd): the end of the match, or nil.
    @inline(__always) static func contraction(
        _ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, ignoreCase: Bool
    ) -> Int? {
        let j = i + 1
        guard j < end else { return nil }
        @inline(__always) func lower(_ b: UInt8) -> UInt8 { ignoreCase && b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        let a = lower(p[j])
        switch a {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"): return j + 1
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            return j + 1 < end && lower(p[j + 1]) == UInt8(ascii: "e") ? j + 2 : nil
        case UInt8(ascii: "l"):
            return j + 1 < end && lower(p[j + 1]) == UInt8(ascii: "l") ? j + 2 : nil
        case 0xC5:
            // U+017F LATIN SMALL LETTER LONG S folds to s.
            return ignoreCase && j + 1 < end && p[j + 1] == 0xBF ? j + 2 : nil
        default: return nil
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    static func gpt2(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        let bmp = bmpClasses
        var i = start
        while i < end {
            let (c, n) = decodeScalar(p, i)
            if c == 0x27, let j = contraction(p, i, end, ignoreCase: false) {
                emit(i, j)
                i = j
                continue
            }
            var k = i
            var cls = scalarClass(c, bmp)
            if c == 0x20 && i + 1 < end {
                let (c1, _) = decodeScalar(p, i + 1)
                let cls1 = scalarClass(c1, bmp)
                if cls1 & classSpace == 0 {
                    k = i + 1
                    cls = cls1
                }
            }
            let j: Int
            if cls & classLetter != 0 {
                j = run(p, k, end, classLetter, bmp)
            } else if cls & classNumber != 0 {
                j = run(p, k, end, classNumber, bmp)
            } else if cls == 0 {
                j = run(p, k, end, 0, bmp)
            } else {
                let r = spaceRun(p, i, end, bmp)
                j = r.end == end || r.lastStart == i ? r.end : r.lastStart
            }
            emit(i, j)
            i = j
            _ = n
        }
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    static func llama3(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxDigits: Int, _ emit: (Int, Int) -> Void
    ) {
        let bmp = bmpClasses
        var i = start
        while i < end {
            let (c, n) = decodeScalar(p, i)
            if c == 0x27, let j = contraction(p, i, end, ignoreCase: true) {
                emit(i, j)
                i = j
                continue
            }
            let cls = scalarClass(c, bmp)
            var j: Int
            if cls & classLetter != 0 {
                j = run(p, i + n, end, classLetter, bmp)
            } else {
                // The class and position of the next scalar.
                var cls1: UInt8 = 0xFF
                if i + n < end {
                    let (c1, _) = decodeScalar(p, i + n)
                    cls1 = scalarClass(c1, bmp)
                }
                if cls & classNumber == 0 && !isLineBreak(c) && cls1 != 0xFF && cls1 & classLetter != 0 {
                    j = run(p, i + n, end, classLetter, bmp)
                } else if cls & classNumber != 0 {
                    j = i + n
                    var digits = 1
                    while digits < maxDigits && j < end {
                        let (d, m) = decodeScalar(p, j)
                        if scalarClass(d, bmp) & classNumber == 0 { break }
                        j += m
                        digits += 1
                    }
                } else if cls == 0 || (c == 0x20 && cls1 == 0) {
                    j = run(p, cls == 0 ? i : i + 1, end, 0, bmp)
                    while j < end && (p[j] == 0x0A || p[j] == 0x0D) { j += 1 }
                } else {
                    let r = spaceRun(p, i, end, bmp)
                    if r.lineBreakEnd >= 0 {
                        j = r.lineBreakEnd
                    } else {
                        j = r.end == end || r.lastStart == i ? r.end : r.lastStart
                    }
                }
            }
            emit(i, j)
            i = j
        }
    }
}
