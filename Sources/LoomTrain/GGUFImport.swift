// A GGUF file (llama.cpp) as a Hugging Face model directory: the architecture's hyper-parameters (`gemma3.*`,
// `llama.*`, `qwen2.*` keys) to a config.json for transformers' model type, the tensors under transformers' names
// (dequantized to float32, shapes reversed from GGUF's fastest-first `ne`), and the tokenizer (GGUFTokenizer.swift).
// What convert_hf_to_gguf.py changed on the way in is undone here:
//   - Gemma norms are stored + 1 (llama.cpp multiplies by w, transformers by 1 + w): 1 is subtracted in float32;
//   - Llama's q and k rows are permuted for llama.cpp's interleaved rotary (LlamaModel.permute): the permutation is
//     inverted (Qwen 2 and Gemma 3 use the half-split rotary in both, so their rows are stored as they are);
//   - llama.cpp hard-codes Gemma 3's layer pattern (layer i is full iff (i + 1) % 6 == 0) and local rotary base
//     (10000); files that carry `gemma3.attention.sliding_window_pattern` / `gemma3.rope.freq_base_swa` say so.

import Foundation
import LoomCore
import LoomTensor
import LoomTokenizer

public enum GGUFImport {
    /// The families Loom reads from GGUF, by `general.architecture`.
    static func family(_ g: GGUFFile) throws -> ModelFamily {
        switch g.architecture {
        case "gemma3": return .gemma3
        case "llama": return .llama
        case "qwen2": return .qwen2
        case let a:
            throw LoomError("\(g.path): architecture '\(a ?? "none")' is not supported (gemma3, llama and qwen2 are)")
        }
    }

