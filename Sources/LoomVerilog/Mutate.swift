// Rule-based mutators: each rule (grammars/verilog-mutations.yaml) is a named, seeded edit on the tokens of a printed
// module. A sample applies 1 to `maxEdits` edits of one family (syntax rules, or semantic/logic rules); a syntax
// sample must fail Loom's parser and a logic one must still parse, so each rule does what its kind says. Samples are
// at most 2 x the module's token count, and duplicates are dropped.

import Foundation
import LoomCore

public enum MutationKind: String, Sendable, Codable {
    case syntax, semantic, logic
}

public struct MutationRule: Sendable {
    public var name: String
    public var kind: MutationKind
    public var description: String
    public var words: [String]
}

public struct MutationRules: Sendable {
    public var rules: [MutationRule]
    /// The rule file's bytes hashed, so a change re-runs the stage.
    public var sha256: String

    public static func load(path: String) throws -> MutationRules {
        try parse(yaml: try FS.readText(path), path: path)
    }

    /// The rules of a rule file's text; `path` names the file in errors.
    public static func parse(yaml text: String, path: String) throws -> MutationRules {
        guard let root = try YAMLFile.load(text, file: path) as? [String: Any], let rules = root["rules"] as? [String: Any] else {
            throw LoomError("\(path): expected a mapping 'rules' of rule names to their settings")
        }
        var out: [MutationRule] = []
        for name in rules.keys.sorted() {
            guard let r = rules[name] as? [String: Any] else { throw LoomError("\(path): rule '\(name)' must be a mapping") }
            guard let k = r["kind"] as? String, let kind = MutationKind(rawValue: k) else {
                throw LoomError("\(path): rule '\(name)' needs kind: syntax, semantic or logic")
            }
            guard Mutator.known.contains(name) else {
                throw LoomError("\(path): unknown rule '\(name)' (known: \(Mutator.known.sorted().joined(separator: ", ")))")
            }
            let words = (r["keywords"] as? [Any] ?? r["operators"] as? [Any] ?? r["words"] as? [Any] ?? []).map { "\($0)" }
            out.append(MutationRule(name: name, kind: kind, description: r["description"] as? String ?? "", words: words))
        }
        return MutationRules(rules: out, sha256: SHA256.hex(text))
    }

    /// `LOOM_GRAMMARS`/verilog-mutations.yaml, else grammars/verilog-mutations.yaml found walking up from the
    /// executable or the current directory.
    public static func locate() throws -> String {
        try Resources.locate(env: "LOOM_GRAMMARS", folder: "grammars", probe: "verilog-mutations.yaml")
    }
}

