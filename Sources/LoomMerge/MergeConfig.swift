// mergekit's YAML merge configuration, as `mergekit-yaml` reads it (mergekit 0.1.5): `merge_method`, `base_model`,
// `models` (each `model:` with optional `parameters:`), top-level `parameters`, `dtype`, `out_dtype`,
// `tokenizer_source`. A parameter is a number, a gradient (a list of numbers interpolated across the layers), or a
// list of `{filter: SUBSTRING, value: ...}` conditions matched against the tensor name (the first match wins; no
// filter matches everything). Loom adds `random_seed` (DARE's drop masks) and `rescale: paper`.

import Foundation
import LoomCore
import LoomTensor
import Yams

public enum MergeMethod: String, CaseIterable, Sendable {
    case linear
    case slerp
    case taskArithmetic = "task_arithmetic"
    case ties
    case dareLinear = "dare_linear"
    case dareTies = "dare_ties"

    /// Task-vector methods (mergekit's "generalized task arithmetic"): base + combination of (model − base).
    public var isTaskArithmetic: Bool { self != .linear && self != .slerp }

    enum Sparsification { case none, magnitude, random }

    var sparsification: Sparsification {
        switch self {
        case .ties: return .magnitude
        case .dareLinear, .dareTies: return .random
        default: return .none
        }
    }

    /// TIES' sign election (mergekit's `consensus_method: sum`).
    var usesSignConsensus: Bool { self == .ties || self == .dareTies }

    var defaultNormalize: Bool {
        switch self {
        case .linear, .ties: return true
        default: return false
        }
    }

    var defaultRescale: Bool { self == .dareLinear || self == .dareTies }

    /// Parameters read once per tensor for the whole merge.
    var sharedParameters: [String] {
        switch self {
        case .linear: return ["normalize"]
        case .slerp: return ["t"]
        default: return ["int8_mask", "normalize", "rescale", "lambda"]
        }
    }

    /// Parameters read per input model.
    var modelParameters: [String] {
        switch self {
        case .linear: return ["weight"]
        case .slerp: return []
        default: return ["weight", "density"]
        }
    }
}

