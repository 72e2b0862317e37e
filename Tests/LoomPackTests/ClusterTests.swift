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
