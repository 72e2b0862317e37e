// `loom cluster`: related documents grouped (arXiv 2401.07284) so the model reads them side by side. Embeds with
// the hashing embedder, finds exact neighbours, clusters in input order, and writes one text sample per cluster
// (its documents concatenated). The vectors are kept beside the output as vectors.bin.

import Foundation
import LoomCore

public struct ClusterConfig: Codable, Equatable, Sendable {
    public var similarity = 0.7
    public var maxTokens = 4096
    public var maxDocs = 8
    /// Neighbours considered per document.
    public var neighbours = 16
    public var dim = 512
    public var tokensPerWord = 1.3

    public init() {}

    public static let keys = ["similarity", "max_tokens", "max_docs", "neighbours", "dim", "tokens_per_word", "jobs"]

    enum CodingKeys: String, CodingKey { case similarity, maxTokens, maxDocs, neighbours, dim, tokensPerWord }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ClusterConfig()
        similarity = try c.decodeIfPresent(Double.self, forKey: .similarity) ?? d.similarity
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? d.maxTokens
        maxDocs = try c.decodeIfPresent(Int.self, forKey: .maxDocs) ?? d.maxDocs
        neighbours = try c.decodeIfPresent(Int.self, forKey: .neighbours) ?? d.neighbours
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        tokensPerWord = try c.decodeIfPresent(Double.self, forKey: .tokensPerWord) ?? d.tokensPerWord
    }
}

public struct ClusterStage: Stage {
    public let settings: ClusterConfig
    public let input: String
    public let jobs: Int

    public init(config: ClusterConfig, input: String, jobs: Int) throws {
        guard config.similarity > -1 && config.similarity <= 1 else { throw LoomError("cluster: similarity must be in (-1, 1]") }
        guard config.maxTokens >= 1, config.maxDocs >= 1, config.neighbours >= 1 else {
            throw LoomError("cluster: max_tokens, max_docs and neighbours must be at least 1")
        }
        guard config.dim >= 16 && config.dim <= 65536 else { throw LoomError("cluster: dim must be between 16 and 65536") }
        settings = config
        self.input = input
        self.jobs = max(1, jobs)
    }

    public var name: String { "cluster" }
    public var config: JSONValue {
        guard case .object(var o) = (try? JSONValue(encoding: settings)) ?? .null else { return .null }
        o["embedder"] = "hashing"
        return .object(o)
    }
    public var inputs: [StageInput] { [.stage(input)] }
    public var sideFiles: [String] { ["vectors.bin"] }

    public func run(_ ctx: StageContext) throws {
        var ids: [String] = []
        var texts: [String] = []
        try StageReader(directory: input).forEachRecord(
            { r, path, line in
                guard let t = r["text"]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string 'text'", line: line))
                    return
                }
                ids.append(r["id"]?.stringValue ?? "\(path):\(line)")
                texts.append(t)
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.progress.begin(totalBytes: nil, unit: "clusters")
        // Vectors from an `embed` step when the input is one (and they match), else computed here.
        var vectors: [Float] = []
        if let m = try? Manifest.read(directory: input), m.stage == "embed",
            let (v, d) = try? VectorFile.read(FS.join(input, "vectors.bin")), d == settings.dim, v.count == texts.count * d
        {
            vectors = v
        } else {
            vectors = HashingEmbedder(dim: settings.dim).embed(texts, jobs: jobs)
        }
        try VectorFile.write(vectors, dim: settings.dim, embedder: "hashing", to: ctx.sideFilePath("vectors.bin"))
        let neighbours = texts.isEmpty ? [] : Neighbours.exact(vectors, dim: settings.dim, k: settings.neighbours, jobs: jobs)
        let tokens = texts.map { max(1, Int((Double($0.split(whereSeparator: { $0.isWhitespace }).count) * settings.tokensPerWord).rounded(.up))) }
        let clusters = SimilarityClustering.clusters(
            neighbours: neighbours, tokens: tokens, similarity: Float(settings.similarity), maxTokens: settings.maxTokens,
            maxDocs: settings.maxDocs)
        var multi = 0
        for (n, c) in clusters.enumerated() {
            if c.count > 1 { multi += 1 }
            let sims: [JSONValue] = c.dropFirst().map { m in
                let s = neighbours[c[0]].first { $0.index == m }?.similarity ?? 0
                return .double((Double(s) * 1e4).rounded() / 1e4)
            }
            var provenance = JSONObject()
            provenance.append("ids", .array(c.map { .string(ids[$0]) }))
            provenance.append("generator", "cluster")
            provenance.append("embedder", "hashing")
            var meta = JSONObject()
            meta.append("provenance", .object(provenance))
            meta.append("members", .array(c.map { .string(ids[$0]) }))
            meta.append("similarity_to_first", .array(sims))
            meta.append("tokens", .int(c.reduce(0) { $0 + tokens[$1] }))
            var o = JSONObject()
            o.append("id", .string("cluster-\(String(n).leftPadded(8))"))
            o.append("text", .string(c.map { texts[$0] }.joined(separator: "\n\n")))
            o.append("meta", .object(meta))
            try ctx.output.write(.object(o))
            ctx.progress.add(items: 1)
        }
        ctx.setCount("documents", texts.count)
        ctx.setCount("clusters", clusters.count)
        ctx.setCount("clusters_with_several_documents", multi)
    }
}

/// `loom embed`: the input records unchanged, plus their vectors in vectors.bin (the hashing embedder), so
/// clustering, or anything else, can reuse them.
public struct EmbedStage: Stage {
    public let dim: Int
    public let input: String
    public let jobs: Int

    public init(dim: Int, input: String, jobs: Int) throws {
        guard dim >= 16 && dim <= 65536 else { throw LoomError("embed: dim must be between 16 and 65536") }
        self.dim = dim
        self.input = input
        self.jobs = max(1, jobs)
    }

    public var name: String { "embed" }
    public var config: JSONValue { ["embedder": "hashing", "dim": .int(dim)] }
    public var inputs: [StageInput] { [.stage(input)] }
    public var sideFiles: [String] { ["vectors.bin"] }

    public func run(_ ctx: StageContext) throws {
        var texts: [String] = []
        try StageReader(directory: input).forEachRecord(
            { r, path, line in
                guard let t = r["text"]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string 'text'", line: line))
                    return
                }
                texts.append(t)
                try ctx.output.write(r)
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        let vectors = HashingEmbedder(dim: dim).embed(texts, jobs: jobs)
        try VectorFile.write(vectors, dim: dim, embedder: "hashing", to: ctx.sideFilePath("vectors.bin"))
        ctx.setCount("vectors", texts.count)
        ctx.setCount("dim", dim)
    }
}
