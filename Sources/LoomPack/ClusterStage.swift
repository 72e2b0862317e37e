// `loom cluster`: related documents grouped (arXiv 2401.07284) so the model reads them side by side. Embeds with
// the hashing or MiniLM embedder (by default MiniLM when its model directory is found), finds neighbours (exact,
// or the IVF index above a size), clusters in input order at the embedder's similarity threshold, and writes one
// text sample per cluster (its documents concatenated). The vectors are kept as vectors.bin. The manifest reports
// the cluster-size histogram and, when the records carry MeSH descriptors, the clusters' topical coherence
// (Coherence.swift).

import Foundation
import LoomCore

public struct ClusterConfig: Codable, Equatable, Sendable {
    /// Least cosine similarity for a neighbour to join a cluster; nil: the embedder's default
    /// (`defaultSimilarity`).
    public var similarity: Double?
    public var maxTokens = 4096
    public var maxDocs = 8
    /// Neighbours considered per document.
    public var neighbours = 16
    /// Dimensions of the hashing embedder (minilm's are the model's).
    public var dim = 512
    public var tokensPerWord = 1.3
    /// A tokenizer.json for token lengths; nil: words x tokensPerWord.
    public var tokenizer: String?
    /// "auto" (minilm when its model directory is found, else hashing), "hashing" or "minilm".
    public var embedder = "auto"
    /// The minilm model directory.
    public var model: String?
    /// "auto" (exact up to approxAbove documents, IVF above), "exact" or "approx".
    public var search = "auto"
    public var approxAbove = 50000
    /// IVF lists (nil: sqrt(n)) and lists probed per document.
    public var lists: Int?
    public var probes = IVFConfig().probes
    /// A stage directory of generated conversations (RC, QA): each cluster's sample gets its members' question/
    /// answer pairs appended, shuffled with `seed` (arXiv 2401.07284's format).
    public var qa: String?
    public var seed = 1

    public init() {}

    public static let keys = [
        "similarity", "max_tokens", "max_docs", "neighbours", "dim", "tokens_per_word", "tokenizer", "embedder", "model",
        "search", "approx_above", "lists", "probes", "qa", "seed", "jobs",
    ]

    enum CodingKeys: String, CodingKey {
        case similarity, maxTokens, maxDocs, neighbours, dim, tokensPerWord, tokenizer, embedder, model, search, approxAbove, lists, probes
        case qa, seed
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ClusterConfig()
        similarity = try c.decodeIfPresent(Double.self, forKey: .similarity)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? d.maxTokens
        maxDocs = try c.decodeIfPresent(Int.self, forKey: .maxDocs) ?? d.maxDocs
        neighbours = try c.decodeIfPresent(Int.self, forKey: .neighbours) ?? d.neighbours
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        tokensPerWord = try c.decodeIfPresent(Double.self, forKey: .tokensPerWord) ?? d.tokensPerWord
        tokenizer = try c.decodeIfPresent(String.self, forKey: .tokenizer)
        embedder = try c.decodeIfPresent(String.self, forKey: .embedder) ?? d.embedder
        model = try c.decodeIfPresent(String.self, forKey: .model)
        search = try c.decodeIfPresent(String.self, forKey: .search) ?? d.search
        approxAbove = try c.decodeIfPresent(Int.self, forKey: .approxAbove) ?? d.approxAbove
        lists = try c.decodeIfPresent(Int.self, forKey: .lists)
        probes = try c.decodeIfPresent(Int.self, forKey: .probes) ?? d.probes
        qa = try c.decodeIfPresent(String.self, forKey: .qa)
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? d.seed
    }

    /// The similarity threshold of each embedder when none is given, chosen on the 14,836 chunks of the project's
    /// PubMed file as the one that best balances the two things a clustering must do there — put chunks together
    /// (share in clusters of two or more, against 30%) and put them together by topic (MeSH coherence, against 3x
    /// random pairs): docs/benchmarks.md, "Clustering by default". The hashing embedder's cosines sit in a narrow
    /// band (a chunk's nearest neighbour: median 0.37, 90th percentile 0.44, where MiniLM's are 0.66 and 0.79),
    /// so its threshold is lower.
    public static func defaultSimilarity(embedder: String) -> Double {
        embedder == "minilm" ? 0.63 : 0.365
    }

    /// The similarity threshold used: the one given, else the embedder's default.
    public var threshold: Double { similarity ?? ClusterConfig.defaultSimilarity(embedder: embedder) }

