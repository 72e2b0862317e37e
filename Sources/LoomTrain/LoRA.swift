// LoRA (Hu et al. 2021, arXiv 2106.09685): a frozen projection y = x Wᵀ gains a trainable low-rank update,
//   y = x Wᵀ + s · (dropout(x) Aᵀ) Bᵀ,   A [r, in], B [out, r], s = alpha / r,
// with A drawn as PyTorch's kaiming_uniform(a=√5) (U(−1/√in, 1/√in)) and B = 0, so training starts from the base
// model. Only A and B are trained and optimised. Adapters are written in PEFT's layout (adapter_config.json,
// adapter_model.safetensors with `base_model.model.<module>.lora_A.weight` names) so PeftModel.from_pretrained
// opens them, and `merge` folds them into the base weights (W += s · B A).

import CTensorKernels
import Foundation
import LoomCore
import LoomTensor

public enum Projection: String, CaseIterable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj", gate = "gate_proj", up = "up_proj", down = "down_proj"

    var parent: String { [.q, .k, .v, .o].contains(self) ? "self_attn" : "mlp" }
    func module(layer: Int) -> String { "model.layers.\(layer).\(parent).\(rawValue)" }

    /// Accepts `q`, `q_proj`, `self_attn.q_proj`.
    public init?(name: String) {
        let n = name.split(separator: ".").last.map(String.init) ?? name
        if let p = Projection(rawValue: n) ?? Projection(rawValue: n + "_proj") { self = p } else { return nil }
    }
}

public struct LoRAConfig: Equatable, Sendable {
    public var rank = 8
    public var alpha = 16.0
    public var dropout = 0.0
    public var targets: [Projection] = [.q, .k, .v, .o, .gate, .up, .down]
    public var seed: UInt64 = 1
    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, targets: [Projection]? = nil, seed: UInt64 = 1) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        if let t = targets { self.targets = t }
        self.seed = seed
    }
    public var scale: Float { Float(alpha / Double(rank)) }

    /// The settings of a PEFT `adapter_config.json` (its text); `source` names the file in errors.
    public init(adapterConfig text: String, source: String) throws {
        let j: JSONValue
        do { j = try JSONValue.parse(text) } catch let e as JSONParseError { throw LoomError("\(source): \(e)") }
        guard j["peft_type"]?.stringValue == "LORA" else { throw LoomError("\(source): not a LoRA adapter (peft_type)") }
        if j["use_dora"]?.boolValue == true || j["use_rslora"]?.boolValue == true {
            throw LoomError("\(source): DoRA and rsLoRA adapters are not supported")
        }
        var targets: [Projection] = []
        for t in j["target_modules"]?.arrayValue ?? [] {
            guard let s = t.stringValue, let p = Projection(name: s) else {
                throw LoomError("\(source): unsupported target module \(t.jsonString)")
            }
            targets.append(p)
        }
        self.init(
            rank: j["r"]?.intValue ?? 8, alpha: j["lora_alpha"]?.doubleValue ?? 8, dropout: j["lora_dropout"]?.doubleValue ?? 0,
            targets: Projection.allCases.filter { targets.contains($0) })
    }
}

public final class LoRA: @unchecked Sendable {
    public let config: LoRAConfig
    /// The adapters' parameters (names as PEFT's without the `base_model.model.` prefix) and gradients.
    public let params: ParameterStore
    struct Adapter {
        let a: Int, b: Int, inDim: Int, outDim: Int
    }
    let adapters: [[Projection: Adapter]]
    /// Dropout is applied while training; `dropoutSeed` (set per micro-batch by the trainer) makes it repeatable.
    public var training = true
    public var dropoutSeed: UInt64 = 0
    private var saved: [String: (u: FloatBuffer, xd: FloatBuffer?)] = [:]
    private var savedRows = -1

    public static let prefix = "base_model.model."

