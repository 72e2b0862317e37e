import CPoppler
import Foundation
import XCTest

@testable import LoomCore
@testable import LoomIngest

final class PDFCleanupTests: XCTestCase {
    func testRunningLinesPageNumbersHyphensAndParagraphs() {
        let subjects = ["fire damage", "water damage", "theft of goods", "storm damage", "liability claims"]
        let pages = (1...5).map { n in
            """
            ACME Insurance General Terms \(n)
            Section \(n) covers \(subjects[n - 1]), and the insurer pays for the recog-
            nition of every valid claim under this section within thirty days of \(subjects[n - 1]).
            A short closing line on \(subjects[n - 1]).

            A second block on \(subjects[n - 1]) that is its own paragraph.
            Page \(n) of 5
            """
        }
        let cleaned = PDFCleanup.clean(pages)
        XCTAssertEqual(cleaned.count, 5)
        for (i, page) in cleaned.enumerated() {
            XCTAssertFalse(page.contains("ACME"), page)
            XCTAssertFalse(page.contains("of 5"), page)
            XCTAssertTrue(page.hasPrefix("Section \(i + 1) covers \(subjects[i])"), page)
            XCTAssertTrue(page.contains("the recognition of every valid claim"), page)
            XCTAssertTrue(page.contains("thirty days of \(subjects[i]). A short closing line on \(subjects[i]).\n\nA second block"), page)
        }
        // Each rule can be turned off.
        var keep = PDFCleanupOptions()
        keep.removeRunningLines = false
        keep.removePageNumbers = false
        keep.joinHyphens = false
        keep.normalizeWhitespace = false
        XCTAssertEqual(PDFCleanup.clean(pages, options: keep)[0], pages[0].replacingOccurrences(of: "\n\n", with: "\n\n"))
        // One page alone has no running lines to find.
        XCTAssertTrue(PDFCleanup.clean([pages[0]])[0].contains("ACME"))
    }

    func testPageNumberShapes() {
        for s in ["17", "- 17 -", "— 17 —", "Page 17", "page 17 of 90", "17 / 90", "xii", "[17]"] {
            XCTAssertTrue(PDFCleanup.isPageNumber(s), s)
        }
        for s in ["17 cats", "Chapter 1", "2024-01-02", "", "mixed", "1.5"] {
            XCTAssertFalse(PDFCleanup.isPageNumber(s), s)
        }
    }

    func testLigaturesAndWhitespace() {
        XCTAssertEqual(PDFCleanup.clean(["The  ﬁrst   line\nand   the second"])[0], "The first line and the second")
    }

    func testUnusableTextLayer() {
        XCTAssertTrue(isUnusableTextLayer(""))
        XCTAssertTrue(isUnusableTextLayer(" \n\u{000C}"))
        XCTAssertTrue(isUnusableTextLayer("\u{FFFD}\u{FFFD}\u{FFFD}a"))
        XCTAssertTrue(isUnusableTextLayer("\u{E001}\u{E002}\u{E003}"))
        XCTAssertFalse(isUnusableTextLayer("보험 약관"))
        XCTAssertFalse(isUnusableTextLayer("Policy terms \u{FFFD}"))
    }
}

/// Runs the PDF stage and returns its manifest and records.
func runPDF(_ c: PDFIngestConfig, _ out: String, jobs: Int = 2) throws -> (Manifest, [JSONValue]) {
    let m = try StageRunner.run(
        PDFIngestStage(config: c, jobs: jobs), directory: out, options: RunOptions(force: true, quiet: true)
    ).manifest
    return (m, try records(out))
}

final class PDFIngestTests: XCTestCase {
    func run(_ c: PDFIngestConfig, _ out: String, jobs: Int = 2) throws -> (Manifest, [JSONValue]) {
        try runPDF(c, out, jobs: jobs)
    }

