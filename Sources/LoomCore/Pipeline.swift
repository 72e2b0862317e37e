// `loom run pipeline.yaml`: a named list of steps, each one stage, run in order. Step N reads step N-1's
// directory and writes `OUTPUT/NN-step` (e.g. `out/01-ingest`). A step whose manifest matches is skipped; a step
// that was interrupted starts over cleanly (see StageRunner).

import Foundation
import Yams

public struct PipelineStep: Sendable {
    /// The step's name as written in the YAML (`ingest`, `chunk`, ...).
    public var name: String
    public var options: JSONValue
    /// 1-based line of the step in the YAML file, for error messages.
    public var line: Int
}

public struct Pipeline: Sendable {
    public var name: String
    public var output: String
    public var steps: [PipelineStep]
    /// The directory relative paths in the file are resolved against (the YAML file's own directory).
    public var baseDirectory: String
    public var file: String

    public static func load(path: String) throws -> Pipeline {
        try parse(yaml: try FS.readText(path), path: path)
    }

    /// A pipeline from the text of its YAML file; `path` names the file in errors and sets the base directory.
    public static func parse(yaml text: String, path: String) throws -> Pipeline {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw LoomError("\(path): \(e)")
        }
        guard let root = node, case .mapping = root else {
            throw LoomError("\(path): expected a mapping with 'name', 'output' and 'steps'")
        }
        let v = try JSONValue(yaml: root, file: path)
        let base = (path as NSString).deletingLastPathComponent
        for k in v.objectValue?.keys ?? [] where !["name", "output", "steps"].contains(k) {
            throw LoomError("\(path): unknown top-level key '\(k)' (allowed: name, output, steps)")
        }
        guard let stepNodes = root["steps"], case .sequence(let seq) = stepNodes else {
            throw LoomError("\(path): 'steps' must be a list, e.g. steps: [ { ingest: { kind: pubmed, paths: [data/] } } ]")
        }
        var steps: [PipelineStep] = []
        for item in seq {
            let line = item.mark?.line ?? 0  // Yams marks are 1-based
            if case .scalar = item, let name = item.string, !name.isEmpty {
                steps.append(PipelineStep(name: name, options: .object(JSONObject()), line: line))
                continue
            }
            guard case .mapping(let m) = item, m.count == 1, let (k, val) = m.first.map({ ($0.key, $0.value) }),
                let name = k.string
            else {
                throw LoomError("\(path):\(line): each step is a mapping with one key, the step name (e.g. '- chunk: { max_tokens: 512 }')")
            }
            let options = try JSONValue(yaml: val, file: path)
            if case .null = options {
                steps.append(PipelineStep(name: name, options: .object(JSONObject()), line: line))
            } else {
                guard options.objectValue != nil else {
                    throw LoomError("\(path):\(line): the options of step '\(name)' must be a mapping")
                }
                steps.append(PipelineStep(name: name, options: options, line: line))
            }
        }
        if steps.isEmpty { throw LoomError("\(path): 'steps' is empty") }
        return Pipeline(
            name: v["name"]?.stringValue ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension,
            output: v["output"]?.stringValue ?? "out", steps: steps, baseDirectory: base.isEmpty ? "." : base,
            file: path)
    }

    /// Resolves a path written in the pipeline file.
    public func resolve(_ p: String) -> String { (FS.join(baseDirectory, p) as NSString).standardizingPath }

    public func stepDirectory(_ index: Int, output: String) -> String {
        FS.join(output, "\(String(index + 1).leftPadded(2))-\(steps[index].name)")
    }
}

/// What a step factory gets: its options, where the pipeline file is, and the previous step's directory.
public struct StepContext: Sendable {
    public var pipeline: Pipeline
    public var step: PipelineStep
    /// The previous step's output directory; nil for the first step.
    public var input: String?
    /// The step's 0-based index and the pipeline's output directory.
    public var index = 0
    public var output = ""

    public init(pipeline: Pipeline, step: PipelineStep, input: String?, index: Int = 0, output: String = "") {
        self.pipeline = pipeline
        self.step = step
        self.input = input
        self.index = index
        self.output = output
    }
    /// "FILE:LINE step NAME", for error messages.
    public var location: String { "\(pipeline.file):\(step.line) step '\(step.name)'" }

    public func resolve(_ p: String) -> String { pipeline.resolve(p) }