    public init(config: LoRAConfig, model c: LlamaConfig) throws {
        guard config.rank > 0 else { throw LoomError("lora: rank must be positive") }
        guard config.dropout >= 0 && config.dropout < 1 else { throw LoomError("lora: dropout must be in [0, 1)") }
        guard !config.targets.isEmpty else { throw LoomError("lora: no target modules") }
        self.config = config
        let d = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim, i = c.intermediateSize
        func dims(_ p: Projection) -> (Int, Int) {
            switch p {
            case .q: return (d, qd)
            case .k, .v: return (d, kvd)
            case .o: return (qd, d)
            case .gate, .up: return (d, i)
            case .down: return (i, d)
            }
        }
        // A rank above a projection's smaller side adds nothing a full update would not, and an adapter config
        // from elsewhere could name any number (it would be allocated as rank x (in + out) floats per projection).
        let widest = Projection.allCases.filter { config.targets.contains($0) }.map { min(dims($0).0, dims($0).1) }.min() ?? 0
        guard config.rank <= widest else {
            throw LoomError("lora: rank \(config.rank) is above the smallest target projection's size (\(widest)); use at most \(widest)")
        }
        var specs: [(String, [Int])] = []
        for l in 0..<c.numLayers {
            for p in Projection.allCases where config.targets.contains(p) {
                let (inDim, outDim) = dims(p)
                specs.append((p.module(layer: l) + ".lora_A.weight", [config.rank, inDim]))
                specs.append((p.module(layer: l) + ".lora_B.weight", [outDim, config.rank]))
            }
        }
        let store = ParameterStore(specs)
        params = store
        adapters = (0..<c.numLayers).map { l in
            var m: [Projection: Adapter] = [:]
            for p in Projection.allCases where config.targets.contains(p) {
                let (inDim, outDim) = dims(p)
                m[p] = Adapter(
                    a: store.info(p.module(layer: l) + ".lora_A.weight")!.offset,
                    b: store.info(p.module(layer: l) + ".lora_B.weight")!.offset, inDim: inDim, outDim: outDim)
            }
            return m
        }
        // A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)), B = 0.
        var rng = SplitMix64(seed: config.seed)
        for info in store.infos where info.name.hasSuffix("lora_A.weight") {
            let bound = 1 / Double(info.shape[1]).squareRoot()
            for j in 0..<info.count {
                let u = Double(rng.next() >> 11) / Double(1 << 53)
                store.values.pointer[info.offset + j] = Float((2 * u - 1) * bound)
            }
        }
    }

    func adapter(_ layer: Int, _ p: Projection) -> Adapter? { adapters[layer][p] }

    /// The inverted-dropout mask of one adapter's input, drawn from (dropoutSeed, layer, projection): forward and
    /// backward draw the same one.
    private func forEachKept(_ layer: Int, _ p: Projection, count: Int, _ body: (Int, Bool) -> Void) {
        var rng = SplitMix64(seed: dropoutSeed ^ UInt64(layer &* 7919 &+ Projection.allCases.firstIndex(of: p)! &* 104_729))
        let threshold = UInt64((1 - config.dropout) * Double(UInt64.max >> 11))
        for j in 0..<count { body(j, (rng.next() >> 11) < threshold) }
    }

    /// Scratch for backward (rows x rank).
    private var scratchBuffer: FloatBuffer?
    func scratch(rows: Int) -> UnsafeMutablePointer<Float> {
        if scratchBuffer == nil || scratchBuffer!.count < rows * config.rank { scratchBuffer = FloatBuffer(count: rows * config.rank) }
        return scratchBuffer!.pointer
    }

    private func buffers(_ key: String, rows: Int, inDim: Int, dropout: Bool) -> (u: FloatBuffer, xd: FloatBuffer?) {
        if savedRows != rows {
            saved = [:]
            savedRows = rows
        }
        if let b = saved[key] { return b }
        let b = (FloatBuffer(count: rows * config.rank), dropout ? FloatBuffer(count: rows * inDim) : nil)
        saved[key] = b
        return b
    }

    /// y += s · (dropout(x) Aᵀ) Bᵀ, keeping what backward needs.
    func forward(_ layer: Int, _ p: Projection, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, rows N: Int) {
        guard let ad = adapters[layer][p] else { return }
        let r = config.rank
        let drop = training && config.dropout > 0
        let (u, xd) = buffers("\(layer).\(p.rawValue)", rows: N, inDim: ad.inDim, dropout: drop)
        var input = x
        if drop, let xd {
            let inv = Float(1 / (1 - config.dropout))
            forEachKept(layer, p, count: N * ad.inDim) { j, kept in xd.pointer[j] = kept ? x[j] * inv : 0 }
            input = xd.pointer
        }
        let A = params.values.pointer + ad.a, B = params.values.pointer + ad.b
        Matmul.parallelGemm(input, A, u.pointer, m: N, n: r, k: ad.inDim, transposeB: true)
        Matmul.parallelGemm(u.pointer, B, y, m: N, n: ad.outDim, k: r, transposeB: true, alpha: config.scale, beta: 1)
    }

