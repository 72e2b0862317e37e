// The preprocessor (IEEE 1364-2005 section 19): `define (with arguments), `undef, `ifdef/`ifndef/`elsif/`else/
// `endif, `include with search paths, and macro use. It turns the lexer's tokens into the token stream the parser
// reads. Directives that mean something to the tools downstream (`timescale, `default_nettype, `resetall,
// `celldefine, ...) are kept as one `.directive` token each, spanning their line, so the printer writes them back.

import Foundation

/// Finds and reads an included file: the name as written, the directory of the including file, the search paths.
/// Returns the path found and its bytes, or nil.
public typealias IncludeLoader = @Sendable (_ name: String, _ fromDirectory: String, _ searchPaths: [String]) -> (
    path: String, bytes: [UInt8]
)?

public struct PreprocessorOptions: Sendable {
    /// Directories searched for `include files after the including file's own directory (`-I`).
    public var includePaths: [String] = []
    /// Macros defined before the first file (`-D NAME=VALUE`; an empty value for `-D NAME`).
    public var defines: [String: String] = [:]
    /// Read as a synthesis tool does (yosys's `read_verilog`): `SYNTHESIS` is defined and text between
    /// `// synthesis translate_off` and `// synthesis translate_on` (or `synopsys`, `pragma`) is skipped.
    public var synthesis = false
    /// How included files are read; nil reads none (every `include is an error), which is what the fuzzer uses.
    public var loader: IncludeLoader? = PreprocessorOptions.fileLoader

    public init(includePaths: [String] = [], defines: [String: String] = [:], synthesis: Bool = false) {
        self.includePaths = includePaths
        self.defines = defines
        self.synthesis = synthesis
    }

    /// Reads includes from the file system: the including file's directory first, then the search paths.
    public static let fileLoader: IncludeLoader = { name, dir, paths in
        let candidates = name.hasPrefix("/") ? [name] : ([dir] + paths).map { ($0 as NSString).appendingPathComponent(name) }
        for c in candidates {
            if let d = FileManager.default.contents(atPath: c), !FS.isDirectory(c) { return (c, [UInt8](d)) }
        }
        return nil
    }

    /// Directives passed through to the parser (and so kept by the printer).
    static let keptDirectives: Set<String> = [
        "timescale", "default_nettype", "resetall", "celldefine", "endcelldefine", "unconnected_drive",
        "nounconnected_drive", "line", "pragma", "begin_keywords", "end_keywords", "default_decay_time",
        "default_trireg_strength", "delay_mode_distributed", "delay_mode_path", "delay_mode_unit", "delay_mode_zero",
    ]
}

import LoomCore

public struct PreprocessResult {
    public var tokens: [Token]
    public var diagnostics: [Diagnostic]
    /// Files read through `include (paths as found).
    public var included: [String]
}

struct Preprocessor {
    struct Macro {
        var formals: [String]?
        var body: [Token]
    }
    struct Frame {
        var tokens: [Token]
        var index: Int
    }
    struct Cond {
        var parentActive: Bool
        var taken: Bool
        var active: Bool
        var sawElse: Bool
        var location: SourceLocation
    }

    let sm: SourceManager
    let options: PreprocessorOptions
    var cur: Lexer
    var curDir: String
    var stack: [(Lexer, String)] = []
    var frames: [Frame] = []
    var macros: [String: Macro] = [:]
    var conds: [Cond] = []
    var active = true
    var out: [Token] = []
    var diags: [Diagnostic] = []
    var included: [String] = []
    var expanded = 0
    static let maxIncludeDepth = 32
    static let maxExpansionDepth = 64
    static let maxExpandedTokens = 1 << 21
    static let maxDiagnostics = 50

