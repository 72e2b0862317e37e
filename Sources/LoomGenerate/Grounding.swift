// How much of a generated answer comes from its source chunk: the share of the answer's content words found in
// the chunk, and the longest run of the answer's words that appears word for word in the chunk. A model that answers
// from the text scores near 1 with long spans; one that makes things up scores low. Written to `meta.scores` of
// every generated QA record (`grounding`, `longest_span`); `min_grounding` drops what falls below.

import Foundation
import LoomCore

public struct Grounding: Equatable, Sendable {
    /// Share of the answer's distinct content words (RCMiner.terms: four letters or more and not a stopword, or a
    /// Korean word of two syllables or more) found in the chunk; 1 when the answer has none.
    public var score: Double
    /// The longest run of consecutive answer words found consecutively in the chunk (case-insensitive).
    public var longestSpan: Int

    /// The record's `meta.scores`.
    public var json: JSONValue {
        var o = JSONObject()
        o.append("grounding", .double((score * 1000).rounded() / 1000))
        o.append("longest_span", .int(longestSpan))
        return .object(o)
    }

    public static func measure(answer: String, chunk: String) -> Grounding {
        let chunkWords = words(chunk)
        let chunkSet = Set(chunkWords)
        let chunkLower = chunk.lowercased()
        let terms = Set(RCMiner.terms(answer).map { $0.lowercased() })
        var found = 0
        for t in terms {
            if chunkSet.contains(t) {
                found += 1
            } else if t.unicodeScalars.contains(where: { (0xAC00...0xD7A3).contains($0.value) }) {
                // Korean attaches particles to words (보험료는, 보험료를): a stem without its last syllable counts.
                let stem = t.count >= 3 ? String(t.dropLast()) : t
                if chunkLower.contains(stem) { found += 1 }
            }
        }
        let score = terms.isEmpty ? 1 : Double(found) / Double(terms.count)
        return Grounding(score: score, longestSpan: longestCommonRun(words(answer), chunkWords))
    }

    /// Lower-cased words: letters and digits (a hyphen or apostrophe inside a word kept).
    static func words(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-" || $0 == "'") })
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "-'")) }.filter { !$0.isEmpty }
    }

    /// The longest common contiguous run of two word sequences (dynamic programming over one row).
    static func longestCommonRun(_ a: [String], _ b: [String]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var prev = [Int](repeating: 0, count: b.count + 1)
        var cur = prev
        var best = 0
        for i in 1...a.count {
            for j in 1...b.count {
                cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : 0
                best = max(best, cur[j])
            }
            swap(&prev, &cur)
        }
        return best
    }
}
