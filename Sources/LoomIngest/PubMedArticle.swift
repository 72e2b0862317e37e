// One PubMed/MEDLINE citation as Loom keeps it, and its document record.
// Field meanings follow NLM's PubMed DTD (pubmed_250101.dtd and earlier): https://dtd.nlm.nih.gov/ncbi/pubmed/

import LoomCore

public struct PubMedArticle: Equatable, Sendable {
    public struct AbstractSection: Equatable, Sendable {
        public var label: String?
        public var nlmCategory: String?
        public var text: String
    }
    public struct Qualifier: Equatable, Sendable {
        public var name: String
        public var ui: String
        public var major: Bool
    }
    public struct MeshHeading: Equatable, Sendable {
        public var descriptor: String
        public var ui: String
        public var major: Bool
        public var qualifiers: [Qualifier] = []
    }
    public struct Keyword: Equatable, Sendable {
        public var text: String
        public var major: Bool
    }
    public struct Author: Equatable, Sendable {
        public var lastName: String?
        public var foreName: String?
        public var initials: String?
        public var suffix: String?
        public var collectiveName: String?
        public var affiliations: [String] = []
        public var orcid: String?
    }
    public struct PubDate: Equatable, Sendable {
        public var year: String?
        public var month: String?
        public var day: String?
        public var season: String?
        public var medlineDate: String?

        /// The year as a number: `Year`, or the first four-digit number of `MedlineDate` ("1998 Dec-1999 Jan").
        public var yearNumber: Int? {
            if let y = year, let n = Int(y) { return n }
            guard let m = medlineDate else { return nil }
            var digits = ""
            for c in m {
                if c.isASCII && c.isNumber {
                    digits.append(c)
                    if digits.count == 4 { return Int(digits) }
                } else {
                    digits = ""
                }
            }
            return nil
        }
    }
    public struct PublicationType: Equatable, Sendable {
        public var name: String
        public var ui: String
    }

    public var pmid = ""
    /// The PMID's `Version` attribute (1 for almost every citation; NLM versions a few, e.g. F1000 reports).
    public var version = 1
    public var title = ""
    public var vernacularTitle: String?
    public var abstractSections: [AbstractSection] = []
    public var mesh: [MeshHeading] = []
    public var keywords: [Keyword] = []
    public var journalTitle: String?
    public var journalISO: String?
    public var issn: String?
    public var volume: String?
    public var issue: String?
    public var pubDate = PubDate()
    public var authors: [Author] = []
    public var languages: [String] = []
    public var publicationTypes: [PublicationType] = []
    /// DOI from `ELocationID EIdType="doi"`, else from `PubmedData/ArticleIdList/ArticleId IdType="doi"`.
    public var doi: String?
    var articleIdDOI: String?

    /// The abstract as text: each section on its own line, labelled sections as "LABEL: text".
    /// (The reference for the streamed `text` in `writeDocument`.) Sections without text are left out.
    public var abstract: String {
        abstractSections.filter { !$0.text.isEmpty }.map { s in
            if let l = s.label ?? s.nlmCategory, !l.isEmpty, l != "UNASSIGNED" { return "\(l): \(s.text)" }
            return s.text
        }.joined(separator: "\n")
    }

    /// Title and abstract, the text later stages read.
    public var text: String { PubMedArticle.text(title: title, abstract: abstract) }

    static func text(title: String, abstract a: String) -> String {
        a.isEmpty ? title : title.isEmpty ? a : title + "\n\n" + a
    }

    public var documentID: String { version == 1 ? "pubmed:\(pmid)" : "pubmed:\(pmid).\(version)" }

    /// Structured abstracts keep their sections in meta; a plain one-paragraph abstract needs no list.
    var isStructured: Bool {
        abstractSections.count > 1 || abstractSections.contains { $0.label != nil || $0.nlmCategory != nil }
    }

    /// Writes the document record (DESIGN.md: `id`, `text`, `source`, `meta`) as one JSON line, without
    /// its newline.
    public func writeDocument(source: String, to w: JSONWriter) {
        w.beginObject()
        w.field("id", documentID)
        // text = title, blank line, abstract: written in parts, as `text` builds it.
        w.key("text")
        w.beginString()
        w.stringPart(title)
        var wroteAny = !title.isEmpty
        var firstSection = true
        for s in abstractSections where !s.text.isEmpty {
            if wroteAny { w.stringPart(firstSection ? "\n\n" : "\n") }
            wroteAny = true
            firstSection = false
            if let l = s.label ?? s.nlmCategory, !l.isEmpty, l != "UNASSIGNED" {
                w.stringPart(l)
                w.stringPart(": ")
            }
            w.stringPart(s.text)
        }
        w.endString()
        w.field("source", source)
        w.key("meta")
        w.beginObject()
        w.field("pmid", pmid)
        w.key("version")
        w.int(version)
        w.field("title", title)
        w.field("vernacular_title", vernacularTitle)
        if isStructured {
            w.key("abstract_sections")
            w.beginArray()
            for s in abstractSections {
                w.beginObject()
                w.field("label", s.label)
                w.field("nlm_category", s.nlmCategory)
                w.field("text", s.text)
                w.endObject()
            }
            w.endArray()
        }
        w.key("mesh")
        w.beginArray()
        for m in mesh {
            w.beginObject()
            w.field("descriptor", m.descriptor)
            w.field("ui", m.ui)
            w.key("major")
            w.bool(m.major)
            w.key("qualifiers")
            w.beginArray()
            for q in m.qualifiers {
                w.beginObject()
                w.field("name", q.name)
                w.field("ui", q.ui)
                w.key("major")
                w.bool(q.major)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.key("keywords")
        w.beginArray()
        for k in keywords {
            w.beginObject()
            w.field("text", k.text)
            w.key("major")
            w.bool(k.major)
            w.endObject()
        }
        w.endArray()
        w.key("journal")
        w.beginObject()
        w.field("title", journalTitle)
        w.field("iso_abbreviation", journalISO)
        w.field("issn", issn)
        w.field("volume", volume)
        w.field("issue", issue)
        w.endObject()
        w.key("pub_date")
        w.beginObject()
        w.field("year", pubDate.year)
        w.field("month", pubDate.month)
        w.field("day", pubDate.day)
        w.field("season", pubDate.season)
        w.field("medline_date", pubDate.medlineDate)
        w.endObject()
        w.key("authors")
        w.beginArray()
        for a in authors {
            w.beginObject()
            w.field("last_name", a.lastName)
            w.field("fore_name", a.foreName)
            w.field("initials", a.initials)
            w.field("suffix", a.suffix)
            w.field("collective_name", a.collectiveName)
            if !a.affiliations.isEmpty {
                w.key("affiliations")
                w.beginArray()
                for f in a.affiliations { w.string(f) }
                w.endArray()
            }
            w.field("orcid", a.orcid)
            w.endObject()
        }
        w.endArray()
        w.key("languages")
        w.beginArray()
        for l in languages { w.string(l) }
        w.endArray()
        w.key("publication_types")
        w.beginArray()
        for p in publicationTypes {
            w.beginObject()
            w.field("name", p.name)
            w.field("ui", p.ui)
            w.endObject()
        }
        w.endArray()
        w.field("doi", doi)
        w.endObject()
        w.endObject()
    }

    /// The document record as a value (the reference form `writeDocument` is tested against).
    public func document(source: String) -> JSONValue {
        let w = JSONWriter()
        writeDocument(source: source, to: w)
        return (try? JSONValue.parse(String(decoding: w.bytes, as: UTF8.self))) ?? .null
    }
}
