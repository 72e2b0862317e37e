// The lexer: UTF-8 bytes to tokens (IEEE 1364-2005 section 3), with line and column kept as it goes. It works on
// raw pointers into buffers the `SourceManager` owns; it never builds a String.

/// Owns the bytes of every file (and macro body) a parse reads, so tokens can point into them.
public final class SourceManager: @unchecked Sendable {
    struct Buffer {
        let base: UnsafeMutablePointer<UInt8>
        let count: Int
        let name: String
    }
    private(set) var buffers: [Buffer] = []
    /// File names for locations (index = Token.file).
    public private(set) var fileNames: [String] = []

    public init() {}

    deinit { for b in buffers { b.base.deallocate() } }

    /// Adds a buffer (a copy of `bytes`) and returns its index; the same index names the file for locations.
    @discardableResult
    public func add<C: Collection>(name: String, bytes: C) -> Int where C.Element == UInt8 {
        let n = bytes.count
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, n) + 1)
        let copied: Void? = bytes.withContiguousStorageIfAvailable { src in
            if let b = src.baseAddress, n > 0 { p.initialize(from: b, count: n) }
        }
        if copied == nil {
            var i = 0
            for b in bytes {
                p[i] = b
                i += 1
            }
        }
        p[n] = 0
        buffers.append(Buffer(base: p, count: n, name: name))
        fileNames.append(name)
        return buffers.count - 1
    }

    func base(_ buffer: Int) -> UnsafeMutablePointer<UInt8> { buffers[buffer].base }
    func count(_ buffer: Int) -> Int { buffers[buffer].count }

    /// The token's text.
    public func text(_ t: Token) -> String {
        let b = buffers[Int(t.buffer)]
        return String(decoding: UnsafeBufferPointer(start: b.base + Int(t.start), count: Int(t.length)), as: UTF8.self)
    }

    /// The token's bytes (no copy: valid while the manager lives).
    func bytes(_ t: Token) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: buffers[Int(t.buffer)].base + Int(t.start), count: Int(t.length))
    }

    public func location(_ t: Token) -> SourceLocation {
        SourceLocation(file: fileNames[Int(t.file)], line: Int(t.line), column: Int(t.column))
    }
}

/// Why the lexer produced an `.error` token.
enum LexError: UInt8 {
    case none, unterminatedComment, unterminatedString, badCharacter, badNumber, emptyEscapedIdentifier
    var message: String {
        switch self {
        case .none: return ""
        case .unterminatedComment: return "unterminated /* comment"
        case .unterminatedString: return "unterminated string (a string must end on its line)"
        case .badCharacter: return "unexpected character"
        case .badNumber: return "malformed number: expected digits after the base"
        case .emptyEscapedIdentifier: return "empty escaped identifier"
        }
    }
}

struct Lexer {
    let base: UnsafePointer<UInt8>
    let end: Int
    var pos: Int
    var line: Int = 1
    var lineStart: Int = 0
    let buffer: UInt16
    let file: UInt16
    var lastError: LexError = .none
    /// Read as synthesis tools do: text between `// synthesis translate_off` and `// synthesis translate_on`
    /// (also `synopsys` or `pragma` for `synthesis`, and in /* */ comments) is skipped, as yosys skips it.
    var synthesis = false

    init(base: UnsafePointer<UInt8>, start: Int, end: Int, buffer: Int, file: Int, line: Int = 1, lineStart: Int = 0) {
        self.base = base
        self.pos = start
        self.end = end
        self.buffer = UInt16(truncatingIfNeeded: buffer)
        self.file = UInt16(truncatingIfNeeded: file)
        self.line = line
        self.lineStart = lineStart
    }

    @inline(__always) func peek(_ k: Int = 0) -> UInt8 { pos + k < end ? base[pos + k] : 0 }

    @inline(__always) static func isIdentStart(_ c: UInt8) -> Bool {
        (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || c == 0x5F
    }
    @inline(__always) static func isIdentChar(_ c: UInt8) -> Bool {
        isIdentStart(c) || (c >= 0x30 && c <= 0x39) || c == 0x24
    }
    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0C || c == 0x0B }

