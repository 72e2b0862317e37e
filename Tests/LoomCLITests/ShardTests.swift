import Foundation
import XCTest

@testable import LoomCore

/// `--shard i/N` and `loom merge-manifests`: N shard runs joined in shard order hold exactly the records of one run.
final class ShardTests: XCTestCase {
    var dir = ""
    var cli = LoomRunner()

    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-shard-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        cli.dir = dir
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    @discardableResult
    func loom(_ args: [String], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws
        -> CLITests.Result
    {
        let r = try cli.loom(args)
        if status < 0 {
            XCTAssertNotEqual(r.status, 0, "loom \(args.joined(separator: " ")) should fail", file: file, line: line)
        } else {
            XCTAssertEqual(r.status, status, "loom \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        }
        return r
    }

    /// All record lines of a stage directory, in manifest order.
    func records(_ d: String) throws -> [String] {
        let m = try Manifest.read(directory: d)
        var out: [String] = []
        for s in m.shards {
            let text = try String(contentsOfFile: d + "/" + s.file, encoding: .utf8)
            out += text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        }
        return out
    }

    /// Runs `args + --shard i/n -o base-i` for every i, joins them, and checks the join against one full run.
    func checkShards(_ args: [String], n: Int, name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try loom(args + ["-o", "\(dir)/\(name)-full", "-q"], file: file, line: line)
        var parts: [String] = []
        for i in 0..<n {
            let d = "\(dir)/\(name)-\(i)"
            try loom(args + ["--shard", "\(i)/\(n)", "-o", d, "-q"], file: file, line: line)
            parts.append(d)
        }
        try loom(["merge-manifests"] + parts.reversed() + ["-o", "\(dir)/\(name)-joined", "-q"], file: file, line: line)
        let full = try records("\(dir)/\(name)-full")
        let joined = try records("\(dir)/\(name)-joined")
        XCTAssertFalse(full.isEmpty, file: file, line: line)
        XCTAssertEqual(joined, full, "\(name): \(n) shards joined differ from one run", file: file, line: line)
        // The joined directory is, to the next stage, the same input as one run's.
        XCTAssertEqual(
            try Manifest.read(directory: "\(dir)/\(name)-joined").fingerprint,
            try Manifest.read(directory: "\(dir)/\(name)-full").fingerprint, file: file, line: line)
        let nonEmpty = try parts.filter { !(try records($0)).isEmpty }.count
        if n > 1 { XCTAssertGreaterThan(nonEmpty, 1, "\(name): the shards should split the records", file: file, line: line) }
    }

    func article(_ pmid: Int, version: Int = 1, title: String) -> String {
        let abstract = (1...6).map { "Result \($0) of article \(pmid) concerns gene G\(pmid % 13) in cell line \($0)." }
            .joined(separator: " ")
        return """
            <PubmedArticle><MedlineCitation><PMID Version="\(version)">\(pmid)</PMID><Article>
            <ArticleTitle>\(title)</ArticleTitle>
            <Abstract><AbstractText>\(abstract)</AbstractText></Abstract><Language>eng</Language>
            </Article></MedlineCitation></PubmedArticle>

            """
    }

    func writeXML(_ path: String, _ body: String) {
        let s = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PubmedArticleSet>\n" + body + "</PubmedArticleSet>\n"
        FileManager.default.createFile(atPath: path, contents: Data(s.utf8))
    }

    /// Two baseline files (one gzip-compressed) and an update file that replaces and deletes records of both:
    /// for 1 to 5 shards the joined output equals one run, replacements and deletions across shards included.
    func testShardedPubMedIngestEqualsOneRun() throws {
        let a = "\(dir)/base-0001.xml"
        let b = "\(dir)/base-0002.xml"
        let u = "\(dir)/update-0003.xml"
        writeXML(a, (1...60).map { article($0, title: "Baseline article \($0).") }.joined())
        writeXML(b, (61...100).map { article($0, title: "Second baseline article \($0).") }.joined())
        try gzipFile(b)
        writeXML(
            u,
            article(7, title: "Article 7, corrected.") + article(88, title: "Article 88, corrected.")
                + "<DeleteCitation><PMID Version=\"1\">30</PMID><PMID Version=\"1\">95</PMID></DeleteCitation>\n"
                + article(101, title: "A new article."))
        let args = ["ingest", "pubmed", a, b + ".gz", u]
        for n in [1, 2, 3, 5] { try checkShards(args, n: n, name: "pubmed\(n)") }
        let full = try records("\(dir)/pubmed3-full")
        XCTAssertEqual(full.count, 100 - 2 + 1)
        XCTAssertTrue(full.contains { $0.contains("Article 7, corrected.") })
        XCTAssertFalse(full.contains { $0.contains("\"pubmed:30\"") })
        XCTAssertEqual(Set(full).count, full.count)
    }

    /// The project's PubMed sample (examples/pubmed: a baseline and an update file) in 4 shards.
    func testExamplePubMedSampleInFourShards() throws {
        let e = ShardTests.packageRoot + "/examples/pubmed"
        let files = try FileManager.default.contentsOfDirectory(atPath: e).filter { $0.hasSuffix(".xml") }.sorted()
        guard files.count >= 2 else { throw XCTSkip("examples/pubmed not present") }
        try checkShards(["ingest", "pubmed"] + files.map { e + "/" + $0 }, n: 4, name: "sample")
    }

    /// The shared corpus's PubMed baseline file (30,000 articles) in 4 shards (about 15 s in a debug build).
    func testSharedPubMedBaselineInFourShards() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present") }
        try checkShards(["ingest", "pubmed", shared + "/corpora/pubmed/pubmed20n0014.xml.gz"], n: 4, name: "baseline")
    }

    func testShardedChunkAndReadingComprehensionEqualOneRun() throws {
        let x = "\(dir)/docs.xml"
        writeXML(x, (1...40).map { article($0, title: "Article \($0) on gene G\($0 % 13).") }.joined())
        try loom(["ingest", "pubmed", x, "-o", "\(dir)/docs", "-q"])
        try checkShards(["chunk", "\(dir)/docs", "--max-tokens", "24", "--overlap", "6"], n: 3, name: "chunk")
        try checkShards(
            ["generate", "rc", "\(dir)/chunk-full", "--templates", ShardTests.packageRoot + "/templates"], n: 4,
            name: "rc")
    }

    /// embed --shard: the hashing embedder's document frequencies come from the whole input, so the joined
    /// vectors.bin is byte for byte one run's.
    func testShardedEmbedEqualsOneRunVectorsIncluded() throws {
        let x = "\(dir)/docs.xml"
        writeXML(x, (1...30).map { article($0, title: "Article \($0) on gene G\($0 % 13).") }.joined())
        try loom(["ingest", "pubmed", x, "-o", "\(dir)/docs", "-q"])
        try checkShards(["embed", "\(dir)/docs", "--dim", "64"], n: 4, name: "embed")
        let full = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/embed-full/vectors.bin"))
        let joined = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/embed-joined/vectors.bin"))
        XCTAssertEqual(joined, full)
    }

    /// ingest pdf --shard: by file (the example PDFs, text layer only so no OCR runs).
    func testShardedPDFIngestEqualsOneRun() throws {
        let src = ShardTests.packageRoot + "/examples/pdf/home-insurance-terms.pdf"
        guard FileManager.default.fileExists(atPath: src) else { throw XCTSkip("examples/pdf not present") }
        let pdfDir = "\(dir)/pdfs"
        try FileManager.default.createDirectory(atPath: pdfDir, withIntermediateDirectories: true)
        for k in 0..<4 { try FileManager.default.copyItem(atPath: src, toPath: "\(pdfDir)/policy-\(k).pdf") }
        try checkShards(["ingest", "pdf", pdfDir, "--ocr", "never"], n: 3, name: "pdf")
        XCTAssertEqual(try records("\(dir)/pdf-joined").count, 4)
    }

    func testShardedVerilogIngestEqualsOneRun() throws {
        let v = "\(dir)/rtl"
        try FileManager.default.createDirectory(atPath: v, withIntermediateDirectories: true)
        for k in 0..<5 {
            let text = """
                module m\(k)(input clk, input [\(k + 1):0] a, output reg [\(k + 1):0] q);
                  always @(posedge clk) q <= a + \(k);
                endmodule
                module n\(k)(input x, output y);
                  assign y = ~x;
                endmodule

                """
            FileManager.default.createFile(atPath: "\(v)/f\(k).v", contents: Data(text.utf8))
        }
        try checkShards(["ingest", "verilog", v], n: 3, name: "verilog")
    }

    func testMergeManifestsRefusesIncompleteOrMixedShards() throws {
        let x = "\(dir)/docs.xml"
        writeXML(x, (1...12).map { article($0, title: "Article \($0).") }.joined())
        try loom(["ingest", "pubmed", x, "-o", "\(dir)/docs", "-q"])
        for i in 0..<3 { try loom(["chunk", "\(dir)/docs", "--shard", "\(i)/3", "-o", "\(dir)/c\(i)", "-q"]) }
        var r = try loom(["merge-manifests", "\(dir)/c0", "\(dir)/c2"], expect: 1)
        XCTAssertTrue(r.stderr.contains("1 of 3 shards missing: 1/3"), r.stderr)
        r = try loom(["merge-manifests", "\(dir)/c0", "\(dir)/c1", "\(dir)/c1", "\(dir)/c2"], expect: 1)
        XCTAssertTrue(r.stderr.contains("given twice"), r.stderr)
        try loom(["chunk", "\(dir)/docs", "--shard", "1/3", "--max-tokens", "10", "--overlap", "2", "-o", "\(dir)/c1b", "-q"])
        r = try loom(["merge-manifests", "\(dir)/c0", "\(dir)/c1b", "\(dir)/c2"], expect: 1)
        XCTAssertTrue(r.stderr.contains("other options"), r.stderr)
        r = try loom(["merge-manifests", "\(dir)/docs"], expect: 1)
        XCTAssertTrue(r.stderr.contains("not run with --shard"), r.stderr)
        r = try loom(["merge-manifests", "\(dir)/c0", "\(dir)/c1", "\(dir)/c2"])
        XCTAssertTrue(r.stdout.contains("all 3 shards complete"), r.stdout)
        for bad in ["3/3", "1/0", "a/4", "2"] {
            r = try loom(["chunk", "\(dir)/docs", "--shard", bad, "-o", "\(dir)/bad"], expect: 1)
            XCTAssertTrue(r.stderr.contains("--shard '\(bad)'"), r.stderr)
        }
    }

    /// The pieces the Spark driver uses, without Spark: band keys out, candidate pairs verified, removal lists in.
    /// Grouping the band keys and taking components here, as the driver does, keeps what `dedup minhash` keeps.
    func testBandKeysVerifyPairsAndApplyRemovedKeepWhatMinHashKeeps() throws {
        var lines: [String] = []
        for i in 0..<60 {
            let base = (0..<40).map { "w\((i % 20) * 7 + $0 * 3)" }
            var words = base
            if i >= 20 { words[5 + i % 7] = "edit\(i)" }  // near-duplicates of records 0..<20
            lines.append("{\"id\":\"r\(i)\",\"text\":\"\(words.joined(separator: " "))\"}")
        }
        let input = "\(dir)/in.jsonl"
        FileManager.default.createFile(atPath: input, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        try loom(["dedup", "minhash", input, "-o", "\(dir)/single", "-q", "--threshold", "0.7"])
        let n = 3
        var offsets: [Int] = []
        var keys: [String: [Int]] = [:]
        var total = 0
        for i in 0..<n {
            try loom(["dedup", "minhash-signatures", input, "--shard", "\(i)/\(n)", "-o", "\(dir)/sig\(i)", "-q", "--threshold", "0.7"])
            offsets.append(total)
            let out = try loom(["dedup", "band-keys", "\(dir)/sig\(i)"]).stdout
            var docs = Set<Int>()
            for l in out.split(separator: "\n") {
                let f = l.split(separator: " ")
                keys[f[0] + " " + f[1], default: []].append(total + Int(f[2])!)
                docs.insert(Int(f[2])!)
            }
            total += try Manifest.read(directory: "\(dir)/sig\(i)").counts["documents"]!.intValue!
        }
        XCTAssertEqual(total, 60)
        var pairs = Set<String>()
        for (_, d) in keys where d.count > 1 {
            let s = d.sorted()
            for x in 0..<s.count { for y in (x + 1)..<s.count { pairs.insert("\(s[x]) \(s[y])") } }
        }
        let stdin = "\(dir)/pairs.txt"
        FileManager.default.createFile(atPath: stdin, contents: Data((pairs.sorted().joined(separator: "\n") + "\n").utf8))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.loom)
        p.arguments = ["dedup", "verify-pairs"] + (0..<n).map { "\(dir)/sig\($0)" }
        p.standardInput = FileHandle(forReadingAtPath: stdin)
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let confirmed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        // Components by union-find (the driver does this with label propagation in Spark).
        var parent = Array(0..<total)
        func find(_ x: Int) -> Int { parent[x] == x ? x : find(parent[x]) }
        for l in confirmed.split(separator: "\n") {
            let f = l.split(separator: " ")
            XCTAssertGreaterThanOrEqual(Double(f[2])!, 0.7)
            let (a, b) = (find(Int(f[0])!), find(Int(f[1])!))
            parent[max(a, b)] = min(a, b)
        }
        var joined: [String] = []
        for i in 0..<n {
            let count = (i + 1 < n ? offsets[i + 1] : total) - offsets[i]
            let removed = (0..<count).filter { find(offsets[i] + $0) != offsets[i] + $0 }.map(String.init)
            let list = "\(dir)/removed\(i).txt"
            FileManager.default.createFile(atPath: list, contents: Data(removed.map { $0 + "\n" }.joined().utf8))
            try loom(["dedup", "apply", "\(dir)/sig\(i)", "--removed", list, "-o", "\(dir)/kept\(i)", "-q"])
            joined.append("\(dir)/kept\(i)")
        }
        try loom(["merge-manifests"] + joined + ["-o", "\(dir)/kept", "-q"])
        let single = try records("\(dir)/single")
        XCTAssertLessThan(single.count, 60)
        XCTAssertEqual(try records("\(dir)/kept"), single)
        let r = try loom(["dedup", "apply", "\(dir)/sig0", "-o", "\(dir)/x"], expect: -1)
        XCTAssertTrue(r.stderr.contains("--clusters") && r.stderr.contains("--removed"), r.stderr)
    }
}

/// gzip -k (tests only).
func gzipFile(_ path: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-f", "-k", path]
    try p.run()
    p.waitUntilExit()
}

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] {
        return FileManager.default.fileExists(atPath: s) ? s : nil
    }
    let p = URL(fileURLWithPath: ShardTests.packageRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

/// Runs the `loom` binary with stdout and stderr going to files in `dir` (as CLITests does).
struct LoomRunner {
    var dir = NSTemporaryDirectory()

    func loom(_ args: [String]) throws -> CLITests.Result {
        guard FileManager.default.isExecutableFile(atPath: CLITests.loom) else {
            throw XCTSkip("\(CLITests.loom) not built: run 'swift build' first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.loom)
        p.arguments = args
        let tag = UUID().uuidString.prefix(8)
        let outPath = dir + "/.stdout-\(tag)"
        let errPath = dir + "/.stderr-\(tag)"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: outPath)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        p.waitUntilExit()
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        return CLITests.Result(
            status: p.terminationStatus, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}
