// The recursive-descent parser for Verilog-2005 (the subset in grammars/verilog-2005.ebnf). It reads the
// preprocessor's tokens and builds the AST. A syntax error records "file:line:column: expected X, found Y" and the
// parser skips to the next statement or module item, so one run reports several errors; after `maxDiagnostics`
// it stops. Nesting deeper than `maxDepth` is an error, not a stack overflow.

import Foundation
import LoomCore

public struct ParseResult: Sendable {
    public var source: SourceText
    public var diagnostics: [Diagnostic]
    /// Files read through `include.
    public var included: [String]
    public var ok: Bool { diagnostics.isEmpty }
}

public enum VerilogParser {
    /// Preprocesses and parses `bytes` (named `name` in messages; includes are searched from `directory`).
    public static func parse<C: Collection>(
        _ bytes: C, name: String = "<input>", directory: String? = nil,
        options: PreprocessorOptions = PreprocessorOptions()
    ) -> ParseResult where C.Element == UInt8 {
        let sm = SourceManager()
        let b = sm.add(name: name, bytes: bytes)
        let dir = directory ?? (name as NSString).deletingLastPathComponent
        let pp = Preprocessor.run(sm: sm, buffer: b, directory: dir.isEmpty ? "." : dir, options: options)
        var p = Parser(tokens: pp.tokens, sm: sm)
        p.diags = pp.diagnostics
        let src = p.sourceText()
        return ParseResult(source: src, diagnostics: p.diags, included: pp.included)
    }

    public static func parse(_ text: String, name: String = "<input>", options: PreprocessorOptions = PreprocessorOptions())
        -> ParseResult
    {
        parse(Array(text.utf8), name: name, options: options)
    }

    /// Reads and parses a file; an unreadable file is an error (a problem with the run, not a syntax error).
    public static func parse(file path: String, options: PreprocessorOptions = PreprocessorOptions()) throws
        -> ParseResult
    {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw LoomError("cannot read \(path)")
        }
        return parse([UInt8](d), name: path, directory: (path as NSString).deletingLastPathComponent, options: options)
    }
}

struct SyntaxError: Error {}

struct Parser {
    let toks: [Token]
    let sm: SourceManager
    var i = 0
    var diags: [Diagnostic] = []
    var depth = 0
    static let maxDepth = 150
    static let maxDiagnostics = 20

    init(tokens: [Token], sm: SourceManager) {
        toks = tokens.isEmpty || tokens.last!.kind != .eof
            ? tokens + [Token(kind: .eof, buffer: 0, file: 0, start: 0, length: 0, line: 1, column: 1)] : tokens
        self.sm = sm
    }

    // MARK: token helpers

    @inline(__always) var kind: Tok { toks[i].kind }
    @inline(__always) mutating func peek(_ k: Int) -> Tok { i + k < toks.count ? toks[i + k].kind : .eof }
    @inline(__always) mutating func advance() { if i < toks.count - 1 { i += 1 } }
    @inline(__always) mutating func accept(_ k: Tok) -> Bool {
        if toks[i].kind == k {
            advance()
            return true
        }
        return false
    }
    var loc: Loc { Loc(line: Int(toks[i].line), column: Int(toks[i].column)) }
    var full: Bool { diags.count >= Parser.maxDiagnostics }

    mutating func found() -> String {
        let t = toks[i]
        switch t.kind {
        case .eof: return "end of file"
        case .ident, .escIdent, .sysIdent, .number, .realNumber, .directive:
            return "\(Spelling.describe(t.kind)) '\(sm.text(t))'"
        case .string: return "string"
        default: return Spelling.describe(t.kind)
        }
    }

    mutating func fail(_ expected: String) -> SyntaxError {
        if diags.count < Parser.maxDiagnostics {
            diags.append(Diagnostic(sm.location(toks[i]), "expected \(expected), found \(found())"))
        }
        return SyntaxError()
    }

    mutating func expect(_ k: Tok, _ what: String? = nil) throws {
        if toks[i].kind == k {
            advance()
            return
        }
        throw fail(what ?? Spelling.describe(k))
    }

    func text() -> String { sm.text(toks[i]) }

    /// Appends the current token's text to `tokens`: to the last entry when the two were written with nothing
    /// between them (`=>`, `*>`, `(A` stay as written), else as a new entry. Opaque items print entries one space
    /// apart, so printing and parsing again gives the same entries.
    mutating func collect(_ tokens: inout [String]) {
        let t = toks[i]
        if i > 0, !tokens.isEmpty, toks[i - 1].buffer == t.buffer, toks[i - 1].start + toks[i - 1].length == t.start,
            toks[i - 1].kind != .escIdent
        {
            tokens[tokens.count - 1] += text()
        } else {
            tokens.append(text())
        }
    }

    mutating func identifier(_ what: String = "an identifier") throws -> String {
        let k = kind
        guard k == .ident || k == .escIdent else { throw fail(what) }
        let s = text()
        advance()
        return s
    }

    var isIdent: Bool { kind == .ident || kind == .escIdent }

    mutating func enter() throws {
        depth += 1
        if depth > Parser.maxDepth {
            if diags.count < Parser.maxDiagnostics {
                diags.append(Diagnostic(sm.location(toks[i]), "nesting deeper than \(Parser.maxDepth) levels"))
            }
            throw SyntaxError()
        }
    }

    // MARK: source text

    mutating func sourceText() -> SourceText {
        var items: [Description] = []
        while kind != .eof && !full {
            let start = i
            do {
                if kind == .directive {
                    items.append(.directive(directiveText()))
                    advance()
                    continue
                }
                let first = i
                let attrs = try attributes()
                if kind == .kwModule || kind == .kwMacromodule {
                    var m = try module(attrs)
                    m.original = OriginalText(text: originalText(from: first, to: i - 1))
                    items.append(.module(m))
                } else if kind == .kwPrimitive {
                    var u = try primitive()
                    u.attributes = attrs
                    items.append(.primitive(u))
                } else if kind == .ident, text() == "config", peek(1) == .ident || peek(1) == .escIdent, attrs.isEmpty {
                    items.append(try config())
                } else {
                    throw fail("'module'")
                }
            } catch {
                if i == start { advance() }
                // Skip to the next module.
                while kind != .eof && kind != .kwModule && kind != .kwMacromodule {
                    if kind == .kwEndmodule || kind == .kwEndprimitive {
                        advance()
                        break
                    }
                    advance()
                }
            }
        }
        return SourceText(items: items)
    }