    /// Skips whitespace and comments; false (with lastError set) for an unterminated block comment.
    @inline(__always)
    mutating func skipTrivia() -> Bool {
        while pos < end {
            let c = base[pos]
            if c == 0x0A {
                pos += 1
                line += 1
                lineStart = pos
            } else if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0C || c == 0x0B {
                pos += 1
            } else if c == 0x2F && pos + 1 < end && base[pos + 1] == 0x2F {
                let from = pos + 2
                pos += 2
                while pos < end && base[pos] != 0x0A { pos += 1 }
                if synthesis && translatePragma(from, pos) == .off { skipTranslateOff() }
            } else if c == 0x2F && pos + 1 < end && base[pos + 1] == 0x2A {
                let from = pos + 2
                pos += 2
                defer { if synthesis && translatePragma(from, pos) == .off { skipTranslateOff() } }
                var closed = false
                while pos < end {
                    let d = base[pos]
                    if d == 0x2A && pos + 1 < end && base[pos + 1] == 0x2F {
                        pos += 2
                        closed = true
                        break
                    }
                    if d == 0x0A {
                        line += 1
                        lineStart = pos + 1
                    }
                    pos += 1
                }
                if !closed {
                    lastError = .unterminatedComment
                    return false
                }
            } else if c == 0x5C && pos + 1 < end && (base[pos + 1] == 0x0A || base[pos + 1] == 0x0D) {
                // A line continuation (inside macro bodies).
                pos += 1
            } else {
                return true
            }
        }
        return true
    }

    enum Translate { case none, off, on }

    /// Whether the comment text in [from, to) is `[ws] (synthesis|synopsys|pragma) [ws] translate_off|translate_on`.
    func translatePragma(_ from: Int, _ to: Int) -> Translate {
        var p = from
        func spaces() { while p < to && (base[p] == 0x20 || base[p] == 0x09) { p += 1 } }
        func word(_ w: String) -> Bool {
            let u = Array(w.utf8)
            guard p + u.count <= to else { return false }
            for k in 0..<u.count where base[p + k] != u[k] { return false }
            p += u.count
            return true
        }
        spaces()
        guard word("synthesis") || word("synopsys") || word("pragma") else { return .none }
        guard p < to, base[p] == 0x20 || base[p] == 0x09 else { return .none }
        spaces()
        if word("translate_off") { return .off }
        if word("translate_on") { return .on }
        return .none
    }

    /// After a translate_off comment: skips everything up to and including the next translate_on comment (or to the
    /// end of the buffer), counting lines.
    mutating func skipTranslateOff() {
        while pos < end {
            let c = base[pos]
            if c == 0x0A {
                pos += 1
                line += 1
                lineStart = pos
            } else if c == 0x2F && pos + 1 < end && base[pos + 1] == 0x2F {
                let from = pos + 2
                pos += 2
                while pos < end && base[pos] != 0x0A { pos += 1 }
                if translatePragma(from, pos) == .on { return }
            } else if c == 0x2F && pos + 1 < end && base[pos + 1] == 0x2A {
                let from = pos + 2
                pos += 2
                while pos < end && !(base[pos] == 0x2A && pos + 1 < end && base[pos + 1] == 0x2F) {
                    if base[pos] == 0x0A {
                        line += 1
                        lineStart = pos + 1
                    }
                    pos += 1
                }
                let to = pos
                pos = min(pos + 2, end)
                if translatePragma(from, to) == .on { return }
            } else {
                pos += 1
            }
        }
    }