    /// Given dy: dB += s·dyᵀu, dA += (s·dy B)ᵀ x̃, dx += (s·dy B) A (through the dropout mask).
    func backward(
        _ layer: Int, _ p: Projection, x: UnsafeMutablePointer<Float>, dy: UnsafeMutablePointer<Float>,
        dx: UnsafeMutablePointer<Float>, rows N: Int
    ) {
        guard let ad = adapters[layer][p], let (u, xd) = saved["\(layer).\(p.rawValue)"] else { return }
        let r = config.rank, s = config.scale
        let drop = training && config.dropout > 0
        let A = params.values.pointer + ad.a, B = params.values.pointer + ad.b
        let gA = params.grads.pointer + ad.a, gB = params.grads.pointer + ad.b
        Matmul.parallelGemm(dy, u.pointer, gB, m: ad.outDim, n: r, k: N, transposeA: true, alpha: s, beta: 1)
        let du = scratch(rows: N)  // N x r
        Matmul.parallelGemm(dy, B, du, m: N, n: r, k: ad.outDim, alpha: s)
        let input = drop ? xd!.pointer : x
        Matmul.parallelGemm(du, input, gA, m: r, n: ad.inDim, k: N, transposeA: true, beta: 1)
        if drop, let xd {
            // d x = (du A) ⊙ mask / keep: the mask is where x̃ is non-zero (x̃ = x·mask/keep).
            let tmp = FloatBuffer(count: N * ad.inDim)
            Matmul.parallelGemm(du, A, tmp.pointer, m: N, n: ad.inDim, k: r)
            let inv = Float(1 / (1 - config.dropout))
            _ = xd
            forEachKept(layer, p, count: N * ad.inDim) { j, kept in if kept { dx[j] += tmp.pointer[j] * inv } }
        } else {
            Matmul.parallelGemm(du, A, dx, m: N, n: ad.inDim, k: r, beta: 1)
        }
    }

    // MARK: - Files (PEFT layout)

    public func save(directory: String, baseModel: String?) throws {
        try FS.makeDirectory(directory)
        var o = JSONObject()
        o.append("alpha_pattern", .object(JSONObject()))
        o.append("base_model_name_or_path", baseModel.map { .string($0) } ?? .null)
        o.append("bias", "none")
        o.append("fan_in_fan_out", false)
        o.append("inference_mode", true)
        o.append("init_lora_weights", true)
        o.append("lora_alpha", .double(config.alpha))
        o.append("lora_dropout", .double(config.dropout))
        o.append("modules_to_save", .null)
        o.append("peft_type", "LORA")
        o.append("r", .int(config.rank))
        o.append("rank_pattern", .object(JSONObject()))
        o.append("target_modules", .array(config.targets.map { .string($0.rawValue) }))
        o.append("task_type", "CAUSAL_LM")
        o.append("use_dora", false)
        o.append("use_rslora", false)
        try FS.writeAtomically(JSONValue.object(o).jsonString + "\n", to: FS.join(directory, "adapter_config.json"))
        let tensors = params.infos.map { (name: LoRA.prefix + $0.name, tensor: params.tensor($0)) }
        try SafeTensors.write(tensors, metadata: [("format", "pt")], to: FS.join(directory, "adapter_model.safetensors"))
    }

    /// Reads a PEFT LoRA adapter directory for a model of config `c`.
    public static func load(directory: String, model c: LlamaConfig) throws -> LoRA {
        let cfgPath = FS.join(directory, "adapter_config.json")
        let cfg = try LoRAConfig(adapterConfig: try FS.readText(cfgPath), source: cfgPath)
        let lora = try LoRA(config: cfg, model: c)
        let file = FS.join(directory, "adapter_model.safetensors")
        let tensors = try SafeTensors.read(file).tensors.map { t -> (name: String, tensor: Tensor) in
            // PEFT names carry `base_model.model.` and sometimes the adapter name (`.lora_A.default.weight`).
            var n = t.name.hasPrefix(LoRA.prefix) ? String(t.name.dropFirst(LoRA.prefix.count)) : t.name
            n = n.replacingOccurrences(of: ".default.weight", with: ".weight")
            return (n, t.tensor)
        }
        try lora.params.load(tensors, source: file)
        return lora
    }

    /// Folds the adapters into the model's weights: W += s · B A.
    public func merge(into model: LlamaModel) {
        let s = config.scale
        for l in 0..<adapters.count {
            for (p, ad) in adapters[l] {
                let w = model.params.value(p.module(layer: l) + ".weight")
                Matmul.gemm(
                    params.values.pointer + ad.b, lda: config.rank, params.values.pointer + ad.a, ldb: ad.inDim, w,
                    ldc: ad.inDim, m: ad.outDim, n: ad.inDim, k: config.rank, alpha: s, beta: 1)
            }
        }
    }
}
