// `loom tasks rct|cloze`: multiple-choice items (ChoiceItem records) built from the domain's own documents, no model
// needed (docs/evaluation.md):
//   rct    every sentence of a structured PubMed abstract's BACKGROUND / OBJECTIVE / METHODS / RESULTS /
//          CONCLUSIONS sections, to be classified into its section (PubMed RCT, Dernoncourt & Lee 2017);
//   cloze  a record's text up to a content word of its last sentence; the word among distractors of similar length
//          taken from the other records.
// The phrasings are templates/tasks/rct.yaml and cloze.yaml.

import Foundation
import LoomCore
import Mustache

public struct TasksConfig: Codable, Equatable, Sendable {
    /// "rct" or "cloze".
    public var kind = "rct"
    public var seed = 1
    /// Most items written (in input order); nil: all.
    public var maxItems: Int?
    /// Choices per cloze item (the answer and choices - 1 distractors).
    public var choices = 4
    /// The field holding a cloze record's text.
    public var textField = "text"

    public init(kind: String = "rct") { self.kind = kind }

    public static let kinds = ["rct", "cloze"]
    public static let keys = ["kind", "seed", "max_items", "choices", "text_field", "templates"]

    enum CodingKeys: String, CodingKey { case kind, seed, maxItems, choices, textField }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(String.self, forKey: .kind) ?? "rct"
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 1
        maxItems = try c.decodeIfPresent(Int.self, forKey: .maxItems)
        choices = try c.decodeIfPresent(Int.self, forKey: .choices) ?? 4
        textField = try c.decodeIfPresent(String.self, forKey: .textField) ?? "text"
    }

    public func validate() throws {
        guard TasksConfig.kinds.contains(kind) else {
            throw LoomError("tasks: unknown kind '\(kind)' (available: \(TasksConfig.kinds.joined(separator: ", ")))")
        }
        if let m = maxItems, m < 1 { throw LoomError("tasks: max_items must be at least 1 (got \(m))") }
        guard choices >= 2 else { throw LoomError("tasks: choices must be at least 2 (got \(choices))") }
    }
}

/// A 64-bit hash of a seed and a key (FNV-1a, then SplitMix64's finaliser), the same on every platform: what a
/// split side or a record's random choices are drawn from, so they do not depend on the order records are read in.
func stableHash(_ seed: Int, _ key: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in Array("\(seed)\u{0}".utf8) + Array(key.utf8) { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    var mix = SplitMix64(seed: h)
    return mix.next()
}

/// The task phrasings of templates/tasks/.
struct TaskTemplates {
    struct Category {
        var nlm: String
        var choice: String
        var labels: Set<String>
    }

    let context: MustacheTemplate
    let categories: [Category]
    /// The files' text, hashed into the stage config so a changed phrasing re-runs the stage.
    let text: String

    init(directory: String, kind: String) throws {
        let path = FS.join(directory, "tasks/\(kind).yaml")
        let text = try FS.readText(path)
        let root: [String: Any]
        do {
            guard let r = try YAMLFile.load(text, file: path) as? [String: Any] else {
                throw LoomError("\(path): expected a mapping with 'context'")
            }
            root = r
        } catch let e as LoomError { throw e } catch { throw LoomError("\(path): not valid YAML: \(error)") }
        guard let ctx = root["context"] as? String else { throw LoomError("\(path): 'context' must be a string") }
        do {
            // CONTENT_TYPE TEXT: `{{x}}` inserts x verbatim, not HTML-escaped.
            context = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + ctx)
        } catch { throw LoomError("\(path): 'context' is not valid Mustache: \(error)") }
        var cats: [Category] = []
        if kind == "rct" {
            guard let list = root["categories"] as? [[String: Any]], !list.isEmpty else {
                throw LoomError("\(path): 'categories' must be a list of {nlm, choice, labels}")
            }
            for (i, c) in list.enumerated() {
                guard let nlm = c["nlm"] as? String, let choice = c["choice"] as? String, !choice.isEmpty else {
                    throw LoomError("\(path): category \(i + 1) needs 'nlm' and 'choice' strings")
                }
                let labels = (c["labels"] as? [Any] ?? []).map { "\($0)".uppercased() }
                cats.append(Category(nlm: nlm.uppercased(), choice: choice, labels: Set(labels + [nlm.uppercased()])))
            }
        }
        categories = cats
        self.text = text
    }

    /// The class of a section: its NLM category when it is one of the classes, else the one class its label's
    /// words name; nil when none or several do.
    func category(nlm: String?, label: String?) -> Int? {
        if let n = nlm?.uppercased(), let i = categories.firstIndex(where: { $0.nlm == n }) { return i }
        guard let label else { return nil }
        let words = Set(label.uppercased().split(whereSeparator: { !$0.isLetter }).map(String.init))
        let hits = categories.indices.filter { !categories[$0].labels.isDisjoint(with: words) }
        return hits.count == 1 ? hits[0] : nil
    }
}

