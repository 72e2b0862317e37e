import Foundation
import XCTest

@testable import LoomCore

/// The Spark driver (integrations/spark/loom_dedup.py) in local mode on the near-duplicate corpus split into 8
/// files, with one signatures task killed mid-way: Spark retries it and the kept records are byte for byte those
/// of one `loom dedup minhash` run. Opt-in (LOOM_TEST_SPARK=1; `make test-spark` installs Java and pyspark).
final class SparkTests: XCTestCase {
    var dir = ""
    var cli = LoomRunner()

    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-spark-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        cli.dir = dir
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func records(_ d: String) throws -> [String] {
        let m = try Manifest.read(directory: d)
        var out: [String] = []
        for s in m.shards {
            out += try String(contentsOfFile: d + "/" + s.file, encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        }
        return out
    }

    func testSparkLocalModeKeepsWhatOneMachineKeepsAndSurvivesAKilledTask() throws {
        guard ProcessInfo.processInfo.environment["LOOM_TEST_SPARK"] == "1" else {
            throw XCTSkip("set LOOM_TEST_SPARK=1 (or run 'make test-spark') to run the Spark driver in local mode")
        }
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: Spark corpus test skipped") }
        // PYTHON: a path, or a name looked up on PATH (default python3); it must import pyspark.
        let given = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let python = given.contains("/") ? given : "/usr/bin/env"
        let pythonArgs = given.contains("/") ? [] : [given]

        // The corpus split into 8 input files by lines.
        let corpus = try String(contentsOfFile: shared + "/corpora/dedup/neardup-20k.jsonl", encoding: .utf8)
        let lines = corpus.split(separator: "\n", omittingEmptySubsequences: true)
        let inDir = dir + "/in"
        try FileManager.default.createDirectory(atPath: inDir, withIntermediateDirectories: true)
        var inputs: [String] = []
        for k in 0..<8 {
            let part = lines[(lines.count * k / 8)..<(lines.count * (k + 1) / 8)].joined(separator: "\n") + "\n"
            let path = "\(inDir)/part-\(k).jsonl"
            FileManager.default.createFile(atPath: path, contents: Data(part.utf8))
            inputs.append(path)
        }
        let single = try cli.loom(["dedup", "minhash"] + inputs + ["-o", dir + "/single", "-q"])
        XCTAssertEqual(single.status, 0, single.stderr)

        // A loom that, the first time it is asked for shard 3's signatures, is killed with SIGKILL once the stage
        // has started writing (before its manifest exists), so the Spark task fails and is retried.
        let work = dir + "/work"
        let mark = dir + "/killed"
        let wrapper = dir + "/loom-killing-shard-3"
        let script = """
            #!/bin/sh
            case " $* " in
              *" minhash-signatures "*" --shard 3/8 "*)
                if mkdir "\(mark)" 2>/dev/null; then
                  "\(CLITests.loom)" "$@" &
                  pid=$!
                  i=0
                  while [ ! -e "\(work)/sig/3/shingles.bin.tmp" ] && [ $i -lt 6000 ]; do sleep 0.005; i=$((i+1)); done
                  kill -9 $pid
                  wait $pid
                  if [ -e "\(work)/sig/3/manifest.json" ]; then echo finished > "\(mark)/state"; else echo killed-midway > "\(mark)/state"; fi
                  exit 137
                fi ;;
            esac
            exec "\(CLITests.loom)" "$@"

            """
        FileManager.default.createFile(atPath: wrapper, contents: Data(script.utf8), attributes: [.posixPermissions: 0o755])

        let driver = ShardTests.packageRoot + "/integrations/spark/loom_dedup.py"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        // local[2,4]: two threads, and a failed task is tried up to 4 times (plain local[2] never retries).
        p.arguments = pythonArgs + [
            driver, "--master", "local[2,4]", "--loom", wrapper, "--work", work, "--output", dir + "/spark",
            "--shards", "8",
        ] + inputs
        let outPath = dir + "/spark.out"
        let errPath = dir + "/spark.err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: outPath)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        p.waitUntilExit()
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 0, String(err.suffix(3000)))
        guard p.terminationStatus == 0 else { return }

        // The kill happened mid-way and Spark reported the failed attempt.
        let state = (try? String(contentsOfFile: mark + "/state", encoding: .utf8)) ?? "never started"
        XCTAssertEqual(state.trimmingCharacters(in: .whitespacesAndNewlines), "killed-midway")
        XCTAssertTrue(err.contains("exited with -9") || err.contains("exited with 137"), String(err.suffix(3000)))

        // Same kept records, same order, no duplicates.
        let kept = try records(dir + "/spark")
        let expected = try records(dir + "/single")
        XCTAssertEqual(kept.count, expected.count)
        XCTAssertEqual(kept, expected)
        XCTAssertEqual(Set(kept).count, kept.count)
        XCTAssertLessThan(kept.count, lines.count)
        let summary = try String(contentsOfFile: outPath, encoding: .utf8)
        print("spark driver: \(summary)")
    }
}
