// `loom ingest verilog`, `loom verilog print|describe|mutate|complete`: Verilog into training data (issue 4).

import ArgumentParser
import Foundation
import LoomCore
import LoomVerilog

/// Options every Verilog command takes: how files are preprocessed.
struct VerilogSourceOptions: ParsableArguments {
    @Option(name: [.customShort("I"), .customLong("include-path")], help: "A folder searched for `include files (repeatable).")
    var includePaths: [String] = []

    @Option(name: [.customShort("y"), .customLong("library-dir")],
            help: "A folder iverilog searches for instantiated modules (repeatable; the inputs' folders are added).")
    var libraryDirs: [String] = []

    @Option(name: [.customShort("D"), .customLong("define")], help: "A macro, NAME or NAME=VALUE (repeatable).")
    var defines: [String] = []

    @Option(help: "Text of ingested modules and target of description pairs: original (as written, with comments; the canonical print in meta.printed) or printed.")
    var source = "original"

    @Flag(help: "Read the sources as yosys does: SYNTHESIS defined, '// synthesis translate_off' ... 'translate_on' regions (also synopsys, pragma) dropped.")
    var synthesis = false

    func apply(to c: inout VerilogConfig) {
        c.includePaths = includePaths
        c.libraryDirs = libraryDirs
        c.defines = defines
        c.synthesis = synthesis
        c.source = source
    }
}

struct IngestVerilog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verilog",
        abstract: "Ingest Verilog-2005 sources: one document per module.",
        discussion: """
            Each file is preprocessed (`define with arguments, `ifdef/`elsif/
            `else, `include searched in the file's folder then each -I) and
            parsed. A document per module: text is the module as written in
            its file (with the comment lines above it, its comments, macro
            uses and layout); meta.printed holds it printed in Loom's
            canonical layout (macros expanded, comments dropped), which the
            Verilog tasks read. --source printed writes only the canonical
            print as text. meta also holds module, line, ports, parameters,
            include_dirs and library_dirs. A file with syntax errors goes to
            rejects.jsonl with its first diagnostics (file, line, column,
            what was expected).

            Example:
              loom ingest verilog rtl/ -I rtl/include -o out/verilog
            """)

    @Argument(help: "Verilog files, or folders searched recursively for *.v.")
    var paths: [String]

    @OptionGroup var source: VerilogSourceOptions
    @OptionGroup var stage: StageOptions

    @Option(help: "Only shard i/N of the input files, in the order found (N shard outputs in order = one run).")
    var shard: String?

    func run() throws {
        var c = VerilogConfig()
        c.paths = paths
        source.apply(to: &c)
        try runStage({ try VerilogIngestStage(config: c, shard: ShardSpec.parse(shard)) }, options: stage)
    }
}

struct VerilogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verilog",
        abstract: "Verilog datasets: descriptions, repair pairs with EDA feedback, completion tasks; a formatter.",
        discussion: """
            Examples:
              loom verilog print rtl/alu.v                   # the printer as a formatter
              loom verilog describe rtl/ -o out/describe     # description -> module pairs
              loom verilog mutate rtl/ -o out/repair         # broken modules, tool messages, repairs
              loom verilog complete rtl/ -o out/complete     # module, statement and token completion
            """,
        subcommands: [VerilogPrint.self, VerilogDescribe.self, VerilogMutate.self, VerilogComplete.self])
}

struct VerilogPrint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print",
        abstract: "Print a Verilog file in Loom's canonical layout (to stdout).",
        discussion: """
            The file is preprocessed (macros expanded, `include inlined, the
            inactive `ifdef branches dropped; `timescale and `default_nettype
            kept), parsed and printed: two-space indents, one item or statement
            a line, comments dropped. Parsing the output gives the same tree.
            Syntax errors are printed as FILE:LINE:COLUMN: expected ..., found
            ... and the exit status is 1.

            --synthesis reads the file as yosys does (SYNTHESIS defined,
            translate_off regions dropped), so the output is what yosys would
            have seen; add -D YOSYS for code that tests that macro too.

            Example:
              loom verilog print rtl/alu.v -D SIMULATION > alu.formatted.v
            """)

    @Argument(help: "A Verilog file.")
    var file: String

    @OptionGroup var source: VerilogSourceOptions

    func run() throws {
        var c = VerilogConfig()
        source.apply(to: &c)
        let r: ParseResult
        do { r = try VerilogParser.parse(file: file, options: c.preprocessor) } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
        if !r.ok {
            for d in r.diagnostics { FileHandle.standardError.write(Data("\(d)\n".utf8)) }
            throw ExitCode(1)
        }
        print(Printer.print(r.source), terminator: "")
    }
}

