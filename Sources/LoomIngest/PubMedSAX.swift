// Parses one `<PubmedArticle>` or `<DeleteCitation>` element with libxml2's SAX2 interface.
//
// The splitter (PubMedSplitter) cuts the file into top-level units; each unit is parsed on its own with one
// reused pull-mode parser context, so a malformed article costs only that article. Safety: no entity substitution, no
// DTD loading, no network (XML_PARSE_NONET), no getEntity/entityDecl callbacks, and a deny-all external entity
// loader: an entity the five predefined ones do not cover is a well-formedness error, so the article is rejected
// and nothing is expanded (XXE and billion laughs are tested).

import CLibXML2
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

/// The outcome of parsing one unit.
enum ParsedUnit {
    case article(PubMedArticle)
    /// PMIDs (with versions) listed in a `DeleteCitation` block.
    case deletions([(pmid: String, version: Int)])
    case failed(message: String, line: Int, column: Int)
}

private enum Tag: UInt8 {
    case other, pubmedArticle, medlineCitation, pmid, article, journal, issn, journalIssue, volume, issue, pubDate
    case year, month, day, season, medlineDate, title, isoAbbreviation, articleTitle, vernacularTitle, abstract
    case abstractText, authorList, author, lastName, foreName, initials, suffix, collectiveName, affiliationInfo
    case affiliation, identifier, language, publicationTypeList, publicationType, elocationID, meshHeadingList
    case meshHeading, descriptorName, qualifierName, keywordList, keyword, pubmedData, articleIdList, articleId
    case deleteCitation

    static let byName: [String: Tag] = [
        "PubmedArticle": .pubmedArticle, "MedlineCitation": .medlineCitation, "PMID": .pmid, "Article": .article,
        "Journal": .journal, "ISSN": .issn, "JournalIssue": .journalIssue, "Volume": .volume, "Issue": .issue,
        "PubDate": .pubDate, "Year": .year, "Month": .month, "Day": .day, "Season": .season,
        "MedlineDate": .medlineDate, "Title": .title, "ISOAbbreviation": .isoAbbreviation,
        "ArticleTitle": .articleTitle, "VernacularTitle": .vernacularTitle, "Abstract": .abstract,
        "AbstractText": .abstractText, "AuthorList": .authorList, "Author": .author, "LastName": .lastName,
        "ForeName": .foreName, "Initials": .initials, "Suffix": .suffix, "CollectiveName": .collectiveName,
        "AffiliationInfo": .affiliationInfo, "Affiliation": .affiliation, "Identifier": .identifier,
        "Language": .language, "PublicationTypeList": .publicationTypeList, "PublicationType": .publicationType,
        "ELocationID": .elocationID, "MeshHeadingList": .meshHeadingList, "MeshHeading": .meshHeading,
        "DescriptorName": .descriptorName, "QualifierName": .qualifierName, "KeywordList": .keywordList,
        "Keyword": .keyword, "PubmedData": .pubmedData, "ArticleIdList": .articleIdList, "ArticleId": .articleId,
        "DeleteCitation": .deleteCitation,
    ]
}

/// What the captured text of the current element becomes.
private enum Field {
    case pmid, deletedPMID, title, vernacularTitle, abstractText, journalTitle, journalISO, issn, volume, issue
    case year, month, day, season, medlineDate, lastName, foreName, initials, suffix, collectiveName, affiliation
    case orcid, language, publicationType, elocationDOI, descriptor, qualifier, keyword, articleIdDOI
}

/// One parser per worker thread (libxml2 contexts are not shared across threads).
final class PubMedUnitParser {
    /// A push parser for the prolog (it is not a whole document) and a pull parser, reused, for the units
    /// (measured faster than push mode on whole units). Both have userData = the context and _private = self.
    private var prologCtxt: xmlParserCtxtPtr?
    private var unitCtxt: xmlParserCtxtPtr?
    private var prologMode = false
    private var sax = xmlSAXHandler()
    private let filename: String
    private var encoding: String?

