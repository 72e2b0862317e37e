// Tokens of Verilog-2005 (IEEE 1364-2005 section 3): kinds, the keyword table, and the token record the lexer,
// preprocessor and parser share. A token does not own its text: it points into one of the `SourceManager`'s
// buffers (the file it came from, or the file holding the macro body it was expanded from).

public enum Tok: UInt8, Sendable {
    case eof, error
    case ident, escIdent, sysIdent, number, realNumber, string, directive
    // punctuation
    case lparen, rparen, lbracket, rbracket, lbrace, rbrace, comma, semicolon, colon, dot, at, hash, question
    case assign  // =
    case attrOpen, attrClose  // (*  *)
    case parenStar  // (*) in @(*)
    case plusColon, minusColon  // +:  -:
    case arrow  // ->
    case plus, minus, star, slash, percent, power  // + - * / % **
    case bang, tilde, amp, pipe, caret  // ! ~ & | ^
    case nand, nor, xnor  // ~& ~| ~^ (and ^~)
    case andAnd, orOr  // && ||
    case eq, neq, caseEq, caseNeq  // == != === !==
    case lt, le, gt, ge  // < <= > >=
    case shl, shr, ashl, ashr  // << >> <<< >>>
    // keywords
    case kwAlways, kwAnd, kwAssign, kwAutomatic, kwBegin, kwBuf, kwBufif0, kwBufif1, kwCase, kwCasex, kwCasez
    case kwCmos, kwDeassign, kwDefault, kwDefparam, kwDisable, kwElse, kwEnd, kwEndcase, kwEndfunction
    case kwEndgenerate, kwEndmodule, kwEndprimitive, kwEndspecify, kwEndtable, kwEndtask, kwEvent, kwFor, kwForce
    case kwForever, kwFork, kwFunction, kwGenerate, kwGenvar, kwHighz0, kwHighz1, kwIf, kwInitial, kwInout
    case kwInput, kwInteger, kwJoin, kwLarge, kwLocalparam, kwMacromodule, kwMedium, kwModule, kwNand, kwNegedge
    case kwNmos, kwNor, kwNot, kwNotif0, kwNotif1, kwOr, kwOutput, kwParameter, kwPmos, kwPosedge, kwPrimitive
    case kwPull0, kwPull1, kwPulldown, kwPullup, kwRcmos, kwReal, kwRealtime, kwReg, kwRelease, kwRepeat
    case kwRnmos, kwRpmos, kwRtran, kwRtranif0, kwRtranif1, kwScalared, kwSigned, kwSmall, kwSpecify
    case kwSpecparam, kwStrong0, kwStrong1, kwSupply0, kwSupply1, kwTable, kwTask, kwTime, kwTran, kwTranif0
    case kwTranif1, kwTri, kwTri0, kwTri1, kwTriand, kwTrior, kwTrireg, kwUnsigned, kwUwire, kwVectored, kwWait
    case kwWand, kwWeak0, kwWeak1, kwWhile, kwWire, kwWor, kwXnor, kwXor

    public var isKeyword: Bool { rawValue >= Tok.kwAlways.rawValue }
}

/// The spelling of every keyword and operator, for the printer and for diagnostics.
public enum Spelling {
    public static let keywords: [(String, Tok)] = [
        ("always", .kwAlways), ("and", .kwAnd), ("assign", .kwAssign), ("automatic", .kwAutomatic),
        ("begin", .kwBegin), ("buf", .kwBuf), ("bufif0", .kwBufif0), ("bufif1", .kwBufif1), ("case", .kwCase),
        ("casex", .kwCasex), ("casez", .kwCasez), ("cmos", .kwCmos), ("deassign", .kwDeassign),
        ("default", .kwDefault), ("defparam", .kwDefparam), ("disable", .kwDisable), ("else", .kwElse),
        ("end", .kwEnd), ("endcase", .kwEndcase), ("endfunction", .kwEndfunction), ("endgenerate", .kwEndgenerate),
        ("endmodule", .kwEndmodule), ("endprimitive", .kwEndprimitive), ("endspecify", .kwEndspecify),
        ("endtable", .kwEndtable), ("endtask", .kwEndtask), ("event", .kwEvent), ("for", .kwFor),
        ("force", .kwForce), ("forever", .kwForever), ("fork", .kwFork), ("function", .kwFunction),
        ("generate", .kwGenerate), ("genvar", .kwGenvar), ("highz0", .kwHighz0), ("highz1", .kwHighz1),
        ("if", .kwIf), ("initial", .kwInitial), ("inout", .kwInout), ("input", .kwInput), ("integer", .kwInteger),
        ("join", .kwJoin), ("large", .kwLarge), ("localparam", .kwLocalparam), ("macromodule", .kwMacromodule),
        ("medium", .kwMedium), ("module", .kwModule), ("nand", .kwNand), ("negedge", .kwNegedge),
        ("nmos", .kwNmos), ("nor", .kwNor), ("not", .kwNot), ("notif0", .kwNotif0), ("notif1", .kwNotif1),
        ("or", .kwOr), ("output", .kwOutput), ("parameter", .kwParameter), ("pmos", .kwPmos),
        ("posedge", .kwPosedge), ("primitive", .kwPrimitive), ("pull0", .kwPull0), ("pull1", .kwPull1),
        ("pulldown", .kwPulldown), ("pullup", .kwPullup), ("rcmos", .kwRcmos), ("real", .kwReal),
        ("realtime", .kwRealtime), ("reg", .kwReg), ("release", .kwRelease), ("repeat", .kwRepeat),
        ("rnmos", .kwRnmos), ("rpmos", .kwRpmos), ("rtran", .kwRtran), ("rtranif0", .kwRtranif0),
        ("rtranif1", .kwRtranif1), ("scalared", .kwScalared), ("signed", .kwSigned), ("small", .kwSmall),
        ("specify", .kwSpecify), ("specparam", .kwSpecparam), ("strong0", .kwStrong0), ("strong1", .kwStrong1),
        ("supply0", .kwSupply0), ("supply1", .kwSupply1), ("table", .kwTable), ("task", .kwTask), ("time", .kwTime),
        ("tran", .kwTran), ("tranif0", .kwTranif0), ("tranif1", .kwTranif1), ("tri", .kwTri), ("tri0", .kwTri0),
        ("tri1", .kwTri1), ("triand", .kwTriand), ("trior", .kwTrior), ("trireg", .kwTrireg),
        ("unsigned", .kwUnsigned), ("uwire", .kwUwire), ("vectored", .kwVectored), ("wait", .kwWait),
        ("wand", .kwWand), ("weak0", .kwWeak0), ("weak1", .kwWeak1), ("while", .kwWhile), ("wire", .kwWire),
        ("wor", .kwWor), ("xnor", .kwXnor), ("xor", .kwXor),
    ]

