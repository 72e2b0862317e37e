// loom-bench neighbours: the IVF index against exact search on the same vectors (of PubMed abstract sentences, from
// the hashing embedder or MiniLM): recall@10 and seconds, in-process, two threads.

import Foundation
import LoomCore
import LoomPack

func neighboursBench(_ pubmed: String, count: Int, embedder: String, model given: String?) {
    let tmp = NSTemporaryDirectory() + "loom-bench-nb-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    var sentences = pubmedSentences(pubmed, count: count, tmp: tmp)
    guard !sentences.isEmpty else {
        print("no sentences in \(pubmed)")
        exit(1)
    }
    // Fewer sentences than asked: the rest are the same sentences again with their words in another order
    // (seeded), so near neighbours exist but are not exact copies.
    var rng = SplitMix64(seed: 7)
    let real = sentences.count
    while sentences.count < count {
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
    } else {
        v = HashingEmbedder(dim: dim).embed(sentences, jobs: jobs)
    }
    print("\(sentences.count) vectors (\(real) abstract sentences of \(pubmed)\(real < count ? ", the rest shuffled copies" : "")), \(embedder) embedder, \(dim) dimensions, embedded in \(f(Date().timeIntervalSince(t), 1)) s; \(k) neighbours, \(jobs) threads")
    print("")
    t = Date()
    let exact = Neighbours.exact(v, dim: dim, k: k, jobs: jobs)
    let exactSeconds = Date().timeIntervalSince(t)
    print("| search | lists | probes | seconds | speed-up vs exact | recall@10 |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("| exact (blocked products) | - | - | \(f(exactSeconds, 1)) | 1.0x | 1.0000 |")
    for probes in [8, 16, 24, 32] {
        var c = IVFConfig()
        c.probes = probes
        t = Date()
        let approx = ApproximateNeighbours.ivf(v, dim: dim, k: k, config: c, jobs: jobs)
        let s = Date().timeIntervalSince(t)
        let r = ApproximateNeighbours.recall(approx, exact: exact, k: 10)
        print("| IVF (k-means \(c.iterations) iterations included) | \(c.listCount(sentences.count)) | \(probes) | \(f(s, 1)) | \(f(exactSeconds / s, 1))x | \(String(format: "%.4f", r)) |")
    }
}
