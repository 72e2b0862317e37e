// The printer: AST to Verilog text in one canonical layout (two-space indents, one item or statement a line).
// Contract: for any tree the parser built, parse(print(tree)) == tree. Parentheses the source wrote are in the tree;
// the printer adds more only where a hand-built tree would otherwise read differently.

public struct Printer {
    public private(set) var out = ""
    var indent = 0
    /// Spans (UTF-8 offsets into `out`) of each simple statement and module item ending in `;`, for completion tasks.
    public private(set) var statementSpans: [(start: Int, end: Int)] = []
    /// Where the module header ends (just after its `;`), per module printed.
    public private(set) var headerEnds: [Int] = []

    public init() {}

    public static func print(_ s: SourceText) -> String {
        var p = Printer()
        p.source(s)
        return p.out
    }

    public static func print(_ m: Module) -> String {
        var p = Printer()
        p.module(m)
        return p.out
    }

    public static func print(_ e: Expr) -> String {
        var p = Printer()
        p.expr(e)
        return p.out
    }

    public static func print(_ s: Stmt) -> String {
        var p = Printer()
        p.stmtInline(s)
        return p.out
    }

    public static func print(_ r: VRange) -> String {
        var p = Printer()
        p.range(r)
        return p.out
    }

    mutating func w(_ s: String) { out += s }
    mutating func nl() { out += "\n" }
    mutating func pad() { for _ in 0..<indent { out += "  " } }
    var offset: Int { out.utf8.count }

    /// An opaque item's entries (tokens, or runs of tokens written together), one space apart (which also ends an
    /// escaped identifier).
    mutating func tokenLine(_ tokens: [String]) { w(tokens.joined(separator: " ")) }

    /// Each statement on its own line, one level deeper.
    mutating func tokenLines(_ statements: [[String]]) {
        indent += 1
        for st in statements {
            pad()
            tokenLine(st)
            nl()
        }
        indent -= 1
    }

    /// An identifier; an escaped one ends at white space, so one follows it.
    mutating func id(_ s: String) {
        out += s
        if s.hasPrefix("\\") { out += " " }
    }

    public mutating func source(_ s: SourceText) {
        for (n, d) in s.items.enumerated() {
            switch d {
            case .directive(let t):
                w(t)
                nl()
            case .module(let m):
                if n > 0, case .directive = s.items[n - 1] {} else if n > 0 { nl() }
                module(m)
            case .primitive(let u):
                if n > 0, case .directive = s.items[n - 1] {} else if n > 0 { nl() }
                primitive(u)
            case .config(let name, let statements):
                if n > 0, case .directive = s.items[n - 1] {} else if n > 0 { nl() }
                w("config ")
                id(name)
                w(";")
                nl()
                tokenLines(statements)
                w("endconfig")
                nl()
            }
        }
    }

    mutating func primitive(_ u: UDP) {
        pad()
        attrs(u.attributes)
        w("primitive ")
        id(u.name)
        w(" (")
        tokenLine(u.ports)
        w(");")
        nl()
        tokenLines(u.declarations)
        indent += 1
        pad()
        w("table")
        nl()
        tokenLines(u.table)
        pad()
        w("endtable")
        nl()
        indent -= 1
        pad()
        w("endprimitive")
        nl()
    }

    mutating func attrs(_ a: [Attribute]) {
        guard !a.isEmpty else { return }
        w("(* ")
        for (k, x) in a.enumerated() {
            if k > 0 { w(", ") }
            id(x.name)
            if let v = x.value {
                w(" = ")
                expr(v)
            }
        }
        w(" *) ")
    }

