// Descriptions: rules over the AST collect facts about a module (name, ports with direction and width, parameters,
// registers and wires with widths, each always block's sensitivity and what it assigns, continuous assignments,
// instances, functions, tasks, generate loops) and render each fact with a sentence template from
// templates/verilog/description.yaml, a phrasing picked per fact with the record's seed.

import Foundation
import LoomCore
import Mustache

/// Constant folding over parameters, for widths: `[WIDTH-1:0]` with WIDTH = 8 is 8 bits.
struct ConstEval {
    var values: [String: Int] = [:]

    static func number(_ s: String) -> Int? {
        let t = s.replacingOccurrences(of: "_", with: "")
        if let q = t.firstIndex(of: "'") {
            var rest = t[t.index(after: q)...]
            if rest.first == "s" || rest.first == "S" { rest = rest.dropFirst() }
            guard let b = rest.first?.lowercased() else { return nil }
            let digits = String(rest.dropFirst())
            let radix = b == "b" ? 2 : b == "o" ? 8 : b == "h" ? 16 : 10
            return Int(digits, radix: radix)
        }
        return Int(t)
    }

    func eval(_ e: Expr, _ depth: Int = 0) -> Int? {
        guard depth < 64 else { return nil }
        switch e {
        case .number(let s): return ConstEval.number(s)
        case .ident(let n): return values[n]
        case .paren(let x): return eval(x, depth + 1)
        case .unary(.minus, let x): return eval(x, depth + 1).map { -$0 }
        case .unary(.plus, let x): return eval(x, depth + 1)
        case .binary(let op, let a, let b):
            guard let x = eval(a, depth + 1), let y = eval(b, depth + 1) else { return nil }
            switch op {
            case .add: return x.addingReportingOverflow(y).overflow ? nil : x + y
            case .sub: return x.subtractingReportingOverflow(y).overflow ? nil : x - y
            case .mul: return x.multipliedReportingOverflow(by: y).overflow ? nil : x * y
            case .div: return y == 0 ? nil : x / y
            case .mod: return y == 0 ? nil : x % y
            case .shl: return y >= 0 && y < 62 ? x << y : nil
            case .shr: return y >= 0 && y < 64 ? x >> y : nil
            case .power:
                guard y >= 0 && y < 62 else { return nil }
                var r = 1
                for _ in 0..<y {
                    let (m, o) = r.multipliedReportingOverflow(by: x)
                    if o { return nil }
                    r = m
                }
                return r
            case .lt: return x < y ? 1 : 0
            case .gt: return x > y ? 1 : 0
            case .le: return x <= y ? 1 : 0
            case .ge: return x >= y ? 1 : 0
            case .eq: return x == y ? 1 : 0
            case .neq: return x != y ? 1 : 0
            default: return nil
            }
        case .ternary(let c, let a, let b):
            guard let cv = eval(c, depth + 1) else { return nil }
            return cv != 0 ? eval(a, depth + 1) : eval(b, depth + 1)
        case .system("$clog2", let args?):
            guard args.count == 1, let a = args[0], let v = eval(a, depth + 1), v >= 0 else { return nil }
            var r = 0
            while (1 << r) < v { r += 1 }
            return r
        default: return nil
        }
    }

    /// "8-bit", or "[WIDTH-1:0]" when it cannot be folded.
    func width(_ r: VRange?) -> String {
        guard let r else { return "1-bit" }
        if let a = eval(r.msb), let b = eval(r.lsb) { return "\(abs(a - b) + 1)-bit" }
        return "\(Printer.print(r))"
    }
}

/// The sentence templates, keyed by fact type; each a list of phrasings.
public struct DescriptionTemplates: Sendable {
    let phrasings: [String: [(name: String, template: MustacheTemplate)]]
    public let sha256: String

    public static let keys = [
        "module", "ports", "port", "parameter", "net", "memory", "always_edge", "always_comb", "always_other",
        "initial", "assign", "instance", "function", "task", "generate_for", "generate_if", "no_ports",
    ]

