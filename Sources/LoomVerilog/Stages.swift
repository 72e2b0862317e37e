// The Verilog stages: `ingest verilog` (one document per module) and the dataset tasks `describe`, `mutate`
// (repair pairs with EDA feedback, preference pairs, logic mutants) and `complete` (module, statement and token
// level). Inputs are Verilog files and folders, or a finished `ingest verilog` directory.

import Foundation
import LoomCore
import Mustache

public struct VerilogConfig: Codable, Equatable, Sendable {
    /// Verilog files, or folders searched recursively for *.v.
    public var paths: [String] = []
    /// `include search paths (-I).
    public var includePaths: [String] = []
    /// Folders iverilog searches for modules a file instantiates (-y); the input files' own folders are added.
    public var libraryDirs: [String] = []
    /// Macros: NAME or NAME=VALUE.
    public var defines: [String] = []
    /// Read the sources as yosys does: `SYNTHESIS` defined, `// synthesis translate_off` regions dropped.
    public var synthesis = false
    /// The text of ingested modules and the target of description pairs: `original` (as written in the file, with
    /// its comments and macros; the canonical print goes in meta.printed) or `printed` (the canonical print only).
    /// Mutants, repairs and completions are always made on the printed module, which the tools check.
    public var source = "original"
    /// describe, mutate, complete.
    public var tasks: [String] = ["describe"]
    public var seed = 1
    /// Mutants per module (never more than 2 x its token count).
    public var samples = 8
    /// Edits per mutant, at most.
    public var maxEdits = 5
    /// Mutation rules to use (empty: all in grammars/verilog-mutations.yaml).
    public var rules: [String] = []
    /// Share of mutants made with semantic/logic rules instead of syntax rules.
    public var logicFraction = 0.25
    /// EDA tools asked about each mutant: yosys, iverilog.
    public var tools: [String] = ["yosys", "iverilog"]
    /// Seconds one tool run may take.
    public var timeout = 20.0
    /// Mutate output: all (conversations here, preference pairs in the side stage `preference/`, so each dataset
    /// holds one record kind), sft, preference (only that kind, in the stage's own shards).
    public var records = "all"
    /// Logic mutants (both tools accept them): keep (labelled) or drop.
    public var logicMutants = "keep"
    /// Statement- and token-level completion samples per module.
    public var statementSamples = 2
    public var tokenSamples = 2

    public init() {}

    public static let keys = [
        "paths", "include_paths", "library_dirs", "defines", "synthesis", "source", "tasks", "seed", "samples", "max_edits", "rules",
        "logic_fraction", "tools", "timeout", "records", "logic_mutants", "statement_samples", "token_samples",
    ]

    enum CodingKeys: String, CodingKey {
        case paths, includePaths, libraryDirs, defines, synthesis, source, tasks, seed, samples, maxEdits, rules, logicFraction, tools
        case timeout, records, logicMutants, statementSamples, tokenSamples
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VerilogConfig()
        paths = try c.decodeIfPresent([String].self, forKey: .paths) ?? d.paths
        includePaths = try c.decodeIfPresent([String].self, forKey: .includePaths) ?? d.includePaths
        libraryDirs = try c.decodeIfPresent([String].self, forKey: .libraryDirs) ?? d.libraryDirs
        defines = try c.decodeIfPresent([String].self, forKey: .defines) ?? d.defines
        synthesis = try c.decodeIfPresent(Bool.self, forKey: .synthesis) ?? d.synthesis
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? d.source
        tasks = try c.decodeIfPresent([String].self, forKey: .tasks) ?? d.tasks
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? d.seed
        samples = try c.decodeIfPresent(Int.self, forKey: .samples) ?? d.samples
        maxEdits = try c.decodeIfPresent(Int.self, forKey: .maxEdits) ?? d.maxEdits
        rules = try c.decodeIfPresent([String].self, forKey: .rules) ?? d.rules
        logicFraction = try c.decodeIfPresent(Double.self, forKey: .logicFraction) ?? d.logicFraction
        tools = try c.decodeIfPresent([String].self, forKey: .tools) ?? d.tools
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? d.timeout
        records = try c.decodeIfPresent(String.self, forKey: .records) ?? d.records
        logicMutants = try c.decodeIfPresent(String.self, forKey: .logicMutants) ?? d.logicMutants
        statementSamples = try c.decodeIfPresent(Int.self, forKey: .statementSamples) ?? d.statementSamples
        tokenSamples = try c.decodeIfPresent(Int.self, forKey: .tokenSamples) ?? d.tokenSamples
    }