    public mutating func module(_ m: Module) {
        pad()
        attrs(m.attributes)
        w(m.keyword + " ")
        id(m.name)
        if let ps = m.parameterPorts {
            w(" #(")
            if ps.isEmpty {
                w(")")
            } else {
                nl()
                indent += 1
                for (k, p) in ps.enumerated() {
                    pad()
                    paramDecl(p)
                    if k < ps.count - 1 { w(",") }
                    nl()
                }
                indent -= 1
                pad()
                w(")")
            }
        }
        if let ports = m.ports {
            if ports.isEmpty {
                w(" ()")
            } else if m.isANSI {
                w(" (")
                nl()
                indent += 1
                for (k, p) in ports.enumerated() {
                    pad()
                    port(p)
                    if k < ports.count - 1 { w(",") }
                    nl()
                }
                indent -= 1
                pad()
                w(")")
            } else {
                w(" (")
                for (k, p) in ports.enumerated() {
                    if k > 0 { w(", ") }
                    port(p)
                }
                w(")")
            }
        } else if m.impliedPorts {
            w(" (...)")
        }
        w(";")
        headerEnds.append(offset)
        nl()
        indent += 1
        for it in m.items { item(it) }
        indent -= 1
        pad()
        w("endmodule")
        nl()
    }

    mutating func port(_ p: Port) {
        switch p {
        case .ansi(let a):
            attrs(a.attributes)
            var parts = false
            if let d = a.direction {
                w(d)
                parts = true
            }
            if let k = a.kind {
                if parts { w(" ") }
                w(k)
                parts = true
            }
            if a.signed {
                if parts { w(" ") }
                w("signed")
                parts = true
            }
            if let r = a.range {
                if parts { w(" ") }
                range(r)
                parts = true
            }
            if parts { w(" ") }
            id(a.name)
            for d in a.dimensions {
                w(" ")
                range(d)
            }
            if let e = a.initial {
                w(" = ")
                expr(e)
            }
        case .reference(let name, let e):
            if let name {
                w(".")
                id(name)
                w("(")
                if let e { expr(e) }
                w(")")
            } else if let e {
                expr(e)
            }
        }
    }

    mutating func range(_ r: VRange) {
        w("[")
        expr(r.msb)
        w(":")
        expr(r.lsb)
        w("]")
    }

    mutating func paramDecl(_ p: ParamDecl) {
        w(p.local ? "localparam " : "parameter ")
        if let k = p.kind { w(k + " ") }
        if p.signed { w("signed ") }
        if let r = p.range {
            range(r)
            w(" ")
        }
        for (k, (n, e)) in p.assignments.enumerated() {
            if k > 0 { w(", ") }
            id(n)
            w(" = ")
            expr(e)
        }
    }

    mutating func names(_ ns: [DeclName]) {
        for (k, d) in ns.enumerated() {
            if k > 0 { w(", ") }
            id(d.name)
            for r in d.dimensions {
                w(" ")
                range(r)
            }
            if let e = d.initial {
                w(" = ")
                expr(e)
            }
        }
    }

    mutating func delay(_ d: DelayOrParams) {
        w("#")
        switch d {
        case .value(let e): expr(e)
        case .list(let args):
            w("(")
            paramArgs(args)
            w(")")
        }
    }

    mutating func paramArgs(_ args: [ParamArg]) {
        for (k, a) in args.enumerated() {
            if k > 0 { w(", ") }
            switch a {
            case .positional(let e): expr(e)
            case .named(let n, let e):
                w(".")
                id(n)
                w("(")
                if let e { expr(e) }
                w(")")
            }
        }
    }

    mutating func simpleItem(_ body: (inout Printer) -> Void) {
        pad()
        let s = offset
        body(&self)
        statementSpans.append((s, offset))
        nl()
    }