    /// The model config the file's metadata describes.
    public static func config(_ g: GGUFFile) throws -> LlamaConfig {
        let family = try family(g)
        let arch = g.architecture ?? ""
        func value(_ k: String) -> GGUFValue? { g[arch + "." + k] }
        func int(_ k: String) throws -> Int {
            // Some files give a per-layer array; Loom's families have one value for every layer.
            if let v = value(k)?.intValue ?? value(k)?.arrayValue?.ints?.first { return v }
            throw LoomError("\(g.path): metadata '\(arch).\(k)' is missing or not an integer")
        }
        func double(_ k: String) -> Double? { value(k)?.doubleValue }
        guard let embed = g.tensor("token_embd.weight"), embed.ne.count == 2 else {
            throw LoomError("\(g.path): no 2-D tensor 'token_embd.weight'")
        }
        let hidden = try int("embedding_length"), heads = try int("attention.head_count")
        let vocab = g["tokenizer.ggml.tokens"]?.arrayValue?.count ?? value("vocab_size")?.intValue ?? embed.ne[1]
        let defaultTheta: Double = family == .gemma3 ? 1_000_000 : 10_000
        var c = LlamaConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numLayers: try int("block_count"), numHeads: heads,
            numKVHeads: value("attention.head_count_kv")?.intValue ?? heads,
            headDim: value("attention.key_length")?.intValue ?? hidden / max(heads, 1),
            ropeTheta: double("rope.freq_base") ?? defaultTheta,
            rmsNormEps: double("attention.layer_norm_rms_epsilon").map(shortest) ?? 1e-6,
            maxPositions: value("context_length")?.intValue ?? 2048,
            tieWordEmbeddings: g.tensor("output.weight") == nil)
        c.family = family
        c.attentionBias = family == .qwen2
        c.bosTokenId = g["tokenizer.ggml.bos_token_id"]?.intValue
        c.eosTokenId = g["tokenizer.ggml.eos_token_id"]?.intValue
        c.padTokenId = g["tokenizer.ggml.padding_token_id"]?.intValue
        if family == .gemma3 {
            c.queryPreAttnScalar = double("attention.query_pre_attn_scalar") ?? Double(c.headDim)
            c.slidingWindow = value("attention.sliding_window")?.intValue ?? 4096
            if let pattern = value("attention.sliding_window_pattern")?.arrayValue?.bools {
                guard pattern.count == c.numLayers else {
                    throw LoomError("\(g.path): '\(arch).attention.sliding_window_pattern' has \(pattern.count) entries for \(c.numLayers) layers")
                }
                c.slidingLayers = pattern
            } else {
                c.slidingLayers = (0..<c.numLayers).map { ($0 + 1) % 6 != 0 }
            }
            c.localRopeTheta = double("rope.freq_base_swa") ?? 10_000
            c.finalLogitSoftcap = double("final_logit_softcapping")
        }
        c.ropeScaling = try ropeScaling(g, arch: arch, config: c)
        try c.validate()
        return c
    }

    /// A FLOAT32 key as the shortest decimal that reads back as the same float (1e-06, not 9.999999974752427e-07):
    /// what the original config.json most likely said, and the same float32 wherever Loom uses it.
    static func shortest(_ v: Double) -> Double { Double(Float(v).description) ?? v }

    /// Rotary scaling: `rope.scaling.type` linear, or Llama 3's, which llama.cpp stores as the per-frequency factors
    /// `rope_freqs.weight` (read back as llama3 scaling and checked against the factors).
    static func ropeScaling(_ g: GGUFFile, arch: String, config c: LlamaConfig) throws -> RopeScaling? {
        if let type = g[arch + ".rope.scaling.type"]?.stringValue, type != "none" {
            guard type == "linear", let f = g[arch + ".rope.scaling.factor"]?.doubleValue, f > 0 else {
                throw LoomError("\(g.path): rope scaling '\(type)' is not supported (linear and Llama 3's are)")
            }
            return RopeScaling(kind: .linear, factor: f)
        }
        guard let t = g.tensor("rope_freqs.weight") else { return nil }
        let factors = try g.floats(t.name, threads: 1)
        guard factors.count == c.headDim / 2, let top = factors.max(), top >= 1 else {
            throw LoomError("\(g.path): rope_freqs.weight has \(factors.count) factors for head_dim \(c.headDim)")
        }
        if top == 1 { return nil }
        var s = RopeScaling(kind: .llama3, factor: Double(top))
        s.originalMaxPositions = g[arch + ".rope.scaling.original_context_length"]?.intValue ?? 8192
        let base = RopeScaling.inverseFrequencies(theta: c.ropeTheta, dim: c.headDim, scaling: nil)
        let scaled = RopeScaling.inverseFrequencies(theta: c.ropeTheta, dim: c.headDim, scaling: s)
        for i in 0..<factors.count where abs(base[i] / scaled[i] - factors[i]) > 1e-3 * factors[i] {
            throw LoomError(
                "\(g.path): rope_freqs.weight is not Llama 3 scaling with factor \(top), low/high frequency factors 1/4 and \(s.originalMaxPositions) original positions (factor \(i): \(factors[i]) vs \(base[i] / scaled[i]))")
        }
        return s
    }

    /// The Hugging Face name of a GGUF tensor (nil for tensors transformers has no place for, like rope_freqs).
    static func hfName(_ name: String, family: ModelFamily) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        let rest = parts[2]
        guard let dot = rest.lastIndex(of: ".") else { return nil }
        let (stem, kind) = (String(rest[..<dot]), String(rest[rest.index(after: dot)...]))
        guard let hf = blockNames(family)[stem], kind == "weight" || kind == "bias" else { return nil }
        return "model.layers.\(layer).\(hf).\(kind)"
    }

    /// A block's tensors: llama.cpp's name to transformers' (gguf-py's tensor_mapping, one family at a time).
    static func blockNames(_ family: ModelFamily) -> [String: String] {
        var table = [
            "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "attn_norm": "input_layernorm", "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "ffn_norm": "post_attention_layernorm",
        ]
        if family == .gemma3 {
            table["ffn_norm"] = "pre_feedforward_layernorm"
            table["post_attention_norm"] = "post_attention_layernorm"
            table["post_ffw_norm"] = "post_feedforward_layernorm"
            table["attn_q_norm"] = "self_attn.q_norm"
            table["attn_k_norm"] = "self_attn.k_norm"
        }
        return table
    }

    /// The metadata key prefix of a Gemma norm's exact values (GGUFExport writes it where fl(w + 1) − 1 ≠ w).
    public static let exactNormKey = "loom.norm_exact."

    /// How a tensor's float32 values change between GGUF and Hugging Face.
    enum Transform: Equatable {
        case none
        /// Gemma's norms: HF = GGUF − 1.
        case normMinusOne
        /// Llama's q/k rows: undo LlamaModel.permute for this many heads.
        case unpermute(heads: Int)
    }

    static func transform(_ ggufName: String, family: ModelFamily, config c: LlamaConfig) -> Transform {
        if family == .gemma3, ggufName.hasSuffix("norm.weight") { return .normMinusOne }
        if family == .llama {
            if ggufName.hasSuffix(".attn_q.weight") || ggufName.hasSuffix(".attn_q.bias") { return .unpermute(heads: c.numHeads) }
            if ggufName.hasSuffix(".attn_k.weight") || ggufName.hasSuffix(".attn_k.bias") { return .unpermute(heads: c.numKVHeads) }
        }
        return .none
    }

    /// convert_hf_to_gguf's LlamaModel.permute on rows: HF row h·D + j·D/2 + i goes to GGUF row h·D + 2i + j
    /// (D = rows / heads, i < D/2, j < 2). `inverse` maps GGUF rows back to HF rows.
    static func permuteRows(_ w: [Float], rows: Int, heads: Int, inverse: Bool) -> [Float] {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else { return w }
        let cols = w.count / max(rows, 1), d = rows / heads, half = d / 2
        var out = w
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let hfRow = h * d + j * half + i, ggRow = h * d + 2 * i + j
                    let (from, to) = inverse ? (ggRow, hfRow) : (hfRow, ggRow)
                    for k in 0..<cols { out[to * cols + k] = w[from * cols + k] }
                }
            }
        }
        return out
    }

    /// One tensor of the model: its GGUF entry, its Hugging Face name and what to do on the way.
    struct Entry {
        let gguf: GGUFTensorInfo
        let name: String
        let transform: Transform
    }

    static func entries(_ g: GGUFFile, config c: LlamaConfig) throws -> [Entry] {
        var out: [Entry] = []
        for t in g.tensors {
            guard let hf = hfName(t.name, family: c.family) else {
                if t.name == "rope_freqs.weight" { continue }
                throw LoomError("\(g.path): tensor '\(t.name)' has no place in a \(c.family.rawValue) model")
            }
            guard t.type.canDequantize else {
                throw LoomError("\(g.path): tensor '\(t.name)' is \(t.type.name), which Loom cannot dequantize yet")
            }
            out.append(Entry(gguf: t, name: hf, transform: transform(t.name, family: c.family, config: c)))
        }
        return out
    }

    /// The model's tensors under Hugging Face names, as float32 (for tests and small models; `write` streams).
    public static func tensors(_ g: GGUFFile, threads: Int = GGUF.defaultThreads) throws -> [(name: String, tensor: Tensor)] {
        let c = try config(g)
        return try entries(g, config: c).map { e in (e.name, Tensor(floats: try floats(g, e, threads: threads), shape: e.gguf.shape)) }
    }

    static func floats(_ g: GGUFFile, _ e: Entry, threads: Int) throws -> [Float] {
        var v = try g.floats(e.gguf.name, threads: threads)
        switch e.transform {
        case .none: break
        case .normMinusOne:
            let stored = v
            for i in v.indices { v[i] -= 1 }
            // A file Loom exported carries the exact values where fl(w + 1) lost bits; they are used only if they
            // still give the file's tensor (a file changed since, e.g. re-quantized, keeps the subtraction).
            if case .array(.float32(let exact))? = g[exactNormKey + e.gguf.name], exact.count == stored.count,
                zip(exact, stored).allSatisfy({ ($0 + 1).bitPattern == $1.bitPattern })
            {
                v = exact
            }
        case .unpermute(let heads): v = permuteRows(v, rows: e.gguf.rows, heads: heads, inverse: true)
        }
        return v
    }

    /// What `write` did.
    public struct Summary: Sendable {
        public var config: LlamaConfig
        public var tensors: Int
        public var parameters: Int
        public var tokenizer: Bool
        public var chatTemplate: Bool
    }

    /// Writes a Hugging Face directory from a GGUF file: config.json, model.safetensors (float32, each tensor
    /// dequantized in slices of rows straight into the file, so memory stays near one slice), tokenizer.json and
    /// tokenizer_config.json (with the chat template when the file has one).
    @discardableResult
    public static func write(_ g: GGUFFile, to directory: String, threads: Int = GGUF.defaultThreads) throws -> Summary {
        let c = try config(g)
        let list = try entries(g, config: c)
        try FS.makeDirectory(directory)
        // The tokenizer does not depend on the tensors: with more than one thread it is built meanwhile.
        let tokenizerWork = TokenizerWork(g)
        let group = DispatchGroup()
        if threads > 1 { DispatchQueue.global().async(group: group) { tokenizerWork.run() } }
        let byName = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
        let specs = list.map { SafeTensorsWriter.Spec(name: $0.name, dtype: .f32, shape: $0.gguf.shape) }
        let w = try SafeTensorsWriter(path: FS.join(directory, "model.safetensors"), tensors: specs, metadata: [("format", "pt")])
        do {
            let sliceFloats = 1 << 22
            var buffer = [Float](repeating: 0, count: sliceFloats)
            while let name = w.nextName, let e = byName[name] {
                try w.beginPart(name)
                if e.transform == .none, e.gguf.rowLength > 0 {
                    // Whole rows a slice, dequantized into the buffer and written.
                    let step = max(1, sliceFloats / e.gguf.rowLength)
                    if buffer.count < step * e.gguf.rowLength { buffer = [Float](repeating: 0, count: step * e.gguf.rowLength) }
                    var row = 0
                    while row < e.gguf.rows {
                        let n = min(step, e.gguf.rows - row)
                        try buffer.withUnsafeMutableBufferPointer { b in
                            let part = UnsafeMutableBufferPointer(rebasing: b[0..<(n * e.gguf.rowLength)])
                            try g.dequantize(e.gguf, rows: row..<(row + n), into: part, threads: threads)
                            try w.writePart(UnsafeRawBufferPointer(part))
                        }
                        row += n
                    }
                } else {
                    let v = try floats(g, e, threads: threads)
                    try v.withUnsafeBytes { try w.writePart($0) }
                }
            }
            try w.finish()
        } catch {
            w.abandon()
            group.wait()
            throw error
        }
        var config = c
        config.source = nil
        try config.write(to: directory)
        var summary = Summary(config: c, tensors: list.count, parameters: list.reduce(0) { $0 + $1.gguf.count }, tokenizer: false, chatTemplate: false)
        if threads <= 1 { tokenizerWork.run() }
        group.wait()
        if let tok = try tokenizerWork.result.get() {
            var out: [UInt8] = []
            PrettyJSON.write(tok.tokenizer, to: &out, indent: 0)
            try FS.writeAtomically(String(decoding: out, as: UTF8.self), to: FS.join(directory, "tokenizer.json"))
            try FS.writeAtomically(JSONValue.object(tok.config).jsonString + "\n", to: FS.join(directory, "tokenizer_config.json"))
            summary.tokenizer = true
            summary.chatTemplate = tok.config["chat_template"] != nil
        }
        return summary
    }
}

