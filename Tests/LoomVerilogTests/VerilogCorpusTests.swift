// The Done-when checks on the shared corpus ($LOOM_SHARED/corpora/verilog/dev); skipped when it is absent.
import Foundation
import LoomCore
import XCTest

@testable import LoomVerilog

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

func verilogCorpus() throws -> [VerilogCorpusEntry] {
    guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: Verilog corpus test skipped") }
    let root = shared + "/corpora/verilog/dev"
    guard FileManager.default.fileExists(atPath: root + "/MANIFEST.tsv") else {
        throw XCTSkip("\(root)/MANIFEST.tsv not present: Verilog corpus test skipped")
    }
    return try VerilogCorpus.load(root: root)
}

final class VerilogCorpusTests: XCTestCase {
    /// Of the files yosys accepts: parse, print, the printed file accepted by yosys (and by iverilog where it
    /// elaborates the original with the group's directories), and it re-parses to an equal tree. At least 98%.
    func testCorpusRoundTripAcceptedByTools() throws {
        let entries = try verilogCorpus().filter(\.yosysOK)
        XCTAssertGreaterThan(entries.count, 50)
        let (passed, failures) = try roundTrip(entries, label: "verilog corpus")
        XCTAssertGreaterThanOrEqual(Double(passed) / Double(entries.count), 0.98, "\(failures)")
    }

    /// The same on the wider corpora Benchmarks/verilog-corpora.py builds from PyPI sdists and Debian's yosys cell
    /// libraries (code the parser was not written against), together with the shared corpus: at least 98%.
    /// Opt-in, a few minutes: LOOM_VERILOG_CORPORA=$PWD/.build/verilog-corpora/wild (the folder holding MANIFEST.tsv).
    func testWiderCorporaRoundTrip() throws {
        guard let root = ProcessInfo.processInfo.environment["LOOM_VERILOG_CORPORA"] else {
            throw XCTSkip("set LOOM_VERILOG_CORPORA to the folder python3 Benchmarks/verilog-corpora.py made (its wild/) to run the wider corpus check")
        }
        let wild = try VerilogCorpus.load(root: root).filter(\.yosysOK)
        XCTAssertGreaterThan(wild.count, 200)
        let shared = (try? verilogCorpus().filter(\.yosysOK)) ?? []
        let (passed, failures) = try roundTrip(wild, label: "wider corpora")
        let (sharedPassed, _) = try roundTrip(shared, label: "shared corpus")
        let rate = Double(passed + sharedPassed) / Double(wild.count + shared.count)
        print("together: \(passed + sharedPassed)/\(wild.count + shared.count) (\(String(format: "%.3f", rate)))")
        XCTAssertGreaterThanOrEqual(rate, 0.98, "\(failures)")
    }