/// One mergekit parameter value before it is evaluated for a tensor.
public indirect enum ParameterSetting: Sendable, Equatable {
    /// A number, boolean or string.
    case scalar(JSONValue)
    /// A list of scalars: numbers are a gradient interpolated over the layer position t in [0, 1]; other
    /// scalars are picked by position.
    case list([JSONValue])
    /// `[{filter: self_attn, value: ...}, {value: ...}]`: the first condition whose filter is absent, `*`, or a
    /// substring of the tensor name gives the value.
    case conditions([Condition])

    public struct Condition: Sendable, Equatable {
        public var filter: String?
        public var value: ParameterSetting
    }

    /// The value for one tensor at layer position `t` (mergekit's `evaluate_setting`); nil when no condition matches.
    public func evaluate(tensor: String, t: Double) -> JSONValue? {
        switch self {
        case .scalar(let v): return v
        case .list(let values):
            guard !values.isEmpty else { return nil }
            let numbers = values.map(Self.number)
            if numbers.allSatisfy({ $0 != nil }) {
                let xs = numbers.map { $0! }
                let scaled = t * Double(xs.count - 1)
                let i0 = Int(scaled)
                let i1 = min(xs.count - 1, i0 + 1)
                let frac = scaled - Double(i0)
                return .double((1 - frac) * xs[i0] + frac * xs[i1])
            }
            return values[Int(t * Double(values.count - 1))]
        case .conditions(let cs):
            for c in cs where c.filter == nil || c.filter == "*" || (!tensor.isEmpty && tensor.contains(c.filter!)) {
                return c.value.evaluate(tensor: tensor, t: t)
            }
            return nil
        }
    }

    /// A number from a scalar (YAML may leave `1e-3` a string).
    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int, .double: return v.doubleValue
        case .string(let s): return Double(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    /// Parses a setting; `path` names it in errors.
    static func parse(_ v: JSONValue, path: String) throws -> ParameterSetting {
        switch v {
        case .int, .double, .bool, .string: return .scalar(v)
        case .object: return .conditions([try condition(v, path: path)])
        case .array(let items):
            if items.allSatisfy({ $0.objectValue == nil && $0.arrayValue == nil && $0 != .null }) { return .list(items) }
            return .conditions(
                try items.enumerated().map { i, item in
                    guard item.objectValue != nil else {
                        throw ConfigError(path: "\(path)[\(i)]", message: "mix of plain values and {filter, value} conditions")
                    }
                    return try condition(item, path: "\(path)[\(i)]")
                })
        case .null: throw ConfigError(path: path, message: "empty value")
        }
    }

    private static func condition(_ v: JSONValue, path: String) throws -> Condition {
        let o = v.objectValue ?? JSONObject()
        for k in o.keys where k != "filter" && k != "value" {
            throw ConfigError(path: "\(path).\(k)", message: "unknown key '\(k)' in a condition (allowed: filter, value)")
        }
        guard let value = o["value"] else { throw ConfigError(path: path, message: "a condition needs 'value'") }
        var filter: String?
        if let f = o["filter"] {
            guard let s = f.stringValue else { throw ConfigError(path: "\(path).filter", message: "filter must be a string") }
            filter = s
        }
        let inner = try parse(value, path: "\(path).value")
        if case .conditions = inner { throw ConfigError(path: "\(path).value", message: "conditions cannot be nested") }
        return Condition(filter: filter, value: inner)
    }
}

/// A problem at one place of a merge config (`models[1].parameters.weight`), turned into FILE:LINE by the loader.
struct ConfigError: Error {
    var path: String
    var message: String
}

/// How DARE scales the kept part of a task vector.
public enum DARERescale: String, Sendable {
    /// mergekit 0.1.5: multiply by ‖δ‖₁ / ‖m⊙δ‖₁ (`rescale: true`).
    case l1
    /// The DARE paper (arXiv 2311.03099): divide by the density (`rescale: paper`).
    case paper
    /// Keep m⊙δ as it is (`rescale: false`).
    case none
}

public struct MergeModel: Sendable, Equatable {
    /// The model as written in the config (a path); masks and messages use this name.
    public var name: String
    /// Per-model parameters (`weight`, `density`, ...).
    public var parameters: [String: ParameterSetting]
}

public struct MergeConfig: Sendable {
    public var method: MergeMethod
    public var baseModel: String?
    public var models: [MergeModel]
    public var parameters: [String: ParameterSetting]
    public var dtype: String?
    public var outDtype: String?
    public var tokenizerSource: String?
    /// Seed of Loom's DARE drop masks (SplitMix64).
    public var randomSeed: UInt64
    /// The config in its JSON form (for manifests and `mergekit_config.yml`).
    public var json: JSONValue
    /// Notes for the user about keys read but ignored (e.g. `int8_mask`).
    public var notes: [String] = []

    public static let keys = [
        "merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source", "random_seed",
    ]
    static let unsupported: [String: String] = [
        "slices": "'slices' (layer ranges, passthrough stacking) is not supported by loom merge: use 'models'",
        "modules": "'modules' is not supported by loom merge: use 'models'",
        "tokenizer": "'tokenizer' (vocabulary merging) is not supported by loom merge: use 'tokenizer_source'",
        "chat_template": "'chat_template' is not supported by loom merge: edit tokenizer_config.json after merging",
    ]

    /// The inputs in mergekit's order: the listed models, then the base model if it is not among them.
    public var inputs: [String] {
        var out = models.map(\.name)
        if let b = baseModel, !out.contains(b) { out.append(b) }
        return out
    }

    /// Loads a mergekit YAML file; errors name the file and line.
    public static func load(path: String) throws -> MergeConfig {
        let text = try FS.readText(path)
        return try parse(yaml: text, file: path)
    }

    public static func parse(yaml text: String, file: String) throws -> MergeConfig {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let e as YamlError { throw LoomError("\(file): \(e)") }
        guard let root = node, case .mapping = root else {
            throw LoomError("\(file): expected a mapping with 'merge_method' and 'models' (a mergekit config)")
        }
        let v = try JSONValue(yaml: root, file: file)
        do {
            return try from(v)
        } catch let e as ConfigError {
            let line = Self.line(of: e.path, in: root).map { ":\($0)" } ?? ""
            throw LoomError("\(file)\(line): \(e.path.isEmpty ? "" : e.path + ": ")\(e.message)")
        }
    }

    /// Reads a config from its JSON form (a pipeline step's options); `context` names it in errors.
    public static func from(_ v: JSONValue, context: String) throws -> MergeConfig {
        do { return try from(v) } catch let e as ConfigError {
            throw LoomError("\(context): \(e.path.isEmpty ? "" : e.path + ": ")\(e.message)")
        }
    }

    static func from(_ v: JSONValue) throws -> MergeConfig {
        guard let o = v.objectValue else { throw ConfigError(path: "", message: "a merge config is a mapping") }
        for k in o.keys where !keys.contains(k) {
            if let why = unsupported[k] { throw ConfigError(path: k, message: why) }
            throw ConfigError(path: k, message: "unknown key '\(k)' (allowed: \(keys.joined(separator: ", ")))")
        }
        guard let m = o["merge_method"] else { throw ConfigError(path: "", message: "missing 'merge_method'") }
        guard let ms = m.stringValue, let method = MergeMethod(rawValue: ms) else {
            throw ConfigError(
                path: "merge_method",
                message: "unknown merge method \(m.jsonString) (available: \(MergeMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        func string(_ key: String) throws -> String? {
            guard let x = o[key], x != .null else { return nil }
            guard let s = x.stringValue, !s.isEmpty else { throw ConfigError(path: key, message: "expected a string") }
            return s
        }
        let base = try string("base_model")
        var models: [MergeModel] = []
        guard let list = o["models"]?.arrayValue, !list.isEmpty else {
            throw ConfigError(path: "models", message: "'models' must be a non-empty list of {model: PATH, parameters: {...}}")
        }
        for (i, item) in list.enumerated() {
            let path = "models[\(i)]"
            var name: String?
            var params: [String: ParameterSetting] = [:]
            if let s = item.stringValue {
                name = s
            } else if let mo = item.objectValue {
                for k in mo.keys where k != "model" && k != "parameters" {
                    throw ConfigError(path: "\(path).\(k)", message: "unknown key '\(k)' (allowed: model, parameters)")
                }
                guard let s = mo["model"]?.stringValue, !s.isEmpty else {
                    throw ConfigError(path: "\(path).model", message: "expected the model's path (a string)")
                }
                name = s
                params = try parameters(mo["parameters"], path: "\(path).parameters")
            } else {
                throw ConfigError(path: path, message: "expected {model: PATH, parameters: {...}}")
            }
            models.append(MergeModel(name: name!, parameters: params))
        }
        let top = try parameters(o["parameters"], path: "parameters")
        for key in ["dtype", "out_dtype"] {
            if let d = try string(key), OutputDType(name: d) == nil {
                throw ConfigError(path: key, message: "unknown dtype '\(d)' (available: float32, bfloat16, float16)")
            }
        }
        var seed: UInt64 = 0
        if let s = o["random_seed"], s != .null {
            guard let i = s.intValue, i >= 0 else { throw ConfigError(path: "random_seed", message: "expected a non-negative integer") }
            seed = UInt64(i)
        }
        var c = MergeConfig(
            method: method, baseModel: base, models: models, parameters: top, dtype: try string("dtype"),
            outDtype: try string("out_dtype"), tokenizerSource: try string("tokenizer_source"), randomSeed: seed, json: v)
        try c.validate()
        return c
    }

    private static func parameters(_ v: JSONValue?, path: String) throws -> [String: ParameterSetting] {
        guard let v, v != .null else { return [:] }
        guard let o = v.objectValue else { throw ConfigError(path: path, message: "expected a mapping of parameter names to values") }
        var out: [String: ParameterSetting] = [:]
        for (k, x) in o { out[k] = try ParameterSetting.parse(x, path: "\(path).\(k)") }
        return out
    }

    /// Checks the structure mergekit checks before merging, and warns about parameters the method does not read.
    mutating func validate() throws {
        let inputs = self.inputs
        switch method {
        case .slerp:
            guard let b = baseModel else {
                throw ConfigError(path: "base_model", message: "slerp needs base_model (t = 0 gives the base model)")
            }
            guard inputs.count == 2 else {
                throw ConfigError(
                    path: "models",
                    message: "slerp merges exactly two models, the base model '\(b)' and one other (got \(inputs.count): \(inputs.joined(separator: ", ")))")
            }
        case .linear:
            break
        default:
            guard baseModel != nil else {
                throw ConfigError(path: "base_model", message: "\(method.rawValue) needs base_model (task vectors are model − base)")
            }
        }
        if tokenizerSource == "union" {
            throw ConfigError(path: "tokenizer_source", message: "'union' (vocabulary merging) is not supported: use 'base' or a model path")
        }
        let shared = Set(method.sharedParameters)
        let perModel = Set(method.modelParameters)
        for k in parameters.keys.sorted() where !shared.contains(k) && !perModel.contains(k) {
            notes.append("parameters.\(k) is not used by \(method.rawValue) (it reads \((method.sharedParameters + method.modelParameters).joined(separator: ", ")))")
        }
        for (i, m) in models.enumerated() {
            for k in m.parameters.keys.sorted() where !perModel.contains(k) {
                notes.append("models[\(i)].parameters.\(k) is not used by \(method.rawValue)\(perModel.isEmpty ? "" : " (per-model: \(method.modelParameters.joined(separator: ", ")))")")
            }
        }
        if parameters["int8_mask"] != nil {
            notes.append("int8_mask is ignored: it only changes the dtype of mergekit's sign mask in memory, not the result")
        }
        if method == .slerp, parameters["t"] == nil {
            throw ConfigError(path: "parameters", message: "slerp needs parameters.t (0 = base model, 1 = the other)")
        }
        if method == .linear || method.isTaskArithmetic {
            // `weight` is required for every input that takes it (the base model too, for linear).
            for name in inputs where method == .linear || name != baseModel {
                let own = models.first { $0.name == name }?.parameters["weight"]
                if own == nil, parameters["weight"] == nil {
                    throw ConfigError(path: "models", message: "model '\(name)' has no weight (give parameters: {weight: W})")
                }
            }
        }
    }

    /// The config with every model reference (`base_model`, `models[].model`, a `tokenizer_source` path) passed
    /// through `rename`, in its JSON form too; e.g. a pipeline turning `@train` into that step's directory.
    public func renamingModels(_ rename: (String) throws -> String) throws -> MergeConfig {
        guard case .object(var o) = json else { return self }
        if let b = o["base_model"]?.stringValue { o["base_model"] = .string(try rename(b)) }
        if let t = o["tokenizer_source"]?.stringValue, t != "base", t != "union" { o["tokenizer_source"] = .string(try rename(t)) }
        if let list = o["models"]?.arrayValue {
            o["models"] = .array(
                try list.map { item in
                    if let s = item.stringValue { return .string(try rename(s)) }
                    guard case .object(var mo) = item, let s = mo["model"]?.stringValue else { return item }
                    mo["model"] = .string(try rename(s))
                    return .object(mo)
                })
        }
        var c = try MergeConfig.from(.object(o), context: "merge config")
        c.randomSeed = randomSeed
        return c
    }

    /// Evaluates a parameter for one tensor: the model's own setting first (when `model` is given), then the
    /// top-level one (mergekit's precedence). nil when neither gives a value.
    public func parameter(_ name: String, model: String?, tensor: String, t: Double) -> JSONValue? {
        if let model, let m = models.first(where: { $0.name == model }), let s = m.parameters[name],
            let v = s.evaluate(tensor: tensor, t: t)
        {
            return v
        }
        return parameters[name]?.evaluate(tensor: tensor, t: t)
    }

    func number(_ name: String, model: String?, tensor: String, t: Double, default d: Double?) throws -> Double {
        guard let v = parameter(name, model: model, tensor: tensor, t: t) else {
            if let d { return d }
            throw LoomError("missing parameter '\(name)' for \(model.map { "\($0)." } ?? "")\(tensor)")
        }
        guard let x = ParameterSetting.number(v) else {
            throw LoomError("parameter '\(name)' for \(model.map { "\($0)." } ?? "")\(tensor) is \(v.jsonString), not a number")
        }
        return x
    }

    func flag(_ name: String, tensor: String, t: Double, default d: Bool) throws -> Bool {
        guard let v = parameter(name, model: nil, tensor: tensor, t: t) else { return d }
        if let b = v.boolValue { return b }
        if let s = v.stringValue?.lowercased(), ["true", "false"].contains(s) { return s == "true" }
        if let x = ParameterSetting.number(v) { return x != 0 }
        throw LoomError("parameter '\(name)' for \(tensor) is \(v.jsonString), not true or false")
    }

    func rescale(tensor: String, t: Double) throws -> DARERescale {
        guard let v = parameter("rescale", model: nil, tensor: tensor, t: t) else { return method.defaultRescale ? .l1 : .none }
        if v.stringValue?.lowercased() == "paper" { return .paper }
        if v.stringValue?.lowercased() == "l1" { return .l1 }
        return try flag("rescale", tensor: tensor, t: t, default: method.defaultRescale) ? .l1 : .none
    }

    // MARK: - Lines for errors

    /// The 1-based line of `models[1].parameters.weight` in the YAML tree, or of the deepest part that exists.
    static func line(of path: String, in root: Node) -> Int? {
        var node = root
        var best = root.mark?.line
        for part in path.split(separator: ".") {
            var key = String(part)
            var indices: [Int] = []
            while let open = key.lastIndex(of: "["), key.hasSuffix("]") {
                if let i = Int(key[key.index(after: open)..<key.index(before: key.endIndex)]) { indices.insert(i, at: 0) }
                key = String(key[..<open])
            }
            if !key.isEmpty {
                guard case .mapping(let m) = node, let pair = m.first(where: { $0.key.string == key }) else { return best }
                best = pair.key.mark?.line ?? best
                node = pair.value
            }
            for i in indices {
                guard case .sequence(let s) = node, i < s.count else { return best }
                node = s[i]
                best = node.mark?.line ?? best
            }
        }
        return best
    }
}

/// The dtype written to the output files.
public enum OutputDType: String, Sendable {
    case float32, bfloat16, float16

    public init?(name: String) {
        var n = name.lowercased()
        if n.hasPrefix("torch.") { n.removeFirst(6) }
        switch n {
        case "float32", "fp32", "float", "f32": self = .float32
        case "bfloat16", "bf16": self = .bfloat16
        case "float16", "fp16", "half", "f16": self = .float16
        default: return nil
        }
    }

    public var dtype: DType {
        switch self {
        case .float32: return .f32
        case .bfloat16: return .bf16
        case .float16: return .f16
        }
    }
}