    /// The next token.
    mutating func next() -> Token {
        let ok = skipTrivia()
        let start = pos
        let col = start - lineStart + 1
        let ln = line
        let bufferID = buffer
        let fileID = file
        func make(_ k: Tok, _ s: Int, _ e: Int) -> Token {
            Token(
                kind: k, buffer: bufferID, file: fileID, start: UInt32(truncatingIfNeeded: s),
                length: UInt32(truncatingIfNeeded: e - s), line: UInt32(truncatingIfNeeded: ln),
                column: UInt32(truncatingIfNeeded: col))
        }
        if !ok { return make(.error, start, pos) }
        if pos >= end { return make(.eof, pos, pos) }
        let c = base[pos]
        if Lexer.isIdentStart(c) {
            var h: UInt32 = 2_166_136_261
            var p = pos
            while p < end {
                let d = base[p]
                if !Lexer.isIdentChar(d) { break }
                h = (h ^ UInt32(d)) &* 16_777_619
                p += 1
            }
            pos = p
            let n = p - start
            let kind: Tok = n <= 20 ? KeywordTable.shared.lookup(base + start, n, hash: h) : .ident
            return make(kind, start, p)
        }
        if Lexer.isDigit(c) { return number(start, make) }
        pos += 1
        switch c {
        case 0x28:  // (
            if peek() == 0x2A {  // (*
                var q = pos + 1
                while q < end && Lexer.isSpace(base[q]) { q += 1 }
                if q < end && base[q] == 0x29 {
                    // `(*)`: the star of `@(*)`, not an attribute. Newlines inside are counted.
                    for i in pos..<q where base[i] == 0x0A {
                        line += 1
                        lineStart = i + 1
                    }
                    pos = q + 1
                    return make(.parenStar, start, pos)
                }
                pos += 1
                return make(.attrOpen, start, pos)
            }
            return make(.lparen, start, pos)
        case 0x29: return make(.rparen, start, pos)
        case 0x5B: return make(.lbracket, start, pos)
        case 0x5D: return make(.rbracket, start, pos)
        case 0x7B: return make(.lbrace, start, pos)
        case 0x7D: return make(.rbrace, start, pos)
        case 0x2C: return make(.comma, start, pos)
        case 0x3B: return make(.semicolon, start, pos)
        case 0x3A: return make(.colon, start, pos)
        case 0x2E: return make(.dot, start, pos)
        case 0x40: return make(.at, start, pos)
        case 0x23: return make(.hash, start, pos)
        case 0x3F: return make(.question, start, pos)
        case 0x3D:  // =
            if peek() == 0x3D {
                pos += 1
                if peek() == 0x3D {
                    pos += 1
                    return make(.caseEq, start, pos)
                }
                return make(.eq, start, pos)
            }
            return make(.assign, start, pos)
        case 0x21:  // !
            if peek() == 0x3D {
                pos += 1
                if peek() == 0x3D {
                    pos += 1
                    return make(.caseNeq, start, pos)
                }
                return make(.neq, start, pos)
            }
            return make(.bang, start, pos)
        case 0x2B:  // +
            if peek() == 0x3A {
                pos += 1
                return make(.plusColon, start, pos)
            }
            return make(.plus, start, pos)
        case 0x2D:  // -
            if peek() == 0x3A {
                pos += 1
                return make(.minusColon, start, pos)
            }
            if peek() == 0x3E {
                pos += 1
                return make(.arrow, start, pos)
            }
            return make(.minus, start, pos)
        case 0x2A:  // *
            if peek() == 0x2A {
                pos += 1
                return make(.power, start, pos)
            }
            if peek() == 0x29 {
                pos += 1
                return make(.attrClose, start, pos)
            }
            return make(.star, start, pos)
        case 0x2F: return make(.slash, start, pos)
        case 0x25: return make(.percent, start, pos)
        case 0x7E:  // ~
            let d = peek()
            if d == 0x26 || d == 0x7C || d == 0x5E {
                pos += 1
                return make(d == 0x26 ? .nand : d == 0x7C ? .nor : .xnor, start, pos)
            }
            return make(.tilde, start, pos)
        case 0x26:  // &
            if peek() == 0x26 {
                pos += 1
                return make(.andAnd, start, pos)
            }
            return make(.amp, start, pos)
        case 0x7C:  // |
            if peek() == 0x7C {
                pos += 1
                return make(.orOr, start, pos)
            }
            return make(.pipe, start, pos)
        case 0x5E:  // ^
            if peek() == 0x7E {
                pos += 1
                return make(.xnor, start, pos)
            }
            return make(.caret, start, pos)
        case 0x3C:  // <
            if peek() == 0x3D {
                pos += 1
                return make(.le, start, pos)
            }
            if peek() == 0x3C {
                pos += 1
                if peek() == 0x3C {
                    pos += 1
                    return make(.ashl, start, pos)
                }
                return make(.shl, start, pos)
            }
            return make(.lt, start, pos)
        case 0x3E:  // >
            if peek() == 0x3D {
                pos += 1
                return make(.ge, start, pos)
            }
            if peek() == 0x3E {
                pos += 1
                if peek() == 0x3E {
                    pos += 1
                    return make(.ashr, start, pos)
                }
                return make(.shr, start, pos)
            }
            return make(.gt, start, pos)
        case 0x27:  // ' : an unsized based number
            pos = start
            return number(start, make)
        case 0x22:  // "
            while pos < end {
                let d = base[pos]
                if d == 0x5C {
                    pos += 2
                    continue
                }
                if d == 0x0A { break }
                pos += 1
                if d == 0x22 { return make(.string, start, pos) }
            }
            pos = min(pos, end)
            lastError = .unterminatedString
            return make(.error, start, pos)
        case 0x5C:  // \escaped identifier: up to white space
            while pos < end && !Lexer.isSpace(base[pos]) { pos += 1 }
            if pos == start + 1 {
                lastError = .emptyEscapedIdentifier
                return make(.error, start, pos)
            }
            return make(.escIdent, start, pos)
        case 0x24:  // $name
            while pos < end && Lexer.isIdentChar(base[pos]) { pos += 1 }
            if pos == start + 1 {
                lastError = .badCharacter
                return make(.error, start, pos)
            }
            return make(.sysIdent, start, pos)
        case 0x60:  // `directive or macro
            while pos < end && Lexer.isIdentChar(base[pos]) { pos += 1 }
            if pos == start + 1 {
                lastError = .badCharacter
                return make(.error, start, pos)
            }
            return make(.directive, start, pos)
        default:
            // One UTF-8 sequence is one bad character.
            while pos < end && base[pos] & 0xC0 == 0x80 { pos += 1 }
            lastError = .badCharacter
            return make(.error, start, pos)
        }
    }