    /// Each file is read twice, as each tool reads it. As Icarus reads it (no macros defined): printed, re-parsed to
    /// the same tree, and where iverilog elaborates the original with the group's directories, the printed file
    /// compiles to the same vvp program (`__ICARUS__` defined, as iverilog defines it). As yosys reads it (`SYNTHESIS` and `YOSYS` defined, translate_off regions
    /// dropped): printed, re-parsed to the same tree and accepted by yosys. A file passes when both hold.
    func roundTrip(_ entries: [VerilogCorpusEntry], label: String) throws -> (passed: Int, failures: [String]) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loom-vcorpus-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // Cell libraries of 2,000+ lines take yosys several seconds; 20 s was too little with the other core busy.
        let eda = try EDARunner(scratch: scratch, timeout: 120)
        var passed = 0
        var failures: [String] = []
        var iverilogChecked = 0
        var sameProgram = 0
        func printed(_ e: VerilogCorpusEntry, synthesis: Bool) throws -> String? {
            var o = PreprocessorOptions(includePaths: e.contextDirectories, synthesis: synthesis)
            // Each tool's own macro, as it defines it: mor1kx picks `$clog2` or its own function on __ICARUS__.
            if synthesis { o.defines["YOSYS"] = "" } else { o.defines["__ICARUS__"] = "1" }
            let r = try VerilogParser.parse(file: e.absolutePath, options: o)
            guard r.ok else {
                failures.append("\(e.path): parse\(synthesis ? " (as yosys reads it)" : ""): \(r.diagnostics.prefix(2))")
                return nil
            }
            let text = Printer.print(r.source)
            let again = VerilogParser.parse(text, name: e.path + " (printed)")
            guard again.ok, again.source == r.source else {
                failures.append("\(e.path): re-parse differs \(again.diagnostics.prefix(2))")
                return nil
            }
            return text
        }
        for e in entries {
            guard let sim = try printed(e, synthesis: false), let syn = try printed(e, synthesis: true) else { continue }
            let y = eda.yosys(syn, name: "printed.v")
            guard y.accepted else {
                failures.append("\(e.path): yosys rejects the printed file: \(y.message)")
                continue
            }
            if e.iverilogContextOK {
                iverilogChecked += 1
                let iv = eda.iverilog(sim, name: "printed.v", includeDirs: e.contextDirectories, libraryDirs: e.contextDirectories)
                guard iv.accepted else {
                    failures.append("\(e.path): iverilog rejects the printed file: \(iv.message)")
                    continue
                }
                // It means the same to Icarus: the compiled vvp programs are the same, but for addresses and
                // source positions.
                let original = try String(contentsOfFile: e.absolutePath, encoding: .utf8)
                let a = eda.iverilogProgram(original, includeDirs: e.contextDirectories, libraryDirs: e.contextDirectories)
                let b = eda.iverilogProgram(sim, includeDirs: e.contextDirectories, libraryDirs: e.contextDirectories)
                guard let a, let b, a == b else {
                    failures.append("\(e.path): iverilog compiles the printed file to a different program")
                    continue
                }
                sameProgram += 1
            }
            passed += 1
        }
        print(
            "\(label): \(passed)/\(entries.count) round-trip and tool-accepted (\(iverilogChecked) also by iverilog, \(sameProgram) compiled by it to the same program as the original)")
        for f in failures { print("  " + f) }
        return (passed, failures)
    }

    /// Of the mutants syntax rules make on the yosys_ok files, at least 95% are rejected by yosys or iverilog, and
    /// every repair output is accepted. About a minute of tool runs: set LOOM_VERILOG_MUTANTS=1.
    func testCorpusSyntaxMutantsAreRejected() throws {
        guard ProcessInfo.processInfo.environment["LOOM_VERILOG_MUTANTS"] != nil else {
            throw XCTSkip("set LOOM_VERILOG_MUTANTS=1 to run the corpus mutant check (about a minute of yosys/iverilog runs)")
        }
        let entries = try verilogCorpus().filter(\.yosysOK)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loom-vmut-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = VerilogConfig()
        c.tasks = ["mutate"]
        c.paths = entries.map(\.absolutePath)
        c.includePaths = Array(Set(entries.flatMap(\.contextDirectories))).sorted()
        c.samples = 8
        let st = try VerilogTaskStage(config: c, templates: templatesDir, grammars: grammarsDir, jobs: 2)
        let r = try StageRunner.run(st, directory: dir, options: RunOptions(quiet: true))
        let n = r.manifest.counts["syntax_mutants"]?.intValue ?? 0
        let rejected = r.manifest.counts["syntax_rejected"]?.intValue ?? 0
        print("verilog corpus mutants: \(rejected)/\(n) syntax mutants rejected; counts \(r.manifest.counts)")
        XCTAssertGreaterThan(n, 100)
        XCTAssertGreaterThanOrEqual(Double(rejected) / Double(n), 0.95)
        // Every repair pair's output is the unmutated module, which yosys accepts.
        let eda = try EDARunner(scratch: dir + "-check", tools: [.yosys])
        defer { try? FileManager.default.removeItem(atPath: dir + "-check") }
        var outputs = Set<String>()
        try StageReader(directory: dir + "/preference").forEachRecord({ rec, _, _ in
            if let s = rec["chosen"]?.stringValue { outputs.insert(s) }
        }, bad: { e, _, _ in throw e })
        for o in outputs { XCTAssertTrue(eda.yosys(o).accepted, o) }
    }
}
