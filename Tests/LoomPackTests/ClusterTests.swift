import CLoomKernels
import Foundation
import LoomCore
import XCTest

@testable import LoomPack

/// Runs `body` once with each kernel path this CPU runs in force (portable, then avx2, avx512 and vnni as far as
/// the CPU goes: loom_dispatch.h), and restores LOOM_KERNELS' choice after.
func forEachKernelPath(_ body: (String) throws -> Void) rethrows {
    defer { _ = loom_set_kernel_path(-1) }
    for path in 0...loom_cpu_path() {
        _ = loom_set_kernel_path(path)
        try body(String(cString: loom_path_name(path)))
    }
}

final class ClusterTests: XCTestCase {
    func testDotKernelMatchesReference() {
        var rng = SplitMix64(seed: 3)
        for (na, nb, dim) in [(1, 1, 1), (5, 7, 33), (9, 300, 512), (4, 4, 16)] {
            let a = (0..<(na * dim)).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            let b = (0..<(nb * dim)).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            var slow = [Float](repeating: 0, count: na * nb)
            loom_dot_block_reference(a, na, b, nb, dim, &slow)
            forEachKernelPath { path in
                var fast = [Float](repeating: .nan, count: na * nb)
                loom_dot_block(a, na, b, nb, dim, &fast)
                for i in 0..<na {
                    for j in 0..<nb {
                        // Bound: two float32 orderings of a sum of dim products, each within dim·u·Σ|a_k b_k| of the
                        // exact sum (u = 2^-24, FMA or not), differ by at most 2·dim·u·Σ|a_k b_k|.
                        let mass = (0..<dim).reduce(Float(0)) { $0 + abs(a[i * dim + $1] * b[j * dim + $1]) }
                        let bound = 2 * Float(dim) * (Float.ulpOfOne / 2) * mass * 1.01
                        XCTAssertEqual(fast[i * nb + j], slow[i * nb + j], accuracy: bound, "\(path) \(na)x\(nb)x\(dim)")
                    }
                }
            }
        }
    }

    let texts = [
        "Statin therapy lowers LDL cholesterol in older adults with coronary disease.",
        "In older adults with coronary disease, statin therapy lowers LDL cholesterol levels.",
        "Gene expression profiling of breast tumours identifies distinct molecular subtypes.",
        "Breast tumours fall into distinct molecular subtypes by gene expression profiling.",
        "Volcanic ash deposits record eruptions of the last ten thousand years.",
    ]

    func testSimilarTextsAreNeighboursAndClusterTogether() {
        let e = HashingEmbedder(dim: 256)
        let v = e.embed(texts)
        for i in texts.indices {
            // Bound: scaling by 1/‖x‖ rounds each entry by u (relative), the squared norm sums 256 terms: within
            // (2 + 256 + 2)·u of 1 (u = 2^-24), whatever the order.
            let norm = (0..<256).reduce(Float(0)) { $0 + v[i * 256 + $1] * v[i * 256 + $1] }
            XCTAssertEqual(norm, 1, accuracy: 260 * Float.ulpOfOne / 2 * 1.01)
        }
        let nb = Neighbours.exact(v, dim: 256, k: 2)
        XCTAssertEqual(nb[0].first?.index, 1)
        XCTAssertEqual(nb[2].first?.index, 3)
        // Exact: the same as a brute-force ranking.
        for i in texts.indices {
            let brute = texts.indices.filter { $0 != i }.map { j in
                (j, (0..<256).reduce(Float(0)) { $0 + v[i * 256 + $1] * v[j * 256 + $1] })
            }.sorted { $0.1 > $1.1 }
            XCTAssertEqual(nb[i].map(\.index), brute.prefix(2).map(\.0))
        }
        let tokens = [10, 10, 10, 10, 10]
        XCTAssertEqual(
            SimilarityClustering.clusters(neighbours: nb, tokens: tokens, similarity: 0.3, maxTokens: 100, maxDocs: 8),
            [[0, 1], [2, 3], [4]])
        // The limits: tokens and documents.
        XCTAssertEqual(
            SimilarityClustering.clusters(neighbours: nb, tokens: tokens, similarity: 0.3, maxTokens: 15, maxDocs: 8).count, 5)
        XCTAssertEqual(
            SimilarityClustering.clusters(neighbours: nb, tokens: tokens, similarity: 0.3, maxTokens: 100, maxDocs: 1).count, 5)
        XCTAssertEqual(
            SimilarityClustering.clusters(neighbours: nb, tokens: tokens, similarity: 0.99, maxTokens: 100, maxDocs: 8).count, 5)
    }

