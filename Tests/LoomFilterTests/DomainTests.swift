import Foundation
import LoomCore
import LoomIngest
import LoomPack
import LoomVerilog
import XCTest

@testable import LoomFilter

/// The domain rule on real text (the shared corpora): seeded with 50 PubMed abstracts, it must drop at least 90% of
/// 1,000 off-domain chunks (descriptions of real Verilog modules, the example insurance policies and chunks of the PDF
/// corpus's manuals) and keep at
/// least 95% of PubMed abstracts held apart from the seeds, with its default threshold (from the seeds).
final class DomainTests: XCTestCase {
    /// 50 seed abstracts, 500 held-apart abstracts, 1,000 off-domain texts (the first `verilog` of them Verilog).
    static func corpus(_ shared: String, _ dir: String) throws -> (seeds: [String], held: [String], off: [String], verilog: Int) {
        // PubMed: abstracts of at least 80 words from the near-duplicate corpus's originals (real abstracts).
        let lines = try String(contentsOfFile: shared + "/corpora/dedup/neardup-20k.jsonl", encoding: .utf8)
            .split(separator: "\n").prefix(4000)
        var abstracts: [String] = []
        var seen = Set<String>()
        for l in lines {
            guard let t = try JSONValue.parse(String(l))["text"]?.stringValue, t.split(separator: " ").count >= 80 else { continue }
            let key = String(t.prefix(60))
            if seen.insert(key).inserted { abstracts.append(t) }
        }
        let seeds = Array(abstracts.prefix(50))
        let held = Array(abstracts.dropFirst(50).prefix(500))
        XCTAssertEqual(held.count, 500)

        // Off-domain: Verilog module descriptions, then chunks of the PDF manuals, 1,000 in all.
        var off: [String] = []
        let templates = try DescriptionTemplates(directory: projectRoot + "/templates")
        let vdir = shared + "/corpora/verilog/dev"
        let files = (FileManager.default.enumerator(atPath: vdir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".v") }.sorted()
        for f in files {
            let r = try VerilogParser.parse(file: vdir + "/" + f)
            for (i, m) in r.source.modules.enumerated() {
                let d = Describer.describe(m, templates: templates, seed: UInt64(i + 1))
                if d.text.split(separator: " ").count >= 20 { off.append(d.text) }
            }
        }
        let verilogCount = off.count
        XCTAssertGreaterThan(verilogCount, 50)
        // The project's example insurance policy PDFs (text layers), then the shared corpus's manuals.
        var policy = PDFIngestConfig(paths: [projectRoot + "/examples/pdf"])
        policy.ocr = "never"
        _ = try StageRunner.run(try PDFIngestStage(config: policy, jobs: 2), directory: dir + "/policy", options: RunOptions(quiet: true))
        for doc in try stageRecords(dir + "/policy") {
            for c in Chunker(maxTokens: 60, overlap: 0).chunks(doc["text"]!.stringValue!) where c.tokens >= 30 { off.append(c.text) }
        }
        var pdf = PDFIngestConfig(paths: [shared + "/corpora/pdf/dev"])
        pdf.ocr = "never"
        _ = try StageRunner.run(try PDFIngestStage(config: pdf, jobs: 2), directory: dir + "/pdf", options: RunOptions(quiet: true))
        let chunker = Chunker(maxTokens: 150, overlap: 0)
        var pdfChunks: [String] = []
        for doc in try stageRecords(dir + "/pdf") {
            for c in chunker.chunks(doc["text"]!.stringValue!) where c.tokens >= 40 { pdfChunks.append(c.text) }
        }
        // Spread over the manuals: every k-th chunk.
        let need = 1000 - off.count
        let step = max(1, pdfChunks.count / need)
        off += stride(from: 0, to: pdfChunks.count, by: step).map { pdfChunks[$0] }.prefix(need)
        XCTAssertEqual(off.count, 1000)
        return (seeds, held, off, verilogCount)
    }

    func testDomainRuleSeparatesPubMedFromOffDomainText() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("no shared corpora (LOOM_SHARED)") }
        let dir = tempDir("domain")
        let (seeds, held, off, verilogCount) = try DomainTests.corpus(shared, dir)
        try writeJSONL(seeds.enumerated().map { ["id": .string("seed\($0.offset)"), "text": .string($0.element)] }, dir + "/seeds.jsonl")
        var records: [JSONValue] = held.enumerated().map { ["id": .string("pubmed\($0.offset)"), "text": .string($0.element)] }
        records += off.enumerated().map { ["id": .string("off\($0.offset)"), "text": .string($0.element)] }
        try writeJSONL(records, dir + "/in.jsonl")
        var c = FilterConfig()
        c.rules = ["domain"]
        c.options["domain"] = ["seeds": .string(dir + "/seeds.jsonl")]
        let stage = try FilterStage(
            config: c, input: dir + "/in.jsonl", embedder: try PackTextEmbedder.factory(embedder: "hashing", model: nil, dim: 1024), jobs: 2)
        _ = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        let kept = Set(try stageRecords(dir + "/out").compactMap { $0["id"]?.stringValue })
        let keptPubMed = kept.filter { $0.hasPrefix("pubmed") }.count
        let keptOff = kept.filter { $0.hasPrefix("off") }.count
        let keptVerilog = kept.filter { $0.hasPrefix("off") && Int($0.dropFirst(3))! < verilogCount }.count
        let manifest = try JSONValue.parse(String(contentsOfFile: dir + "/out/manifest.json", encoding: .utf8))
        let info = "threshold \(manifest["counts"]?["domain"]?["threshold"]?.doubleValue ?? -1); PubMed kept \(keptPubMed)/500, off-domain kept \(keptOff)/1000 (Verilog \(keptVerilog)/\(verilogCount))"
        print(info)
        XCTAssertGreaterThanOrEqual(keptPubMed, 475, info)
        XCTAssertLessThanOrEqual(keptOff, 100, info)
        // Every drop names the rule and its similarity.
        let rejects = try readRecords(dir + "/out/rejects.jsonl")
        XCTAssertEqual(rejects.count, 1500 - kept.count)
        XCTAssertTrue(rejects.allSatisfy { $0["rule"]?.stringValue == "domain" && $0["value"]?.doubleValue != nil })
    }
}
