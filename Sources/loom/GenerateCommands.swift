import ArgumentParser
import Foundation
import LoomCore
import LoomGenerate

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make instruction data from chunks.",
        discussion: """
            rc mines reading-comprehension tasks from the text itself (no model,
            no network): title, key terms, a sentence using given terms,
            inference, paraphrase and cause/effect from connectives, sentence
            completion. Phrasings are in templates/rc/ (English and Korean).

            qa and evolve ask any OpenAI-compatible server (vLLM, llama.cpp
            server, Ollama, TGI); replies are cached in SQLite, so a re-run
            sends nothing it already has. preference makes DPO/ORPO pairs from
            SFT samples, with or without a model.
            """,
        subcommands: [GenerateRC.self, GenerateQA.self, GenerateEvolve.self, GeneratePreference.self, GenerateText.self])
}

struct GenerateRC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rc",
        abstract: "Reading-comprehension samples mined from each chunk (AdaptLLM), no model needed.",
        discussion: """
            Each chunk becomes one sample in the TRL conversational format: the
            chunk's text followed by its tasks as user/assistant turns. Every
            answer comes from the chunk itself. meta holds provenance (chunk and
            document ids, templates, seed) and the task types.

            Example:
              loom generate rc out/chunks -o out/rc --seed 7
            """)

    @Argument(help: "Chunks or documents: a finished stage directory, a directory of .jsonl files, or a .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Seed for choosing examples and phrasings.")
    var seed = 1

    @Option(help: "Most examples of each task type per chunk.")
    var maxPerTask = 2

    @Option(help: "The field holding the text.")
    var textField = "text"

    @Option(help: "The templates directory (default: LOOM_TEMPLATES, or the project's templates/).")
    var templates: String?

    @Option(help: "Only shard i/N of the input records (N shard outputs in order = one run; see merge-manifests).")
    var shard: String?

    func run() throws {
        var c = RCConfig()
        c.seed = seed
        c.maxPerTask = maxPerTask
        c.textField = textField
        try runStage(
            { try RCStage(config: c, input: input, templates: templates, shard: ShardSpec.parse(shard)) },
            options: stage)
    }
}

struct GenerateQA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qa",
        abstract: "Question/answer pairs about each chunk, written by an LLM behind an OpenAI-compatible API.",
        discussion: """
            Chat models get templates/qa/system.mustache and user.mustache;
            base models (--endpoint completions) a few-shot prompt
            (qa/fewshot.mustache with the worked examples of qa/fewshot.yaml)
            cut at stop strings. The reply must match templates/qa/schema.json
            (a "pairs" list of {"question", "answer"} objects, --questions
            items at most, bounded string lengths so it closes within
            --max-tokens): sent as the server's response_format
            (--structured json_schema, OpenAI's form; json_object for
            llama-cpp-python; off), and with --backend builtin enforced token
            by token. A code fence, surrounding words and trailing commas are
            repaired, anything else goes to rejects.jsonl with the raw reply.
            Every pair gets meta.scores (grounding: share of the answer's
            content words found in the chunk; longest_span: longest run of
            answer words found in it) and meta.language; --min-grounding drops
            answers below a grounding score. Requests are retried with exponential backoff and jitter
            on 429, 5xx, timeouts and broken responses (Retry-After honoured).

            Examples (a llama.cpp or vLLM server on port 8000; a GGUF file in
            this process with no server):
              loom generate qa out/chunks -o out/qa --base-url http://127.0.0.1:8000/v1 \\
                --model qwen2.5-7b-instruct --concurrency 16
              loom generate qa chunks.jsonl -o out/qa --backend builtin \\
                --model gemma-3-270m-q4_k_m.gguf --endpoint completions --min-grounding 0.5
            """)

    @Argument(help: "Chunks or documents: a finished stage directory, a directory of .jsonl files, or a .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions

    @OptionGroup var llm: LLMOptions

    @Option(help: "Questions asked for per chunk.")
    var questions = 3

    @Option(help: "Drop answers with less than this share of their content words in the chunk (0 to 1; 0 keeps all).")
    var minGrounding = 0.0

    func run() throws {
        var c = llm.config
        c.questions = questions
        c.minGrounding = minGrounding
        try runStage({ try QAStage(config: c, input: input, templates: llm.templates) }, options: stage)
    }
}

/// The OpenAI-compatible server and the response cache (every generator that asks a model).
struct LLMOptions: ParsableArguments {
    @Option(help: "openai (a server at --base-url) or builtin (the Loom model directory --model, in this process).")
    var backend = "openai"

    @Option(help: "The server's OpenAI-compatible base URL.")
    var baseURL = "http://127.0.0.1:8000/v1"