    static let topics = ["fire", "flood", "theft", "storm"]
    static let body: [[String]] = (1...4).map { n in
        [
            "Article \(n). The insurer shall pay the \(topics[n - 1]) benefit described in this article",
            "after the recog-",
            "nition of the \(topics[n - 1]) claim by the claims office.",
            "",
            "Claims for \(topics[n - 1]) are paid in full within thirty days.",
            "The policy holder keeps the \(topics[n - 1]) receipts for a year.",
            "Disputes about \(topics[n - 1]) go to the ombudsman first.",
        ]
    }

    func testTextPDFIsCleanedAndDescribed() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        PDFDraw.textPDF(dir + "/terms.pdf", pages: Self.body, header: "ACME Mutual - General Terms and Conditions")
        let (m, recs) = try run(PDFIngestConfig(paths: [dir]), dir + "/out")
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(recs.count, 1)
        let text = recs[0]["text"]?.stringValue ?? ""
        XCTAssertFalse(text.contains("ACME"), text)
        XCTAssertFalse(text.contains("- 2 -"), text)
        XCTAssertTrue(text.contains("after the recognition of the fire claim"), text)
        XCTAssertTrue(text.hasPrefix("Article 1. The insurer shall pay"), text)
        let meta = recs[0]["meta"]
        XCTAssertEqual(meta?["pages"]?.intValue, 4)
        XCTAssertEqual(meta?["ocr"]?["pages"]?.arrayValue, [])
        // Page offsets point at each page's text.
        let scalars = Array(text.unicodeScalars)
        let offsets = meta?["page_offsets"]?.arrayValue ?? []
        XCTAssertEqual(offsets.count, 4)
        for (i, o) in offsets.enumerated() {
            let s = o.arrayValue![0].intValue!, e = o.arrayValue![1].intValue!
            XCTAssertTrue(String(String.UnicodeScalarView(scalars[s..<e])).hasPrefix("Article \(i + 1)."))
        }
        XCTAssertEqual(recs[0]["source"]?.stringValue, dir + "/terms.pdf")
    }

    /// Metadata text comes out as the PDF holds it: no entity escaping on the way (issue 25 asked where else text is
    /// escaped twice; PDF Info strings are plain strings, and poppler-glib gives them as UTF-8).
    func testMetadataWithMarkupCharactersIsNotEscaped() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let title = "R&D <Policy> \"Terms\" & Conditions &amp; 보험 ©"
        PDFDraw.textPDF(dir + "/t.pdf", pages: [Self.body[0]], header: nil, title: title)
        let (_, recs) = try run(PDFIngestConfig(paths: [dir]), dir + "/out")
        XCTAssertEqual(recs.first?["meta"]?["title"]?.stringValue, title)
    }

    func testImageOnlyPageGoesThroughOCRAndPoliciesChangeThat() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        PDFDraw.scannedPDF(
            dir + "/scan.pdf",
            pages: [
                (nil, ["This first page has a real text layer."]),
                (["The insured party must report every claim", "within thirty days of the loss."], nil),
            ])
        let (m, recs) = try run(PDFIngestConfig(paths: [dir + "/scan.pdf"]), dir + "/auto")
        XCTAssertEqual(m.counts["ocr_pages"]?.intValue, 1)
        let text = recs[0]["text"]?.stringValue ?? ""
        XCTAssertTrue(text.contains("real text layer"), text)
        XCTAssertTrue(text.contains("insured party must report every claim"), text)
        XCTAssertTrue(text.contains("thirty days of the loss"), text)
        let ocr = recs[0]["meta"]?["ocr"]
        XCTAssertEqual(ocr?["pages"]?.arrayValue, [.int(2)])
        // One method per OCR page, among its candidates (a clean page is read once: its confidence is high).
        XCTAssertEqual(ocr?["method"]?.arrayValue, [.string(OCRMethod.original.rawValue)])
        XCTAssertEqual(ocr?["candidates"]?.arrayValue?.first?.objectValue?.keys.first, OCRMethod.original.rawValue)
        // Not rounding: tesseract's mean word confidence on a clean page drawn with cairo, which it reads at 90 or more;
        // 70 fails only a misread page (tesseract's CPU-picked dot-product kernels move it far less than that).
        XCTAssertGreaterThan(ocr?["mean_confidence"]?.doubleValue ?? 0, 70)
        var c = PDFIngestConfig(paths: [dir + "/scan.pdf"])
        c.ocr = "never"
        let (_, never) = try run(c, dir + "/never")
        XCTAssertFalse((never[0]["text"]?.stringValue ?? "").contains("insured"))
        c.ocr = "always"
        let (always, _) = try run(c, dir + "/always")
        XCTAssertEqual(always.counts["ocr_pages"]?.intValue, 2)
    }

    func testBadFilesAreRejectedAndTheRunGoesOn() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        PDFDraw.textPDF(dir + "/a-good.pdf", pages: Self.body, header: nil)
        _ = FileManager.default.createFile(atPath: dir + "/b-empty.pdf", contents: Data())
        _ = FileManager.default.createFile(atPath: dir + "/c-notes.pdf", contents: Data("just some text\n".utf8))
        PDFDraw.encryptedPDF(dir + "/d-encrypted.pdf")
        let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/a-good.pdf"))
        _ = FileManager.default.createFile(atPath: dir + "/e-truncated.pdf", contents: good.prefix(good.count / 3))
        _ = FileManager.default.createFile(atPath: dir + "/f-garbage.pdf", contents: Data("%PDF-1.4\n".utf8 + [UInt8](repeating: 0x41, count: 500)))
        PDFDraw.brokenPagePDF(dir + "/g-broken-page.pdf")
        let (m, recs) = try run(PDFIngestConfig(paths: [dir]), dir + "/out")
        XCTAssertEqual(m.status, "complete")
        let rejects = try LoomIngestTests.rejects(dir + "/out")
        let reasons = Dictionary(
            rejects.map { (($0["source"]?.stringValue ?? "").split(separator: "/").last.map(String.init) ?? "", $0) },
            uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(reasons["b-empty.pdf"]?["reason"]?.stringValue, "empty file (0 bytes)")
        XCTAssertEqual(reasons["c-notes.pdf"]?["reason"]?.stringValue, "not a PDF (no %PDF- header)")
        XCTAssertEqual(reasons["d-encrypted.pdf"]?["reason"]?.stringValue, "encrypted PDF (a password is needed)")
        XCTAssertNotNil(reasons["e-truncated.pdf"], "\(rejects)")
        XCTAssertNotNil(reasons["f-garbage.pdf"], "\(rejects)")
        // The broken page is rejected alone; the document keeps its other page.
        XCTAssertEqual(reasons["g-broken-page.pdf"]?["page"]?.intValue, 2)
        let broken = recs.first { $0["id"]?.stringValue?.hasSuffix("g-broken-page.pdf") == true }
        XCTAssertEqual(broken?["meta"]?["failed_pages"]?.arrayValue, [.int(2)])
        XCTAssertTrue(broken?["text"]?.stringValue?.contains("Page one is fine") ?? false)
        XCTAssertTrue(recs.contains { $0["id"]?.stringValue?.hasSuffix("a-good.pdf") == true })
    }

    func testMissingLanguageNamesThePackage() {
        var c = PDFIngestConfig(paths: ["x.pdf"])
        c.languages = ["eng", "zzz"]
        XCTAssertThrowsError(try PDFIngestStage(config: c, jobs: 1)) {
            XCTAssertTrue("\($0)".contains("install the Debian package tesseract-ocr-zzz"), "\($0)")
        }
    }
}

