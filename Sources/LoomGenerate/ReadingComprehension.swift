// Reading-comprehension mining with no model (the AdaptLLM recipe, arXiv 2309.09530): tasks the text itself
// answers, mined from each chunk and appended to it as question/answer turns. Every answer is taken from the
// chunk by construction (a sentence, part of a sentence, its title, its terms, or a label fixed by a connective).

import Foundation
import LoomCore

public enum RCTask: String, CaseIterable, Sendable {
    case title
    case wordToText = "word_to_text"
    case keywords
    case nli
    case paraphrase
    case cause
    case effect
    case completion

    var templateKey: String { rawValue }
}

public struct RCExample: Equatable, Sendable {
    public var task: RCTask
    public var template: String
    public var question: String
    public var answer: String
    /// What the question was built from (sentences or parts of them from the chunk), for checking and auditing.
    public var values: [String: String] = [:]
}

/// Document frequencies of candidate terms over the whole input: a term is a domain keyword of a chunk when it is
/// frequent there, occurs in at least two chunks, and in at most a tenth of them (not a general word).
public struct TermStatistics: Sendable {
    public private(set) var documents = 0
    var df: [String: Int] = [:]

    public init() {}

    public mutating func add(_ text: String) {
        documents += 1
        for t in Set(RCMiner.terms(text).map { $0.lowercased() }) { df[t, default: 0] += 1 }
    }

    /// Up to `limit` terms of `text`, best first, in the form they first appear in the text.
    func keywords(_ text: String, limit: Int) -> [String] {
        var tf: [String: Int] = [:]
        var surface: [String: String] = [:]
        for t in RCMiner.terms(text) {
            let k = t.lowercased()
            tf[k, default: 0] += 1
            if surface[k] == nil { surface[k] = t }
        }
        let n = Double(max(1, documents))
        let maxDF = max(2, documents / 10)
        let scored = tf.compactMap { k, f -> (String, Double)? in
            let d = df[k] ?? 1
            guard d >= 2 || documents < 10, d <= maxDF else { return nil }
            return (k, Double(f) * log(n / Double(d)))
        }
        return scored.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(limit).map { surface[$0.0]! }
    }
}

public struct RCMiner: Sendable {
    public let templates: [String: RCTemplates]
    public let statistics: TermStatistics
    /// At most this many examples of each task type per chunk.
    public var maxPerTask = 2

    public init(templates: [String: RCTemplates], statistics: TermStatistics) {
        self.templates = templates
        self.statistics = statistics
    }

    /// "ko" when most letters are Hangul, else "en".
    static func language(_ text: String) -> String {
        var hangul = 0
        var letters = 0
        for u in text.unicodeScalars where u.properties.isAlphabetic {
            letters += 1
            if (0xAC00...0xD7A3).contains(u.value) || (0x1100...0x11FF).contains(u.value) { hangul += 1 }
        }
        return letters > 0 && hangul * 10 >= letters * 3 ? "ko" : "en"
    }

    static let stopwords = StopWords.english

