// loom-bench lora: LoRA SFT of a pretrained model (e.g. gemma-3-270m) against transformers + PEFT on the same token
// rows (conversations from a stage directory through the model's chat template, packed into rows of --seq tokens,
// loss on assistant tokens), the same adapters (rank 8, alpha 16, q/k/v/o/gate/up/down, no dropout), AdamW, fp32,
// one row a step, the same threads; each side in its own process, runs interleaved: tokens/s and peak memory.
// loom-bench decode: greedy decoding tokens/s with the KV cache against transformers' generate, same prompt.

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

struct LoRABench {
    var seq = 1024, steps = 4, warmup = 1, threads = 2, rank = 8
}

/// Rows of `seq` tokens from a stage's conversations (packed end to end), as JSON {"ids": [[...]], "labels": [[...]]}
/// with -100 where no loss is taken.
func loraRows(model dir: String, stage: String, seq: Int, count: Int) throws -> String {
    let codec = try TokenizerCodec.load(FS.join(dir, "tokenizer.json"))
    let builder = DatasetBuilder(codec: codec, objective: .sft, length: seq, chat: try ChatFormat.forVocabulary(codec))
    var tokens: [Int32] = [], loss: [Bool] = []
    try StageReader(directory: stage).forEachRecord(
        { r, _, _ in
            if case .success(let segs) = builder.segments(of: r) {
                for s in segs {
                    tokens += s.tokens
                    loss += s.loss
                }
            }
        }, bad: { _, _, _ in })
    guard tokens.count >= seq else { throw LoomError("\(stage): \(tokens.count) tokens, fewer than one row of \(seq)") }
    var ids: [JSONValue] = [], labels: [JSONValue] = []
    for r in 0..<count {
        let start = (r * seq) % max(1, tokens.count - seq)
        ids.append(.array(tokens[start..<(start + seq)].map { .int(Int($0)) }))
        labels.append(.array((start..<(start + seq)).map { .int(loss[$0] ? Int(tokens[$0]) : -100) }))
    }
    return JSONValue.object(JSONObject([("ids", .array(ids)), ("labels", .array(labels))])).jsonString
}

/// The Loom side, in a child process: prints one JSON line like the peer script.
func loraChild(model dir: String, rows file: String, _ s: LoRABench) {
    do {
        Compute.configure(threads: s.threads)
        let model = try LlamaModel.load(directory: dir)
        let lora = try LoRA(config: LoRAConfig(rank: s.rank, alpha: Double(2 * s.rank), dropout: 0, targets: Projection.allCases, seed: 0), model: model.config)
        model.lora = lora
        model.trainBase = false
        let j = try JSONValue.parse(try FS.readText(file))
        let ids = j["ids"]!.arrayValue!.map { $0.arrayValue!.map { Int32($0.intValue!) } }
        let labels = j["labels"]!.arrayValue!.map { $0.arrayValue!.map { Int32(max(-1, $0.intValue!)) } }
        let opt = AdamW(count: lora.params.count)
        var times: [Double] = [], losses: [Double] = []
        for step in 0..<(s.warmup + s.steps) {
            let r = step % ids.count
            let batch = Batch(rows: 1, length: s.seq, tokens: ids[r], labels: labels[r])
            let t0 = Date()
            lora.params.grads.zero()
            model.forward(batch)
            let n = batch.targetCount
            let loss = model.crossEntropy(targets: batch.targets, scale: 1 / Float(max(1, n))) / Double(max(1, n))
            model.backward()
            Gradients.clip(lora.params, maxNorm: 1)
            opt.update(lora.params, lr: 1e-4)
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
                    ("side", "loom"), ("threads", .int(s.threads)), ("tokens_per_s", .double(Double(s.seq * times.count) / total)),
                    ("losses", .array(losses.map { .double($0) })), ("peak_rss_mb", .double(Double(ru.ru_maxrss) / 1024)),
                ])
            ).jsonString)
    } catch {
        print("{\"error\": \"\(error)\"}")
        exit(1)
    }
}

