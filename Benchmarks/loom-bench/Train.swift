// loom-bench train: training tokens/s and peak memory of Loom's Llama against PyTorch (transformers
// LlamaForCausalLM, AdamW, fp32) on the same config, batch and thread count, each side in its own process; and
// the fraction of this machine's measured sgemm rate the training step reaches (MFU).

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

struct TrainShape {
    var hidden = 256, intermediate = 688, layers = 4, heads = 4, vocab = 8192, seq = 256, batch = 8, threads = 2
    var steps = 5, warmup = 2

    var config: LlamaConfig {
        LlamaConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numLayers: layers, numHeads: heads,
            maxPositions: max(1024, seq))
    }

    /// Matrix-product FLOPs of one training step (forward 2·m·n·k per product, backward twice that): the
    /// projections and head, plus attention's QKᵀ and PV over the full T x T blocks Loom computes.
    var flopsPerStep: Double {
        let n = Double(batch * seq), d = Double(hidden), i = Double(intermediate), v = Double(vocab)
        let qkvo = 4 * d * d, mlp = 3 * d * i
        let perToken = 2 * (Double(layers) * (qkvo + mlp) + d * v)
        let attention = Double(layers) * 2 * 2 * Double(seq) * d  // QKᵀ and PV per token
        return 3 * n * (perToken + attention)
    }
}

/// The Loom side, in a child process: prints one JSON line like the PyTorch script.
func trainChild(_ s: TrainShape) {
    Compute.configure(threads: s.threads)
    let model = try! LlamaModel(config: s.config)
    model.initialize(seed: 0)
    let opt = AdamW(count: model.params.count)
    var rng = SplitMix64(seed: 0)
    let tokens = (0..<(s.batch * s.seq)).map { _ in Int32(rng.next() % UInt64(s.vocab)) }
    let batch = Batch(rows: s.batch, length: s.seq, tokens: tokens)
    var times: [Double] = [], losses: [Double] = []
    for step in 0..<(s.warmup + s.steps) {
        let t0 = Date()
        model.params.grads.zero()
        model.forward(batch)
        let n = batch.targetCount
        let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(n)) / Double(n)
        model.backward()
        Gradients.clip(model.params, maxNorm: 1)
        opt.update(model.params, lr: 1e-3)
        let dt = Date().timeIntervalSince(t0)
        if step >= s.warmup {
            times.append(dt)
            losses.append(loss)
        }
    }
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    let total = times.reduce(0, +)
    print(
        JSONValue.object(
            JSONObject([
                ("side", "loom"), ("openblas_core", .string(Matmul.coreName)), ("threads", .int(s.threads)),
                ("tokens_per_s", .double(Double(s.batch * s.seq * times.count) / total)),
                ("step_s", .double(total / Double(times.count))), ("best_step_s", .double(times.min()!)),
                ("losses", .array(losses.map { .double($0) })), ("peak_rss_mb", .double(Double(ru.ru_maxrss) / 1024)),
                ("params", .int(model.params.count)),
            ])
        ).jsonString)
}

/// This machine's sgemm rate (GFLOP/s) with `threads` threads, on a 2048-cubed product split like the model's.
func sgemmRate(threads: Int) -> Double {
    Compute.configure(threads: threads)
    let n = 2048
    let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
    for i in 0..<(n * n) { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
    Matmul.parallelGemm(a.pointer, b.pointer, c.pointer, m: n, n: n, k: n)
    var best = Double.infinity
    for _ in 0..<3 {
        let t0 = Date()
        Matmul.parallelGemm(a.pointer, b.pointer, c.pointer, m: n, n: n, k: n)
        best = min(best, Date().timeIntervalSince(t0))
    }
    return 2 * Double(n * n * n) / best / 1e9
}

func runCapture(_ argv: [String]) -> (String, Measurement) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-bench-train-\(getpid()).json").path
    let m = measure(["/bin/sh", "-c", argv.map { "'\($0)'" }.joined(separator: " ") + " > '\(out)'"])
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(atPath: out)
    return (text.split(separator: "\n").last.map(String.init) ?? "", m)
}

func train(_ s: TrainShape, runs: Int) {
    let args = [
        "--hidden", "\(s.hidden)", "--intermediate", "\(s.intermediate)", "--layers", "\(s.layers)", "--heads",
        "\(s.heads)", "--vocab", "\(s.vocab)", "--seq", "\(s.seq)", "--batch", "\(s.batch)", "--threads", "\(s.threads)",
        "--steps", "\(s.steps)", "--warmup", "\(s.warmup)",
    ]
    let me = here.appendingPathComponent("loom-bench").path
    print("config: hidden \(s.hidden), intermediate \(s.intermediate), \(s.layers) layers, \(s.heads) heads, vocab \(s.vocab), seq \(s.seq), batch \(s.batch), \(s.threads) threads; \(s.warmup) warm-up + \(s.steps) timed steps per run, \(runs) interleaved runs")
    print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")")
    var loomRates: [Double] = [], torchRates: [Double] = [], loomRSS = 0.0, torchRSS = 0.0, core = ""
    for r in 0..<runs {
        let (lj, _) = runCapture([me, "train-child"] + args)
        let (pj, _) = runCapture(["python3", benchDir + "/peers/train_bench.py"] + args)
        guard let l = try? JSONValue.parse(lj), let p = try? JSONValue.parse(pj) else {
            print("run \(r + 1): a side failed (loom: \(lj.prefix(200)), pytorch: \(pj.prefix(200)))")
            exit(1)
        }
        loomRates.append(l["tokens_per_s"]!.doubleValue!)
        torchRates.append(p["tokens_per_s"]!.doubleValue!)
        loomRSS = max(loomRSS, l["peak_rss_mb"]!.doubleValue!)
        torchRSS = max(torchRSS, p["peak_rss_mb"]!.doubleValue!)
        core = l["openblas_core"]?.stringValue ?? ""
        print("run \(r + 1): loom \(f(loomRates.last!, 0)) tokens/s, pytorch \(f(torchRates.last!, 0)) tokens/s")
    }
    let rate = sgemmRate(threads: s.threads)
    let loomBest = loomRates.max()!, torchBest = torchRates.max()!
    let mfu = s.flopsPerStep * loomBest / Double(s.batch * s.seq) / (rate * 1e9)
    print("loom (OpenBLAS \(core)): best \(f(loomBest, 0)) / median \(f(median(loomRates), 0)) tokens/s, peak \(f(loomRSS, 0)) MB")
    print("pytorch: best \(f(torchBest, 0)) / median \(f(median(torchRates), 0)) tokens/s, peak \(f(torchRSS, 0)) MB")
    print("ratio loom/pytorch: best \(f(loomBest / torchBest)), median \(f(median(loomRates) / median(torchRates)))")
    print("sgemm 2048^3 with \(s.threads) threads: \(f(rate, 1)) GFLOP/s; training step \(f(s.flopsPerStep / 1e9, 1)) GFLOP; MFU \(f(100 * mfu, 1))%")
}