    static let punctuation: [Tok: String] = [
        .lparen: "(", .rparen: ")", .lbracket: "[", .rbracket: "]", .lbrace: "{", .rbrace: "}", .comma: ",",
        .semicolon: ";", .colon: ":", .dot: ".", .at: "@", .hash: "#", .question: "?", .assign: "=",
        .attrOpen: "(*", .attrClose: "*)", .parenStar: "(*)", .plusColon: "+:", .minusColon: "-:", .arrow: "->",
        .plus: "+", .minus: "-", .star: "*", .slash: "/", .percent: "%", .power: "**", .bang: "!", .tilde: "~",
        .amp: "&", .pipe: "|", .caret: "^", .nand: "~&", .nor: "~|", .xnor: "~^", .andAnd: "&&", .orOr: "||",
        .eq: "==", .neq: "!=", .caseEq: "===", .caseNeq: "!==", .lt: "<", .le: "<=", .gt: ">", .ge: ">=",
        .shl: "<<", .shr: ">>", .ashl: "<<<", .ashr: ">>>",
    ]

    static let keywordNames: [Tok: String] = {
        var d: [Tok: String] = [:]
        for (s, t) in keywords { d[t] = s }
        return d
    }()

    /// How a token kind is written ("`;`", "keyword `end`", "identifier").
    public static func describe(_ t: Tok) -> String {
        if let k = keywordNames[t] { return "'\(k)'" }
        if let p = punctuation[t] { return "'\(p)'" }
        switch t {
        case .eof: return "end of file"
        case .error: return "invalid text"
        case .ident, .escIdent: return "identifier"
        case .sysIdent: return "system task or function name"
        case .number, .realNumber: return "number"
        case .string: return "string"
        case .directive: return "compiler directive"
        default: return "token"
        }
    }

    public static func text(_ t: Tok) -> String { keywordNames[t] ?? punctuation[t] ?? "" }
}

/// The keyword table: open addressing over an FNV-1a hash of the identifier's bytes, which the lexer computes
/// while it scans them.
struct KeywordTable: Sendable {
    static let size = 512
    var hashes = [UInt32](repeating: 0, count: size)
    var kinds = [Tok](repeating: .ident, count: size)
    var words = [[UInt8]](repeating: [], count: size)

    static let shared = KeywordTable()

    init() {
        for (s, t) in Spelling.keywords {
            let b = Array(s.utf8)
            var h: UInt32 = 2_166_136_261
            for c in b { h = (h ^ UInt32(c)) &* 16_777_619 }
            var i = Int(h & UInt32(KeywordTable.size - 1))
            while !words[i].isEmpty { i = (i + 1) & (KeywordTable.size - 1) }
            hashes[i] = h
            kinds[i] = t
            words[i] = b
        }
    }

    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt32) -> Tok {
        var i = Int(h & UInt32(KeywordTable.size - 1))
        while true {
            let w = words[i]
            if w.isEmpty { return .ident }
            if hashes[i] == h && w.count == n {
                var same = true
                for k in 0..<n where w[k] != p[k] {
                    same = false
                    break
                }
                if same { return kinds[i] }
            }
            i = (i + 1) & (KeywordTable.size - 1)
        }
    }
}

/// One token: its kind, where its text is (buffer, byte offset, length) and where it is reported (file, line,
/// column; for a token expanded from a macro, the place the macro was used).
public struct Token: Sendable {
    public var kind: Tok
    public var buffer: UInt16
    public var file: UInt16
    public var start: UInt32
    public var length: UInt32
    public var line: UInt32
    public var column: UInt32
    /// Made by a macro expansion (its text is in the macro body; line and column are the use's).
    public var expanded = false

    public init(kind: Tok, buffer: UInt16, file: UInt16, start: UInt32, length: UInt32, line: UInt32, column: UInt32) {
        self.kind = kind
        self.buffer = buffer
        self.file = file
        self.start = start
        self.length = length
        self.line = line
        self.column = column
    }
}

/// A position in a source file, 1-based.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// A syntax or preprocessing error: where and what (for a syntax error, what was expected and what was found).
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }
    public var description: String { "\(location): \(message)" }
}