    /// The file's text from token `from` to token `to` (a module, from its attributes to `endmodule`) with the `//`
    /// comment lines right above it, the indentation of its first line and a `//` comment ending its last; "" when
    /// the two tokens are not written in one file (a module made by a macro, or ending in an include). A module of
    /// an included file keeps that file's text.
    func originalText(from: Int, to: Int) -> String {
        guard from <= to, to < toks.count else { return "" }
        let a = toks[from], b = toks[to]
        guard a.buffer == b.buffer, !a.expanded, !b.expanded, a.start <= b.start else { return "" }
        let base = sm.base(Int(a.buffer))
        let count = sm.count(Int(a.buffer))
        var start = Int(a.start)
        var end = min(count, Int(b.start + b.length))
        // A `//` comment after `endmodule` on its line (`endmodule // sqrt32`) belongs to the module.
        var e = end
        while e < count && (base[e] == 0x20 || base[e] == 0x09) { e += 1 }
        if e + 1 < count, base[e] == 0x2F, base[e + 1] == 0x2F {
            while e < count && base[e] != 0x0A && base[e] != 0x0D { e += 1 }
            end = e
        }
        // Back to the start of the line when only blanks precede the module there.
        var k = start
        while k > 0 && (base[k - 1] == 0x20 || base[k - 1] == 0x09) { k -= 1 }
        if k == 0 || base[k - 1] == 0x0A {
            start = k
            // Then whole `//` comment lines directly above (no blank line between).
            while start > 0 {
                var ls = start - 1
                while ls > 0 && base[ls - 1] != 0x0A { ls -= 1 }
                var f = ls
                while f < start - 1 && (base[f] == 0x20 || base[f] == 0x09) { f += 1 }
                guard f + 1 < start - 1, base[f] == 0x2F, base[f + 1] == 0x2F else { break }
                start = ls
            }
        }
        return String(decoding: UnsafeBufferPointer(start: base + start, count: end - start), as: UTF8.self)
    }

    /// Tokens up to and including the next `;` (stopping before `stop`), grouped as `collect` groups them.
    mutating func tokenStatement(stop: (Parser) -> Bool, what: String) throws -> [String] {
        var tokens: [String] = []
        var ended = false
        repeat {
            guard kind != .eof, !stop(self) else { throw fail("';' to end the \(what)") }
            ended = kind == .semicolon
            collect(&tokens)
            advance()
        } while !ended
        return tokens
    }

    /// `primitive NAME ( ports ) ; declarations table rows endtable endprimitive`.
    mutating func primitive() throws -> UDP {
        let l = loc
        advance()
        var u = UDP(name: try identifier("a primitive name"), ports: [], declarations: [], table: [], loc: l)
        try expect(.lparen, "'(' and the primitive's ports")
        var depth = 1
        while true {
            guard kind != .eof, kind != .kwEndprimitive else { throw fail("')' closing the primitive's ports") }
            if kind == .lparen { depth += 1 }
            if kind == .rparen {
                depth -= 1
                if depth == 0 { break }
            }
            collect(&u.ports)
            advance()
        }
        advance()
        try expect(.semicolon, "';' after the primitive header")
        let end: (Parser) -> Bool = { $0.kind == .kwEndprimitive || $0.kind == .kwTable || $0.kind == .kwEndtable }
        while kind != .kwTable {
            guard kind != .eof, kind != .kwEndprimitive else { throw fail("'table' (a primitive needs its table)") }
            u.declarations.append(try tokenStatement(stop: end, what: "declaration"))
        }
        advance()
        while kind != .kwEndtable {
            u.table.append(try tokenStatement(stop: end, what: "table row"))
        }
        advance()
        try expect(.kwEndprimitive, "'endprimitive'")
        return u
    }

    /// `config NAME ; { statement ; } endconfig` (IEEE 1364-2005 section 13), each statement kept as its tokens.
    mutating func config() throws -> Description {
        advance()
        let name = try identifier("a config name")
        try expect(.semicolon, "';' after the config name")
        var statements: [[String]] = []
        let isEnd: (Parser) -> Bool = { $0.kind == .ident && $0.text() == "endconfig" }
        while !isEnd(self) {
            guard kind != .eof, kind != .kwModule else { throw fail("'endconfig'") }
            statements.append(try tokenStatement(stop: { isEnd($0) || $0.kind == .kwModule }, what: "config statement"))
        }
        advance()
        return .config(name: name, statements: statements)
    }

    mutating func directiveText() -> String {
        let s = text()
        // Collapse inner white space so the printed form re-parses to the same string.
        return s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
    }

    mutating func attributes() throws -> [Attribute] {
        var out: [Attribute] = []
        while kind == .attrOpen {
            advance()
            repeat {
                let n = try identifier("an attribute name")
                var v: Expr? = nil
                if accept(.assign) { v = try expr() }
                out.append(Attribute(name: n, value: v))
            } while accept(.comma)
            try expect(.attrClose, "'*)'")
        }
        return out
    }

    mutating func module(_ attrs: [Attribute]) throws -> Module {
        let l = loc
        let kw = kind == .kwMacromodule ? "macromodule" : "module"
        advance()
        // `$__ICE40_RAM4K_`: yosys's reader takes `$` names for cell and techmap modules.
        let name = kind == .sysIdent ? text() : try identifier("a module name")
        if kind == .sysIdent { advance() }
        var params: [ParamDecl]? = nil
        if accept(.hash) {
            try expect(.lparen, "'(' after '#'")
            var list: [ParamDecl] = []
            if kind != .rparen {
                repeat {
                    if kind == .kwParameter || kind == .kwLocalparam || list.isEmpty {
                        list.append(try paramDecl(inPortList: true))
                    } else {
                        // `#(parameter A = 1, B = 2)`: B belongs to the same declaration.
                        let n = try identifier("a parameter name")
                        try expect(.assign, "'=' and a value")
                        list[list.count - 1].assignments.append((n, try expr()))
                    }
                } while accept(.comma)
            }
            try expect(.rparen, "',' or ')' in the parameter list")
            params = list
        }
        var ports: [Port]? = nil
        var implied = false
        if accept(.lparen) {
            if kind == .dot && peek(1) == .dot && peek(2) == .dot && peek(3) == .rparen {
                // `module ACC54 (...);`: yosys's reader takes the ports from the declarations in the body.
                advance(); advance(); advance()
                implied = true
            } else {
                ports = try portList()
            }
            try expect(.rparen, "',' or ')' in the port list")
        }
        try expect(.semicolon, "';' after the module header")
        var m = Module(attributes: attrs, keyword: kw, name: name, parameterPorts: params, ports: ports, items: [], loc: l)
        m.impliedPorts = implied
        m.items = moduleItems(until: .kwEndmodule)
        m.endLoc = loc
        try expect(.kwEndmodule, "'endmodule'")
        return m
    }