    init(sm: SourceManager, buffer: Int, directory: String, options: PreprocessorOptions) {
        self.sm = sm
        self.options = options
        cur = Lexer(base: sm.base(buffer), start: 0, end: sm.count(buffer), buffer: buffer, file: buffer)
        cur.synthesis = options.synthesis
        curDir = directory
        out.reserveCapacity(sm.count(buffer) / 4)
        var defines = options.defines
        if options.synthesis && defines["SYNTHESIS"] == nil { defines["SYNTHESIS"] = "" }
        for (name, value) in defines.sorted(by: { $0.key < $1.key }) {
            let b = sm.add(name: "<define \(name)>", bytes: Array(value.utf8))
            var lx = Lexer(base: sm.base(b), start: 0, end: sm.count(b), buffer: b, file: b)
            var body: [Token] = []
            while true {
                let t = lx.next()
                if t.kind == .eof || t.kind == .error { break }
                body.append(t)
            }
            macros[name] = Macro(formals: nil, body: body)
        }
    }

    mutating func diag(_ t: Token, _ message: String) {
        if diags.count < Preprocessor.maxDiagnostics { diags.append(Diagnostic(sm.location(t), message)) }
    }

    /// The next token before directive handling: from the innermost macro expansion, else the current file.
    @inline(__always)
    mutating func nextRaw() -> (Token, Bool) {
        while !frames.isEmpty {
            let k = frames.count - 1
            if frames[k].index < frames[k].tokens.count {
                let t = frames[k].tokens[frames[k].index]
                frames[k].index += 1
                return (t, false)
            }
            frames.removeLast()
        }
        while true {
            let t = cur.next()
            if t.kind == .eof, let (lx, dir) = stack.popLast() {
                cur = lx
                curDir = dir
                continue
            }
            return (t, true)
        }
    }

    mutating func run() -> PreprocessResult {
        while true {
            let (t, fromFile) = nextRaw()
            switch t.kind {
            case .eof:
                if let c = conds.last {
                    diags.append(Diagnostic(c.location, "`ifdef/`ifndef without a matching `endif"))
                }
                out.append(t)
                return PreprocessResult(tokens: out, diagnostics: diags, included: included)
            case .directive:
                directive(t, fromFile: fromFile)
            case .error:
                if active { diag(t, cur.lastError == .none ? "invalid text" : cur.lastError.message) }
            default:
                if active { out.append(t) }
            }
        }
    }

    mutating func name(_ t: Token) -> String {
        let b = sm.bytes(t)
        return String(decoding: UnsafeBufferPointer(rebasing: b[1...]), as: UTF8.self)
    }

    mutating func directive(_ t: Token, fromFile: Bool) {
        let n = name(t)
        switch n {
        case "ifdef", "ifndef", "elsif":
            let (id, _) = nextRaw()
            guard id.kind == .ident || id.kind == .escIdent || id.kind.isKeyword else {
                diag(id, "expected a macro name after `\(n)")
                return
            }
            let defined = macros[sm.text(id)] != nil
            if n == "elsif" {
                guard var c = conds.popLast() else {
                    diag(t, "`elsif without `ifdef")
                    return
                }
                if c.sawElse { diag(t, "`elsif after `else") }
                c.active = c.parentActive && !c.taken && defined
                if c.active { c.taken = true }
                conds.append(c)
            } else {
                let on = active && (n == "ifdef" ? defined : !defined)
                conds.append(Cond(parentActive: active, taken: on, active: on, sawElse: false, location: sm.location(t)))
            }
            active = conds.last!.active
        case "else":
            guard var c = conds.popLast() else {
                diag(t, "`else without `ifdef")
                return
            }
            if c.sawElse { diag(t, "second `else for one `ifdef") }
            c.sawElse = true
            c.active = c.parentActive && !c.taken
            c.taken = true
            conds.append(c)
            active = c.active
        case "endif":
            guard let c = conds.popLast() else {
                diag(t, "`endif without `ifdef")
                return
            }
            active = c.parentActive
        case "define":
            guard fromFile else {
                diag(t, "`define inside a macro body is not supported")
                return
            }
            define(t)
        case "undef":
            let (id, _) = nextRaw()
            if active { macros[sm.text(id)] = nil }
        case "include":
            let (s, _) = nextRaw()
            guard active else { return }
            guard s.kind == .string else {
                diag(s, "expected a file name in quotes after `include")
                return
            }
            include(t, s)
        default:
            guard active else { return }
            if PreprocessorOptions.keptDirectives.contains(n) {
                guard fromFile else {
                    diag(t, "`\(n) inside a macro body is not supported")
                    return
                }
                var e = cur.endOfLine(from: cur.pos)
                // A trailing // comment is not part of the directive.
                let b = cur.base
                var q = Int(t.start)
                var inString = false
                while q < e {
                    if b[q] == 0x22 { inString.toggle() }
                    if !inString && b[q] == 0x2F && q + 1 < e && (b[q + 1] == 0x2F || b[q + 1] == 0x2A) {
                        e = q
                        break
                    }
                    q += 1
                }
                while e > Int(t.start) && Lexer.isSpace(b[e - 1]) { e -= 1 }
                var d = t
                d.length = UInt32(e - Int(t.start))
                cur.pos = max(cur.pos, e)
                out.append(d)
                return
            }
            expand(t, n)
        }
    }