    public mutating func item(_ it: ModuleItem) {
        switch it {
        case .directive(let t):
            w(t)
            nl()
        case .specify(let tokens):
            pad()
            w("specify")
            nl()
            indent += 1
            var line: [String] = []
            for t in tokens {
                line.append(t)
                if t.hasSuffix(";") {
                    pad()
                    tokenLine(line)
                    nl()
                    line = []
                }
            }
            if !line.isEmpty {
                pad()
                tokenLine(line)
                nl()
            }
            indent -= 1
            pad()
            w("endspecify")
            nl()
        case .specparam(let tokens):
            pad()
            tokenLine(tokens)
            nl()
        case .elaborationTask(let n, let args):
            pad()
            stmtInline(.call(name: .ident(n), args: args))
        case .port(let d):
            simpleItem { p in
                p.attrs(d.attributes)
                p.w(d.direction + " ")
                if let k = d.kind { p.w(k + " ") }
                if d.signed { p.w("signed ") }
                if let r = d.range {
                    p.range(r)
                    p.w(" ")
                }
                p.names(d.names)
                p.w(";")
            }
        case .net(let d):
            simpleItem { p in
                p.attrs(d.attributes)
                p.w(d.kind + " ")
                if let s = d.strength { p.w("(\(s)) ") }
                if let v = d.vectoring { p.w(v + " ") }
                if d.signed { p.w("signed ") }
                if let r = d.range {
                    p.range(r)
                    p.w(" ")
                }
                if let dl = d.delay {
                    p.delay(dl)
                    p.w(" ")
                }
                p.names(d.names)
                p.w(";")
            }
        case .parameter(let d, let a):
            simpleItem { p in
                p.attrs(a)
                p.paramDecl(d)
                p.w(";")
            }
        case .defparam(let list):
            simpleItem { p in
                p.w("defparam ")
                for (k, (l, r)) in list.enumerated() {
                    if k > 0 { p.w(", ") }
                    p.expr(l)
                    p.w(" = ")
                    p.expr(r)
                }
                p.w(";")
            }
        case .assign(let a):
            simpleItem { p in
                p.attrs(a.attributes)
                p.w("assign ")
                if let s = a.strength { p.w("(\(s)) ") }
                if let d = a.delay {
                    p.delay(d)
                    p.w(" ")
                }
                for (k, (l, r)) in a.assignments.enumerated() {
                    if k > 0 { p.w(", ") }
                    p.expr(l)
                    p.w(" = ")
                    p.expr(r)
                }
                p.w(";")
            }
        case .always(let s, let a, _):
            pad()
            attrs(a)
            w("always ")
            stmtInline(s)
        case .initial(let s, let a, _):
            pad()
            attrs(a)
            w("initial ")
            stmtInline(s)
        case .instantiation(let x):
            instantiation(x)
        case .function(let f):
            pad()
            w("function ")
            if f.automatic { w("automatic ") }
            if let k = f.returnKind { w(k + " ") }
            if f.signed { w("signed ") }
            if let r = f.range {
                range(r)
                w(" ")
            }
            id(f.name)
            if let ps = f.ports { tfPorts(ps) }
            w(";")
            nl()
            indent += 1
            for it in f.items { item(it) }
            pad()
            stmtInline(f.body)
            indent -= 1
            pad()
            w("endfunction")
            nl()
        case .task(let t):
            pad()
            w("task ")
            if t.automatic { w("automatic ") }
            id(t.name)
            if let ps = t.ports { tfPorts(ps) }
            w(";")
            nl()
            indent += 1
            for it in t.items { item(it) }
            pad()
            stmtInline(t.body)
            indent -= 1
            pad()
            w("endtask")
            nl()
        case .generateRegion(let items):
            pad()
            w("generate")
            nl()
            indent += 1
            for it in items { item(it) }
            indent -= 1
            pad()
            w("endgenerate")
            nl()
        case .genFor(let ini, let c, let step, let b):
            pad()
            w("for (")
            id(ini.0)
            w(" = ")
            expr(ini.1)
            w("; ")
            expr(c)
            w("; ")
            id(step.0)
            w(" = ")
            expr(step.1)
            w(") ")
            genBlock(b)
        case .genIf(let c, let t, let e):
            pad()
            genIf(c, t, e)
        case .genCase(let e, let items):
            pad()
            w("case (")
            expr(e)
            w(")")
            nl()
            indent += 1
            for ci in items {
                pad()
                if ci.labels.isEmpty {
                    w("default")
                } else {
                    exprList(ci.labels)
                }
                w(": ")
                if let b = ci.body { genBlock(b) } else { w(";"); nl() }
            }
            indent -= 1
            pad()
            w("endcase")
            nl()
        case .genBlock(let b):
            pad()
            genBlock(b)
        }
    }

