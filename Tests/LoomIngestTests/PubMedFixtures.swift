import Foundation
import LoomCore

/// Writes PubMed XML for tests, in the shape of NLM's baseline files.
enum PubMedXML {
    static let header = """
        <?xml version="1.0" encoding="utf-8"?>
        <!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2019//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_190101.dtd">
        <PubmedArticleSet>

        """
    static let footer = "</PubmedArticleSet>\n"

    static func article(
        pmid: Int, title: String, abstract: [(label: String?, text: String)] = [], mesh: [(String, String, Bool)] = [],
        language: String = "eng", year: String? = "1999", medlineDate: String? = nil, version: Int = 1,
        doi: String? = nil
    ) -> String {
        var abs = ""
        if !abstract.isEmpty {
            abs = "        <Abstract>\n"
            for a in abstract {
                let label = a.label.map { " Label=\"\($0)\" NlmCategory=\"\($0)\"" } ?? ""
                abs += "          <AbstractText\(label)>\(a.text)</AbstractText>\n"
            }
            abs += "        </Abstract>\n"
        }
        var meshXML = ""
        if !mesh.isEmpty {
            meshXML = "      <MeshHeadingList>\n"
            for (ui, name, major) in mesh {
                meshXML +=
                    "        <MeshHeading>\n          <DescriptorName UI=\"\(ui)\" MajorTopicYN=\"\(major ? "Y" : "N")\">\(name)</DescriptorName>\n        </MeshHeading>\n"
            }
            meshXML += "      </MeshHeadingList>\n"
        }
        let date = medlineDate.map { "<MedlineDate>\($0)</MedlineDate>" } ?? year.map { "<Year>\($0)</Year><Month>Jun</Month>" } ?? ""
        let eloc = doi.map { "        <ELocationID EIdType=\"doi\" ValidYN=\"Y\">\($0)</ELocationID>\n" } ?? ""
        return """
              <PubmedArticle>
                <MedlineCitation Status="MEDLINE" Owner="NLM">
                  <PMID Version="\(version)">\(pmid)</PMID>
                  <Article PubModel="Print">
                    <Journal>
                      <ISSN IssnType="Print">0000-0000</ISSN>
                      <JournalIssue CitedMedium="Print">
                        <Volume>12</Volume>
                        <Issue>3</Issue>
                        <PubDate>\(date)</PubDate>
                      </JournalIssue>
                      <Title>Journal of Tests</Title>
                      <ISOAbbreviation>J Tests</ISOAbbreviation>
                    </Journal>
                    <ArticleTitle>\(title)</ArticleTitle>
            \(abs)\(eloc)        <AuthorList CompleteYN="Y">
                      <Author ValidYN="Y"><LastName>Doe</LastName><ForeName>Jane</ForeName><Initials>J</Initials></Author>
                    </AuthorList>
                    <Language>\(language)</Language>
                    <PublicationTypeList>
                      <PublicationType UI="D016428">Journal Article</PublicationType>
                    </PublicationTypeList>
                  </Article>
            \(meshXML)    </MedlineCitation>
                <PubmedData>
                  <ArticleIdList>
                    <ArticleId IdType="pubmed">\(pmid)</ArticleId>
                  </ArticleIdList>
                </PubmedData>
              </PubmedArticle>

            """
    }

    static func deleteCitation(_ pmids: [Int]) -> String {
        "  <DeleteCitation>\n" + pmids.map { "    <PMID Version=\"1\">\($0)</PMID>\n" }.joined() + "  </DeleteCitation>\n"
    }

    static func file(_ body: String) -> String { header + body + footer }
}

/// A fresh temporary directory, removed by the caller's tearDown.
func temporaryDirectory(_ name: String = #function) -> String {
    let base = NSTemporaryDirectory() + "loom-test-" + name.filter { $0.isLetter || $0.isNumber } + "-"
        + UUID().uuidString.prefix(8)
    try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    return base
}

func write(_ text: String, to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

/// All records of a finished stage directory.
func records(_ dir: String) throws -> [JSONValue] {
    var out: [JSONValue] = []
    try StageReader(directory: dir).forEachRecord({ v, _, _ in out.append(v) }, bad: { e, _, _ in throw e })
    return out
}

func rejects(_ dir: String) throws -> [JSONValue] {
    let text = try String(contentsOfFile: dir + "/rejects.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }
}

/// gzip-compresses with the system's gzip (tests only).
func gzip(_ path: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-f", "-k", path]
    try p.run()
    p.waitUntilExit()
}

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}
