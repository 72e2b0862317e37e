// loom-bench dpo: one epoch of DPO over the same preference pairs, Loom (pairs packed into rows with the
// block-diagonal mask) against PyTorch (transformers LlamaForCausalLM, fp32, AdamW; chosen and rejected of each
// batch concatenated and right-padded to the longest sequence, as TRL's DPOTrainer does), each in its own process
// with the same thread count. Both take the reference log-probabilities once before the timed epoch (the starting
// weights as reference) and report pairs/s, the tokens they ran (padding included) and peak memory.

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

struct DPOShape {
    var pairs = 48, promptMin = 16, promptMax = 192, completionMin = 8, completionMax = 96
    var seq = 320, rowsPerBatch = 2, threads = 2
}

/// Seeded random pairs (token ids), written as JSON lines {prompt, chosen, rejected} for both sides.
func dpoPairs(_ s: DPOShape, vocab: Int) -> [(prompt: [Int32], chosen: [Int32], rejected: [Int32])] {
    var rng = SplitMix64(seed: 11)
    func ids(_ lo: Int, _ hi: Int) -> [Int32] {
        let n = lo + Int(rng.next() % UInt64(hi - lo + 1))
        return (0..<n).map { _ in Int32(3 + rng.next() % UInt64(vocab - 3)) }
    }
    return (0..<s.pairs).map { _ in
        (ids(s.promptMin, s.promptMax), ids(s.completionMin, s.completionMax), ids(s.completionMin, s.completionMax))
    }
}

/// The Loom side, in a child process: prints one JSON line.
func dpoChild(_ file: String, shape s: DPOShape, model m: TrainShape) {
    Compute.configure(threads: s.threads)
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { print("{}"); exit(1) }
    let pairs: [PreferencePair] = text.split(separator: "\n").map { line in
        let j = try! JSONValue.parse(String(line))
        func a(_ k: String) -> [Int32] { j[k]!.arrayValue!.map { Int32($0.intValue!) } }
        let p = a("prompt"), c = a("chosen"), r = a("rejected")
        let mask = [Bool](repeating: false, count: p.count)
        return PreferencePair(
            chosen: Segment(tokens: p + c, loss: mask + [Bool](repeating: true, count: c.count)),
            rejected: Segment(tokens: p + r, loss: mask + [Bool](repeating: true, count: r.count)), promptLength: p.count)
    }
    let model = try! LlamaModel(config: m.config)
    model.initialize(seed: 0)
    let builder = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: s.seq)
    let rows = builder.preferenceRows(pairs)
    let batches = stride(from: 0, to: rows.count, by: s.rowsPerBatch).map { Array(rows[$0..<min(rows.count, $0 + s.rowsPerBatch)]) }
    let objective = PreferenceObjective(loss: .dpo(beta: 0.1), data: builder)
    objective.references = PreferenceObjective.referenceLogps(model: model, data: builder, rows: rows, batchSize: s.rowsPerBatch)
    let opt = AdamW(count: model.params.count)
    func step(_ b: [Row]) -> Double {
        model.params.grads.zero()
        let r = objective.accumulate(model: model, microBatches: [b])
        Gradients.clip(model.params, maxNorm: 1)
        opt.update(model.params, lr: 1e-4)
        return r.loss
    }
    _ = step(batches[0])  // warm-up (workspace allocation)
    let t0 = Date()
    var losses: [Double] = []
    for b in batches { losses.append(step(b)) }
    let dt = Date().timeIntervalSince(t0)
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    let real = pairs.reduce(0) { $0 + $1.chosen.tokens.count + $1.rejected.tokens.count }
    print(
        JSONValue.object(
            JSONObject([
                ("side", "loom"), ("pairs_per_s", .double(Double(pairs.count) / dt)), ("epoch_s", .double(dt)),
                ("rows", .int(rows.count)), ("steps", .int(batches.count)),
                ("tokens_run", .int(rows.count * builder.preferenceRowLength)), ("real_tokens", .int(real)),
                ("first_loss", .double(losses[0])), ("peak_rss_mb", .double(Double(ru.ru_maxrss) / 1024)),
            ])
        ).jsonString)
}