func loraBench(model dir: String, stage: String, _ s: LoRABench, runs: Int) {
    let rowsFile = FileManager.default.temporaryDirectory.appendingPathComponent("loom-bench-lora-rows-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: rowsFile) }
    do { try FS.writeAtomically(try loraRows(model: dir, stage: stage, seq: s.seq, count: s.warmup + s.steps), to: rowsFile) } catch {
        print("loom-bench lora: \(error)")
        exit(1)
    }
    let common = ["--seq", "\(s.seq)", "--steps", "\(s.steps)", "--warmup", "\(s.warmup)", "--threads", "\(s.threads)", "--rank", "\(s.rank)"]
    let me = here.appendingPathComponent("loom-bench").path
    print("model \(dir); rows of \(s.seq) tokens from \(stage) (chat template by vocabulary, loss on assistant tokens); LoRA rank \(s.rank), alpha \(2 * s.rank), q/k/v/o/gate/up/down; AdamW fp32; 1 row a step; \(s.threads) threads; \(s.warmup) warm-up + \(s.steps) timed steps; \(runs) interleaved runs")
    var loomRates: [Double] = [], peerRates: [Double] = [], loomRSS = 0.0, peerRSS = 0.0
    for r in 0..<runs {
        let (lj, _) = runCapture([me, "lora-child", dir, rowsFile] + common)
        let (pj, _) = runCapture(["python3", benchDir + "/peers/lora_sft_bench.py", dir, rowsFile] + common)
        guard let l = try? JSONValue.parse(lj), let p = try? JSONValue.parse(pj), let lr = l["tokens_per_s"]?.doubleValue,
            let pr = p["tokens_per_s"]?.doubleValue
        else {
            print("run \(r + 1): a side failed (loom: \(lj.prefix(300)), peer: \(pj.prefix(300)))")
            exit(1)
        }
        loomRates.append(lr)
        peerRates.append(pr)
        loomRSS = max(loomRSS, l["peak_rss_mb"]!.doubleValue!)
        peerRSS = max(peerRSS, p["peak_rss_mb"]!.doubleValue!)
        print("run \(r + 1): loom \(f(lr, 1)) tokens/s (losses \(l["losses"]!.jsonString)), transformers+peft \(f(pr, 1)) tokens/s (losses \(p["losses"]!.jsonString))")
    }
    print("loom: best \(f(loomRates.max()!, 1)) / median \(f(median(loomRates), 1)) tokens/s, peak \(f(loomRSS, 0)) MB")
    print("transformers+peft: best \(f(peerRates.max()!, 1)) / median \(f(median(peerRates), 1)) tokens/s, peak \(f(peerRSS, 0)) MB")
    print("ratio loom/transformers+peft tokens/s: best \(f(loomRates.max()! / peerRates.max()!)), median \(f(median(loomRates) / median(peerRates)))")
}

/// Greedy decoding: Loom's KV-cache sampler against transformers' generate on the same prompt ids.
func decodeChild(model dir: String, tokens: Int, threads: Int) {
    do {
        Compute.configure(threads: threads)
        let m = try ChatModel.load(directory: dir)
        let prompt = m.textTokens("The following is a short history of the lighthouse keepers of the northern coast.")
        var o = SamplingOptions()
        o.maxTokens = tokens
        _ = try m.continuation(ids: Array(prompt.prefix(4)), options: SamplingOptions(maxTokens: 2))  // warm-up
        let t0 = Date()
        let r = try m.continuation(ids: prompt, options: o)
        let dt = Date().timeIntervalSince(t0)
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        print(
            JSONValue.object(
                JSONObject([
                    ("side", "loom"), ("tokens", .int(r.tokens.count)), ("tokens_per_s", .double(Double(r.tokens.count) / dt)),
                    ("prompt", .array(prompt.map { .int(Int($0)) })), ("ids", .array(r.tokens.map { .int(Int($0)) })),
                    ("peak_rss_mb", .double(Double(ru.ru_maxrss) / 1024)),
                ])
            ).jsonString)
    } catch {
        print("{\"error\": \"\(error)\"}")
        exit(1)
    }
}

func decodeBench(model dir: String, tokens: Int, threads: Int, runs: Int) {
    let me = here.appendingPathComponent("loom-bench").path
    print("model \(dir); greedy, \(tokens) new tokens after a prompt of one English sentence, KV cache both sides; \(threads) threads; \(runs) interleaved runs")
    var loomRates: [Double] = [], peerRates: [Double] = []
    for r in 0..<runs {
        let (lj, _) = runCapture([me, "decode-child", dir, "--tokens", "\(tokens)", "--threads", "\(threads)"])
        guard let l = try? JSONValue.parse(lj), let lr = l["tokens_per_s"]?.doubleValue, let prompt = l["prompt"]?.arrayValue else {
            print("run \(r + 1): loom failed: \(lj.prefix(300))")
            exit(1)
        }
        let ids = prompt.map { "\($0.intValue!)" }.joined(separator: ",")
        let (pj, _) = runCapture(["python3", benchDir + "/peers/decode_bench.py", dir, ids, "--tokens", "\(tokens)", "--threads", "\(threads)"])
        guard let p = try? JSONValue.parse(pj), let pr = p["tokens_per_s"]?.doubleValue else {
            print("run \(r + 1): transformers failed: \(pj.prefix(300))")
            exit(1)
        }
        loomRates.append(lr)
        peerRates.append(pr)
        let same = l["ids"] == p["ids"]
        print("run \(r + 1): loom \(f(lr, 1)) tokens/s, transformers \(f(pr, 1)) tokens/s; same tokens: \(same)")
    }
    print("ratio loom/transformers greedy tokens/s: best \(f(loomRates.max()! / peerRates.max()!)), median \(f(median(loomRates) / median(peerRates)))")
}
