// The domain rule: how much more a record looks like a set of in-domain records the user gives (seeds) than like
// the average record. Vectors come from the cluster stage's embedders (passed in by the `loom` command). Raw cosine
// similarity to the seeds' centroid is dominated by what all text of a language shares (function words, common
// character n-grams): on PubMed abstracts against software manuals the two distributions overlap. So every vector
// is first centred on the mean vector of a sample of the records being filtered (the "background", as DSIR's raw
// distribution, arXiv 2302.03169): a record's score is the cosine between its centred vector and the centred seed
// centroid, positive when it leans towards the seeds. The threshold is given, or a quantile of the records' scores
// (drop the lowest share), or by default taken from the seeds: `auto_factor` times the 5th percentile of each
// seed's score against the centroid of the other seeds. When the seeds score no higher than the data on average
// (the data are as in-domain as the seeds), the default drops nothing and says so.

import Foundation
import LoomCore

public struct DomainRule: RuleSet {
    public var name: String { "domain" }
    /// A file or directory of in-domain records (their text as `loom` reads any record's).
    public var seeds = ""
    /// The smallest similarity kept; nil: from `quantile` or the seeds.
    public var threshold: Double?
    /// Drop this share of the records, the least similar.
    public var quantile: Double?
    public var autoFactor = 0.5
    /// Records sampled (seeded) from the input for the background mean and the hashing embedder's IDF.
    public var background = 5000
    public var seed = 1
    /// The embedder and its options, as the cluster stage takes them.
    public var embedder = "hashing"
    public var model: String?
    public var dim = 1024
    /// The threshold in force (set when the stage starts).
    public var resolved: Double?

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "domain", options)
        seeds = try r.string("seeds", nil) ?? ""
        threshold = try r.number("threshold", nil)
        quantile = try r.number("quantile", nil)
        autoFactor = try r.number("auto_factor", 0.5) ?? 0.5
        background = Int(try r.number("background", 5000) ?? 5000)
        seed = Int(try r.number("seed", 1) ?? 1)
        embedder = try r.string("embedder", "hashing") ?? "hashing"
        model = try r.string("model", nil)
        dim = Int(try r.number("dim", 1024) ?? 1024)
        try r.finish()
        if let q = quantile, !(q >= 0 && q < 1) { throw LoomError("filter: domain.quantile must be in [0, 1) (got \(q))") }
        if threshold != nil && quantile != nil { throw LoomError("filter: give domain.threshold or domain.quantile, not both") }
        guard dim > 0 else { throw LoomError("filter: domain.dim must be positive") }
        guard background >= 10 else { throw LoomError("filter: domain.background must be at least 10 records") }
    }

    public var options: JSONObject {
        var o = JSONObject()
        o["seeds"] = .string(seeds)
        o.put("threshold", threshold)
        o.put("quantile", quantile)
        o.put("auto_factor", autoFactor)
        o["background"] = .int(background)
        o["seed"] = .int(seed)
        o["embedder"] = .string(embedder)
        o["model"] = model.map { .string($0) } ?? .null
        o["dim"] = .int(dim)
        return o
    }

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        if let s = doc.meta["domain_similarity"] {
            out.add(Measure("threshold", "score", s, .min, resolved))
        }
        return out
    }
}

/// The centred seed centroid and the records' scores against it.
final class DomainSimilarity: @unchecked Sendable {
    let embedder: any TextEmbedder
    let centroid: [Float]
    let mean: [Float]
    let seedCount: Int
    let backgroundCount: Int
    /// Each seed's score against the centroid of the other seeds.
    let seedSimilarities: [Float]
    var identity: String { embedder.identity }