    /// A path option that may name an earlier step's output instead of a file: `@NAME` is the latest earlier step
    /// of that name (`@generate`, `@train`), `@N` step N (1-based); anything else is a path relative to the file.
    /// `@NAME/SUB` is the folder SUB inside that step's output (a split's `@split/test`).
    public func resolveStep(_ p: String) throws -> String {
        guard p.hasPrefix("@") else { return resolve(p) }
        if let slash = p.firstIndex(of: "/") {
            let sub = String(p[p.index(after: slash)...])
            guard !sub.isEmpty, !sub.split(separator: "/").contains("..") else {
                throw LoomError("\(location): '\(p)': the folder after '/' must be inside the step's output")
            }
            return FS.join(try resolveStep(String(p[..<slash])), sub)
        }
        // Absolute, so a path resolved once stays the same when a step resolves it again.
        func absolute(_ d: String) -> String {
            (FS.join(FileManager.default.currentDirectoryPath, d) as NSString).standardizingPath
        }
        let ref = String(p.dropFirst())
        if let n = Int(ref) {
            guard n >= 1, n <= index else { throw LoomError("\(location): '\(p)' does not name an earlier step (1...\(index))") }
            return absolute(pipeline.stepDirectory(n - 1, output: output))
        }
        guard let i = (0..<index).last(where: { pipeline.steps[$0].name == ref }) else {
            throw LoomError("\(location): '\(p)': no earlier step is named '\(ref)'")
        }
        return absolute(pipeline.stepDirectory(i, output: output))
    }
}

public typealias StepFactory = @Sendable (StepContext) throws -> any Stage

public struct PipelineRunner {
    public var factories: [String: StepFactory]
    public init(factories: [String: StepFactory]) { self.factories = factories }

    /// Builds every step first (so a typo in step 5 fails before step 1 runs), then runs them in order.
    /// Returns the results; stops at the first step that failed.
    public func run(_ pipeline: Pipeline, output: String? = nil, options: RunOptions = RunOptions()) throws
        -> [StageResult]
    {
        let out = output ?? pipeline.resolve(pipeline.output)
        var stages: [(any Stage, String)] = []
        for (i, step) in pipeline.steps.enumerated() {
            guard let make = factories[step.name] else {
                throw LoomError(
                    "\(pipeline.file):\(step.line): unknown step '\(step.name)' (known: \(factories.keys.sorted().joined(separator: ", ")))"
                )
            }
            var input = i == 0 ? nil : pipeline.stepDirectory(i - 1, output: out)
            var step = step
            // Any step may read an earlier step other than the previous one: `input: "@generate"` or `input: "@3"`.
            let here = StepContext(pipeline: pipeline, step: step, input: nil, index: i, output: out)
            if case .object(var o) = step.options, let ref = o["input"]?.stringValue, ref.hasPrefix("@") {
                input = try here.resolveStep(ref)
                o["input"] = nil
                step.options = .object(o)
            }
            // Every other option written `@NAME` / `@N` (at any depth: merge's `models: [{model: "@train"}]`) becomes
            // that step's directory.
            step.options = try PipelineRunner.resolveReferences(step.options, here)
            let stage = try make(StepContext(pipeline: pipeline, step: step, input: input, index: i, output: out))
            stages.append((stage, pipeline.stepDirectory(i, output: out)))
        }
        var results: [StageResult] = []
        for (i, (stage, dir)) in stages.enumerated() {
            Log.info("step \(i + 1)/\(stages.count): \(pipeline.steps[i].name) -> \(dir)")
            let r = try StageRunner.run(stage, directory: dir, options: options)
            results.append(r)
            if r.failed {
                throw LoomError(
                    "step \(i + 1) (\(pipeline.steps[i].name)) finished with errors: \(r.manifest.errors.joined(separator: "; ")). What it wrote is in \(dir); fix the input and run again."
                )
            }
        }
        return results
    }
}

extension PipelineRunner {
    /// `v` with every string `@NAME` / `@N` (at any depth) replaced by that earlier step's directory.
    public static func resolveReferences(_ v: JSONValue, _ ctx: StepContext) throws -> JSONValue {
        switch v {
        case .string(let s) where s.hasPrefix("@") && s.count > 1:
            return .string(try ctx.resolveStep(s))
        case .array(let a):
            return .array(try a.map { try resolveReferences($0, ctx) })
        case .object(let o):
            return .object(JSONObject(try o.map { ($0.key, try resolveReferences($0.value, ctx)) }))
        default:
            return v
        }
    }
}

extension JSONValue {
    /// Converts a YAML node (keys kept in order) to JSON.
    public init(yaml node: Node, file: String) throws {
        switch node {
        case .scalar:
            let v = node.any
            if v is NSNull {
                self = .null
            } else if let b = v as? Bool {
                self = .bool(b)
            } else if let i = v as? Int {
                self = .int(i)
            } else if let d = v as? Double {
                self = .double(d)
            } else {
                self = .string(node.string ?? "\(v)")
            }
        case .sequence(let s):
            self = .array(try s.map { try JSONValue(yaml: $0, file: file) })
        case .mapping(let m):
            var o = JSONObject()
            for (k, v) in m {
                guard let key = k.string else {
                    throw LoomError("\(file):\(k.mark?.line ?? 0): mapping keys must be strings")
                }
                o[key] = try JSONValue(yaml: v, file: file)
            }
            self = .object(o)
        case .alias:
            throw LoomError("\(file):\(node.mark?.line ?? 0): YAML aliases are not supported in pipelines")
        }
    }
}
