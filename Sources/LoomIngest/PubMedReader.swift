// PubMed XML in memory to articles, with the same splitter and parser the ingest stage uses. For library users
// who already hold the bytes, for tests, and for the fuzz target (Fuzz/pubmed).

public struct PubMedParseResult: Sendable {
    public var articles: [PubMedArticle] = []
    /// PMIDs listed in DeleteCitation blocks, with their versions.
    public var deletions: [(pmid: String, version: Int)] = []
    /// Units that could not be used: the reason and the byte offset where the unit starts.
    public var rejects: [(reason: String, offset: Int)] = []
    /// A problem with the whole input (not XML, truncated); what came before it is kept.
    public var error: String?
}

public enum PubMedReader {
    /// Parses a whole PubMed XML document held in memory. `readSize` is how many bytes the splitter gets per
    /// read (small values put block boundaries everywhere; the fuzz target varies it).
    public static func parse(_ bytes: [UInt8], name: String = "<memory>", readSize: Int = 1 << 20) -> PubMedParseResult {
        var out = PubMedParseResult()
        let parser = PubMedUnitParser(filename: name)
        let splitter = PubMedSplitter(source: MemorySource(bytes, step: readSize)) { _ in }
        do {
            try splitter.run(
                prolog: { bytes, final in
                    parser.checkProlog(bytes, final: final).map { "line \($0.line), column \($0.column): \($0.message)" }
                },
                unit: { kind, bytes, offset, complete in
                    guard kind != .bookArticle else { return }
                    guard complete else {
                        out.rejects.append(("<\(kind.name)> has no closing tag", offset))
                        return
                    }
                    switch parser.parse(bytes) {
                    case .article(let a): out.articles.append(a)
                    case .deletions(let d): out.deletions += d
                    case .failed(let message, _, _): out.rejects.append((message, offset))
                    }
                })
        } catch let e as FileError {
            out.error = e.message
        } catch {
            out.error = "\(error)"
        }
        return out
    }
}