extension GGUFImport {
    /// The model directory a command that takes a model should read for `path`: `path` itself unless it is a
    /// `.gguf` file; for one, a Hugging Face directory imported from it once into `cache` (default: `$LOOM_CACHE/gguf`,
    /// else `~/.cache/loom/gguf`), named by a hash of the file's absolute path, size and modification time, so a
    /// changed file is imported again. The import goes to a temporary name and is renamed when complete, so an
    /// interrupted one is never taken for a finished one. `LlamaModel.load(directory:)` and `Tokenizer.load` then
    /// read it as any model directory.
    public static func modelDirectory(_ path: String, cache: String? = nil, threads: Int = GGUF.defaultThreads) throws -> String {
        guard path.lowercased().hasSuffix(".gguf"), !FS.isDirectory(path) else { return path }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let id = FS.identity(absolute) else { throw LoomError("cannot read \(path)") }
        let env = ProcessInfo.processInfo.environment
        let root = cache ?? env["LOOM_CACHE"].map { FS.join($0, "gguf") } ?? FS.join(NSHomeDirectory(), ".cache/loom/gguf")
        var h = SHA256()
        h.update("\(absolute)\n\(id.size)\n\(id.mtimeNs)")
        let key = URL(fileURLWithPath: absolute).deletingPathExtension().lastPathComponent + "-"
            + h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
        let dir = FS.join(root, key)
        if FS.exists(FS.join(dir, "config.json")), FS.exists(FS.join(dir, "model.safetensors")) { return dir }
        try FS.makeDirectory(root)
        let tmp = dir + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        try write(try GGUFFile(path: absolute), to: tmp, threads: threads)
        try? FileManager.default.removeItem(atPath: dir)
        try FS.rename(tmp, dir)
        return dir
    }
}

/// The tokenizer build of an import, run on its own thread or in line.
private final class TokenizerWork: @unchecked Sendable {
    let file: GGUFFile
    var result: Result<(tokenizer: JSONValue, config: JSONObject)?, Error> = .success(nil)
    init(_ file: GGUFFile) { self.file = file }
    func run() { result = Result { try GGUFTokenizer.build(file) } }
}
