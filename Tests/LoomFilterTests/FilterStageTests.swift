import Foundation
import LoomCore
import LoomIngest
import LoomPack
import LoomReport
import LoomVerilog
import XCTest

@testable import LoomFilter

func tempDir(_ name: String) -> String {
    let d = NSTemporaryDirectory() + "loom-filter-\(name)-\(ProcessInfo.processInfo.processIdentifier)"
    try? FileManager.default.removeItem(atPath: d)
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

func readRecords(_ path: String) throws -> [JSONValue] {
    guard FileManager.default.fileExists(atPath: path) else { return [] }
    return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(String($0)) }
}

func stageRecords(_ dir: String) throws -> [JSONValue] {
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("part-") }.sorted()
    return try files.flatMap { try readRecords(dir + "/" + $0) }
}

func writeJSONL(_ records: [JSONValue], _ path: String) throws {
    var out: [UInt8] = []
    for r in records {
        r.write(to: &out)
        out.append(0x0A)
    }
    try Data(out).write(to: URL(fileURLWithPath: path))
}

/// `LOOM_SHARED`, else ../shared beside the project; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Texts written for these tests: one that every default rule keeps, and one that breaks each rule set.
enum Texts {
    static let good = """
        The trial enrolled 240 adults with moderate asthma and followed them for one year. Patients were assigned to \
        the new inhaler or to the standard treatment, and the investigators recorded every exacerbation that needed \
        a visit to a doctor. Exacerbations were less frequent with the new inhaler than with the standard one, and \
        the difference was largest in the winter months. Side effects were mild and of the same kind in both groups. \
        The authors conclude that the new inhaler is a reasonable first choice, and that a longer trial should test \
        whether the benefit lasts.
        """
    static let short = "A note of seven words, and that is all."
    static let repeated = String(repeating: "Click here to subscribe to the newsletter and save.\n", count: 12)
    static let noPunctuation = (0..<20).map { "line \($0) of a table of contents with the words and the pages of it" }
        .joined(separator: "\n")
    static let garbage = String(
        repeating: "tbe rnodeI wlth lIl 1I1 ,.,;; ~~ fi0w ccnt3nt Il1I qxzt wrnpl %% && the of and to be ", count: 6)
    static let lorem = good + " Lorem ipsum dolor sit amet."
}

final class FilterStageTests: XCTestCase {
    func run(_ texts: [(String, String)], config: FilterConfig, _ name: String) throws -> (kept: [JSONValue], rejects: [JSONValue], manifest: JSONValue) {
        let dir = tempDir(name)
        let input = dir + "/in.jsonl"
        try writeJSONL(texts.map { ["id": .string($0.0), "text": .string($0.1)] }, input)
        let stage = try FilterStage(config: config, input: input, jobs: 2)
        _ = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        let manifest = try JSONValue.parse(String(contentsOfFile: dir + "/out/manifest.json", encoding: .utf8))
        return (try stageRecords(dir + "/out"), try readRecords(dir + "/out/rejects.jsonl"), manifest)
    }

    func testARecordThatBreaksNoRuleIsKept() throws {
        var c = FilterConfig()
        c.rules = ["gopher-repetition", "gopher-quality", "c4", "fineweb", "ocr"]
        let r = try run([("good", Texts.good)], config: c, "good")
        XCTAssertEqual(r.kept.count, 1)
        XCTAssertEqual(r.rejects.count, 0)
        XCTAssertEqual(r.kept.first?["text"]?.stringValue, Texts.good, "a one-line text of sentences keeps every line")
    }

    func testEveryDropIsARejectNamingTheRuleAndValue() throws {
        var c = FilterConfig()
        c.rules = ["gopher-quality", "gopher-repetition", "c4", "fineweb", "ocr"]
        let inputs = [
            ("good", Texts.good), ("short", Texts.short), ("repeated", Texts.repeated), ("toc", Texts.noPunctuation),
            ("garbage", Texts.garbage), ("lorem", Texts.lorem), ("empty", ""),
        ]
        let r = try run(inputs, config: c, "drops")
        XCTAssertEqual(r.kept.map { $0["id"]?.stringValue }, ["good"])
        let byID = Dictionary(uniqueKeysWithValues: r.rejects.map { ($0["id"]?.stringValue ?? "", $0) })
        XCTAssertEqual(byID.count, inputs.count - 1)
        // "A note of seven words, and that is all." has 9 words besides its 2 punctuation tokens.
        XCTAssertEqual(byID["short"]?["rule"]?.stringValue, "gopher-quality")
        XCTAssertEqual(byID["short"]?["check"]?.stringValue, "min_doc_words")
        XCTAssertEqual(byID["short"]?["value"]?.doubleValue, 9)
        XCTAssertEqual(byID["short"]?["threshold"]?.doubleValue, 50)
        XCTAssertEqual(byID["empty"]?["check"]?.stringValue, "min_doc_words")
        // 12 equal lines and the empty piece after the last newline: 11 of 13 lines repeat one before them.
        XCTAssertEqual(byID["repeated"]?["rule"]?.stringValue, "gopher-repetition")
        XCTAssertEqual(byID["repeated"]?["check"]?.stringValue, "dup_line_frac")
        XCTAssertEqual(byID["repeated"]?["value"]?.doubleValue ?? 0, 11.0 / 13.0, accuracy: 1e-12)
        XCTAssertEqual(byID["lorem"]?["rule"]?.stringValue, "c4")
        XCTAssertEqual(byID["lorem"]?["check"]?.stringValue, "lorem_ipsum")
        for rej in r.rejects {
            XCTAssertNotNil(rej["rule"]?.stringValue)
            XCTAssertNotNil(rej["check"]?.stringValue)
            XCTAssertTrue(rej["reason"]?.stringValue?.hasPrefix(rej["rule"]!.stringValue! + ": ") ?? false)
            XCTAssertNotNil(rej["line"]?.intValue)
            if rej["check"]?.stringValue != "lorem_ipsum" {
                XCTAssertNotNil(rej["value"]?.doubleValue, "\(rej)")
                XCTAssertNotNil(rej["threshold"]?.doubleValue, "\(rej)")
            }
        }
        XCTAssertEqual(r.manifest["counts"]?["dropped"]?.intValue, 6)
        XCTAssertEqual(r.manifest["counts"]?["dropped_by"]?["gopher-quality"]?["min_doc_words"]?.intValue, 2)
    }

