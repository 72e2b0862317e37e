// Reading a large "vocab" object without building it as a JSONValue: LoomCore's JSON parser keeps object keys in
// order and checks each new key against the earlier ones, which is quadratic in the size of an object (a Llama-3
// vocabulary has 128,256 keys). `VocabScan` finds model.vocab in the raw bytes, reads its entries directly and
// hands the rest of the document, with the vocabulary replaced by {}, to the ordinary parser.

import LoomCore

enum VocabScan {
    struct Failure: Error {
        let offset: Int
        let message: String
    }

    /// The document with model.vocab emptied, and the vocabulary; nil when there is no model.vocab object.
    static func split(_ b: UnsafeBufferPointer<UInt8>) throws -> (rest: [UInt8], vocab: [(String, Int)])? {
        var i = 0
        func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        func fail(_ m: String) -> Failure { Failure(offset: i, message: m) }
        func string() throws -> String {
            guard i < b.count, b[i] == 0x22 else { throw fail("expected a string") }
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == 0x22 {
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c != 0x5C {
                    out.append(c)
                    i += 1
                    continue
                }
                guard i + 1 < b.count else { throw fail("unterminated escape") }
                let e = b[i + 1]
                i += 2
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    func hex4() throws -> UInt32 {
                        guard i + 4 <= b.count else { throw fail("short \\u escape") }
                        var v: UInt32 = 0
                        for k in 0..<4 {
                            let h = b[i + k]
                            let d: UInt32
                            switch h {
                            case 0x30...0x39: d = UInt32(h - 0x30)
                            case 0x41...0x46: d = UInt32(h - 0x41 + 10)
                            case 0x61...0x66: d = UInt32(h - 0x61 + 10)
                            default: throw fail("bad \\u escape")
                            }
                            v = v << 4 | d
                        }
                        i += 4
                        return v
                    }
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, i + 1 < b.count, b[i] == 0x5C, b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let lo = try hex4()
                        v = lo >= 0xDC00 && lo < 0xE000 ? 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) : 0xFFFD
                    }
                    out.append(contentsOf: String(Unicode.Scalar(v) ?? "\u{FFFD}").utf8)
                default: throw fail("bad escape")
                }
            }
        }
        /// Skips any value.
        func skip() throws {
            ws()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case 0x22: _ = try string()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < b.count {
                    let c = b[i]
                    if c == 0x22 {
                        _ = try string()
                        continue
                    }
                    if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
                    if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                        depth -= 1
                        if depth == 0 {
                            i += 1
                            return
                        }
                    }
                    i += 1
                }
                throw fail("unterminated container")
            default:
                while i < b.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(b[i]) { i += 1 }
            }
        }
        /// Walks the members of the object at `i`, calling `body` with each key positioned at its value; `body`
        /// returns true when it consumed the value.
        func members(_ body: (String) throws -> Bool) throws {
            ws()
            guard i < b.count, b[i] == UInt8(ascii: "{") else { throw fail("expected an object") }
            i += 1
            ws()
            if i < b.count, b[i] == UInt8(ascii: "}") {
                i += 1
                return
            }
            while true {
                ws()
                let k = try string()
                ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                ws()
                if try !body(k) { try skip() }
                ws()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if b[i] == UInt8(ascii: "}") {
                    i += 1
                    return
                }
                throw fail("expected ',' or '}'")
            }
        }
        var range: Range<Int>? = nil
        var vocab: [(String, Int)] = []
        try members { key in
            guard key == "model" else { return false }
            try members { k in
                guard k == "vocab", i < b.count, b[i] == UInt8(ascii: "{") else { return false }
                let start = i
                try members { token in
                    var neg = false
                    if i < b.count, b[i] == UInt8(ascii: "-") {
                        neg = true
                        i += 1
                    }
                    var v = 0
                    var digits = 0
                    while i < b.count, b[i] >= 0x30, b[i] <= 0x39, digits < 12 {
                        v = v * 10 + Int(b[i] - 0x30)
                        i += 1
                        digits += 1
                    }
                    guard digits > 0 else { throw fail("vocab: the id of \(token) is not an integer") }
                    vocab.append((token, neg ? -v : v))
                    return true
                }
                range = start..<i
                return true
            }
            return true
        }
        guard let r = range else { return nil }
        var rest = Array(b[..<r.lowerBound])
        rest.append(contentsOf: "{}".utf8)
        rest.append(contentsOf: b[r.upperBound...])
        return (rest, vocab)
    }
}
