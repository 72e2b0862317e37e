// loom-bench gguf FILE.gguf: `loom model import` (GGUF to a float32 Hugging Face directory: every tensor
// dequantized and written to model.safetensors, plus tokenizer.json) against transformers' GGUF loading
// (from_pretrained(dir, gguf_file=...)) and gguf-py's numpy dequantize of every tensor, one thread each and every
// core, interleaved runs of whole processes. The peers only load into memory; Loom also writes ~1 GB to disk and
// builds the tokenizer, so the ratios are conservative.

import Foundation

func ggufBench(_ file: String, runs: Int) {
    let tmp = NSTemporaryDirectory() + "loom-bench-gguf-" + UUID().uuidString.prefix(8)
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let peer = benchDir + "/peers/gguf_bench.py"
    let mb = Double((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) / 1e6
    print("# GGUF import benchmark\n")
    print("input: \(file) (\(f(mb, 1)) MB); \(runs) interleaved runs of whole processes; wall seconds\n")
    print("| threads | tool | best s | median s | CPU s (median) | peak MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in Array(Set([1, cores])).sorted() {
        var loomRuns: [Measurement] = [], hf: [Measurement] = [], np: [Measurement] = []
        for _ in 0..<runs {
            try? FileManager.default.removeItem(atPath: tmp + "/out")
            loomRuns.append(measure([loom, "model", "import", file, "-o", tmp + "/out", "--threads", String(threads), "-q"]))
            hf.append(measure(["python3", peer, "transformers", file, String(threads)]))
            np.append(measure(["python3", peer, "gguf", file, String(threads)]))
        }
        if (loomRuns + hf + np).contains(where: { $0.status != 0 }) {
            print("a run failed (loom \(loomRuns.map(\.status)), transformers \(hf.map(\.status)), gguf \(np.map(\.status)))")
        }
        func row(_ name: String, _ ms: [Measurement]) -> String {
            "| \(threads) | \(name) | \(f(ms.map(\.wall).min()!)) | \(f(median(ms.map(\.wall)))) | \(f(median(ms.map(\.cpu)))) | \(f(ms.map(\.maxRSSMB).max()!, 0)) |"
        }
        print(row("loom model import (writes model.safetensors F32 + tokenizer.json)", loomRuns))
        print(row("transformers from_pretrained(gguf_file=...) (in memory)", hf))
        print(row("gguf-py dequantize of every tensor (numpy, in memory)", np))
        for (name, peerRuns) in [("transformers", hf), ("gguf-py dequantize", np)] {
            let pairs = zip(peerRuns, loomRuns).map { $0.wall / $1.wall }
            print(
                "\n\(threads) thread(s): loom is \(f(peerRuns.map(\.wall).min()! / loomRuns.map(\.wall).min()!, 1))x \(name) (best), \(f(median(pairs), 1))x (median of run pairs; pairs \(pairs.map { f($0, 1) }.joined(separator: " ")))"
            )
        }
        print("")
    }
}
