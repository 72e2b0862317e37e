// `loom eval` and the pipeline step `eval`.

import ArgumentParser
import Foundation
import LoomCore
import LoomEval

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on held-out records: multiple choice, generation and perplexity.",
        discussion: """
            DATA is any mix of stage directories, folders of .jsonl files and
            .jsonl files. Each record is scored by what it holds, with the
            definitions lm-evaluation-harness uses:
              {"context", "choices", "gold"}  multiple choice: the
                  log-likelihood of " " + each choice after the context;
                  acc (the most likely choice is gold) and acc_norm (each
                  log-likelihood divided by the choice's length)
              {"messages": [...]}  generation: the model's greedy reply to the
                  turns before the last assistant turn, against that turn:
                  exact_match and f1 after SQuAD's normalisation
              {"text"}  perplexity over the whole set: per token, per byte,
                  bits per byte and per word (so models with different
                  tokenizers compare)
            Records are grouped by their "task" field (loom tasks sets it).
            OUT/metrics.json has every figure with a 95% bootstrap interval;
            OUT/items.jsonl every item's score. Items of a kind run in one
            batch: several log-likelihood requests share a forward pass.

            Examples:
              loom tasks rct out/split/test -o out/rct
              loom eval .build/models/gemma-3-270m-q4_k_m.gguf out/rct out/split/test -o out/eval-base
              loom eval MODEL out/rct --adapter out/train-rc -o out/eval-rc --fewshot 3 --fewshot-from out/rct-train
            """)

    @Argument(help: "The model: a Hugging Face directory, a train step's output, or a .gguf file.")
    var model: String

    @Argument(help: "The evaluation records (stage directories, folders of .jsonl, .jsonl files).")
    var data: [String]

    @Option(help: "A LoRA adapter directory (PEFT layout, e.g. a 'train' step with lora_rank) folded into the model.")
    var adapter: String?

    @Option(help: "Longest input a request may have in tokens (default: the model's context, at most 2048).")
    var maxLength: Int?

    @Option(help: "Rows of packed requests per forward pass.")
    var rows = 1

    @Option(help: "Few-shot examples before each multiple-choice item (needs --fewshot-from).")
    var fewshot = 0

    @Option(help: "Where few-shot examples come from: the train side's items of the same task.")
    var fewshotFrom: String?

    @Option(help: "Most items per task (the first ones read).")
    var limit: Int?

    @Option(help: "Most tokens of a generated answer.")
    var maxTokens = 64

    @Option(help: "Start sequences with the tokenizer's beginning-of-text token: auto (when it has one), yes, no.")
    var bos = "auto"

    @Option(help: "Bootstrap resamples for the 95% intervals (0: none).")
    var resamples = 1000

    @Option(help: "Seed of the bootstrap and of the few-shot draws.")
    var seed = 1234

    @Option(help: "Generation requests decoded together.")
    var concurrency = 8

    @Option(help: "Threads (default: the core count).")
    var jobs: Int?

    @OptionGroup var options: StageOptions

    func run() throws {
        var c = EvalConfig()
        c.model = model
        c.data = data
        c.adapter = adapter
        c.maxLength = maxLength
        c.rows = rows
        c.fewshot = fewshot
        c.fewshotFrom = fewshotFrom
        c.limit = limit
        c.maxTokens = maxTokens
        c.bos = bos
        c.resamples = resamples
        c.seed = seed
        c.concurrency = concurrency
        try runStage({ try EvalStage(config: c, threads: jobCount(jobs)) }, options: options)
    }
}

enum EvalSteps {
    /// `eval: { model: "@train", adapter: ..., data: ["@tasks", "@split/test"], ... }`
    static let eval: StepFactory = { ctx in
        var o = ctx.step.options
        let jobs = o["jobs"]?.intValue
        if case .object(var obj) = o {
            obj["jobs"] = nil
            o = .object(obj)
        }
        var c = try o.decode(EvalConfig.self, allowedKeys: EvalConfig.keys, context: ctx.location)
        c.model = try ctx.resolveStep(c.model)
        c.adapter = try c.adapter.map { try ctx.resolveStep($0) }
        c.fewshotFrom = try c.fewshotFrom.map { try ctx.resolveStep($0) }
        if c.data.isEmpty, let input = ctx.input { c.data = [input] }
        c.data = try c.data.map { try ctx.resolveStep($0) }
        do { return try EvalStage(config: c, threads: jobs ?? ProcessInfo.processInfo.activeProcessorCount) } catch let e as LoomError {
            throw LoomError("\(ctx.location): \(e.message)")
        }
    }
}