    mutating func genIf(_ c: Expr, _ t: GenerateBlock?, _ e: GenerateBlock?) {
        w("if (")
        expr(c)
        w(") ")
        if let t {
            // A then-branch that is itself an if without else would take our else: keep it in begin/end.
            if e != nil, !t.hasBegin, t.items.count == 1, case .genIf(_, _, nil) = t.items[0] {
                genBlock(GenerateBlock(hasBegin: true, name: nil, items: t.items))
            } else {
                genBlock(t)
            }
        } else {
            w(";")
            nl()
        }
        if let e {
            pad()
            w("else ")
            if !e.hasBegin && e.items.isEmpty {
                w(";")
                nl()
            } else if !e.hasBegin, e.items.count == 1, case .genIf(let c2, let t2, let e2) = e.items[0] {
                genIf(c2, t2, e2)
            } else {
                genBlock(e)
            }
        }
    }

    /// A generate block after its header, on the same line (`begin : name` ... `end`, or one item).
    mutating func genBlock(_ b: GenerateBlock) {
        if b.hasBegin {
            w("begin")
            if let n = b.name {
                w(" : ")
                id(n)
            }
            nl()
            indent += 1
            for it in b.items { item(it) }
            indent -= 1
            pad()
            w("end")
            nl()
        } else {
            if out.hasSuffix(" ") { out.removeLast() }
            nl()
            indent += 1
            for it in b.items { item(it) }
            indent -= 1
        }
    }

    mutating func tfPorts(_ ps: [TFPort]) {
        w("(")
        for (k, p) in ps.enumerated() {
            if k > 0 { w(", ") }
            attrs(p.attributes)
            w(p.direction + " ")
            if let kd = p.kind { w(kd + " ") }
            if p.signed { w("signed ") }
            if let r = p.range {
                range(r)
                w(" ")
            }
            for (j, n) in p.names.enumerated() {
                if j > 0 { w(", ") }
                id(n)
            }
        }
        w(")")
    }

    mutating func instantiation(_ x: Instantiation) {
        pad()
        let s = offset
        attrs(x.attributes)
        id(x.module)
        if let st = x.strength { w(" (\(st))") }
        if let p = x.parameters {
            w(" ")
            delay(p)
        }
        for (k, inst) in x.instances.enumerated() {
            if k > 0 {
                w(",")
                nl()
                pad()
                w("  ")
            } else {
                w(" ")
            }
            if let n = inst.name {
                id(n)
                if let r = inst.range {
                    w(" ")
                    range(r)
                }
                w(" ")
            }
            w("(")
            switch inst.connections {
            case .positional(let es):
                for (j, e) in es.enumerated() {
                    if j > 0 { w(", ") }
                    if j < inst.connectionAttributes.count { attrs(inst.connectionAttributes[j]) }
                    if let e { expr(e) }
                }
            case .named(let list):
                let multi = list.count > 3
                indent += 2
                for (j, (n, e)) in list.enumerated() {
                    if j > 0 { w(",") }
                    if multi {
                        nl()
                        pad()
                    } else if j > 0 {
                        w(" ")
                    }
                    if j < inst.connectionAttributes.count { attrs(inst.connectionAttributes[j]) }
                    w(".")
                    id(n)
                    w("(")
                    if let e { expr(e) }
                    w(")")
                }
                indent -= 2
                if multi {
                    nl()
                    pad()
                }
            }
            w(")")
        }
        w(";")
        statementSpans.append((s, offset))
        nl()
    }

    // MARK: statements