    mutating func define(_ t: Token) {
        let (id, _) = nextRaw()
        guard id.kind == .ident || id.kind == .escIdent || id.kind.isKeyword else {
            if active { diag(id, "expected a macro name after `define") }
            cur.pos = cur.endOfLine(from: cur.pos)
            return
        }
        var formals: [String]? = nil
        if cur.pos < cur.end && cur.base[cur.pos] == 0x28 {
            var list: [String] = []
            _ = cur.next()  // (
            while true {
                let a = cur.next()
                if a.kind == .rparen { break }
                if a.kind == .comma { continue }
                if a.kind == .ident || a.kind == .escIdent {
                    list.append(sm.text(a))
                    continue
                }
                if active { diag(a, "expected a formal argument name or ')' in `define") }
                cur.pos = cur.endOfLine(from: cur.pos)
                return
            }
            formals = list
        }
        // The body: to the end of the line, with \-newline continuations; // comments end it.
        let b = cur.base
        var p = cur.pos
        var bodyEnd = -1
        while p < cur.end {
            let c = b[p]
            if c == 0x5C && p + 1 < cur.end && (b[p + 1] == 0x0A || b[p + 1] == 0x0D) {
                p += b[p + 1] == 0x0D && p + 2 < cur.end && b[p + 2] == 0x0A ? 3 : 2
                continue
            }
            if c == 0x0A { break }
            if c == 0x2F && p + 1 < cur.end && b[p + 1] == 0x2F {
                bodyEnd = p
                while p < cur.end && b[p] != 0x0A { p += 1 }
                break
            }
            if c == 0x2F && p + 1 < cur.end && b[p + 1] == 0x2A {
                p += 2
                while p + 1 < cur.end && !(b[p] == 0x2A && b[p + 1] == 0x2F) { p += 1 }
                p = min(cur.end, p + 2)
                continue
            }
            if c == 0x22 {
                p += 1
                while p < cur.end && b[p] != 0x22 && b[p] != 0x0A {
                    p += b[p] == 0x5C ? 2 : 1
                }
                if p < cur.end && b[p] == 0x22 { p += 1 }
                continue
            }
            p += 1
        }
        p = min(p, cur.end)
        if bodyEnd < 0 { bodyEnd = p }
        var sub = Lexer(
            base: b, start: cur.pos, end: bodyEnd, buffer: Int(cur.buffer), file: Int(cur.file), line: cur.line,
            lineStart: cur.lineStart)
        var body: [Token] = []
        while true {
            let x = sub.next()
            if x.kind == .eof { break }
            if x.kind == .error {
                if active { diag(x, sub.lastError.message + " in `define body") }
                continue
            }
            body.append(x)
        }
        // Lines the body spanned (continuations) are counted by the sub-lexer.
        cur.pos = p
        cur.line = sub.line
        cur.lineStart = sub.lineStart
        guard active else { return }
        macros[sm.text(id)] = Macro(formals: formals, body: body)
    }

