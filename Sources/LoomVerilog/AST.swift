// The Verilog-2005 abstract syntax tree. Values, Equatable: `parse(print(ast)) == ast` is the printer's contract.
// Positions are kept (`Loc`) for messages and descriptions but are not part of a node's identity: two trees that
// differ only in where they came from are equal.

/// Where a node starts; equal to every other Loc so it never makes two trees differ.
public struct Loc: Equatable, Sendable {
    public var line: Int
    public var column: Int
    public init(line: Int = 0, column: Int = 0) {
        self.line = line
        self.column = column
    }
    public static func == (a: Loc, b: Loc) -> Bool { true }
}

public struct Attribute: Equatable, Sendable {
    public var name: String
    public var value: Expr?
}

/// A source file: modules and the directives kept between them.
public struct SourceText: Equatable, Sendable {
    public var items: [Description]
    public var modules: [Module] {
        items.compactMap {
            if case .module(let m) = $0 { return m }
            return nil
        }
    }
}

public enum Description: Equatable, Sendable {
    case module(Module)
    case directive(String)
    case primitive(UDP)
    /// `config NAME; design ...; default liblist ...; instance ... use ...; endconfig`: each statement its tokens.
    case config(name: String, statements: [[String]])
}

/// A user-defined primitive (IEEE 1364-2005 section 8), kept as written: the header's port list, the declarations
/// (and `initial`) as token statements, and the table's rows (`0 1 : ? : 1 ;`). Tokens written together (`(01)`,
/// `0?`) stay together, so printing and parsing again gives the same tokens.
public struct UDP: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var name: String
    public var ports: [String]
    public var declarations: [[String]]
    public var table: [[String]]
    public var loc = Loc()
}

public struct Module: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var keyword = "module"  // or "macromodule"
    public var name: String
    /// `#( parameter ... )`: nil when absent.
    public var parameterPorts: [ParamDecl]?
    /// The port list: nil for `module m;`, empty for `module m();`.
    public var ports: [Port]?
    /// `module m (...);` (yosys): the ports are the port declarations of the body; `ports` is nil.
    public var impliedPorts = false
    /// The module as written in its file (comments, macros, layout): not part of the tree's identity.
    public var original = OriginalText()
    public var items: [ModuleItem]
    public var loc = Loc()
    /// The 1-based line of `endmodule` (not part of identity).
    public var endLoc = Loc()

    public var isANSI: Bool {
        if let p = ports, let f = p.first, case .ansi = f { return true }
        return false
    }
}

extension Module {
    /// The names of the modules this one instantiates, in generate blocks too (gates excluded).
    public var instantiatedModules: Set<String> {
        var out = Set<String>()
        func walk(_ items: [ModuleItem], _ depth: Int) {
            guard depth < 64 else { return }
            for it in items {
                switch it {
                case .instantiation(let i): out.insert(i.module)
                case .generateRegion(let xs): walk(xs, depth + 1)
                case .genFor(_, _, _, let b), .genBlock(let b): walk(b.items, depth + 1)
                case .genIf(_, let t, let e): walk((t?.items ?? []) + (e?.items ?? []), depth + 1)
                case .genCase(_, let cs): walk(cs.flatMap { $0.body?.items ?? [] }, depth + 1)
                default: break
                }
            }
        }
        walk(items, 0)
        return out
    }
}

/// Text as written in the source file; any two compare equal, so trees compare by structure only.
public struct OriginalText: Equatable, Sendable {
    /// "" when the module is not contiguous text of the parsed file (made by a macro, or ending in an include).
    public var text = ""
    public init(text: String = "") { self.text = text }
    public static func == (a: OriginalText, b: OriginalText) -> Bool { true }
}

public enum Port: Equatable, Sendable {
    /// `input wire [7:0] a` (a later port without a direction inherits the previous one's).
    case ansi(AnsiPort)
    /// Non-ANSI: `a`, `a[3:0]`, `{a, b}`, `.name(expr)`, `.name()`, or an empty port.
    case reference(name: String?, expr: Expr?)
}

public struct AnsiPort: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var direction: String?  // input, output, inout; nil: same as the previous port
    public var kind: String?  // wire, reg, integer, ... ; nil when not written
    public var signed = false
    public var range: VRange?
    public var name: String
    public var dimensions: [VRange] = []
    public var initial: Expr?
}

