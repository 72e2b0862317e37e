import Foundation
import LoomCore
import LoomDedup
import LoomGenerate
import LoomIngest
import XCTest

@testable import LoomEval

/// A temporary directory per test and the helpers the split and task tests share.
class EvalStageTestCase: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "loom-eval-\(UUID().uuidString)"
        try FS.makeDirectory(dir)
    }

    override func tearDown() { FS.remove(dir) }

    @discardableResult
    func run(_ stage: some Stage, _ name: String, force: Bool = false) throws -> StageResult {
        try StageRunner.run(stage, directory: FS.join(dir, name), options: RunOptions(shardRecords: 1000, force: force, quiet: true))
    }

    func records(_ directory: String) throws -> [JSONValue] {
        var out: [JSONValue] = []
        try StageReader(directory: directory).forEachRecord({ r, _, _ in out.append(r) }, bad: { e, p, l in XCTFail("\(p):\(l): \(e)") })
        return out
    }

    /// Every shard and side file under a stage directory, by relative path (manifests without their times).
    func contents(_ directory: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for p in FS.listRecursive(directory) {
            let rel = String(p.dropFirst(directory.count + 1))
            if rel.hasSuffix(Manifest.fileName) {
                out[rel] = try Manifest.read(directory: (p as NSString).deletingLastPathComponent).deterministicJSON.jsonString
            } else {
                out[rel] = try FS.readText(p)
            }
        }
        return out
    }

    func writeLines(_ lines: [String], _ name: String) throws -> String {
        let path = FS.join(dir, name)
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func rejects(_ directory: String) throws -> [JSONValue] {
        let path = FS.join(directory, "rejects.jsonl")
        guard FS.exists(path) else { return [] }
        return try FS.readText(path).split(separator: "\n").map { try JSONValue.parse(String($0)) }
    }

    /// `$LOOM_SHARED`, else ../shared beside the project; nil when absent.
    var shared: String? {
        if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FS.exists(s) ? s : nil }
        let p = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared").path
        return FS.exists(p) ? p : nil
    }
}

final class SplitTests: EvalStageTestCase {
    let sides = SplitConfig.sides

    func split(_ input: String, _ name: String, _ configure: (inout SplitConfig) -> Void = { _ in }) throws -> StageResult {
        var c = SplitConfig()
        configure(&c)
        return try run(try SplitStage(config: c, input: input), name)
    }

    /// Documents of a few sentences each, with titles so reading-comprehension mining has tasks to find.
    func documents(_ n: Int) -> [JSONValue] {
        (0..<n).map { i in
            let text = (0..<6).map { k in
                "Compound \(i) alters enzyme kinetics in hepatocyte culture number \(k). "
                    + "Researchers measured transporter expression because clearance changed under treatment \(k)."
            }.joined(separator: " ")
            return [
                "id": .string("doc-\(i)"), "text": .string(text), "source": "test",
                "meta": ["title": .string("Hepatocyte kinetics of compound \(i)")],
            ]
        }
    }

    func testChunksAndGeneratedTasksOfADocumentNeverCrossSides() throws {
        let docs = try run(RecordsStage(records: documents(120)), "docs")
        var cc = ChunkConfig()
        cc.maxTokens = 40
        cc.overlap = 8
        let chunks = try run(try ChunkStage(config: cc, input: docs.directory), "chunks")
        XCTAssertGreaterThan(chunks.manifest.records, 240, "several chunks per document")
        let rc = try run(try RCStage(config: RCConfig(), input: chunks.directory), "rc")
        XCTAssertGreaterThan(rc.manifest.records, 100, "reading-comprehension samples were mined")
        // Documents, their chunks and the samples made from the chunks, split together.
        let all = try run(try CombineStage(directories: [docs.directory, chunks.directory, rc.directory]), "all")
        let r = try split(all.directory, "split")

        var sideOfDoc: [String: String] = [:]
        var total = 0
        for side in sides {
            let sub = FS.join(r.directory, side)
            let m = try Manifest.read(directory: sub)
            XCTAssertEqual(m.fingerprint, StageRunner.sideFingerprint(parent: r.manifest.fingerprint, side))
            XCTAssertEqual(r.manifest.counts[side + "_records"]?.intValue, m.records)
            var docsHere = Set<String>()
            for rec in try records(sub) {
                total += 1
                // The document each kind of record came from, read the way its producer wrote it.
                let doc: String
                if let ids = rec["meta"]?["provenance"]?["ids"]?.arrayValue {
                    doc = ids[1].stringValue!  // RC samples: [chunk id, doc id]
                } else {
                    doc = rec["doc_id"]?.stringValue ?? rec["id"]!.stringValue!
                }
                docsHere.insert(doc)
                if let other = sideOfDoc[doc], other != side { XCTFail("\(doc) is on \(other) and \(side)") }
                sideOfDoc[doc] = side
            }
            XCTAssertEqual(r.manifest.counts[side + "_documents"]?.intValue, docsHere.count)
        }
        XCTAssertEqual(total, all.manifest.records, "every record on exactly one side")
        XCTAssertEqual(sideOfDoc.count, 120)
        XCTAssertEqual(Set(sideOfDoc.values).count, 3, "120 documents reach all three sides")
        // A side reads like any stage directory: a generator runs on it.
        let again = try run(try RCStage(config: RCConfig(), input: FS.join(r.directory, "test")), "rc-test")
        XCTAssertEqual(again.manifest.inputs.first?.fingerprint, StageRunner.sideFingerprint(parent: r.manifest.fingerprint, "test"))
    }

