// loom-bench dedup: `loom dedup minhash` against rensa and datasketch (Benchmarks/peers/dedup_bench.py) on one
// corpus in the same run, plus precision/recall of each tool's reported pairs against the corpus's ground truth.

import Foundation

/// Pairs "a b" (a < b) from a TSV with ids in the first two columns (the truth file and the peers' output).
func tsvPairs(_ path: String, skipHeader: Bool) -> Set<[String]> {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    var out = Set<[String]>()
    for (i, line) in text.split(separator: "\n").enumerated() where !(skipHeader && i == 0) {
        let f = line.split(separator: "\t").map(String.init)
        if f.count >= 2 { out.insert(idPair(f[0], f[1])) }
    }
    return out
}

func idPair(_ a: String, _ b: String) -> [String] {
    if let x = Int(a), let y = Int(b) { return x < y ? [a, b] : [b, a] }
    return a < b ? [a, b] : [b, a]
}

/// The ids of a JSON value as text (numbers as written, strings without quotes).
func idText(_ v: Any?) -> String {
    if let n = v as? NSNumber { return n.stringValue }
    return "\(v ?? "")"
}

func jsonLines(_ path: String) -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// Loom's verified pairs (pairs.jsonl) and the pairs its clusters imply (every two members of a cluster).
func loomPairs(_ dir: String) -> (verified: Set<[String]>, clusters: Set<[String]>) {
    var verified = Set<[String]>()
    for p in jsonLines(dir + "/pairs.jsonl") { verified.insert(idPair(idText(p["a"]), idText(p["b"]))) }
    var clusters = Set<[String]>()
    for c in jsonLines(dir + "/duplicates.jsonl") {
        let ids = [idText(c["kept"])] + ((c["removed"] as? [[String: Any]]) ?? []).map { idText($0["id"]) }
        for i in 0..<ids.count { for j in (i + 1)..<ids.count { clusters.insert(idPair(ids[i], ids[j])) } }
    }
    return (verified, clusters)
}

func precisionRecall(_ got: Set<[String]>, _ truth: Set<[String]>) -> (Double, Double) {
    let tp = Double(got.intersection(truth).count)
    return (got.isEmpty ? 0 : tp / Double(got.count), truth.isEmpty ? 0 : tp / Double(truth.count))
}

func lineCount(_ path: String) -> Int {
    guard let d = FileManager.default.contents(atPath: path) else { return 0 }
    return d.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
}

func dedup(_ corpus: String, truth truthPath: String, runs: Int, peerRuns: Int) {
    let docs = lineCount(corpus)
    let truth = tsvPairs(truthPath, skipHeader: true)
    let tmp = NSTemporaryDirectory() + "loom-bench-dedup-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let peerScript = benchDir + "/peers/dedup_bench.py"
    print("corpus: \(corpus) (\(docs) documents, \(truth.count) ground-truth pairs)")
    print("runs: loom \(runs)x each, peers \(peerRuns)x each, interleaved; wall-clock of whole processes")
    var tools: [(name: String, argv: [String], runs: Int)] = [
        ("loom dedup minhash --jobs 1", [loom, "dedup", "minhash", corpus, "-o", tmp + "/j1", "--jobs", "1", "--force", "-q"], runs),
        ("loom dedup minhash --jobs 2", [loom, "dedup", "minhash", corpus, "-o", tmp + "/j2", "--jobs", "2", "--force", "-q"], runs),
        ("rensa 0.5.0 (num_bands=16)", ["python3", peerScript, "rensa", corpus, tmp + "/rensa.tsv"], peerRuns),
        ("datasketch 2.0.0", ["python3", peerScript, "datasketch", corpus, tmp + "/datasketch.tsv"], peerRuns),
    ]
    if ProcessInfo.processInfo.environment["LOOM_BENCH_NO_DATASKETCH"] != nil { tools.removeLast() }
    var results = [[Measurement]](repeating: [], count: tools.count)
    for r in 0..<max(runs, peerRuns) {
        for (k, t) in tools.enumerated() where r < t.runs {
            let m = measure(t.argv)
            if m.status != 0 { print("\(t.name) failed with status \(m.status)"); exit(1) }
            results[k].append(m)
        }
    }
    let (lv, lc) = loomPairs(tmp + "/j1")
    let quality: [(Double, Double)] = [
        precisionRecall(lv, truth), precisionRecall(loomPairs(tmp + "/j2").verified, truth),
        precisionRecall(tsvPairs(tmp + "/rensa.tsv", skipHeader: false), truth),
        precisionRecall(tsvPairs(tmp + "/datasketch.tsv", skipHeader: false), truth),
    ]
    print("")
    print("| tool | runs | best s | median s | documents/s (best) | CPU s (median) | peak MB | pairs precision | pairs recall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (k, t) in tools.enumerated() {
        let w = results[k].map(\.wall)
        let best = w.min()!
        print(
            "| \(t.name) | \(w.count) | \(f(best)) | \(f(median(w))) | \(Int(Double(docs) / best)) | \(f(median(results[k].map(\.cpu)))) | \(Int(results[k].map(\.maxRSSMB).max()!)) | \(f(quality[k].0, 4)) | \(f(quality[k].1, 4)) |"
        )
    }
    let (cp, cr) = precisionRecall(lc, truth)
    print("")
    print("loom's clusters as pairs (every two members of a cluster): precision \(f(cp, 4)), recall \(f(cr, 4))")
    let best = results.map { $0.map(\.wall).min()! }
    let med = results.map { median($0.map(\.wall)) }
    print("loom --jobs 1 vs rensa:      \(f(best[2] / best[0], 1))x (best), \(f(med[2] / med[0], 1))x (median)")
    if tools.count > 3 {
        print("loom --jobs 1 vs datasketch: \(f(best[3] / best[0], 1))x (best), \(f(med[3] / med[0], 1))x (median)")
    }
    let pairs = zip(results[0], results[1]).map { $0.wall / $1.wall }
    print(
        "loom --jobs 2 vs --jobs 1:    \(f(best[0] / best[1]))x (best), \(f(med[0] / med[1]))x (median), pairs: \(pairs.map { f($0) }.joined(separator: " "))"
    )
}

