import ArgumentParser
import Foundation
import LoomCore
import LoomTokenizer

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train a byte-level BPE tokenizer (Hugging Face tokenizer.json) and encode or decode with one.",
        discussion: """
            Training follows Hugging Face tokenizers' BpeTrainer step for step:
            the same corpus and settings give the same vocabulary and merges,
            and the tokenizer.json written loads in tokenizers and
            transformers. Encoding reads any byte-level BPE tokenizer.json
            (GPT-2 and Llama-3/Qwen pre-tokenisers) and SentencePiece-style
            BPE files with byte fallback (Llama-2, Mistral, TinyLlama; the
            Metaspace pre-tokenizer too).

            Examples:
              loom tokenizer train corpus.txt out/chunks -o tokenizer.json --vocab-size 32000
              loom tokenizer encode tokenizer.json "Hello world"
              loom tokenizer decode tokenizer.json 42 71 362
            """,
        subcommands: [TokenizerTrain.self, TokenizerEncode.self, TokenizerDecode.self])
}

struct TokenizerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a byte-level BPE tokenizer on text files, JSON Lines files or stage directories.",
        discussion: """
            Inputs: a .jsonl file or a directory of them (one sequence per
            record: its --text-field, or each of its messages' content), a
            finished stage directory (its records), or any other file (one
            sequence per line, the newline kept, as tokenizers' train(files)
            reads text). Records without text go to rejects.

            The vocabulary is the special tokens (ids 0, 1, ...), the 256
            byte symbols, then one token per merge, until --vocab-size tokens
            or no pair is seen --min-frequency times. Pairs are merged most
            frequent first, ties to the pair of smaller ids.

            -o FILE.json writes that file (and FILE.rejects.jsonl if records
            were rejected). -o DIR makes a stage directory: DIR/tokenizer.json,
            rejects.jsonl, manifest.json (skipped when run again with the same
            inputs and options).

            Examples:
              loom tokenizer train corpus.txt -o tokenizer.json --vocab-size 1000 --min-frequency 2
              loom tokenizer train out/chunks -o out/tokenizer --pre-tokenizer llama3 \\
                --special-tokens "<|begin_of_text|>" "<|end_of_text|>"
            """)

    @Argument(help: "Text files, JSON Lines files, directories of them, or stage directories.")
    var inputs: [String]

    @Option(name: [.short, .customLong("output")], help: "tokenizer.json to write, or a stage directory.")
    var output: String

    @Option(help: "Vocabulary size, special tokens included.")
    var vocabSize = 32000

    @Option(help: "A pair seen fewer times is never merged.")
    var minFrequency = 2

    @Option(parsing: .upToNextOption, help: "Special tokens, at ids 0, 1, ... in order.")
    var specialTokens: [String] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    @Option(help: "gpt2 (ByteLevel, GPT-2 regex) or llama3 (Split on the Llama-3 regex, then ByteLevel).")
    var preTokenizer = "gpt2"

    @Option(help: "The record field holding the text (JSON Lines).")
    var textField = "text"

    @Flag(help: "Write merges as \"a b\" strings (older tokenizer.json) instead of [\"a\", \"b\"] pairs.")
    var mergesAsStrings = false

    @OptionGroup var flags: RunFlags

    func run() throws {
        Log.quiet = flags.quiet
        var c = TokenizerTrainConfig()
        c.vocabSize = vocabSize
        c.minFrequency = minFrequency
        c.specialTokens = specialTokens
        c.preTokenizer = preTokenizer
        c.textField = textField
        c.mergesAsPairs = !mergesAsStrings
        c.paths = inputs
        if !output.hasSuffix(".json") {
            do {
                let r = try StageRunner.run(try TokenizerTrainStage(config: c), directory: output, options: flags.runOptions)
                if r.failed { throw ExitCode(1) }
                if !flags.quiet { print(FS.join(r.directory, "tokenizer.json")) }
            } catch let e as LoomError {
                Log.error(e.message)
                throw ExitCode(1)
            }
            return
        }
        do {
            let pre = try c.validated()
            var tc = BPETrainerConfig()
            tc.vocabSize = vocabSize
            tc.minFrequency = minFrequency
            tc.specialTokens = specialTokens
            let trainer = BPETrainer(config: tc, preTokenizer: pre)
            var rejects: [Reject] = []
            for p in inputs {
                if FS.isDirectory(p) && FS.exists(FS.join(p, "manifest.json")) {
                    for path in try StageReader(directory: p).shardPaths {
                        let r = try LineReader(path: path)
                        try r.forEachLine { line in
                            if let why = trainer.feed(jsonLine: line, textField: textField) {
                                rejects.append(Reject(source: path, reason: why, line: r.lineNumber))
                            }
                        }
                    }
                } else {
                    guard FS.exists(p) else { throw LoomError("\(p): no such file") }
                    try trainer.feed(file: p, textField: textField) { f, line, why in
                        rejects.append(Reject(source: f, reason: why, line: line))
                    }
                }
            }
            let tok = try trainer.train()
            try tok.save(output, mergesAsPairs: !mergesAsStrings)
            if !rejects.isEmpty {
                let path = String(output.dropLast(5)) + ".rejects.jsonl"
                let f = try BufferedFile(creating: path)
                for r in rejects { try f.write(r.json.jsonString + "\n") }
                try f.close()
                for r in rejects.prefix(5) { Log.warn("rejected \(r.summary)") }
                Log.warn("\(rejects.count) records rejected: \(path)")
            }
            if !flags.quiet {
                print("\(output): \(tok.vocabSize) tokens (\(tok.model.merges.count) merges) from \(trainer.sequences) sequences, \(trainer.wordCount) distinct words")
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

/// Loads a tokenizer or exits with one clear line.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do { return try Tokenizer.load(path) } catch let e as LoomError {
        Log.error(e.message)
        throw ExitCode(1)
    }
}

struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Print the token ids of texts (one line of ids per text).",
        discussion: """
            Special tokens written in the text (<|im_end|>) become their ids.

            Examples:
              loom tokenizer encode tokenizer.json "Hello world" "<|im_start|>user"
              loom tokenizer encode tokenizer.json --file notes.txt --tokens
            """)

    @Argument(help: "A tokenizer.json.")
    var tokenizer: String

    @Argument(help: "Texts to encode.")
    var texts: [String] = []

    @Option(help: "Encode the whole of this file as one text.")
    var file: String?

    @Flag(help: "Print the tokens as a JSON list of strings instead of ids.")
    var tokens = false

    @Flag(help: "Run the post-processor (adds bos for Llama-3-style templates).")
    var addSpecialTokens = false

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var all = texts
        if let f = file {
            guard let d = FileManager.default.contents(atPath: f) else {
                Log.error("cannot read \(f)")
                throw ExitCode(1)
            }
            all.append(String(decoding: d, as: UTF8.self))
        }
        for t in all {
            let ids = tok.encode(t, addSpecialTokens: addSpecialTokens)
            if tokens {
                print(JSONValue.array(ids.map { .string(tok.token(of: $0) ?? "") }).jsonString)
            } else {
                print(ids.map(String.init).joined(separator: " "))
            }
        }
    }
}

struct TokenizerDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print the text of token ids.",
        discussion: """
            Example:
              loom tokenizer decode tokenizer.json 42 71 362 81
            """)

    @Argument(help: "A tokenizer.json.")
    var tokenizer: String

    @Argument(help: "Token ids.")
    var ids: [Int32]

    @Flag(help: "Leave out special tokens.")
    var skipSpecialTokens = false

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        for id in ids where tok.token(of: id) == nil {
            Log.error("id \(id) is not in \(tokenizer) (vocabulary size \(tok.vocabSize))")
            throw ExitCode(1)
        }
        print(tok.decode(ids, skipSpecialTokens: skipSpecialTokens))
    }
}
