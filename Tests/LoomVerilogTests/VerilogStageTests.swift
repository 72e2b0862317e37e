// Mutators, descriptions, completion tasks, EDA feedback and the stages, on Verilog written here.
import Foundation
import LoomCore
import XCTest

@testable import LoomVerilog

let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
let templatesDir = projectRoot + "/templates"
let grammarsDir = projectRoot + "/grammars"

let counterV = """
    module counter #(parameter WIDTH = 8) (
      input wire clk,
      input wire rst_n,
      input wire en,
      output reg [WIDTH-1:0] q,
      output wire wrap
    );
      wire [WIDTH-1:0] next;
      assign next = q + 1'b1;
      assign wrap = &q;
      always @(posedge clk or negedge rst_n) begin
        if (!rst_n)
          q <= 0;
        else if (en && !wrap)
          q <= next;
      end
    endmodule
    """

let pairV = """
    module pair (input wire clk, input wire rst_n, output wire [7:0] a, output wire [7:0] b, output wire w);
      reg [3:0] state;
      counter #(.WIDTH(8)) u_a (.clk(clk), .rst_n(rst_n), .en(1'b1), .q(a), .wrap(w));
      always @(*) begin
        case (a[1:0])
          2'd0: state = 4'd1;
          default: state = 4'd0;
        endcase
      end
      assign b = {state, a[3:0]};
    endmodule
    """

