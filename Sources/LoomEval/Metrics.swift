// Answer metrics after SQuAD's normalisation (the official evaluate-v1.1 script: lower case, punctuation and the
// articles a/an/the removed, whitespace collapsed), and percentile bootstrap intervals.

import Foundation
import LoomCore

public enum AnswerMetrics {
    /// SQuAD's `normalize_answer`. Punctuation is Python's `string.punctuation` (ASCII); other characters stay.
    public static func normalize(_ s: String) -> String {
        let punctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
        let lowered = s.lowercased()
        let noPunct = String(lowered.filter { !punctuation.contains($0) })
        let words = noPunct.split(whereSeparator: { $0.isWhitespace }).filter { !["a", "an", "the"].contains($0) }
        return words.joined(separator: " ")
    }

    public static func exactMatch(_ prediction: String, _ reference: String) -> Double {
        normalize(prediction) == normalize(reference) ? 1 : 0
    }

    /// Token F1 over the normalised words (multiset overlap), as SQuAD's `f1_score`.
    public static func f1(_ prediction: String, _ reference: String) -> Double {
        let p = normalize(prediction).split(separator: " ").map(String.init)
        let r = normalize(reference).split(separator: " ").map(String.init)
        var counts: [String: Int] = [:]
        for w in r { counts[w, default: 0] += 1 }
        var common = 0
        for w in p where (counts[w] ?? 0) > 0 {
            counts[w]! -= 1
            common += 1
        }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(p.count), recall = Double(common) / Double(r.count)
        return 2 * precision * recall / (precision + recall)
    }
}

/// A figure with its 95% percentile-bootstrap interval.
public struct Estimate: Sendable, Equatable {
    public var value: Double
    public var low: Double
    public var high: Double

    public var json: JSONValue {
        ["value": .double(value), "ci95": .array([.double(low), .double(high)])]
    }
}

public enum Bootstrap {
    /// `statistic` over the items, and its 2.5th and 97.5th percentiles over `resamples` resamples of the items with
    /// replacement (seeded: the same items give the same interval). `statistic` gets the indices of a resample.
    public static func estimate(count: Int, resamples: Int = 1000, seed: UInt64 = 1234, _ statistic: ([Int]) -> Double) -> Estimate {
        let all = Array(0..<count)
        let value = statistic(all)
        guard count > 1, resamples > 0 else { return Estimate(value: value, low: value, high: value) }
        var rng = SplitMix64(seed: seed)
        var stats: [Double] = []
        stats.reserveCapacity(resamples)
        var sample = [Int](repeating: 0, count: count)
        for _ in 0..<resamples {
            for i in 0..<count { sample[i] = Int(rng.next() % UInt64(count)) }
            stats.append(statistic(sample))
        }
        stats.sort()
        func percentile(_ q: Double) -> Double {
            // Linear interpolation between closest ranks (numpy's default).
            let pos = q * Double(stats.count - 1)
            let lo = Int(pos.rounded(.down)), hi = min(lo + 1, stats.count - 1)
            return stats[lo] + (stats[hi] - stats[lo]) * (pos - Double(lo))
        }
        return Estimate(value: value, low: percentile(0.025), high: percentile(0.975))
    }

    /// The mean of per-item scores with its interval.
    public static func mean(_ scores: [Double], resamples: Int = 1000, seed: UInt64 = 1234) -> Estimate {
        estimate(count: scores.count, resamples: resamples, seed: seed) { idx in
            idx.isEmpty ? 0 : idx.reduce(0.0) { $0 + scores[$1] } / Double(idx.count)
        }
    }
}