    public var preprocessor: PreprocessorOptions {
        var o = PreprocessorOptions(includePaths: includePaths, synthesis: synthesis)
        for d in defines {
            if let eq = d.firstIndex(of: "=") {
                o.defines[String(d[..<eq])] = String(d[d.index(after: eq)...])
            } else {
                o.defines[d] = ""
            }
        }
        return o
    }

    func validate(_ what: String) throws {
        guard source == "original" || source == "printed" else {
            throw LoomError("\(what): source must be original or printed, not '\(source)'")
        }
        for t in tasks where !["describe", "mutate", "complete"].contains(t) {
            throw LoomError("\(what): unknown task '\(t)' (available: describe, mutate, complete)")
        }
        if tasks.isEmpty { throw LoomError("\(what): tasks is empty (available: describe, mutate, complete)") }
        guard samples >= 0, maxEdits >= 1, maxEdits <= 5 else {
            throw LoomError("\(what): samples must be >= 0 and max_edits between 1 and 5")
        }
        guard (0...1).contains(logicFraction) else { throw LoomError("\(what): logic_fraction must be between 0 and 1") }
        for t in tools where EDATool(rawValue: t) == nil {
            throw LoomError("\(what): unknown tool '\(t)' (available: yosys, iverilog)")
        }
        guard ["all", "sft", "preference"].contains(records) else {
            throw LoomError("\(what): records must be all, sft or preference")
        }
        guard ["keep", "drop"].contains(logicMutants) else { throw LoomError("\(what): logic_mutants must be keep or drop") }
        guard timeout > 0 else { throw LoomError("\(what): timeout must be positive") }
    }
}

/// One module ready for a task.
public struct VerilogUnit: Sendable {
    public var id: String
    public var source: String
    public var module: Module
    /// The printed module.
    public var text: String
    public var includeDirs: [String]
    public var libraryDirs: [String]
    /// The module as written in its file, "" when that is not at hand (see `OriginalText`).
    public var original = ""
    /// The printed modules of the same file this one instantiates (directly or through each other): what iverilog,
    /// which elaborates, needs beside the module to accept it (`-y` finds only modules named like their file).
    public var context = ""

    /// Sets each unit's `context` from the other units of its source file.
    static func withContext(_ units: [VerilogUnit]) -> [VerilogUnit] {
        var byFile: [String: [String: VerilogUnit]] = [:]
        for u in units { byFile[u.source, default: [:]][u.module.name] = byFile[u.source]?[u.module.name] ?? u }
        return units.map { u in
            var v = u
            let siblings = byFile[u.source] ?? [:]
            var seen: Set<String> = [u.module.name]
            var queue = Array(u.module.instantiatedModules.sorted())
            var parts: [String] = []
            while let n = queue.first {
                queue.removeFirst()
                guard !seen.contains(n), let s = siblings[n] else { continue }
                seen.insert(n)
                parts.append(s.text)
                queue += s.module.instantiatedModules.sorted()
            }
            v.context = parts.joined(separator: "\n")
            return v
        }
    }
}

public enum VerilogFiles {
    /// Files as given and *.v files under folders (sorted), or an error naming a path that does not exist.
    public static func expand(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for p in paths {
            if FS.isDirectory(p) {
                out += FS.listRecursive(p).filter { $0.hasSuffix(".v") }.sorted()
            } else if FS.exists(p) {
                out.append(p)
            } else {
                throw LoomError("\(p): no such file or directory")
            }
        }
        return out
    }

    /// The folders iverilog searches (-y): the configured ones, then every input file's folder.
    static func libraryDirs(files: [String], config: VerilogConfig) -> [String] {
        let dirs = Array(Set(files.map { ($0 as NSString).deletingLastPathComponent }).map { $0.isEmpty ? "." : $0 }).sorted()
        return config.libraryDirs + dirs.filter { !config.libraryDirs.contains($0) }
    }

    /// The modules of one file, or the reject (with its first diagnostics) if it has syntax errors.
    static func units(file f: String, config: VerilogConfig, libraryDirs libs: [String]) throws -> ([VerilogUnit], Reject?) {
        let r = try VerilogParser.parse(file: f, options: config.preprocessor)
        if let d = r.diagnostics.first {
            let more = r.diagnostics.prefix(5).map(\.description).joined(separator: "\n")
            return ([], Reject(source: f, reason: "syntax error: \(d.message)", line: d.location.line, column: d.location.column, raw: more))
        }
        let dir = (f as NSString).deletingLastPathComponent
        let units = r.source.modules.map { m in
            VerilogUnit(
                id: "\(f)#\(m.name)", source: f, module: m, text: Printer.print(m),
                includeDirs: [dir.isEmpty ? "." : dir] + config.includePaths, libraryDirs: libs, original: m.original.text)
        }
        return (VerilogUnit.withContext(units), nil)
    }

