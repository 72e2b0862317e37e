// A model directory ready to answer: the weights, the tokenizer the trainer used (the directory's tokenizer.json,
// else the byte-level vocabulary, as `loom train` decides) and the SFT chat template, so a model trained by
// `loom train sft` is prompted exactly the way it was trained. `loom serve`, `loom generate text` and the
// generator's `builtin` backend all go through it.

import Foundation
import LoomCore
import LoomTokenizer

public final class ChatModel: @unchecked Sendable {
    public let directory: String
    /// The name clients use (`model` in OpenAI requests).
    public let name: String
    public let model: LlamaModel
    public let codec: TokenCodec
    public let chat: ChatFormat
    /// Concurrent requests decode together (DecodeBatcher: one forward pass per step for all of them, each with its
    /// own KV cache).
    public let batcher: DecodeBatcher

    public init(model: LlamaModel, codec: TokenCodec, name: String, directory: String = "", chat: ChatFormat = .chatML) throws {
        guard codec.vocabSize <= model.config.vocabSize else {
            throw LoomError(
                "\(directory): the tokenizer has \(codec.vocabSize) tokens, the model's vocabulary only \(model.config.vocabSize)")
        }
        self.model = model
        self.codec = codec
        self.name = name
        self.directory = directory
        self.chat = chat
        batcher = DecodeBatcher(model: model)
    }

    /// Most requests decoding together (default 8); more wait their turn.
    public var maxBatch: Int {
        get { batcher.maxBatch }
        set { batcher.maxBatch = newValue }
    }

    /// Loads DIR (config.json, model.safetensors, tokenizer.json if present), or a `.gguf` file (imported once into
    /// the cache: GGUFImport.modelDirectory).
    public static func load(directory given: String, name: String? = nil) throws -> ChatModel {
        let directory = try GGUFImport.modelDirectory(given)
        guard FS.isDirectory(directory) else { throw LoomError("\(given): not a model directory or .gguf file") }
        let model = try LlamaModel.load(directory: directory)
        let tok = FS.join(directory, "tokenizer.json")
        let codec: TokenCodec = FS.exists(tok) ? try TokenizerCodec.load(tok) : ByteCodec()
        var url = URL(fileURLWithPath: given).standardizedFileURL
        if given.lowercased().hasSuffix(".gguf") { url = url.deletingPathExtension() }
        let base = url.lastPathComponent
        return try ChatModel(
            model: model, codec: codec, name: name ?? base, directory: directory, chat: try ChatFormat.forVocabulary(codec))
    }

    /// The tokens of a conversation followed by the assistant's header: what the model continues.
    public func promptTokens(_ messages: [(role: String, content: String)]) -> [Int32] {
        DatasetBuilder(codec: codec, objective: .sft, length: model.config.maxPositions, chat: chat).promptTokens(messages)
    }

    /// The tokens of plain text (the start-of-text token first when the vocabulary has one).
    public func textTokens(_ text: String) -> [Int32] { (codec.bosId.map { [$0] } ?? []) + codec.encode(text) }

    /// End of text, and end of turn when the template has one.
    public var stopTokens: Set<Int32> {
        var s: Set<Int32> = [codec.eosId]
        for turnEnd in ["<|im_end|>", "<end_of_turn>", "<|eot_id|>"] {
            if let e = codec.specialId(turnEnd) { s.insert(e) }
        }
        if let e = model.config.eosTokenId, e < model.config.vocabSize { s.insert(Int32(e)) }
        return s
    }

    /// The assistant's reply to a conversation. Callable from many threads at once: concurrent calls decode together
    /// (up to `maxBatch`).
    public func reply(
        _ messages: [(role: String, content: String)], options: SamplingOptions, constraint: TokenConstraint? = nil,
        onText: ((String) -> Bool)? = nil
    ) throws -> GenerationResult {
        var o = options
        o.stopTokens.formUnion(stopTokens)
        return try run(promptTokens(messages), o, constraint, onText)
    }

    /// A continuation of plain text (stops at end of text only).
    public func continuation(
        _ text: String, options: SamplingOptions, constraint: TokenConstraint? = nil, onText: ((String) -> Bool)? = nil
    ) throws -> GenerationResult {
        var o = options
        o.stopTokens.insert(codec.eosId)
        return try run(textTokens(text), o, constraint, onText)
    }

    /// Generation from token ids (no template): e.g. to compare with transformers' generate on the same ids.
    public func continuation(ids: [Int32], options: SamplingOptions, onText: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try run(ids, options, nil, onText)
    }

    func run(
        _ prompt: [Int32], _ o: SamplingOptions, _ constraint: TokenConstraint?, _ onText: ((String) -> Bool)?
    ) throws -> GenerationResult {
        let codec = self.codec
        return try batcher.generate(prompt: prompt, options: o, constraint: constraint, decode: { codec.decode($0) }, onText: onText)
    }

    /// A fingerprint of the weights and tokenizer (TextBackends.modelFingerprint).
    public lazy var fingerprint: String = TextBackends.modelFingerprint(directory: directory)
}

/// The generator's `builtin` backend: a Loom model in this process.
public final class BuiltinBackend: TextGenerationBackend, @unchecked Sendable {
    public let model: ChatModel
    public let identity: String
    /// Grammars and the vocabulary's token trie for `parameters.schema`, each prepared once.
    public let constraints: SchemaConstraintCache

    public init(model: ChatModel) {
        self.model = model
        identity = model.name + "@" + String(model.fingerprint.prefix(16))
        constraints = SchemaConstraintCache { SchemaConstraint.trie(for: model.codec, vocabSize: model.model.config.vocabSize) }
    }

    /// Sampling options of a request. With a schema, stop strings are not applied: the document's end is the stop,
    /// and a stop string inside a JSON string would cut the document short.
    func options(_ p: TextGenerationParameters) -> SamplingOptions {
        SamplingOptions(
            temperature: p.temperature, topP: p.topP, seed: UInt64(bitPattern: Int64(p.seed ?? 0)), maxTokens: p.maxTokens,
            stop: p.schema == nil ? p.stop : [])
    }

    /// The constraint of `parameters.schema` (nil without one).
    func constraint(_ p: TextGenerationParameters) throws -> SchemaConstraint? {
        guard let schema = p.schema else { return nil }
        return try constraints.constraint(for: schema)
    }

    public func complete(_ messages: [(role: String, content: String)], parameters p: TextGenerationParameters) throws -> String {
        try model.reply(messages, options: options(p), constraint: try constraint(p)).text
    }

    public func continueText(_ prompt: String, parameters p: TextGenerationParameters) throws -> String {
        try model.continuation(prompt, options: options(p), constraint: try constraint(p)).text
    }

    nonisolated(unsafe) private static var loaded: [String: BuiltinBackend] = [:]
    private static let lock = NSLock()

    /// One backend per model directory in a process (a pipeline's steps share the loaded weights).
    public static func shared(directory: String) throws -> BuiltinBackend {
        let key = URL(fileURLWithPath: directory).standardizedFileURL.path
        return try lock.withLock {
            if let b = loaded[key] { return b }
            let b = BuiltinBackend(model: try ChatModel.load(directory: directory))
            loaded[key] = b
            return b
        }
    }
}