    /// Whether `count` documents are searched with the IVF index.
    public func approximate(_ count: Int) -> Bool { search == "approx" || (search == "auto" && count > approxAbove) }
}

public struct ClusterStage: Stage {
    public let settings: ClusterConfig
    public let input: String
    public let jobs: Int

    /// `locate` finds the MiniLM directory for `embedder: auto` (tests pass their own).
    public init(config given: ClusterConfig, input: String, jobs: Int, locate: () -> String? = Embedders.locateMiniLM) throws {
        var config = given
        if config.embedder == "auto" {
            // An `embed` step's vectors are used whatever embedder made them; else minilm when found, else hashing.
            if let m = try? Manifest.read(directory: input), m.stage == "embed",
                let h = try? VectorFile.header(FS.join(input, "vectors.bin"))
            {
                config.embedder = h.embedder
                config.model = h.model
                if h.embedder == "hashing" { config.dim = h.dim }
            } else {
                (config.embedder, config.model) = Embedders.resolve(embedder: "auto", model: config.model, locate: locate)
            }
        }
        config.similarity = config.threshold
        guard config.threshold > -1 && config.threshold <= 1 else { throw LoomError("cluster: similarity must be in (-1, 1]") }
        guard config.maxTokens >= 1, config.maxDocs >= 1, config.neighbours >= 1 else {
            throw LoomError("cluster: max_tokens, max_docs and neighbours must be at least 1")
        }
        guard config.dim >= 16 && config.dim <= 65536 else { throw LoomError("cluster: dim must be between 16 and 65536") }
        try Embedders.validate(embedder: config.embedder, model: config.model, context: "cluster")
        guard ["auto", "exact", "approx"].contains(config.search) else {
            throw LoomError("cluster: search must be auto, exact or approx (got '\(config.search)')")
        }
        guard config.probes >= 1, (config.lists ?? 1) >= 1, config.approxAbove >= 0 else {
            throw LoomError("cluster: probes and lists must be at least 1, approx_above at least 0")
        }
        guard config.tokensPerWord > 0 else { throw LoomError("cluster: tokens_per_word must be positive") }
        settings = config
        self.input = input
        self.jobs = max(1, jobs)
    }

    public var name: String { "cluster" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] { [.stage(input)] + (settings.qa.map { [.stage($0)] } ?? []) }
    public var sideFiles: [String] { ["vectors.bin"] }

