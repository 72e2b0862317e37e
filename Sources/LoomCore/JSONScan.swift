// A validating scan of one JSON record that finds top-level members without building a tree: for stages that
// need one or two fields of millions of records (dedup reads `id` and `text` and copies the line through as it
// is). It accepts exactly what `JSONValue.parse` accepts, so a line is rejected the same way whichever reads it.

import Foundation

/// The byte ranges of the top-level members a caller asked for, found by `JSONScan.scan`.
public struct JSONMembers {
    /// For each wanted key, the range of its value's bytes in the line (strings include their quotes).
    public var values: [Range<Int>?]
    /// Whether the line is an object at all (an array or scalar line scans fine but has no members).
    public var isObject = false
}

public enum JSONScan {
    /// Validates `line` as one JSON value and returns where the `keys` members of a top-level object are.
    /// Keys are compared after unescaping; a repeated key keeps its last value, as `JSONValue.parse` does.
    public static func scan(_ line: UnsafeBufferPointer<UInt8>, keys: [[UInt8]]) throws -> JSONMembers {
        var s = Scanner(b: line)
        var found = JSONMembers(values: Array(repeating: nil, count: keys.count))
        s.skipSpace()
        guard s.i < line.count else { throw s.fail("unexpected end of input") }
        if line[s.i] == UInt8(ascii: "{") {
            found.isObject = true
            try s.object(depth: 0, keys: keys, found: &found)
        } else {
            try s.value(depth: 0)
        }
        s.skipSpace()
        if s.i != line.count { throw s.fail("unexpected text after the value") }
        return found
    }

    /// Appends the unescaped UTF-8 of the JSON string at `range` (quotes included) to `out`. The range must come
    /// from `scan`, which has already checked the escapes.
    public static func appendString(_ line: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, to out: inout [UInt8]) {
        var i = range.lowerBound + 1
        let end = range.upperBound - 1
        while i < end {
            // Copy the run up to the next backslash in one go.
            var j = end
            if let q = memchr(line.baseAddress! + i, 0x5C, end - i) {
                j = line.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self))
            }
            if j > i { out.append(contentsOf: UnsafeBufferPointer(rebasing: line[i..<j])) }
            i = j
            guard i < end else { break }
            let e = line[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(line, i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    let low = hex4(line, i + 2)
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                appendUTF8(scalar, to: &out)
            default: out.append(e)  // \" \\ \/
            }
        }
    }

    /// Whether any byte of `w` is '"', '\\' or below 0x20 (the classic has-zero-byte and has-less-than tricks;
    /// exact, no false positives that matter: a hit only ends the fast path).
    @inline(__always) static func special(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let q = w ^ (ones &* 0x22)
        let s = w ^ (ones &* 0x5C)
        let zeroQ = (q &- ones) & ~q & highs
        let zeroS = (s &- ones) & ~s & highs
        let less = (w &- ones &* 0x20) & ~w & highs
        return (zeroQ | zeroS | less) != 0
    }

    static func hex4(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = b[at + k]
            let d: UInt32 =
                c <= 0x39 ? UInt32(c - 0x30) : c <= 0x46 ? UInt32(c - 0x41 + 10) : UInt32(c - 0x61 + 10)
            v = v << 4 | d
        }
        return v
    }

    static func appendUTF8(_ s: UInt32, to out: inout [UInt8]) {
        switch s {
        case 0..<0x80: out.append(UInt8(s))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | s >> 6))
            out.append(UInt8(0x80 | s & 0x3F))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | s >> 12))
            out.append(UInt8(0x80 | (s >> 6) & 0x3F))
            out.append(UInt8(0x80 | s & 0x3F))
        default:
            out.append(UInt8(0xF0 | s >> 18))
            out.append(UInt8(0x80 | (s >> 12) & 0x3F))
            out.append(UInt8(0x80 | (s >> 6) & 0x3F))
            out.append(UInt8(0x80 | s & 0x3F))
        }
    }

    struct Scanner {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        var key: [UInt8] = []

        func fail(_ m: String) -> JSONParseError { JSONParseError(offset: i, message: m) }

        @inline(__always) mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func object(depth: Int, keys: [[UInt8]], found: inout JSONMembers) throws {
            guard depth < 512 else { throw fail("nesting deeper than 512") }
            i += 1
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyStart = i
                let plain = try string()
                let keyRange = keyStart..<i
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                let valueStart = i
                try value(depth: depth + 1)
                if !keys.isEmpty {
                    let k: UnsafeBufferPointer<UInt8>
                    if plain {
                        k = UnsafeBufferPointer(rebasing: b[(keyRange.lowerBound + 1)..<(keyRange.upperBound - 1)])
                        if let n = keys.firstIndex(where: { $0.elementsEqual(k) }) { found.values[n] = valueStart..<i }
                    } else {
                        key.removeAll(keepingCapacity: true)
                        JSONScan.appendString(b, keyRange, to: &key)
                        if let n = keys.firstIndex(of: key) { found.values[n] = valueStart..<i }
                    }
                }
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of input in object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func value(depth: Int) throws {
            guard depth < 512 else { throw fail("nesting deeper than 512") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                var none = JSONMembers(values: [])
                try object(depth: depth, keys: [], found: &none)
            case UInt8(ascii: "["):
                i += 1
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return }
                while true {
                    skipSpace()
                    try value(depth: depth + 1)
                    skipSpace()
                    guard i < b.count else { throw fail("unexpected end of input in array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count, memcmp(b.baseAddress! + i, word.utf8Start, n) == 0 else {
                throw fail("unexpected character")
            }
            i += n
        }

        /// The same number grammar as `JSONParser.number`, then the same conversion check.
        mutating func number() throws {
            let start = i
            var isDouble = false
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            while i < b.count {
                let c = b[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                    || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
                {
                    isDouble = true
                    i += 1
                    continue
                }
                break
            }
            guard i > start else { throw fail("unexpected character") }
            let digitsOnly = !isDouble && i - start <= 18
            if digitsOnly && (b[start] != UInt8(ascii: "-") || i - start > 1) { return }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if !isDouble, Int(text) != nil { return }
            guard Double(text) != nil else { throw JSONParseError(offset: start, message: "bad number '\(text)'") }
        }

        /// Skips a string, checking it; returns whether it had no escapes.
        mutating func string() throws -> Bool {
            i += 1
            var plain = true
            // Eight bytes at a time while none is a quote, a backslash or a control character.
            let raw = UnsafeRawPointer(b.baseAddress!)
            while i + 8 <= b.count {
                let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if JSONScan.special(w) { break }
                i += 8
            }
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; return plain }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { i += 1; continue }
                plain = false
                i += 1
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    let scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("bad surrogate pair") }
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("lone surrogate")
                    }
                default:
                    throw fail("bad escape")
                }
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short unicode escape") }
            for k in 0..<4 {
                switch b[i + k] {
                case 0x30...0x39, 0x41...0x46, 0x61...0x66: continue
                default:
                    i += k
                    throw fail("bad hex digit in unicode escape")
                }
            }
            let v = JSONScan.hex4(b, i)
            i += 4
            return v
        }
    }
}
