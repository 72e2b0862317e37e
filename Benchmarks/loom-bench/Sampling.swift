// loom-bench sample: greedy generation tokens/s with the KV cache (InferenceSession) vs transformers' `generate`
// (fp32, CPU, same threads) on the same random LlamaForCausalLM checkpoint and prompt, made by
// Benchmarks/peers/generate_bench.py. Both sides time the whole call (prompt prefill + new tokens), best of 3 after
// a warm-up, inside their own process; the generated ids are compared.

import Foundation
import LoomCore
import LoomTensor
import LoomTrain

func sampleBench() {
    let args = CommandLine.arguments
    func opt(_ name: String, _ d: Int) -> Int {
        if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
        return d
    }
    let hidden = opt("--hidden", 256), layers = opt("--layers", 4), vocab = opt("--vocab", 8192)
    let newTokens = opt("--new", 128), promptLen = opt("--prompt", 32), threads = opt("--threads", 2), runs = opt("--runs", 3)
    let dir = NSTemporaryDirectory() + "loom-bench-sample-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shape = [
        "--hidden", "\(hidden)", "--intermediate", "\(opt("--intermediate", hidden * 43 / 16))", "--layers", "\(layers)",
        "--heads", "\(opt("--heads", 4))", "--kv-heads", "\(opt("--kv-heads", 4))", "--vocab", "\(vocab)", "--prompt",
        "\(promptLen)",
    ]
    let script = benchDir + "/peers/generate_bench.py"
    let (made, _) = runCapture(["python3", script, "make", dir] + shape)
    guard let params = (try? JSONValue.parse(made))?["params"]?.intValue else {
        print("the peer could not make the model (python3 with torch and transformers?): \(made.prefix(300))")
        exit(1)
    }
    print("model: random LlamaForCausalLM, \(params) parameters (hidden \(hidden), \(layers) layers, vocab \(vocab)); prompt \(promptLen) tokens, \(newTokens) new tokens, greedy, fp32, \(threads) threads")
    print("")
    print("| run | loom tokens/s | transformers tokens/s | loom / transformers | same tokens |")
    print("| --- | --- | --- | --- | --- |")
    Compute.configure(threads: threads)
    let model: LlamaModel
    let prompt: [Int32]
    do {
        model = try LlamaModel.load(directory: dir)
        let p = try JSONValue.parse(try FS.readText(dir + "/prompt.json"))
        prompt = (p["prompt"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
    } catch {
        print("cannot load the model: \(error)")
        exit(1)
    }
    var loomRates: [Double] = [], peerRates: [Double] = []
    for r in 0..<runs {
        let session = InferenceSession(model: model)
        let o = SamplingOptions(maxTokens: newTokens)
        var best = Double.infinity
        var tokens: [Int32] = []
        for k in 0..<4 {
            session.reset()  // no prefix reuse: every call prefills the prompt, as generate does
            let t0 = Date()
            guard let g = try? session.generate(prompt: prompt, options: o, decode: { _ in "" }) else { exit(1) }
            if k > 0 { best = min(best, Date().timeIntervalSince(t0)) }
            tokens = g.tokens
        }
        let (pj, _) = runCapture(["python3", script, "run", dir, "--threads", "\(threads)", "--new", "\(newTokens)"])
        guard let p = try? JSONValue.parse(pj), let rate = p["tokens_per_s"]?.doubleValue else {
            print("the peer failed: \(pj.prefix(300))")
            exit(1)
        }
        let peerTokens = (p["tokens"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
        loomRates.append(Double(newTokens) / best)
        peerRates.append(rate)
        print("| \(r + 1) | \(f(loomRates.last!, 0)) | \(f(rate, 0)) | \(f(loomRates.last! / rate)) | \(peerTokens == tokens ? "yes" : "NO") |")
    }
    print("")
    print("best: loom \(f(loomRates.max()!, 0)) tokens/s, transformers \(f(peerRates.max()!, 0)) tokens/s, ratio \(f(loomRates.max()! / peerRates.max()!)); median ratio \(f(median(loomRates) / median(peerRates)))")
}