    mutating func portList() throws -> [Port] {
        if kind == .rparen { return [] }
        var ports: [Port] = []
        let save = i
        _ = try? attributes()
        let ansi = kind == .kwInput || kind == .kwOutput || kind == .kwInout
        i = save
        if ansi {
            repeat { ports.append(.ansi(try ansiPort())) } while accept(.comma) && kind != .rparen  // yosys: `input EN,\n);`
            return ports
        }
        repeat {
            if kind == .comma || kind == .rparen {
                ports.append(.reference(name: nil, expr: nil))
                continue
            }
            if accept(.dot) {
                let n = try identifier("a port name")
                try expect(.lparen, "'(' after the port name")
                let e: Expr? = kind == .rparen ? nil : try portExpression()
                try expect(.rparen)
                ports.append(.reference(name: n, expr: e))
            } else {
                ports.append(.reference(name: nil, expr: try portExpression()))
            }
        } while accept(.comma)
        return ports
    }

    mutating func portExpression() throws -> Expr {
        if kind == .lbrace {
            advance()
            var list: [Expr] = []
            repeat { list.append(try portReference()) } while accept(.comma)
            try expect(.rbrace)
            return .concat(list)
        }
        return try portReference()
    }

    mutating func portReference() throws -> Expr {
        var e = Expr.ident(try identifier("a port name"))
        if accept(.lbracket) { e = try selectTail(e) }
        return e
    }

    static let netKinds: Set<Tok> = [
        .kwWire, .kwTri, .kwTri0, .kwTri1, .kwTriand, .kwTrior, .kwTrireg, .kwWand, .kwWor, .kwSupply0, .kwSupply1,
        .kwUwire,
    ]
    static let varKinds: Set<Tok> = [.kwReg, .kwInteger, .kwReal, .kwRealtime, .kwTime]

    mutating func ansiPort() throws -> AnsiPort {
        let attrs = try attributes()
        var p = AnsiPort(attributes: attrs, name: "")
        if kind == .kwInput || kind == .kwOutput || kind == .kwInout {
            p.direction = text()
            advance()
        }
        if Parser.netKinds.contains(kind) || Parser.varKinds.contains(kind) {
            p.kind = text()
            advance()
        }
        if accept(.kwSigned) { p.signed = true }
        if kind == .lbracket { p.range = try range() }
        p.name = try identifier("a port name")
        while kind == .lbracket { p.dimensions.append(try range()) }
        if accept(.assign) { p.initial = try expr() }
        return p
    }

    mutating func range() throws -> VRange {
        try expect(.lbracket)
        let a = try expr()
        try expect(.colon, "':' in the range")
        let b = try expr()
        try expect(.rbracket)
        return VRange(msb: a, lsb: b)
    }

    // MARK: module items

    static let itemStarts: Set<Tok> = [
        .kwInput, .kwOutput, .kwInout, .kwWire, .kwReg, .kwTri, .kwTri0, .kwTri1, .kwTriand, .kwTrior, .kwTrireg,
        .kwWand, .kwWor, .kwSupply0, .kwSupply1, .kwUwire, .kwInteger, .kwReal, .kwRealtime, .kwTime, .kwEvent,
        .kwGenvar, .kwParameter, .kwLocalparam, .kwDefparam, .kwAssign, .kwAlways, .kwInitial, .kwFunction,
        .kwTask, .kwGenerate, .kwEndgenerate, .kwEndmodule, .kwModule, .kwMacromodule, .kwEndfunction, .kwEndtask,
    ]

    mutating func moduleItems(until end: Tok) -> [ModuleItem] {
        var items: [ModuleItem] = []
        while kind != end && kind != .eof && !full {
            if end != .kwEndmodule && (kind == .kwEndmodule || kind == .kwModule) { break }
            if end == .kwEndmodule && (kind == .kwModule || kind == .kwMacromodule) { break }
            let start = i
            do {
                if let it = try moduleItem() { items.append(it) }
            } catch {
                if i == start { advance() }
                recover(statementLevel: false)
            }
        }
        return items
    }

    /// Skips to just after the next `;` at this nesting level, or to the next item keyword or closing keyword.
    mutating func recover(statementLevel: Bool) {
        var depth = 0
        while kind != .eof {
            switch kind {
            case .semicolon where depth == 0:
                advance()
                return
            case .kwBegin, .kwFork, .kwCase, .kwCasez, .kwCasex:
                depth += 1
            case .kwEnd, .kwJoin, .kwEndcase:
                if depth == 0 { return }
                depth -= 1
            case .kwEndmodule, .kwModule, .kwMacromodule, .kwEndgenerate, .kwEndfunction, .kwEndtask:
                return
            default:
                if depth == 0 && !statementLevel && Parser.itemStarts.contains(kind) { return }
            }
            advance()
        }
    }

    static let gateKinds: Set<Tok> = [
        .kwAnd, .kwNand, .kwOr, .kwNor, .kwXor, .kwXnor, .kwBuf, .kwNot, .kwBufif0, .kwBufif1, .kwNotif0, .kwNotif1,
        .kwNmos, .kwPmos, .kwCmos, .kwRnmos, .kwRpmos, .kwRcmos, .kwTran, .kwTranif0, .kwTranif1, .kwRtran,
        .kwRtranif0, .kwRtranif1, .kwPullup, .kwPulldown,
    ]
    static let strengthKinds: Set<Tok> = [
        .kwSupply0, .kwSupply1, .kwStrong0, .kwStrong1, .kwPull0, .kwPull1, .kwWeak0, .kwWeak1, .kwHighz0, .kwHighz1,
        .kwSmall, .kwMedium, .kwLarge,
    ]