final class PDFCorpusTests: XCTestCase {
    var corpus: String {
        get throws {
            guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: PDF corpus tests skipped") }
            return shared + "/corpora/pdf/dev"
        }
    }

    /// Every text-layer page of the real PDFs: Loom's cleaned text against pdftotext's with the same clean-up,
    /// character similarity >= 0.99; and the auto policy OCRs exactly the two image-only pages.
    func testTextLayerMatchesPdftotextAndAutoOCRsOnlyScans() throws {
        let dir = try corpus
        guard commandOutput(["pdftotext", "-v"]) != nil || FS.exists("/usr/bin/pdftotext") else {
            throw XCTSkip("pdftotext (poppler-utils) not installed")
        }
        let out = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (m, recs) = try runPDF(PDFIngestConfig(paths: [dir]), out + "/out")
        XCTAssertEqual(m.counts["documents"]?.intValue, 10)
        var worst = (1.0, "")
        var compared = 0
        var strictPass = 0
        for r in recs {
            let path = r["source"]!.stringValue!
            let ocrPages = r["meta"]?["ocr"]?["pages"]?.arrayValue ?? []
            if path.contains("/scanned/") {
                XCTAssertEqual(ocrPages, [.int(1)], path)
                continue
            }
            XCTAssertEqual(ocrPages, [], path)
            guard let raw = commandOutput(["pdftotext", "-enc", "UTF-8", path, "-"]) else {
                XCTFail("pdftotext failed on \(path)")
                continue
            }
            var pages = raw.components(separatedBy: "\u{000C}")
            if pages.last?.isEmpty == true { pages.removeLast() }
            let reference = PDFCleanup.clean(pages)
            let text = Array(r["text"]!.stringValue!.unicodeScalars)
            let offsets = r["meta"]!["page_offsets"]!.arrayValue!
            XCTAssertEqual(offsets.count, reference.count, path)
            for (i, o) in offsets.enumerated() where i < reference.count {
                let s = o.arrayValue![0].intValue!, e = o.arrayValue![1].intValue!
                let page = String(String.UnicodeScalarView(text[s..<e]))
                // Compared with whitespace normalised (the clean-up's own rule): where a paragraph break falls is
                // layout analysis, which pdftotext and poppler-glib's text call do not share; the characters and
                // their order must agree.
                let sim = TextDistance.similarity(TextDistance.normalized(page), TextDistance.normalized(reference[i]))
                let strict = TextDistance.similarity(Array(page.unicodeScalars), Array(reference[i].unicodeScalars))
                if strict >= 0.99 { strictPass += 1 }
                compared += 1
                if sim < worst.0 { worst = (sim, "\(path) page \(i + 1)") }
                // Not rounding: both are poppler's text (glyph codes, no CPU-dependent arithmetic); the 1% allows the
                // layout differences between its two text paths.
                XCTAssertGreaterThanOrEqual(sim, 0.99, "\(path) page \(i + 1)")
            }
        }
        print(
            "text pages compared with pdftotext: \(compared), lowest similarity \(worst.0) (\(worst.1)); pages at 0.99 or more counting paragraph breaks too: \(strictPass)"
        )
        XCTAssertEqual(compared, 418)
    }

