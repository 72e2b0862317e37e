// `loom train cpt|sft`: a stage that reads a records directory (text records, conversations, or `loom pack`
// windows) and writes a model directory in the Hugging Face layout:
//   config.json, model.safetensors      the trained model (transformers' LlamaForCausalLM opens it)
//   metrics.jsonl, loss.svg             loss, learning rate, gradient norm per step; eval loss and perplexity
//   checkpoints/step-NNNNNN/            weights + optimizer.safetensors + trainer_state.json, for exact resume
//   manifest.json, rejects.jsonl        as every stage
// A killed run resumes from its newest checkpoint when run again with the same options and inputs.

import Foundation
import LoomCore
import LoomTensor

public struct TrainConfig: Codable, Equatable, Sendable {
    public var objective = "cpt"
    /// A preset (`tiny`, `small`) for a freshly initialised model, sized to the tokenizer's vocabulary.
    public var preset: String? = "tiny"
    /// A Hugging Face model directory to continue training (config.json + model.safetensors).
    public var model: String?
    /// A config.json for a freshly initialised model of any Llama shape.
    public var modelConfig: String?
    public var steps = 200
    public var batchSize = 8
    public var seqLen = 256
    public var gradAccum = 1
    public var lr = 1e-3
    public var warmup: Int?
    public var minLrRatio = 0.1
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var gradClip = 1.0
    public var evalFraction = 0.05
    public var evalEvery = 50
    public var checkpointEvery = 100
    public var keepCheckpoints = 2
    public var seed = 1
    /// LoRA: adapters of this rank on `loraTargets`, the base frozen (nil: full fine-tuning).
    public var loraRank: Int?
    public var loraAlpha: Double?
    public var loraDropout = 0.0
    public var loraTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    /// DPO's β (default 0.1).
    public var beta: Double?
    /// ORPO's λ, the weight of the odds-ratio term (default 0.1).
    public var lambda: Double?
    /// DPO: the reference model directory (default: the starting model).
    public var refModel: String?
    /// ORPO: the chosen NLL over `full` sequences, prompt included (TRL 1.16, the default), or `completion` only.
    public var orpoNll: String?
    /// The chat template (templates/chat NAME or a .json file); nil: the one the tokenizer was made for.
    public var chatTemplate: String?

    public init() {}

    var loraConfig: LoRAConfig? {
        guard let r = loraRank else { return nil }
        return LoRAConfig(
            rank: r, alpha: loraAlpha ?? Double(2 * r), dropout: loraDropout,
            targets: Projection.allCases.filter { p in loraTargets.contains { Projection(name: $0) == p } },
            seed: UInt64(truncatingIfNeeded: seed))
    }

    public static let keys = [
        "objective", "preset", "model", "model_config", "steps", "batch_size", "seq_len", "grad_accum", "lr", "warmup",
        "min_lr_ratio", "weight_decay", "beta1", "beta2", "grad_clip", "eval_fraction", "eval_every",
        "checkpoint_every", "keep_checkpoints", "seed", "beta", "lambda", "ref_model", "orpo_nll", "lora_rank",
        "lora_alpha", "lora_dropout", "lora_targets", "chat_template",
    ]

