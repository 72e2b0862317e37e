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
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loom-vcorpus-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let eda = try EDARunner(scratch: scratch)
        var passed = 0
        var failures: [String] = []
        var iverilogChecked = 0
        for e in entries {
            let r = try VerilogParser.parse(
                file: e.absolutePath, options: PreprocessorOptions(includePaths: e.contextDirectories))
            guard r.ok else {
                failures.append("\(e.path): parse: \(r.diagnostics.prefix(2))")
                continue
            }
            let printed = Printer.print(r.source)
            let again = VerilogParser.parse(printed, name: e.path + " (printed)")
            guard again.ok, again.source == r.source else {
                failures.append("\(e.path): re-parse differs \(again.diagnostics.prefix(2))")
                continue
            }
            let y = eda.yosys(printed, name: "printed.v")
            guard y.accepted else {
                failures.append("\(e.path): yosys rejects the printed file: \(y.message)")
                continue
            }
            if e.iverilogContextOK {
                iverilogChecked += 1
                let iv = eda.iverilog(
                    printed, name: "printed.v", includeDirs: e.contextDirectories, libraryDirs: e.contextDirectories)
                guard iv.accepted else {
                    failures.append("\(e.path): iverilog rejects the printed file: \(iv.message)")
                    continue
                }
            }
            passed += 1
        }
        let rate = Double(passed) / Double(entries.count)
        print("verilog corpus: \(passed)/\(entries.count) round-trip and tool-accepted (\(iverilogChecked) also by iverilog)")
        for f in failures { print("  " + f) }
        XCTAssertGreaterThanOrEqual(rate, 0.98, "\(failures)")
    }
}