    /// OCR of the scanned pages against the recorded ground truth, and against the tesseract command on the same
    /// page image (Loom's 300 dpi rendering, written as PGM). Since issue 25 (item 6) a page read with low confidence
    /// is read again with preprocessed images (`OCRMethod`) and the reading with the highest mean word confidence is
    /// kept; `meta.ocr` records the method and every candidate's confidence.
    func testOCRErrorRateAgainstGroundTruthAndTesseractCommand() throws {
        let dir = try corpus + "/scanned"
        guard FS.exists("/usr/bin/tesseract") else { throw XCTSkip("tesseract command not installed") }
        let out = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        // The English bar is a quality floor (today's reading is 0.0037, and is also held to the command's below);
        // the Korean one is issue 25's (the command reads 0.149 on the same image).
        for (name, langs, bar) in [("scan-en-R-intro-p15", ["eng"], 0.03), ("scan-ko-oblivoir-p9", ["kor", "eng"], 0.12)] {
            var c = PDFIngestConfig(paths: [dir + "/\(name).pdf"])
            c.languages = langs
            c.normalizeWhitespace = false
            c.removeRunningLines = false
            c.removePageNumbers = false
            c.joinHyphens = false
            let (_, recs) = try runPDF(c, out + "/\(name)")
            let truth = TextDistance.normalized(try String(contentsOfFile: dir + "/\(name).gt.txt", encoding: .utf8))
            func cer(_ text: String) -> Double {
                Double(TextDistance.levenshtein(TextDistance.normalized(text), truth)) / Double(truth.count)
            }
            let loomCER = cer(recs[0]["text"]!.stringValue!)
            // The same page image through the tesseract command.
            let file = try PDFFile(path: dir + "/\(name).pdf")
            let image = try XCTUnwrap(file.renderGray(page: 0, dpi: 300))
            var pgm = Data("P5\n\(image.width) \(image.height)\n255\n".utf8)
            pgm.append(contentsOf: image.pixels)
            try pgm.write(to: URL(fileURLWithPath: out + "/\(name).pgm"))
            let cli = commandOutput(
                ["tesseract", out + "/\(name).pgm", "-", "-l", langs.joined(separator: "+"), "--dpi", "300"],
                environment: ["OMP_THREAD_LIMIT": "1"]) ?? ""
            let cliCER = cer(cli)
            // What was chosen, and from which candidates (names and confidences, in the order read).
            let ocr = try XCTUnwrap(recs[0]["meta"]?["ocr"])
            let method = try XCTUnwrap(ocr["method"]?.arrayValue?.first?.stringValue, name)
            let candidates = try XCTUnwrap(ocr["candidates"]?.arrayValue?.first?.objectValue, name)
            print("\(name) (\(langs.joined(separator: "+"))): Loom CER \(loomCER) (\(method) of \(candidates)), tesseract command CER \(cliCER)")
            XCTAssertEqual(candidates.keys.first, OCRMethod.original.rawValue, name)
            XCTAssertNotNil(candidates[method], name)
            // Every candidate's reading, for the record (the engine's own API on the same image).
            let engine = try OCREngine(languages: langs.joined(separator: "+"))
            let all = engine.readings(image, dpi: 300, preprocess: .always)
            for r in all.readings {
                print("  \(name) \(r.method): confidence \(r.confidence), CER \(cer(r.text))")
            }
            // Not rounding: a quality bar (see above).
            XCTAssertLessThanOrEqual(loomCER, bar, name)
            // The same engine on the same pixels on the same CPU (so the same SIMD kernels): Loom must not read worse
            // than the command. Equal readings give equal ratios (same integer counts, same division): the 1e-9 is
            // slack, not a bound.
            XCTAssertLessThanOrEqual(loomCER, cliCER + 1e-9, name)
        }
    }

    /// The choice among readings: the highest mean word confidence, among readings that kept at least
    /// `OCREngine.minimumKept` of the first reading's characters (a reading that lost lines is not chosen, however
    /// sure it is of the rest); ties keep the earlier reading.
    func testOCRChoiceByConfidence() {
        func r(_ m: OCRMethod, _ conf: Double, _ chars: Int) -> OCRReading {
            OCRReading(method: m.rawValue, text: String(repeating: "x", count: chars), confidence: conf)
        }
        XCTAssertEqual(OCREngine.choose([r(.original, 88, 900), r(.sauvola, 88.6, 930), r(.upscale, 88.3, 950)]), 1)
        XCTAssertEqual(OCREngine.choose([r(.original, 88, 900), r(.sauvola, 88, 930)]), 0)
        XCTAssertEqual(OCREngine.choose([r(.original, 88, 900), r(.sauvola, 95, 700)]), 0)
        XCTAssertEqual(OCREngine.choose([r(.original, 0, 0), r(.sauvola, 60, 10)]), 1)
    }
}