    /// Parses each file; a file with syntax errors is one reject with its first diagnostics.
    /// `only`: the files to parse (a `--shard` range); the library folders still come from all of `files`.
    static func units(
        files: [String], config: VerilogConfig, only: Range<Int>? = nil, reject: (Reject) throws -> Void
    ) throws -> [VerilogUnit] {
        let libs = libraryDirs(files: files, config: config)
        var out: [VerilogUnit] = []
        for (k, f) in files.enumerated() where only?.contains(k) ?? true {
            let (u, r) = try units(file: f, config: config, libraryDirs: libs)
            if let r { try reject(r) }
            out += u
        }
        return out
    }

    /// Modules from a finished `ingest verilog` directory: each record's meta.printed (or its text, for records
    /// ingested with `source: printed`) is a printed module; a text that differs from it is the original.
    static func units(stage dir: String, reject: (Reject) throws -> Void) throws -> [VerilogUnit] {
        var out: [VerilogUnit] = []
        try StageReader(directory: dir).forEachRecord(
            { r, path, line in
                guard let written = r["text"]?.stringValue else {
                    try reject(Reject(source: path, reason: "record has no string 'text'", line: line))
                    return
                }
                let text = r["meta"]?["printed"]?.stringValue ?? written
                let id = r["id"]?.stringValue ?? "\(path):\(line)"
                let p = VerilogParser.parse(Array(text.utf8), name: id, options: Mutator.noIncludes)
                guard p.ok, p.source.modules.count == 1, let m = p.source.modules.first else {
                    try reject(
                        Reject(
                            source: path, reason: "text is not one Verilog module: \(p.diagnostics.first?.description ?? "\(p.source.modules.count) modules")",
                            line: line, id: id))
                    return
                }
                let strings: (String) -> [String] = { k in (r["meta"]?[k]?.arrayValue ?? []).compactMap(\.stringValue) }
                out.append(
                    VerilogUnit(
                        id: id, source: r["source"]?.stringValue ?? path, module: m, text: Printer.print(m),
                        includeDirs: strings("include_dirs"), libraryDirs: strings("library_dirs"),
                        original: written == text ? "" : written))
            }, bad: { e, path, line in try reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        return VerilogUnit.withContext(out)
    }
}

/// `loom ingest verilog`: one document per module, its text the printed module.
public struct VerilogIngestStage: Stage {
    public let settings: VerilogConfig
    public let files: [String]
    /// `--shard i/N`: only the files numbered in this shard's range of `files` (in the order expanded).
    public let shard: ShardSpec?

    public init(config: VerilogConfig, shard: ShardSpec? = nil) throws {
        guard !config.paths.isEmpty else { throw LoomError("ingest verilog: no input paths") }
        try config.validate("ingest verilog")
        settings = config
        files = try VerilogFiles.expand(config.paths)
        self.shard = shard
    }

    public var name: String { "ingest-verilog" }
    public var config: JSONValue {
        var o = JSONObject()
        o.append("paths", .array(settings.paths.map { .string($0) }))
        o.append("include_paths", .array(settings.includePaths.map { .string($0) }))
        o.append("library_dirs", .array(settings.libraryDirs.map { .string($0) }))
        o.append("defines", .array(settings.defines.map { .string($0) }))
        if settings.synthesis { o.append("synthesis", .bool(true)) }
        o.append("source", .string(settings.source))
        return withShard(.object(o), shard)
    }
    public var inputs: [StageInput] { files.map { .file($0) } }

    public func run(_ ctx: StageContext) throws {
        ctx.progress.begin(totalBytes: nil, unit: "files")
        let only = shard?.range(total: files.count)
        let libs = VerilogFiles.libraryDirs(files: files, config: settings)
        var modules = 0, keptOriginal = 0, withComments = 0
        // One file at a time: memory holds one file's tree, whatever the input size.
        for (k, f) in files.enumerated() where only?.contains(k) ?? true {
            let (units, rejected) = try VerilogFiles.units(file: f, config: settings, libraryDirs: libs)
            if let rejected { try ctx.reject(rejected) }
            modules += units.count
            for u in units {
                var meta = JSONObject()
                meta.append("format", "verilog")
                meta.append("module", .string(u.module.name))
                meta.append("line", .int(u.module.loc.line))
                meta.append("ports", .array(portNames(u.module).map { .string($0) }))
                var params: [String] = []
                for p in u.module.parameterPorts ?? [] { params += p.assignments.map(\.0) }
                for it in u.module.items { if case .parameter(let p, _) = it { params += p.assignments.map(\.0) } }
                meta.append("parameters", .array(params.map { .string($0) }))
                meta.append("include_dirs", .array(u.includeDirs.map { .string($0) }))
                meta.append("library_dirs", .array(u.libraryDirs.map { .string($0) }))
                let original = settings.source == "original" && !u.original.isEmpty
                if original {
                    meta.append("printed", .string(u.text))
                    keptOriginal += 1
                    if u.original.contains("//") || u.original.contains("/*") { withComments += 1 }
                }
                meta.append("text_source", .string(original ? "original" : "printed"))
                var o = JSONObject()
                o.append("id", .string(u.id))
                o.append("text", .string(original ? u.original : u.text))
                o.append("source", .string(u.source))
                o.append("meta", .object(meta))
                try ctx.output.write(.object(o))
            }
        }
        ctx.progress.add(items: only?.count ?? files.count)
        ctx.setCount("files", only?.count ?? files.count)
        ctx.setCount("modules", modules)
        if settings.source == "original" {
            ctx.setCount("modules_original_text", keptOriginal)
            ctx.setCount("modules_original_with_comments", withComments)
        }
    }
}

func portNames(_ m: Module) -> [String] {
    (m.ports ?? []).compactMap { p in
        switch p {
        case .ansi(let a): return a.name
        case .reference(let n, let e): return n ?? e?.baseNames.first
        }
    }
}

/// The instruction texts of templates/verilog/tasks.yaml.
struct TaskTemplates: Sendable {
    let instructions: [String: String]
    let user: MustacheTemplate
    let feedback: MustacheTemplate
    let sha256: String

    init(directory: String) throws {
        let path = FS.join(directory, "verilog/tasks.yaml")
        let text = try FS.readText(path)
        guard let root = try YAMLFile.load(text, file: path) as? [String: Any] else { throw LoomError("\(path): expected a mapping") }
        var d: [String: String] = [:]
        for k in ["describe", "repair", "complete_module", "complete_statement", "complete_token", "user", "feedback"] {
            guard let s = root[k] as? String else { throw LoomError("\(path): missing '\(k)'") }
            d[k] = s
        }
        instructions = d
        do {
            user = try MustacheTemplate(string: d["user"]!)
            feedback = try MustacheTemplate(string: d["feedback"]!)
        } catch { throw LoomError("\(path): not valid Mustache: \(error)") }
        sha256 = SHA256.hex(text)
    }

    func prompt(_ task: String, _ input: String) -> String {
        user.render(["instruction": instructions[task] ?? task, "input": input])
    }
}

func verilogSeed(_ seed: Int, _ key: String) -> UInt64 {
    UInt64(truncatingIfNeeded: seed) &+ (UInt64(SHA256.hex(key).prefix(16), radix: 16) ?? 0)
}

/// `loom verilog describe|mutate|complete`: the dataset tasks over modules.
public struct VerilogTaskStage: Stage {
    public let settings: VerilogConfig
    public let files: [String]
    public let inputStage: String?
    public let templateDirectory: String
    public let rulesPath: String
    public let jobs: Int

    public init(config: VerilogConfig, input: String? = nil, templates: String? = nil, grammars: String? = nil, jobs: Int = 1)
        throws
    {
        try config.validate("verilog")
        settings = config
        inputStage = config.paths.isEmpty ? input : nil
        if config.paths.isEmpty && input == nil { throw LoomError("verilog: no input paths") }
        files = try VerilogFiles.expand(config.paths)
        templateDirectory = try templates ?? Resources.locate(env: "LOOM_TEMPLATES", folder: "templates", probe: "verilog/description.yaml")
        rulesPath = FS.join(try grammars ?? MutationRules.locate(), "verilog-mutations.yaml")
        self.jobs = max(1, jobs)
        // Load now: a broken template, rule file or missing tool is an error before anything runs.
        _ = try DescriptionTemplates(directory: templateDirectory)
        _ = try TaskTemplates(directory: templateDirectory)
        if config.tasks.contains("mutate") {
            let rules = try MutationRules.load(path: rulesPath)
            for r in config.rules where !rules.rules.contains(where: { $0.name == r }) {
                throw LoomError("verilog: unknown mutation rule '\(r)' (in \(rulesPath): \(rules.rules.map(\.name).joined(separator: ", ")))")
            }
            for t in config.tools { _ = try EDATool(rawValue: t)!.locate() }
        }
    }

    public var name: String { "verilog-" + settings.tasks.joined(separator: "-") }
    /// With `records: all`, the repair preference pairs go to the side stage `preference/` (`@STEP/preference` in a
    /// pipeline): TRL's SFT and DPO trainers, and `datasets.load_dataset`, each take one record kind.
    var splitsPreference: Bool { settings.records == "all" && settings.tasks.contains("mutate") }
    public var sideFiles: [String] { splitsPreference ? ["preference"] : [] }
    public var sideStages: [String] { sideFiles }
    public var config: JSONValue {
        guard case .object(var o) = (try? JSONValue(encoding: settings)) ?? .null else { return .null }
        let t = (try? DescriptionTemplates(directory: templateDirectory).sha256) ?? ""
        let k = (try? TaskTemplates(directory: templateDirectory).sha256) ?? ""
        o["templates_sha256"] = .string(SHA256.hex(t + k))
        if settings.tasks.contains("mutate") {
            o["rules_sha256"] = .string((try? MutationRules.load(path: rulesPath).sha256) ?? "")
        }
        return .object(o)
    }
    public var inputs: [StageInput] { inputStage.map { [.stage($0)] } ?? files.map { .file($0) } }

    struct Output {
        var records: [JSONValue] = []
        var rejects: [Reject] = []
        var counts: [String: Int] = [:]
    }

    public func run(_ ctx: StageContext) throws {
        // Work items: modules of an ingest directory, or files parsed by the workers (so memory holds the files
        // in flight, not the whole input).
        enum Item {
            case unit(VerilogUnit)
            case file(String)
        }
        let items: [Item]
        if let st = inputStage {
            items = try VerilogFiles.units(stage: st) { try ctx.reject($0) }.map { .unit($0) }
        } else {
            items = files.map { .file($0) }
        }
        let libs = VerilogFiles.libraryDirs(files: files, config: settings)
        let desc = try DescriptionTemplates(directory: templateDirectory)
        let tasks = try TaskTemplates(directory: templateDirectory)
        var mutator: Mutator? = nil
        var eda: EDARunner? = nil
        if settings.tasks.contains("mutate") {
            let all = try MutationRules.load(path: rulesPath).rules
            var m = Mutator(rules: settings.rules.isEmpty ? all : all.filter { settings.rules.contains($0.name) })
            m.maxEdits = settings.maxEdits
            m.logicFraction = settings.logicFraction
            mutator = m
            eda = try EDARunner(
                scratch: FS.join(ctx.workDirectory, "eda"), timeout: settings.timeout,
                tools: settings.tools.compactMap(EDATool.init(rawValue:)))
        }
        ctx.progress.begin(totalBytes: nil, unit: "modules")
        var totals: [String: Int] = [:]
        var moduleCount = 0
        let preference = splitsPreference ? try ctx.sideStage("preference", stage: name + "-preference", config: config) : nil
        var preferenceCount = 0
        try orderedParallelForEach(
            items, jobs: settings.tasks.contains("mutate") ? jobs : 1, window: 4 * jobs,
            produce: { item -> Output in
                var out = Output()
                var units: [VerilogUnit] = []
                switch item {
                case .unit(let u): units = [u]
                case .file(let f):
                    let (u, r) = try VerilogFiles.units(file: f, config: settings, libraryDirs: libs)
                    units = u
                    if let r { out.rejects.append(r) }
                }
                out.counts["_modules", default: 0] += units.count
                for u in units {
                    // The tools run once on the module (the target of its records) when the stage uses them.
                    let verdicts = eda.map { targetVerdicts(u, $0) } ?? []
                    for t in settings.tasks {
                        switch t {
                        case "describe": describe(u, desc, tasks, verdicts, &out)
                        case "complete": complete(u, tasks, verdicts, &out)
                        case "mutate": mutate(u, mutator!, eda!, tasks, verdicts, &out)
                        default: break
                        }
                    }
                }
                return out
            },
            consume: { _, out in
                for r in out.rejects { try ctx.reject(r) }
                for r in out.records {
                    if let preference, r["chosen"] != nil {
                        try preference.output.write(r)
                        preferenceCount += 1
                    } else {
                        try ctx.output.write(r)
                    }
                }
                for (k, v) in out.counts where k != "_modules" { totals[k, default: 0] += v }
                moduleCount += out.counts["_modules"] ?? 0
                ctx.progress.add(items: 1)
            })
        ctx.setCount("modules", moduleCount)
        if let preference {
            try preference.finish(counts: JSONObject([("pairs", .int(preferenceCount))]))
            ctx.setCount("preference_records", preferenceCount)
        }
        // Per-rule counts go into one object: mutants_by_rule.RULE.{kept, dropped_tools_accept, dropped_unparsable,
        // dropped_setting}.
        var byRule: [String: [String: Int]] = [:]
        for (k, v) in totals.sorted(by: { $0.key < $1.key }) {
            if let (rule, what) = VerilogTaskStage.splitRuleKey(k) {
                byRule[rule, default: [:]][what] = v
            } else {
                ctx.setCount(k, v)
            }
        }
        if !byRule.isEmpty {
            ctx.setValue(
                "mutants_by_rule",
                .object(JSONObject(byRule.sorted { $0.key < $1.key }.map { rule, c in
                    (rule, JSONValue.object(JSONObject(c.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) })))
                })))
        }
        if let s = totals["syntax_mutants"], s > 0 {
            let rate = Double(totals["syntax_rejected"] ?? 0) / Double(s)
            ctx.setValue("syntax_rejection_rate", .double((rate * 1e4).rounded() / 1e4))
        }
    }