    mutating func moduleItem() throws -> ModuleItem? {
        if kind == .directive {
            let d = directiveText()
            advance()
            return .directive(d)
        }
        let attrs = try attributes()
        let l = loc
        switch kind {
        case .semicolon:
            advance()
            return nil
        case .kwInput, .kwOutput, .kwInout:
            var d = try portDecl()
            d.attributes = attrs
            d.loc = l
            try expect(.semicolon, "',' or ';' after the port declaration")
            return .port(d)
        case _ where Parser.netKinds.contains(kind) || Parser.varKinds.contains(kind) || kind == .kwEvent
            || kind == .kwGenvar:
            var d = try netDecl()
            d.attributes = attrs
            d.loc = l
            try expect(.semicolon, "',' or ';' after the declaration")
            return .net(d)
        case .kwParameter, .kwLocalparam:
            let p = try paramDecl(inPortList: false)
            try expect(.semicolon, "',' or ';' after the parameter declaration")
            return .parameter(p, attributes: attrs)
        case .kwDefparam:
            advance()
            var list: [(Expr, Expr)] = []
            repeat {
                let lhs = try hierarchical()
                try expect(.assign, "'=' in defparam")
                list.append((lhs, try expr()))
            } while accept(.comma)
            try expect(.semicolon)
            return .defparam(list)
        case .kwAssign:
            advance()
            var a = ContinuousAssign(attributes: attrs, assignments: [], loc: l)
            if kind == .lparen && Parser.strengthKinds.contains(peek(1)) { a.strength = try strength() }
            if kind == .hash { a.delay = try delay() }
            repeat {
                let lhs = try lvalue()
                try expect(.assign, "'=' in the continuous assignment")
                a.assignments.append((lhs, try expr()))
            } while accept(.comma)
            try expect(.semicolon, "',' or ';' after the assignment")
            return .assign(a)
        case .kwAlways:
            advance()
            return .always(try statement(), attributes: attrs, loc: l)
        case .kwInitial:
            advance()
            return .initial(try statement(), attributes: attrs, loc: l)
        case .kwFunction:
            return .function(try function(l))
        case .kwTask:
            return .task(try task(l))
        case .kwGenerate:
            advance()
            let items = moduleItems(until: .kwEndgenerate)
            try expect(.kwEndgenerate, "'endgenerate'")
            return .generateRegion(items)
        case .kwFor:
            return try genFor()
        case .kwIf:
            return try genIf()
        case .kwCase, .kwCasez, .kwCasex:
            return try genCase()
        case .kwBegin:
            return .genBlock(try generateBlock()!)
        case .kwSpecify:
            advance()
            var tokens: [String] = []
            while kind != .kwEndspecify {
                guard kind != .eof, kind != .kwEndmodule else { throw fail("'endspecify' to close the specify block") }
                collect(&tokens)
                advance()
            }
            advance()
            return .specify(tokens)
        case .kwSpecparam:
            var tokens: [String] = []
            var ended = false
            repeat {
                guard kind != .eof, kind != .kwEndmodule else { throw fail("';' to end the specparam declaration") }
                ended = kind == .semicolon
                collect(&tokens)
                advance()
            } while !ended
            return .specparam(tokens)
        case _ where Parser.gateKinds.contains(kind):
            return .instantiation(try instantiation(attrs, l, gate: true))
        case .ident, .escIdent:
            return .instantiation(try instantiation(attrs, l, gate: false))
        case .sysIdent where peek(1) == .ident || peek(1) == .escIdent || peek(1) == .hash:
            // `$_XOR_ g (...)`: an instance of a yosys internal cell.
            return .instantiation(try instantiation(attrs, l, gate: false))
        case .sysIdent where Parser.elaborationTasks.contains(text()):
            // `$error("...");` in a generate branch: an elaboration-time check (SystemVerilog; yosys takes it).
            let (n, args) = try systemTaskCall()
            return .elaborationTask(n, args)
        default:
            throw fail("a module item")
        }
    }

    mutating func declNames(allowInit: Bool) throws -> [DeclName] {
        var names: [DeclName] = []
        repeat {
            var d = DeclName(name: try identifier())
            while kind == .lbracket { d.dimensions.append(try range()) }
            if allowInit && accept(.assign) { d.initial = try expr() }
            names.append(d)
        } while accept(.comma)
        return names
    }

    mutating func portDecl() throws -> PortDecl {
        let dir = text()
        advance()
        var d = PortDecl(direction: dir, names: [])
        if Parser.netKinds.contains(kind) || Parser.varKinds.contains(kind) {
            d.kind = text()
            advance()
        }
        if accept(.kwSigned) { d.signed = true }
        if kind == .lbracket { d.range = try range() }
        d.names = try declNames(allowInit: true)
        return d
    }

    mutating func netDecl() throws -> NetDecl {
        var d = NetDecl(kind: text(), names: [])
        let k = kind
        advance()
        if kind == .lparen && Parser.strengthKinds.contains(peek(1)) { d.strength = try strength() }
        if kind == .kwVectored || kind == .kwScalared {
            d.vectoring = text()
            advance()
        }
        if accept(.kwSigned) { d.signed = true }
        if kind == .lbracket { d.range = try range() }
        if kind == .hash && k != .kwReg { d.delay = try delay() }
        d.names = try declNames(allowInit: k != .kwEvent && k != .kwGenvar)
        return d
    }

    mutating func strength() throws -> String {
        try expect(.lparen)
        var parts: [String] = []
        repeat {
            guard Parser.strengthKinds.contains(kind) else { throw fail("a drive strength") }
            parts.append(text())
            advance()
        } while accept(.comma)
        try expect(.rparen)
        return parts.joined(separator: ", ")
    }

    mutating func paramDecl(inPortList: Bool) throws -> ParamDecl {
        var p = ParamDecl(assignments: [])
        if kind == .kwLocalparam {
            p.local = true
            advance()
        } else if kind == .kwParameter {
            advance()
        } else if !inPortList {
            throw fail("'parameter'")
        }
        if kind == .kwInteger || kind == .kwReal || kind == .kwRealtime || kind == .kwTime {
            p.kind = text()
            advance()
        }
        if accept(.kwSigned) { p.signed = true }
        if kind == .lbracket { p.range = try range() }
        repeat {
            let n = try identifier("a parameter name")
            try expect(.assign, "'=' and a value for parameter \(n)")
            p.assignments.append((n, try mintypmax()))
            if inPortList { break }
        } while accept(.comma)
        return p
    }