/// What describe, mutate and complete share: inputs, seed, the stage options.
struct VerilogTaskOptions: ParsableArguments {
    @Argument(help: "Verilog files or folders (searched for *.v), or one finished 'loom ingest verilog' directory.")
    var paths: [String]

    @OptionGroup var source: VerilogSourceOptions

    @Option(help: "Seed for every random choice (phrasings, mutation sites, completion points).")
    var seed = 1

    @Option(help: "Template folder (default: LOOM_TEMPLATES or the project's templates/).")
    var templates: String?

    @OptionGroup var stage: StageOptions

    func config(_ task: String) -> (VerilogConfig, String?) {
        var c = VerilogConfig()
        c.tasks = [task]
        c.seed = seed
        source.apply(to: &c)
        // A single stage directory is read as ingested modules.
        if paths.count == 1, FS.exists(FS.join(paths[0], "manifest.json")) { return (c, paths[0]) }
        c.paths = paths
        return (c, nil)
    }
}

struct VerilogDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Description -> module pairs: the module described in sentences from rules over its AST.",
        discussion: """
            Each module gets one SFT record (TRL messages): the user turn is
            "give me the Verilog module of this description." and the
            description (module name, ports with direction and width,
            parameters, registers and wires with widths, each always block's
            sensitivity and what it assigns, continuous assignments, instances,
            functions, generate loops); the assistant turn is the module. The
            sentences are Mustache templates in templates/verilog/
            description.yaml, a phrasing picked per fact with --seed.

            Example:
              loom verilog describe rtl/ -o out/describe --seed 7
            """)

    @OptionGroup var options: VerilogTaskOptions

    func run() throws {
        let (c, input) = options.config("describe")
        try runStage(
            { try VerilogTaskStage(config: c, input: input, templates: options.templates) }, options: options.stage)
    }
}

struct VerilogMutate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mutate",
        abstract: "Repair pairs: modules broken by named rules, with what yosys and iverilog say about them.",
        discussion: """
            Each mutant applies 1 to --max-edits edits of the rules in
            grammars/verilog-mutations.yaml (drop a keyword, a semicolon or an
            operator; insert a meaningless word; remove an if condition: syntax
            rules; swap wire/reg: semantic; widen or narrow a width, drop an if
            operand: logic). At most --samples per module and 2 x its token
            count; duplicates are dropped; meta.rules and meta.edits say what
            was done. Each mutant is given to yosys (read_verilog) and iverilog
            (-g2005, -I and -y as given) in a scratch folder, each with a
            --timeout; a tool that rejects the unmutated module is not asked.

            A rejected mutant gives SFT records with the tool's message and the
            wrong module as input ("give me correct Verilog according to the
            given wrong Verilog."), and without the message, plus the same as
            preference records (prompt, chosen = right, rejected = wrong). A
            mutant both tools accept is labelled logic_mutant (task
            repair_logic), never a syntax repair. The manifest counts
            syntax_mutants, syntax_rejected and syntax_rejection_rate.
            A missing tool is an error naming the apt package (yosys, iverilog).

            Example:
              loom verilog mutate rtl/ -y rtl/ -o out/repair --samples 16 --jobs 4
            """)

    @OptionGroup var options: VerilogTaskOptions

    @Option(help: "Mutants per module (at most 2 x its token count).")
    var samples = 8

    @Option(help: "Most edits in one mutant (1-5).")
    var maxEdits = 5

    @Option(help: "Rules to use, comma-separated (default: all).")
    var rules: String?

    @Option(help: "Share of mutants made by semantic/logic rules.")
    var logicFraction = 0.25

    @Option(help: "Tools to ask, comma-separated: yosys, iverilog.")
    var tools = "yosys,iverilog"

    @Option(help: "Seconds one tool run may take.")
    var timeout = 20.0

    @Option(help: "Records to write: all, sft, preference.")
    var records = "all"

    @Option(help: "Logic mutants (accepted by both tools): keep (labelled) or drop.")
    var logicMutants = "keep"

    @Option(help: "Modules checked at once (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        var (c, input) = options.config("mutate")
        c.samples = samples
        c.maxEdits = maxEdits
        c.rules = list(rules)
        c.logicFraction = logicFraction
        c.tools = list(tools)
        c.timeout = timeout
        c.records = records
        c.logicMutants = logicMutants
        try runStage(
            { try VerilogTaskStage(config: c, input: input, templates: options.templates, jobs: jobCount(jobs)) },
            options: options.stage)
    }
}

