import Foundation
import XCTest

@testable import LoomCore

/// End-to-end tests of the `loom` binary: exit codes, messages, and resuming after kill -9.
final class CLITests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-cli-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The `loom` executable built beside this test bundle (or LOOM_BIN).
    static var loom: String {
        if let b = ProcessInfo.processInfo.environment["LOOM_BIN"] { return b }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("loom").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Starts loom with stdout and stderr going to files (no pipe can fill up and block it).
    func start(_ args: [String], env: [String: String] = [:]) throws -> (Process, String, String) {
        guard FileManager.default.isExecutableFile(atPath: CLITests.loom) else {
            throw XCTSkip("\(CLITests.loom) not built: run 'swift build' first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.loom)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let tag = UUID().uuidString.prefix(8)
        let outPath = dir + "/.stdout-\(tag)"
        let errPath = dir + "/.stderr-\(tag)"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: outPath)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        return (p, outPath, errPath)
    }

    @discardableResult
    func loom(_ args: [String], env: [String: String] = [:]) throws -> Result {
        let (p, out, err) = try start(args, env: env)
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// A PubMed file of `n` articles with multi-sentence abstracts.
    func writePubMed(_ path: String, articles n: Int) {
        var s = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PubmedArticleSet>\n"
        for i in 1...n {
            let abstract = (1...12).map { "Finding \($0) of study \(i) concerns protein P\(i % 97) in tissue \($0 % 5)." }
                .joined(separator: " ")
            s += """
                <PubmedArticle><MedlineCitation><PMID Version="1">\(i)</PMID><Article>
                <ArticleTitle>Study \(i) of protein P\(i % 97).</ArticleTitle>
                <Abstract><AbstractText>\(abstract)</AbstractText></Abstract><Language>eng</Language>
                </Article></MedlineCitation></PubmedArticle>

                """
        }
        s += "</PubmedArticleSet>\n"
        FileManager.default.createFile(atPath: path, contents: Data(s.utf8))
    }

    func testHelpTeaches() throws {
        let r = try loom(["ingest", "pubmed", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("--require-abstract"))
        XCTAssertTrue(r.stdout.contains("DeleteCitation"))
        XCTAssertTrue(try loom(["--help"]).stdout.contains("loom run examples/pipeline.yaml"))
    }

    func testMissingInputIsOneClearLineAndExitOne() throws {
        let r = try loom(["ingest", "pubmed", dir + "/nope.xml.gz", "-o", dir + "/out"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: \(dir)/nope.xml.gz: no such file or directory\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
    }

    func testTruncatedFileExitsNonZeroAndKeepsDocuments() throws {
        writePubMed(dir + "/a.xml", articles: 50)
        let text = try String(contentsOfFile: dir + "/a.xml", encoding: .utf8)
        FileManager.default.createFile(atPath: dir + "/a.xml", contents: Data(text.prefix(text.utf8.count * 2 / 3).utf8))
        let r = try loom(["ingest", "pubmed", dir + "/a.xml", "-o", dir + "/out", "-q"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("error: \(dir)/a.xml:"), r.stderr)
        XCTAssertTrue(r.stderr.contains(": the file ends inside <PubmedArticle> (truncated?) (byte "), r.stderr)
        let kept = try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(kept.count, 20)
        XCTAssertEqual(try Manifest.read(directory: dir + "/out").status, "failed")
    }

    /// A line every LOOM_PROGRESS_SECONDS; at 0.001 s any run longer than a few milliseconds prints one (at 0.05 s
    /// the 3,000 articles were sometimes read in under 50 ms and no line came: a hidden timing assumption).
    func testPlainProgressLinesWhenNotATerminal() throws {
        writePubMed(dir + "/a.xml", articles: 3000)
        let r = try loom(
            ["ingest", "pubmed", dir + "/a.xml", "-o", dir + "/out"], env: ["LOOM_PROGRESS_SECONDS": "0.001"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("[ingest-pubmed] "), r.stderr)
        XCTAssertTrue(r.stderr.contains(" articles  "), r.stderr)
        XCTAssertTrue(r.stderr.contains("ingest-pubmed: 3000 records, 0 rejects"), r.stderr)
        XCTAssertFalse(r.stderr.contains("\r"))
        XCTAssertEqual(r.stdout, dir + "/out\n")
    }

    /// The stage files of a pipeline output, with manifests reduced to their run-independent part.
    func snapshot(_ out: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for step in FS.list(out) where !step.hasPrefix(".") {
            for name in FS.list(out + "/" + step) {
                let path = out + "/" + step + "/" + name
                if name == Manifest.fileName {
                    files[step + "/" + name] = Data(try Manifest.read(directory: out + "/" + step).deterministicJSON.jsonString.utf8)
                } else {
                    files[step + "/" + name] = try Data(contentsOf: URL(fileURLWithPath: path))
                }
            }
        }
        return files
    }

    /// Starts `loom run`, kills it with SIGKILL once `ready` holds, and returns whether it was killed mid-run.
    func runAndKill(_ args: [String], when ready: () -> Bool) throws -> Bool {
        let (p, _, _) = try start(args)
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            if ready() {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                return p.terminationReason == .uncaughtSignal
            }
            usleep(2000)
        }
        p.waitUntilExit()
        return false
    }

    func testKillDuringAStepAndRerunGivesIdenticalOutput() throws {
        writePubMed(dir + "/pubmed.xml", articles: 3000)
        let yaml = """
            name: kill-test
            output: out
            steps:
              - ingest: { kind: pubmed, paths: [pubmed.xml], require_abstract: true }
              - chunk: { max_tokens: 40, overlap: 10 }
            """
        FileManager.default.createFile(atPath: dir + "/pipeline.yaml", contents: Data(yaml.utf8))
        let args = ["run", dir + "/pipeline.yaml", "--shard-records", "500", "-q"]
        let out = dir + "/out"

        // The reference: one uninterrupted run.
        let first = try loom(args)
        XCTAssertEqual(first.status, 0, first.stderr)
        let reference = try snapshot(out)
        XCTAssertGreaterThan(reference.keys.filter { $0.hasPrefix("02-chunk/part-") }.count, 3)
        try FileManager.default.removeItem(atPath: out)

        // Killed while the ingest step parses (its spool exists, no manifest yet).
        let killedIngest = try runAndKill(args) {
            FS.size(out + "/01-ingest/.loom-work/file-00000.jsonl") ?? 0 > 0
                && !FS.exists(out + "/01-ingest/manifest.json")
        }
        let afterIngestKill = try loom(args)
        XCTAssertEqual(afterIngestKill.status, 0, afterIngestKill.stderr)
        XCTAssertEqual(try snapshot(out), reference)

        // Killed while the chunk step writes shards (some complete, manifest not written).
        try FileManager.default.removeItem(atPath: out + "/02-chunk/manifest.json")
        let killedChunk = try runAndKill(args) {
            FS.exists(out + "/02-chunk/part-00001.jsonl") && !FS.exists(out + "/02-chunk/manifest.json")
        }
        let afterChunkKill = try loom(args)
        XCTAssertEqual(afterChunkKill.status, 0, afterChunkKill.stderr)
        XCTAssertEqual(try snapshot(out), reference)
        print("killed during ingest: \(killedIngest), during chunk: \(killedChunk)")
        XCTAssertTrue(killedIngest || killedChunk, "the run finished before it could be killed: the test proved nothing")

        // A finished pipeline does no work when run again.
        let before = try Manifest.read(directory: out + "/02-chunk").finishedAt
        let again = try loom(["run", dir + "/pipeline.yaml"])
        XCTAssertEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("chunk: up to date"), again.stderr)
        XCTAssertEqual(try Manifest.read(directory: out + "/02-chunk").finishedAt, before)
    }

    /// Memory does not grow with the input: four times the XML costs (almost) no more memory. The 1 GB check
    /// is `loom-bench memory` (docs/benchmarks.md).
    func testMemoryDoesNotGrowWithInputSize() throws {
        writePubMed(dir + "/one.xml", articles: 400)
        let text = try String(contentsOfFile: dir + "/one.xml", encoding: .utf8)
        let body = text.components(separatedBy: "<PubmedArticleSet>\n")[1].components(separatedBy: "</PubmedArticleSet>")[0]
        func make(_ path: String, megabytes: Int) {
            FileManager.default.createFile(atPath: path, contents: nil)
            let h = FileHandle(forWritingAtPath: path)!
            h.write(Data("<?xml version=\"1.0\"?>\n<PubmedArticleSet>\n".utf8))
            var size = 0
            while size < megabytes << 20 {
                h.write(Data(body.utf8))
                size += body.utf8.count
            }
            h.write(Data("</PubmedArticleSet>\n".utf8))
            try? h.close()
        }
        make(dir + "/small.xml", megabytes: 10)
        make(dir + "/large.xml", megabytes: 40)
        // Peak memory as the process itself measured it (VmHWM), recorded in the manifest.
        XCTAssertEqual(try loom(["ingest", "pubmed", dir + "/small.xml", "-o", dir + "/s", "--jobs", "1", "-q"]).status, 0)
        XCTAssertEqual(try loom(["ingest", "pubmed", dir + "/large.xml", "-o", dir + "/l", "--jobs", "1", "-q"]).status, 0)
        let small = try Manifest.read(directory: dir + "/s").peakMemoryMB
        let large = try Manifest.read(directory: dir + "/l").peakMemoryMB
        print("peak memory: 10 MB of XML \(Int(small)) MB, 40 MB of XML \(Int(large)) MB")
        XCTAssertGreaterThan(small, 1)
        XCTAssertLessThan(large - small, 10)
        XCTAssertLessThan(large, 150)
        // The repeated articles all share 400 PMIDs: the last copy of each is kept.
        XCTAssertEqual(try Manifest.read(directory: dir + "/l").records, 400)
    }
}

extension CLITests {
    func testDedupCommandAndPipelineStep() throws {
        let words = (1...60).map { "word\($0)" }
        var lines: [String] = []
        for i in 0..<20 {
            let text = words.shuffled().joined(separator: " ")
            lines.append(JSONValue.object(JSONObject([("id", .int(i)), ("text", .string(text))])).jsonString)
        }
        lines.append(lines[3].replacingOccurrences(of: "\"id\":3", with: "\"id\":99"))
        lines.append("not json")
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        let r = try loom(["dedup", "minhash", dir + "/in.jsonl", "-o", dir + "/out"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("rejected \(dir)/in.jsonl:22:1: not a JSON record"), r.stderr)
        let m = try Manifest.read(directory: dir + "/out")
        XCTAssertEqual(m.records, 20)
        XCTAssertEqual(m.counts["removed_duplicates"]?.intValue, 1)
        XCTAssertTrue(try loom(["dedup", "minhash", "--help"]).stdout.contains("--threshold"))
        let bad = try loom(["dedup", "minhash", dir + "/in.jsonl", "-o", dir + "/o2", "--bands", "7"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr, "error: dedup: give both bands and rows, or neither\n")
        // The same as a pipeline step after another step's output.
        let yaml = """
            name: t
            output: \(dir)/pipe
            steps:
              - dedup: { method: exact, inputs: [\(dir)/in.jsonl] }
              - dedup: { method: minhash, threshold: 0.9 }
            """
        try yaml.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
        let p = try loom(["run", dir + "/p.yaml", "-q"])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(try Manifest.read(directory: dir + "/pipe/01-dedup").records, 20)
        XCTAssertEqual(try Manifest.read(directory: dir + "/pipe/02-dedup").stage, "dedup-minhash")
    }
}

extension CLITests {
    func testIngestPDFCommand() throws {
        let help = try loom(["ingest", "pdf", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--ocr"), help.stdout)
        XCTAssertTrue(help.stdout.contains("--languages"), help.stdout)
        let missing = try loom(["ingest", "pdf", dir, "-o", dir + "/out", "--languages", "eng,qqq"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("install the Debian package tesseract-ocr-qqq"), missing.stderr)
        // A file that is not a PDF is a reject, and the run still succeeds.
        FileManager.default.createFile(atPath: dir + "/notes.pdf", contents: Data("hello\n".utf8))
        let r = try loom(["ingest", "pdf", dir + "/notes.pdf", "-o", dir + "/out2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("rejected \(dir)/notes.pdf: not a PDF (no %PDF- header)"), r.stderr)
    }

    /// `loom filter` in score mode, then `loom stats` on its output; a bad --set names the rule's options.
    func testFilterAndStatsCommands() throws {
        let good = "The trial enrolled adults with asthma and followed them for a year, and the doctors recorded every exacerbation that needed a visit. Exacerbations were less frequent with the new inhaler than with the old one. Side effects were mild and of the same kind in both groups, and the authors conclude that the new inhaler is a good first choice for most of the patients that have the disease."
        let lines = [
            "{\"id\":\"a\",\"text\":\"\(good)\"}", "{\"id\":\"b\",\"text\":\"Too short to keep.\"}",
            "{\"id\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        ]
        try lines.joined(separator: "\n").write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        let f = try loom(["filter", dir + "/in.jsonl", "-o", dir + "/scored", "--mode", "score", "--rules", "gopher-quality,fineweb", "-q"])
        XCTAssertEqual(f.status, 0, f.stderr)
        let s = try loom(["stats", dir + "/scored"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertTrue(s.stdout.contains("3 records: 1 messages, 2 text"), s.stdout)
        XCTAssertTrue(s.stdout.contains("quality.gopher-quality.words"), s.stdout)
        XCTAssertTrue(s.stdout.contains("gopher-quality.min_doc_words: 1"), s.stdout)
        let d = try loom(["filter", dir + "/in.jsonl", "-o", dir + "/dropped", "--rules", "gopher-quality", "--set", "gopher-quality.min_doc_words=20"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let rejects = try String(contentsOfFile: dir + "/dropped/rejects.jsonl", encoding: .utf8)
        XCTAssertTrue(rejects.contains("\"check\":\"min_doc_words\"") && rejects.contains("\"id\":\"b\""), rejects)
        let bad = try loom(["filter", dir + "/in.jsonl", "-o", dir + "/bad", "--set", "gopher-quality.min_words=3"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown option 'min_words' for gopher-quality"), bad.stderr)
        let help = try loom(["filter", "--help"])
        XCTAssertTrue(help.stdout.contains("min_alpha_words_ratio = 0.8"), help.stdout)
    }

    /// A full disk and a read-only output (issue 24): on a 256 KB tmpfs the stage stops with one error line naming
    /// the file and ENOSPC, leaves no manifest and nothing under a final shard name; after the space is freed
    /// (remounted larger) the re-run writes the same bytes as a run on an ordinary disk. A read-only mount stops
    /// with the path and EROFS. Needs root to mount (skipped otherwise); root is not refused by mode bits, so the
    /// unwritable case is a read-only file system rather than EACCES.
    func testFullDiskAndReadOnlyOutput() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to mount a small tmpfs") }
        let mnt = dir + "/small"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        func run(_ argv: [String]) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/" + argv[0])
            p.arguments = Array(argv.dropFirst())
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
        guard run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt]) == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (no privilege in this container)")
        }
        defer { _ = run(["umount", mnt]) }
        // About 1.3 MB of records, every one kept by fineweb.
        let text = (0..<8).map { "Sentence \($0) of a record that fineweb keeps, long enough to be counted as a line." }.joined(separator: " ")
        let lines = (0..<2000).map { "{\"id\":\"r\($0)\",\"text\":\"\(text) Record \($0).\"}" }
        try lines.joined(separator: "\n").write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        let args = ["filter", dir + "/in.jsonl", "--rules", "fineweb", "--jobs", "1", "-q"]
        let ref = try loom(args + ["-o", dir + "/ref"])
        XCTAssertEqual(ref.status, 0, ref.stderr)

        let full = try loom(args + ["-o", mnt + "/out"])
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.stderr.contains(mnt + "/out/part-00000.jsonl"), full.stderr)
        XCTAssertTrue(full.stderr.contains("No space left on device"), full.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/out/manifest.json"))
        let left = (try? FileManager.default.contentsOfDirectory(atPath: mnt + "/out")) ?? []
        XCTAssertFalse(left.contains { $0.hasPrefix("part-") && $0.hasSuffix(".jsonl") }, "\(left)")

        XCTAssertEqual(run(["mount", "-o", "remount,size=64m", mnt]), 0)
        let again = try loom(args + ["-o", mnt + "/out"])
        XCTAssertEqual(again.status, 0, again.stderr)
        for f in ["part-00000.jsonl", "rejects.jsonl"] {
            XCTAssertEqual(FileManager.default.contents(atPath: mnt + "/out/" + f), FileManager.default.contents(atPath: dir + "/ref/" + f), f)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: mnt + "/out/manifest.json"))

        XCTAssertEqual(run(["mount", "-o", "remount,ro", mnt]), 0)
        let ro = try loom(args + ["-o", mnt + "/out2"])
        XCTAssertNotEqual(ro.status, 0)
        XCTAssertTrue(ro.stderr.contains(mnt + "/out2"), ro.stderr)
        XCTAssertTrue(ro.stderr.lowercased().contains("read only") || ro.stderr.contains("Read-only file system"), ro.stderr)
    }
}