    mutating func delay() throws -> DelayOrParams {
        try expect(.hash)
        if accept(.lparen) {
            var list: [ParamArg] = []
            if kind != .rparen {
                repeat {
                    if accept(.dot) {
                        let n = try identifier("a parameter name")
                        try expect(.lparen)
                        let e: Expr? = kind == .rparen ? nil : try mintypmax()
                        try expect(.rparen)
                        list.append(.named(n, e))
                    } else {
                        list.append(.positional(try mintypmax()))
                    }
                    // yosys takes a comma after the last named value: `#(.INIT(4'b1000),)`.
                    if case .named = list.last!, kind == .comma, peek(1) == .rparen { advance() }
                } while accept(.comma)
            }
            try expect(.rparen, "',' or ')' after the parameter values")
            return .list(list)
        }
        switch kind {
        case .number:
            let s = numberText()
            advance()
            return .value(.number(s))
        case .realNumber:
            let s = text()
            advance()
            return .value(.real(s))
        case .ident, .escIdent:
            return .value(.ident(try identifier()))
        default:
            throw fail("a delay value or '('")
        }
    }

    mutating func instantiation(_ attrs: [Attribute], _ l: Loc, gate: Bool) throws -> Instantiation {
        let mod = text()
        advance()
        var inst = Instantiation(attributes: attrs, module: mod, instances: [], loc: l)
        if kind == .lparen && Parser.strengthKinds.contains(peek(1)) { inst.strength = try strength() }
        if kind == .hash { inst.parameters = try delay() }
        repeat {
            var x = Instance(name: nil, range: nil, connections: .positional([]))
            if isIdent {
                x.name = try identifier()
                if kind == .lbracket { x.range = try range() }
            } else if !gate {
                throw fail("an instance name")
            }
            try expect(.lparen, "'(' and the port connections of the instance")
            x.connections = try connections(&x.connectionAttributes)
            try expect(.rparen, "',' or ')' in the port connections")
            inst.instances.append(x)
        } while accept(.comma)
        try expect(.semicolon, "',' or ';' after the instance")
        return inst
    }

    mutating func connections(_ attrs: inout [[Attribute]]) throws -> Connections {
        if kind == .rparen { return .positional([]) }
        var named = kind == .dot
        if kind == .attrOpen {
            let save = i
            _ = try attributes()
            named = kind == .dot
            i = save
        }
        if named {
            var list: [(String, Expr?)] = []
            repeat {
                attrs.append(try attributes())
                try expect(.dot, "'.' and a port name")
                let n = try identifier("a port name")
                try expect(.lparen, "'(' after .\(n)")
                let e: Expr? = kind == .rparen ? nil : try expr()
                try expect(.rparen)
                list.append((n, e))
            } while accept(.comma) && kind != .rparen  // yosys takes a comma after the last one
            if attrs.allSatisfy(\.isEmpty) { attrs = [] }
            return .named(list)
        }
        var list: [Expr?] = []
        repeat {
            attrs.append(try attributes())
            if kind == .comma || kind == .rparen {
                list.append(nil)
            } else {
                list.append(try expr())
            }
        } while accept(.comma)
        if attrs.allSatisfy(\.isEmpty) { attrs = [] }
        return .positional(list)
    }

    mutating func tfPorts() throws -> [TFPort] {
        var ports: [TFPort] = []
        if kind == .rparen { return ports }
        repeat {
            let attrs = try attributes()
            if kind == .kwInput || kind == .kwOutput || kind == .kwInout {
                var p = TFPort(attributes: attrs, direction: text(), names: [])
                advance()
                if kind == .kwReg || kind == .kwInteger || kind == .kwReal || kind == .kwRealtime || kind == .kwTime {
                    p.kind = text()
                    advance()
                }
                if accept(.kwSigned) { p.signed = true }
                if kind == .lbracket { p.range = try range() }
                p.names.append(try identifier("a port name"))
                ports.append(p)
            } else {
                guard !ports.isEmpty else { throw fail("'input', 'output' or 'inout'") }
                ports[ports.count - 1].names.append(try identifier("a port name"))
            }
        } while accept(.comma)
        return ports
    }

    static let tfItemStarts: Set<Tok> = [
        .kwInput, .kwOutput, .kwInout, .kwReg, .kwInteger, .kwReal, .kwRealtime, .kwTime, .kwEvent, .kwParameter,
        .kwLocalparam,
    ]

    mutating func tfItems() throws -> [ModuleItem] {
        var items: [ModuleItem] = []
        while Parser.tfItemStarts.contains(kind) {
            if let it = try moduleItem() { items.append(it) }
        }
        return items
    }

    mutating func function(_ l: Loc) throws -> Function {
        advance()
        var f = Function(name: "", items: [], body: .null, loc: l)
        if accept(.kwAutomatic) { f.automatic = true }
        if kind == .kwInteger || kind == .kwReal || kind == .kwRealtime || kind == .kwTime {
            f.returnKind = text()
            advance()
        }
        if accept(.kwSigned) { f.signed = true }
        if kind == .lbracket { f.range = try range() }
        f.name = try identifier("a function name")
        if accept(.lparen) {
            f.ports = try tfPorts()
            try expect(.rparen)
        }
        try expect(.semicolon, "';' after the function header")
        f.items = try tfItems()
        f.body = try tfBody(first: try statement(), end: .kwEndfunction)
        try expect(.kwEndfunction, "'endfunction' (a function body is one statement: use begin ... end)")
        return f
    }

    /// yosys's reader (like SystemVerilog) takes several statements as a function or task body: they become one
    /// begin ... end block, which means the same.
    mutating func tfBody(first: Stmt, end: Tok) throws -> Stmt {
        guard kind != end, kind != .eof, kind != .kwEndmodule else { return first }
        var body = [first]
        while kind != end && kind != .eof && kind != .kwEndmodule { body.append(try statement()) }
        return .block(name: nil, items: [], body: body)
    }

    mutating func task(_ l: Loc) throws -> Task {
        advance()
        var t = Task(name: "", items: [], body: .null, loc: l)
        if accept(.kwAutomatic) { t.automatic = true }
        t.name = try identifier("a task name")
        if accept(.lparen) {
            t.ports = try tfPorts()
            try expect(.rparen)
        }
        try expect(.semicolon, "';' after the task header")
        t.items = try tfItems()
        t.body = kind == .kwEndtask ? .null : try tfBody(first: try statement(), end: .kwEndtask)
        try expect(.kwEndtask, "'endtask' (a task body is one statement: use begin ... end)")
        return t
    }

