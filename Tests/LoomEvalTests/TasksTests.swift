import Foundation
import LoomCore
import LoomIngest
import XCTest

@testable import LoomEval

final class TasksTests: EvalStageTestCase {
    func tasks(_ kind: String, _ input: String, _ name: String, _ configure: (inout TasksConfig) -> Void = { _ in }) throws
        -> StageResult
    {
        var c = TasksConfig(kind: kind)
        configure(&c)
        return try run(try TasksStage(config: c, input: input), name)
    }

    func article(_ pmid: Int, _ sections: [(attributes: String, text: String)]) -> String {
        let abstract = sections.isEmpty ? "" : "<Abstract>"
            + sections.map { "<AbstractText\($0.attributes)>\($0.text)</AbstractText>" }.joined() + "</Abstract>"
        return """
            <PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">\(pmid)</PMID>
            <Article PubModel="Print"><Journal><Title>Journal of Tests</Title></Journal>
            <ArticleTitle>Trial number \(pmid).</ArticleTitle>\(abstract)<Language>eng</Language></Article>
            </MedlineCitation></PubmedArticle>

            """
    }

    func testRCTItemsFromAnIngestedStructuredAbstract() throws {
        let xml = """
            <?xml version="1.0" encoding="utf-8"?>
            <PubmedArticleSet>
            \(article(101, [
                (#" Label="BACKGROUND" NlmCategory="BACKGROUND""#, "Asthma is common. Its treatment varies."),
                (#" Label="AIMS" NlmCategory="OBJECTIVE""#, "To compare two inhalers."),
                (#" Label="MATERIALS AND METHODS""#, "We enrolled 40 adults (e.g. smokers). They were randomised."),
                (#" Label="FINDINGS""#, "Symptoms fell by 30%."),
                (#" Label="RESULTS AND CONCLUSIONS""#, "Ambiguous label, skipped."),
                (#" Label="FUNDING" NlmCategory="UNASSIGNED""#, "None."),
                (#" Label="INTERPRETATION" NlmCategory="CONCLUSIONS""#, "Inhaler B is better. Larger trials should follow."),
            ]))\(article(102, [(" ", "An unstructured abstract. It has no sections.")]))
            </PubmedArticleSet>
            """
        let path = try writeLines([xml], "trial.xml")
        let ingest = try run(try PubMedIngestStage(config: PubMedIngestConfig(paths: [path]), jobs: 1), "ingest")
        XCTAssertEqual(ingest.manifest.records, 2)
        let r = try tasks("rct", ingest.directory, "rct")
        let items = try records(r.directory).map { try ChoiceItem.from($0, fallbackID: "?")! }
        let expected: [(String, String)] = [
            ("Asthma is common.", "background"), ("Its treatment varies.", "background"),
            ("To compare two inhalers.", "objective"),
            ("We enrolled 40 adults (e.g. smokers).", "methods"), ("They were randomised.", "methods"),
            ("Symptoms fell by 30%.", "results"),
            ("Inhaler B is better.", "conclusions"), ("Larger trials should follow.", "conclusions"),
        ]
        XCTAssertEqual(items.count, expected.count)
        for (item, (sentence, label)) in zip(items, expected) {
            XCTAssertEqual(item.context, "Abstract sentence: \(sentence)\nSection:")
            XCTAssertEqual(item.choices, ["background", "objective", "methods", "results", "conclusions"])
            XCTAssertEqual(item.choices[item.gold], label, sentence)
            XCTAssertEqual(item.docId, "pubmed:101")
            XCTAssertEqual(item.task, "pubmed-rct")
        }
        XCTAssertEqual(Set(items.map(\.id)).count, items.count, "ids are unique")
        let first = try records(r.directory)[0]
        XCTAssertEqual(first["meta"]?["provenance"]?["ids"], .array(["pubmed:101"]))
        XCTAssertEqual(first["meta"]?["provenance"]?["generator"], "tasks-rct")
        XCTAssertEqual(r.manifest.counts["documents_without_sections"]?.intValue, 1)
        XCTAssertEqual(r.manifest.counts["sections_skipped"]?.intValue, 2)
        XCTAssertEqual(r.manifest.counts["items_methods"]?.intValue, 2)
        XCTAssertEqual(r.manifest.rejects, 0)
        // Same input and config: the same bytes.
        let again = try tasks("rct", ingest.directory, "rct-again")
        XCTAssertEqual(try contents(r.directory), try contents(again.directory))
        XCTAssertEqual(try tasks("rct", ingest.directory, "rct-3") { $0.maxItems = 3 }.manifest.records, 3)
    }

