// The kill campaign (Benchmarks/kill-campaign.py) on the example pipeline `make demo` runs: SIGKILL inside its
// steps, a re-run after each kill, and every output file compared byte for byte with an uninterrupted run
// (manifests without their time and memory fields; report.html with its numbers masked, since it prints those).
// The default suite runs the short version: one kill inside one step of each of the pipeline's 14 step types, at a
// seeded random place (after N of its records are written, at its start, or with everything written but the
// manifest), through the LOOM_TEST_KILL seam (Stage.swift), which sends the process SIGKILL itself — the
// demo's steps mostly finish in milliseconds, too fast to hit from outside at a chosen place. The full campaign
// (LOOM_KILL_CAMPAIGN=1) adds kills from outside at random times inside the longer steps, 36 kills in all.

import Foundation
import LoomCore
import XCTest

final class KillCampaignTests: XCTestCase {
    func campaign(_ extra: [String]) throws -> JSONValue {
        guard FileManager.default.isExecutableFile(atPath: CLITests.loom) else {
            throw XCTSkip("\(CLITests.loom) not built: run 'swift build' first")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let work = NSTemporaryDirectory() + "loom-kill-campaign-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", root + "/Benchmarks/kill-campaign.py", "--loom", CLITests.loom, "--pipeline",
            root + "/examples/pipeline.yaml", "--work", work,
        ] + extra
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, text + errText)
        return try JSONValue.parse(text)
    }

    func check(_ j: JSONValue, atLeast kills: Int) {
        XCTAssertEqual(j["differences"]?.arrayValue?.count, 0, j.jsonString)
        XCTAssertEqual(j["leftover_work_files"]?.arrayValue?.count, 0, j.jsonString)
        XCTAssertEqual(j["uncovered_step_types"]?.arrayValue?.count, 0, j.jsonString)
        XCTAssertEqual(j["step_types"]?.arrayValue?.count, 14)
        XCTAssertGreaterThanOrEqual(j["kills_landed"]?.intValue ?? 0, kills)
        XCTAssertGreaterThan(j["files_compared"]?.intValue ?? 0, 100)
        print("kill campaign: \(j["kills_landed"]?.intValue ?? 0) kills \(j["kills_by_step_type"]?.jsonString ?? ""), \(j["files_compared"]?.intValue ?? 0) files identical")
    }

    func testOneKillInEachStepType() throws {
        check(try campaign(["--per-type", "--min-kills", "14", "--seed", "1"]), atLeast: 14)
    }

    func testFullKillCampaign() throws {
        guard ProcessInfo.processInfo.environment["LOOM_KILL_CAMPAIGN"] == "1" else {
            throw XCTSkip("set LOOM_KILL_CAMPAIGN=1 for the full kill campaign (36 kills, a few minutes)")
        }
        check(try campaign(["--kills", "36", "--min-kills", "30", "--seed", "1"]), atLeast: 30)
    }
}
