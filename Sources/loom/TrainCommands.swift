// `loom train cpt|sft|dpo|orpo`: the built-in trainer on a records directory, writing a Hugging Face model directory.

import ArgumentParser
import Foundation
import LoomCore
import LoomTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a Llama-architecture model on a stage's records (Hugging Face layout out).",
        discussion: """
            cpt  continued pre-training: causal LM over text records or packed
                 windows from 'loom pack' (documents never attend to each other)
            sft  supervised fine-tuning over conversations ('messages', or
                 instruction/input/output), loss on the assistant's tokens only
            dpo  direct preference optimisation over prompt/chosen/rejected
                 pairs ('loom generate preference'), sigmoid loss with --beta;
                 reference log-probabilities computed once before training
            orpo odds-ratio preference optimisation over the same pairs,
                 --lambda, no reference model

            The output directory opens in transformers (config.json,
            model.safetensors, tokenizer.json when a tokenizer was given) and
            holds metrics.jsonl, loss.svg and checkpoints/. A killed run
            resumes from its newest checkpoint when run again.

            Examples:
              loom train cpt out/pack -o out/cpt --preset tiny --steps 300
              loom train sft out/rc -o out/sft --model out/cpt --steps 200
              loom train dpo out/pref -o out/dpo --model out/sft --beta 0.1
              loom train orpo out/pref -o out/orpo --model out/cpt --lambda 0.1
            """,
        subcommands: [TrainCPT.self, TrainSFT.self, TrainDPO.self, TrainORPO.self])
}

/// The options `loom train` subcommands share (the same keys, in snake_case, as the pipeline's train step).
struct TrainOptions: ParsableArguments {
    @Argument(help: "A finished stage directory of records.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "A model preset for a fresh model: \(LlamaConfig.presets.joined(separator: ", ")) (default tiny).")
    var preset: String?

    @Option(help: "A Hugging Face model directory to continue training (config.json + model.safetensors).")
    var model: String?

    @Option(help: "A config.json for a fresh model of any Llama shape.")
    var modelConfig: String?

    @Option(help: "A tokenizer.json (default: the model directory's, else a byte-level vocabulary).")
    var tokenizer: String?

    @Option(help: "Optimiser steps.")
    var steps = 200

    @Option(help: "Rows (sequences) per micro-batch.")
    var batchSize = 8

    @Option(help: "Tokens per row (dpo/orpo: per sequence, prompt + completion; a row holds two).")
    var seqLen = 256

    @Option(help: "Micro-batches per optimiser step (gradient accumulation).")
    var gradAccum = 1

    @Option(help: "Peak learning rate.")
    var lr = 1e-3

    @Option(help: "Warmup steps (default: a tenth of the steps, at most 100).")
    var warmup: Int?

    @Option(help: "Learning rate at the last step, as a fraction of the peak (cosine decay).")
    var minLrRatio = 0.1

    @Option(help: "AdamW weight decay (matrices only; norms are not decayed).")
    var weightDecay = 0.1

    @Option(help: "Clip the global gradient norm to this (0: off).")
    var gradClip = 1.0

    @Option(help: "Fraction of rows held out for evaluation (loss and perplexity).")
    var evalFraction = 0.05

    @Option(help: "Evaluate every N steps (and at the end).")
    var evalEvery = 50

    @Option(help: "Write a checkpoint every N steps (0: never).")
    var checkpointEvery = 100

    @Option(help: "Checkpoints kept (the newest).")
    var keepCheckpoints = 2

    @Option(help: "Seed for initialisation, data order and the evaluation split.")
    var seed = 1

    @Option(help: "Train LoRA adapters of this rank instead of every weight (the base is frozen; PEFT files out).")
    var loraRank: Int?

    @Option(help: "LoRA alpha (the update is scaled by alpha / rank; default 2 x rank).")
    var loraAlpha: Double?

    @Option(help: "Dropout on the LoRA adapters' inputs.")
    var loraDropout = 0.0

    @Option(help: "Projections that get adapters, comma-separated (q,k,v,o,gate,up,down).")
    var loraTargets = "q,k,v,o,gate,up,down"

    @Option(help: ArgumentHelp(
        "The chat template for conversations: a name in templates/chat (chatml, llama3, gemma) or a .json file.",
        discussion: "Default: the one the tokenizer's vocabulary was made for: gemma where it has <start_of_turn>, llama3 where it has <|start_header_id|>, else chatml."))
    var chatTemplate: String?

    @Option(help: "Threads (default: the number of cores).")
    var jobs: Int?

    func config(objective: String) -> TrainConfig {
        var c = TrainConfig()
        c.objective = objective
        c.model = model
        c.modelConfig = modelConfig
        c.preset = preset ?? (model == nil && modelConfig == nil ? "tiny" : nil)
        c.steps = steps
        c.batchSize = batchSize
        c.seqLen = seqLen
        c.gradAccum = gradAccum
        c.lr = lr
        c.warmup = warmup
        c.minLrRatio = minLrRatio
        c.weightDecay = weightDecay
        c.gradClip = gradClip
        c.evalFraction = evalFraction
        c.evalEvery = evalEvery
        c.checkpointEvery = checkpointEvery
        c.keepCheckpoints = keepCheckpoints
        c.seed = seed
        c.loraRank = loraRank
        c.loraAlpha = loraAlpha
        c.loraDropout = loraDropout
        c.loraTargets = list(loraTargets).map { Projection(name: $0)?.rawValue ?? $0 }
        c.chatTemplate = chatTemplate
        return c
    }

    func run(objective: String, adjust: (inout TrainConfig) -> Void = { _ in }) throws {
        var c = config(objective: objective)
        adjust(&c)
        try runStage({ try TrainStage(config: c, input: input, threads: jobCount(jobs), tokenizer: tokenizer) }, options: stage)
    }
}

struct TrainCPT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpt", abstract: "Continued pre-training: causal LM over text records or packed windows.")
    @OptionGroup var options: TrainOptions
    func run() throws { try options.run(objective: "cpt") }
}