    public func run(_ ctx: StageContext) throws {
        var ids: [String] = []
        var texts: [String] = []
        var labels: [[String]] = []
        var groups: [String] = []
        try StageReader(directory: input).forEachRecord(
            { r, path, line in
                guard let t = r["text"]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string 'text'", line: line))
                    return
                }
                let id = r["id"]?.stringValue ?? "\(path):\(line)"
                ids.append(id)
                texts.append(t)
                labels.append(ClusterCoherence.labels(r))
                groups.append(r["doc_id"]?.stringValue ?? id)
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.progress.begin(totalBytes: nil, unit: "clusters")
        let counter = try TokenCounter(tokenizer: settings.tokenizer, tokensPerWord: settings.tokensPerWord)
        // Vectors from an `embed` step when the input is one (and they match), else computed here.
        let (vectors, dim) = try reuseOrEmbed(texts, input: input, embedder: settings.embedder, model: settings.model, dim: settings.dim, jobs: jobs)
        try VectorFile.write(vectors, dim: dim, embedder: settings.embedder, model: settings.model, to: ctx.sideFilePath("vectors.bin"))
        let approx = settings.approximate(texts.count)
        var ivf = IVFConfig()
        ivf.lists = settings.lists
        ivf.probes = settings.probes
        let neighbours =
            texts.isEmpty
            ? []
            : approx
                ? ApproximateNeighbours.ivf(vectors, dim: dim, k: settings.neighbours, config: ivf, jobs: jobs)
                : Neighbours.exact(vectors, dim: dim, k: settings.neighbours, jobs: jobs)
        let tokens = counter.counts(texts, jobs: jobs)
        let clusters = SimilarityClustering.clusters(
            neighbours: neighbours, tokens: tokens, similarity: Float(settings.threshold), maxTokens: settings.maxTokens,
            maxDocs: settings.maxDocs)
        var multi = 0
        let pairs = try settings.qa.map { try QAPairs.read($0, documents: Dictionary(zip(ids, texts), uniquingKeysWith: { a, _ in a })) }
        let pairFormat = try pairs.map { _ in try QAPairs.format() }
        var appended = 0
        for (n, c) in clusters.enumerated() {
            if c.count > 1 { multi += 1 }
            let sims: [JSONValue] = c.dropFirst().map { m in
                let s = neighbours[c[0]].first { $0.index == m }?.similarity ?? 0
                return .double((Double(s) * 1e4).rounded() / 1e4)
            }
            var provenance = JSONObject()
            provenance.append("ids", .array(c.map { .string(ids[$0]) }))
            provenance.append("generator", "cluster")
            provenance.append("embedder", .string(settings.embedder))
            var meta = JSONObject()
            meta.append("provenance", .object(provenance))
            meta.append("members", .array(c.map { .string(ids[$0]) }))
            meta.append("similarity_to_first", .array(sims))
            meta.append("tokens", .int(c.reduce(0) { $0 + tokens[$1] }))
            var o = JSONObject()
            o.append("id", .string("cluster-\(String(n).leftPadded(8))"))
            var text = c.map { texts[$0] }.joined(separator: "\n\n")
            if let pairs, let pairFormat {
                var mine = c.flatMap { pairs[ids[$0]] ?? [] }
                var rng = SplitMix64(seed: UInt64(settings.seed) &+ UInt64(n) &* 0x9E37_79B9_7F4A_7C15)
                for i in stride(from: mine.count - 1, to: 0, by: -1) { mine.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                if !mine.isEmpty {
                    text += "\n\n" + mine.map { pairFormat($0.question, $0.answer) }.joined(separator: "\n\n")
                }
                meta.append("qa_pairs", .int(mine.count))
                appended += mine.count
            }
            o.append("text", .string(text))
            o.append("meta", .object(meta))
            try ctx.output.write(.object(o))
            ctx.progress.add(items: 1)
        }
        ctx.setCount("documents", texts.count)
        ctx.setCount("clusters", clusters.count)
        ctx.setCount("clusters_with_several_documents", multi)
        if pairs != nil { ctx.setCount("qa_pairs_appended", appended) }
        ctx.setValue("search", .string(approx ? "ivf" : "exact"))
        let sizes = ClusterSizes(clusters)
        ctx.setValue("embedder", .string(settings.embedder))
        ctx.setValue("similarity", .double(settings.threshold))
        ctx.setValue("share_in_clusters", .double((sizes.share * 1e4).rounded() / 1e4))
        ctx.setValue("cluster_sizes", sizes.json)
        if let c = ClusterCoherence.measure(clusters: clusters, labels: labels, groups: groups, seed: UInt64(settings.seed)) {
            ctx.setValue("coherence", c.json)
        }
        ctx.setValue("token_lengths", .string(counter.name))
    }
}

/// The vectors of an `embed` stage's directory when they were made by the same embedder (and model, and
/// dimension) for these texts; otherwise the texts embedded now.
func reuseOrEmbed(_ texts: [String], input: String, embedder: String, model: String?, dim: Int, jobs: Int) throws -> (vectors: [Float], dim: Int) {
    let path = FS.join(input, "vectors.bin")
    if let m = try? Manifest.read(directory: input), m.stage == "embed", let h = try? VectorFile.header(path),
        h.embedder == embedder, h.count == texts.count, embedder == "minilm" ? h.model == model : h.dim == dim,
        let (v, d) = try? VectorFile.read(path)
    {
        return (v, d)
    }
    return try Embedders.embed(texts, embedder: embedder, model: model, dim: dim, jobs: jobs)
}

public struct EmbedConfig: Codable, Equatable, Sendable {
    public var embedder = "hashing"
    public var model: String?
    /// Dimensions of the hashing embedder.
    public var dim = 512

    public init() {}

    public static let keys = ["embedder", "model", "dim", "jobs"]

    enum CodingKeys: String, CodingKey { case embedder, model, dim }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        embedder = try c.decodeIfPresent(String.self, forKey: .embedder) ?? "hashing"
        model = try c.decodeIfPresent(String.self, forKey: .model)
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? 512
    }
}

/// `loom embed`: the input records unchanged, plus their vectors in vectors.bin (hashing or minilm embedder), so
/// clustering, or anything else, can reuse them.
public struct EmbedStage: Stage {
    public let settings: EmbedConfig
    public let input: String
    public let jobs: Int
    public var dim: Int { settings.dim }
    /// `--shard i/N`: the records numbered in this shard's range, their vectors only. The hashing embedder's
    /// document frequencies still come from the whole input, so the vectors are those of one run.
    public let shard: ShardSpec?
    let recordedShard: ShardSpec?