    public init(directory: String) throws {
        let path = FS.join(directory, "verilog/description.yaml")
        let text = try FS.readText(path)
        guard let root = try YAMLFile.load(text, file: path) as? [String: Any] else {
            throw LoomError("\(path): expected a mapping of fact types to lists of templates")
        }
        var p: [String: [(String, MustacheTemplate)]] = [:]
        for (k, v) in root {
            guard let list = v as? [String], !list.isEmpty else { throw LoomError("\(path): '\(k)' must be a list of strings") }
            p[k] = try list.enumerated().map { i, s in
                do { return ("verilog/description/\(k)#\(i)", try MustacheTemplate(string: s)) } catch {
                    throw LoomError("\(path): '\(k)' template \(i + 1) is not valid Mustache: \(error)")
                }
            }
        }
        for k in DescriptionTemplates.keys where p[k] == nil { throw LoomError("\(path): no templates for '\(k)'") }
        phrasings = p.mapValues { $0.map { (name: $0.0, template: $0.1) } }
        sha256 = SHA256.hex(text)
    }

    func render(_ key: String, _ values: [String: Any], _ rng: inout SplitMix64) -> (name: String, text: String) {
        let options = phrasings[key] ?? []
        guard !options.isEmpty else { return ("", "") }
        let c = options[rng.below(options.count)]
        return (c.name, c.template.render(values))
    }
}

public struct ModuleDescription: Sendable {
    public var text: String
    public var templates: [String]
}

public enum Describer {
    static func list(_ xs: [String]) -> String {
        switch xs.count {
        case 0: return ""
        case 1: return xs[0]
        case 2: return xs[0] + " and " + xs[1]
        default: return xs.dropLast().joined(separator: ", ") + " and " + xs.last!
        }
    }

    /// Names a statement assigns, in order of first assignment, and whether it uses blocking / non-blocking.
    static func targets(_ s: Stmt, _ names: inout [String], _ blocking: inout Bool, _ nonblocking: inout Bool, _ d: Int = 0) {
        guard d < 200 else { return }
        func add(_ e: Expr) { for n in e.baseNames where !names.contains(n) { names.append(n) } }
        switch s {
        case .blocking(let l, _, _):
            blocking = true
            add(l)
        case .nonblocking(let l, _, _):
            nonblocking = true
            add(l)
        case .block(_, _, let b), .fork(_, _, let b): for x in b { targets(x, &names, &blocking, &nonblocking, d + 1) }
        case .ifElse(_, let t, let e):
            targets(t, &names, &blocking, &nonblocking, d + 1)
            if let e { targets(e, &names, &blocking, &nonblocking, d + 1) }
        case .caseStmt(_, _, let items): for i in items { targets(i.body, &names, &blocking, &nonblocking, d + 1) }
        case .forLoop(_, _, _, let b), .whileLoop(_, let b), .repeatLoop(_, let b), .forever(let b), .timed(_, let b),
            .wait(_, let b), .attributed(_, let b):
            targets(b, &names, &blocking, &nonblocking, d + 1)
        case .procAssign(_, let l, _): add(l)
        default: break
        }
    }

    static func nonEmpty(_ s: String) -> Any { s.isEmpty ? false : s }

    static func events(_ evs: [EventExpr]) -> String {
        list(
            evs.map { e in
                let n = Printer.print(e.expr)
                switch e.edge {
                case .posedge: return "the rising edge of \(n)"
                case .negedge: return "the falling edge of \(n)"
                case .any: return "any change of \(n)"
                }
            })
    }