func tempDir(_ tag: String) throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("loom-\(tag)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

func content(_ r: JSONValue, _ i: Int) -> String {
    guard let m = r["messages"]?.arrayValue, m.count > i else { return "" }
    return m[i]["content"]?.stringValue ?? ""
}

func records(_ dir: String) throws -> [JSONValue] {
    var out: [JSONValue] = []
    try StageReader(directory: dir).forEachRecord({ r, _, _ in out.append(r) }, bad: { e, _, _ in throw e })
    return out
}

func rejects(_ dir: String) throws -> [JSONValue] {
    let t = try String(contentsOfFile: dir + "/rejects.jsonl", encoding: .utf8)
    return try t.split(separator: "\n").map { try JSONValue.parse(String($0)) }
}

final class VerilogMutatorTests: XCTestCase {
    func rules() throws -> [MutationRule] { try MutationRules.load(path: grammarsDir + "/verilog-mutations.yaml").rules }

    func testEveryRuleIsNamedSeededAndDoesWhatItsKindSays() throws {
        let all = try rules()
        XCTAssertEqual(Set(all.map(\.name)), Mutator.known)
        let text = Printer.print(VerilogParser.parse(counterV).source.modules[0])
        let tokens = Mutator.tokens(text).count
        for r in all {
            var m = Mutator(rules: [r])
            m.logicFraction = r.kind == .syntax ? 0 : 1
            let a = m.mutants(of: text, samples: 6, seed: 42)
            let b = m.mutants(of: text, samples: 6, seed: 42)
            XCTAssertEqual(a, b, "\(r.name): same seed, same mutants")
            XCTAssertFalse(a.isEmpty, "\(r.name) found no site in the counter")
            XCTAssertEqual(Set(a.map(\.text)).count, a.count, "\(r.name): duplicates")
            for x in a {
                XCTAssertTrue(x.edits.count >= 1 && x.edits.count <= 5)
                XCTAssertEqual(Set(x.rules), [r.name])
                XCTAssertNotEqual(x.text, text)
                // Logic samples must parse; syntax samples carry what the parser said, for the tools to judge.
                let parses = VerilogParser.parse(x.text).ok
                XCTAssertEqual(x.parses, parses, "\(r.name) \(x.edits)\n\(x.text)")
                if r.kind != .syntax { XCTAssertTrue(parses, "\(r.name) \(x.edits)\n\(x.text)") }
            }
            _ = tokens
        }
        // Specific edits.
        var semi = Mutator(rules: all.filter { $0.name == "drop_semicolon" })
        semi.maxEdits = 1
        semi.logicFraction = 0
        for x in semi.mutants(of: text, samples: 5, seed: 1) {
            XCTAssertEqual(x.text.filter { $0 == ";" }.count, text.filter { $0 == ";" }.count - 1)
        }
        var wide = Mutator(rules: all.filter { $0.name == "widen_width" })
        wide.maxEdits = 1
        wide.logicFraction = 1
        let w = wide.mutants(of: "module m; wire [7:0] x; endmodule\n", samples: 3, seed: 1)
        XCTAssertEqual(w.map(\.text), ["module m; wire [8:0] x; endmodule\n"])
        var conj = Mutator(rules: all.filter { $0.name == "drop_if_conjunct" })
        conj.maxEdits = 1
        conj.logicFraction = 1
        let c = conj.mutants(of: text, samples: 3, seed: 1)
        XCTAssertEqual(c.count, 1)
        XCTAssertTrue(c[0].text.replacingOccurrences(of: " ", with: "").contains("elseif(en)"), c[0].text)
    }

    func testSampleCountIsBoundedByTwiceTheTokens() throws {
        var m = Mutator(rules: try rules())
        m.logicFraction = 0
        let tiny = "module m; endmodule\n"  // 4 tokens
        XCTAssertEqual(Mutator.tokens(tiny).count, 4)
        let xs = m.mutants(of: tiny, samples: 100, seed: 3)
        XCTAssertLessThanOrEqual(xs.count, 8)
        XCTAssertFalse(xs.isEmpty)
    }
}

final class VerilogDescribeTests: XCTestCase {
    func testDescriptionStatesPortsWidthsAlwaysAssignsAndInstances() throws {
        let t = try DescriptionTemplates(directory: templatesDir)
        let counter = VerilogParser.parse(counterV).source.modules[0]
        let d = Describer.describe(counter, templates: t, seed: 1).text
        for s in ["counter", "clk", "rst_n", "8-bit", "rising edge of clk", "falling edge of rst_n", "q", "next", "q + 1'b1",
                  "WIDTH", "non-blocking"] {
            XCTAssertTrue(d.contains(s), "missing '\(s)' in: \(d)")
        }
        let pair = VerilogParser.parse(pairV).source.modules[0]
        let p = Describer.describe(pair, templates: t, seed: 1).text
        for s in ["u_a", "counter", "WIDTH = 8", "state", "4-bit", "{state, a[3:0]}", "clk to clk"] {
            XCTAssertTrue(p.contains(s), "missing '\(s)' in: \(p)")
        }
        XCTAssertFalse(p.contains("&amp;") || d.contains("&amp;"), "Verilog text must not be HTML-escaped")
        // A different seed may pick other phrasings, but the same seed always the same.
        XCTAssertEqual(Describer.describe(counter, templates: t, seed: 9).text, Describer.describe(counter, templates: t, seed: 9).text)
    }
}

final class VerilogStageTests: XCTestCase {
    func writeDesign(_ dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/rtl", withIntermediateDirectories: true)
        try counterV.write(toFile: dir + "/rtl/counter.v", atomically: true, encoding: .utf8)
        try pairV.write(toFile: dir + "/rtl/pair.v", atomically: true, encoding: .utf8)
        try "module broken(input a;\nendmodule\n".write(toFile: dir + "/rtl/broken.v", atomically: true, encoding: .utf8)
    }

    func testIngestDescribeCompleteAndRejects() throws {
        let dir = try tempDir("vstage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeDesign(dir)
        var c = VerilogConfig()
        c.paths = [dir + "/rtl"]
        _ = try StageRunner.run(try VerilogIngestStage(config: c), directory: dir + "/ingest", options: RunOptions(quiet: true))
        let docs = try records(dir + "/ingest")
        XCTAssertEqual(docs.compactMap { $0["meta"]?["module"]?.stringValue }, ["counter", "pair"])
        let rj = try rejects(dir + "/ingest")
        XCTAssertEqual(rj.count, 1)
        XCTAssertEqual(rj[0]["line"]?.intValue, 1)
        XCTAssertEqual(rj[0]["column"]?.intValue, 22)
        XCTAssertTrue(rj[0]["reason"]?.stringValue?.contains("expected ',' or ')'") ?? false)

        var t = VerilogConfig()
        t.tasks = ["describe", "complete"]
        let st = try VerilogTaskStage(config: t, input: dir + "/ingest", templates: templatesDir, grammars: grammarsDir)
        _ = try StageRunner.run(st, directory: dir + "/tasks", options: RunOptions(quiet: true))
        let recs = try records(dir + "/tasks")
        let byTask = Dictionary(grouping: recs, by: { $0["meta"]?["task"]?.stringValue ?? "" })
        XCTAssertEqual(byTask["describe"]?.count, 2)
        XCTAssertEqual(byTask["complete_module"]?.count, 2)
        XCTAssertEqual(byTask["complete_statement"]?.count, 4)
        XCTAssertEqual(byTask["complete_token"]?.count, 4)
        for r in recs {
            let m = r["messages"]?.arrayValue ?? []
            XCTAssertEqual(m.count, 2)
            XCTAssertEqual(m[0]["role"]?.stringValue, "user")
            XCTAssertNotNil(r["meta"]?["provenance"]?["ids"])
            XCTAssertNil(r["meta"]?["scores"], "no tools run without the mutate task")
        }
        let d = byTask["describe"]![0]
        XCTAssertTrue(content(d, 0).hasPrefix("give me the Verilog module of this description.\n\n"))
        XCTAssertTrue(content(d, 1).hasPrefix("module counter #("))
        for s in byTask["complete_statement"]! {
            let user = content(s, 0)
            XCTAssertTrue(user.hasSuffix(";"), user)
            XCTAssertTrue(content(s, 1).hasSuffix(";"))
        }
        let mod = byTask["complete_module"]!.first { $0["meta"]?["module"]?.stringValue == "counter" }!
        XCTAssertTrue(content(mod, 0).hasSuffix(");"))
        XCTAssertTrue(content(mod, 1).hasSuffix("endmodule"))

        // Same inputs and config: byte-identical output.
        _ = try StageRunner.run(st, directory: dir + "/tasks2", options: RunOptions(quiet: true))
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dir + "/tasks/part-00000.jsonl")),
            try Data(contentsOf: URL(fileURLWithPath: dir + "/tasks2/part-00000.jsonl")))
    }

    /// Records carry the module as written: its header comment, inline comments and macro uses (`source:
    /// original`, the default), with the canonical print in meta.printed, which the tasks read; the description
    /// pair's target is the original text; `source: printed` gives the canonical print only.
    func testOriginalTextWithCommentsAndMacros() throws {
        let dir = try tempDir("voriginal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rtl", withIntermediateDirectories: true)
        let file = """
            `define WIDTH 8
            // Synchronous counter with enable.
            // Wraps at 2**WIDTH - 1.
            module counter (
              input wire clk,           // rising edge
              input wire en,
              output reg [`WIDTH-1:0] q /* the count */
            );
              always @(posedge clk)
                if (en) q <= q + 1'b1;  // count up
            endmodule

            `define MAKE(name) module name; endmodule
            `MAKE(empty)
            """
        try file.write(toFile: dir + "/rtl/counter.v", atomically: true, encoding: .utf8)
        var c = VerilogConfig()
        c.paths = [dir + "/rtl"]
        let res = try StageRunner.run(try VerilogIngestStage(config: c), directory: dir + "/ingest", options: RunOptions(quiet: true))
        let docs = try records(dir + "/ingest")
        XCTAssertEqual(docs.count, 2)
        let counter = docs[0]
        let text = counter["text"]?.stringValue ?? ""
        XCTAssertTrue(text.hasPrefix("// Synchronous counter with enable.\n// Wraps at 2**WIDTH - 1.\nmodule counter ("), text)
        XCTAssertTrue(text.hasSuffix("endmodule"), text)
        for piece in ["// rising edge", "/* the count */", "// count up", "`WIDTH-1:0"] {
            XCTAssertTrue(text.contains(piece), "\(piece) not in \(text)")
        }
        XCTAssertEqual(counter["meta"]?["text_source"]?.stringValue, "original")
        let printed = counter["meta"]?["printed"]?.stringValue ?? ""
        XCTAssertTrue(printed.contains("output reg [8 - 1:0] q") && !printed.contains("//"), printed)
        // A module a macro wrote has no text of its own in the file: the print stands in.
        XCTAssertEqual(docs[1]["meta"]?["text_source"]?.stringValue, "printed")
        XCTAssertEqual(res.manifest.counts["modules_original_text"]?.intValue, 1)
        XCTAssertEqual(res.manifest.counts["modules_original_with_comments"]?.intValue, 1)

        // The tasks read meta.printed; the description's target is the original.
        var t = VerilogConfig()
        t.tasks = ["describe", "complete"]
        let st = try VerilogTaskStage(config: t, input: dir + "/ingest", templates: templatesDir, grammars: grammarsDir)
        _ = try StageRunner.run(st, directory: dir + "/tasks", options: RunOptions(quiet: true))
        let recs = try records(dir + "/tasks")
        let describe = recs.first { $0["meta"]?["task"]?.stringValue == "describe" && $0["meta"]?["module"]?.stringValue == "counter" }
        XCTAssertEqual(describe.map { content($0, 1) }, text)
        XCTAssertEqual(describe?["meta"]?["target_source"]?.stringValue, "original")
        let module = recs.first { $0["meta"]?["task"]?.stringValue == "complete_module" && $0["meta"]?["module"]?.stringValue == "counter" }
        XCTAssertFalse(module.map { content($0, 1) }?.contains("//") ?? true, "completions are made on the printed module")

        c.source = "printed"
        _ = try StageRunner.run(try VerilogIngestStage(config: c), directory: dir + "/ingest-printed", options: RunOptions(quiet: true))
        let plain = try records(dir + "/ingest-printed")
        XCTAssertEqual(plain[0]["text"]?.stringValue, printed)
        XCTAssertNil(plain[0]["meta"]?["printed"])
        c.source = "as-is"
        XCTAssertThrowsError(try VerilogIngestStage(config: c))
    }

    func testMutateAsksTheToolsAndPairsTheirMessages() throws {
        for t in EDATool.allCases {
            do { _ = try t.locate() } catch { throw XCTSkip("\(t.rawValue) is not installed (make setup installs it)") }
        }
        let dir = try tempDir("vmutate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeDesign(dir)
        var c = VerilogConfig()
        c.tasks = ["mutate"]
        c.paths = [dir + "/rtl/counter.v", dir + "/rtl/pair.v"]
        c.samples = 6
        c.logicFraction = 0.3
        let st = try VerilogTaskStage(config: c, templates: templatesDir, grammars: grammarsDir, jobs: 2)
        let res = try StageRunner.run(st, directory: dir + "/out", options: RunOptions(quiet: true))
        // One record kind a dataset: conversations in the stage's shards, preference pairs in its side stage.
        let conversations = try records(dir + "/out"), pairs = try records(dir + "/out/preference")
        XCTAssertTrue(conversations.allSatisfy { $0["messages"] != nil && $0["chosen"] == nil })
        XCTAssertTrue(!pairs.isEmpty && pairs.allSatisfy { $0["chosen"] != nil && $0["messages"] == nil })
        XCTAssertEqual(res.manifest.counts["preference_records"]?.intValue, pairs.count)
        XCTAssertEqual(try Manifest.read(directory: dir + "/out/preference").records, pairs.count)
        let recs = conversations + pairs
        XCTAssertFalse(recs.isEmpty)
        let syntax = res.manifest.counts["syntax_mutants"]?.intValue ?? 0
        XCTAssertGreaterThan(syntax, 0)
        // Every syntax mutant kept is rejected by a tool; the others (both tools accept them) are counted as dropped.
        let kept = res.manifest.counts["syntax_rejected"]?.intValue ?? 0
        XCTAssertEqual(kept + (res.manifest.counts["syntax_dropped_tools_accept"]?.intValue ?? 0), syntax)
        XCTAssertEqual(res.manifest.counts["syntax_error"]?.intValue, kept)
        let eda = try EDARunner(scratch: dir + "/check")
        var feedback = 0
        for r in recs {
            let meta = r["meta"]!
            let label = meta["label"]!.stringValue!
            let tools = meta["tools"]!.objectValue!
            let accepted = tools.allSatisfy { $0.value["accepted"]?.boolValue == true }
            XCTAssertEqual(label == "logic_mutant", accepted, "\(meta)")
            XCTAssertFalse(meta["rules"]!.arrayValue!.isEmpty)
            XCTAssertLessThanOrEqual(meta["edits"]!.arrayValue!.count, 5)
            if let m = r["messages"]?.arrayValue {
                let user = m[0]["content"]!.stringValue!
                XCTAssertTrue(user.hasPrefix("give me correct Verilog according to the given wrong Verilog.\n\n"))
                if meta["task"]?.stringValue == "repair_with_feedback" {
                    feedback += 1
                    XCTAssertTrue(user.contains("design.v:"), user)
                    XCTAssertNotEqual(label, "logic_mutant")
                }
                if label == "logic_mutant" { XCTAssertEqual(meta["task"]?.stringValue, "repair_logic") }
                // The repair's output is accepted by yosys.
                XCTAssertTrue(eda.yosys(m[1]["content"]!.stringValue!).accepted)
            } else {
                XCTAssertNotNil(r["prompt"]?.stringValue)
                XCTAssertNotEqual(r["chosen"]?.stringValue, r["rejected"]?.stringValue)
            }
        }
        XCTAssertGreaterThan(feedback, 0)
    }

    /// A syntax mutant is kept when yosys or iverilog rejects it, whatever Loom's parser says, and dropped when
    /// both accept it (dropping `wire` from `input wire a` leaves valid Verilog); the manifest counts both by rule.
    func testSyntaxMutantsAreJudgedByTheTools() throws {
        for t in EDATool.allCases {
            do { _ = try t.locate() } catch { throw XCTSkip("\(t.rawValue) is not installed (make setup installs it)") }
        }
        let dir = try tempDir("vjudge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rtl", withIntermediateDirectories: true)
        try "module m (input wire a, input wire b, output wire y);\n  assign y = a & b;\nendmodule\n"
            .write(toFile: dir + "/rtl/m.v", atomically: true, encoding: .utf8)
        var c = VerilogConfig()
        c.tasks = ["mutate"]
        c.paths = [dir + "/rtl/m.v"]
        c.rules = ["drop_keyword"]
        c.samples = 12
        c.maxEdits = 1
        c.logicFraction = 0
        let st = try VerilogTaskStage(config: c, templates: templatesDir, grammars: grammarsDir, jobs: 1)
        let res = try StageRunner.run(st, directory: dir + "/out", options: RunOptions(quiet: true))
        let counts = res.manifest.counts
        let n = counts["syntax_mutants"]?.intValue ?? 0
        let kept = counts["syntax_rejected"]?.intValue ?? 0
        let dropped = counts["syntax_dropped_tools_accept"]?.intValue ?? 0
        XCTAssertEqual(n, kept + dropped, "\(counts)")
        XCTAssertGreaterThan(kept, 0, "\(counts)")
        XCTAssertGreaterThan(dropped, 0, "dropping one of the three `wire`s is valid Verilog: \(counts)")
        let byRule = counts["mutants_by_rule"]?["drop_keyword"]
        XCTAssertEqual(byRule?["kept"]?.intValue, kept, "\(counts)")
        XCTAssertEqual(byRule?["dropped_tools_accept"]?.intValue, dropped, "\(counts)")
        // Every kept mutant is rejected by a tool (meta.tools says which), and the count of those the parser
        // accepted matches the records.
        let recs = try records(dir + "/out") + records(dir + "/out/preference")
        XCTAssertFalse(recs.isEmpty)
        var parserAccepted = Set<String>()
        for r in recs {
            let meta = r["meta"]!
            XCTAssertEqual(meta["label"]?.stringValue, "syntax_error")
            XCTAssertTrue(meta["tools"]!.objectValue!.contains { $0.value["accepted"]?.boolValue == false }, "\(meta)")
            let text = r["rejected"]?.stringValue ?? content(r, 0)
            if meta["parser_accepts"]?.boolValue == true, let id = r["id"]?.stringValue,
                let m = id.range(of: "#mutant-[0-9]+", options: .regularExpression)
            {
                parserAccepted.insert(String(id[m]))
            }
            XCTAssertFalse(text.isEmpty)
        }
        XCTAssertEqual(parserAccepted.count, counts["syntax_kept_parser_accepted"]?.intValue ?? 0, "\(counts)")
    }

    /// With the tools run (mutate), every record carries meta.scores: whether yosys and iverilog accept its target
    /// module (the verdicts of the stage's own check of the module, equal to running the tools on the target here),
    /// and preference pairs their chosen/rejected length ratio and similarity.
    func testRecordsCarryTheToolVerdictsOnTheirTarget() throws {
        for t in EDATool.allCases {
            do { _ = try t.locate() } catch { throw XCTSkip("\(t.rawValue) is not installed (make setup installs it)") }
        }
        let dir = try tempDir("vscores")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeDesign(dir)
        // yosys reads a module that instantiates one nobody defines; iverilog, which elaborates, does not accept it.
        try "module top (input wire a, output wire b);\n  missing u_m (.a(a), .b(b));\nendmodule\n"
            .write(toFile: dir + "/rtl/top.v", atomically: true, encoding: .utf8)
        var c = VerilogConfig()
        c.tasks = ["describe", "complete", "mutate"]
        c.paths = [dir + "/rtl/counter.v", dir + "/rtl/pair.v", dir + "/rtl/top.v"]
        c.samples = 2
        let st = try VerilogTaskStage(config: c, templates: templatesDir, grammars: grammarsDir, jobs: 2)
        _ = try StageRunner.run(st, directory: dir + "/out", options: RunOptions(quiet: true))
        let conversations = try records(dir + "/out"), pairs = try records(dir + "/out/preference")
        XCTAssertFalse(pairs.isEmpty)
        let eda = try EDARunner(scratch: dir + "/check")
        var expected: [String: (Bool, Bool)] = [:]
        for name in ["counter", "pair", "top"] {
            let text = try records(dir + "/out").first { $0["meta"]?["module"]?.stringValue == name && $0["meta"]?["task"]?.stringValue == "describe" }
                .map { content($0, 1) } ?? ""
            XCTAssertFalse(text.isEmpty, name)
            expected[name] = (
                eda.yosys(text).accepted, eda.iverilog(text, libraryDirs: [dir + "/rtl"]).accepted
            )
        }
        XCTAssertEqual(expected["counter"]?.0, true)
        XCTAssertEqual(expected["counter"]?.1, true)
        XCTAssertEqual(expected["pair"]?.1, true, "pair finds counter in its folder")
        XCTAssertEqual(expected["top"]?.0, true)
        XCTAssertEqual(expected["top"]?.1, false)
        var tasks = Set<String>()
        var similarities: [Double] = []
        for r in conversations + pairs {
            let meta = r["meta"]!
            let module = meta["module"]!.stringValue!
            tasks.insert(meta["task"]?.stringValue ?? "")
            XCTAssertEqual(meta["scores"]?["yosys_accepts"]?.boolValue, expected[module]?.0, "\(r)")
            XCTAssertEqual(meta["scores"]?["iverilog_accepts"]?.boolValue, expected[module]?.1, "\(r)")
            if let chosen = r["chosen"]?.stringValue, let rejected = r["rejected"]?.stringValue {
                let ratio = Double(chosen.unicodeScalars.count) / Double(rejected.unicodeScalars.count)
                XCTAssertEqual(meta["scores"]?["length_ratio"]?.doubleValue ?? 0, ratio, accuracy: 1e-4)
                // A mutant makes at most five token edits, so a pair shares most of its tokens (on the 20-token
                // module `top`, five edits of one token each leave at least (20-5)/(20+5) = 0.6).
                let sim = meta["scores"]?["similarity"]?.doubleValue ?? 0
                XCTAssertTrue(sim >= 0.5 && sim <= 1, "\(sim)")
                similarities.append(sim)
            }
        }
        XCTAssertGreaterThan(similarities.sorted()[similarities.count / 2], 0.9)
        XCTAssertTrue(tasks.isSuperset(of: ["describe", "complete_module", "repair"]), "\(tasks)")
    }

    func testMissingToolNamesThePackage() throws {
        let old = ProcessInfo.processInfo.environment["PATH"] ?? ""
        setenv("PATH", "/nonexistent", 1)
        defer { setenv("PATH", old, 1) }
        XCTAssertThrowsError(try EDATool.yosys.locate()) { e in
            XCTAssertTrue("\(e)".contains("apt-get install yosys"), "\(e)")
        }
        XCTAssertThrowsError(try EDATool.iverilog.locate()) { e in
            XCTAssertTrue("\(e)".contains("apt-get install iverilog"), "\(e)")
        }
    }

    func testToolTimeoutIsReported() throws {
        do { _ = try EDATool.iverilog.locate() } catch { throw XCTSkip("iverilog is not installed") }
        let dir = try tempDir("vtimeout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A generate loop this long takes iverilog far longer than 0.05 s to elaborate.
        let eda = try EDARunner(scratch: dir, timeout: 0.05, tools: [.iverilog])
        let v = eda.iverilog("module m; genvar i; for (i = 0; i < 2000000; i = i + 1) begin : g wire w; end endmodule\n")
        XCTAssertTrue(v.timedOut)
        XCTAssertFalse(v.accepted)
        XCTAssertTrue(v.message.contains("did not finish within"))
    }
}
