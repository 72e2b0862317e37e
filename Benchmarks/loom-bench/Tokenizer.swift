// loom-bench tokenizer: Loom's BPE encoder against Hugging Face tokenizers on the same documents, one thread each,
// both fixture tokenizers (GPT-2 ByteLevel regex and Llama-3 Split + ByteLevel), same process pairing per run.

import Foundation
import LoomCore
import LoomTokenizer

/// Texts of a JSONL corpus in order, until `megabytes` MB of UTF-8 (0: all).
func tokenizerTexts(_ corpus: String, megabytes: Double) -> [String] {
    var texts: [String] = []
    var size = 0
    do {
        let r = try LineReader(path: corpus)
        try r.forEachLine { line in
            if megabytes > 0 && Double(size) >= megabytes * 1e6 { return }
            guard let v = try? JSONValue.parse(bytes: line), let t = v["text"]?.stringValue else { return }
            texts.append(t)
            size += t.utf8.count
        }
    } catch {
        print("cannot read \(corpus): \(error)")
        exit(1)
    }
    return texts
}

func idsDigest(_ all: [[Int32]]) -> String {
    var h = SHA256()
    var buf: [UInt8] = []
    for ids in all {
        buf.removeAll(keepingCapacity: true)
        for i in ids + [-1] { withUnsafeBytes(of: i.littleEndian) { buf.append(contentsOf: $0) } }
        h.update(buf)
    }
    return h.finalize().map { String(format: "%02x", $0) }.joined()
}

func tokenizerBench(_ corpus: String, megabytes: Double, runs: Int, tokenizers: [String]) {
    let texts = tokenizerTexts(corpus, megabytes: megabytes)
    let bytes = texts.reduce(0) { $0 + $1.utf8.count }
    let mb = Double(bytes) / 1e6
    print("# Tokenizer encoding benchmark\n")
    print("input: the first \(texts.count) texts of \(corpus) (\(f(mb, 1)) MB of UTF-8); \(runs) interleaved runs (peer, then Loom), each with a freshly loaded tokenizer (empty word cache) on both sides; encoding time only, in-process (Swift Date / Python time.perf_counter)\n")
    print("| tokenizer | encoder | threads | best s | median s | MB/s (best) | tokens | ids |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    var summary: [String] = []
    for path in tokenizers {
        let name = (path as NSString).lastPathComponent
        // Interleaved: in each run the peer (its own process, one run) and then Loom, so a slow spell of the
        // shared host hits both sides of a pair.
        var env = ProcessInfo.processInfo.environment
        env["RAYON_NUM_THREADS"] = "1"
        var hfSingle: [Double] = []
        var hfBatch: [Double] = []
        var hfDigest = ""
        var hfTokens = 0
        var version = "?"
        var single: [Double] = []
        var batch1: [Double] = []
        var batch2: [Double] = []
        var digest = ""
        var tokens = 0
        for _ in 0..<runs {
            let peer = Process()
            peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            peer.arguments = ["python3", benchDir + "/peers/tokenizer_bench.py", path, corpus, "--megabytes", String(megabytes), "--runs", "1"]
            peer.environment = env
            let pipe = Pipe()
            peer.standardOutput = pipe
            do { try peer.run() } catch {
                print("cannot run the peer: \(error)")
                exit(1)
            }
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            peer.waitUntilExit()
            let last = String(decoding: out, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            guard peer.terminationStatus == 0, let hf = try? JSONValue.parse(last) else {
                print("the peer failed (status \(peer.terminationStatus)): is tokenizers installed? pip install tokenizers==0.23.3")
                exit(1)
            }
            hfSingle += (hf["single_seconds"]?.arrayValue ?? []).compactMap(\.doubleValue)
            hfBatch += (hf["batch_seconds"]?.arrayValue ?? []).compactMap(\.doubleValue)
            hfDigest = hf["ids_sha256"]?.stringValue ?? ""
            hfTokens = hf["tokens"]?.intValue ?? 0
            version = hf["tokenizers"]?.stringValue ?? "?"

            guard let tok = try? Tokenizer.load(path) else {
                print("cannot load \(path)")
                exit(1)
            }
            var t = Date()
            var all: [[Int32]] = []
            all.reserveCapacity(texts.count)
            for s in texts { all.append(tok.encode(s)) }
            single.append(Date().timeIntervalSince(t))
            if digest.isEmpty {
                digest = idsDigest(all)
                tokens = all.reduce(0) { $0 + $1.count }
            }
            for (jobs, into) in [(1, 0), (2, 1)] {
                guard let fresh = try? Tokenizer.load(path) else { exit(1) }
                t = Date()
                _ = fresh.encodeBatch(texts, jobs: jobs)
                let s = Date().timeIntervalSince(t)
                if into == 0 { batch1.append(s) } else { batch2.append(s) }
            }
        }
        let same = digest == hfDigest
        let idsNote = same ? "identical" : "DIFFERENT"
        func row(_ enc: String, _ threads: Int, _ xs: [Double], _ n: Int) {
            print("| \(name) | \(enc) | \(threads) | \(f(xs.min()!, 3)) | \(f(median(xs), 3)) | \(f(mb / xs.min()!, 1)) | \(n) | \(idsNote) |")
        }
        row("loom encode (one call per text)", 1, single, tokens)
        row("loom encodeBatch --jobs 1", 1, batch1, tokens)
        row("loom encodeBatch --jobs 2", 2, batch2, tokens)
        row("tokenizers \(version) encode (one call per text)", 1, hfSingle, hfTokens)
        row("tokenizers \(version) encode_batch, RAYON_NUM_THREADS=1", 1, hfBatch, hfTokens)
        let pairs = zip(hfSingle, single).map { $0 / $1 }
        let ratioSingle = hfSingle.min()! / single.min()!
        let ratioBatch = hfBatch.min()! / batch1.min()!
        summary.append(
            "\(name): loom / tokenizers throughput, one thread: \(f(ratioSingle))x one call per text (median \(f(median(hfSingle) / median(single)))x, median of run pairs \(f(median(pairs)))x), \(f(ratioBatch))x batch (median \(f(median(hfBatch) / median(batch1)))x); ids \(idsNote) (SHA-256 \(digest.prefix(16)))"
        )
    }
    print("")
    for s in summary { print(s) }
}