/// N short generated documents (40-80 words from a 50,000-word made-up vocabulary), a tenth of them copies of an
/// earlier one with a few words changed.
func writeShortDocuments(_ path: String, count: Int) {
    var state: UInt64 = 12345
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
    let vocab: [[UInt8]] = (0..<50_000).map { _ in (0..<(3 + Int(next() % 7))).map { _ in letters[Int(next() % 26)] } }
    guard let out = FileHandle(forWritingAtPath: path) ?? {
        FileManager.default.createFile(atPath: path, contents: nil)
        return FileHandle(forWritingAtPath: path)
    }() else { print("cannot write \(path)"); exit(2) }
    var recent: [[Int]] = []
    var buf: [UInt8] = []
    for i in 0..<count {
        var words: [Int]
        if i % 10 == 9, !recent.isEmpty {
            words = recent[Int(next() % UInt64(recent.count))]
            words[Int(next() % UInt64(words.count))] = Int(next() % 50_000)
        } else {
            words = (0..<(40 + Int(next() % 41))).map { _ in Int(next() % 50_000) }
            if recent.count < 1000 { recent.append(words) } else { recent[Int(next() % 1000)] = words }
        }
        buf += Array("{\"id\":\(i),\"text\":\"".utf8)
        for (k, w) in words.enumerated() {
            if k > 0 { buf.append(0x20) }
            buf += vocab[w]
        }
        buf += Array("\"}\n".utf8)
        if buf.count > 1 << 20 {
            out.write(Data(buf))
            buf.removeAll(keepingCapacity: true)
        }
    }
    out.write(Data(buf))
    try? out.close()
}

func dedupMemory(documents: Int) {
    let tmp = NSTemporaryDirectory() + "loom-bench-dedup-memory-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    print("| documents | input MB | wall s | peak MB | bytes per document |")
    print("| --- | --- | --- | --- | --- |")
    var perDoc: [Double] = []
    for n in [documents / 4, documents] {
        let path = tmp + "/short-\(n).jsonl"
        writeShortDocuments(path, count: n)
        let size = Double((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        let m = measure([loom, "dedup", "minhash", path, "-o", tmp + "/out", "--force", "-q"])
        if m.status != 0 { print("loom failed with status \(m.status)"); exit(1) }
        let bytes = m.maxRSSMB * 1_048_576 / Double(n)
        perDoc.append(bytes)
        print("| \(n) | \(f(size / 1_048_576, 0)) | \(f(m.wall, 1)) | \(f(m.maxRSSMB, 0)) | \(f(bytes, 0)) |")
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: tmp + "/out")
    }
    // Memory grows linearly: the marginal bytes per document between the two sizes, times 10 million.
    let n1 = Double(documents / 4)
    let n2 = Double(documents)
    let marginal = (perDoc[1] * n2 - perDoc[0] * n1) / (n2 - n1)
    print("")
    print("marginal memory: \(f(marginal, 0)) bytes per document -> 10 million documents: about \(f(marginal * 1e7 / 1_073_741_824, 1)) GB")
}
