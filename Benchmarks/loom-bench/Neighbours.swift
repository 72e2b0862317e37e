// loom-bench neighbours: the IVF index against exact search on the same vectors (of PubMed abstract sentences, from
// the hashing embedder or MiniLM): recall@10 and seconds, in-process, two threads.

import Foundation
import LoomCore
import LoomPack

func neighboursBench(_ pubmed: String, count: Int, embedder: String, model given: String?) {
    let tmp = NSTemporaryDirectory() + "loom-bench-nb-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    var sentences = embedder == "synthetic" ? ["-"] : pubmedSentences(pubmed, count: count, tmp: tmp)
    guard !sentences.isEmpty else {
        print("no sentences in \(pubmed)")
        exit(1)
    }
    // Fewer sentences than asked: the rest are the same sentences again with their words in another order
    // (seeded), so near neighbours exist but are not exact copies.
    var rng = SplitMix64(seed: 7)
    let real = sentences.count
    while embedder != "synthetic" && sentences.count < count {
        var w = sentences[rng.below(real)].split(separator: " ")
        for i in stride(from: w.count - 1, to: 0, by: -1) { w.swapAt(i, rng.below(i + 1)) }
        sentences.append(w.joined(separator: " "))
    }
    let jobs = 2, k = 16
    var t = Date()
    var v: [Float]
    var dim = 512
    if embedder == "minilm" {
        guard let dir = miniLMModelDirectory(given) else {
            print("no MiniLM model: pass --model DIR or set LOOM_MINILM_DIR")
            exit(2)
        }
        // MiniLM vectors take minutes to compute: kept between runs in the temporary directory.
        let cache = NSTemporaryDirectory() + "loom-bench-minilm-vectors-\(count).bin"
        if let (c, d) = try? VectorFile.read(cache), c.count == count * d {
            v = c
            dim = d
        } else {
            do {
                let m = try MiniLMEmbedder(directory: dir)
                v = try m.embed(sentences, jobs: jobs)
                dim = m.dim
                try VectorFile.write(v, dim: dim, embedder: "minilm", model: dir, to: cache)
            } catch {
                print("\(error)")
                exit(1)
            }
        }
    } else if embedder == "synthetic" {
        // Unit vectors around 1,000 seeded random topic directions, each point with its own noise level (sigma
        // 0.5 to 1.5 per dimension, so same-topic cosines spread from about 0.3 to 0.8): data with the topical
        // structure sentence embeddings have, at any size, without the minutes MiniLM takes.
        dim = 384
        v = syntheticVectors(count: count, dim: dim, topics: 1000, seed: 5)
    } else {
        v = HashingEmbedder(dim: dim).embed(sentences, jobs: jobs)
    }
    if embedder == "synthetic" {
        print("\(count) synthetic unit vectors (1,000 Gaussian topics, per-point noise 0.5-1.5), \(dim) dimensions; \(k) neighbours, \(jobs) threads")
    } else {
        print("\(sentences.count) vectors (\(real) abstract sentences of \(pubmed)\(real < count ? ", the rest shuffled copies" : "")), \(embedder) embedder, \(dim) dimensions, embedded in \(f(Date().timeIntervalSince(t), 1)) s; \(k) neighbours, \(jobs) threads")
    }
    print("")
    t = Date()
    let exact = Neighbours.exact(v, dim: dim, k: k, jobs: jobs)
    let exactSeconds = Date().timeIntervalSince(t)
    // The neighbours clustering uses are the similar ones (--similarity 0.7 by default): recall among those too.
    let strong = exact.map { row in row.prefix(10).filter { $0.similarity >= 0.7 } }
    let strongCount = strong.reduce(0) { $0 + $1.count }
    func strongRecall(_ a: [[(index: Int, similarity: Float)]]) -> String {
        guard strongCount > 0 else { return "n/a" }
        var hit = 0
        for (row, want) in zip(a, strong) {
            let got = Set(row.prefix(10).map(\.index))
            hit += want.filter { got.contains($0.index) }.count
        }
        return String(format: "%.4f", Double(hit) / Double(strongCount))
    }
    print("Exact top-10 neighbours with similarity >= 0.7: \(strongCount) (of \(exact.reduce(0) { $0 + min(10, $1.count) }))")
    print("")
    print("| search | lists | probes | seconds | speed-up vs exact | recall@10 | recall of neighbours >= 0.7 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("| exact (blocked products) | - | - | \(f(exactSeconds, 1)) | 1.0x | 1.0000 | 1.0000 |")
    // The default layout (4 sqrt(n) lists) at four probe counts, then sqrt(n) lists (a quarter of the k-means cost)
    // probing the same fractions of the lists.
    let root = Int(Double(v.count / dim).squareRoot().rounded())
    for (lists, probes) in [(nil, 8), (nil, 16), (nil, 32), (nil, 64), (root, 4), (root, 8), (root, 12), (root, 16)] as [(Int?, Int)] {
        var c = IVFConfig()
        c.lists = lists
        c.probes = probes
        t = Date()
        let approx = ApproximateNeighbours.ivf(v, dim: dim, k: k, config: c, jobs: jobs)
        let s = Date().timeIntervalSince(t)
        let r = ApproximateNeighbours.recall(approx, exact: exact, k: 10)
        print("| IVF (k-means \(c.iterations) iterations included) | \(c.listCount(v.count / dim)) | \(probes) | \(f(s, 1)) | \(f(exactSeconds / s, 1))x | \(String(format: "%.4f", r)) | \(strongRecall(approx)) |")
    }
}

func syntheticVectors(count: Int, dim: Int, topics: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    func gauss() -> Float {
        let u = max(1e-12, Double(rng.below(1 << 30)) / Double(1 << 30)), w = Double(rng.below(1 << 30)) / Double(1 << 30)
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * w))
    }
    let centres = (0..<(topics * dim)).map { _ in gauss() }
    var v = [Float](repeating: 0, count: count * dim)
    for i in 0..<count {
        let t = rng.below(topics)
        let sigma = 0.5 + Float(rng.below(1000)) / 1000
        var norm: Float = 0
        for d in 0..<dim {
            let x = centres[t * dim + d] + sigma * gauss()
            v[i * dim + d] = x
            norm += x * x
        }
        let inv = 1 / norm.squareRoot()
        for d in 0..<dim { v[i * dim + d] *= inv }
    }
    return v
}
