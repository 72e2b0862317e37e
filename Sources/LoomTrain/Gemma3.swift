// Gemma 3 (text: transformers' Gemma3ForCausalLM, model_type gemma3_text) as the shared decoder (Model.swift)
// runs it. What differs from Llama, each a field of LlamaConfig or a rule keyed on `family == .gemma3`:
//   - embeddings scaled by sqrt(hidden), rounded to float32 (transformers keeps the scale as a tensor of the
//     weights' dtype); the pad token's row gets no gradient from lookups (nn.Embedding's padding_idx);
//   - RMSNorm multiplies by (1 + w), not w;
//   - four norms a layer: h += post_attention_layernorm(attn(input_layernorm(h)));
//                         h += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)));
//   - q_norm and k_norm, (1 + w) RMSNorms over each head's values, on q and k before RoPE;
//   - scores scaled by query_pre_attn_scalar^-0.5; layers of type sliding_attention see the last
//     `sliding_window` positions (q - W < k <= q) with their own rotary base, full_attention layers see all;
//   - the MLP is GELU (tanh approximation) gated: down(gelu_tanh(gate x) * up x); tied embeddings;
//   - final logits soft-capped where the config sets final_logit_softcapping.
// See $LOOM_SHARED/fixtures/README.md (gemma3-tiny) for each rule checked against transformers.

import Foundation
import LoomCore

extension LlamaConfig {
    /// Gemma 3 norms scale by (1 + w), carry q/k norms and the norms after attention and after the MLP.
    public var gemmaNorms: Bool { family == .gemma3 }

    /// rms_norm_eps as the kernels take it.
    public var rmsNormEpsilon: Float { Float(rmsNormEps) }

    /// The attention scale: query_pre_attn_scalar^-0.5 (Gemma 3), else head_dim^-0.5.
    public var attentionScale: Float { Float(1 / (queryPreAttnScalar ?? Double(headDim)).squareRoot()) }

    /// The embedding scale: sqrt(hidden) rounded to float32 for Gemma 3, else 1.
    public var embeddingScale: Float { family == .gemma3 ? Float(Double(hiddenSize).squareRoot()) : 1 }

    /// Whether layer l attends through the sliding window.
    public func isSliding(_ l: Int) -> Bool { slidingWindow != nil && l < slidingLayers.count && slidingLayers[l] }

    static func parseGemma3(_ j: JSONValue, source: String) throws -> LlamaConfig {
        func int(_ k: String) throws -> Int {
            guard let v = j[k]?.intValue else { throw LoomError("\(source): '\(k)' is missing or not an integer") }
            return v
        }
        let act = j["hidden_activation"]?.stringValue ?? j["hidden_act"]?.stringValue ?? "gelu_pytorch_tanh"
        guard act == "gelu_pytorch_tanh" || act == "gelu_tanh" else {
            throw LoomError("\(source): hidden_activation '\(act)' is not supported for Gemma 3 (gelu_pytorch_tanh)")
        }
        if let cap = j["attn_logit_softcapping"], cap != .null {
            throw LoomError("\(source): attn_logit_softcapping is not supported (Gemma 3 sets it to null)")
        }
        if j["use_bidirectional_attention"]?.boolValue == true {
            throw LoomError("\(source): use_bidirectional_attention is not supported (a causal language model is expected)")
        }
        let heads = try int("num_attention_heads"), layers = try int("num_hidden_layers")
        // Rotary bases: v5's rope_parameters by layer type, or v4's rope_theta + rope_local_base_freq.
        let params = j["rope_parameters"]
        let full = params?["full_attention"], local = params?["sliding_attention"]
        let theta = full?["rope_theta"]?.doubleValue ?? j["rope_theta"]?.doubleValue ?? 1_000_000
        let localTheta = local?["rope_theta"]?.doubleValue ?? j["rope_local_base_freq"]?.doubleValue ?? 10_000
        var c = LlamaConfig(
            vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            intermediateSize: try int("intermediate_size"), numLayers: layers, numHeads: heads,
            numKVHeads: j["num_key_value_heads"]?.intValue ?? heads, headDim: j["head_dim"]?.intValue ?? 256,
            ropeTheta: theta, rmsNormEps: j["rms_norm_eps"]?.doubleValue ?? 1e-6,
            maxPositions: j["max_position_embeddings"]?.intValue ?? 131_072,
            tieWordEmbeddings: j["tie_word_embeddings"]?.boolValue ?? true)
        c.family = .gemma3
        c.localRopeTheta = localTheta
        c.ropeScaling = try parseRopeScaling(full ?? j["rope_scaling"], source: source)
        if try parseRopeScaling(local, source: source) != nil {
            throw LoomError("\(source): rope scaling on sliding_attention layers is not supported")
        }
        c.queryPreAttnScalar = j["query_pre_attn_scalar"]?.doubleValue ?? 256
        c.slidingWindow = j["sliding_window"]?.intValue ?? 4096
        if let types = j["layer_types"]?.arrayValue {
            guard types.count == layers else {
                throw LoomError("\(source): layer_types has \(types.count) entries for \(layers) layers")
            }
            c.slidingLayers = try types.map { t in
                switch t.stringValue {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw LoomError("\(source): layer_types entry \(t) is not sliding_attention or full_attention")
                }
            }
        } else {
            // transformers' default: every `pattern`-th layer is full.
            let pattern = j["sliding_window_pattern"]?.intValue ?? j["_sliding_window_pattern"]?.intValue ?? 6
            c.slidingLayers = (0..<layers).map { ($0 + 1) % max(1, pattern) != 0 }
        }
        if let cap = j["final_logit_softcapping"]?.doubleValue { c.finalLogitSoftcap = cap }
        return try c.finishParse(j)
    }

