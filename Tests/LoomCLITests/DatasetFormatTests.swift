// The datasets the example pipeline makes load as the ecosystem loads them: the demo (`loom run
// examples/pipeline.yaml`) into a temporary directory, then Benchmarks/peers/trl_format_check.py in the reference
// environment: `datasets.load_dataset("json", ...)` on every stage directory and side stage, one record kind each,
// conversations passing TRL's `is_conversational`, preference pairs with prompt/chosen/rejected (issue 25: the
// Verilog step used to write conversations and preference pairs into one shard, which neither trainer took).

import Foundation
import LoomCore
import XCTest

final class DatasetFormatTests: XCTestCase {
    func testDemoDatasetsLoadInDatasetsAndPassTRLsFormatChecks() throws {
        guard FileManager.default.isExecutableFile(atPath: CLITests.loom) else { throw XCTSkip("\(CLITests.loom) not built") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let python = root + "/.build/reference-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("\(python) not found: make reference-env (make test makes it) installs datasets and trl")
        }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import datasets, trl"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("the reference environment lacks datasets or trl: make reference-env") }

        let out = NSTemporaryDirectory() + "loom-demo-formats-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = Process()
        run.executableURL = URL(fileURLWithPath: CLITests.loom)
        run.arguments = ["run", root + "/examples/pipeline.yaml", "-o", out, "-q"]
        run.standardError = FileHandle.nullDevice
        try run.run()
        run.waitUntilExit()
        XCTAssertEqual(run.terminationStatus, 0)

        let check = Process()
        check.executableURL = URL(fileURLWithPath: python)
        check.arguments = [root + "/Benchmarks/peers/trl_format_check.py", out]
        let pipe = Pipe()
        check.standardOutput = pipe
        check.standardError = FileHandle.nullDevice
        try check.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        check.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(check.terminationStatus, 0, text)
        let j = try JSONValue.parse(text)
        XCTAssertEqual(j["problems"]?.intValue, 0, text)
        let sets = try XCTUnwrap(j["datasets"]?.arrayValue)
        func kind(_ suffix: String) -> String? {
            sets.first { $0["directory"]?.stringValue?.hasSuffix(suffix) == true }?["kind"]?.stringValue
        }
        XCTAssertEqual(kind("/10-verilog"), "conversational")
        XCTAssertEqual(kind("/10-verilog/preference"), "preference")
        XCTAssertEqual(kind("/16-combine"), "conversational")
        XCTAssertEqual(kind("/18-combine"), "preference")
        XCTAssertEqual(kind("/08-generate"), "preference")
        XCTAssertEqual(kind("/07-generate"), "conversational")
        XCTAssertEqual(kind("/04-chunk"), "text")
    }
}
