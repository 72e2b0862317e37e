// The decoder's hyper-parameters, read from and written to a Hugging Face `config.json`. One config for the
// families that share the Llama layout (Llama/Mistral, Qwen 2, Gemma 3 text): the family comes from `model_type`,
// and what a family changes (Qwen 2's q/k/v biases, Gemma 3's norms, scales, windows and GELU: Gemma3.swift) is
// a field here, so the shared forward and backward (Model.swift) and the KV-cache sampler take it from one place.
// Llama keys: both the top-level `rope_theta` and the newer `rope_parameters` forms, and Llama 3's rope scaling.

import Foundation
import LoomCore

/// The model families Loom runs, by transformers' `model_type`.
public enum ModelFamily: String, Sendable {
    case llama, qwen2
    case gemma3 = "gemma3_text"
}

/// Rotary-embedding frequency scaling (`rope_parameters.rope_type`): Llama 3's smoothed long-context scaling, or
/// linear position interpolation.
public struct RopeScaling: Equatable, Sendable {
    public enum Kind: String, Sendable { case llama3, linear }
    public var kind: Kind
    public var factor: Double
    public var lowFreqFactor = 1.0
    public var highFreqFactor = 4.0
    public var originalMaxPositions = 8192

    /// The inverse frequencies of `dim`-wide heads for base `theta`, scaled; computed in float32 as transformers
    /// does (ROPE_INIT_FUNCTIONS), so the angles round the same.
    public static func inverseFrequencies(theta: Double, dim: Int, scaling: RopeScaling?) -> [Float] {
        // 1 / theta^(2i/dim) as torch does it: the exponent, the power and the division each in float32.
        var f = (0..<(dim / 2)).map { i -> Float in
            let e = Float(2 * i) / Float(dim)
            return 1 / Float(pow(Double(Float(theta)), Double(e)))
        }
        guard let s = scaling else { return f }
        switch s.kind {
        case .linear:
            f = f.map { $0 / Float(s.factor) }
        case .llama3:
            let lowWave = Float(Double(s.originalMaxPositions) / s.lowFreqFactor)
            let highWave = Float(Double(s.originalMaxPositions) / s.highFreqFactor)
            // As transformers writes it, in float32; `number / tensor` is torch's reciprocal(tensor) * number.
            f = f.map { fr in
                let wave = (1 / fr) * Float(2 * Double.pi)
                if wave < highWave { return fr }
                if wave > lowWave { return fr / Float(s.factor) }
                let smooth = ((1 / wave) * Float(s.originalMaxPositions) - Float(s.lowFreqFactor)) / Float(s.highFreqFactor - s.lowFreqFactor)
                return (1 - smooth) * fr / Float(s.factor) + smooth * fr
            }
        }
        return f
    }
}

public struct LlamaConfig: Equatable, Sendable {

    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var ropeTheta: Double = 10000
    public var rmsNormEps: Double = 1e-5
    public var maxPositions: Int = 2048
    public var tieWordEmbeddings = false
    public var bosTokenId: Int? = 1
    public var eosTokenId: Int? = 2
    public var padTokenId: Int? = 0
    public var family = ModelFamily.llama
    /// Biases on the q, k and v projections (Qwen 2).
    public var attentionBias = false
    public var ropeScaling: RopeScaling?
    /// Gemma 3: scores are scaled by queryPreAttnScalar^-0.5 instead of headDim^-0.5.
    public var queryPreAttnScalar: Double?
    /// Gemma 3: layers marked true attend to the last `slidingWindow` positions only (the query's own included),
    /// with `localRopeTheta` as their rotary base; the others see every earlier position, with `ropeTheta`.
    public var slidingWindow: Int?
    public var slidingLayers: [Bool] = []
    public var localRopeTheta: Double?
    /// logits = cap · tanh(logits / cap) when set (`final_logit_softcapping`).
    public var finalLogitSoftcap: Double?
    /// The config.json the model came from: written back as it was, so keys Loom does not use survive a round trip
    /// (not part of equality: two configs are equal when the model they describe is).
    public var source: JSONValue? {
        get { kept.value }
        set { kept.value = newValue }
    }
    private var kept = Unequated(value: nil)