    /// A gemma3_text config.json from the fields (transformers 5 keys, with v4's rope keys too).
    var gemma3JSON: JSONValue {
        var o = JSONObject()
        o.append("architectures", ["Gemma3ForCausalLM"])
        o.append("attention_bias", false)
        o.append("attn_logit_softcapping", .null)
        o.append("bos_token_id", bosTokenId.map { .int($0) } ?? .null)
        o.append("dtype", "float32")
        o.append("eos_token_id", eosTokenId.map { .int($0) } ?? .null)
        o.append("final_logit_softcapping", finalLogitSoftcap.map { .double($0) } ?? .null)
        o.append("head_dim", .int(headDim))
        o.append("hidden_activation", "gelu_pytorch_tanh")
        o.append("hidden_size", .int(hiddenSize))
        o.append("intermediate_size", .int(intermediateSize))
        o.append("layer_types", .array(slidingLayers.map { .string($0 ? "sliding_attention" : "full_attention") }))
        o.append("max_position_embeddings", .int(maxPositions))
        o.append("model_type", "gemma3_text")
        o.append("num_attention_heads", .int(numHeads))
        o.append("num_hidden_layers", .int(numLayers))
        o.append("num_key_value_heads", .int(numKVHeads))
        o.append("pad_token_id", padTokenId.map { .int($0) } ?? .null)
        // transformers' config dataclass wants an integer here when it is one.
        let scalar = queryPreAttnScalar ?? Double(headDim)
        o.append("query_pre_attn_scalar", scalar.rounded() == scalar ? .int(Int(scalar)) : .double(scalar))
        o.append("rms_norm_eps", .double(rmsNormEps))
        o.append("rope_local_base_freq", .double(localRopeTheta ?? 10_000))
        var fullRope: JSONValue = ["rope_theta": .double(ropeTheta), "rope_type": "default"]
        if let s = ropeScaling {
            fullRope = ["rope_theta": .double(ropeTheta), "rope_type": .string(s.kind.rawValue), "factor": .double(s.factor)]
        }
        o.append(
            "rope_parameters",
            [
                "full_attention": fullRope,
                "sliding_attention": ["rope_theta": .double(localRopeTheta ?? 10_000), "rope_type": "default"],
            ])
        o.append("rope_theta", .double(ropeTheta))
        o.append("sliding_window", slidingWindow.map { .int($0) } ?? .null)
        o.append("tie_word_embeddings", .bool(tieWordEmbeddings))
        o.append("use_bidirectional_attention", false)
        o.append("use_cache", true)
        o.append("vocab_size", .int(vocabSize))
        return .object(o)
    }
}
