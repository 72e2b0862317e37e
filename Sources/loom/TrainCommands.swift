// `loom train cpt|sft`: the built-in trainer on a records directory, writing a Hugging Face model directory.

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

            The output directory opens in transformers (config.json,
            model.safetensors, tokenizer.json when a tokenizer was given) and
            holds metrics.jsonl, loss.svg and checkpoints/. A killed run
            resumes from its newest checkpoint when run again.

            Examples:
              loom train cpt out/pack -o out/cpt --preset tiny --steps 300
              loom train sft out/rc -o out/sft --model out/cpt --steps 200
            """,
        subcommands: [TrainCPT.self, TrainSFT.self])
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

    @Option(help: "Tokens per row.")
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
        return c
    }

    func run(objective: String) throws {
        let c = config(objective: objective)
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

extension Steps {
    /// `train: { objective: cpt|sft, preset: tiny, steps: 200, model: "@train", input: "@generate", tokenizer: ... }`
    static let train: StepFactory = { ctx in
        var o = ctx.step.options.objectValue ?? JSONObject()
        let inputRef = o["input"]?.stringValue
        let tokenizer = o["tokenizer"]?.stringValue
        let jobs = o["jobs"]?.intValue
        for k in ["input", "tokenizer", "jobs"] { o[k] = nil }
        var c = try JSONValue.object(o).decode(
            TrainConfig.self, allowedKeys: TrainConfig.keys, context: ctx.location)
        if let m = c.model { c.model = try ctx.resolveStep(m) }
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