struct TrainSFT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft", abstract: "Supervised fine-tuning over conversations, loss on assistant tokens only.")
    @OptionGroup var options: TrainOptions
    func run() throws { try options.run(objective: "sft") }
}

struct TrainDPO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpo", abstract: "DPO (sigmoid loss) over prompt/chosen/rejected pairs, loss on completion tokens.",
        discussion: """
            Records: TRL's preference format, prompt/chosen/rejected as strings
            or as message lists (the chat template renders them; the prompt may
            be left out when chosen and rejected are conversations sharing it).
            The reference model (--ref-model, default the starting --model)
            gives each sequence's log-probability once, before training, into
            reference_logps.jsonl; it is not held while training. Pairs pack
            several to a row without changing the loss. metrics.jsonl adds
            rewards/chosen, rewards/rejected, rewards/margins and
            rewards/accuracies.

            Example:
              loom train dpo out/pref -o out/dpo --model out/sft --beta 0.1 --lr 5e-5
            """)
    @OptionGroup var options: TrainOptions

    @Option(help: "β: how far the policy may move from the reference (TRL's default 0.1).")
    var beta = 0.1

    @Option(help: "The reference model directory (default: the starting model).")
    var refModel: String?

    func run() throws {
        try options.run(objective: "dpo") {
            $0.beta = beta
            $0.refModel = refModel
        }
    }
}

struct TrainORPO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orpo", abstract: "ORPO over prompt/chosen/rejected pairs: NLL of chosen plus an odds-ratio term.",
        discussion: """
            Same records as dpo, no reference model. The loss is
            NLL(chosen) − λ·log σ(log odds ratio of the average completion
            log-probabilities). --orpo-nll full (the default, as TRL 1.16)
            takes the NLL over the whole chosen sequence, prompt included;
            completion takes it over the completion only (the paper).
            metrics.jsonl adds nll_loss, log_odds_ratio, log_odds_chosen and
            rewards/margins, rewards/accuracies.

            Example:
              loom train orpo out/pref -o out/orpo --model out/cpt --lambda 0.1
            """)
    @OptionGroup var options: TrainOptions

    @Option(help: "λ: the weight of the odds-ratio term (TRL's beta, default 0.1).")
    var lambda = 0.1

    @Option(help: "The chosen NLL over 'full' sequences (prompt included) or 'completion' tokens only.")
    var orpoNll = "full"

    func run() throws {
        try options.run(objective: "orpo") {
            $0.lambda = lambda
            $0.orpoNll = orpoNll
        }
    }
}

extension Steps {
    /// `train: { objective: cpt|sft|dpo|orpo, preset: tiny, steps: 200, model: "@train", input: "@generate", tokenizer: ... }`
    static let train: StepFactory = { ctx in
        var o = ctx.step.options.objectValue ?? JSONObject()
        let inputRef = o["input"]?.stringValue
        let tokenizer = o["tokenizer"]?.stringValue
        let jobs = o["jobs"]?.intValue
        for k in ["input", "tokenizer", "jobs"] { o[k] = nil }
        var c = try JSONValue.object(o).decode(
            TrainConfig.self, allowedKeys: TrainConfig.keys, context: ctx.location)
        if let m = c.model { c.model = try ctx.resolveStep(m) }
        if let m = c.refModel { c.refModel = try ctx.resolveStep(m) }
        if let m = c.modelConfig { c.modelConfig = ctx.resolve(m) }
        let input = try inputRef.map { try ctx.resolveStep($0) } ?? ctx.input
        guard let input else { throw LoomError("\(ctx.location): train needs a step before it or 'input: @STEP'") }
        do {
            return try TrainStage(
                config: c, input: input, threads: jobs ?? jobCount(nil),
                tokenizer: try tokenizer.map { t in
                    let p = try ctx.resolveStep(t)
                    return FS.isDirectory(p) ? FS.join(p, "tokenizer.json") : p
                })
        } catch let e as LoomError {
            throw LoomError("\(ctx.location): \(e.message)")
        }
    }
}