    /// A value that every other equals, so it stays out of the synthesised ==.
    struct Unequated: Equatable, Sendable {
        var value: JSONValue?
        static func == (_: Unequated, _: Unequated) -> Bool { true }
    }

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int, numKVHeads: Int? = nil,
        headDim: Int? = nil, ropeTheta: Double = 10000, rmsNormEps: Double = 1e-5, maxPositions: Int = 2048,
        tieWordEmbeddings: Bool = false
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads ?? numHeads
        self.headDim = headDim ?? hiddenSize / numHeads
        self.ropeTheta = ropeTheta
        self.rmsNormEps = rmsNormEps
        self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings
    }

    /// Checks the shapes fit together; the message names what to change.
    public func validate() throws {
        func need(_ ok: Bool, _ why: String) throws { if !ok { throw LoomError("model config: \(why)") } }
        try need(vocabSize > 0 && hiddenSize > 0 && intermediateSize > 0 && numLayers > 0, "sizes must be positive")
        try need(numHeads > 0 && numKVHeads > 0 && numHeads % numKVHeads == 0,
            "num_attention_heads (\(numHeads)) must be a multiple of num_key_value_heads (\(numKVHeads))")
        try need(headDim > 0 && headDim % 2 == 0, "head_dim (\(headDim)) must be even (rotary embedding)")
        try need(maxPositions > 0, "max_position_embeddings must be positive")
        if let w = slidingWindow {
            try need(w > 0, "sliding_window (\(w)) must be positive")
            try need(slidingLayers.count == numLayers, "layer_types must name one type for each of the \(numLayers) layers")
        }
    }

    /// Presets for `--preset`: `tiny` trains in minutes on a laptop CPU, `small` is the benchmark's shape.
    public static func preset(_ name: String, vocabSize: Int) -> LlamaConfig? {
        switch name {
        case "tiny":
            return LlamaConfig(
                vocabSize: vocabSize, hiddenSize: 64, intermediateSize: 172, numLayers: 2, numHeads: 4, numKVHeads: 2,
                maxPositions: 512)
        case "small":
            return LlamaConfig(
                vocabSize: vocabSize, hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4,
                maxPositions: 1024)
        default: return nil
        }
    }

    public static let presets = ["tiny", "small"]

    /// Reads a transformers `config.json` (a file or a directory holding one).
    public static func load(_ path: String) throws -> LlamaConfig {
        let file = FS.isDirectory(path) ? FS.join(path, "config.json") : path
        guard let data = FileManager.default.contents(atPath: file) else { throw LoomError("\(file): cannot read the model config") }
        let j: JSONValue
        do { j = try JSONValue.parse(String(decoding: data, as: UTF8.self)) } catch {
            throw LoomError("\(file): not JSON (\(error))")
        }
        return try parse(j, source: file)
    }

    public static func parse(_ j: JSONValue, source: String) throws -> LlamaConfig {
        func int(_ k: String) throws -> Int {
            guard let v = j[k]?.intValue else { throw LoomError("\(source): '\(k)' is missing or not an integer") }
            return v
        }
        let type = j["model_type"]?.stringValue ?? "llama"
        let family: ModelFamily
        switch type {
        case "llama", "mistral": family = .llama
        case "qwen2": family = .qwen2
        case "gemma3_text": family = .gemma3
        case "gemma3":
            throw LoomError(
                "\(source): model_type 'gemma3' is the multimodal Gemma 3; Loom runs the text model (gemma3_text, e.g. gemma-3-270m and gemma-3-1b)")
        default:
            throw LoomError("\(source): model_type '\(type)' is not supported (llama, mistral, qwen2, gemma3_text)")
        }
        if family == .gemma3 { return try parseGemma3(j, source: source) }
        if let act = j["hidden_act"]?.stringValue, act != "silu" {
            throw LoomError("\(source): hidden_act '\(act)' is not supported (silu only)")
        }
        if (family == .llama && j["attention_bias"]?.boolValue == true) || j["mlp_bias"]?.boolValue == true {
            throw LoomError("\(source): biases (attention_bias/mlp_bias) are not supported for model_type '\(type)'")
        }
        if j["use_sliding_window"]?.boolValue == true || (family == .llama && j["sliding_window"]?.intValue != nil) {
            throw LoomError("\(source): sliding-window attention is not supported for model_type '\(type)'")
        }
        let heads = try int("num_attention_heads")
        let hidden = try int("hidden_size")
        var c = LlamaConfig(
            vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
            numLayers: try int("num_hidden_layers"), numHeads: heads,
            numKVHeads: j["num_key_value_heads"]?.intValue ?? heads,
            headDim: j["head_dim"]?.intValue ?? hidden / heads,
            ropeTheta: j["rope_parameters"]?["rope_theta"]?.doubleValue ?? j["rope_theta"]?.doubleValue ?? 10000,
            rmsNormEps: j["rms_norm_eps"]?.doubleValue ?? 1e-6,
            maxPositions: j["max_position_embeddings"]?.intValue ?? 2048,
            tieWordEmbeddings: j["tie_word_embeddings"]?.boolValue ?? false)
        c.family = family
        c.attentionBias = family == .qwen2
        c.ropeScaling = try parseRopeScaling(j["rope_parameters"] ?? j["rope_scaling"], source: source)
        return try c.finishParse(j)
    }

    /// The special token ids and the source JSON, then the shape checks: the end of every family's parse.
    func finishParse(_ j: JSONValue) throws -> LlamaConfig {
        var c = self
        c.bosTokenId = j["bos_token_id"]?.intValue
        c.eosTokenId = j["eos_token_id"]?.intValue ?? j["eos_token_id"]?.arrayValue?.first?.intValue
        c.padTokenId = j["pad_token_id"]?.intValue
        c.source = j
        try c.validate()
        return c
    }

    /// `rope_parameters` (or v4's `rope_scaling`): nil for the default rope; llama3 and linear scaling read.
    static func parseRopeScaling(_ rope: JSONValue?, source: String) throws -> RopeScaling? {
        guard let rope, rope != .null else { return nil }
        let type = rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue ?? "default"
        switch type {
        case "default": return nil
        case "linear", "llama3":
            guard let factor = rope["factor"]?.doubleValue, factor > 0 else {
                throw LoomError("\(source): rope_type '\(type)' needs a positive 'factor'")
            }
            var s = RopeScaling(kind: type == "linear" ? .linear : .llama3, factor: factor)
            if s.kind == .llama3 {
                s.lowFreqFactor = rope["low_freq_factor"]?.doubleValue ?? 1
                s.highFreqFactor = rope["high_freq_factor"]?.doubleValue ?? 4
                s.originalMaxPositions = rope["original_max_position_embeddings"]?.intValue ?? 8192
                guard s.highFreqFactor > s.lowFreqFactor else {
                    throw LoomError("\(source): llama3 rope scaling needs high_freq_factor > low_freq_factor")
                }
            }
            return s
        default:
            throw LoomError("\(source): rope_type '\(type)' is not supported (default, linear, llama3)")
        }
    }

    /// The config as transformers writes it (both rope forms, so v4 and v5 read it): the one it was read from when
    /// there is one, else written from the fields.
    public var json: JSONValue {
        if let source { return source }
        if family == .gemma3 { return gemma3JSON }
        var o = JSONObject()
        o.append("architectures", [family == .qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"])
        o.append("attention_bias", .bool(attentionBias))
        o.append("attention_dropout", 0.0)
        o.append("bos_token_id", bosTokenId.map { .int($0) } ?? .null)
        o.append("dtype", "float32")
        o.append("eos_token_id", eosTokenId.map { .int($0) } ?? .null)
        o.append("head_dim", .int(headDim))
        o.append("hidden_act", "silu")
        o.append("hidden_size", .int(hiddenSize))
        o.append("initializer_range", 0.02)
        o.append("intermediate_size", .int(intermediateSize))
        o.append("max_position_embeddings", .int(maxPositions))
        o.append("mlp_bias", false)
        o.append("model_type", .string(family.rawValue))
        o.append("num_attention_heads", .int(numHeads))
        o.append("num_hidden_layers", .int(numLayers))
        o.append("num_key_value_heads", .int(numKVHeads))
        o.append("pad_token_id", padTokenId.map { .int($0) } ?? .null)
        o.append("pretraining_tp", 1)
        o.append("rms_norm_eps", .double(rmsNormEps))
        if let r = ropeScaling {
            var p: JSONValue = ["rope_theta": .double(ropeTheta), "rope_type": .string(r.kind.rawValue), "factor": .double(r.factor)]
            if r.kind == .llama3 {
                p = [
                    "rope_theta": .double(ropeTheta), "rope_type": "llama3", "factor": .double(r.factor),
                    "low_freq_factor": .double(r.lowFreqFactor), "high_freq_factor": .double(r.highFreqFactor),
                    "original_max_position_embeddings": .int(r.originalMaxPositions),
                ]
            }
            o.append("rope_parameters", p)
        } else {
            o.append("rope_parameters", ["rope_theta": .double(ropeTheta), "rope_type": "default"])
        }
        o.append("rope_theta", .double(ropeTheta))
        o.append("tie_word_embeddings", .bool(tieWordEmbeddings))
        o.append("torch_dtype", "float32")
        o.append("use_cache", true)
        o.append("vocab_size", .int(vocabSize))
        return .object(o)
    }

    public func write(to directory: String) throws {
        try FS.makeDirectory(directory)
        try FS.writeAtomically(json.jsonString + "\n", to: FS.join(directory, "config.json"))
    }
}