    func testClusterStageWritesSamplesAndVectors() throws {
        let dir = NSTemporaryDirectory() + "loom-cluster-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records: [JSONValue] = texts.enumerated().map { ["id": .string("d\($0.offset)"), "text": .string($0.element)] }
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records + [["id": "x"]]), directory: dir + "/in", options: opts)
        var c = ClusterConfig()
        c.embedder = "hashing"
        c.similarity = 0.3
        let m = try StageRunner.run(ClusterStage(config: c, input: dir + "/in", jobs: 2), directory: dir + "/out", options: opts).manifest
        XCTAssertEqual(m.counts["clusters"]?.intValue, 3)
        XCTAssertEqual(m.rejects, 1)
        let first = try JSONValue.parse(
            String(try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n")[0]))
        XCTAssertEqual(first["meta"]?["members"], ["d0", "d1"])
        XCTAssertEqual(first["text"]?.stringValue, texts[0] + "\n\n" + texts[1])
        let (v, dim) = try VectorFile.read(dir + "/out/vectors.bin")
        XCTAssertEqual(dim, 512)
        XCTAssertEqual(v.count, 5 * 512)
        // embed, then cluster from its vectors: the same clusters.
        let e = try StageRunner.run(EmbedStage(dim: 512, input: dir + "/in", jobs: 1), directory: dir + "/emb", options: opts).manifest
        XCTAssertEqual(e.counts["vectors"]?.intValue, 5)
        XCTAssertEqual(try VectorFile.read(dir + "/emb/vectors.bin").vectors, v)
        _ = try StageRunner.run(ClusterStage(config: c, input: dir + "/emb", jobs: 1), directory: dir + "/out2", options: opts)
        XCTAssertEqual(
            try String(contentsOfFile: dir + "/out2/part-00000.jsonl", encoding: .utf8),
            try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8))
    }
}

final class ClusterQATests: XCTestCase {
    /// With `qa`, a cluster's sample is its documents and then its members' question/answer pairs (the passage taken
    /// off the first question), shuffled with the seed; the same seed gives the same bytes.
    func testQuestionAnswerPairsAreAppendedToTheirCluster() throws {
        let dir = NSTemporaryDirectory() + "loom-cluster-qa-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let opts = RunOptions(quiet: true)
        let docs = ["Aspirin lowers fever in adults.", "Aspirin lowers fever in adults and children.", "Bridges carry trains over rivers."]
        _ = try StageRunner.run(
            RecordsStage(records: docs.enumerated().map { ["id": .string("c\($0.offset)"), "text": .string($0.element)] }),
            directory: dir + "/docs", options: opts)
        let conversations: [JSONValue] = (0..<3).map { i in
            [
                "messages": [
                    ["role": "user", "content": .string(docs[i] + "\n\nWhat is the topic of the text?")],
                    ["role": "assistant", "content": .string("topic \(i)")],
                    ["role": "user", "content": .string("Name one word from it.")],
                    ["role": "assistant", "content": .string("word \(i)")],
                ],
                "meta": ["provenance": ["ids": [.string("c\(i)"), "doc"]]],
            ]
        }
        _ = try StageRunner.run(RecordsStage(records: conversations, name: "rc"), directory: dir + "/rc", options: opts)
        var c = ClusterConfig()
        c.embedder = "hashing"
        c.similarity = 0.5
        c.qa = dir + "/rc"
        let m = try StageRunner.run(ClusterStage(config: c, input: dir + "/docs", jobs: 1), directory: dir + "/out", options: opts).manifest
        XCTAssertEqual(m.counts["qa_pairs_appended"]?.intValue, 6)
        let lines = try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
        let first = try JSONValue.parse(String(lines[0]))
        XCTAssertEqual(first["meta"]?["members"], ["c0", "c1"])
        XCTAssertEqual(first["meta"]?["qa_pairs"]?.intValue, 4)
        let text = try XCTUnwrap(first["text"]?.stringValue)
        XCTAssertTrue(text.hasPrefix(docs[0] + "\n\n" + docs[1] + "\n\n"), text)
        XCTAssertTrue(text.contains("Question: What is the topic of the text?\nAnswer: topic 1"), text)
        XCTAssertFalse(text.contains("Question: " + docs[0]), "the passage is taken off the first question")
        XCTAssertFalse(text.contains("word 2"), "pairs of other clusters stay out")
        _ = try StageRunner.run(ClusterStage(config: c, input: dir + "/docs", jobs: 1), directory: dir + "/again", options: RunOptions(force: true, quiet: true))
        XCTAssertEqual(
            try String(contentsOfFile: dir + "/again/part-00000.jsonl", encoding: .utf8),
            try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8))
    }
}