    /// Prints a statement whose first line has been started (after `always `, a label, ...), ending the line.
    mutating func stmtInline(_ s: Stmt) {
        switch s {
        case .block(let name, let items, let body), .fork(let name, let items, let body):
            let isFork: Bool
            if case .fork = s { isFork = true } else { isFork = false }
            w(isFork ? "fork" : "begin")
            if let n = name {
                w(" : ")
                id(n)
            }
            nl()
            indent += 1
            for it in items { item(it) }
            for st in body {
                pad()
                stmtInline(st)
            }
            indent -= 1
            pad()
            w(isFork ? "join" : "end")
            nl()
        case .ifElse(let c, let t, let e):
            w("if (")
            expr(c)
            w(")")
            var then = t
            if e != nil, case .ifElse(_, _, nil) = t { then = .block(name: nil, items: [], body: [t]) }
            branch(then)
            if let e {
                pad()
                w("else")
                if case .ifElse = e {
                    w(" ")
                    stmtInline(e)
                } else {
                    branch(e)
                }
            }
        case .caseStmt(let k, let e, let items):
            w(k + " (")
            expr(e)
            w(")")
            nl()
            indent += 1
            for ci in items {
                pad()
                if ci.labels.isEmpty { w("default") } else { exprList(ci.labels) }
                w(": ")
                stmtInline(ci.body)
            }
            indent -= 1
            pad()
            w("endcase")
            nl()
        case .forLoop(let ini, let c, let step, let body):
            w("for (")
            assignmentText(ini)
            w("; ")
            expr(c)
            w("; ")
            assignmentText(step)
            w(")")
            branch(body)
        case .whileLoop(let c, let body):
            w("while (")
            expr(c)
            w(")")
            branch(body)
        case .repeatLoop(let c, let body):
            w("repeat (")
            expr(c)
            w(")")
            branch(body)
        case .forever(let body):
            w("forever")
            branch(body)
        case .timed(let c, let body):
            timing(c)
            if case .null = body {
                w(";")
                nl()
            } else {
                w(" ")
                stmtInline(body)
            }
        case .wait(let c, let body):
            w("wait (")
            expr(c)
            w(")")
            if case .null = body {
                w(";")
                nl()
            } else {
                w(" ")
                stmtInline(body)
            }
        case .attributed(let a, let body):
            attrs(a)
            stmtInline(body)
        default:
            let st = offset
            simple(s)
            statementSpans.append((st, offset))
            nl()
        }
    }

    /// The body of if/for/while: a block stays on the line, anything else goes on the next line, indented.
    mutating func branch(_ s: Stmt) {
        switch s {
        case .block, .fork:
            w(" ")
            stmtInline(s)
        case .null:
            stmtInline(s)
        default:
            nl()
            indent += 1
            pad()
            stmtInline(s)
            indent -= 1
        }
    }

    mutating func assignmentText(_ s: Stmt) {
        switch s {
        case .blocking(let l, let c, let r):
            expr(l)
            w(" = ")
            if let c {
                timing(c)
                w(" ")
            }
            expr(r)
        case .nonblocking(let l, let c, let r):
            expr(l)
            w(" <= ")
            if let c {
                timing(c)
                w(" ")
            }
            expr(r)
        default:
            break
        }
    }

    /// A statement that ends in `;`.
    mutating func simple(_ s: Stmt) {
        switch s {
        case .blocking, .nonblocking:
            assignmentText(s)
            w(";")
        case .call(let n, let args):
            expr(n)
            if !args.isEmpty {
                w("(")
                for (k, a) in args.enumerated() {
                    if k > 0 { w(", ") }
                    if let a { expr(a) }
                }
                w(")")
            }
            w(";")
        case .disable(let e):
            w("disable ")
            expr(e)
            w(";")
        case .trigger(let e):
            w("-> ")
            expr(e)
            w(";")
        case .procAssign(let k, let l, let r):
            w(k + " ")
            expr(l)
            if let r {
                w(" = ")
                expr(r)
            }
            w(";")
        case .null:
            w(";")
        default:
            break
        }
    }

    mutating func timing(_ c: TimingControl) {
        switch c {
        case .delay(let d): delay(d)
        case .star: w("@(*)")
        case .named(let e):
            w("@")
            expr(e)
        case .event(let evs):
            w("@(")
            events(evs)
            w(")")
        case .repeatEvent(let n, let evs):
            w("repeat (")
            expr(n)
            w(") @(")
            events(evs)
            w(")")
        }
    }

