// `loom tokenizer train` as a stage: trains a byte-level BPE tokenizer on text files, JSON Lines files or
// directories, or a finished stage's records, and writes OUT/tokenizer.json beside the manifest. A stage input's
// records are passed through unchanged, so the step can sit in the middle of a pipeline.

import Foundation
import LoomCore

public struct TokenizerTrainConfig: Codable, Equatable, Sendable {
    public var vocabSize = 32000
    public var minFrequency = 2
    public var specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    /// "gpt2" (ByteLevel with the GPT-2 regex) or "llama3" (Split with the Llama-3 regex, then ByteLevel).
    public var preTokenizer = "gpt2"
    /// The record field holding the text (JSON Lines inputs).
    public var textField = "text"
    /// Write merges as ["a", "b"] pairs (true) or "a b" strings.
    public var mergesAsPairs = true
    /// Inputs besides the previous stage (files or directories).
    public var paths: [String] = []

    public init() {}

    public static let keys = ["vocab_size", "min_frequency", "special_tokens", "pre_tokenizer", "text_field", "merges_as_pairs", "paths"]

    enum CodingKeys: String, CodingKey {
        case vocabSize, minFrequency, specialTokens, preTokenizer, textField, mergesAsPairs, paths
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TokenizerTrainConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        minFrequency = try c.decodeIfPresent(Int.self, forKey: .minFrequency) ?? d.minFrequency
        specialTokens = try c.decodeIfPresent([String].self, forKey: .specialTokens) ?? d.specialTokens
        preTokenizer = try c.decodeIfPresent(String.self, forKey: .preTokenizer) ?? d.preTokenizer
        textField = try c.decodeIfPresent(String.self, forKey: .textField) ?? d.textField
        mergesAsPairs = try c.decodeIfPresent(Bool.self, forKey: .mergesAsPairs) ?? d.mergesAsPairs
        paths = try c.decodeIfPresent([String].self, forKey: .paths) ?? []
    }

    public func validated() throws -> PreTokenizer {
        guard vocabSize >= specialTokens.count + 256 else {
            throw LoomError("tokenizer: vocab_size \(vocabSize) is smaller than the special tokens plus the 256 byte symbols")
        }
        guard minFrequency >= 0 else { throw LoomError("tokenizer: min_frequency must be >= 0") }
        guard Set(specialTokens).count == specialTokens.count, !specialTokens.contains("") else {
            throw LoomError("tokenizer: special_tokens must be distinct and non-empty")
        }
        switch preTokenizer {
        case "gpt2": return BPETrainer.gpt2PreTokenizer
        case "llama3": return BPETrainer.llama3PreTokenizer
        default: throw LoomError("tokenizer: pre_tokenizer must be gpt2 or llama3 (got '\(preTokenizer)')")
        }
    }

    var trainerConfig: BPETrainerConfig {
        var t = BPETrainerConfig()
        t.vocabSize = vocabSize
        t.minFrequency = minFrequency
        t.specialTokens = specialTokens
        return t
    }
}

/// The files an input path stands for: a stage directory (has manifest.json) as itself, a directory as its
/// .jsonl and .txt files (subdirectories included, in name order), a file as itself.
func trainingInputs(_ path: String) throws -> [StageInput] {
    if FS.isDirectory(path) {
        if FS.exists(FS.join(path, "manifest.json")) { return [.stage(path)] }
        guard let e = FileManager.default.enumerator(atPath: path) else { throw LoomError("cannot list \(path)") }
        var files: [String] = []
        while let f = e.nextObject() as? String {
            if f.hasSuffix(".jsonl") || f.hasSuffix(".txt") { files.append(f) }
        }
        if files.isEmpty { throw LoomError("\(path): no .jsonl or .txt files") }
        return files.sorted().map { .file(FS.join(path, $0)) }
    }
    guard FS.exists(path) else { throw LoomError("\(path): no such file") }
    return [.file(path)]
}

public struct TokenizerTrainStage: Stage {
    public let settings: TokenizerTrainConfig
    public let input: String?
    public let inputs: [StageInput]
    let preTokenizer: PreTokenizer

    /// `input`: the previous stage's directory (its records are passed through); `settings.paths`: other inputs.
    public init(config: TokenizerTrainConfig, input: String? = nil) throws {
        preTokenizer = try config.validated()
        settings = config
        self.input = input
        var ins: [StageInput] = input.map { [.stage($0)] } ?? []
        for p in config.paths { ins += try trainingInputs(p) }
        guard !ins.isEmpty else { throw LoomError("tokenizer: no input (give files, directories or a stage directory)") }
        inputs = ins
    }

    public var name: String { "tokenizer-train" }
    public var config: JSONValue {
        var c = settings
        c.paths = []  // the inputs are fingerprinted on their own
        return (try? JSONValue(encoding: c)) ?? .null
    }
    public var sideFiles: [String] { ["tokenizer.json"] }

    public func run(_ ctx: StageContext) throws {
        let trainer = BPETrainer(config: settings.trainerConfig, preTokenizer: preTokenizer)
        for i in inputs {
            switch i {
            case .stage(let dir):
                let passThrough = dir == input
                for path in try StageReader(directory: dir).shardPaths {
                    let reader = try LineReader(path: path)
                    try reader.forEachLine { line in
                        if line.isEmpty { return }
                        ctx.progress.add(items: 1, bytes: line.count + 1)
                        if passThrough { try ctx.output.writeLine(line) }
                        if let why = trainer.feed(jsonLine: line, textField: settings.textField) {
                            try ctx.reject(Reject(source: path, reason: why, line: reader.lineNumber))
                        }
                    }
                }
            case .file(let path):
                var rejects: [Reject] = []
                try trainer.feed(file: path, textField: settings.textField) { f, line, why in
                    rejects.append(Reject(source: f, reason: why, line: line))
                }
                for r in rejects { try ctx.reject(r) }
            }
        }
        let tok = try trainer.train()
        try tok.save(ctx.sideFilePath("tokenizer.json"), mergesAsPairs: settings.mergesAsPairs)
        ctx.setCount("sequences", trainer.sequences)
        ctx.setCount("words", trainer.wordCount)
        ctx.setCount("vocab_size", tok.vocabSize)
        ctx.setCount("merges", tok.model.merges.count)
        if tok.vocabSize < settings.vocabSize {
            Log.warn("tokenizer: the corpus gave only \(tok.vocabSize) tokens (no pair left at min_frequency \(settings.minFrequency)); asked for \(settings.vocabSize)")
        }
    }
}