    // Builder state for the unit being parsed. The element stack, the captured text and the tag cache are raw buffers: they are touched on every SAX
    // event, and Swift arrays there cost uniqueness checks and reference counting.
    private static let maxDepth = 1024  // libxml2 itself stops at 256 without XML_PARSE_HUGE
    private let stack = UnsafeMutablePointer<Tag>.allocate(capacity: PubMedUnitParser.maxDepth)
    private var depth = 0
    private var overflow = 0
    /// Element names are interned in the parser context's dictionary, so a name's pointer identifies it for
    /// the context's lifetime: a small direct-mapped cache from pointer to tag avoids string compares.
    private let tagKeys = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: 256)
    private let tagValues = UnsafeMutablePointer<Tag>.allocate(capacity: 256)
    private var textBytes = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    private var textCount = 0
    private var textCapacity = 4096
    @exclusivity(unchecked) private var capture: Field?
    private var captureDepth = 0
    private var attrA: String?  // per-field attribute values saved at the start tag
    private var attrB: String?
    private var flag = false
    @exclusivity(unchecked) fileprivate var article = PubMedArticle()
    private var deletions: [(pmid: String, version: Int)] = []
    private var firstError: (message: String, line: Int, column: Int)?
    private var firstFatal: (message: String, line: Int, column: Int)?
    /// Root element name seen while checking a prolog.
    private(set) var rootName: String?

    static let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOCDATA.rawValue | XML_PARSE_COMPACT.rawValue)

    init(filename: String) {
        self.filename = filename
        PubMedUnitParser.initialiseLibrary
        loom_xml_silence_generic_errors()  // per thread; this parser lives on the thread that creates it
        sax.initialized = XML_SAX2_MAGIC
        sax.startElementNs = { ctx, localname, _, _, _, _, nbAttributes, _, attributes in
            guard let me = PubMedUnitParser.owner(ctx), let localname else { return }
            Unmanaged<PubMedUnitParser>.fromOpaque(me)._withUnsafeGuaranteedRef {
                $0.start(localname, Int(nbAttributes), attributes)
            }
        }
        sax.endElementNs = { ctx, _, _, _ in
            guard let me = PubMedUnitParser.owner(ctx) else { return }
            Unmanaged<PubMedUnitParser>.fromOpaque(me)._withUnsafeGuaranteedRef { $0.end() }
        }
        sax.characters = { ctx, ch, len in
            guard let me = PubMedUnitParser.owner(ctx), let ch else { return }
            Unmanaged<PubMedUnitParser>.fromOpaque(me)._withUnsafeGuaranteedRef { p in
                if p.capture != nil { p.appendText(ch, Int(len)) }
            }
        }
        sax.cdataBlock = sax.characters
        sax.serror = { ctx, err in
            guard let me = PubMedUnitParser.owner(ctx), let err else { return }
            let p = Unmanaged<PubMedUnitParser>.fromOpaque(me).takeUnretainedValue()
            guard err.pointee.level.rawValue >= XML_ERR_ERROR.rawValue else { return }
            guard p.firstError == nil || (p.firstFatal == nil && err.pointee.level == XML_ERR_FATAL) else { return }
            var msg = err.pointee.message.map { String(cString: $0) } ?? "malformed XML"
            while msg.hasSuffix("\n") { msg.removeLast() }
            let e = (msg, Int(err.pointee.line), Int(err.pointee.int2))
            if p.firstError == nil { p.firstError = e }
            if err.pointee.level == XML_ERR_FATAL { p.firstFatal = e }
        }
    }

    deinit {
        stack.deallocate()
        tagKeys.deallocate()
        tagValues.deallocate()
        textBytes.deallocate()
        if let prologCtxt { xmlFreeParserCtxt(prologCtxt) }
        if let unitCtxt { xmlFreeParserCtxt(unitCtxt) }
    }

    /// The parser behind a callback's context pointer (the xmlParserCtxt, whose _private is the parser).
    @inline(__always) static func owner(_ ctx: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        ctx?.assumingMemoryBound(to: xmlParserCtxt.self).pointee._private
    }

    /// libxml2's one-time set-up: the parser globals, and an external entity loader that loads nothing.
    static let initialiseLibrary: Void = {
        xmlInitParser()
        loom_xml_install_deny_loader()
    }()

    private func prologContext() -> xmlParserCtxtPtr? {
        if let prologCtxt { return prologCtxt }
        prologCtxt = xmlCreatePushParserCtxt(&sax, nil, nil, 0, filename)
        prologCtxt?.pointee._private = Unmanaged.passUnretained(self).toOpaque()
        return prologCtxt
    }

    private func unitContext() -> xmlParserCtxtPtr? {
        if let unitCtxt { return unitCtxt }
        guard let c = xmlNewParserCtxt(), let handler = c.pointee.sax else { return nil }
        handler.pointee = sax
        c.pointee.userData = UnsafeMutableRawPointer(c)
        c.pointee._private = Unmanaged.passUnretained(self).toOpaque()
        unitCtxt = c
        tagKeys.initialize(repeating: nil, count: 256)
        tagValues.initialize(repeating: .other, count: 256)
        return c
    }

    private func reset() {
        depth = 0
        overflow = 0
        capture = nil
        listenToText(false)
        textCount = 0
        article = PubMedArticle()
        deletions = []
        firstError = nil
        firstFatal = nil
        rootName = nil
    }

    /// Parses the bytes before the first unit (XML declaration, DOCTYPE, the root start tag) to check that the
    /// file is XML; returns the first error, if any. Remembers the declared encoding for the units.
    func checkProlog(_ bytes: UnsafeBufferPointer<UInt8>, final: Bool) -> (message: String, line: Int, column: Int)? {
        reset()
        prologMode = true
        defer { prologMode = false }
        guard let c = prologContext() else { return ("cannot create an XML parser (out of memory?)", 0, 0) }
        xmlCtxtResetPush(c, nil, 0, filename, nil)
        xmlCtxtUseOptions(c, PubMedUnitParser.options)
        bytes.withMemoryRebound(to: CChar.self) { b in
            _ = xmlParseChunk(c, b.baseAddress, Int32(b.count), final ? 1 : 0)
        }
        if let e = c.pointee.input?.pointee.encoding { encoding = String(cString: e) }
        // Only well-formedness errors make a file "not XML"; a DOCTYPE whose parameter entities are not loaded
        // (never, here) is a recoverable error and the file is read without them.
        guard c.pointee.wellFormed == 0 else { return nil }
        return firstFatal ?? firstError ?? ("malformed XML", 0, 0)
    }

    /// Parses one unit.
    func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> ParsedUnit {
        reset()
        guard let c = unitContext() else { return .failed(message: "cannot create an XML parser", line: 0, column: 0) }
        let doc = bytes.withMemoryRebound(to: CChar.self) { b in
            xmlCtxtReadMemory(c, b.baseAddress, Int32(b.count), filename, encoding, PubMedUnitParser.options)
        }
        if let doc { xmlFreeDoc(doc) }  // our handler builds no tree; free one if libxml2 ever makes it
        if firstError == nil, c.pointee.wellFormed == 0 { firstError = ("malformed XML", 1, 0) }
        if let e = firstError { return .failed(message: e.message, line: e.line, column: e.column) }
        if !deletions.isEmpty { return .deletions(deletions) }
        var a = article
        if a.doi == nil { a.doi = a.articleIdDOI }
        return .article(a)
    }

    // MARK: SAX events

    private func tag(_ name: UnsafePointer<xmlChar>) -> Tag {
        let key = UnsafeRawPointer(name)
        let slot = Int(truncatingIfNeeded: UInt(bitPattern: key) >> 3) & 255
        if tagKeys[slot] == key { return tagValues[slot] }
        let t = Tag.byName[String(cString: name)] ?? .other
        tagKeys[slot] = key
        tagValues[slot] = t
        return t
    }

    private func attribute(
        _ name: StaticString, _ n: Int, _ attrs: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?
    ) -> String? {
        guard let attrs else { return nil }
        for i in 0..<n {
            guard let local = attrs[i * 5], let vs = attrs[i * 5 + 3], let ve = attrs[i * 5 + 4] else { continue }
            let len = name.utf8CodeUnitCount
            if memcmp(local, name.utf8Start, len) == 0 && local[len] == 0 {
                let bytes = UnsafeBufferPointer(start: vs, count: ve - vs)
                // Without entity substitution (which would also expand entities a hostile file declares), libxml2
                // hands an attribute's '&' (written &amp; or &#38;) over as the text "&#38;", and only that
                // character so; a literal "&#38;" in the value arrives as "&#38;#38;". So this undoes it exactly.
                // (A byte scan: Foundation's String search here cost 5% of a whole PubMed ingest.)
                guard bytes.contains(0x26) else { return String(decoding: bytes, as: UTF8.self) }
                var out: [UInt8] = []
                out.reserveCapacity(bytes.count)
                var k = 0
                while k < bytes.count {
                    if bytes[k] == 0x26, k + 4 < bytes.count, bytes[k + 1] == 0x23, bytes[k + 2] == 0x33, bytes[k + 3] == 0x38,
                        bytes[k + 4] == 0x3B
                    {
                        out.append(0x26)
                        k += 5
                    } else {
                        out.append(bytes[k])
                        k += 1
                    }
                }
                return String(decoding: out, as: UTF8.self)
            }
        }
        return nil
    }

    /// Whether an attribute has a value (compared as bytes, no string made): for the Y/N flags and type checks.
    private func attribute(
        _ name: StaticString, _ n: Int, _ attrs: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?, is value: StaticString
    ) -> Bool {
        guard let attrs else { return false }
        for i in 0..<n {
            guard let local = attrs[i * 5], let vs = attrs[i * 5 + 3], let ve = attrs[i * 5 + 4] else { continue }
            let len = name.utf8CodeUnitCount
            if memcmp(local, name.utf8Start, len) == 0 && local[len] == 0 {
                return ve - vs == value.utf8CodeUnitCount && memcmp(vs, value.utf8Start, value.utf8CodeUnitCount) == 0
            }
        }
        return false
    }

    private func begin(_ f: Field) {
        capture = f
        captureDepth = depth
        textCount = 0
        listenToText(true)
    }

    /// Text events are wanted only while capturing: between captures the handler's `characters` is unset, so
    /// libxml2 makes no call for the indentation between elements (about half of all SAX events).
    @inline(__always) private func listenToText(_ on: Bool) {
        guard let handler = unitCtxt?.pointee.sax, !prologMode else { return }
        handler.pointee.characters = on ? sax.characters : nil
        handler.pointee.cdataBlock = on ? sax.cdataBlock : nil
    }

    private func start(_ localname: UnsafePointer<xmlChar>, _ n: Int, _ a: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?) {
        if prologMode {
            if rootName == nil { rootName = String(cString: localname) }
            return
        }
        let t = tag(localname)
        let parent = depth > 0 ? stack[depth - 1] : .other
        guard depth < PubMedUnitParser.maxDepth else {
            overflow += 1
            return
        }
        stack[depth] = t
        depth += 1
        guard capture == nil else { return }  // inline markup inside captured text
        switch (t, parent) {
        case (.pmid, .medlineCitation):
            if article.pmid.isEmpty {
                attrA = attribute("Version", n, a)
                begin(.pmid)
            }
        case (.pmid, .deleteCitation):
            attrA = attribute("Version", n, a)
            begin(.deletedPMID)
        case (.articleTitle, .article): begin(.title)
        case (.vernacularTitle, .article): begin(.vernacularTitle)
        case (.abstractText, .abstract):
            if depth >= 3, stack[depth - 3] == .article {
                attrA = attribute("Label", n, a)
                attrB = attribute("NlmCategory", n, a)
                begin(.abstractText)
            }
        case (.title, .journal): begin(.journalTitle)
        case (.isoAbbreviation, .journal): begin(.journalISO)
        case (.issn, .journal): begin(.issn)
        case (.volume, .journalIssue): begin(.volume)
        case (.issue, .journalIssue): begin(.issue)
        case (.year, .pubDate) where inJournalIssue: begin(.year)
        case (.month, .pubDate) where inJournalIssue: begin(.month)
        case (.day, .pubDate) where inJournalIssue: begin(.day)
        case (.season, .pubDate) where inJournalIssue: begin(.season)
        case (.medlineDate, .pubDate) where inJournalIssue: begin(.medlineDate)
        case (.author, .authorList):
            if depth >= 3, stack[depth - 3] == .article { article.authors.append(.init()) }
        case (.lastName, .author) where inArticleAuthor: begin(.lastName)
        case (.foreName, .author) where inArticleAuthor: begin(.foreName)
        case (.initials, .author) where inArticleAuthor: begin(.initials)
        case (.suffix, .author) where inArticleAuthor: begin(.suffix)
        case (.collectiveName, .author) where inArticleAuthor: begin(.collectiveName)
        case (.identifier, .author) where inArticleAuthor:
            if attribute("Source", n, a, is: "ORCID") { begin(.orcid) }
        case (.affiliation, .affiliationInfo):
            if depth >= 4, stack[depth - 3] == .author, stack[depth - 4] == .authorList,
                !article.authors.isEmpty
            {
                begin(.affiliation)
            }
        case (.language, .article): begin(.language)
        case (.publicationType, .publicationTypeList):
            attrA = attribute("UI", n, a)
            begin(.publicationType)
        case (.elocationID, .article):
            if attribute("EIdType", n, a, is: "doi") { begin(.elocationDOI) }
        case (.descriptorName, .meshHeading):
            attrA = attribute("UI", n, a)
            flag = attribute("MajorTopicYN", n, a, is: "Y")
            begin(.descriptor)
        case (.qualifierName, .meshHeading):
            attrA = attribute("UI", n, a)
            flag = attribute("MajorTopicYN", n, a, is: "Y")
            begin(.qualifier)
        case (.keyword, .keywordList):
            flag = attribute("MajorTopicYN", n, a, is: "Y")
            begin(.keyword)
        case (.articleId, .articleIdList):
            if depth >= 3, stack[depth - 3] == .pubmedData, attribute("IdType", n, a, is: "doi") {
                begin(.articleIdDOI)
            }
        default: break
        }
    }

    private var inJournalIssue: Bool { depth >= 3 && stack[depth - 3] == .journalIssue }
    private var inArticleAuthor: Bool {
        depth >= 3 && stack[depth - 3] == .authorList && !article.authors.isEmpty
    }

    private func end() {
        if prologMode { return }
        if overflow > 0 {
            overflow -= 1
            return
        }
        defer { depth -= 1 }
        guard let f = capture, depth == captureDepth else { return }
        capture = nil
        listenToText(false)
        let s = PubMedUnitParser.normalise(UnsafeBufferPointer(start: textBytes, count: textCount))
        switch f {
        case .pmid:
            article.pmid = s
            article.version = attrA.flatMap { Int($0) } ?? 1
        case .deletedPMID: deletions.append((s, attrA.flatMap { Int($0) } ?? 1))
        case .title: article.title = s
        case .vernacularTitle: article.vernacularTitle = s
        case .abstractText: article.abstractSections.append(.init(label: attrA, nlmCategory: attrB, text: s))
        case .journalTitle: article.journalTitle = s
        case .journalISO: article.journalISO = s
        case .issn: article.issn = s
        case .volume: article.volume = s
        case .issue: article.issue = s
        case .year: article.pubDate.year = s
        case .month: article.pubDate.month = s
        case .day: article.pubDate.day = s
        case .season: article.pubDate.season = s
        case .medlineDate: article.pubDate.medlineDate = s
        case .lastName: article.authors[article.authors.count - 1].lastName = s
        case .foreName: article.authors[article.authors.count - 1].foreName = s
        case .initials: article.authors[article.authors.count - 1].initials = s
        case .suffix: article.authors[article.authors.count - 1].suffix = s
        case .collectiveName: article.authors[article.authors.count - 1].collectiveName = s
        case .affiliation: article.authors[article.authors.count - 1].affiliations.append(s)
        case .orcid: article.authors[article.authors.count - 1].orcid = s
        case .language: article.languages.append(s)
        case .publicationType: article.publicationTypes.append(.init(name: s, ui: attrA ?? ""))
        case .elocationDOI: if article.doi == nil { article.doi = s }
        case .descriptor: article.mesh.append(.init(descriptor: s, ui: attrA ?? "", major: flag))
        case .qualifier:
            if !article.mesh.isEmpty {
                article.mesh[article.mesh.count - 1].qualifiers.append(.init(name: s, ui: attrA ?? "", major: flag))
            }
        case .keyword: article.keywords.append(.init(text: s, major: flag))
        case .articleIdDOI: if article.articleIdDOI == nil { article.articleIdDOI = s }
        }
    }

    /// Collapses runs of XML whitespace to one space and trims the ends.
    @inline(__always) private func appendText(_ p: UnsafePointer<UInt8>, _ n: Int) {
        if textCount + n > textCapacity {
            textCapacity = max(textCapacity * 2, textCount + n)
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: textCapacity)
            bigger.update(from: textBytes, count: textCount)
            textBytes.deallocate()
            textBytes = bigger
        }
        (textBytes + textCount).update(from: p, count: n)
        textCount += n
    }

    static func normalise(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        // Fast path: nothing to collapse (single spaces only, no tabs or newlines, no space at the ends).
        let clean = { (b: UnsafeBufferPointer<UInt8>) -> Bool in
            guard let base = b.baseAddress, b.count > 0 else { return true }
            if b[0] == 0x20 || b[b.count - 1] == 0x20 { return false }
            let raw = UnsafeRawPointer(base)
            var i = 0
            var prevSpace = false
            let ones: UInt64 = 0x0101_0101_0101_0101
            let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
            while i + 8 <= b.count {
                let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // A control character (tab, newline, ...) anywhere in the word.
                if (x &- ones &* 0x20) & ~x & 0x8080_8080_8080_8080 != 0 { return false }
                // Exact mask of space bytes; two adjacent ones (also across words) need collapsing.
                let t = x ^ (ones &* 0x20)
                let spaces = ~(((t & low7) &+ low7) | t) & 0x8080_8080_8080_8080
                if spaces & (spaces >> 8) != 0 || (prevSpace && spaces & 0x80 != 0) { return false }
                prevSpace = spaces >> 63 != 0
                i += 8
            }
            while i < b.count {
                let c = b[i]
                if c < 0x20 || (c == 0x20 && prevSpace) { return false }
                prevSpace = c == 0x20
                i += 1
            }
            return true
        }(bytes)
        if clean { return String(decoding: bytes, as: UTF8.self) }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var pendingSpace = false
        for b in bytes {
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