struct VerilogComplete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complete",
        abstract: "Completion tasks: module header -> body, code up to a ';' -> next statement, code -> next token.",
        discussion: """
            Per module: one module-level record (the header through its ';',
            then the body), --statement-samples statement-level records (the
            code up to a ';', then the statement or item after it) and
            --token-samples token-level records (the code up to a token, then
            the token), positions picked with --seed. SFT records in TRL's
            messages format; meta.task is complete_module, complete_statement
            or complete_token.

            Example:
              loom verilog complete rtl/ -o out/complete --statement-samples 4
            """)

    @OptionGroup var options: VerilogTaskOptions

    @Option(help: "Statement-level samples per module.")
    var statementSamples = 2

    @Option(help: "Token-level samples per module.")
    var tokenSamples = 2

    func run() throws {
        var (c, input) = options.config("complete")
        c.statementSamples = statementSamples
        c.tokenSamples = tokenSamples
        try runStage({ try VerilogTaskStage(config: c, input: input, templates: options.templates) }, options: options.stage)
    }
}

enum VerilogSteps {
    /// `- ingest: { kind: verilog, paths: [...] }`.
    static func ingest(_ ctx: StepContext) throws -> any Stage {
        var o = ctx.step.options
        if case .object(var obj) = o {
            obj["kind"] = nil
            o = .object(obj)
        }
        var c = try o.decode(
            VerilogConfig.self, allowedKeys: ["paths", "include_paths", "library_dirs", "defines"], context: ctx.location)
        c.paths = c.paths.map(ctx.resolve)
        c.includePaths = c.includePaths.map(ctx.resolve)
        c.libraryDirs = c.libraryDirs.map(ctx.resolve)
        do { return try VerilogIngestStage(config: c) } catch let e as LoomError {
            throw LoomError("\(ctx.location): \(e.message)")
        }
    }

    /// `- verilog: { tasks: [describe, mutate, complete], ... }`: reads `paths`, or the previous step (an ingest
    /// verilog step).
    static func tasks(_ ctx: StepContext, jobs: Int) throws -> any Stage {
        var o = ctx.step.options
        var templates: String? = nil
        var j = jobs
        if case .object(var obj) = o {
            templates = obj["templates"]?.stringValue.map(ctx.resolve)
            j = obj["jobs"]?.intValue ?? jobs
            obj["templates"] = nil
            obj["jobs"] = nil
            o = .object(obj)
        }
        var c = try o.decode(VerilogConfig.self, allowedKeys: VerilogConfig.keys, context: ctx.location)
        c.paths = c.paths.map(ctx.resolve)
        c.includePaths = c.includePaths.map(ctx.resolve)
        c.libraryDirs = c.libraryDirs.map(ctx.resolve)
        do {
            return try VerilogTaskStage(config: c, input: ctx.input, templates: templates, jobs: j)
        } catch let e as LoomError {
            throw LoomError("\(ctx.location): \(e.message)")
        }
    }
}
