// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json) as one GGUF file that llama.cpp and
// Ollama serve, written as llama.cpp's convert_hf_to_gguf.py writes it: the architecture's keys, the tensors under
// llama.cpp's names in F32, F16 or Q8_0 (1-D tensors always F32; a row Q8_0 cannot hold, F16), Gemma norms + 1 (in
// float32), Llama's q/k rows permuted for llama.cpp's interleaved rotary, Llama 3 rope scaling as `rope_freqs`, and
// the tokenizer (tokens, scores, token types, merges, special ids, chat template) in `tokenizer.*`. GGUFImport
// reads such a file back to the same model bit for bit when the type is F32.

import Foundation
import LoomCore
import LoomTensor
import LoomTokenizer

public enum GGUFExport {
    /// What `write` did.
    public struct Summary: Sendable {
        public var tensors: Int
        public var types: [String: Int]
        public var tokenizer: Bool
        public var chatTemplate: Bool
        public var bytes: Int
    }

    /// The GGUF name of a Hugging Face tensor (nil: not part of the GGUF model, like a tied lm_head).
    static func ggufName(_ name: String, family: ModelFamily) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        let inner = rest[rest.index(after: dot)...]
        guard let last = inner.lastIndex(of: ".") else { return nil }
        let (stem, kind) = (String(inner[..<last]), String(inner[inner.index(after: last)...]))
        guard kind == "weight" || kind == "bias",
            let g = GGUFImport.blockNames(family).first(where: { $0.value == stem })?.key
        else { return nil }
        return "blk.\(layer).\(g).\(kind)"
    }

    /// The model's tensor files: model.safetensors or the shards of model.safetensors.index.json.
    static func tensorFiles(_ directory: String) throws -> [String: SafeTensorsFile] {
        let single = FS.join(directory, "model.safetensors")
        var files: [SafeTensorsFile] = []
        if FS.exists(single) {
            files = [try SafeTensorsFile(path: single)]
        } else if FS.exists(FS.join(directory, "model.safetensors.index.json")) {
            let j = try JSONValue.parse(try FS.readText(FS.join(directory, "model.safetensors.index.json")))
            let names = Set((j["weight_map"]?.objectValue ?? JSONObject()).compactMap { $0.value.stringValue }).sorted()
            files = try names.map { try SafeTensorsFile(path: FS.join(directory, $0)) }
        } else {
            throw LoomError("\(directory): no model.safetensors (a Hugging Face model directory is expected)")
        }
        var out: [String: SafeTensorsFile] = [:]
        for f in files { for n in f.names { out[n] = f } }
        return out
    }

    /// Writes `path` from the model in `directory` with 2-D weights as `type` (F32, F16 or Q8_0).
    @discardableResult
    public static func write(directory: String, to path: String, type: GGMLType, name: String? = nil) throws -> Summary {
        guard [.f32, .f16, .q8_0].contains(type) else { throw LoomError("export type \(type.name) is not supported (f32, f16, q8_0)") }
        let c = try LlamaConfig.load(directory)
        guard c.family == .llama || c.family == .gemma3 || c.family == .qwen2 else {
            throw LoomError("\(directory): exporting \(c.family.rawValue) to GGUF is not supported")
        }
        let files = try tensorFiles(directory)
        // The tensors in convert_hf_to_gguf's order: embeddings, each block's tensors by name, the final norm, output.
        var plan: [(gguf: String, hf: String)] = []
        for hf in files.keys {
            if hf == "lm_head.weight", c.tieWordEmbeddings { continue }
            guard let g = ggufName(hf, family: c.family) else {
                throw LoomError("\(directory): tensor '\(hf)' has no GGUF name for \(c.family.rawValue)")
            }
            plan.append((g, hf))
        }
        if c.tieWordEmbeddings, files["model.embed_tokens.weight"] == nil, files["lm_head.weight"] != nil {
            plan.append(("token_embd.weight", "lm_head.weight"))  // a tied checkpoint that kept only lm_head
        }
        func key(_ g: String) -> (Int, Int, String) {
            if g == "token_embd.weight" { return (0, 0, g) }
            if g.hasPrefix("blk.") { return (1, Int(g.split(separator: ".")[1]) ?? 0, g) }
            return (g == "output_norm.weight" ? 2 : 3, 0, g)
        }
        plan.sort { key($0.gguf) < key($1.gguf) }

        var specs: [GGUFWriter.Spec] = []
        var types: [String: Int] = [:]
        var ropeFreqs: [Float]?
        if c.family == .llama, let s = c.ropeScaling, s.kind == .llama3 {
            let base = RopeScaling.inverseFrequencies(theta: c.ropeTheta, dim: c.headDim, scaling: nil)
            let scaled = RopeScaling.inverseFrequencies(theta: c.ropeTheta, dim: c.headDim, scaling: s)
            ropeFreqs = zip(base, scaled).map { $0 / $1 }
            specs.append(GGUFWriter.Spec(name: "rope_freqs.weight", type: .f32, ne: [c.headDim / 2]))
        }
        for p in plan {
            guard let e = files[p.hf]?.entry(p.hf) else { continue }
            let ne = Array(e.shape.reversed())
            var t: GGMLType = ne.count >= 2 ? type : .f32
            if t == .q8_0, (ne.first ?? 0) % 32 != 0 { t = .f16 }
            specs.append(GGUFWriter.Spec(name: p.gguf, type: t, ne: ne))
        }
        for s in specs { types[s.type.name, default: 0] += 1 }

        let tokenizer = try tokenizerMetadata(directory)
        var meta = metadata(c, name: name ?? URL(fileURLWithPath: directory).lastPathComponent, type: type, tokenizer: tokenizer)
        if c.family == .gemma3 {
            // Gemma's norms go in as fl(w + 1), which loses w's bits below 2^-23 of 1: where it does, the exact
            // values ride along as metadata (`loom.norm_exact.NAME`, which llama.cpp ignores) so that import gives
            // the model back bit for bit.
            for p in plan where p.gguf.hasSuffix("norm.weight") {
                guard let f = files[p.hf], f.entry(p.hf) != nil else { continue }
                let v = try f.floats(p.hf)
                if v.contains(where: { (($0 + 1) - 1).bitPattern != $0.bitPattern }) {
                    meta.append((GGUFImport.exactNormKey + p.gguf, .array(.float32(v))))
                }
            }
        }
        let w = try GGUFWriter(path: path, metadata: meta, tensors: specs)
        do {
            let hfOf = Dictionary(uniqueKeysWithValues: plan.map { ($0.gguf, $0.hf) })
            for s in specs {
                var v: [Float]
                if s.name == "rope_freqs.weight", let f = ropeFreqs {
                    v = f
                } else {
                    let hf = hfOf[s.name]!
                    v = try files[hf]!.floats(hf)
                    if c.family == .gemma3, s.name.hasSuffix("norm.weight") { for i in v.indices { v[i] += 1 } }
                    if c.family == .llama {
                        let rows = s.ne.count >= 2 ? s.ne[1...].reduce(1, *) : 1
                        if s.name.hasSuffix(".attn_q.weight") || s.name.hasSuffix(".attn_q.bias") {
                            v = GGUFImport.permuteRows(v, rows: s.ne.count >= 2 ? rows : s.ne[0], heads: c.numHeads, inverse: false)
                        } else if s.name.hasSuffix(".attn_k.weight") || s.name.hasSuffix(".attn_k.bias") {
                            v = GGUFImport.permuteRows(v, rows: s.ne.count >= 2 ? rows : s.ne[0], heads: c.numKVHeads, inverse: false)
                        }
                    }
                }
                if s.type == .q8_0, v.contains(where: { !$0.isFinite }) {
                    throw LoomError("\(directory): tensor '\(s.name)' holds non-finite values; Q8_0 cannot encode them")
                }
                let bytes = try v.withUnsafeBufferPointer { try GGUFQuantize.quantize($0, as: s.type) }
                try bytes.withUnsafeBytes { try w.append(s.name, bytes: $0) }
            }
            try w.finish()
        } catch {
            w.abandon()
            throw error
        }
        return Summary(
            tensors: specs.count, types: types, tokenizer: tokenizer != nil,
            chatTemplate: tokenizer?.contains { $0.key == "tokenizer.chat_template" } ?? false, bytes: FS.size(path) ?? 0)
    }

    /// The architecture's keys, as convert_hf_to_gguf writes them, then the tokenizer's.
    static func metadata(_ c: LlamaConfig, name: String, type: GGMLType, tokenizer: [(key: String, value: GGUFValue)]?) -> [(key: String, value: GGUFValue)] {
        let arch = c.family == .gemma3 ? "gemma3" : c.family == .qwen2 ? "qwen2" : "llama"
        var m: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)), ("general.type", .string("model")), ("general.name", .string(name)),
        ]
        func u32(_ k: String, _ v: Int) { m.append((arch + "." + k, .uint32(UInt32(clamping: v)))) }
        func f32(_ k: String, _ v: Double) { m.append((arch + "." + k, .float32(Float(v)))) }
        if c.family != .gemma3 { u32("vocab_size", c.vocabSize) }
        u32("context_length", c.maxPositions)
        u32("embedding_length", c.hiddenSize)
        u32("block_count", c.numLayers)
        u32("feed_forward_length", c.intermediateSize)
        u32("attention.head_count", c.numHeads)
        f32("attention.layer_norm_rms_epsilon", c.rmsNormEps)
        u32("attention.key_length", c.headDim)
        u32("attention.value_length", c.headDim)
        if c.family != .gemma3 { u32("rope.dimension_count", c.headDim) }
        f32("rope.freq_base", c.ropeTheta)
        if let s = c.ropeScaling, s.kind == .linear {
            m.append((arch + ".rope.scaling.type", .string("linear")))
            f32("rope.scaling.factor", s.factor)
        }
        if c.family == .gemma3 {
            u32("attention.sliding_window", c.slidingWindow ?? 4096)
        }
        u32("attention.head_count_kv", c.numKVHeads)
        if c.family == .gemma3 {
            // llama.cpp assumes these for Gemma 3; the keys are written only when the model differs (GGUFImport reads them).
            if c.slidingLayers != (0..<c.numLayers).map({ ($0 + 1) % 6 != 0 }) {
                m.append((arch + ".attention.sliding_window_pattern", .array(.bool(c.slidingLayers))))
            }
            f32("rope.freq_base_swa", c.localRopeTheta ?? 10_000)
            if let cap = c.finalLogitSoftcap { f32("final_logit_softcapping", cap) }
            if let q = c.queryPreAttnScalar, q != Double(c.headDim) { f32("attention.query_pre_attn_scalar", q) }
        }
        m += tokenizer ?? []
        // Without a tokenizer the special ids still travel (GGUFImport reads them back into the config).
        for (key, id) in [("bos_token_id", c.bosTokenId), ("eos_token_id", c.eosTokenId), ("padding_token_id", c.padTokenId)] {
            if let id, id >= 0, !m.contains(where: { $0.key == "tokenizer.ggml." + key }) { m.append(("tokenizer.ggml." + key, .uint32(UInt32(clamping: id)))) }
        }
        m.append(("general.quantization_version", .uint32(2)))
        m.append(("general.file_type", .uint32(type == .f32 ? 0 : type == .f16 ? 1 : 7)))
        return m
    }

    /// `tokenizer.*` keys from tokenizer.json (+ tokenizer_config.json), or nil when the directory has none.
    /// A SentencePiece-style BPE (byte fallback) is written as model "llama" with scores falling in id order (what
    /// llama.cpp ranks merges by); a byte-level BPE as "gpt2" with its merges.
    static func tokenizerMetadata(_ directory: String) throws -> [(key: String, value: GGUFValue)]? {
        let path = FS.join(directory, "tokenizer.json")
        guard FS.exists(path) else { return nil }
        let tok = try Tokenizer.load(path)
        let configPath = FS.join(directory, "tokenizer_config.json")
        let config = FS.exists(configPath) ? try JSONValue.parse(try FS.readText(configPath)) : JSONValue.object(JSONObject())
        let n = tok.vocabSize
        var tokens = [String](repeating: "", count: n)
        var types = [Int32](repeating: 1, count: n)
        for (i, t) in tok.model.tokens.enumerated() { tokens[i] = t }
        let byteLevel = tok.model.byteFallback == false
        for a in tok.addedTokens where Int(a.id) < n {
            tokens[Int(a.id)] = a.content
            types[Int(a.id)] = a.special ? 3 : 4
        }
        var m: [(key: String, value: GGUFValue)] = []
        if byteLevel {
            m.append(("tokenizer.ggml.model", .string("gpt2")))
            m.append(("tokenizer.ggml.pre", .string(preName(tok))))
            m.append(("tokenizer.ggml.tokens", .array(.string(tokens))))
            m.append(("tokenizer.ggml.token_type", .array(.int32(types))))
            m.append(("tokenizer.ggml.merges", .array(.string(tok.model.merged.map { $0.0 + " " + $0.1 }))))
        } else {
            var scores = [Float](repeating: 0, count: n)
            var rank = 0
            for i in 0..<n {
                if types[i] == 1, tokens[i].hasPrefix("<0x"), tokens[i].hasSuffix(">"), tokens[i].utf8.count == 6 {
                    types[i] = 6  // a byte-fallback token
                } else if types[i] == 1 {
                    scores[i] = -Float(rank)
                    rank += 1
                } else {
                    scores[i] = -1000
                }
            }
            m.append(("tokenizer.ggml.model", .string("llama")))
            m.append(("tokenizer.ggml.pre", .string("default")))
            m.append(("tokenizer.ggml.tokens", .array(.string(tokens))))
            m.append(("tokenizer.ggml.scores", .array(.float32(scores))))
            m.append(("tokenizer.ggml.token_type", .array(.int32(types))))
        }
        func special(_ key: String, _ name: String?) {
            if let name, let id = tok.id(of: name) { m.append(("tokenizer.ggml.\(key)", .uint32(UInt32(id)))) }
        }
        func configToken(_ k: String) -> String? { config[k]?.stringValue ?? config[k]?["content"]?.stringValue }
        special("bos_token_id", configToken("bos_token") ?? tok.bosToken)
        special("eos_token_id", configToken("eos_token") ?? tok.eosToken)
        special("unknown_token_id", configToken("unk_token") ?? tok.model.unkToken)
        special("padding_token_id", configToken("pad_token"))
        let addBos = config["add_bos_token"]?.boolValue ?? !tok.encode("", addSpecialTokens: true).isEmpty
        m.append(("tokenizer.ggml.add_bos_token", .bool(addBos)))
        m.append(("tokenizer.ggml.add_eos_token", .bool(config["add_eos_token"]?.boolValue ?? false)))
        if !byteLevel {
            let metaspace: Bool = { if case .metaspace? = tok.preTokenizer { return true } else { return false } }()
            m.append(("tokenizer.ggml.add_space_prefix", .bool(metaspace)))
        }
        var template = config["chat_template"]?.stringValue
        let jinja = FS.join(directory, "chat_template.jinja")
        if template == nil, FS.exists(jinja) { template = try FS.readText(jinja) }
        if let template { m.append(("tokenizer.chat_template", .string(template))) }
        return m
    }

    /// llama.cpp's name for a byte-level tokenizer's pre-tokenizer regex.
    static func preName(_ tok: Tokenizer) -> String {
        guard case .sequence(let s)? = tok.preTokenizer, case .split(let p, _, _)? = s.first else { return "gpt2" }
        switch p {
        case .llama3(maxDigits: 3): return "llama-bpe"
        case .llama3(maxDigits: 1): return "qwen2"
        default: return "gpt2"
        }
    }
}