    /// Candidate terms: words of four or more letters (hyphens allowed), not numbers, not stopwords; Hangul words of
    /// two or more syllables.
    static func terms(_ text: String) -> [String] {
        var out: [String] = []
        for raw in text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-") }) {
            let w = raw.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
            guard w.contains(where: \.isLetter) else { continue }
            let hangul = w.unicodeScalars.contains { (0xAC00...0xD7A3).contains($0.value) }
            if hangul {
                if w.count >= 2 { out.append(w) }
            } else if w.count >= 4, !stopwords.contains(w.lowercased()) {
                out.append(w)
            }
        }
        return out
    }

    struct Connectives {
        let entailment: [String]
        let contradiction: [String]
        let neutral: [String]
        /// "S1. In other words, S2": the same meaning.
        let restatement: [String]
        /// Within one sentence: "EFFECT because CAUSE".
        let causeMarkers: [String]
        /// Korean "CAUSE 때문에 EFFECT" puts the cause first.
        let causeFirst: Bool

        static let en = Connectives(
            entailment: ["Therefore", "Thus", "Hence", "Consequently", "Accordingly", "As a result", "In conclusion"],
            contradiction: [
                "However", "But", "Nevertheless", "Nonetheless", "In contrast", "Conversely", "On the other hand",
            ],
            neutral: ["Moreover", "Furthermore", "In addition", "Additionally", "Besides"],
            restatement: ["In other words", "That is", "Namely", "Put differently", "Stated differently"],
            causeMarkers: [" because ", " due to ", " owing to ", " as a result of ", " caused by "], causeFirst: false)
        static let ko = Connectives(
            entailment: ["그러므로", "따라서", "그 결과", "결과적으로"],
            contradiction: ["그러나", "하지만", "반면에", "반면"],
            neutral: ["또한", "게다가", "아울러"],
            restatement: ["즉", "다시 말해", "다시 말하면"],
            causeMarkers: [" 때문에 ", "때문에 "], causeFirst: true)
    }

    /// The sentence after a leading connective ("However, the ..." -> "The ..."), or nil if it has none of them.
    static func strip(_ sentence: String, _ connectives: [String]) -> String? {
        for c in connectives where sentence.hasPrefix(c) {
            var rest = sentence.dropFirst(c.count)
            guard let f = rest.first, f == "," || f == " " else { continue }
            rest = rest.drop(while: { $0 == "," || $0 == " " })
            guard rest.split(separator: " ").count >= 3 else { return nil }
            return rest.prefix(1).uppercased() + rest.dropFirst()
        }
        return nil
    }

    static func words(_ s: String) -> Int { s.split(separator: " ").count }

    /// Mines tasks from one chunk. Returns the text to show (the title is taken out when it becomes a task) and the
    /// examples, at most `maxPerTask` per type, phrased with templates picked by `seed`.
    public func mine(_ text: String, title: String?, seed: UInt64) -> (text: String, examples: [RCExample]) {
        let lang = RCMiner.language(text)
        let t = templates[lang] ?? templates["en"]!
        let conn = lang == "ko" ? Connectives.ko : Connectives.en
        var rng = SplitMix64(seed: seed)
        var shown = text
        var candidates: [RCTask: [(values: [String: String], answer: String, key: String)]] = [:]

        // Title: only when the chunk starts with it (the answer is then in the chunk, and is taken out of the text).
        if let title, !title.isEmpty, shown.hasPrefix(title) {
            let rest = shown.dropFirst(title.count).trimmingCharacters(in: .whitespacesAndNewlines)
            if RCMiner.words(rest) >= 20 {
                candidates[.title] = [([:], title, RCTask.title.templateKey)]
                shown = rest
            }
        }
        let sentences = SentenceSplitter.split(shown).map {
            String(shown[$0]).split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        }.filter { !$0.isEmpty }

        // Keywords and word-to-text.
        let keywords = statistics.keywords(shown, limit: 6)
        if keywords.count >= 3 {
            candidates[.keywords] = [([:], keywords.prefix(5).joined(separator: ", "), RCTask.keywords.templateKey)]
        }
        for s in sentences where RCMiner.words(s) >= 6 && RCMiner.words(s) <= 60 {
            let lower = s.lowercased()
            let inside = keywords.filter { lower.contains($0.lowercased()) }
            if inside.count >= 2 {
                candidates[.wordToText, default: []].append(
                    (["words": inside.prefix(3).joined(separator: ", ")], s, RCTask.wordToText.templateKey))
            }
        }

        // Inference and cause/effect from connectives between consecutive sentences.
        for i in sentences.indices.dropFirst() {
            let premise = sentences[i - 1]
            guard RCMiner.words(premise) >= 4 else { continue }
            for (label, list) in [("entailment", conn.entailment), ("contradiction", conn.contradiction), ("neutral", conn.neutral)] {
                if let hypothesis = RCMiner.strip(sentences[i], list) {
                    candidates[.nli, default: []].append(
                        (["premise": premise, "hypothesis": hypothesis], t.answer(label), RCTask.nli.templateKey))
                    if label == "contradiction" {
                        candidates[.paraphrase, default: []].append(
                            (["first": premise, "second": hypothesis], t.answer("contradiction"),
                             RCTask.paraphrase.templateKey))
                    }
                    if label == "entailment" {
                        candidates[.effect, default: []].append(
                            (["cause": trimEnd(premise)], hypothesis, RCTask.effect.templateKey))
                    }
                }
            }
        }
        // Paraphrase: a sentence restated by the next one.
        for i in sentences.indices.dropFirst() where RCMiner.words(sentences[i - 1]) >= 4 {
            if let second = RCMiner.strip(sentences[i], conn.restatement) {
                candidates[.paraphrase, default: []].append(
                    (["first": sentences[i - 1], "second": second], t.answer("entailment"), RCTask.paraphrase.templateKey))
            }
        }
        // Cause/effect inside a sentence.
        for s in sentences {
            for marker in conn.causeMarkers {
                guard let r = s.range(of: marker) else { continue }
                var first = String(s[..<r.lowerBound]).trimmingCharacters(in: .whitespaces)
                if first.hasSuffix(",") { first.removeLast() }
                let second = trimEnd(String(s[r.upperBound...]))
                let (cause, effect) = conn.causeFirst ? (first, second) : (second, first)
                guard RCMiner.words(cause) >= 2, RCMiner.words(effect) >= 3 else { continue }
                let effectClause = effect.prefix(1).lowercased() + effect.dropFirst()
                candidates[.cause, default: []].append((["effect": effectClause], cause, RCTask.cause.templateKey))
                break
            }
        }

        // Completion: the second half of a long sentence.
        for s in sentences where RCMiner.words(s) >= 12 {
            let w = s.split(separator: " ")
            let cut = w.count / 2
            candidates[.completion, default: []].append(
                (["prefix": w[..<cut].joined(separator: " ")], w[cut...].joined(separator: " "),
                 RCTask.completion.templateKey))
        }

        var examples: [RCExample] = []
        for task in RCTask.allCases {
            guard var list = candidates[task], !list.isEmpty else { continue }
            rng.shuffle(&list)
            for c in list.prefix(maxPerTask) {
                let (name, question) = t.render(c.key, c.values, pick: &rng)
                examples.append(
                    RCExample(task: task, template: name, question: question, answer: c.answer, values: c.values))
            }
        }
        rng.shuffle(&examples)
        return (shown, examples)
    }

    /// Text as `verbatim` compares it: lower-cased, runs of whitespace made one space.
    public static func normalized(_ s: String) -> String {
        s.lowercased().split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// Whether the answer is found word for word in the chunk (`chunk` given `normalized`), ignoring case and
    /// differences in whitespace; a keyword list when every keyword is. nil for answers that are labels, not spans
    /// of the text (nli, paraphrase).
    public static func verbatim(_ e: RCExample, in chunk: String) -> Bool? {
        switch e.task {
        case .nli, .paraphrase: return nil
        case .keywords:
            return e.answer.components(separatedBy: ", ").allSatisfy { chunk.contains(normalized($0)) }
        default: return chunk.contains(normalized(e.answer))
        }
    }

    func trimEnd(_ s: String) -> String {
        var x = s.trimmingCharacters(in: .whitespaces)
        while let l = x.last, l == "." || l == "!" || l == "?" || l == ";" || l == "," { x.removeLast() }
        return x
    }
}