public struct VRange: Equatable, Sendable {
    public var msb: Expr
    public var lsb: Expr
}

/// A declared name: `a`, `mem [0:255]`, `q = 1'b0`.
public struct DeclName: Equatable, Sendable {
    public var name: String
    public var dimensions: [VRange] = []
    public var initial: Expr?
}

public struct ParamDecl: Equatable, Sendable {
    public var local = false
    public var kind: String?  // integer, real, realtime, time
    public var signed = false
    public var range: VRange?
    public var assignments: [(String, Expr)]

    public static func == (a: ParamDecl, b: ParamDecl) -> Bool {
        a.local == b.local && a.kind == b.kind && a.signed == b.signed && a.range == b.range
            && a.assignments.count == b.assignments.count
            && zip(a.assignments, b.assignments).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// `#5`, `#(1, 2)`, `#(.W(8), .D(2))` after a module or gate name, or a delay in a net or assignment.
public enum DelayOrParams: Equatable, Sendable {
    case value(Expr)  // #5, #WIDTH, #1.5
    case list([ParamArg])  // #( ... )
}

public enum ParamArg: Equatable, Sendable {
    case positional(Expr)
    case named(String, Expr?)
}

public struct NetDecl: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var kind: String  // wire, tri, supply0, ..., reg, integer, real, time, realtime, event, genvar
    public var strength: String?  // "(strong0, weak1)" as written, normalised
    public var vectoring: String?  // vectored, scalared
    public var signed = false
    public var range: VRange?
    public var delay: DelayOrParams?
    public var names: [DeclName]
    public var loc = Loc()
}

public struct PortDecl: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var direction: String
    public var kind: String?
    public var signed = false
    public var range: VRange?
    public var names: [DeclName]
    public var loc = Loc()
}

public struct ContinuousAssign: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var strength: String?
    public var delay: DelayOrParams?
    public var assignments: [(Expr, Expr)]
    public var loc = Loc()

    public static func == (a: ContinuousAssign, b: ContinuousAssign) -> Bool {
        a.attributes == b.attributes && a.strength == b.strength && a.delay == b.delay
            && a.assignments.count == b.assignments.count
            && zip(a.assignments, b.assignments).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// A module, UDP or gate instantiation: `SUB #(.W(8)) u0 (.a(x), .b(y)), u1 (...);` or `and #1 g (o, a, b);`.
public struct Instantiation: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var module: String
    public var strength: String?
    public var parameters: DelayOrParams?
    public var instances: [Instance]
    public var loc = Loc()
}

public struct Instance: Equatable, Sendable {
    public var name: String?
    public var range: VRange?
    public var connections: Connections
    /// `(* ... *)` before each connection (IEEE 1364-2005 12.2.2.2), by position; empty when none has any.
    public var connectionAttributes: [[Attribute]] = []
}

public enum Connections: Equatable, Sendable {
    case positional([Expr?])
    case named([(String, Expr?)])