    enum CodingKeys: String, CodingKey {
        case objective, preset, model, modelConfig, steps, batchSize, seqLen, gradAccum, lr, warmup, minLrRatio,
            weightDecay, beta1, beta2, gradClip, evalFraction, evalEvery, checkpointEvery, keepCheckpoints, seed,
            loraRank, loraAlpha, loraDropout, loraTargets
        case beta, lambda, refModel, orpoNll, chatTemplate
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainConfig()
        objective = try c.decodeIfPresent(String.self, forKey: .objective) ?? d.objective
        model = try c.decodeIfPresent(String.self, forKey: .model)
        modelConfig = try c.decodeIfPresent(String.self, forKey: .modelConfig)
        preset = try c.decodeIfPresent(String.self, forKey: .preset) ?? (model == nil && modelConfig == nil ? "tiny" : nil)
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen) ?? d.seqLen
        gradAccum = try c.decodeIfPresent(Int.self, forKey: .gradAccum) ?? d.gradAccum
        lr = try c.decodeIfPresent(Double.self, forKey: .lr) ?? d.lr
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup)
        minLrRatio = try c.decodeIfPresent(Double.self, forKey: .minLrRatio) ?? d.minLrRatio
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        beta1 = try c.decodeIfPresent(Double.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Double.self, forKey: .beta2) ?? d.beta2
        gradClip = try c.decodeIfPresent(Double.self, forKey: .gradClip) ?? d.gradClip
        evalFraction = try c.decodeIfPresent(Double.self, forKey: .evalFraction) ?? d.evalFraction
        evalEvery = try c.decodeIfPresent(Int.self, forKey: .evalEvery) ?? d.evalEvery
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        keepCheckpoints = try c.decodeIfPresent(Int.self, forKey: .keepCheckpoints) ?? d.keepCheckpoints
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? d.seed
        loraRank = try c.decodeIfPresent(Int.self, forKey: .loraRank)
        loraAlpha = try c.decodeIfPresent(Double.self, forKey: .loraAlpha)
        loraDropout = try c.decodeIfPresent(Double.self, forKey: .loraDropout) ?? d.loraDropout
        loraTargets = try c.decodeIfPresent([String].self, forKey: .loraTargets) ?? d.loraTargets
        beta = try c.decodeIfPresent(Double.self, forKey: .beta)
        lambda = try c.decodeIfPresent(Double.self, forKey: .lambda)
        refModel = try c.decodeIfPresent(String.self, forKey: .refModel)
        orpoNll = try c.decodeIfPresent(String.self, forKey: .orpoNll)
        chatTemplate = try c.decodeIfPresent(String.self, forKey: .chatTemplate)
    }

    /// Checks values before any work; messages name the option.
    public func validate() throws {
        func need(_ ok: Bool, _ why: String) throws { if !ok { throw LoomError("train: \(why)") } }
        try need(Objective(rawValue: objective) != nil, "objective must be cpt or sft (token objectives) or dpo or orpo (preference pairs); got '\(objective)'")
        try need(beta == nil || objective == "dpo", "beta is DPO's (objective dpo)")
        try need(refModel == nil || objective == "dpo", "ref_model is DPO's (objective dpo)")
        try need(lambda == nil && orpoNll == nil || objective == "orpo", "lambda and orpo_nll are ORPO's (objective orpo)")
        try need((beta ?? 0.1) > 0, "beta must be positive")
        try need((lambda ?? 0.1) >= 0, "lambda must not be negative")
        try need(["full", "completion"].contains(orpoNll ?? "full"), "orpo_nll must be full or completion (got '\(orpoNll ?? "")')")
        try need(steps > 0, "steps must be positive")
        try need(batchSize > 0 && gradAccum > 0, "batch_size and grad_accum must be positive")
        try need(seqLen >= 8, "seq_len must be at least 8")
        try need(lr > 0, "lr must be positive")
        try need(evalFraction >= 0 && evalFraction < 0.5, "eval_fraction must be in [0, 0.5)")
        try need([preset != nil, model != nil, modelConfig != nil].filter { $0 }.count == 1,
            "give exactly one of preset, model (a directory to continue from) or model_config")
        if let r = loraRank {
            try need(r > 0, "lora_rank must be positive")
            try need(loraDropout >= 0 && loraDropout < 1, "lora_dropout must be in [0, 1)")
            for t in loraTargets {
                try need(Projection(name: t) != nil,
                    "unknown LoRA target '\(t)' (available: \(Projection.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            try need(!loraTargets.isEmpty, "lora_targets is empty")
        }
        if let p = preset {
            try need(LlamaConfig.presets.contains(p), "unknown preset '\(p)' (available: \(LlamaConfig.presets.joined(separator: ", ")))")
        }
    }

    var settings: TrainSettings {
        var s = TrainSettings()
        s.steps = steps
        s.batchSize = batchSize
        s.gradAccum = gradAccum
        s.lr = lr
        s.warmup = warmup ?? min(100, steps / 10)
        s.minLRRatio = minLrRatio
        s.gradClip = gradClip
        s.adam = AdamWSettings(beta1: Float(beta1), beta2: Float(beta2), eps: 1e-8, weightDecay: Float(weightDecay))
        s.evalEvery = evalEvery
        s.checkpointEvery = checkpointEvery
        s.keepCheckpoints = keepCheckpoints
        s.seed = UInt64(truncatingIfNeeded: seed)
        return s
    }
}

public struct TrainStage: Stage {
    public let settings: TrainConfig
    public let input: String
    public let threads: Int
    /// A tokenizer.json; nil: the model directory's tokenizer.json when it has one, else the byte-level vocabulary.
    public let tokenizer: String?
    /// For tests: stop after this step as if killed.
    public var stopAfterStep: Int?

    public init(config: TrainConfig, input: String, threads: Int, tokenizer: String? = nil) throws {
        try config.validate()
        var config = config
        // A .gguf starting or reference model: its Hugging Face directory, imported once into the cache.
        config.model = try config.model.map { try GGUFImport.modelDirectory($0) }
        config.refModel = try config.refModel.map { try GGUFImport.modelDirectory($0) }
        settings = config
        self.input = input
        self.threads = threads
        self.tokenizer = tokenizer
    }

    /// The tokenizer file in use (resolved when the stage runs: in a pipeline the model directory may not exist yet).
    var tokenizerFile: String? {
        if let t = tokenizer { return FS.isDirectory(t) ? FS.join(t, "tokenizer.json") : t }
        if let m = settings.model, FS.exists(FS.join(m, "tokenizer.json")) { return FS.join(m, "tokenizer.json") }
        return nil
    }

    func codec() throws -> TokenCodec {
        guard let t = tokenizerFile else { return ByteCodec() }
        guard FS.exists(t) else { throw LoomError("train: tokenizer \(t) does not exist") }
        return try TokenizerCodec.load(t)
    }

    public var name: String { "train-" + settings.objective }
    public var config: JSONValue {
        var j = (try? JSONValue(encoding: settings)) ?? .null
        if case .object(var o) = j {
            o.append("tokenizer", tokenizerFile.map { .string(SHA256.hex(((try? FS.readText($0)) ?? $0))) } ?? "bytes")
            if let m = settings.model, !FS.exists(FS.join(m, Manifest.fileName)) {
                // A starting model that is not a stage directory is identified by its weights' size and time (a
                // stage directory is an input, fingerprinted by its manifest).
                let id = FS.identity(FS.join(m, "model.safetensors"))
                o.append("model_identity", .string("\(id?.size ?? 0):\(id?.mtimeNs ?? 0)"))
            }
            if let m = settings.refModel, !FS.exists(FS.join(m, Manifest.fileName)) {
                let id = FS.identity(FS.join(m, "model.safetensors"))
                o.append("ref_model_identity", .string("\(id?.size ?? 0):\(id?.mtimeNs ?? 0)"))
            }
            j = .object(o)
        }
        return j
    }
    public var inputs: [StageInput] {
        [.stage(input)]
            + [settings.model, settings.refModel].compactMap { $0 }.filter { FS.exists(FS.join($0, Manifest.fileName)) }
            .map { .stage($0) }
    }
    public var sideFiles: [String] {
        (settings.loraRank == nil ? ["config.json", "model.safetensors"] : ["adapter_config.json", "adapter_model.safetensors"])
            + ["metrics.jsonl", "loss.svg"] + (tokenizerFile == nil ? [] : ["tokenizer.json"])
            + (settings.objective == "dpo" ? ["reference_logps.jsonl"] : [])
    }

    func makeModel(_ codec: TokenCodec) throws -> LlamaModel {
        if let dir = settings.model {
            let m = try LlamaModel.load(directory: dir)
            guard m.config.vocabSize >= codec.vocabSize else {
                throw LoomError("\(dir): the model's vocabulary (\(m.config.vocabSize)) is smaller than the tokenizer's (\(codec.vocabSize))")
            }
            return m
        }
        var c: LlamaConfig
        if let p = settings.modelConfig {
            c = try LlamaConfig.load(p)
            guard c.vocabSize >= codec.vocabSize else {
                throw LoomError("\(p): vocab_size \(c.vocabSize) is smaller than the tokenizer's \(codec.vocabSize)")
            }
        } else {
            c = LlamaConfig.preset(settings.preset ?? "tiny", vocabSize: codec.vocabSize)!
        }
        c.maxPositions = max(c.maxPositions, settings.seqLen)
        c.bosTokenId = codec.bosId.map(Int.init)
        c.eosTokenId = Int(codec.eosId)
        c.padTokenId = Int(codec.padId)
        let m = try LlamaModel(config: c)
        m.initialize(seed: UInt64(settings.seed))
        return m
    }

    public func run(_ ctx: StageContext) throws {
        Compute.configure(threads: threads)
        let objective = Objective(rawValue: settings.objective)!
        let codec = try codec()
        let model = try makeModel(codec)
        if let lc = settings.loraConfig {
            model.lora = try LoRA(config: lc, model: model.config)
            model.trainBase = false
        }
        guard settings.seqLen <= model.config.maxPositions else {
            throw LoomError("train: seq_len \(settings.seqLen) exceeds the model's max_position_embeddings \(model.config.maxPositions)")
        }
        let chat = try settings.chatTemplate.map { try ChatFormat.named($0) } ?? ChatFormat.forVocabulary(codec)
        let builder = DatasetBuilder(codec: codec, objective: objective, length: settings.seqLen, chat: chat)
        var records: [(record: JSONValue, window: Bool)] = []
        var pairs: [PreferencePair] = []
        // A preference pair in an SFT input, or a conversation in a DPO/ORPO input, is a valid record for the other
        // objective (a Verilog step writes both kinds): counted and skipped, not rejected.
        var otherKind = 0, textInSFT = 0
        try StageReader(directory: input).forEachRecord(
            { r, path, line in
                let isPair = r["chosen"] != nil && r["rejected"] != nil
                if objective == .sft && isPair && r["messages"] == nil || objective.isPreference && !isPair && r["messages"] != nil {
                    otherKind += 1
                    return
                }
                if objective.isPreference {
                    switch builder.preferencePair(of: r) {
                    case .failure(let e):
                        try ctx.reject(Reject(source: path, reason: e.message, line: line, id: r["id"]?.stringValue))
                        return
                    case .success(let p): pairs.append(p)
                    }
                } else if case .failure(let e) = builder.segments(of: r) {
                    try ctx.reject(Reject(source: path, reason: e.message, line: line, id: r["id"]?.stringValue))
                    return
                }
                if objective == .sft, DatasetBuilder.messages(r) == nil, r["members"] == nil { textInSFT += 1 }
                records.append((r, r["members"] != nil))
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        let rows = objective.isPreference ? builder.preferenceRows(pairs) : builder.rows(records)
        guard rows.count >= 1 else {
            throw LoomError("train: \(input) has no usable records for \(objective.rawValue) (see rejects.jsonl)")
        }
        // Held-out rows: a seeded choice, at least one when there are 20 rows or more.
        var idx = Array(0..<rows.count)
        var rng = SplitMix64(seed: UInt64(settings.seed) &+ 0x5EED)
        for i in stride(from: idx.count - 1, to: 0, by: -1) { idx.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let nEval = rows.count >= 20 ? max(1, Int((Double(rows.count) * settings.evalFraction).rounded())) : 0
        let evalSet = Set(idx.prefix(settings.evalFraction > 0 ? nEval : 0))
        let train = (0..<rows.count).filter { !evalSet.contains($0) }.map { rows[$0] }
        let eval = (0..<rows.count).filter { evalSet.contains($0) }.map { rows[$0] }

        // Checkpoints are resumed only by a run with the same fingerprint: the same config and the same inputs,
        // the starting model's stage directory among them.
        let fp = ctx.fingerprint
        let trainer = try Trainer(
            model: model, data: builder, train: train, eval: eval, settings: settings.settings,
            checkpointDirectory: FS.join(ctx.directory, "checkpoints"), fingerprint: fp)
        trainer.stopAfterStep = stopAfterStep
        if objective.isPreference {
            trainer.objective = try preferenceObjective(objective, builder, model, rows, pairs, ctx, checkpoints: trainer.checkpointDirectory, fingerprint: fp)
        }
        let params = model.params.count
        Log.info(
            "train: \(objective.rawValue), \(Progress.count(params)) parameters, \(train.count) training rows and \(eval.count) held out of \(objective.isPreference ? "\(pairs.count) pairs, \(builder.preferenceRowLength)" : "\(settings.seqLen)") tokens, \(settings.steps) steps of \(settings.batchSize * settings.gradAccum) rows, \(threads) threads"
        )
        let progress = TrainProgress(total: settings.steps, quiet: ctx.options.quiet)
        try trainer.run { m in progress.update(m) }
        if let stop = stopAfterStep, trainer.step >= stop, trainer.step < settings.steps { throw LoomError("train: stopped at step \(stop) (test)") }
        progress.finish()

        let out = FS.join(ctx.workDirectory, "model")
        if let l = model.lora {
            try l.save(directory: out, baseModel: settings.model)
            try FS.rename(FS.join(out, "adapter_config.json"), ctx.sideFilePath("adapter_config.json"))
            try FS.rename(FS.join(out, "adapter_model.safetensors"), ctx.sideFilePath("adapter_model.safetensors"))
        } else {
            try model.save(directory: out)
            try FS.rename(FS.join(out, "config.json"), ctx.sideFilePath("config.json"))
            try FS.rename(FS.join(out, "model.safetensors"), ctx.sideFilePath("model.safetensors"))
        }
        try FS.writeAtomically(trainer.history.map { $0.json.jsonString + "\n" }.joined(), to: ctx.sideFilePath("metrics.jsonl"))
        try FS.writeAtomically(
            LossCurve.svg(trainer.history, title: "loom train \(objective.rawValue): \(Progress.count(params)) parameters"),
            to: ctx.sideFilePath("loss.svg"))
        if let t = tokenizerFile { try FS.writeAtomically(try FS.readText(t), to: ctx.sideFilePath("tokenizer.json")) }
        ctx.setCount("records", records.count)
        ctx.setCount("rows", rows.count)
        ctx.setCount("train_rows", train.count)
        ctx.setCount("eval_rows", eval.count)
        ctx.setCount("steps", trainer.step)
        ctx.setCount("parameters", params)
        if textInSFT > 0 {
            ctx.setCount("text_records", textInSFT)
            Log.info("train: \(textInSFT) records are plain text, not conversations: learned on every token, as continued pre-training does")
        }
        if otherKind > 0 {
            ctx.setCount("other_objective_records", otherKind)
            Log.info("train: \(otherKind) records are for another objective (\(objective.isPreference ? "conversations" : "preference pairs")) and were skipped")
        }
        ctx.setCount("trainable_parameters", trainer.trainable.count)
        ctx.setCount("tokens_seen", trainer.history.reduce(0) { $0 + $1.tokens })
        if let last = trainer.history.last { ctx.setValue("final_loss", .double(last.loss)) }
        if let e = trainer.history.last(where: { $0.evalLoss != nil })?.evalLoss {
            ctx.setValue("eval_loss", .double(e))
            if !objective.isPreference { ctx.setValue("eval_perplexity", .double(exp(e))) }
        }
        if objective.isPreference {
            ctx.setCount("pairs", pairs.count)
            ctx.setCount("truncated_pairs", pairs.filter(\.truncated).count)
            if let last = trainer.history.last {
                var o = JSONObject()
                for k in last.extra.keys.sorted() { o.append(k, .double(last.extra[k]!)) }
                ctx.setValue("final_metrics", .object(o))
            }
        }
        // Throughput goes to the log, not the manifest's counts, which stay the same from run to run.
        Log.info("train: \(Progress.count(Int(progress.tokensPerSecond))) tokens/s")
    }
}

extension TrainStage {
    /// DPO or ORPO over the rows. DPO's reference log-probabilities come first, from the reference model (the
    /// starting weights unless `ref_model` names another), and are written to reference_logps.jsonl and, for a
    /// resumed run, to checkpoints/reference_logps.safetensors (reused when the run's fingerprint matches, so the
    /// reference model is not even loaded again); the reference model is released before training starts.
    func preferenceObjective(
        _ objective: Objective, _ builder: DatasetBuilder, _ model: LlamaModel, _ rows: [Row], _ pairs: [PreferencePair],
        _ ctx: StageContext, checkpoints: String, fingerprint: String
    ) throws -> PreferenceObjective {
        guard objective == .dpo else {
            return PreferenceObjective(
                loss: .orpo(lambda: settings.lambda ?? 0.1, promptInNLL: (settings.orpoNll ?? "full") == "full"), data: builder)
        }
        let o = PreferenceObjective(loss: .dpo(beta: settings.beta ?? 0.1), data: builder)
        let stored = FS.join(checkpoints, "reference_logps.safetensors")
        if let saved = PreferenceObjective.loadReferences(stored, pairs: pairs, fingerprint: fingerprint) {
            o.references = saved
            Log.info("train: reference log-probabilities of \(pairs.count) pairs from \(stored)")
        } else {
            var ref = model
            if let dir = settings.refModel {
                ref = try LlamaModel.load(directory: dir)
                guard ref.config.vocabSize >= builder.codec.vocabSize else {
                    throw LoomError("\(dir): the reference model's vocabulary (\(ref.config.vocabSize)) is smaller than the tokenizer's (\(builder.codec.vocabSize))")
                }
            }
            Log.info("train: reference log-probabilities of \(pairs.count) pairs from \(settings.refModel ?? "the starting model")")
            o.references = PreferenceObjective.referenceLogps(model: ref, data: builder, rows: rows, batchSize: settings.batchSize)
            try FS.makeDirectory(checkpoints)
            try PreferenceObjective.saveReferences(o.references, pairs: pairs, fingerprint: fingerprint, to: stored)
        }
        var lines = ""
        for p in pairs {
            var j = JSONObject()
            j.append("chosen", .double(o.references[p.chosen] ?? 0))
            j.append("rejected", .double(o.references[p.rejected] ?? 0))
            j.append("chosen_tokens", .int(p.chosen.loss.filter { $0 }.count))
            j.append("rejected_tokens", .int(p.rejected.loss.filter { $0 }.count))
            lines += JSONValue.object(j).jsonString + "\n"
        }
        try FS.writeAtomically(lines, to: ctx.sideFilePath("reference_logps.jsonl"))
        return o
    }
}

/// Step, loss, tokens/s and ETA: a redrawn line on a terminal, a plain line every LOOM_PROGRESS_SECONDS (10)
/// otherwise.
final class TrainProgress {
    let total: Int
    let quiet: Bool
    let tty = isatty(2) != 0
    let start = Date()
    var lastDraw = Date.distantPast
    var tokens = 0
    var firstStep: Int?
    let interval: Double

    init(total: Int, quiet: Bool) {
        self.total = total
        self.quiet = quiet
        interval = tty ? 0.2 : (ProcessInfo.processInfo.environment["LOOM_PROGRESS_SECONDS"].flatMap(Double.init) ?? 10)
    }

    var tokensPerSecond: Double { Double(tokens) / max(1e-3, Date().timeIntervalSince(start)) }

    func update(_ m: StepMetrics) {
        if firstStep == nil { firstStep = m.step - 1 }
        tokens += m.tokens
        guard !quiet else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= interval || m.step == total || m.evalLoss != nil else { return }
        lastDraw = now
        let done = m.step - (firstStep ?? 0)
        let perStep = now.timeIntervalSince(start) / Double(max(1, done))
        var line = "[train] step \(m.step)/\(total)  loss \(String(format: "%.4f", m.loss))"
        if let e = m.evalLoss {
            line += "  eval \(String(format: "%.4f", e))" + (m.perplexity ? " (ppl \(String(format: "%.2f", exp(e))))" : "")
        }
        line += "  lr \(String(format: "%.2e", m.lr))  \(Progress.count(Int(tokensPerSecond))) tokens/s"
        if m.step < total { line += "  ETA \(Progress.duration(perStep * Double(total - m.step)))" }
        if tty && m.evalLoss == nil && m.step < total {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            FileHandle.standardError.write(Data(((tty ? "\r\u{1B}[K" : "") + line + "\n").utf8))
        }
    }

    func finish() {
        if tty && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
