import Foundation
import XCTest

@testable import LoomCore
@testable import LoomIngest

final class ChunkerTests: XCTestCase {
    func sentences(_ s: String) -> [String] { SentenceSplitter.split(s).map { String(s[$0]) } }

    func testSentenceBoundaries() {
        XCTAssertEqual(
            sentences("Cells were grown (Fig. 2). Results differed, e.g. in mice. Smith J. et al. agreed! Did it? Yes."),
            ["Cells were grown (Fig. 2).", "Results differed, e.g. in mice.", "Smith J. et al. agreed!", "Did it?", "Yes."])
        XCTAssertEqual(sentences("pH was 7.4 and 3.5 mg/ml. \"Quoted.\" Next"), ["pH was 7.4 and 3.5 mg/ml.", "\"Quoted.\"", "Next"])
        XCTAssertEqual(sentences("Title line\n\nBACKGROUND: One. Two."), ["Title line", "BACKGROUND: One.", "Two."])
        XCTAssertEqual(sentences("보험 약관입니다。다음 문장！"), ["보험 약관입니다。", "다음 문장！"])
        XCTAssertEqual(sentences("lower case after period. continues here."), ["lower case after period. continues here."])
        XCTAssertEqual(sentences("   "), [])
    }

    func testChunksRespectMaxTokensAndOverlapWholeSentences() {
        // Ten sentences of five words each.
        let text = (1...10).map { "Sentence number \($0) has words." }.joined(separator: " ")
        let chunks = Chunker(maxTokens: 12, overlap: 5).chunks(text)
        for c in chunks { XCTAssertLessThanOrEqual(c.tokens, 12) }
        XCTAssertEqual(chunks.first?.text, "Sentence number 1 has words. Sentence number 2 has words.")
        XCTAssertEqual(chunks[1].text, "Sentence number 2 has words. Sentence number 3 has words.")
        XCTAssertEqual(chunks.last?.text, "Sentence number 9 has words. Sentence number 10 has words.")
        // Offsets are in Unicode scalars and point at the chunk's text.
        let scalars = Array(text.unicodeScalars)
        for c in chunks {
            XCTAssertEqual(String(String.UnicodeScalarView(scalars[c.start..<c.end])), c.text)
        }
        // Without overlap, chunks partition the sentences.
        let plain = Chunker(maxTokens: 12, overlap: 0).chunks(text)
        XCTAssertEqual(plain.count, 5)
        XCTAssertEqual(plain.map(\.tokens).reduce(0, +), 50)
    }

    func testOverlongSentenceIsCutIntoWordWindows() {
        let long = (1...25).map { "w\($0)" }.joined(separator: " ") + "."
        let chunks = Chunker(maxTokens: 10, overlap: 3).chunks("Short one. " + long + " Tail here.")
        XCTAssertTrue(chunks.allSatisfy { $0.tokens <= 10 })
        let all = chunks.map(\.text).joined(separator: " ")
        for i in 1...25 { XCTAssertTrue(all.contains("w\(i)"), "w\(i) lost") }
        XCTAssertTrue(all.contains("Tail here."))
    }

    func testUnicodeOffsets() {
        let text = "한국어 문장입니다. 🙂 Emoji sentence here. Last one."
        let chunks = Chunker(maxTokens: 4, overlap: 0).chunks(text)
        let scalars = Array(text.unicodeScalars)
        for c in chunks { XCTAssertEqual(String(String.UnicodeScalarView(scalars[c.start..<c.end])), c.text) }
    }

    func testChunkStageKeepsMetaAndProvenanceAndRejectsBadRecords() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = (1...3).map {
            PubMedXML.article(pmid: $0, title: "Title \($0).", abstract: [(nil, (1...30).map { "Sentence \($0) of the abstract." }.joined(separator: " "))])
        }
        write(PubMedXML.file(body.joined()), to: dir + "/f.xml")
        _ = try StageRunner.run(
            try PubMedIngestStage(config: PubMedIngestConfig(paths: [dir + "/f.xml"]), jobs: 1), directory: dir + "/docs",
            options: RunOptions(quiet: true))
        // Add a broken line and a record without text to the documents, as a damaged upstream would.
        let part = dir + "/docs/part-00000.jsonl"
        var text = try String(contentsOfFile: part, encoding: .utf8)
        text += "{not json\n{\"id\":\"x\"}\n"
        write(text, to: part)
        var manifest = try Manifest.read(directory: dir + "/docs")
        manifest.shards[0].bytes = text.utf8.count
        try manifest.write(directory: dir + "/docs")

        var c = ChunkConfig()
        c.maxTokens = 40
        c.overlap = 8
        let r = try StageRunner.run(try ChunkStage(config: c, input: dir + "/docs"), directory: dir + "/chunks", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.counts["documents"], 3)
        XCTAssertEqual(r.manifest.rejects, 2)
        let chunks = try records(dir + "/chunks")
        XCTAssertGreaterThan(chunks.count, 6)
        let first = chunks[0]
        XCTAssertEqual(first["id"], "pubmed:1#0")
        XCTAssertEqual(first["doc_id"], "pubmed:1")
        XCTAssertEqual(first["index"], 0)
        XCTAssertEqual(first["meta"]?["pmid"], "1")
        XCTAssertEqual(first["meta"]?["provenance"]?["doc_id"], "pubmed:1")
        XCTAssertEqual(first["meta"]?["provenance"]?["source"]?.stringValue, dir + "/f.xml")
        XCTAssertEqual(first["meta"]?["provenance"]?["counter"], "words")
        XCTAssertTrue(chunks.allSatisfy { ($0["meta"]?["provenance"]?["tokens"]?.intValue ?? 99) <= 40 })
        let rej = try rejects(dir + "/chunks")
        XCTAssertEqual(rej[0]["line"], 4)
        XCTAssertTrue(rej[0]["reason"]?.stringValue?.hasPrefix("not a JSON record") ?? false)
        XCTAssertThrowsError(try ChunkStage(config: { var c = ChunkConfig(); c.overlap = 600; return c }(), input: dir))
    }
}
