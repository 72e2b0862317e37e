// The pipeline steps `loom run` knows, built from their YAML options. Each step takes the same options as its
// subcommand, in snake_case.

import LoomCore
import LoomDedup
import LoomEval
import LoomFilter
import LoomGenerate
import LoomIngest
import LoomPack
import LoomTrain
import LoomTokenizer

enum Steps {
    static func factories(jobs: Int) -> [String: StepFactory] {
        [
            "ingest": { ctx in
                let kind = ctx.step.options["kind"]?.stringValue ?? ""
                switch kind {
                case "pubmed":
                    var c = try ctx.step.options.decode(
                        PubMedIngestConfig.self, allowedKeys: PubMedIngestConfig.keys, context: ctx.location)
                    c.paths = c.paths.map(ctx.resolve)
                    let j = ctx.step.options["jobs"]?.intValue ?? jobs
                    return try PubMedIngestStage(config: c, jobs: j)
                case "pdf":
                    var c = try ctx.step.options.decode(
                        PDFIngestConfig.self, allowedKeys: PDFIngestConfig.keys, context: ctx.location)
                    c.paths = c.paths.map(ctx.resolve)
                    let j = ctx.step.options["jobs"]?.intValue ?? jobs
                    do {
                        return try PDFIngestStage(config: c, jobs: j)
                    } catch let e as LoomError {
                        throw LoomError("\(ctx.location): \(e.message)")
                    }
                case "verilog":
                    return try VerilogSteps.ingest(ctx)
                default:
                    throw LoomError("\(ctx.location): unknown ingest kind '\(kind)' (available: pubmed, pdf, verilog)")
                }
            },
            "verilog": { ctx in try VerilogSteps.tasks(ctx, jobs: jobs) },
            "chunk": { ctx in
                let c = try ctx.step.options.decode(ChunkConfig.self, allowedKeys: ChunkConfig.keys, context: ctx.location)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): chunk needs a step before it") }
                return try ChunkStage(config: c, input: input)
            },
            "generate": { ctx in
                let method = ctx.step.options["method"]?.stringValue ?? "rc"
                guard ["rc", "qa", "evolve", "preference"].contains(method) else {
                    throw LoomError(
                        "\(ctx.location): unknown generate method '\(method)' (available: rc, qa, evolve, preference)")
                }
                if method == "evolve" || method == "preference" {
                    var o = ctx.step.options
                    var extra: [String: JSONValue] = [:]
                    if case .object(var obj) = o {
                        for k in ["rounds", "judge", "rejected", "input"] {
                            if let v = obj[k] { extra[k] = v; obj[k] = nil }
                        }
                        o = .object(obj)
                    }
                    let qa = try QAConfig.from(o, context: ctx.location, resolve: ctx.resolveStep)
                    // `input: "@generate"` reads an earlier step's samples instead of the previous step's output.
                    guard let input = try extra["input"]?.stringValue.map({ try ctx.resolveStep($0) }) ?? ctx.input else {
                        throw LoomError("\(ctx.location): generate needs a step before it or 'input: @STEP'")
                    }
                    let templates = ctx.step.options["templates"]?.stringValue.map(ctx.resolve)
                    if method == "evolve" {
                        var c = EvolveConfig()
                        c.qa = qa
                        c.rounds = extra["rounds"]?.intValue ?? 1
                        c.judge = extra["judge"]?.stringValue ?? "backend"
                        c.seed = qa.openai.seed ?? 1
                        return try EvolveStage(config: c, input: input, templates: templates)
                    }
                    var c = PreferenceConfig()
                    c.qa = qa
                    c.rejected = extra["rejected"]?.stringValue ?? "distractor"
                    c.seed = qa.openai.seed ?? 1
                    return try PreferenceStage(config: c, input: input, templates: templates)
                }
                if method == "qa" {
                    let c = try QAConfig.from(ctx.step.options, context: ctx.location, resolve: ctx.resolveStep)
                    guard let input = ctx.input else {
                        throw LoomError("\(ctx.location): generate needs a step before it")
                    }
                    let templates = ctx.step.options["templates"]?.stringValue.map(ctx.resolve)
                    return try QAStage(config: c, input: input, templates: templates)
                }
                let c = try ctx.step.options.decode(RCConfig.self, allowedKeys: RCConfig.keys, context: ctx.location)
                guard let input = ctx.input else {
                    throw LoomError("\(ctx.location): generate needs a step before it")
                }
                let templates = ctx.step.options["templates"]?.stringValue.map(ctx.resolve)
                return try RCStage(config: c, input: input, templates: templates)
            },
            "embed": { ctx in
                var c = try ctx.step.options.decode(EmbedConfig.self, allowedKeys: EmbedConfig.keys, context: ctx.location)
                c.model = c.model.map(ctx.resolve)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): embed needs a step before it") }
                do { return try EmbedStage(config: c, input: input, jobs: ctx.step.options["jobs"]?.intValue ?? jobs) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "cluster": { ctx in
                var c = try ctx.step.options.decode(ClusterConfig.self, allowedKeys: ClusterConfig.keys, context: ctx.location)
                c.model = c.model.map(ctx.resolve)
                c.tokenizer = c.tokenizer.map(ctx.resolve)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): cluster needs a step before it") }
                let j = ctx.step.options["jobs"]?.intValue ?? jobs
                do { return try ClusterStage(config: c, input: input, jobs: j) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "tokenizer": { ctx in
                var c = try ctx.step.options.decode(
                    TokenizerTrainConfig.self, allowedKeys: TokenizerTrainConfig.keys, context: ctx.location)
                c.paths = c.paths.map(ctx.resolve)
                do { return try TokenizerTrainStage(config: c, input: ctx.input) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "pack": { ctx in
                var c = try ctx.step.options.decode(PackConfig.self, allowedKeys: PackConfig.keys, context: ctx.location)
                c.tokenizer = c.tokenizer.map(ctx.resolve)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): pack needs a step before it") }
                do { return try PackStage(config: c, input: input) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "merge": { ctx in try Steps.merge(ctx) },
            "report": ReportSteps.step,
            "eval": EvalSteps.eval,
            "train": Steps.train,
            "sample": { ctx in
                var c = try ctx.step.options.decode(SampleConfig.self, allowedKeys: SampleConfig.keys + ["jobs"], context: ctx.location)
                c.model = try ctx.resolveStep(c.model)
                c.adapter = try c.adapter.map { try ctx.resolveStep($0) }
                do { return try SampleStage(config: c, threads: ctx.step.options["jobs"]?.intValue ?? jobs) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "export": { ctx in
                var c = try ctx.step.options.decode(ExportConfig.self, allowedKeys: ExportConfig.keys, context: ctx.location)
                c.model = try ctx.resolveStep(c.model)
                c.adapter = try c.adapter.map { try ctx.resolveStep($0) }
                do { return try ExportStage(config: c) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "combine": { ctx in
                let o = ctx.step.options.objectValue ?? JSONObject()
                for k in o.keys where k != "inputs" {
                    throw LoomError("\(ctx.location): unknown option '\(k)' (allowed: inputs)")
                }
                guard let refs = o["inputs"]?.arrayValue?.compactMap(\.stringValue), !refs.isEmpty else {
                    throw LoomError("\(ctx.location): combine needs 'inputs: [\"@1\", \"@ingest\", ...]'")
                }
                return try CombineStage(directories: refs.map { try ctx.resolveStep($0) })
            },
            "split": { ctx in
                var c = try ctx.step.options.decode(SplitConfig.self, allowedKeys: SplitConfig.keys, context: ctx.location)
                c.duplicates = try c.duplicates.map { try ctx.resolveStep($0) }
                guard let input = ctx.input else { throw LoomError("\(ctx.location): split needs a step before it") }
                do { return try SplitStage(config: c, input: input) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "filter": { ctx in
                var o = ctx.step.options
                if case .object(var obj) = o, var d = obj["domain"]?.objectValue {
                    if let s = d["seeds"]?.stringValue { d["seeds"] = .string(try ctx.resolveStep(s)) }
                    if let m = d["model"]?.stringValue { d["model"] = .string(ctx.resolve(m)) }
                    obj["domain"] = .object(d)
                    o = .object(obj)
                }
                // `input: "@STEP"` filters an earlier step's records instead of the previous step's.
                var given: String?
                if case .object(var obj) = o, let i = obj["input"]?.stringValue {
                    given = try ctx.resolveStep(i)
                    obj["input"] = nil
                    o = .object(obj)
                }
                let c = try FilterConfig.from(o, context: ctx.location)
                guard let input = given ?? ctx.input else {
                    throw LoomError("\(ctx.location): filter needs a step before it or 'input: @STEP'")
                }
                let j = ctx.step.options["jobs"]?.intValue ?? jobs
                do {
                    return try FilterStage(config: c, input: input, embedder: try FilterCommand.embedder(c), jobs: j)
                } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "tasks": { ctx in
                let c = try ctx.step.options.decode(TasksConfig.self, allowedKeys: TasksConfig.keys, context: ctx.location)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): tasks needs a step before it") }
                let templates = ctx.step.options["templates"]?.stringValue.map(ctx.resolve)
                do { return try TasksStage(config: c, input: input, templates: templates) } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
            "dedup": { ctx in
                let c = try ctx.step.options.decode(
                    DedupConfig.self, allowedKeys: DedupConfig.keys + ["inputs"], context: ctx.location)
                let given = (ctx.step.options["inputs"]?.arrayValue ?? []).compactMap(\.stringValue).map(ctx.resolve)
                guard let paths = given.isEmpty ? ctx.input.map({ [$0] }) : given else {
                    throw LoomError("\(ctx.location): the first dedup step needs 'inputs: [FILES]'")
                }
                let j = ctx.step.options["jobs"]?.intValue ?? jobs
                do {
                    return try DedupStage(config: c, paths: paths, jobs: j, pending: given.isEmpty)
                } catch let e as LoomError {
                    throw LoomError("\(ctx.location): \(e.message)")
                }
            },
        ]
    }
}