    mutating func events(_ evs: [EventExpr]) {
        for (k, e) in evs.enumerated() {
            if k > 0 { w(" or ") }
            if e.edge != .any { w(e.edge.rawValue + " ") }
            expr(e.expr)
        }
    }

    // MARK: expressions

    mutating func exprList(_ es: [Expr]) {
        for (k, e) in es.enumerated() {
            if k > 0 { w(", ") }
            expr(e)
        }
    }

    static func precedence(_ e: Expr) -> Int {
        switch e {
        case .binary(let op, _, _): return op.precedence
        case .operatorAttributes(_, let x): return precedence(x)
        case .ternary: return 0
        case .minTypMax: return -1
        default: return 100
        }
    }

    public mutating func expr(_ e: Expr) {
        switch e {
        case .ident(let n): id(n)
        case .number(let s), .real(let s), .string(let s): w(s)
        case .member(let b, let m):
            postfixBase(b)
            w(".")
            id(m)
        case .index(let b, let i):
            postfixBase(b)
            w("[")
            expr(i)
            w("]")
        case .slice(let b, let k, let x, let y):
            postfixBase(b)
            w("[")
            expr(x)
            w(k.rawValue)
            expr(y)
            w("]")
        case .unary(let op, let x):
            unaryExpr(op, x, [])
        case .binary(let op, let a, let b):
            binaryExpr(op, a, b, [])
        case .operatorAttributes(let a, let x):
            switch x {
            case .unary(let op, let y): unaryExpr(op, y, a)
            case .binary(let op, let l, let r): binaryExpr(op, l, r, a)
            default: expr(x)
            }
        case .ternary(let c, let a, let b):
            if Printer.precedence(c) <= 0 {
                w("(")
                expr(c)
                w(")")
            } else {
                expr(c)
            }
            w(" ? ")
            if Printer.precedence(a) < 0 { w("("); expr(a); w(")") } else { expr(a) }
            w(" : ")
            if Printer.precedence(b) < 0 { w("("); expr(b); w(")") } else { expr(b) }
        case .concat(let es):
            w("{")
            exprList(es)
            w("}")
        case .replicate(let n, let es):
            w("{")
            expr(n)
            w("{")
            exprList(es)
            w("}}")
        case .call(let f, let args):
            expr(f)
            w("(")
            exprList(args)
            w(")")
        case .system(let n, let args):
            w(n)
            if let args {
                w("(")
                for (k, a) in args.enumerated() {
                    if k > 0 { w(", ") }
                    if let a { expr(a) }
                }
                w(")")
            }
        case .minTypMax(let a, let b, let c):
            expr(a)
            w(":")
            expr(b)
            w(":")
            expr(c)
        case .paren(let x):
            w("(")
            expr(x)
            w(")")
        case .sized(let size, let value):
            expr(size)
            w(value)
        }
    }

    mutating func unaryExpr(_ op: UnaryOp, _ x: Expr, _ a: [Attribute]) {
        w(op.rawValue)
        attrs(a)
        if case .unary = x, a.isEmpty { w(" ") }
        if Printer.precedence(x) < 100 {
            w("(")
            expr(x)
            w(")")
        } else {
            expr(x)
        }
    }

    mutating func binaryExpr(_ op: BinaryOp, _ a: Expr, _ b: Expr, _ at: [Attribute]) {
        let p = op.precedence
        if Printer.precedence(a) < p {
            w("(")
            expr(a)
            w(")")
        } else {
            expr(a)
        }
        w(" " + op.rawValue + " ")
        attrs(at)
        if Printer.precedence(b) <= p {
            w("(")
            expr(b)
            w(")")
        } else {
            expr(b)
        }
    }

    mutating func postfixBase(_ b: Expr) {
        switch b {
        case .ident, .member, .index, .slice, .call, .system, .concat, .replicate, .paren: expr(b)
        default:
            w("(")
            expr(b)
            w(")")
        }
    }
}
