// loom-bench merge: peak memory and time of `loom merge` on two synthetic Llama-shaped checkpoints of about
// --gigabytes each (default 1: vocab 32,000, hidden 1,024, intermediate 2,816, GQA with 256-wide k/v, 17 layers,
// 257 M f32 parameters, largest tensor 131 MB), for every method; and of mergekit-yaml (the peer) on the same
// configs when Python has mergekit. Peak memory is the child's maxrss from wait4; this process writes the
// checkpoints in 4 MB blocks, so it stays small and does not lend its own peak to the child.

import Foundation
import LoomCore
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// Writes checkpoint A (values 0.02·U(−1, 1); norms 1 + that) and B = A + 0.002·U(−1, 1), tensor by tensor.
func writeSyntheticPair(_ dirA: String, _ dirB: String, layers: Int) throws -> Int {
    let hidden = 1024, inter = 2816, kv = 256, vocab = 32000
    var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, hidden]), ("lm_head.weight", [vocab, hidden]), ("model.norm.weight", [hidden])]
    for i in 0..<layers {
        let p = "model.layers.\(i)."
        shapes += [
            (p + "input_layernorm.weight", [hidden]), (p + "post_attention_layernorm.weight", [hidden]),
            (p + "self_attn.q_proj.weight", [hidden, hidden]), (p + "self_attn.k_proj.weight", [kv, hidden]),
            (p + "self_attn.v_proj.weight", [kv, hidden]), (p + "self_attn.o_proj.weight", [hidden, hidden]),
            (p + "mlp.gate_proj.weight", [inter, hidden]), (p + "mlp.up_proj.weight", [inter, hidden]),
            (p + "mlp.down_proj.weight", [hidden, inter]),
        ]
    }
    let config = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(inter),
         "num_hidden_layers": \(layers), "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": \(vocab),
         "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
        """
    let specs = shapes.map { SafeTensorsWriter.Spec(name: $0.0, dtype: .f32, shape: $0.1) }
    var writers: [SafeTensorsWriter] = []
    for d in [dirA, dirB] {
        try FS.makeDirectory(d)
        try FS.writeAtomically(config, to: d + "/config.json")
        writers.append(try SafeTensorsWriter(path: d + "/model.safetensors", tensors: specs, metadata: [("format", "pt")]))
    }
    var rng = SplitMix64(seed: 2310_04799)
    let block = 1 << 20
    var a = [Float](repeating: 0, count: block)
    var b = [Float](repeating: 0, count: block)
    for spec in writers[0].order {
        let isNorm = spec.name.hasSuffix("norm.weight")
        for w in writers { try w.beginPart(spec.name) }
        var left = spec.shape.reduce(1, *)
        while left > 0 {
            let n = min(block, left)
            for i in 0..<n {
                let r = rng.next()
                let u = Float(Int32(truncatingIfNeeded: r)) / 2_147_483_648
                let v = Float(Int32(truncatingIfNeeded: r >> 32)) / 2_147_483_648
                a[i] = (isNorm ? 1 : 0) + 0.02 * u
                b[i] = a[i] + 0.002 * v
            }
            try a.withUnsafeBytes { try writers[0].writePart(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)])) }
            try b.withUnsafeBytes { try writers[1].writePart(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)])) }
            left -= n
        }
    }
    for w in writers { try w.finish() }
    return FS.size(dirA + "/model.safetensors") ?? 0
}

func mergeBench(gigabytes: Double, runs: Int) {
    let tmp = NSTemporaryDirectory() + "loom-bench-merge-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    // 11.27 M parameters per layer, 65.5 M outside them: enough layers for `gigabytes` of f32.
    let layers = max(1, Int(((gigabytes * 1e9 / 4 - 65_537_024) / 11_274_240).rounded(.up)))
    let bytes: Int
    do { bytes = try writeSyntheticPair(tmp + "/a", tmp + "/b", layers: layers) } catch {
        print("cannot write the checkpoints: \(error)")
        exit(1)
    }
    print("# loom merge: peak memory on two \(f(Double(bytes) / 1e9, 3)) GB checkpoints\n")
    print("checkpoints: \(layers) Llama layers, f32, \(f(Double(bytes) / 1e9, 3)) GB each; largest tensor 131.1 MB (embeddings, lm_head)")
    print("bench process peak while writing them: \(f(peakMemoryMB(), 0)) MB\n")
    let configs: [(String, String)] = [
        ("linear", "merge_method: linear\nmodels:\n  - model: A\n    parameters: {weight: 0.5}\n  - model: B\n    parameters: {weight: 0.5}\ndtype: float32\n"),
        ("slerp", "merge_method: slerp\nbase_model: A\nmodels:\n  - model: A\n  - model: B\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n    - value: 0.5\ndtype: float32\n"),
        ("task_arithmetic", "merge_method: task_arithmetic\nbase_model: A\nmodels:\n  - model: B\n    parameters: {weight: 0.5}\ndtype: float32\n"),
        ("ties", "merge_method: ties\nbase_model: A\nmodels:\n  - model: B\n    parameters: {weight: 1.0, density: 0.5}\ndtype: float32\n"),
        ("dare_ties", "merge_method: dare_ties\nbase_model: A\nmodels:\n  - model: B\n    parameters: {weight: 1.0, density: 0.5}\ndtype: float32\n"),
        ("linear → bfloat16", "merge_method: linear\nmodels:\n  - model: A\n    parameters: {weight: 0.5}\n  - model: B\n    parameters: {weight: 0.5}\ndtype: bfloat16\n"),
    ]
    let peer = ["python3", "-c", "import mergekit"]
    let havePeer = measure(peer).status == 0
    print("| method | tool | best s | peak MB (max of \(runs)) | output |")
    print("| --- | --- | --- | --- | --- |")
    var worst = 0.0
    for (i, (name, yaml)) in configs.enumerated() {
        let cfg = tmp + "/c\(i).yml"
        // Absolute model paths: mergekit looks them up from the current directory.
        let text = yaml.replacingOccurrences(of: "model: A\n", with: "model: \(tmp)/a\n")
            .replacingOccurrences(of: "model: B\n", with: "model: \(tmp)/b\n")
        try? text.write(toFile: cfg, atomically: true, encoding: .utf8)
        var ms: [Measurement] = []
        for _ in 0..<runs {
            FS.remove(tmp + "/out")
            ms.append(measure([loom, "merge", cfg, "-o", tmp + "/out", "-q"]))
        }
        let size = FS.listRecursive(tmp + "/out").filter { $0.hasSuffix(".safetensors") }.reduce(0) { $0 + (FS.size($1) ?? 0) }
        let status = ms.contains { $0.status != 0 } ? " (FAILED: \(ms.map(\.status)))" : ""
        let peak = ms.map(\.maxRSSMB).max()!
        worst = max(worst, peak)
        print("| \(name) | loom merge | \(f(ms.map(\.wall).min()!, 1)) | \(f(peak, 0)) | \(f(Double(size) / 1e9, 3)) GB\(status) |")
        if havePeer {
            FS.remove(tmp + "/peer")
            let p = measure(
                [
                    "mergekit-yaml", cfg, tmp + "/peer", "--no-copy-tokenizer", "--no-write-model-card", "--random-seed", "0",
                    "--out-shard-size", "5B",
                ])
            let psize = FS.listRecursive(tmp + "/peer").filter { $0.hasSuffix(".safetensors") }.reduce(0) { $0 + (FS.size($1) ?? 0) }
            print("| \(name) | mergekit-yaml 0.1.5 | \(f(p.wall, 1)) | \(f(p.maxRSSMB, 0)) | \(f(Double(psize) / 1e9, 3)) GB\(p.status == 0 ? "" : " (FAILED: \(p.status))") |")
            FS.remove(tmp + "/peer")
        }
    }
    FS.remove(tmp + "/out")
    print("\nlargest loom merge peak: \(f(worst, 0)) MB (\(worst < 600 ? "under" : "OVER") the 600 MB budget)")
    if !havePeer { print("(mergekit not importable by python3: peer rows skipped)") }
}