    mutating func include(_ t: Token, _ s: Token) {
        var name = sm.text(s)
        name = String(name.dropFirst().dropLast())
        guard stack.count < Preprocessor.maxIncludeDepth else {
            diag(t, "`include nested more than \(Preprocessor.maxIncludeDepth) deep (a file including itself?)")
            return
        }
        guard let loader = options.loader, let (path, bytes) = loader(name, curDir, options.includePaths) else {
            let searched = ([curDir] + options.includePaths).joined(separator: ", ")
            diag(t, "cannot find include file \"\(name)\" (searched: \(searched))")
            return
        }
        guard sm.buffers.count < Int(UInt16.max) - 1 else {
            diag(t, "too many files")
            return
        }
        included.append(path)
        let b = sm.add(name: path, bytes: bytes)
        stack.append((cur, curDir))
        cur = Lexer(base: sm.base(b), start: 0, end: sm.count(b), buffer: b, file: b)
        cur.synthesis = options.synthesis
        curDir = (path as NSString).deletingLastPathComponent
    }

    mutating func expand(_ t: Token, _ n: String) {
        guard let m = macros[n] else {
            diag(t, "undefined macro `\(n)")
            return
        }
        guard frames.count < Preprocessor.maxExpansionDepth else {
            diag(t, "macro `\(n) expands too deeply (recursive macro?)")
            return
        }
        var body = m.body
        if let formals = m.formals {
            let (open, _) = nextRaw()
            guard open.kind == .lparen else {
                diag(open, "expected '(' and the arguments of macro `\(n)")
                return
            }
            var args: [[Token]] = [[]]
            var depth = 0
            while true {
                let (a, _) = nextRaw()
                if a.kind == .eof {
                    diag(t, "unterminated arguments of macro `\(n)")
                    out.append(a)
                    return
                }
                if depth == 0 && a.kind == .rparen { break }
                if depth == 0 && a.kind == .comma {
                    args.append([])
                    continue
                }
                if a.kind == .lparen || a.kind == .lbracket || a.kind == .lbrace { depth += 1 }
                if a.kind == .rparen || a.kind == .rbracket || a.kind == .rbrace { depth -= 1 }
                args[args.count - 1].append(a)
            }
            if formals.isEmpty && args.count == 1 && args[0].isEmpty { args = [] }
            guard args.count == formals.count else {
                diag(t, "macro `\(n) takes \(formals.count) arguments, got \(args.count)")
                return
            }
            body = []
            for x in m.body {
                if x.kind == .ident || x.kind == .escIdent, let i = formals.firstIndex(of: sm.text(x)) {
                    body.append(contentsOf: args[i])
                } else {
                    body.append(x)
                }
            }
        }
        expanded += body.count
        guard expanded <= Preprocessor.maxExpandedTokens else {
            if expanded - body.count <= Preprocessor.maxExpandedTokens {
                diag(t, "macro expansion produced more than \(Preprocessor.maxExpandedTokens) tokens")
            }
            return
        }
        for i in body.indices {
            body[i].file = t.file
            body[i].expanded = true
            body[i].line = t.line
            body[i].column = t.column
        }
        frames.append(Frame(tokens: body, index: 0))
    }
}

extension Preprocessor {
    /// Preprocesses one buffer already added to `sm`.
    static func run(sm: SourceManager, buffer: Int, directory: String, options: PreprocessorOptions)
        -> PreprocessResult
    {
        var p = Preprocessor(sm: sm, buffer: buffer, directory: directory, options: options)
        return p.run()
    }
}