    func testRatiosAreCloseToTheRequestedOnes() throws {
        let n = 6000
        let input = try writeLines((0..<n).map { #"{"id": "pmid-\#($0)", "text": "t"}"# }, "docs.jsonl")
        for ratios in [[0.8, 0.1, 0.1], [0.9, 0.0, 0.1]] {
            let r = try split(input, "split-\(ratios[1])") { $0.ratios = ratios }
            for (i, side) in sides.enumerated() {
                let count = r.manifest.counts[side + "_records"]!.intValue!
                XCTAssertEqual(r.manifest.counts[side + "_documents"]?.intValue, count, "one record per document")
                // Each document lands on a side with probability p independently, so the count is Binomial(n, p):
                // standard deviation sqrt(n p (1-p)). Four of them (a false alarm about once in 16,000 runs).
                let p = ratios[i]
                let sd = (Double(n) * p * (1 - p)).squareRoot()
                XCTAssertLessThanOrEqual(abs(Double(count) - Double(n) * p), 4 * sd + 1e-9, "\(side) of \(ratios)")
            }
        }
    }

    func testSeedChangesTheSplitAndTheSameConfigGivesTheSameBytes() throws {
        let input = try writeLines((0..<500).map { #"{"id": "d\#($0)#\#($0 % 3)", "doc_id": "d\#($0)", "x": 1.50}"# }, "in.jsonl")
        let a = try split(input, "a")
        let b = try split(input, "b")
        XCTAssertEqual(try contents(a.directory), try contents(b.directory))
        XCTAssertEqual(a.manifest.fingerprint, b.manifest.fingerprint)
        // Records are copied byte for byte.
        XCTAssertTrue(try FS.readText(FS.join(a.directory, "train/part-00000.jsonl")).contains(#""x": 1.50}"#))
        let c = try split(input, "c") { $0.seed = 2 }
        func sides(_ r: StageResult) throws -> [String: String] {
            var out: [String: String] = [:]
            for s in self.sides { for rec in try records(FS.join(r.directory, s)) { out[rec["doc_id"]!.stringValue!] = s } }
            return out
        }
        let sa = try sides(a)
        let sc = try sides(c)
        let moved = sa.keys.filter { sa[$0] != sc[$0] }.count
        // Two independent 80/10/10 draws agree with probability 0.66: about 170 of 500 documents move.
        XCTAssertGreaterThan(moved, 100)
        XCTAssertNotEqual(a.manifest.fingerprint, c.manifest.fingerprint)
    }

    func testKeysPathsAndRejects() throws {
        let lines = [
            #"{"id": "a", "meta": {"pmid": "1"}}"#,
            #"{"text": "no key at all"}"#,
            #"{"id": "b", "meta": {"pmid": 1}}"#,
            "not json",
            #"{"id": "c", "meta": {"pmid": "2"}}"#,
        ]
        let input = try writeLines(lines, "in.jsonl")
        // Default key: ids; the record without one is rejected with its line.
        let d = try split(input, "default")
        XCTAssertEqual(d.manifest.rejects, 2)
        let rj = try rejects(d.directory)
        XCTAssertEqual(rj.map { $0["line"]?.intValue }, [2, 4])
        XCTAssertEqual(rj.first?["source"]?.stringValue, input)
        XCTAssertTrue(rj.first?["reason"]?.stringValue?.contains("--key") ?? false)
        // --key meta.pmid: "1" and 1 are the same document, on one side.
        let p = try split(input, "pmid") { $0.key = "meta.pmid" }
        var sideOf: [String: String] = [:]
        for s in sides { for r in try records(FS.join(p.directory, s)) { sideOf[r["id"]!.stringValue!] = s } }
        XCTAssertEqual(sideOf.count, 3)
        XCTAssertEqual(sideOf["a"], sideOf["b"])
        // The documents of Loom ids: the part before the first '#'.
        let keys = DocumentKeys(field: nil)
        XCTAssertEqual(keys.keys(try JSONValue.parse(#"{"id": "x#3#rc", "meta": {"provenance": {"ids": ["D#3", "D"]}}}"#)), ["D"])
        XCTAssertEqual(keys.keys(try JSONValue.parse(#"{"id": "e#1", "meta": {"provenance": {"ids": ["E#1#rc", "F#2#rc#evol1"]}}}"#)), ["E", "F"])
        XCTAssertEqual(keys.keys(try JSONValue.parse(#"{"id": "D#2", "doc_id": "D", "meta": {"provenance": {"doc_id": "D"}}}"#)), ["D"])
        XCTAssertThrowsError(try SplitStage(config: { var c = SplitConfig(); c.ratios = [0.8, 0.3, 0.1]; return c }(), input: input))
        XCTAssertThrowsError(try SplitConfig.parseRatios("0.8,x,0.1"))
    }

    func testARecordNamingSeveralDocumentsKeepsThemTogether() throws {
        // A cluster record naming documents a and b: every record of a and of b on one side, for any seed.
        for seed in 1...20 {
            let input = try writeLines(
                [#"{"id": "a#0", "doc_id": "a"}"#, #"{"id": "b#0", "doc_id": "b"}"#,
                 #"{"id": "cluster-1", "meta": {"provenance": {"ids": ["a", "b"]}}}"#], "in-\(seed).jsonl")
            let r = try split(input, "s\(seed)") { $0.seed = seed }
            let nonEmpty = sides.filter { (try? Manifest.read(directory: FS.join(r.directory, $0)).records) ?? 0 > 0 }
            XCTAssertEqual(nonEmpty.count, 1, "seed \(seed)")
        }
    }

    func testSideDirectoriesFollowTheStageContract() throws {
        let input = try writeLines((0..<50).map { #"{"id": "d\#($0)"}"# }, "in.jsonl")
        let first = try split(input, "out")
        XCTAssertFalse(first.skipped)
        XCTAssertTrue(try split(input, "out").skipped)
        // A missing side re-runs the stage, which brings it back.
        FS.remove(FS.join(first.directory, "test"))
        let second = try split(input, "out")
        XCTAssertFalse(second.skipped)
        XCTAssertTrue(FS.exists(FS.join(first.directory, "test/manifest.json")))
        // A side whose shard was cut short re-runs it too; leftovers of a killed run are removed.
        try "".write(toFile: FS.join(first.directory, "train/part-00000.jsonl"), atomically: true, encoding: .utf8)
        try FS.makeDirectory(FS.join(first.directory, "validation.tmp"))
        XCTAssertFalse(try split(input, "out").skipped)
        XCTAssertFalse(FS.exists(FS.join(first.directory, "validation.tmp")))
        XCTAssertEqual(try contents(first.directory), try contents(second.directory))
    }

    func testNearDuplicatesFollowTheirClusterAcrossTheSplit() throws {
        guard let shared else { throw XCTSkip("LOOM_SHARED not present: near-duplicate split test skipped") }
        let corpus = shared + "/corpora/dedup/neardup-20k.jsonl"
        let truthPath = shared + "/corpora/dedup/neardup-20k.truth.tsv"
        guard FS.exists(corpus), FS.exists(truthPath) else { throw XCTSkip("\(corpus) not present: test skipped") }
        // The first 1,500 lines and both sides of the first 700 true pairs: a few thousand lines, many pairs.
        let truth = try FS.readText(truthPath).split(separator: "\n").dropFirst().map { $0.split(separator: "\t") }
            .map { (Int($0[0])!, Int($0[1])!) }
        var wanted = Set(0..<1500)
        for (a, b) in truth.prefix(700) { wanted.insert(a); wanted.insert(b) }
        var lines: [String] = []
        for (i, l) in try FS.readText(corpus).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where wanted.contains(i) { lines.append(String(l)) }
        let input = try writeLines(lines, "neardup.jsonl")

        let dedup = try run(try DedupStage(config: DedupConfig(), paths: [input], jobs: 2), "dedup")
        var cluster: [Int: Int] = [:]
        for l in try FS.readText(FS.join(dedup.directory, "duplicates.jsonl")).split(separator: "\n") {
            let v = try JSONValue.parse(String(l))
            let c = v["cluster"]!.intValue!
            cluster[v["kept"]!.intValue!] = c
            for r in v["removed"]!.arrayValue! { cluster[r["id"]!.intValue!] = c }
        }
        let pairs = truth.filter { wanted.contains($0.0) && wanted.contains($0.1) && cluster[$0.0] != nil && cluster[$0.0] == cluster[$0.1] }
        XCTAssertGreaterThan(pairs.count, 300, "dedup found the planted pairs")

        func sideOf(_ r: StageResult) throws -> [Int: String] {
            var out: [Int: String] = [:]
            for s in sides { for rec in try records(FS.join(r.directory, s)) { out[rec["id"]!.intValue!] = s } }
            return out
        }
        let with = try sideOf(try split(input, "with") { $0.duplicates = FS.join(dedup.directory, "duplicates.jsonl") })
        XCTAssertEqual(with.count, lines.count)
        for (a, b) in pairs { XCTAssertEqual(with[a], with[b], "pair \(a), \(b) clustered by dedup but split apart") }
        // Without the duplicates file the same pairs do cross sides: the option is what keeps them together.
        let without = try sideOf(try split(input, "without"))
        XCTAssertGreaterThan(pairs.filter { without[$0.0] != without[$0.1] }.count, 20)
        // A removed document goes where its kept one goes when the kept one is split alone (dedup's output).
        let kept = try sideOf(try split(dedup.directory, "kept"))
        for (d, s) in kept { XCTAssertEqual(with[d], s) }
    }
}