final class ClusterCoherenceTests: XCTestCase {
    // Labels by hand: 0 and 1 share A, B of A-D; 2 and 3 share E, F of E-G; 4 has none; 5 is another chunk of
    // document 0 (same group), with 0's labels.
    let labels = [["A", "B", "C"], ["A", "B", "D"], ["E", "F"], ["E", "F", "G"], [], ["C", "B", "A"]]
    let groups = ["d0", "d1", "d2", "d3", "d4", "d0"]
    let clusters = [[0, 1, 5], [2, 3], [4]]

    func testCoherenceIsWithinClusterJaccardAgainstRandomPairs() throws {
        let c = try XCTUnwrap(ClusterCoherence.measure(clusters: clusters, labels: labels, groups: groups, seed: 1))
        // Within: (0,1) 2/4, (1,5) 2/4, (2,3) 2/3; (0,5) is one document, 4 has no labels. Mean 5/9.
        // Random: the 10 pairs of the 5 labelled documents (at most `samples`: all of them) less (0,5): (0,1) 1/2,
        // (1,5) 1/2, (2,3) 2/3, six pairs 0. Mean (5/3)/9 = 5/27. Ratio 3.
        // Bound: sums of at most 9 terms in [0,1] and one division, each rounding within 2^-53 relative: 1e-15.
        XCTAssertEqual(c.labelled, 5)
        XCTAssertEqual(c.withinPairs, 3)
        XCTAssertEqual(c.within, 5.0 / 9, accuracy: 1e-15)
        XCTAssertEqual(c.randomPairs, 9)
        XCTAssertEqual(c.random, 5.0 / 27, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(c.ratio), 3, accuracy: 1e-14)
        XCTAssertEqual(c.json["ratio"]?.doubleValue, 3)
        XCTAssertEqual(c.json["within_jaccard"]?.doubleValue, 0.5556)
        // Fewer samples than pairs: drawn with the seed, the same draw for the same seed.
        let s1 = try XCTUnwrap(ClusterCoherence.measure(clusters: clusters, labels: labels, groups: groups, seed: 7, samples: 4))
        let s2 = try XCTUnwrap(ClusterCoherence.measure(clusters: clusters, labels: labels, groups: groups, seed: 7, samples: 4))
        XCTAssertEqual(s1, s2)
        XCTAssertEqual(s1.randomPairs, 4)
        XCTAssertEqual(s1.within, c.within)
        // Fewer than two labelled documents: no measure.
        XCTAssertNil(ClusterCoherence.measure(clusters: [[0, 1]], labels: [["A"], []], groups: ["a", "b"], seed: 1))
    }

    func testLabelsComeFromMeshDescriptorUIs() {
        let r: JSONValue = ["meta": ["mesh": [["descriptor": "Humans", "ui": "D006801"], ["descriptor": "Liver"], "Kidney"]]]
        XCTAssertEqual(ClusterCoherence.labels(r), ["D006801", "Liver", "Kidney"])
        XCTAssertEqual(ClusterCoherence.labels(["text": "x"]), [])
    }

    func testSizesHistogramAndShare() {
        let s = ClusterSizes(clusters)
        XCTAssertEqual(s.histogram, [1: 1, 2: 1, 3: 1])
        XCTAssertEqual(s.share, 5.0 / 6)
        XCTAssertEqual(s.json, ["1": 1, "2": 1, "3": 1])
        XCTAssertEqual(ClusterSizes([]).share, 0)
    }

    func testAutoEmbedderIsMiniLMWhenItsDirectoryIsFoundElseHashing() {
        XCTAssertEqual(Embedders.resolve(embedder: "auto", model: nil, locate: { nil }).embedder, "hashing")
        XCTAssertEqual(Embedders.resolve(embedder: "auto", model: nil, locate: { "/m" }).model, "/m")
        XCTAssertEqual(Embedders.resolve(embedder: "auto", model: "/given", locate: { "/m" }).model, "/given")
        XCTAssertEqual(Embedders.resolve(embedder: "hashing", model: nil, locate: { "/m" }).embedder, "hashing")
        XCTAssertEqual(ClusterConfig().embedder, "auto")
        XCTAssertNil(ClusterConfig().similarity)
        XCTAssertGreaterThan(ClusterConfig.defaultSimilarity(embedder: "hashing"), 0)
        XCTAssertGreaterThan(ClusterConfig.defaultSimilarity(embedder: "minilm"), 0)
    }