    /// Every rule set alone keeps the good text, and a record that breaks none of them is never dropped, in either
    /// mode and under any order of the rule sets.
    func testNoRuleDropsTheGoodText() throws {
        for rule in ["gopher-quality", "gopher-repetition", "c4", "fineweb", "ocr"] {
            var c = FilterConfig()
            c.rules = [rule]
            let r = try run([("good", Texts.good)], config: c, "good-\(rule)")
            XCTAssertEqual(r.kept.count, 1, rule)
        }
        var c = FilterConfig()
        c.rules = ["ocr", "fineweb", "c4", "gopher-repetition", "gopher-quality"]
        c.mode = "score"
        let r = try run([("good", Texts.good)], config: c, "good-score")
        XCTAssertEqual(r.kept.first?["meta"]?["quality"]?["failed"]?.arrayValue?.count, 0)
    }

    /// report.html's Quality filters section: what each check dropped, with an example, and the distributions.
    func testReportShowsWhatEachRuleDropped() throws {
        var c = FilterConfig()
        c.rules = ["gopher-quality", "gopher-repetition"]
        let dir = tempDir("report")
        try writeJSONL(
            [("good", Texts.good), ("short", Texts.short), ("repeated", Texts.repeated)].map { ["id": .string($0.0), "text": .string($0.1)] },
            dir + "/in.jsonl")
        _ = try StageRunner.run(try FilterStage(config: c, input: dir + "/in.jsonl"), directory: dir + "/01-filter", options: RunOptions(quiet: true))
        let html = try Report.render(directories: [dir + "/01-filter"], root: dir)
        XCTAssertTrue(html.contains("Quality filters"))
        XCTAssertTrue(html.contains("<code>min_doc_words</code>"), "the check that dropped the short text")
        XCTAssertTrue(html.contains("<code>dup_line_frac</code>"))
        XCTAssertTrue(html.contains("A note of seven words"), "an example's text")
        XCTAssertTrue(html.contains("gopher-quality.avg_word_length"), "a measurement's distribution")
    }

    func testOCRGarbageFailsTheOCRRuleAlone() throws {
        var c = FilterConfig()
        c.rules = ["ocr"]
        let once = String(Texts.garbage.prefix(Texts.garbage.count / 6))
        let r = try run([("garbage", once), ("good", Texts.good), ("glyphs", Texts.good + String(repeating: "\u{FFFD}", count: 30))], config: c, "ocr")
        XCTAssertEqual(r.kept.map { $0["id"]?.stringValue }, ["good"])
        let checks = Dictionary(uniqueKeysWithValues: r.rejects.map { ($0["id"]!.stringValue!, $0["check"]!.stringValue!) })
        XCTAssertEqual(checks, ["garbage": "min_word_chars_ratio", "glyphs": "max_bad_glyph_ratio"])
    }

    func testScoreModeKeepsEveryRecordWithItsMeasurements() throws {
        var c = FilterConfig()
        c.mode = "score"
        c.rules = ["gopher-quality", "fineweb"]
        let r = try run([("good", Texts.good), ("short", Texts.short)], config: c, "score")
        XCTAssertEqual(r.kept.count, 2)
        XCTAssertEqual(r.rejects.count, 0)
        let q = r.kept[1]["meta"]?["quality"]
        XCTAssertEqual(q?["gopher-quality"]?["words"]?.doubleValue, 9)
        XCTAssertEqual(q?["failed"]?.arrayValue?.first?.stringValue, "gopher-quality.min_doc_words")
        XCTAssertEqual(r.kept[0]["meta"]?["quality"]?["failed"]?.arrayValue?.count, 0)
        XCTAssertNotNil(r.manifest["counts"]?["quality"]?["gopher-quality.words"]?["p50"])
    }