    /// The description of `m`: one sentence per fact, phrasings picked with `seed`.
    public static func describe(_ m: Module, templates: DescriptionTemplates, seed: UInt64) -> ModuleDescription {
        var rng = SplitMix64(seed: seed)
        var sentences: [String] = []
        var used: [String] = []
        func say(_ key: String, _ v: [String: Any]) {
            let (n, t) = templates.render(key, v, &rng)
            if !t.isEmpty {
                sentences.append(t)
                used.append(n)
            }
        }
        var ev = ConstEval()
        for p in m.parameterPorts ?? [] { for (n, e) in p.assignments { if let v = ev.eval(e) { ev.values[n] = v } } }
        for it in m.items {
            if case .parameter(let p, _) = it { for (n, e) in p.assignments { if let v = ev.eval(e) { ev.values[n] = v } } }
        }

        // Ports, in port-list order, with direction and width from the ANSI header or the body's declarations.
        struct P {
            var name: String
            var direction: String
            var width: String
            var kind: String
            var signed: Bool
        }
        var ports: [P] = []
        var declared: [String: P] = [:]
        for it in m.items {
            if case .port(let d) = it {
                for n in d.names {
                    declared[n.name] = P(name: n.name, direction: d.direction, width: ev.width(d.range), kind: d.kind ?? "", signed: d.signed)
                }
            }
        }
        var lastDir = "input"
        for p in m.ports ?? [] {
            switch p {
            case .ansi(let a):
                lastDir = a.direction ?? lastDir
                ports.append(P(name: a.name, direction: lastDir, width: ev.width(a.range), kind: a.kind ?? "", signed: a.signed))
            case .reference(let name, let e):
                let n = name ?? e.flatMap { $0.baseNames.first } ?? ""
                if let d = declared[e?.baseNames.first ?? n] {
                    ports.append(P(name: n, direction: d.direction, width: d.width, kind: d.kind, signed: d.signed))
                } else if !n.isEmpty {
                    ports.append(P(name: n, direction: "", width: "", kind: "", signed: false))
                }
            }
        }
        say("module", ["name": m.name, "port_count": ports.count])
        if ports.isEmpty {
            say("no_ports", ["name": m.name])
        } else {
            say("ports", ["count": ports.count, "names": list(ports.map(\.name))])
            for p in ports {
                say("port", [
                    "name": p.name, "direction": p.direction, "width": p.width, "kind": p.kind.isEmpty ? false : p.kind,
                    "signed": p.signed,
                ])
            }
        }
        var params: [(Bool, String, Expr)] = []
        for p in m.parameterPorts ?? [] { for (n, e) in p.assignments { params.append((p.local, n, e)) } }
        var alwaysN = 0
        func walk(_ items: [ModuleItem], _ d: Int) {
            guard d < 50 else { return }
            for it in items {
                switch it {
                case .parameter(let p, _): for (n, e) in p.assignments { params.append((p.local, n, e)) }
                case .net(let n):
                    if n.kind == "genvar" || n.kind == "event" { continue }
                    let mems = n.names.filter { !$0.dimensions.isEmpty }
                    let plain = n.names.filter { $0.dimensions.isEmpty }.map(\.name)
                    if !plain.isEmpty {
                        say("net", ["kind": n.kind, "names": list(plain), "width": ev.width(n.range), "plural": plain.count > 1, "signed": n.signed])
                    }
                    for x in mems {
                        let depth = x.dimensions.map { r -> String in
                            if let a = ev.eval(r.msb), let b = ev.eval(r.lsb) { return String(abs(a - b) + 1) }
                            return Printer.print(r)
                        }.joined(separator: " x ")
                        say("memory", ["kind": n.kind, "name": x.name, "width": ev.width(n.range), "depth": depth])
                    }
                case .assign(let a):
                    for (l, r) in a.assignments { say("assign", ["lhs": Printer.print(l), "rhs": Printer.print(r)]) }
                case .always(let s, _, _):
                    alwaysN += 1
                    var names: [String] = []
                    var b = false, nb = false
                    targets(s, &names, &b, &nb)
                    let style = b && nb ? "mixed" : nb ? "non-blocking" : "blocking"
                    var v: [String: Any] = ["targets": list(names), "style": style, "index": alwaysN, "nonblocking": nb && !b, "blocking": b && !nb]
                    if case .timed(let c, _) = s {
                        switch c {
                        case .star:
                            say("always_comb", v.merging(["events": "any input"]) { $1 })
                        case .event(let evs) where evs.allSatisfy({ $0.edge == .any }):
                            v["events"] = list(evs.map { Printer.print($0.expr) })
                            say("always_comb", v)
                        case .event(let evs):
                            v["events"] = events(evs)
                            say("always_edge", v)
                        default:
                            v["control"] = Printer.print(.timed(c, .null)).trimmingCharacters(in: .whitespacesAndNewlines)
                            say("always_other", v)
                        }
                    } else {
                        v["control"] = "no event control"
                        say("always_other", v)
                    }
                case .initial(let s, _, _):
                    var names: [String] = []
                    var b = false, nb = false
                    targets(s, &names, &b, &nb)
                    say("initial", ["targets": list(names), "has_targets": !names.isEmpty])
                case .instantiation(let x):
                    for inst in x.instances {
                        var conns: [String] = []
                        switch inst.connections {
                        case .named(let l): conns = l.map { "\($0.0) to \($0.1.map { Printer.print($0) } ?? "nothing")" }
                        case .positional(let l): conns = l.compactMap { $0.map { Printer.print($0) } }
                        }
                        var params: [String] = []
                        if case .list(let args) = x.parameters {
                            for a in args {
                                switch a {
                                case .named(let n, let e): params.append("\(n) = \(e.map { Printer.print($0) } ?? "its default")")
                                case .positional(let e): params.append(Printer.print(e))
                                }
                            }
                        }
                        let named: Bool
                        if case .named = inst.connections { named = true } else { named = false }
                        say("instance", [
                            "module": x.module, "name": inst.name ?? "", "has_name": inst.name != nil,
                            "connections": list(conns), "named": named, "params": list(params),
                            "has_params": !params.isEmpty, "gate": Parser.gateKinds.contains(where: { Spelling.text($0) == x.module }),
                        ])
                    }
                case .function(let f):
                    let w = f.returnKind ?? ev.width(f.range)
                    say("function", ["name": f.name, "width": w, "inputs": nonEmpty(list((f.ports ?? []).flatMap(\.names) + f.items.compactMap {
                        if case .port(let d) = $0 { return d.names.map(\.name).joined(separator: ", ") }
                        return nil
                    }))])
                case .task(let t):
                    say("task", ["name": t.name])
                case .generateRegion(let xs): walk(xs, d + 1)
                case .genFor(let ini, let c, let step, let b):
                    say("generate_for", [
                        "var": ini.0, "from": Printer.print(ini.1), "cond": Printer.print(c), "step": Printer.print(step.1),
                        "name": b.name ?? "", "has_name": b.name != nil,
                    ])
                    walk(b.items, d + 1)
                case .genIf(let c, let t, let e):
                    say("generate_if", ["cond": Printer.print(c), "has_else": e != nil])
                    if let t { walk(t.items, d + 1) }
                    if let e { walk(e.items, d + 1) }
                case .genBlock(let b): walk(b.items, d + 1)
                case .genCase(_, let items): for i in items { if let b = i.body { walk(b.items, d + 1) } }
                default: break
                }
            }
        }
        walk(m.items, 0)
        // Parameters come right after the ports.
        var paramSentences: [String] = []
        var paramTemplates: [String] = []
        for (local, n, e) in params {
            let (tn, t) = templates.render("parameter", ["name": n, "value": Printer.print(e), "local": local], &rng)
            paramSentences.append(t)
            paramTemplates.append(tn)
        }
        let headCount = 1 + (ports.isEmpty ? 1 : 1 + ports.count)
        sentences.insert(contentsOf: paramSentences, at: min(headCount, sentences.count))
        used.insert(contentsOf: paramTemplates, at: min(headCount, used.count))
        return ModuleDescription(text: sentences.joined(separator: " "), templates: used)
    }
}