    // MARK: generate

    mutating func generateBlock() throws -> GenerateBlock? {
        if accept(.semicolon) { return nil }
        if accept(.kwBegin) {
            var name: String? = nil
            if accept(.colon) { name = try identifier("a block name") }
            let items = moduleItems(until: .kwEnd)
            try expect(.kwEnd, "'end'")
            if name != nil && accept(.colon) { _ = try identifier("the block name") }
            return GenerateBlock(hasBegin: true, name: name, items: items)
        }
        try enter()
        defer { depth -= 1 }
        guard let item = try moduleItem() else { return nil }
        return GenerateBlock(hasBegin: false, name: nil, items: [item])
    }

    mutating func genvarAssign() throws -> (String, Expr) {
        let n = try identifier("a genvar name")
        if let rhs = try compoundAssign(.ident(n)) { return (n, rhs) }
        try expect(.assign)
        return (n, try expr())
    }

    /// `x++`, `x--` (which yosys's reader takes) and `x += e`, `x <<= e`, ... (which Icarus takes) after the lvalue:
    /// the right-hand side of the plain assignment they mean (`x + 1`, `x + (e)`), or nil when none follows.
    mutating func compoundAssign(_ lhs: Expr) throws -> Expr? {
        if (kind == .plus || kind == .minus) && peek(1) == kind {
            let op: BinaryOp = kind == .plus ? .add : .sub
            advance()
            advance()
            return .binary(op, lhs, .number("1"))
        }
        guard peek(1) == .assign, let op = Parser.binaryOp(kind), Parser.compoundOps.contains(op) else { return nil }
        advance()
        advance()
        let e = try expr()
        return .binary(op, lhs, Printer.precedence(e) < 100 ? .paren(e) : e)
    }

    static let elaborationTasks: Set<String> = ["$error", "$warning", "$info", "$fatal"]

    static let compoundOps: Set<BinaryOp> = [.add, .sub, .mul, .div, .mod, .bitAnd, .bitOr, .bitXor, .shl, .shr, .ashl, .ashr]

    mutating func genFor() throws -> ModuleItem {
        advance()
        try expect(.lparen, "'(' after 'for'")
        if kind == .kwGenvar { throw fail("a genvar assignment (declare the genvar before the loop)") }
        let ini = try genvarAssign()
        try expect(.semicolon)
        let cond = try expr()
        try expect(.semicolon)
        let step = try genvarAssign()
        try expect(.rparen)
        try enter()
        defer { depth -= 1 }
        guard let b = try generateBlock() else { throw fail("a generate block") }
        return .genFor(init: ini, cond: cond, step: step, block: b)
    }

    mutating func genIf() throws -> ModuleItem {
        advance()
        try expect(.lparen, "'(' after 'if'")
        let c = try expr()
        try expect(.rparen, "')' after the condition")
        try enter()
        defer { depth -= 1 }
        let t = try generateBlock()
        var e: GenerateBlock? = nil
        if accept(.kwElse) {
            e = try generateBlock()
            if e == nil { e = GenerateBlock(hasBegin: false, name: nil, items: []) }
        }
        return .genIf(cond: c, then: t, else: e)
    }

    mutating func genCase() throws -> ModuleItem {
        advance()
        try expect(.lparen)
        let e = try expr()
        try expect(.rparen)
        var items: [GenCaseItem] = []
        try enter()
        defer { depth -= 1 }
        while kind != .kwEndcase && kind != .eof {
            var labels: [Expr] = []
            if accept(.kwDefault) {
                _ = accept(.colon)
            } else {
                repeat { labels.append(try expr()) } while accept(.comma)
                try expect(.colon, "':' after the case label")
            }
            items.append(GenCaseItem(labels: labels, body: try generateBlock()))
        }
        try expect(.kwEndcase)
        return .genCase(expr: e, items: items)
    }

    // MARK: statements

    mutating func statement() throws -> Stmt {
        try enter()
        defer { depth -= 1 }
        if kind == .attrOpen {
            let a = try attributes()
            return .attributed(a, try statement())
        }
        switch kind {
        case .semicolon:
            advance()
            return .null
        case .kwBegin, .kwFork:
            let isFork = kind == .kwFork
            advance()
            var name: String? = nil
            var items: [ModuleItem] = []
            if accept(.colon) {
                name = try identifier("a block name")
            }
            items = try blockItems()
            var body: [Stmt] = []
            let close: Tok = isFork ? .kwJoin : .kwEnd
            while kind != close && kind != .eof && !full {
                if kind == .kwEndmodule || kind == .kwEndfunction || kind == .kwEndtask { break }
                let start = i
                do {
                    body.append(try statement())
                } catch {
                    if i == start { advance() }
                    recover(statementLevel: true)
                }
            }
            try expect(close, isFork ? "'join'" : "'end'")
            return isFork ? .fork(name: name, items: items, body: body) : .block(name: name, items: items, body: body)
        case .kwIf:
            advance()
            try expect(.lparen, "'(' after 'if'")
            let c = try expr()
            try expect(.rparen, "')' after the condition")
            let t = try statement()
            var e: Stmt? = nil
            if accept(.kwElse) { e = try statement() }
            return .ifElse(cond: c, then: t, else: e)
        case .kwCase, .kwCasez, .kwCasex:
            let k = text()
            advance()
            try expect(.lparen, "'(' after '\(k)'")
            let e = try expr()
            try expect(.rparen)
            var items: [CaseItem] = []
            while kind != .kwEndcase && kind != .eof && !full {
                var labels: [Expr] = []
                if accept(.kwDefault) {
                    _ = accept(.colon)
                } else {
                    repeat { labels.append(try expr()) } while accept(.comma)
                    try expect(.colon, "':' after the case label")
                }
                items.append(CaseItem(labels: labels, body: try statement()))
            }
            try expect(.kwEndcase, "'endcase'")
            return .caseStmt(kind: k, expr: e, items: items)
        case .kwFor:
            advance()
            try expect(.lparen, "'(' after 'for'")
            let ini = try assignment()
            try expect(.semicolon)
            let c = try expr()
            try expect(.semicolon)
            let step = try assignment()
            try expect(.rparen)
            return .forLoop(init: ini, cond: c, step: step, body: try statement())
        case .kwWhile:
            advance()
            try expect(.lparen)
            let c = try expr()
            try expect(.rparen)
            return .whileLoop(cond: c, body: try statement())
        case .kwRepeat:
            advance()
            try expect(.lparen)
            let c = try expr()
            try expect(.rparen)
            return .repeatLoop(count: c, body: try statement())
        case .kwForever:
            advance()
            return .forever(try statement())
        case .hash:
            let d = try delay()
            return .timed(.delay(d), try statement())
        case .at:
            let c = try eventControl()
            return .timed(c, try statement())
        case .kwWait:
            advance()
            try expect(.lparen)
            let c = try expr()
            try expect(.rparen)
            return .wait(c, try statement())
        case .arrow:
            advance()
            let e = try hierarchical()
            try expect(.semicolon)
            return .trigger(e)
        case .kwDisable:
            advance()
            let e = try hierarchical()
            try expect(.semicolon)
            return .disable(e)
        case .kwAssign, .kwForce:
            let k = text()
            advance()
            let lhs = try lvalue()
            try expect(.assign)
            let rhs = try expr()
            try expect(.semicolon)
            return .procAssign(keyword: k, lhs: lhs, rhs: rhs)
        case .kwDeassign, .kwRelease:
            let k = text()
            advance()
            let lhs = try lvalue()
            try expect(.semicolon)
            return .procAssign(keyword: k, lhs: lhs, rhs: nil)
        case .sysIdent:
            let (n, args) = try systemTaskCall()
            return .call(name: .ident(n), args: args)
        case .ident, .escIdent, .lbrace:
            let s = try assignmentOrCall()
            return s
        default:
            throw fail("a statement")
        }
    }