    @inline(__always) static func isBaseDigit(_ c: UInt8) -> Bool {
        isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) || c == 0x5F || (c | 0x20) == 0x78
            || (c | 0x20) == 0x7A || c == 0x3F
    }

    /// decimal, real (1.5, 1e3, 2.5e-3), sized or unsized based number (8'hFF, 'b1, 4 'sd 3).
    mutating func number(_ start: Int, _ make: (Tok, Int, Int) -> Token) -> Token {
        var p = pos
        var sawSize = false
        if p < end && Lexer.isDigit(base[p]) {
            sawSize = true
            while p < end && (Lexer.isDigit(base[p]) || base[p] == 0x5F) { p += 1 }
            // real?
            if p + 1 < end && base[p] == 0x2E && Lexer.isDigit(base[p + 1]) {
                p += 1
                while p < end && (Lexer.isDigit(base[p]) || base[p] == 0x5F) { p += 1 }
                if p < end && (base[p] | 0x20) == 0x65 { p = exponent(p) }
                pos = p
                return make(.realNumber, start, p)
            }
            if p < end && (base[p] | 0x20) == 0x65 {
                let q = exponent(p)
                if q != p {
                    pos = q
                    return make(.realNumber, start, q)
                }
            }
        }
        // A base may follow the size after white space (on the same line).
        var q = p
        if sawSize { while q < end && (base[q] == 0x20 || base[q] == 0x09) { q += 1 } }
        guard q < end && base[q] == 0x27 else {
            pos = p
            return make(.number, start, p)
        }
        var r = q + 1
        if r < end && (base[r] | 0x20) == 0x73 { r += 1 }  // s
        guard r < end else {
            pos = sawSize ? p : q + 1
            if !sawSize { lastError = .badNumber; return make(.error, start, pos) }
            return make(.number, start, p)
        }
        let b = base[r] | 0x20
        guard b == 0x62 || b == 0x6F || b == 0x64 || b == 0x68 else {
            if sawSize {
                pos = p
                return make(.number, start, p)
            }
            pos = q + 1
            lastError = .badNumber
            return make(.error, start, pos)
        }
        r += 1
        while r < end && (base[r] == 0x20 || base[r] == 0x09) { r += 1 }
        let digitsStart = r
        while r < end && Lexer.isBaseDigit(base[r]) { r += 1 }
        if r == digitsStart {
            pos = r
            lastError = .badNumber
            return make(.error, start, r)
        }
        pos = r
        return make(.number, start, r)
    }

    func exponent(_ p0: Int) -> Int {
        var p = p0 + 1
        if p < end && (base[p] == 0x2B || base[p] == 0x2D) { p += 1 }
        guard p < end && Lexer.isDigit(base[p]) else { return p0 }
        while p < end && (Lexer.isDigit(base[p]) || base[p] == 0x5F) { p += 1 }
        return p
    }

    /// The offset where the current line ends (the newline's offset, or the end), skipping nothing.
    func endOfLine(from p0: Int) -> Int {
        var p = p0
        while p < end && base[p] != 0x0A { p += 1 }
        return p
    }
}