func dpoBench(_ s: DPOShape, model m: TrainShape, runs: Int) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("loom-bench-dpo-\(getpid()).jsonl").path
    defer { try? FileManager.default.removeItem(atPath: file) }
    let pairs = dpoPairs(s, vocab: m.vocab)
    let lines = pairs.map { p in
        JSONValue.object(
            JSONObject([
                ("prompt", .array(p.prompt.map { .int(Int($0)) })), ("chosen", .array(p.chosen.map { .int(Int($0)) })),
                ("rejected", .array(p.rejected.map { .int(Int($0)) })),
            ])
        ).jsonString
    }
    try! (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    // The peer's batch: as many pairs as a Loom micro-batch holds on average, so both take about as many steps.
    let builder = DatasetBuilder(codec: ByteCodec(), objective: .dpo, length: s.seq)
    let loomRows = builder.preferenceRows(
        pairs.map { p in
            PreferencePair(
                chosen: Segment(tokens: p.prompt + p.chosen, loss: []), rejected: Segment(tokens: p.prompt + p.rejected, loss: []),
                promptLength: p.prompt.count)
        }).count
    let peerBatch = max(1, Int((Double(pairs.count) / Double(loomRows) * Double(s.rowsPerBatch)).rounded()))
    let modelArgs = [
        "--hidden", "\(m.hidden)", "--intermediate", "\(m.intermediate)", "--layers", "\(m.layers)", "--heads", "\(m.heads)",
        "--vocab", "\(m.vocab)", "--threads", "\(s.threads)",
    ]
    print("model: hidden \(m.hidden), intermediate \(m.intermediate), \(m.layers) layers, \(m.heads) heads, vocab \(m.vocab); \(s.threads) threads")
    print("pairs: \(s.pairs) (prompt \(s.promptMin)-\(s.promptMax) tokens, completions \(s.completionMin)-\(s.completionMax)); loom rows of \(2 * s.seq) tokens, \(s.rowsPerBatch) a step; pytorch \(peerBatch) pairs a step, padded to the longest")
    let me = here.appendingPathComponent("loom-bench").path
    var loomRates: [Double] = [], torchRates: [Double] = [], last: (JSONValue, JSONValue)?
    for r in 0..<runs {
        let (lj, _) = runCapture(
            [me, "dpo-child", file, "--pair-seq", "\(s.seq)", "--rows", "\(s.rowsPerBatch)"] + modelArgs)
        let (pj, _) = runCapture(["python3", benchDir + "/peers/dpo_bench.py", file, "--batch", "\(peerBatch)"] + modelArgs)
        guard let l = try? JSONValue.parse(lj), let p = try? JSONValue.parse(pj), let lr = l["pairs_per_s"]?.doubleValue,
            let pr = p["pairs_per_s"]?.doubleValue
        else {
            print("run \(r + 1): a side failed (loom: \(lj.prefix(200)), pytorch: \(pj.prefix(200)))")
            exit(1)
        }
        loomRates.append(lr)
        torchRates.append(pr)
        last = (l, p)
        print("run \(r + 1): loom \(f(lr, 1)) pairs/s, pytorch \(f(pr, 1)) pairs/s")
    }
    guard let (l, p) = last else { return }
    for (name, j) in [("loom", l), ("pytorch", p)] {
        let run = j["tokens_run"]!.intValue!, real = j["real_tokens"]!.intValue!
        print("\(name): \(j["steps"]!.intValue!) steps, \(run) tokens run for \(real) real (\(f(100 * (1 - Double(real) / Double(run)), 1))% padding), first loss \(f(j["first_loss"]!.doubleValue!, 4)), peak \(f(j["peak_rss_mb"]!.doubleValue!, 0)) MB")
    }
    print("ratio loom/pytorch pairs/s: best \(f(loomRates.max()! / torchRates.max()!)), median \(f(median(loomRates) / median(torchRates)))")
}

/// `--pairs N --pair-seq T --rows R` (and the model options of `train`); threads from `--threads`.
func dpoShape(threads: Int) -> DPOShape {
    var s = DPOShape()
    s.threads = threads
    if let v = option("--pairs").flatMap(Int.init) { s.pairs = v }
    if let v = option("--pair-seq").flatMap(Int.init) { s.seq = v }
    if let v = option("--rows").flatMap(Int.init) { s.rowsPerBatch = v }
    return s
}