    @Option(help: "The model name the server expects (builtin: the model directory).")
    var model = "default"

    @Option(help: "The environment variable holding the API key, if the server wants one.")
    var apiKeyEnv: String?

    @Option(help: "Sampling temperature.")
    var temperature = 0.7

    @Option(help: "Nucleus sampling top-p.")
    var topP = 1.0

    @Option(help: "Most tokens in a reply.")
    var maxTokens = 512

    @Option(help: "How the reply's JSON schema reaches the model: json_schema (OpenAI's response_format), json_object (with a schema, as llama-cpp-python takes it) or off.")
    var structured = "json_schema"

    @Option(help: "chat (/v1/chat/completions) or completions (/v1/completions with a few-shot prompt, for base models).")
    var endpoint = "chat"

    @Option(help: "Sampling seed sent to the server.")
    var seed: Int?

    @Option(help: "Requests in flight at once.")
    var concurrency = 4

    @Option(help: "Seconds to wait for one reply.")
    var timeout = 120.0

    @Option(help: "Retries after a failed request.")
    var retries = 5

    @Option(help: "The response cache (SQLite; default: LOOM_CACHE or ~/.cache/loom/responses.sqlite).")
    var cache: String?

    @Flag(help: "Ask the server even when the cache has the answer (and do not store answers).")
    var noCache = false

    @Option(help: "The templates directory (default: LOOM_TEMPLATES, or the project's templates/).")
    var templates: String?

    var config: QAConfig {
        var c = QAConfig()
        c.openai.backend = backend
        c.openai.baseURL = baseURL
        c.openai.model = model
        c.openai.apiKeyEnv = apiKeyEnv
        c.openai.temperature = temperature
        c.openai.topP = topP
        c.openai.maxTokens = maxTokens
        c.openai.structured = structured
        c.openai.endpoint = endpoint
        c.openai.seed = seed
        c.openai.concurrency = concurrency
        c.openai.timeout = timeout
        c.openai.retries = retries
        c.cache = cache
        c.noCache = noCache
        return c
    }
}

struct GenerateEvolve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evolve",
        abstract: "Evol-Instruct: make instructions harder and broader with an LLM, round by round.",
        discussion: """
            Each round rewrites every instruction with one operation (add
            constraints, deepen, concretise, increase reasoning steps,
            complicate the input, or a new instruction in the same domain),
            answers it, and eliminates failures by WizardLM's four rules: no
            information gain over the parent (judged by the model, or
            --judge rules), a "sorry" answer under 80 words, an answer of only
            punctuation and stop words, an instruction that copies the
            evolving prompt's words. A failed instruction's parent goes back
            into the pool. meta.evol records round, operation, parent, root.

            Example:
              loom generate evolve out/qa -o out/evol --rounds 3 --base-url http://127.0.0.1:8000/v1
            """)

    @Argument(help: "SFT samples (the first user message is the instruction): a stage directory, a directory of .jsonl files, or a .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions
    @OptionGroup var llm: LLMOptions

    @Option(help: "Evolution rounds.")
    var rounds = 1

    @Option(help: "Who decides 'no information gain': backend (the model) or rules (token sets).")
    var judge = "backend"

    @Option(help: "Seed for choosing operations.")
    var evolSeed = 1

    func run() throws {
        var c = EvolveConfig()
        c.qa = llm.config
        c.rounds = rounds
        c.judge = judge
        c.seed = evolSeed
        try runStage({ try EvolveStage(config: c, input: input, templates: llm.templates) }, options: stage)
    }
}

struct GeneratePreference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preference",
        abstract: "Preference pairs (prompt, chosen, rejected) for DPO/ORPO from SFT samples.",
        discussion: """
            chosen is each turn's reference answer. rejected is, with
            --rejected distractor (no model), another answer of the same task
            type (another label for inference tasks); with --rejected sample,
            the model's answer to the question alone, without its text. Pairs
            whose rejected answer equals the chosen one are dropped.

            Example:
              loom generate preference out/rc -o out/pref
            """)

    @Argument(help: "SFT samples: a stage directory, a directory of .jsonl files, or a .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions
    @OptionGroup var llm: LLMOptions

    @Option(help: "Where rejected answers come from: distractor or sample.")
    var rejected = "distractor"

    @Option(help: "Seed for choosing distractors.")
    var pairSeed = 1

    func run() throws {
        var c = PreferenceConfig()
        c.qa = llm.config
        c.rejected = rejected
        c.seed = pairSeed
        try runStage({ try PreferenceStage(config: c, input: input, templates: llm.templates) }, options: stage)
    }
}
