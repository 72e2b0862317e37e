// The text-generation backend protocol: how a stage library asks a model for a chat reply without importing the
// library that runs the model. LoomTrain implements it for a Loom model (the generator's `builtin` backend); the
// `loom` command registers that implementation here at start-up, and LoomGenerate looks it up by kind.

import Foundation

/// The request parameters that change a reply (OpenAI's names and meanings).
public struct TextGenerationParameters: Sendable, Equatable {
    public var temperature: Double
    public var topP: Double
    public var maxTokens: Int
    public var seed: Int?
    public var stop: [String]
    /// A JSON schema the reply must match (constrained decoding); nil: free text.
    public var schema: JSONValue?

    public init(
        temperature: Double = 0.7, topP: Double = 1, maxTokens: Int = 512, seed: Int? = nil, stop: [String] = [],
        schema: JSONValue? = nil
    ) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.seed = seed
        self.stop = stop
        self.schema = schema
    }
}

/// A model that answers a conversation with the assistant's next message.
public protocol TextGenerationBackend: AnyObject, Sendable {
    /// What identifies the model's answers (a name and a fingerprint of its weights): part of cache keys.
    var identity: String { get }
    func complete(_ messages: [(role: String, content: String)], parameters: TextGenerationParameters) throws -> String
    /// The continuation of plain text, no chat template (a base model prompted with examples).
    func continueText(_ prompt: String, parameters: TextGenerationParameters) throws -> String
}

extension TextGenerationBackend {
    public func continueText(_ prompt: String, parameters: TextGenerationParameters) throws -> String {
        throw LoomError("this backend answers conversations only (endpoint: chat)")
    }
}

/// Backends by kind (e.g. "builtin"), registered by the executable that links their implementation.
public enum TextBackends {
    public typealias Factory = @Sendable (_ model: String) throws -> any TextGenerationBackend

    nonisolated(unsafe) private static var factories: [String: Factory] = [:]
    private static let lock = NSLock()

    public static func register(_ kind: String, _ factory: @escaping Factory) {
        lock.withLock { factories[kind] = factory }
    }

    public static var kinds: [String] { lock.withLock { factories.keys.sorted() } }

    /// A backend of `kind` for `model` (for `builtin`: a model directory).
    public static func make(_ kind: String, model: String) throws -> any TextGenerationBackend {
        guard let f = lock.withLock({ factories[kind] }) else {
            throw LoomError("no '\(kind)' text-generation backend in this program")
        }
        return try f(model)
    }

    /// A fingerprint of a Hugging Face model directory: config.json and tokenizer.json hashed, the safetensors
    /// files by size and modification time (SHA-256 here is for small inputs; a re-trained model gets a new one).
    public static func modelFingerprint(directory: String) -> String {
        // A single model file (a .gguf): its size and modification time, like the weights of a directory.
        if !FS.isDirectory(directory), let id = FS.identity(directory) {
            return SHA256.hex("\(URL(fileURLWithPath: directory).lastPathComponent)=\(id.size):\(id.mtimeNs)")
        }
        var parts: [String] = []
        for f in FS.list(directory) {
            let p = FS.join(directory, f)
            if f == "config.json" || f == "tokenizer.json" {
                parts.append(f + "=" + SHA256.hex((try? FS.readText(p)) ?? ""))
            } else if f.hasSuffix(".safetensors"), let id = FS.identity(p) {
                parts.append("\(f)=\(id.size):\(id.mtimeNs)")
            }
        }
        return SHA256.hex(parts.joined(separator: "\n"))
    }
}
