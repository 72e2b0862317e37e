// loom-bench neighbours: the IVF index against exact search on the same vectors (of PubMed abstract sentences, from
// the hashing embedder or MiniLM, or synthetic topic vectors): recall@10 and seconds, in-process, two threads; then
// faiss's exact and IVF search on the same vectors (Benchmarks/peers/faiss_neighbours.py) when python3 imports faiss.

import Foundation
import LoomCore
import LoomPack

func neighboursBench(_ pubmed: String, count: Int, embedder: String, model given: String?, configs: [IVFConfig]?, reuseExact: Bool, peer: Bool) {
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
    // --reuse-exact (for tuning runs): the exact answer and its seconds from an earlier run on the same vectors.
    let exactCache = NSTemporaryDirectory() + "loom-bench-exact-\(embedder)-\(count).bin"
    var exact: [[(index: Int, similarity: Float)]]
    var exactSeconds: Double
    if reuseExact, let (e, s) = readExact(exactCache, n: v.count / dim, k: k) {
        (exact, exactSeconds) = (e, s)
        print("(exact search: reused from \(exactCache), its time measured then)")
    } else {
        exact = Neighbours.exact(v, dim: dim, k: k, jobs: jobs)
        exactSeconds = Date().timeIntervalSince(t)
        writeExact(exact, seconds: exactSeconds, k: k, to: exactCache)
    }
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
    print("| exact (blocked products, upper triangle) | - | - | \(f(exactSeconds, 1)) | 1.0x | 1.0000 | 1.0000 |")
    if !reuseExact {
        // The simple version (every row against all rows) the triangle is checked against, for the record.
        t = Date()
        let full = Neighbours.exactReference(v, dim: dim, k: k, jobs: jobs)
        let s = Date().timeIntervalSince(t)
        print("| exact, full matrix (the reference) | - | - | \(f(s, 1)) | \(f(exactSeconds / s, 1))x | \(String(format: "%.4f", ApproximateNeighbours.recall(full, exact: exact, k: 10))) | \(strongRecall(full)) |")
    }
    // The default layout (sqrt(n) lists) at five probe counts and one-sided at the default 16 probes (each similarity
    // offered only to the probing document), then 4 sqrt(n) lists (four times the k-means cost, smaller lists).
    let root = Int(Double(v.count / dim).squareRoot().rounded())
    func layout(_ lists: Int?, _ probes: Int, _ symmetric: Bool = true) -> IVFConfig {
        var c = IVFConfig()
        c.lists = lists
        c.probes = probes
        c.symmetric = symmetric
        return c
    }
    let layouts: [IVFConfig] = configs
        ?? [layout(nil, 4), layout(nil, 8), layout(nil, 12), layout(nil, 16), layout(nil, 24), layout(nil, 16, false), layout(4 * root, 16), layout(4 * root, 32)]
    for c in layouts {
        t = Date()
        let approx = ApproximateNeighbours.ivf(v, dim: dim, k: k, config: c, jobs: jobs)
        let s = Date().timeIntervalSince(t)
        let r = ApproximateNeighbours.recall(approx, exact: exact, k: 10)
        var name = "IVF"
        if !c.symmetric { name += " one-sided" }
        name += c.int8 ? ", int8 products, \(c.rescoreMargin) extra candidates re-scored" : ", float32 products"
        print("| \(name) (training included) | \(c.listCount(v.count / dim)) | \(c.probes) | \(f(s, 1)) | \(f(exactSeconds / s, 1))x | \(String(format: "%.4f", r)) | \(strongRecall(approx)) |")
    }
    // The peer: faiss on the same vectors and threads (IndexFlatIP, and IndexIVFFlat at Loom's default layout and
    // at 4 sqrt(n) lists), when python3 can import it.
    let n = v.count / dim
    guard peer else { return }
    // Each distinct lists:probes layout once (several Loom rows may differ only in their products or margin).
    var peerLayouts: [(Int, Int)] = []
    for c in configs ?? [] where !peerLayouts.contains(where: { $0 == (c.listCount(n), c.probes) }) { peerLayouts.append((c.listCount(n), c.probes)) }
    if configs == nil { peerLayouts = [(root, 8), (root, 16), (4 * root, 32)] }
    let vecPath = tmp + "/vectors.bin"
    guard (try? VectorFile.write(v, dim: dim, embedder: embedder, to: vecPath)) != nil else { return }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", benchDir + "/peers/faiss_neighbours.py", vecPath, String(k), String(jobs),
                   peerLayouts.map { "\($0.0):\($0.1)" }.joined(separator: ","), tmp]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return }
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        print("")
        print("(faiss peer not run: pip install faiss-cpu)")
        return
    }
    for line in out.split(separator: "\n") {
        guard let r = try? JSONValue.parse(String(line)), let name = r["name"]?.stringValue, let s = r["seconds"]?.doubleValue,
            let d = FileManager.default.contents(atPath: tmp + "/\(name).i32"), d.count == n * k * 4
        else { continue }
        let ids = d.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        let found: [[(index: Int, similarity: Float)]] = (0..<n).map { q in
            (0..<k).compactMap { ids[q * k + $0] < 0 ? nil : (Int(ids[q * k + $0]), 0) }
        }
        let parts = name.split(separator: "-")
        let label = name == "exact" ? "| faiss \(r["faiss"]?.stringValue ?? "") IndexFlatIP (exact) | - | -" : "| faiss IndexIVFFlat (training included) | \(parts[1]) | \(parts[2])"
        print("\(label) | \(f(s, 1)) | \(f(exactSeconds / s, 1))x | \(String(format: "%.4f", ApproximateNeighbours.recall(found, exact: exact, k: 10))) | \(strongRecall(found)) |")
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

/// `--ivf 316:8,1265:32,316:16:one-sided,default:12:f32,default:16:m4`: lists (or `default`), probes, then
/// any of `one-sided` (no symmetric offers), `f32` (float32 products), `mN` (N extra candidates re-scored).
func ivfLayouts(_ text: String) -> [IVFConfig] {
    text.split(separator: ",").map { item in
        let f = item.split(separator: ":").map(String.init)
        var c = IVFConfig()
        c.lists = f.first.flatMap(Int.init)
        if f.count > 1, let p = Int(f[1]) { c.probes = p }
        for o in f.dropFirst(2) {
            if o == "one-sided" { c.symmetric = false }
            if o == "f32" { c.int8 = false }
            if o.hasPrefix("m"), let n = Int(o.dropFirst(1)) { c.rescoreMargin = n }
        }
        return c
    }
}

func writeExact(_ e: [[(index: Int, similarity: Float)]], seconds: Double, k: Int, to path: String) {
    var out = [Float](repeating: -2, count: 1 + e.count * k * 2)
    out[0] = Float(seconds)
    for (q, row) in e.enumerated() {
        for (r, nb) in row.enumerated() {
            out[1 + (q * k + r) * 2] = Float(nb.index)
            out[2 + (q * k + r) * 2] = nb.similarity
        }
    }
    try? out.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: URL(fileURLWithPath: path))
}

func readExact(_ path: String, n: Int, k: Int) -> ([[(index: Int, similarity: Float)]], Double)? {
    guard let d = FileManager.default.contents(atPath: path), d.count == (1 + n * k * 2) * 4 else { return nil }
    let f = d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    let rows: [[(index: Int, similarity: Float)]] = (0..<n).map { q in
        (0..<k).compactMap { r in f[1 + (q * k + r) * 2] < 0 ? nil : (Int(f[1 + (q * k + r) * 2]), f[2 + (q * k + r) * 2]) }
    }
    return (rows, Double(f[0]))
}