    func provenance(_ u: VerilogUnit, _ generator: String, _ templates: [String]) -> JSONValue {
        var p = JSONObject()
        p.append("ids", .array([.string(u.id)]))
        p.append("source", .string(u.source))
        p.append("generator", .string(generator))
        p.append("templates", .array(templates.map { .string($0) }))
        p.append("backend", "rules")
        p.append("model", .null)
        p.append("seed", .int(settings.seed))
        return .object(p)
    }

    /// The configured tools' verdicts on the unmutated module.
    /// iverilog on a module's text (the target or a mutant of it) with the modules of its file it instantiates
    /// after it, so messages about the module keep their line numbers.
    func iverilog(_ text: String, _ u: VerilogUnit, _ eda: EDARunner) -> ToolVerdict {
        eda.iverilog(
            u.context.isEmpty ? text : text + "\n" + u.context, name: "design.v", includeDirs: u.includeDirs,
            libraryDirs: u.libraryDirs)
    }

    func targetVerdicts(_ u: VerilogUnit, _ eda: EDARunner, text: String? = nil) -> [ToolVerdict] {
        var out: [ToolVerdict] = []
        let t = text ?? u.text
        if settings.tools.contains("yosys") { out.append(eda.yosys(t, name: "design.v", includeDirs: u.includeDirs)) }
        if settings.tools.contains("iverilog") {
            out.append(iverilog(t, u, eda))
        }
        return out
    }

