// The Llama architecture's hyper-parameters, read from and written to a Hugging Face `config.json` (the keys
// transformers' LlamaConfig uses; both the top-level `rope_theta` and the newer `rope_parameters` forms).

import Foundation
import LoomCore

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
        if let t = j["model_type"]?.stringValue, !["llama", "mistral", "qwen2"].contains(t) {
            throw LoomError("\(source): model_type '\(t)' is not a Llama-architecture model")
        }
        if let act = j["hidden_act"]?.stringValue, act != "silu" {
            throw LoomError("\(source): hidden_act '\(act)' is not supported (silu only)")
        }
        if j["attention_bias"]?.boolValue == true || j["mlp_bias"]?.boolValue == true {
            throw LoomError("\(source): biases (attention_bias/mlp_bias) are not supported")
        }
        let rope = j["rope_parameters"] ?? j["rope_scaling"]
        if let type = rope?["rope_type"]?.stringValue ?? rope?["type"]?.stringValue, type != "default" {
            throw LoomError("\(source): rope_type '\(type)' is not supported (default RoPE only)")
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
        c.bosTokenId = j["bos_token_id"]?.intValue
        c.eosTokenId = j["eos_token_id"]?.intValue ?? j["eos_token_id"]?.arrayValue?.first?.intValue
        c.padTokenId = j["pad_token_id"]?.intValue
        try c.validate()
        return c
    }

    /// The config as transformers writes it (both rope forms, so v4 and v5 read it).
    public var json: JSONValue {
        var o = JSONObject()
        o.append("architectures", ["LlamaForCausalLM"])
        o.append("attention_bias", false)
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
        o.append("model_type", "llama")
        o.append("num_attention_heads", .int(numHeads))
        o.append("num_hidden_layers", .int(numLayers))
        o.append("num_key_value_heads", .int(numKVHeads))
        o.append("pad_token_id", padTokenId.map { .int($0) } ?? .null)
        o.append("pretraining_tp", 1)
        o.append("rms_norm_eps", .double(rmsNormEps))
        o.append("rope_parameters", ["rope_theta": .double(ropeTheta), "rope_type": "default"])
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