    /// `$name [ ( args ) ] ;`
    mutating func systemTaskCall() throws -> (String, [Expr?]) {
        let n = text()
        advance()
        var args: [Expr?] = []
        if accept(.lparen) {
            args = try callArgs()
            try expect(.rparen, "',' or ')' in the arguments")
        }
        try expect(.semicolon, "';' after the system task call")
        return (n, args)
    }

    mutating func blockItems() throws -> [ModuleItem] {
        var items: [ModuleItem] = []
        while true {
            switch kind {
            case .kwReg, .kwInteger, .kwReal, .kwRealtime, .kwTime, .kwEvent, .kwParameter, .kwLocalparam:
                if let it = try moduleItem() { items.append(it) }
            default:
                return items
            }
        }
    }

    mutating func callArgs() throws -> [Expr?] {
        var args: [Expr?] = []
        if kind == .rparen { return args }
        repeat {
            if kind == .comma || kind == .rparen { args.append(nil) } else { args.append(try expr()) }
        } while accept(.comma)
        return args
    }

    /// `lhs = rhs` or `lhs <= rhs` (with an optional intra-assignment delay or event), as in a for loop header.
    mutating func assignment() throws -> Stmt {
        let lhs = try lvalue()
        if let rhs = try compoundAssign(lhs) { return .blocking(lhs: lhs, control: nil, rhs: rhs) }
        if accept(.assign) {
            let c = try intraControl()
            return .blocking(lhs: lhs, control: c, rhs: try expr())
        }
        if accept(.le) {
            let c = try intraControl()
            return .nonblocking(lhs: lhs, control: c, rhs: try expr())
        }
        throw fail("'=' or '<='")
    }

    mutating func intraControl() throws -> TimingControl? {
        if kind == .hash { return .delay(try delay()) }
        if kind == .at { return try eventControl() }
        if kind == .kwRepeat {
            advance()
            try expect(.lparen)
            let n = try expr()
            try expect(.rparen)
            guard case .event(let evs) = try eventControl() else { throw fail("'@(' after repeat") }
            return .repeatEvent(n, evs)
        }
        return nil
    }

    mutating func assignmentOrCall() throws -> Stmt {
        if kind == .lbrace {
            let s = try assignment()
            try expect(.semicolon, "';' after the assignment")
            return s
        }
        let name = try hierarchical()
        if accept(.semicolon) { return .call(name: name, args: []) }
        if kind == .lparen {
            advance()
            let args = try callArgs()
            try expect(.rparen)
            try expect(.semicolon, "';' after the task call")
            return .call(name: name, args: args)
        }
        let lhs = try postfixSelects(name)
        if let rhs = try compoundAssign(lhs) {
            try expect(.semicolon, "';' after the assignment")
            return .blocking(lhs: lhs, control: nil, rhs: rhs)
        }
        if accept(.assign) {
            let c = try intraControl()
            let r = try expr()
            try expect(.semicolon, "';' after the assignment")
            return .blocking(lhs: lhs, control: c, rhs: r)
        }
        if accept(.le) {
            let c = try intraControl()
            let r = try expr()
            try expect(.semicolon, "';' after the assignment")
            return .nonblocking(lhs: lhs, control: c, rhs: r)
        }
        throw fail("'=', '<=', '(' or ';'")
    }

    mutating func eventControl() throws -> TimingControl {
        try expect(.at)
        if accept(.star) { return .star }
        if accept(.parenStar) { return .star }
        if accept(.lparen) {
            if accept(.star) {
                try expect(.rparen)
                return .star
            }
            var list: [EventExpr] = []
            repeat {
                var edge = Edge.any
                if accept(.kwPosedge) {
                    edge = .posedge
                } else if accept(.kwNegedge) {
                    edge = .negedge
                }
                list.append(EventExpr(edge: edge, expr: try expr()))
            } while accept(.kwOr) || accept(.comma)
            try expect(.rparen, "'or', ',' or ')' in the event list")
            return .event(list)
        }
        return .named(try hierarchical())
    }

    /// A hierarchical name: a.b[2].c (no trailing part-select).
    mutating func hierarchical() throws -> Expr {
        var e = Expr.ident(try identifier())
        while true {
            if kind == .dot {
                advance()
                e = .member(e, try identifier())
            } else if kind == .lbracket && peek(2) == .rbracket, (peek(1) == .number || peek(1) == .ident) {
                // a constant index inside a hierarchical name: blk[0].x
                let save = i
                advance()
                let idx = try expr()
                if accept(.rbracket), kind == .dot {
                    e = .index(e, idx)
                } else {
                    i = save
                    return e
                }
            } else {
                return e
            }
        }
    }

    mutating func lvalue() throws -> Expr {
        if kind == .lbrace {
            advance()
            var list: [Expr] = []
            repeat { list.append(try lvalue()) } while accept(.comma)
            try expect(.rbrace)
            return .concat(list)
        }
        return try postfixSelects(try hierarchical())
    }