    /// `meta.scores` of a record whose target is the module (or completes it): whether each tool accepts the module.
    /// Empty when the stage runs no tools (no `mutate` task).
    static func ruleKey(_ rule: String, _ what: String) -> String { "_rule\u{1}" + rule + "\u{1}" + what }
    static func splitRuleKey(_ k: String) -> (String, String)? {
        let p = k.split(separator: "\u{1}", omittingEmptySubsequences: false)
        guard p.count == 3, p[0] == "_rule" else { return nil }
        return (String(p[1]), String(p[2]))
    }

    func targetScores(_ verdicts: [ToolVerdict]) -> JSONObject {
        JSONObject(verdicts.map { ($0.tool + "_accepts", JSONValue.bool($0.accepted)) })
    }

    func sft(_ id: String, _ user: String, _ assistant: String, _ meta: JSONObject) -> JSONValue {
        var o = JSONObject()
        o.append("id", .string(id))
        o.append(
            "messages",
            .array([
                ["role": "user", "content": .string(user)], ["role": "assistant", "content": .string(assistant)],
            ]))
        o.append("meta", .object(meta))
        return .object(o)
    }

    func describe(_ u: VerilogUnit, _ t: DescriptionTemplates, _ tasks: TaskTemplates, _ verdicts: [ToolVerdict], _ out: inout Output) {
        let d = Describer.describe(u.module, templates: t, seed: verilogSeed(settings.seed, u.id + "#describe"))
        var meta = JSONObject()
        meta.append("task", "describe")
        meta.append("module", .string(u.module.name))
        meta.append("description", .string(d.text))
        meta.append("provenance", provenance(u, "verilog-describe", ["verilog/tasks/describe"] + d.templates))
        // The target is the module as written (comments and all) unless `source: printed` or it is not at hand; the
        // tools' verdicts are on the printed module, which means the same.
        let original = settings.source == "original" && !u.original.isEmpty
        meta.append("target_source", .string(original ? "original" : "printed"))
        if !verdicts.isEmpty { meta.append("scores", .object(targetScores(verdicts))) }
        out.records.append(sft(u.id + "#describe", tasks.prompt("describe", d.text), original ? u.original : u.text, meta))
        out.counts["describe", default: 0] += 1
    }

