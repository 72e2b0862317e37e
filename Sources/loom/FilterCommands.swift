import ArgumentParser
import Foundation
import LoomCore
import LoomFilter
import LoomPack

struct FilterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filter",
        abstract: "Drop, or only score, text records by the Gopher, C4 and FineWeb rules, OCR signs and a domain.",
        discussion: """
            Rule sets (--rules, checked in the order given; default:
            gopher-repetition,gopher-quality,fineweb,ocr):
              gopher-quality     word count, mean word length, # and ... per word,
                                 bullet and ellipsis lines, words with a letter,
                                 stop words (Korean ones for Hangul text)
              gopher-repetition  duplicate lines and paragraphs (count and
                                 characters), top 2-4-gram and repeated 5-10-gram
                                 character shares
              c4                 lines without terminal punctuation, of fewer
                                 than 3 words, with "javascript" or a cookie/terms
                                 phrase are removed; "lorem ipsum" or "{" drops the
                                 record; fewer than 5 sentences left drops it
              fineweb            share of lines ending in punctuation, of short
                                 lines, of duplicated line characters, newlines
                                 per word
              ocr                share of characters in dictionary-like words,
                                 replacement/private-use glyphs, tesseract's
                                 confidence of the record's OCR pages
              domain             cosine similarity to the centroid of seed records
                                 (--domain-seeds), below a threshold is dropped
            The thresholds are the papers' (and datatrove's) defaults; change any
            with --set RULE.OPTION=VALUE (null turns a check off); every option
            and its default is listed at the end of this help.

            --mode drop (default): a failing record goes to rejects.jsonl with the
            rule, check, measured value and threshold, and an excerpt; the rest are
            written on (c4 keeps only its kept lines). --mode score: every record is
            kept with its measurements in meta.quality, to choose thresholds by
            looking at data. Records without a string "text" pass through
            unchanged. The manifest counts drops by rule and check and gives the
            distribution (mean, p10, p50, p90) of every measurement.

            Examples:
              loom filter out/chunks -o out/filtered
              loom filter out/chunks -o out/scored --mode score --rules gopher-quality,c4
              loom filter out/pages -o out/f --set gopher-quality.min_doc_words=30 --set c4.remove_lines=false
              loom filter out/chunks -o out/f --rules domain --domain-seeds seeds.jsonl

            Options of each rule set (--set RULE.OPTION=VALUE; in a pipeline,
            RULE: { OPTION: VALUE }):
            """ + FilterCommand.listRules())

    @Argument(help: "Records to filter: a stage directory, a folder of .jsonl files or one .jsonl file.")
    var input: String?

    @OptionGroup var stage: StageOptions

    @Option(help: "Rule sets, comma-separated, in the order they are checked.")
    var rules = FilterConfig.defaultRules.joined(separator: ",")

    @Option(help: "drop: failing records go to rejects.jsonl; score: keep all, measurements in meta.quality.")
    var mode = "drop"

    @Option(name: .customLong("set"), help: "RULE.OPTION=VALUE, e.g. gopher-quality.min_doc_words=30 (repeatable).")
    var settings: [String] = []

    @Option(help: "In-domain records for the domain rule (adds it to --rules when missing).")
    var domainSeeds: String?

    @Option(help: "The domain rule's embedder: hashing or minilm.")
    var embedder = "hashing"

    @Option(help: "The minilm embedder's model directory (all-MiniLM-L6-v2).")
    var model: String?

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        try runStage(
            {
                var o = JSONObject()
                var ruleList = rules.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                if domainSeeds != nil && !ruleList.contains("domain") { ruleList.append("domain") }
                o["rules"] = .array(ruleList.map { .string($0) })
                o["mode"] = .string(mode)
                var perRule: [String: JSONObject] = [:]
                if let s = domainSeeds {
                    perRule["domain", default: JSONObject()]["seeds"] = .string(s)
                    perRule["domain", default: JSONObject()]["embedder"] = .string(embedder)
                    if let model { perRule["domain", default: JSONObject()]["model"] = .string(model) }
                }
                for s in settings {
                    guard let eq = s.firstIndex(of: "="), let dot = s[..<eq].firstIndex(of: ".") else {
                        throw LoomError("--set \(s): write RULE.OPTION=VALUE, e.g. gopher-quality.min_doc_words=30")
                    }
                    let rule = String(s[..<dot])
                    let key = String(s[s.index(after: dot)..<eq])
                    perRule[rule, default: JSONObject()][key] = FilterCommand.value(String(s[s.index(after: eq)...]))
                }
                for (k, v) in perRule { o[k] = .object(v) }
                let c = try FilterConfig.from(.object(o), context: "filter")
                let j = jobCount(jobs)
                guard let input else { throw LoomError("filter: give the records to filter (loom filter DIR -o OUT)") }
                return try FilterStage(config: c, input: input, embedder: try FilterCommand.embedder(c), jobs: j)
            }, options: stage)
    }

    /// A --set value: a number, true/false, null, a comma-separated list for list options, else a string.
    static func value(_ s: String) -> JSONValue {
        if s == "null" || s == "none" { return .null }
        if s == "true" { return .bool(true) }
        if s == "false" { return .bool(false) }
        if let i = Int(s) { return .int(i) }
        if let d = Double(s) { return .double(d) }
        if s.contains(",") { return .array(s.split(separator: ",").map { .string(String($0)) }) }
        return .string(s)
    }

    /// The domain rule's embedder factory (LoomPack's embedders), when the rules use it.
    static func embedder(_ c: FilterConfig) throws -> TextEmbedderFactory? {
        guard c.rules.contains("domain") else { return nil }
        let d = try DomainRule(options: c.options["domain"])
        return try PackTextEmbedder.factory(embedder: d.embedder, model: d.model, dim: d.dim)
    }
}

/// Every rule set's options and defaults, for --help.
extension FilterCommand {
    static func listRules() -> String {
        var out = ""
        let sets: [any RuleSet] = [GopherQuality(), GopherRepetition(), C4Quality(), FineWebQuality(), OCRQuality(), DomainRule()]
        for s in sets {
            out += "  \(s.name):\n"
            for (k, v) in s.options {
                var text: [UInt8] = []
                v.write(to: &text)
                out += "    \(k) = \(String(decoding: text, as: UTF8.self))\n"
            }
        }
        return out
    }
}