    public init(config: EmbedConfig, input: String, jobs: Int, shard: ShardSpec? = nil) throws {
        guard config.dim >= 16 && config.dim <= 65536 else { throw LoomError("embed: dim must be between 16 and 65536") }
        try Embedders.validate(embedder: config.embedder, model: config.model, context: "embed")
        settings = config
        self.input = input
        self.jobs = max(1, jobs)
        self.shard = shard
        recordedShard = try outputShard(given: shard, input: input, stage: "embed")
    }

    public init(dim: Int, input: String, jobs: Int) throws {
        var c = EmbedConfig()
        c.dim = dim
        try self.init(config: c, input: input, jobs: jobs)
    }

    public var name: String { "embed" }
    public var config: JSONValue {
        withShard(
            settings.embedder == "hashing"
                ? ["embedder": "hashing", "dim": .int(dim)]
                : ["embedder": .string(settings.embedder), "model": .string(settings.model ?? "")], recordedShard)
    }
    public var inputs: [StageInput] { [.stage(input)] }
    public var sideFiles: [String] { ["vectors.bin"] }

    public func run(_ ctx: StageContext) throws {
        var texts: [String] = []
        let reader = try StageReader(directory: input)
        // With --shard and the hashing embedder, every text is read for the document frequencies; only the
        // shard's records and vectors are written.
        let corpusWide = shard != nil && settings.embedder == "hashing"
        let mine = shard?.range(total: reader.manifest.records)
        var number = 0
        var first = -1
        var kept = 0
        try reader.forEachRecord(
            shard: corpusWide ? nil : shard,
            { r, path, line in
                defer { number += 1 }
                let inShard = !corpusWide || mine!.contains(number)
                guard let t = r["text"]?.stringValue else {
                    if inShard { try ctx.reject(Reject(source: path, reason: "record has no string 'text'", line: line)) }
                    return
                }
                if inShard {
                    if first < 0 { first = texts.count }
                    kept += 1
                    try ctx.output.write(r)
                }
                texts.append(t)
            }, bad: { e, path, line in
                defer { number += 1 }
                if !corpusWide || mine!.contains(number) {
                    try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line))
                }
            })
        var (vectors, d) = try Embedders.embed(texts, embedder: settings.embedder, model: settings.model, dim: dim, jobs: jobs)
        if corpusWide {
            vectors = first < 0 ? [] : Array(vectors[(first * d)..<((first + kept) * d)])
            texts = Array(texts[first < 0 ? 0..<0 : first..<(first + kept)])
        }
        try VectorFile.write(vectors, dim: d, embedder: settings.embedder, model: settings.model, to: ctx.sideFilePath("vectors.bin"))
        ctx.setCount("vectors", texts.count)
        ctx.setCount("dim", d)
    }
}

/// Question/answer pairs of generated conversations, by the document (chunk) they came from: the conversation's
/// `meta.provenance.ids[0]`; user turn i and assistant turn i make pair i; the document's text is taken off the
/// front of the first question (RC conversations open with the passage).
enum QAPairs {
    static func read(_ dir: String, documents: [String: String]) throws -> [String: [(question: String, answer: String)]] {
        var out: [String: [(question: String, answer: String)]] = [:]
        try StageReader(directory: dir).forEachRecord(
            { r, _, _ in
                guard let id = r["meta"]?["provenance"]?["ids"]?.arrayValue?.first?.stringValue,
                    let ms = r["messages"]?.arrayValue
                else { return }
                var question: String?
                for m in ms {
                    guard let role = m["role"]?.stringValue, let content = m["content"]?.stringValue else { continue }
                    if role == "user" {
                        var q = content
                        if let doc = documents[id], q.hasPrefix(doc) {
                            q = String(q.dropFirst(doc.count)).trimmingCharacters(in: .whitespacesAndNewlines)
                        }
                        question = q
                    } else if role == "assistant", let q = question, !q.isEmpty {
                        out[id, default: []].append((q, content))
                        question = nil
                    }
                }
            }, bad: { _, _, _ in })
        return out
    }

    /// templates/cluster/qa-pair.txt: `{{question}}` and `{{answer}}` filled in.
    static func format() throws -> (String, String) -> String {
        let path = FS.join(try TemplateDirectory.locate(), "cluster/qa-pair.txt")
        let t = try FS.readText(path)
        return { q, a in t.replacingOccurrences(of: "{{question}}", with: q).replacingOccurrences(of: "{{answer}}", with: a) }
    }
}