    func complete(_ u: VerilogUnit, _ tasks: TaskTemplates, _ verdicts: [ToolVerdict], _ out: inout Output) {
        var p = Printer()
        p.module(u.module)
        let text = p.out
        let bytes = Array(text.utf8)
        func slice(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<b], as: UTF8.self) }
        var rng = SplitMix64(seed: verilogSeed(settings.seed, u.id + "#complete"))
        func meta(_ task: String, _ extra: [(String, JSONValue)] = []) -> JSONObject {
            var m = JSONObject()
            m.append("task", .string(task))
            m.append("module", .string(u.module.name))
            for (k, v) in extra { m.append(k, v) }
            m.append("provenance", provenance(u, "verilog-complete", ["verilog/tasks/" + task]))
            if !verdicts.isEmpty { m.append("scores", .object(targetScores(verdicts))) }
            return m
        }
        // Module level: the header, then the body.
        if let h = p.headerEnds.first {
            let header = slice(0, h)
            let body = slice(h, bytes.count).trimmingCharacters(in: .newlines)
            out.records.append(sft(u.id + "#complete-module", tasks.prompt("complete_module", header), body, meta("complete_module")))
            out.counts["complete_module", default: 0] += 1
        }
        // Statement level: the code up to a `;`, then the next statement (or item) that ends in `;`.
        let spans = p.statementSpans.enumerated().filter { _, s in
            var k = s.start - 1
            while k >= 0 && (bytes[k] == 0x20 || bytes[k] == 0x0A) { k -= 1 }
            return k >= 0 && bytes[k] == UInt8(ascii: ";")
        }.map(\.element)
        var chosen = Set<Int>()
        for _ in 0..<min(settings.statementSamples, spans.count) {
            var k = rng.below(spans.count)
            while chosen.contains(k) { k = (k + 1) % spans.count }
            chosen.insert(k)
        }
        for k in chosen.sorted() {
            let s = spans[k]
            var e = s.start - 1
            while e >= 0 && bytes[e] != UInt8(ascii: ";") { e -= 1 }
            let prefix = slice(0, e + 1)
            out.records.append(
                sft(
                    u.id + "#complete-statement-\(k)", tasks.prompt("complete_statement", prefix), slice(s.start, s.end),
                    meta("complete_statement", [("offset", .int(s.start))])))
            out.counts["complete_statement", default: 0] += 1
        }
        // Token level: the code up to a token, then the token.
        let toks = Mutator.tokens(text)
        guard toks.count > 2 else { return }
        var offs: [Int] = []
        var o = 0
        for t in toks {
            o += t.trivia.utf8.count
            offs.append(o)
            o += t.text.utf8.count
        }
        var picked = Set<Int>()
        for _ in 0..<min(settings.tokenSamples, toks.count - 1) {
            var k = 1 + rng.below(toks.count - 1)
            while picked.contains(k) { k = 1 + (k % (toks.count - 1)) }
            picked.insert(k)
        }
        for k in picked.sorted() {
            let prefix = slice(0, offs[k]).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
            out.records.append(
                sft(
                    u.id + "#complete-token-\(k)", tasks.prompt("complete_token", prefix), toks[k].text,
                    meta("complete_token", [("token_index", .int(k))])))
            out.counts["complete_token", default: 0] += 1
        }
    }

    func mutate(
        _ u: VerilogUnit, _ mutator: Mutator, _ eda: EDARunner, _ tasks: TaskTemplates, _ verdicts: [ToolVerdict],
        _ out: inout Output
    ) {
        // The repair target is the module as it is: every tool of the stage must accept it, so each pair's target
        // is valid for both yosys and iverilog (a module one of them rejects makes no pairs, with a reject line).
        let tools = verdicts.map(\.tool)
        var target = targetScores(verdicts)
        let refusing = verdicts.filter { !$0.accepted }
        guard !tools.isEmpty, refusing.isEmpty else {
            let why = refusing.map { "\($0.tool): \($0.message.split(separator: "\n").first ?? "rejected")" }.joined(separator: "; ")
            out.rejects.append(
                Reject(
                    source: u.source, reason: "the unmutated module \(u.module.name) is not accepted by every EDA tool (\(settings.tools.joined(separator: ", "))), so it cannot be a repair target: \(why)",
                    line: u.module.loc.line, id: u.id))
            out.counts["modules_without_tool", default: 0] += 1
            return
        }
        // With `source: original`, the target is the module as written when every tool accepts that text alone (no
        // macro defined elsewhere): the mutants are edits of it, comments and layout kept. Otherwise the printed one.
        var targetText = u.text
        var targetSource = "printed"
        if settings.source == "original", !u.original.isEmpty {
            let original = u.original.hasSuffix("\n") ? u.original : u.original + "\n"
            let ov = targetVerdicts(u, eda, text: original)
            if ov.allSatisfy(\.accepted) {
                targetText = original
                target = targetScores(ov)
                targetSource = "original"
            }
        }
        out.counts["repair_targets_" + targetSource, default: 0] += 1
        let (mutants, discarded) = mutator.mutantsCounting(
            of: targetText, samples: settings.samples, seed: verilogSeed(settings.seed, u.id + "#mutate"))
        for (r, k) in discarded {
            out.counts["candidates_discarded", default: 0] += k
            out.counts[VerilogTaskStage.ruleKey(r, "dropped_unparsable"), default: 0] += k
        }
        for (n, m) in mutants.enumerated() {
            var verdicts: [ToolVerdict] = []
            if tools.contains("yosys") { verdicts.append(eda.yosys(m.text, name: "design.v", includeDirs: u.includeDirs)) }
            if tools.contains("iverilog") {
                verdicts.append(iverilog(m.text, u, eda))
            }
            let rejecting = verdicts.filter { !$0.accepted }
            let rejected = !rejecting.isEmpty
            let ruleNames = Set(m.rules)
            if m.family == .syntax {
                out.counts["syntax_mutants", default: 0] += 1
                if m.parses { out.counts["syntax_parser_accepted", default: 0] += 1 }
                // Kept when a tool rejects it, whatever Loom's parser said; one every tool accepts is dropped.
                guard rejected else {
                    out.counts["syntax_dropped_tools_accept", default: 0] += 1
                    for r in ruleNames { out.counts[VerilogTaskStage.ruleKey(r, "dropped_tools_accept"), default: 0] += 1 }
                    continue
                }
                out.counts["syntax_rejected", default: 0] += 1
                if m.parses { out.counts["syntax_kept_parser_accepted", default: 0] += 1 }
            } else {
                out.counts["logic_family_mutants", default: 0] += 1
            }
            let label = rejected ? (m.family == .syntax ? "syntax_error" : "semantic_error") : "logic_mutant"
            out.counts[label, default: 0] += 1
            if !rejected && settings.logicMutants == "drop" {
                for r in ruleNames { out.counts[VerilogTaskStage.ruleKey(r, "dropped_setting"), default: 0] += 1 }
                continue
            }
            for r in ruleNames { out.counts[VerilogTaskStage.ruleKey(r, "kept"), default: 0] += 1 }
            var meta = JSONObject()
            meta.append("module", .string(u.module.name))
            meta.append("label", .string(label))
            meta.append("family", .string(m.family.rawValue))
            meta.append("rules", .array(m.rules.map { .string($0) }))
            meta.append("parser_accepts", .bool(m.parses))
            meta.append("target_source", .string(targetSource))
            meta.append("edits", .array(m.edits.map(\.json)))
            var tv = JSONObject()
            for v in verdicts {
                tv.append(v.tool, ["accepted": .bool(v.accepted), "message": .string(v.message), "timed_out": .bool(v.timedOut)])
            }
            meta.append("tools", .object(tv))
            let id = u.id + "#mutant-\(n)"
            var inputs: [(String, String, [String])] = []  // task, input, templates
            if rejected {
                let first = rejecting[0]
                let msg = first.message.isEmpty ? "\(first.tool): rejected" : first.message
                let withMessage = tasks.feedback.render(["message": msg, "wrong": m.text])
                inputs.append(("repair_with_feedback", withMessage, ["verilog/tasks/repair", "verilog/tasks/feedback"]))
                inputs.append(("repair", m.text, ["verilog/tasks/repair"]))
            } else {
                inputs.append(("repair_logic", m.text, ["verilog/tasks/repair"]))
            }
            for (k, (task, input, tmpl)) in inputs.enumerated() {
                var mm = meta
                mm.append("task", .string(task))
                mm.append("provenance", provenance(u, "verilog-mutate", tmpl))
                let prompt = tasks.prompt("repair", input)
                let suffix = k == 0 ? "" : "-plain"
                if settings.records != "preference" {
                    var ms = mm
                    ms.append("scores", .object(target))
                    out.records.append(sft(id + suffix, prompt, targetText, ms))
                    out.counts["sft_" + task, default: 0] += 1
                }
                if settings.records != "sft" {
                    var o = JSONObject()
                    o.append("id", .string(id + suffix + "-preference"))
                    o.append("prompt", .string(prompt))
                    o.append("chosen", .string(targetText))
                    o.append("rejected", .string(m.text))
                    var ms = mm
                    var scores = target
                    for (k, v) in PairScores.measure(chosen: targetText, rejected: m.text) { scores.append(k, v) }
                    ms.append("scores", .object(scores))
                    o.append("meta", .object(ms))
                    out.records.append(.object(o))
                    out.counts["preference_" + task, default: 0] += 1
                }
            }
        }
        out.counts["modules_mutated", default: 0] += 1
    }
}
