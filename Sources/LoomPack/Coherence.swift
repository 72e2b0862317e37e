// How good a clustering is, in figures a user can read off the manifest: how many documents share a cluster with
// another (the cluster-size histogram and the share in clusters of two or more), and how topical the clusters are,
// measured with labels the clustering never saw — PubMed's MeSH descriptors (meta.mesh). Coherence is the mean
// Jaccard similarity of the label sets of two members of one cluster, against the mean over random pairs of the
// same documents: a clustering that groups by topic scores well above the random pairs.

import Foundation
import LoomCore

public struct ClusterCoherence: Equatable, Sendable {
    /// Documents with labels, and the pairs measured: members of one cluster, and random pairs.
    public var labelled: Int
    public var withinPairs: Int
    public var within: Double
    public var randomPairs: Int
    public var random: Double

    /// within / random; nil when random pairs share no label at all.
    public var ratio: Double? { random > 0 ? within / random : nil }

    /// The labels of a record: the descriptor UIs of `meta.mesh` (or the descriptor names, or plain strings);
    /// empty when the record has none.
    public static func labels(_ record: JSONValue) -> [String] {
        (record["meta"]?["mesh"]?.arrayValue ?? []).compactMap { m in
            m.stringValue ?? m["ui"]?.stringValue ?? m["descriptor"]?.stringValue
        }
    }

    /// The measure over `clusters` (indices into `labels`). A pair counts when both documents have labels and
    /// they come from different groups (`groups`: the document a chunk came from, so two chunks of one article
    /// say nothing about the clustering). Random pairs: every such pair when there are at most `samples` pairs,
    /// else `samples` pairs drawn with `seed`. Nil when fewer than two documents have labels.
    public static func measure(clusters: [[Int]], labels: [[String]], groups: [String], seed: UInt64, samples: Int = 20000) -> ClusterCoherence? {
        // Labels as sorted integer ids, so a Jaccard is one merge.
        var ids: [String: Int32] = [:]
        let sets: [[Int32]] = labels.map { ls in
            Array(Set(ls.map { l in
                if let i = ids[l] { return i }
                let i = Int32(ids.count)
                ids[l] = i
                return i
            })).sorted()
        }
        let labelled = sets.indices.filter { !sets[$0].isEmpty }
        guard labelled.count >= 2 else { return nil }
        func jaccard(_ a: [Int32], _ b: [Int32]) -> Double {
            var i = 0, j = 0, common = 0
            while i < a.count && j < b.count {
                if a[i] == b[j] {
                    common += 1
                    i += 1
                    j += 1
                } else if a[i] < b[j] { i += 1 } else { j += 1 }
            }
            return Double(common) / Double(a.count + b.count - common)
        }
        func counts(_ i: Int, _ j: Int) -> Bool { i != j && !sets[i].isEmpty && !sets[j].isEmpty && groups[i] != groups[j] }
        var within = 0.0, withinPairs = 0
        for c in clusters where c.count > 1 {
            for a in 0..<(c.count - 1) {
                for b in (a + 1)..<c.count where counts(c[a], c[b]) {
                    within += jaccard(sets[c[a]], sets[c[b]])
                    withinPairs += 1
                }
            }
        }
        var random = 0.0, randomPairs = 0
        let m = labelled.count
        if m * (m - 1) / 2 <= samples {
            for a in 0..<(m - 1) {
                for b in (a + 1)..<m where counts(labelled[a], labelled[b]) {
                    random += jaccard(sets[labelled[a]], sets[labelled[b]])
                    randomPairs += 1
                }
            }
        } else {
            var rng = SplitMix64(seed: seed)
            var tries = 0
            while randomPairs < samples && tries < samples * 50 {
                tries += 1
                let i = labelled[Int(rng.next() % UInt64(m))], j = labelled[Int(rng.next() % UInt64(m))]
                guard counts(i, j) else { continue }
                random += jaccard(sets[i], sets[j])
                randomPairs += 1
            }
        }
        return ClusterCoherence(
            labelled: m, withinPairs: withinPairs, within: withinPairs > 0 ? within / Double(withinPairs) : 0,
            randomPairs: randomPairs, random: randomPairs > 0 ? random / Double(randomPairs) : 0)
    }

    /// The manifest's `coherence` object (figures rounded to 4 decimals).
    public var json: JSONValue {
        func r(_ x: Double) -> JSONValue { .double((x * 1e4).rounded() / 1e4) }
        var o = JSONObject()
        o.append("labels", "meta.mesh")
        o.append("labelled_documents", .int(labelled))
        o.append("within_pairs", .int(withinPairs))
        o.append("within_jaccard", r(within))
        o.append("random_pairs", .int(randomPairs))
        o.append("random_jaccard", r(random))
        o.append("ratio", ratio.map { r($0) } ?? .null)
        return .object(o)
    }
}

/// Cluster sizes: how many clusters have each number of documents, and the share of documents in clusters of two
/// or more.
public struct ClusterSizes: Equatable, Sendable {
    public var histogram: [Int: Int] = [:]
    public var documents = 0
    public var clustered = 0

    public init(_ clusters: [[Int]]) {
        for c in clusters {
            histogram[c.count, default: 0] += 1
            documents += c.count
            if c.count > 1 { clustered += c.count }
        }
    }

    /// Documents in clusters of two or more / all documents (0 for none).
    public var share: Double { documents > 0 ? Double(clustered) / Double(documents) : 0 }

    /// {"1": clusters of one document, "2": ..., } in size order.
    public var json: JSONValue {
        .object(JSONObject(histogram.keys.sorted().map { (String($0), JSONValue.int(histogram[$0]!)) }))
    }
}