    public static func == (a: Connections, b: Connections) -> Bool {
        switch (a, b) {
        case (.positional(let x), .positional(let y)): return x == y
        case (.named(let x), .named(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}

/// A function or task port: `input [7:0] a, b` (function ports are inputs).
public struct TFPort: Equatable, Sendable {
    public var attributes: [Attribute] = []
    public var direction: String
    public var kind: String?  // reg, integer, real, ...
    public var signed = false
    public var range: VRange?
    public var names: [String]
}

public struct Function: Equatable, Sendable {
    public var automatic = false
    public var signed = false
    public var returnKind: String?  // integer, real, realtime, time
    public var range: VRange?
    public var name: String
    /// ANSI-style `( input a, ... )` ports; nil when the ports are declared in the body.
    public var ports: [TFPort]?
    public var items: [ModuleItem]  // declarations, including body-declared ports
    public var body: Stmt
    public var loc = Loc()
}

public struct Task: Equatable, Sendable {
    public var automatic = false
    public var name: String
    public var ports: [TFPort]?
    public var items: [ModuleItem]
    public var body: Stmt
    public var loc = Loc()
}

public struct GenerateBlock: Equatable, Sendable {
    /// `begin : name ... end`; a block with no `begin` holds exactly one item.
    public var hasBegin: Bool
    public var name: String?
    public var items: [ModuleItem]
}

public struct GenCaseItem: Equatable, Sendable {
    public var labels: [Expr]  // empty: default
    public var body: GenerateBlock?
}

public indirect enum ModuleItem: Equatable, Sendable {
    case port(PortDecl)
    case net(NetDecl)  // nets, variables (reg, integer, ...), events, genvars
    case parameter(ParamDecl, attributes: [Attribute])
    case defparam([(Expr, Expr)])
    case assign(ContinuousAssign)
    case always(Stmt, attributes: [Attribute], loc: Loc)
    case initial(Stmt, attributes: [Attribute], loc: Loc)
    case instantiation(Instantiation)
    case function(Function)
    case task(Task)
    case generateRegion([ModuleItem])
    case genFor(init: (String, Expr), cond: Expr, step: (String, Expr), block: GenerateBlock)
    case genIf(cond: Expr, then: GenerateBlock?, else: GenerateBlock?)
    case genCase(expr: Expr, items: [GenCaseItem])
    case genBlock(GenerateBlock)
    case directive(String)
    /// `specify ... endspecify` (path delays, timing checks, specparams), kept as its tokens' text: timing that
    /// synthesis and these datasets do not interpret, printed back token for token.
    case specify([String])
    /// A module-level `specparam` declaration, its tokens up to and including the ';'.
    case specparam([String])
    /// `$error("...");`, `$warning`, `$info`, `$fatal` as a module or generate item (yosys's reader takes them).
    case elaborationTask(String, [Expr?])

    public static func == (a: ModuleItem, b: ModuleItem) -> Bool {
        switch (a, b) {
        case (.port(let x), .port(let y)): return x == y
        case (.net(let x), .net(let y)): return x == y
        case (.parameter(let x, let ax), .parameter(let y, let ay)): return x == y && ax == ay
        case (.defparam(let x), .defparam(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.assign(let x), .assign(let y)): return x == y
        case (.always(let x, let ax, _), .always(let y, let ay, _)): return x == y && ax == ay
        case (.initial(let x, let ax, _), .initial(let y, let ay, _)): return x == y && ax == ay
        case (.instantiation(let x), .instantiation(let y)): return x == y
        case (.function(let x), .function(let y)): return x == y
        case (.task(let x), .task(let y)): return x == y
        case (.generateRegion(let x), .generateRegion(let y)): return x == y
        case (.genFor(let i1, let c1, let s1, let b1), .genFor(let i2, let c2, let s2, let b2)):
            return i1.0 == i2.0 && i1.1 == i2.1 && c1 == c2 && s1.0 == s2.0 && s1.1 == s2.1 && b1 == b2
        case (.genIf(let c1, let t1, let e1), .genIf(let c2, let t2, let e2)): return c1 == c2 && t1 == t2 && e1 == e2
        case (.genCase(let e1, let i1), .genCase(let e2, let i2)): return e1 == e2 && i1 == i2
        case (.genBlock(let x), .genBlock(let y)): return x == y
        case (.directive(let x), .directive(let y)): return x == y
        case (.specify(let x), .specify(let y)): return x == y
        case (.specparam(let x), .specparam(let y)): return x == y
        case (.elaborationTask(let n1, let a1), .elaborationTask(let n2, let a2)): return n1 == n2 && a1 == a2
        default: return false
        }
    }
}

public enum Edge: String, Equatable, Sendable {
    case any = "", posedge, negedge
}

public struct EventExpr: Equatable, Sendable {
    public var edge: Edge
    public var expr: Expr
}

public enum TimingControl: Equatable, Sendable {
    case delay(DelayOrParams)  // #5, #(a:b:c)
    case event([EventExpr])  // @(posedge clk or negedge rst), @(a, b)
    case named(Expr)  // @ev, @top.ev
    case star  // @* or @(*)
    case repeatEvent(Expr, [EventExpr])  // repeat (n) @(posedge clk), intra-assignment only
}

public struct CaseItem: Equatable, Sendable {
    public var labels: [Expr]  // empty: default
    public var body: Stmt
}

public indirect enum Stmt: Equatable, Sendable {
    case blocking(lhs: Expr, control: TimingControl?, rhs: Expr)
    case nonblocking(lhs: Expr, control: TimingControl?, rhs: Expr)
    case block(name: String?, items: [ModuleItem], body: [Stmt])  // begin ... end
    case fork(name: String?, items: [ModuleItem], body: [Stmt])  // fork ... join
    case ifElse(cond: Expr, then: Stmt, else: Stmt?)
    case caseStmt(kind: String, expr: Expr, items: [CaseItem])  // case, casez, casex
    case forLoop(init: Stmt, cond: Expr, step: Stmt, body: Stmt)
    case whileLoop(cond: Expr, body: Stmt)
    case repeatLoop(count: Expr, body: Stmt)
    case forever(Stmt)
    case timed(TimingControl, Stmt)
    case wait(Expr, Stmt)
    case call(name: Expr, args: [Expr?])  // task enable: foo(a, b); $display("x"); foo;
    case disable(Expr)
    case trigger(Expr)  // -> ev
    case procAssign(keyword: String, lhs: Expr, rhs: Expr?)  // assign/force (with rhs), deassign/release
    case attributed([Attribute], Stmt)
    case null  // ;
}

public enum UnaryOp: String, Equatable, Sendable, CaseIterable {
    case plus = "+", minus = "-", not = "!", bitNot = "~", and = "&", nand = "~&", or = "|", nor = "~|", xor = "^"
    case xnor = "~^"
}

public enum BinaryOp: String, Equatable, Sendable, CaseIterable {
    case power = "**", mul = "*", div = "/", mod = "%", add = "+", sub = "-", shl = "<<", shr = ">>"
    case ashl = "<<<", ashr = ">>>", lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", neq = "!="
    case caseEq = "===", caseNeq = "!==", bitAnd = "&", bitXor = "^", bitXnor = "~^", bitOr = "|", and = "&&"
    case or = "||"

    /// Binding strength (IEEE 1364-2005 Table 5-4): higher binds tighter. Unary operators bind tighter than all.
    public var precedence: Int {
        switch self {
        case .power: return 12
        case .mul, .div, .mod: return 11
        case .add, .sub: return 10
        case .shl, .shr, .ashl, .ashr: return 9
        case .lt, .le, .gt, .ge: return 8
        case .eq, .neq, .caseEq, .caseNeq: return 7
        case .bitAnd: return 6
        case .bitXor, .bitXnor: return 5
        case .bitOr: return 4
        case .and: return 3
        case .or: return 2
        }
    }
}

public enum PartSelect: String, Equatable, Sendable {
    case range = ":", up = "+:", down = "-:"
}

public indirect enum Expr: Equatable, Sendable {
    case ident(String)
    case number(String)  // as written, white space removed: 8'hFF, 'b0, 12, 1_000
    case real(String)
    case string(String)  // with its quotes and escapes, as written
    case member(Expr, String)  // a.b (hierarchical name)
    case index(Expr, Expr)  // a[i]
    case slice(Expr, PartSelect, Expr, Expr)  // a[7:0], a[i+:4], a[i-:4]
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    case ternary(Expr, Expr, Expr)
    case concat([Expr])
    case replicate(Expr, [Expr])  // {n{a, b}}
    case call(Expr, [Expr])  // f(a, b)
    case system(String, [Expr?]?)  // $signed(x), $time (nil: no parentheses)
    case minTypMax(Expr, Expr, Expr)
    case paren(Expr)
    case sized(Expr, String)  // WIDTH'd0, (2**i)'b0: an unsized based literal sized by a name or (expression)
    /// Attributes on the operator of a binary or unary expression: `a + (* mode = "fast" *) b`, `~ (* x *) a`.
    case operatorAttributes([Attribute], Expr)
}

extension Expr {
    /// The name at the root of an lvalue or hierarchical reference: `a` for `a[3]`, `a.b` or `{a, b}` (first).
    public var baseNames: [String] {
        switch self {
        case .ident(let n): return [n]
        case .member(let e, let m):
            if case .ident(let n) = e { return [n + "." + m] }
            return e.baseNames.map { $0 + "." + m }
        case .index(let e, _), .slice(let e, _, _, _), .paren(let e): return e.baseNames
        case .concat(let es): return es.flatMap(\.baseNames)
        case .replicate(_, let es): return es.flatMap(\.baseNames)
        default: return []
        }
    }
}