public struct TasksStage: Stage {
    public let settings: TasksConfig
    public let input: String
    public let templateDirectory: String
    let templates: TaskTemplates

    public init(config: TasksConfig, input: String, templates: String? = nil) throws {
        try config.validate()
        settings = config
        self.input = input
        templateDirectory = try templates ?? TemplateDirectory.locate()
        self.templates = try TaskTemplates(directory: templateDirectory, kind: config.kind)
    }

    public var name: String { "tasks-" + settings.kind }
    public var config: JSONValue {
        guard case .object(var o) = (try? JSONValue(encoding: settings)) ?? .null else { return .null }
        o["templates_sha256"] = .string(SHA256.hex(templates.text))
        return .object(o)
    }
    public var inputs: [StageInput] { RecordSource.stageInputs([input]) }

    func provenance(_ ids: [String]) -> JSONValue {
        var p = JSONObject()
        p.append("ids", .array(ids.map { .string($0) }))
        p.append("generator", .string("tasks-" + settings.kind))
        p.append("templates", .array([.string("tasks/" + settings.kind)]))
        p.append("backend", .string("rules"))
        p.append("model", .null)
        p.append("seed", .int(settings.seed))
        return .object(p)
    }

    public func run(_ ctx: StageContext) throws {
        let source = try RecordSource.resolve([input])
        ctx.progress.begin(totalBytes: source.totalBytes, unit: "records")
        let bad: (JSONParseError, String, Int) throws -> Void = { e, path, line in
            try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line))
        }
        if settings.kind == "rct" { try rct(source, ctx, bad: bad) } else { try cloze(source, ctx, bad: bad) }
    }

    // MARK: - rct

    func rct(_ source: RecordSource, _ ctx: StageContext, bad: (JSONParseError, String, Int) throws -> Void) throws {
        var items = 0
        var documents = 0
        var without = 0
        var skippedSections = 0
        var perClass = [Int](repeating: 0, count: templates.categories.count)
        let choices = templates.categories.map(\.choice)
        try source.forEachRecord(progress: ctx.progress, { r, path, line in
            if let m = settings.maxItems, items >= m { return }
            guard let id = DocumentKeys.scalar(r["id"]) else {
                try ctx.reject(Reject(source: path, reason: "record has no 'id'", line: line))
                return
            }
            guard let sectionsValue = r["meta"]?["abstract_sections"], sectionsValue != .null else {
                without += 1
                return
            }
            guard let sections = sectionsValue.arrayValue else {
                try ctx.reject(Reject(source: path, reason: "meta.abstract_sections is not a list", line: line, id: id))
                return
            }
            documents += 1
            var k = 0
            for (si, s) in sections.enumerated() {
                guard let text = s["text"]?.stringValue else {
                    try ctx.reject(
                        Reject(source: path, reason: "meta.abstract_sections[\(si)] has no 'text'", line: line, id: id))
                    continue
                }
                guard
                    let c = templates.category(nlm: s["nlm_category"]?.stringValue, label: s["label"]?.stringValue)
                else {
                    skippedSections += 1
                    continue
                }
                for range in SentenceSplitter.split(text) {
                    if let m = settings.maxItems, items >= m { return }
                    let sentence = text[range].trimmingCharacters(in: .whitespaces)
                    guard sentence.contains(where: \.isLetter) else { continue }
                    let item = ChoiceItem(
                        id: "\(id)#rct\(k)", docId: id, task: "pubmed-rct",
                        context: templates.context.render(["sentence": sentence]), choices: choices, gold: c)
                    var meta = JSONObject()
                    meta.append("provenance", provenance([id]))
                    meta.append("section", s["label"] ?? .null)
                    meta.append("category", .string(templates.categories[c].nlm))
                    meta.append("sentence", .string(sentence))
                    try ctx.output.write(item.json(meta: .object(meta)))
                    k += 1
                    items += 1
                    perClass[c] += 1
                }
            }
        }, bad: bad)
        ctx.setCount("items", items)
        ctx.setCount("documents_with_sections", documents)
        ctx.setCount("documents_without_sections", without)
        ctx.setCount("sections_skipped", skippedSections)
        for (i, c) in templates.categories.enumerated() { ctx.setCount("items_" + c.choice, perClass[i]) }
    }

    // MARK: - cloze

    /// A word that can be hidden or offered as a distractor: letters only, five or more, not a stop word.
    static func isContent(_ w: Substring) -> Bool {
        w.count >= 5 && w.allSatisfy(\.isLetter) && !StopWords.english.contains(w.lowercased())
    }

    /// The words of a text with surrounding punctuation taken off, each with its range.
    static func words(_ text: String, in range: Range<String.Index>? = nil) -> [(word: Substring, start: String.Index)] {
        let r = range ?? text.startIndex..<text.endIndex
        var out: [(Substring, String.Index)] = []
        for token in text[r].split(whereSeparator: \.isWhitespace) {
            let trimmed = token.drop(while: { !$0.isLetter && !$0.isNumber })
            var end = trimmed.endIndex
            while end > trimmed.startIndex, !trimmed[trimmed.index(before: end)].isLetter,
                !trimmed[trimmed.index(before: end)].isNumber
            { end = trimmed.index(before: end) }
            let w = trimmed[trimmed.startIndex..<end]
            if !w.isEmpty { out.append((w, w.startIndex)) }
        }
        return out
    }

    /// The distractor's spelling in the answer's case pattern (all capitals, capitalised, or lower case).
    static func matchCase(_ word: String, like answer: Substring) -> String {
        if answer.allSatisfy(\.isUppercase) { return word.uppercased() }
        if answer.first?.isUppercase == true { return word.prefix(1).uppercased() + word.dropFirst() }
        return word
    }

    func cloze(_ source: RecordSource, _ ctx: StageContext, bad: (JSONParseError, String, Int) throws -> Void) throws {
        let field = settings.textField
        // Pass 1: the content words of the whole input, lower-cased, by length.
        var vocabulary = Set<String>()
        try source.forEachRecord({ r, _, _ in
            guard let t = r[field]?.stringValue else { return }
            for (w, _) in TasksStage.words(t) where TasksStage.isContent(w) { vocabulary.insert(w.lowercased()) }
        }, bad: { _, _, _ in })
        var byLength: [Int: [String]] = [:]
        for w in vocabulary.sorted() { byLength[w.count, default: []].append(w) }
        let longest = byLength.keys.max() ?? 0

        var items = 0
        var noWord = 0
        var noDistractors = 0
        let distractors = settings.choices - 1
        try source.forEachRecord(progress: ctx.progress, { r, path, line in
            if let m = settings.maxItems, items >= m { return }
            guard let text = r[field]?.stringValue else {
                try ctx.reject(Reject(source: path, reason: "record has no string '\(field)'", line: line))
                return
            }
            let id = DocumentKeys.scalar(r["id"]) ?? "\(path):\(line)"
            let docId = DocumentKeys.scalar(r["doc_id"]) ?? DocumentKeys.document(of: id)
            var rng = SplitMix64(seed: stableHash(settings.seed, id))
            // The hidden word: a content word of the last sentence with text before it.
            guard let last = SentenceSplitter.split(text).last else {
                noWord += 1
                return
            }
            let candidates = TasksStage.words(text, in: last).filter {
                TasksStage.isContent($0.word) && $0.start > text.startIndex
                    && !text[..<$0.start].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            }
            guard !candidates.isEmpty else {
                noWord += 1
                return
            }
            let pick = candidates[rng.below(candidates.count)]
            // Distractors: content words of other records (none that occurs in this one), drawn from the words
            // whose length is closest to the answer's, widening the band until enough are found.
            let own = Set(TasksStage.words(text).map { $0.word.lowercased() })
            let n = pick.word.count
            var band: [[String]] = []
            var total = 0
            var taken = Set<String>()
            var chosen: [String] = []
            var spread = 0
            while chosen.count < distractors, spread <= max(n, longest) {
                for len in Set([n - spread, n + spread]).sorted() {
                    if let l = byLength[len] {
                        band.append(l)
                        total += l.count
                    }
                }
                spread += 1
                var attempts = 0
                while chosen.count < distractors, total > 0, attempts < 32 * distractors {
                    attempts += 1
                    var i = rng.below(total)
                    var l = 0
                    while i >= band[l].count {
                        i -= band[l].count
                        l += 1
                    }
                    let w = band[l][i]
                    if own.contains(w) || !taken.insert(w).inserted { continue }
                    chosen.append(TasksStage.matchCase(w, like: pick.word))
                }
            }
            guard chosen.count == distractors else {
                noDistractors += 1
                return
            }
            var choices = chosen + [String(pick.word)]
            rng.shuffle(&choices)
            guard let gold = choices.firstIndex(of: String(pick.word)) else { return }
            var context = String(text[..<pick.start])
            while context.last?.isWhitespace == true { context.removeLast() }
            let item = ChoiceItem(
                id: id + "#cloze", docId: docId, task: "cloze",
                context: templates.context.render(["text": context]), choices: choices, gold: gold)
            var meta = JSONObject()
            meta.append("provenance", provenance(id == docId ? [id] : [id, docId]))
            try ctx.output.write(item.json(meta: .object(meta)))
            items += 1
        }, bad: bad)
        ctx.setCount("items", items)
        ctx.setCount("records_without_word", noWord)
        ctx.setCount("records_without_distractors", noDistractors)
        ctx.setCount("vocabulary", vocabulary.count)
    }
}