    func testOptionsAreChecked() throws {
        XCTAssertThrowsError(try FilterConfig.from(["rules": ["gopher"]], context: "t"))
        XCTAssertThrowsError(try FilterConfig.from(["gopher-quality": ["min_words": 3]], context: "t"))
        XCTAssertThrowsError(try FilterConfig.from(["mode": "keep"], context: "t"))
        XCTAssertThrowsError(try FilterConfig.from(["rules": ["domain"]], context: "t"))
        let c = try FilterConfig.from(["rules": "gopher-quality", "gopher_quality": ["min_doc_words": 5, "max_doc_words": .null]], context: "t")
        let g = try XCTUnwrap(try c.ruleSets().first as? GopherQuality)
        XCTAssertEqual(g.minDocWords, 5)
        XCTAssertNil(g.maxDocWords)
    }

    /// Korean: words split on spaces and punctuation, Hangul counts as letters, Korean stop words; a Korean page of
    /// prose passes gopher-quality, the same words shuffled into a list without function words do not.
    func testKoreanProsePassesGopherQuality() throws {
        let prose = """
            이 약관은 보험계약자와 보험회사 사이의 권리와 의무를 정한 것이다. 보험회사는 보험금 지급 사유가 발생한 경우 \
            약관에서 정한 바에 따라 보험금을 지급한다. 계약자는 계약을 체결할 때 청약서의 질문에 사실대로 알려야 하며, \
            그리고 주소가 바뀐 경우 지체 없이 회사에 알려야 한다. 회사는 계약자가 알린 내용을 바탕으로 계약의 인수 여부를 \
            판단할 수 있다. 보험료의 납입이 연체되는 경우 회사는 납입 최고 기간을 정하여 알리고, 그 기간이 지나도 \
            납입되지 않으면 계약을 해지할 수 있다. 해지된 계약은 해지환급금을 받지 않은 경우 부활을 청약할 수 있다.
            """
        let g = GopherQuality()
        let doc = FilterDocument(prose)
        XCTAssertEqual(StopWordLists.language("auto", doc), "ko")
        let out = g.evaluate(doc)
        XCTAssertNil(out.failure.map { "\($0.check) \($0.measure?.summary ?? "")" })
        let words = out.measures.first { $0.metric == "words" }!.value
        XCTAssertGreaterThan(words, 50)
        XCTAssertEqual(out.measures.first { $0.metric == "alpha_words_ratio" }!.value, 1, accuracy: 0.1)
        // The same words as a keyword list: punctuation gone and no function word left standing alone.
        let keywords = prose.split(whereSeparator: { $0 == " " || $0 == "." || $0 == "," }).filter {
            !StopWordLists.korean.contains(String($0))
        }.joined(separator: " ")
        XCTAssertEqual(g.evaluate(FilterDocument(keywords)).failure?.check, "min_stop_words")
    }

    /// Korean pages of a real PDF (the shared corpus's ko-oblivoir-simpledoc.pdf, a LaTeX class manual, text
    /// layer): with the Korean settings no page fails for stop words or word length (English's would drop nearly
    /// all of them for want of "the" and "of"); the pages that fail, fail for what they are, command listings with
    /// few words of letters.
    func testKoreanPDFPages() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("no shared corpora (LOOM_SHARED)") }
        let dir = tempDir("ko-pdf")
        var c = PDFIngestConfig(paths: [shared + "/corpora/pdf/dev/ko-oblivoir-simpledoc.pdf"])
        c.ocr = "never"
        _ = try StageRunner.run(try PDFIngestStage(config: c, jobs: 1), directory: dir + "/pdf", options: RunOptions(quiet: true))
        let doc = try XCTUnwrap(try stageRecords(dir + "/pdf").first)
        let text = Array(doc["text"]!.stringValue!.unicodeScalars)
        let pages = doc["meta"]!["page_offsets"]!.arrayValue!.map { p -> String in
            let a = p.arrayValue![0].intValue!, b = p.arrayValue![1].intValue!
            return String(String.UnicodeScalarView(text[a..<b]))
        }
        var english = GopherQuality()
        english.language = "en"
        var korean = 0, kept = 0, englishStopFails = 0
        for p in pages {
            let d = FilterDocument(p)
            guard StopWordLists.language("auto", d) == "ko" else { continue }
            korean += 1
            let f = GopherQuality().evaluate(d).failure?.check
            XCTAssertFalse(["min_stop_words", "min_avg_word_length", "max_avg_word_length"].contains(f ?? ""), "\(f ?? ""): \(p.prefix(200))")
            XCTAssertTrue(f == nil || f == "min_alpha_words_ratio", "\(f ?? "")")
            if f == nil { kept += 1 }
            if english.evaluate(d).measures.first(where: { $0.check == "min_stop_words" })?.failed ?? false { englishStopFails += 1 }
        }
        XCTAssertGreaterThanOrEqual(korean, 25)
        XCTAssertGreaterThanOrEqual(kept, 12, "\(kept) of \(korean) Korean pages kept")
        XCTAssertGreaterThanOrEqual(englishStopFails, korean * 9 / 10, "English stop words on Korean pages")
    }
}