    init(rule: DomainRule, source: RecordSource, factory: TextEmbedderFactory, jobs: Int) throws {
        var seeds: [String] = []
        try RecordSource.resolve([rule.seeds]).forEachRecord(
            { r, _, _ in if let t = RecordText.text(r), !t.isEmpty { seeds.append(t) } },
            bad: { e, path, line in throw LoomError("\(path):\(line): a seed record is not JSON: \(e)") })
        guard seeds.count >= 2 else {
            throw LoomError("\(rule.seeds): the domain rule needs at least 2 seed records with text (found \(seeds.count))")
        }
        // A seeded reservoir sample of the records' texts.
        var sample: [String] = []
        var seen = 0
        var rng = SplitMix64(seed: UInt64(bitPattern: Int64(rule.seed)))
        try source.forEachRecord(
            { r, _, _ in
                guard let t = r["text"]?.stringValue else { return }
                seen += 1
                if sample.count < rule.background {
                    sample.append(t)
                } else {
                    let j = rng.below(seen)
                    if j < rule.background { sample[j] = t }
                }
            }, bad: { _, _, _ in })
        guard sample.count >= 2 else {
            throw LoomError("filter: the domain rule needs at least 2 records with text to compare with the seeds (found \(sample.count))")
        }
        embedder = try factory(seeds + sample)
        let d = embedder.dim
        let bg = try embedder.embed(sample, jobs: jobs)
        var mean = [Float](repeating: 0, count: d)
        for i in 0..<sample.count { for k in 0..<d { mean[k] += bg[i * d + k] } }
        for k in 0..<d { mean[k] /= Float(sample.count) }
        self.mean = mean
        let v = try embedder.embed(seeds, jobs: jobs)
        var sum = [Float](repeating: 0, count: d)
        for i in 0..<seeds.count { for k in 0..<d { sum[k] += v[i * d + k] } }
        func centredMean(_ s: [Float], _ n: Int) -> [Float] {
            DomainSimilarity.normalized((0..<d).map { s[$0] / Float(n) - mean[$0] })
        }
        centroid = centredMean(sum, seeds.count)
        var sims: [Float] = []
        for i in 0..<seeds.count {
            var other = sum
            for k in 0..<d { other[k] -= v[i * d + k] }
            let c = centredMean(other, seeds.count - 1)
            sims.append(DomainSimilarity.score(c, Array(v[(i * d)..<((i + 1) * d)]), mean))
        }
        seedSimilarities = sims
        seedCount = seeds.count
        backgroundCount = sample.count
    }

    static func normalized(_ x: [Float]) -> [Float] {
        let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return n > 0 ? x.map { $0 / n } : x
    }

    /// The cosine between `centroid` (unit, centred) and `v` centred on `mean`.
    static func score(_ centroid: [Float], _ v: ArraySlice<Float>, _ mean: [Float]) -> Float {
        var dot: Float = 0
        var norm: Float = 0
        var k = 0
        for x in v {
            let y = x - mean[k]
            dot += centroid[k] * y
            norm += y * y
            k += 1
        }
        return norm > 0 ? dot / norm.squareRoot() : 0
    }

    static func score(_ centroid: [Float], _ v: [Float], _ mean: [Float]) -> Float { score(centroid, v[...], mean) }

    /// Each text's score (nil texts get nil).
    func similarities(_ texts: [String?], jobs: Int) throws -> [Float?] {
        let present = texts.compactMap { $0 }
        guard !present.isEmpty else { return texts.map { _ in nil } }
        let d = embedder.dim
        let v = try embedder.embed(present, jobs: jobs)
        var out: [Float?] = []
        var j = 0
        for t in texts {
            guard t != nil else {
                out.append(nil)
                continue
            }
            out.append(DomainSimilarity.score(centroid, v[(j * d)..<((j + 1) * d)], mean))
            j += 1
        }
        return out
    }

    /// The threshold in force: given, a quantile of the records' scores (a pass over them), or from the seeds
    /// (nil: nothing is dropped, the seeds do not stand out from the data).
    func threshold(for rule: DomainRule, source: RecordSource, jobs: Int) throws -> Double? {
        if let t = rule.threshold { return t }
        if let q = rule.quantile {
            var all: [Float] = []
            var batch: [String?] = []
            func flush() throws {
                all += try similarities(batch, jobs: jobs).compactMap { $0 }
                batch.removeAll(keepingCapacity: true)
            }
            try source.forEachRecord(
                { r, _, _ in
                    if let t = r["text"]?.stringValue { batch.append(t) }
                    if batch.count >= 512 { try flush() }
                }, bad: { _, _, _ in })
            try flush()
            guard !all.isEmpty else { return nil }
            all.sort()
            return Double(all[min(all.count - 1, Int((q * Double(all.count)).rounded(.down)))])
        }
        let s = seedSimilarities.sorted()
        let p5 = Double(s[min(s.count - 1, Int((0.05 * Double(s.count - 1)).rounded()))])
        guard p5 > 0 else {
            Log.warn(
                "filter: domain: the seeds score no higher than the records on average (5th percentile \(String(format: "%.3f", p5))): the data look as in-domain as the seeds, so nothing is dropped; give domain.threshold or domain.quantile to drop anyway")
            return nil
        }
        return p5 * rule.autoFactor
    }
}