    /// The stage with its defaults (no MiniLM found: hashing at its default threshold, written into the config),
    /// on PubMed-like chunks: the manifest carries the size histogram, the share, and the coherence of the
    /// clusters it wrote.
    func testStageReportsSizesAndMeshCoherence() throws {
        let dir = NSTemporaryDirectory() + "loom-coherence-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let texts = [
            "Statin therapy lowers LDL cholesterol in older adults with coronary disease.",
            "In older adults with coronary disease, statin therapy lowers LDL cholesterol levels.",
            "Gene expression profiling of breast tumours identifies distinct molecular subtypes.",
            "Breast tumours fall into distinct molecular subtypes by gene expression profiling.",
            "Volcanic ash deposits record eruptions of the last ten thousand years.",
        ]
        let mesh: [[JSONValue]] = [
            [["descriptor": "Hydroxymethylglutaryl-CoA Reductase Inhibitors", "ui": "D019161"], ["descriptor": "Aged", "ui": "D000368"]],
            [["descriptor": "Hydroxymethylglutaryl-CoA Reductase Inhibitors", "ui": "D019161"], ["descriptor": "Humans", "ui": "D006801"]],
            [["descriptor": "Breast Neoplasms", "ui": "D001943"], ["descriptor": "Humans", "ui": "D006801"]],
            [["descriptor": "Breast Neoplasms", "ui": "D001943"], ["descriptor": "Gene Expression Profiling", "ui": "D020869"]],
            [["descriptor": "Volcanic Eruptions", "ui": "D055868"]],
        ]
        let records: [JSONValue] = texts.indices.map { i in
            ["id": .string("pubmed:\(i)#0"), "doc_id": .string("pubmed:\(i)"), "index": 0, "text": .string(texts[i]),
             "meta": ["mesh": .array(mesh[i])]]
        }
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: opts)
        let d = try StageRunner.run(
            ClusterStage(config: ClusterConfig(), input: dir + "/in", jobs: 1, locate: { nil }), directory: dir + "/default", options: opts).manifest
        XCTAssertEqual(d.config["embedder"]?.stringValue, "hashing")
        XCTAssertEqual(d.config["similarity"]?.doubleValue, ClusterConfig.defaultSimilarity(embedder: "hashing"))
        XCTAssertEqual(d.counts["similarity"]?.doubleValue, ClusterConfig.defaultSimilarity(embedder: "hashing"))
        XCTAssertEqual(d.counts["embedder"]?.stringValue, "hashing")
        var c = ClusterConfig()
        c.similarity = 0.3
        let m = try StageRunner.run(ClusterStage(config: c, input: dir + "/in", jobs: 1, locate: { nil }), directory: dir + "/out", options: opts).manifest
        XCTAssertEqual(m.counts["cluster_sizes"], ["1": 1, "2": 2])
        XCTAssertEqual(m.counts["share_in_clusters"]?.doubleValue, 0.8)
        // Within: 1/3 and 1/3; random: all 10 pairs, J 1/3 for (0,1), (1,2), (2,3), 0 for the rest: 0.1. Ratio 10/3.
        let co = try XCTUnwrap(m.counts["coherence"])
        XCTAssertEqual(co["within_pairs"]?.intValue, 2)
        XCTAssertEqual(co["within_jaccard"]?.doubleValue, 0.3333)
        XCTAssertEqual(co["random_pairs"]?.intValue, 10)
        XCTAssertEqual(co["random_jaccard"]?.doubleValue, 0.1)
        XCTAssertEqual(co["ratio"]?.doubleValue, 3.3333)
        // Records without MeSH: sizes and share, no coherence.
        _ = try StageRunner.run(
            RecordsStage(records: texts.map { ["text": .string($0)] }), directory: dir + "/plain", options: opts)
        let p = try StageRunner.run(ClusterStage(config: c, input: dir + "/plain", jobs: 1, locate: { nil }), directory: dir + "/p", options: opts).manifest
        XCTAssertEqual(p.counts["share_in_clusters"]?.doubleValue, 0.8)
        XCTAssertNil(p.counts["coherence"])
    }
}