enum Resources {
    static func locate(env: String, folder: String, probe: String) throws -> String {
        if let p = ProcessInfo.processInfo.environment[env] {
            guard FS.exists(FS.join(p, probe)) else { throw LoomError("\(env)=\(p) has no \(probe)") }
            return p
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        for start in [exe, FileManager.default.currentDirectoryPath] {
            var dir = URL(fileURLWithPath: start)
            for _ in 0..<8 {
                let candidate = dir.appendingPathComponent(folder).path
                if FS.exists(FS.join(candidate, probe)) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        throw LoomError("cannot find Loom's \(folder)/\(probe): set \(env) to the \(folder) directory")
    }
}

/// One edit a mutant went through.
public struct MutationEdit: Sendable, Equatable {
    public var rule: String
    public var line: Int
    public var column: Int
    public var before: String
    public var after: String

    public var json: JSONValue {
        ["rule": .string(rule), "line": .int(line), "column": .int(column), "before": .string(before), "after": .string(after)]
    }
}

public struct Mutant: Sendable, Equatable {
    public var text: String
    public var family: MutationKind  // syntax, or logic for semantic/logic samples
    public var edits: [MutationEdit]
    /// Whether Loom's parser still accepts the text (always true for logic samples). A syntax sample it accepts is
    /// kept for the EDA tools to judge: yosys or iverilog may still reject it.
    public var parses = false
    public var rules: [String] { edits.map(\.rule) }

    public init(text: String, family: MutationKind, edits: [MutationEdit], parses: Bool = false) {
        self.text = text
        self.family = family
        self.edits = edits
        self.parses = parses
    }
}

public struct Mutator {
    static let known: Set<String> = [
        "drop_keyword", "drop_semicolon", "drop_operator", "insert_word", "drop_if_condition", "swap_wire_reg",
        "widen_width", "narrow_width", "drop_if_conjunct",
    ]

    struct MTok {
        var trivia: String
        var text: String
        var kind: Tok
        var line: Int
        var column: Int
    }

    public let rules: [MutationRule]
    public var maxEdits = 5
    public var logicFraction = 0.25

    public init(rules: [MutationRule]) { self.rules = rules }

    static func tokens(_ text: String) -> [MTok] {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buf -> [MTok] in
            guard let base = buf.baseAddress else { return [] }
            var lx = Lexer(base: base, start: 0, end: buf.count, buffer: 0, file: 0)
            var out: [MTok] = []
            var last = 0
            while true {
                let t = lx.next()
                if t.kind == .eof { break }
                let s = Int(t.start), e = s + Int(t.length)
                out.append(
                    MTok(
                        trivia: String(decoding: buf[last..<s], as: UTF8.self), text: String(decoding: buf[s..<e], as: UTF8.self),
                        kind: t.kind, line: Int(t.line), column: Int(t.column)))
                last = e
            }
            return out
        }
    }

    static func render(_ toks: [MTok]) -> String {
        var s = ""
        for t in toks { s += t.trivia + t.text }
        return s + "\n"
    }

    static let operandEnd: Set<Tok> = [.ident, .escIdent, .number, .realNumber, .string, .rparen, .rbracket, .rbrace, .sysIdent]
    static let unaryCapable: Set<Tok> = [.plus, .minus, .bang, .tilde, .amp, .pipe, .caret, .nand, .nor, .xnor]
    static let declKeywords: Set<Tok> = [
        .kwWire, .kwReg, .kwInput, .kwOutput, .kwInout, .kwSigned, .kwTri, .kwWand, .kwWor, .kwSupply0, .kwSupply1,
    ]

    /// Applies `rule` once at a site chosen by `rng`; nil when the module has no site for it.
    func apply(_ rule: MutationRule, _ toks: inout [MTok], _ rng: inout SplitMix64) -> MutationEdit? {
        func pick(_ sites: [Int]) -> Int? { sites.isEmpty ? nil : sites[rng.below(sites.count)] }
        func edit(_ i: Int, _ before: String, _ after: String) -> MutationEdit {
            MutationEdit(rule: rule.name, line: toks[i].line, column: toks[i].column, before: before, after: after)
        }
        switch rule.name {
        case "drop_keyword":
            let words = Set(rule.words)
            guard let i = pick(toks.indices.filter { toks[$0].kind.isKeyword && !toks[$0].text.isEmpty && words.contains(toks[$0].text) }) else { return nil }
            let e = edit(i, toks[i].text, "")
            toks[i].text = ""
            return e
        case "drop_semicolon":
            guard let i = pick(toks.indices.filter { toks[$0].kind == .semicolon && !toks[$0].text.isEmpty }) else { return nil }
            let e = edit(i, ";", "")
            toks[i].text = ""
            return e
        case "drop_operator":
            let ops = Set(rule.words)
            let sites = toks.indices.filter { i in
                guard i > 0, i + 1 < toks.count, ops.contains(toks[i].text), toks[i].kind != .ident,
                    !toks[i - 1].text.isEmpty, !toks[i + 1].text.isEmpty else { return false }
                return Mutator.operandEnd.contains(toks[i - 1].kind) && !Mutator.unaryCapable.contains(toks[i + 1].kind)
                    && toks[i + 1].kind != .lparen && toks[i + 1].kind != .lbrace
            }
            guard let i = pick(sites) else { return nil }
            let e = edit(i, toks[i].text, "")
            toks[i].text = ""
            return e
        case "insert_word":
            guard toks.count > 2, !rule.words.isEmpty else { return nil }
            let i = 1 + rng.below(toks.count - 1)
            let w = rule.words[rng.below(rule.words.count)]
            let e = MutationEdit(rule: rule.name, line: toks[i].line, column: toks[i].column, before: "", after: w)
            toks.insert(MTok(trivia: " ", text: w, kind: .ident, line: toks[i].line, column: toks[i].column), at: i)
            return e
        case "drop_if_condition":
            let sites = toks.indices.filter {
                $0 + 1 < toks.count && toks[$0].kind == .kwIf && toks[$0 + 1].kind == .lparen && !toks[$0 + 1].text.isEmpty
            }
            guard let i = pick(sites), let close = Mutator.matching(toks, i + 1) else { return nil }
            let before = toks[(i + 1)...close].map(\.text).joined(separator: " ")
            let e = edit(i + 1, before, "")
            for k in (i + 1)...close { toks[k].text = "" }
            return e
        case "swap_wire_reg":
            guard let i = pick(toks.indices.filter { toks[$0].kind == .kwWire || toks[$0].kind == .kwReg }) else { return nil }
            let after = toks[i].kind == .kwWire ? "reg" : "wire"
            let e = edit(i, toks[i].text, after)
            toks[i].text = after
            toks[i].kind = after == "reg" ? .kwReg : .kwWire
            return e
        case "widen_width", "narrow_width":
            // A declared range `[msb:lsb]` right after a declaration keyword: a plain number bound moves by one
            // (the MSB of [7:0], the high end of [0:7]); an expression MSB gets "+ 1" or "- 1".
            let wider = rule.name == "widen_width"
            var sites: [(Int, Int, Int)] = []  // [ , : , ]
            for i in toks.indices where i > 0 && toks[i].kind == .lbracket && Mutator.declKeywords.contains(toks[i - 1].kind) {
                var depth = 0
                var colon: Int? = nil
                var k = i + 1
                while k < toks.count {
                    let t = toks[k].kind
                    if t == .lbracket || t == .lparen || t == .lbrace { depth += 1 }
                    if t == .rparen || t == .rbrace { depth -= 1 }
                    if t == .rbracket {
                        if depth == 0 { break }
                        depth -= 1
                    }
                    if t == .colon && depth == 0 && colon == nil { colon = k }
                    k += 1
                }
                if let colon, k < toks.count, colon > i + 1, k > colon + 1 { sites.append((i, colon, k)) }
            }
            guard !sites.isEmpty else { return nil }
            let (open, colon, close) = sites[rng.below(sites.count)]
            if colon == open + 2, close == colon + 2, let msb = Int(toks[open + 1].text), let lsb = Int(toks[colon + 1].text) {
                if !wider && msb == lsb { return nil }
                let k = msb >= lsb ? open + 1 : colon + 1
                let v = Int(toks[k].text)!
                let nv = String(wider ? v + 1 : v - 1)
                let e = edit(k, toks[k].text, nv)
                toks[k].text = nv
                return e
            }
            let k = colon - 1
            let nv = toks[k].text + (wider ? " + 1" : " - 1")
            let e = edit(k, toks[k].text, nv)
            toks[k].text = nv
            return e
        case "drop_if_conjunct":
            var sites: [(Int, Int)] = []
            for i in toks.indices where i + 1 < toks.count && toks[i].kind == .kwIf && toks[i + 1].kind == .lparen {
                guard let close = Mutator.matching(toks, i + 1) else { continue }
                var depth = 0
                var last: Int? = nil
                for k in (i + 2)..<close {
                    switch toks[k].kind {
                    case .lparen, .lbracket, .lbrace: depth += 1
                    case .rparen, .rbracket, .rbrace: depth -= 1
                    case .andAnd, .orOr: if depth == 0 { last = k }
                    default: break
                    }
                }
                if let last { sites.append((last, close)) }
            }
            guard !sites.isEmpty else { return nil }
            let (op, close) = sites[rng.below(sites.count)]
            let before = toks[op..<close].map(\.text).joined(separator: " ")
            let e = edit(op, before, "")
            for k in op..<close { toks[k].text = "" }
            return e
        default:
            return nil
        }
    }

    static func matching(_ toks: [MTok], _ open: Int) -> Int? {
        var depth = 0
        for k in open..<toks.count {
            if toks[k].kind == .lparen { depth += 1 }
            if toks[k].kind == .rparen {
                depth -= 1
                if depth == 0 { return k }
            }
        }
        return nil
    }

    /// Up to `samples` distinct mutants of `module` (its printed text), at most 2 x its token count.
    public func mutants(of text: String, samples: Int, seed: UInt64) -> [Mutant] {
        mutantsCounting(of: text, samples: samples, seed: seed).mutants
    }

    /// The mutants, and the logic candidates discarded because Loom's parser no longer accepted them (a logic edit
    /// must leave valid Verilog), by rule. Syntax candidates are all returned, with `parses` set: the tools judge them.
    public func mutantsCounting(of text: String, samples: Int, seed: UInt64) -> (mutants: [Mutant], discarded: [String: Int]) {
        let base = Mutator.tokens(text)
        let cap = min(samples, 2 * base.count)
        guard cap > 0 else { return ([], [:]) }
        var discarded: [String: Int] = [:]
        let syntaxRules = rules.filter { $0.kind == .syntax }
        let logicRules = rules.filter { $0.kind != .syntax }
        var rng = SplitMix64(seed: seed)
        var seen: Set<String> = [text]
        var out: [Mutant] = []
        var attempts = 0
        while out.count < cap && attempts < cap * 12 {
            attempts += 1
            let logic = !logicRules.isEmpty && (syntaxRules.isEmpty || Double(rng.next() % 10_000) / 10_000 < logicFraction)
            let family = logic ? logicRules : syntaxRules
            guard !family.isEmpty else { break }
            let n = 1 + rng.below(max(1, maxEdits))
            var toks = base
            var edits: [MutationEdit] = []
            for _ in 0..<n {
                let r = family[rng.below(family.count)]
                if let e = apply(r, &toks, &rng) { edits.append(e) }
            }
            guard !edits.isEmpty else { continue }
            let m = Mutator.render(toks)
            guard !seen.contains(m) else { continue }
            seen.insert(m)
            // A logic sample must still parse; a syntax sample is judged by the tools whatever the parser says.
            let parses = VerilogParser.parse(Array(m.utf8), name: "mutant.v", options: Mutator.noIncludes).ok
            if logic && !parses {
                for r in Set(edits.map(\.rule)) { discarded[r, default: 0] += 1 }
                continue
            }
            out.append(Mutant(text: m, family: logic ? .logic : .syntax, edits: edits, parses: parses))
        }
        return (out, discarded)
    }

    static let noIncludes: PreprocessorOptions = {
        var o = PreprocessorOptions()
        o.loader = nil
        return o
    }()
}