    mutating func postfixSelects(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            if accept(.lbracket) {
                e = try selectTail(e)
            } else if kind == .dot {
                advance()
                e = .member(e, try identifier())
            } else {
                return e
            }
        }
    }

    /// After `[`: an index, or a part-select `a:b`, `a+:w`, `a-:w`, then `]`.
    mutating func selectTail(_ e: Expr) throws -> Expr {
        let a = try expr()
        var r: Expr
        if accept(.colon) {
            r = .slice(e, .range, a, try expr())
        } else if accept(.plusColon) {
            r = .slice(e, .up, a, try expr())
        } else if accept(.minusColon) {
            r = .slice(e, .down, a, try expr())
        } else {
            r = .index(e, a)
        }
        try expect(.rbracket, "']'")
        return r
    }

    // MARK: expressions

    mutating func mintypmax() throws -> Expr {
        let a = try expr()
        if accept(.colon) {
            let b = try expr()
            try expect(.colon, "':' in min:typ:max")
            return .minTypMax(a, b, try expr())
        }
        return a
    }

    mutating func expr() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let c = try binary(1)
        if accept(.question) {
            let a = try expr()
            try expect(.colon, "':' in the conditional expression")
            return .ternary(c, a, try expr())
        }
        return c
    }

    @inline(__always)
    static func binaryOp(_ k: Tok) -> BinaryOp? {
        switch k {
        case .power: return .power
        case .star: return .mul
        case .slash: return .div
        case .percent: return .mod
        case .plus: return .add
        case .minus: return .sub
        case .shl: return .shl
        case .shr: return .shr
        case .ashl: return .ashl
        case .ashr: return .ashr
        case .lt: return .lt
        case .le: return .le
        case .gt: return .gt
        case .ge: return .ge
        case .eq: return .eq
        case .neq: return .neq
        case .caseEq: return .caseEq
        case .caseNeq: return .caseNeq
        case .amp: return .bitAnd
        case .caret: return .bitXor
        case .xnor: return .bitXnor
        case .pipe: return .bitOr
        case .andAnd: return .and
        case .orOr: return .or
        default: return nil
        }
    }

    mutating func binary(_ minPrec: Int) throws -> Expr {
        var lhs = try unary()
        while let op = Parser.binaryOp(kind), op.precedence >= minPrec {
            advance()
            let attrs = try attributes()
            let rhs = try binary(op.precedence + 1)
            lhs = attrs.isEmpty ? .binary(op, lhs, rhs) : .operatorAttributes(attrs, .binary(op, lhs, rhs))
        }
        return lhs
    }

    mutating func unary() throws -> Expr {
        let op: UnaryOp?
        switch kind {
        case .plus: op = .plus
        case .minus: op = .minus
        case .bang: op = .not
        case .tilde: op = .bitNot
        case .amp: op = .and
        case .nand: op = .nand
        case .pipe: op = .or
        case .nor: op = .nor
        case .caret: op = .xor
        case .xnor: op = .xnor
        default: op = nil
        }
        if let op {
            advance()
            try enter()
            defer { depth -= 1 }
            let attrs = try attributes()
            let e = Expr.unary(op, try unary())
            return attrs.isEmpty ? e : .operatorAttributes(attrs, e)
        }
        return try primary()
    }

    mutating func numberText() -> String {
        let t = toks[i]
        let b = sm.bytes(t)
        if b.contains(0x20) || b.contains(0x09) {
            return String(decoding: b.filter { $0 != 0x20 && $0 != 0x09 }, as: UTF8.self)
        }
        return sm.text(t)
    }

    /// `WIDTH'd0`, `(2**i)'b0`: an unsized based literal right after a name or a parenthesised expression takes
    /// its size from it (yosys's reader takes this SystemVerilog size cast).
    mutating func sizeCast(_ e: Expr) -> Expr {
        guard kind == .number, sm.bytes(toks[i]).first == 0x27 else { return e }
        let s = numberText()
        advance()
        return .sized(e, s)
    }

    mutating func primary() throws -> Expr {
        switch kind {
        case .number:
            var s = numberText()
            advance()
            // `OR1K_WIDTH'd0: a size that came from a macro, then the based digits (`8 'hFF` with the two apart).
            if kind == .number, sm.bytes(toks[i]).first == 0x27, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 || $0 == 0x5F }) {
                s += numberText()
                advance()
            }
            return .number(s)
        case .realNumber:
            let s = text()
            advance()
            return .real(s)
        case .string:
            let s = text()
            advance()
            return .string(s)
        case .ident, .escIdent:
            var e = Expr.ident(text())
            advance()
            while true {
                if kind == .lbracket {
                    advance()
                    e = try selectTail(e)
                } else if kind == .dot {
                    advance()
                    e = .member(e, try identifier())
                } else if kind == .lparen {
                    advance()
                    var args: [Expr] = []
                    if kind != .rparen {
                        repeat { args.append(try expr()) } while accept(.comma)
                    }
                    try expect(.rparen, "',' or ')' in the function call")
                    e = .call(e, args)
                } else {
                    return sizeCast(e)
                }
            }
        case .sysIdent:
            let n = text()
            advance()
            var e: Expr
            if accept(.lparen) {
                let args = try callArgs()
                try expect(.rparen, "',' or ')' in the arguments")
                e = .system(n, args)
            } else {
                e = .system(n, nil)
            }
            while kind == .lbracket {
                advance()
                e = try selectTail(e)
            }
            return e
        case .lparen:
            advance()
            let e = try mintypmax()
            try expect(.rparen, "')'")
            return sizeCast(.paren(e))
        case .lbrace:
            advance()
            try enter()
            defer { depth -= 1 }
            let first = try expr()
            if kind == .lbrace {
                advance()
                var list: [Expr] = []
                repeat { list.append(try expr()) } while accept(.comma)
                try expect(.rbrace)
                try expect(.rbrace, "'}' closing the replication")
                var e = Expr.replicate(first, list)
                while kind == .lbracket {
                    advance()
                    e = try selectTail(e)
                }
                return e
            }
            var list = [first]
            while accept(.comma) { list.append(try expr()) }
            try expect(.rbrace, "',' or '}' in the concatenation")
            var e = Expr.concat(list)
            while kind == .lbracket {
                advance()
                e = try selectTail(e)
            }
            return e
        default:
            throw fail("an expression")
        }
    }
}