    func chunkRecords() -> [JSONValue] {
        let topics = [
            "Hepatocytes metabolise warfarin through cytochrome enzymes. Clinicians monitor bleeding carefully.",
            "Bronchial epithelium responds to allergen exposure. Eosinophils infiltrate airway tissue quickly.",
            "Cardiac fibroblasts deposit collagen after infarction. Scarring stiffens ventricular walls permanently.",
            "Retinal ganglion neurons degenerate in glaucoma. Pressure lowering slows optic nerve damage.",
            "Pancreatic islets secrete insulin under glucose stimulation. Beta cells falter during chronic inflammation.",
        ]
        return (0..<40).map { i in
            [
                "id": .string("doc-\(i / 2)#\(i % 2)"), "doc_id": .string("doc-\(i / 2)"), "index": .int(i % 2),
                "text": .string("Record \(i) opens here. " + topics[i % topics.count]),
            ]
        }
    }

    func testClozeItemsOnChunks() throws {
        let chunks = try run(RecordsStage(records: chunkRecords()), "chunks")
        let r = try tasks("cloze", chunks.directory, "cloze")
        let input = Dictionary(uniqueKeysWithValues: try records(chunks.directory).map { ($0["id"]!.stringValue!, $0) })
        let items = try records(r.directory)
        XCTAssertEqual(items.count, 40)
        var golds = Set<Int>()
        for rec in items {
            let item = try ChoiceItem.from(rec, fallbackID: "?")!
            let source = input[String(item.id.dropLast("#cloze".count))]!
            let text = source["text"]!.stringValue!
            XCTAssertEqual(item.docId, source["doc_id"]?.stringValue)
            XCTAssertEqual(item.task, "cloze")
            XCTAssertEqual(item.choices.count, 4)
            XCTAssertEqual(Set(item.choices.map { $0.lowercased() }).count, 4, "distinct choices")
            let answer = item.choices[item.gold]
            // The context and the answer are the text; the answer is a content word of the last sentence.
            XCTAssertTrue(text.hasPrefix(item.context + " " + answer), "\(item.context) + \(answer)")
            let lastSentence = String(text[SentenceSplitter.split(text).last!])
            XCTAssertTrue(lastSentence.contains(answer))
            XCTAssertGreaterThanOrEqual(answer.count, 5)
            XCTAssertTrue(answer.allSatisfy(\.isLetter))
            XCTAssertFalse(StopWords.english.contains(answer.lowercased()))
            let words = Set(TasksStage.words(text).map { $0.word.lowercased() })
            for (k, d) in item.choices.enumerated() where k != item.gold {
                XCTAssertFalse(words.contains(d.lowercased()), "distractor \(d) is from another record")
                XCTAssertLessThanOrEqual(abs(d.count - answer.count), 3, "\(d) vs \(answer): similar length")
                XCTAssertEqual(d.first!.isUppercase, answer.first!.isUppercase, "case follows the answer")
            }
            golds.insert(item.gold)
            XCTAssertEqual(rec["meta"]?["provenance"]?["ids"], .array([.string(source["id"]!.stringValue!), .string(item.docId!)]))
        }
        XCTAssertGreaterThan(golds.count, 2, "the answer's position is shuffled")
        // Deterministic; another seed picks other words or positions.
        XCTAssertEqual(try contents(r.directory), try contents(try tasks("cloze", chunks.directory, "again").directory))
        let other = try records(try tasks("cloze", chunks.directory, "seed2") { $0.seed = 2 }.directory)
        XCTAssertNotEqual(other.map(\.jsonString), items.map(\.jsonString))
        XCTAssertEqual(try tasks("cloze", chunks.directory, "three") { $0.choices = 3 }.manifest.records, 40)
    }

    func testBadRecordsAreRejectedWithTheirLines() throws {
        let lines = [
            #"{"id": "a", "text": "Alpha begins. Hepatocytes metabolise warfarin slowly."}"#,
            "{not json",
            #"{"id": "b", "body": "no text field"}"#,
            #"{"id": "c", "text": "Gamma begins. Eosinophils infiltrate bronchial tissue."}"#,
            #"{"id": "d", "text": "Delta begins. Collagen stiffens ventricular walls."}"#,
            #"{"id": "e", "text": "Short."}"#,
        ]
        let input = try writeLines(lines, "in.jsonl")
        let r = try tasks("cloze", input, "cloze")
        let rj = try rejects(r.directory)
        XCTAssertEqual(rj.map { $0["line"]?.intValue }, [2, 3])
        XCTAssertTrue(rj.allSatisfy { $0["source"]?.stringValue == input })
        XCTAssertEqual(r.manifest.records, 3)
        XCTAssertEqual(r.manifest.counts["records_without_word"]?.intValue, 1)
        // rct: a record whose abstract_sections is not a list, and one without an id.
        let bad = try writeLines(
            [#"{"id": "x", "meta": {"abstract_sections": "BACKGROUND: text"}}"#, #"{"meta": {}}"#, #"{"id": "y", "text": "plain"}"#], "bad.jsonl")
        let rr = try tasks("rct", bad, "rct")
        XCTAssertEqual(try rejects(rr.directory).map { $0["line"]?.intValue }, [1, 2])
        XCTAssertEqual(rr.manifest.counts["documents_without_sections"]?.intValue, 1)
        XCTAssertThrowsError(try TasksStage(config: TasksConfig(kind: "mmlu"), input: bad))
    }
}
