// A client for any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama.cpp server, Ollama, TGI), with
// retries (exponential backoff with jitter on 429, 5xx, timeouts, broken or truncated responses; `Retry-After`
// honoured) and the response cache in front of it. With `backend: builtin` the same client asks a Loom model in
// this process instead (LoomCore's TextGenerationBackend, registered by the `loom` command): the same prompts,
// parameters and cache, no server.

import Foundation
import LoomCore

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

public struct OpenAIConfig: Codable, Equatable, Sendable {
    /// "openai": an OpenAI-compatible server at `baseURL`; "builtin": the Loom model in the directory `model`.
    public var backend = "openai"
    /// e.g. http://127.0.0.1:8000/v1
    public var baseURL = "http://127.0.0.1:8000/v1"
    public var model = "default"
    /// The name of the environment variable holding the API key (the key itself is never in a config file).
    public var apiKeyEnv: String?
    public var temperature = 0.7
    public var topP = 1.0
    public var maxTokens = 512
    public var seed: Int?
    /// Seconds to wait for one response.
    public var timeout = 120.0
    /// Attempts after the first one.
    public var retries = 5
    /// First backoff in seconds (doubled each retry, with jitter).
    public var backoff = 1.0
    public var concurrency = 4

    public init() {}

    /// What the stage configs record as the model: the name for a server; for the builtin backend the directory
    /// and a fingerprint of its files, so a re-trained model re-runs the stage.
    public var modelIdentity: String {
        backend == "builtin" ? model + "@" + TextBackends.modelFingerprint(directory: model) : model
    }

    /// The parameters that change the answer (part of the cache key).
    var parameters: JSONValue {
        var o = JSONObject()
        o.append("temperature", .double(temperature))
        o.append("top_p", .double(topP))
        o.append("max_tokens", .int(maxTokens))
        if let seed { o.append("seed", .int(seed)) }
        return .object(o)
    }
}

/// A failed request: whether trying again may help, and why.
public struct BackendError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var retryable: Bool
    public var retryAfter: Double?
    public var description: String { message }
}

public final class OpenAIBackend: @unchecked Sendable {
    public let config: OpenAIConfig
    let session: URLSession
    let cache: ResponseCache?
    private let lock = NSLock()
    private var _requests = 0
    private var _cacheHits = 0
    private var _retries = 0

    /// The in-process model when `backend` is builtin.
    let local: (any TextGenerationBackend)?

    public init(config: OpenAIConfig, cache: ResponseCache?) throws {
        switch config.backend {
        case "openai": local = nil
        case "builtin":
            guard FS.isDirectory(config.model) else {
                throw LoomError("builtin backend: model '\(config.model)' is not a model directory (config.json, model.safetensors)")
            }
            local = try TextBackends.make("builtin", model: config.model)
        default: throw LoomError("unknown backend '\(config.backend)' (available: openai, builtin)")
        }
        guard local != nil || URL(string: config.baseURL)?.scheme?.hasPrefix("http") == true else {
            throw LoomError("openai backend: base_url '\(config.baseURL)' is not an http(s) URL")
        }
        if local == nil, let env = config.apiKeyEnv, ProcessInfo.processInfo.environment[env] == nil {
            throw LoomError("openai backend: the environment variable \(env) (api_key_env) is not set")
        }
        self.config = config
        self.cache = cache
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = config.timeout
        c.timeoutIntervalForResource = config.timeout
        c.httpMaximumConnectionsPerHost = max(1, config.concurrency)
        session = URLSession(configuration: c)
    }

    /// Requests sent (attempts included), answers served from the cache, retries.
    public var stats: (requests: Int, cacheHits: Int, retries: Int) { lock.withLock { (_requests, _cacheHits, _retries) } }

    /// The assistant's text for `messages`: from the cache, or from the server (retrying), then cached.
    public func complete(_ messages: [(role: String, content: String)]) throws -> String {
        let msgs = JSONValue.array(messages.map { ["role": .string($0.role), "content": .string($0.content)] })
        let key = ResponseCache.key(
            backend: config.backend, model: local?.identity ?? config.model, parameters: config.parameters, messages: msgs)
        if let hit = cache?.get(key) {
            lock.withLock { _cacheHits += 1 }
            return hit
        }
        if let local {
            lock.withLock { _requests += 1 }
            let p = TextGenerationParameters(
                temperature: config.temperature, topP: config.topP, maxTokens: config.maxTokens, seed: config.seed)
            let text: String
            do { text = try local.complete(messages, parameters: p) } catch {
                throw BackendError(message: "the builtin model failed: \(error)", retryable: false)
            }
            try cache?.put(key, text)
            return text
        }
        var attempt = 0
        while true {
            do {
                let text = try send(msgs)
                try cache?.put(key, text)
                return text
            } catch let e as BackendError where e.retryable && attempt < config.retries {
                attempt += 1
                lock.withLock { _retries += 1 }
                let base = config.backoff * pow(2, Double(attempt - 1))
                let wait = e.retryAfter ?? (base * (0.5 + Double.random(in: 0..<1)))
                Thread.sleep(forTimeInterval: min(wait, 60))
            }
        }
    }

    func send(_ messages: JSONValue) throws -> String {
        lock.withLock { _requests += 1 }
        var body = JSONObject()
        body.append("model", .string(config.model))
        body.append("messages", messages)
        if case .object(let p) = config.parameters { for (k, v) in p { body.append(k, v) } }
        var request = URLRequest(url: URL(string: config.baseURL.hasSuffix("/") ? config.baseURL + "chat/completions" : config.baseURL + "/chat/completions")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let env = config.apiKeyEnv, let key = ProcessInfo.processInfo.environment[env] {
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        }
        request.httpBody = Data(JSONValue.object(body).jsonString.utf8)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Data?, URLResponse?, Error?) = (nil, nil, nil)
        session.dataTask(with: request) { d, r, e in
            result = (d, r, e)
            done.signal()
        }.resume()
        done.wait()
        if let e = result.2 {
            throw BackendError(message: "request failed: \(e.localizedDescription)", retryable: true)
        }
        guard let http = result.1 as? HTTPURLResponse else {
            throw BackendError(message: "no HTTP response", retryable: true)
        }
        let data = result.0 ?? Data()
        if http.statusCode == 429 || http.statusCode >= 500 {
            let after = (http.value(forHTTPHeaderField: "Retry-After")).flatMap(Double.init)
            throw BackendError(message: "HTTP \(http.statusCode)", retryable: true, retryAfter: after)
        }
        guard http.statusCode == 200 else {
            let text = String(decoding: data.prefix(300), as: UTF8.self)
            throw BackendError(message: "HTTP \(http.statusCode): \(text)", retryable: false)
        }
        let v: JSONValue
        do {
            v = try data.withUnsafeBytes { try JSONValue.parse(bytes: $0.bindMemory(to: UInt8.self)) }
        } catch {
            throw BackendError(message: "the response is not valid JSON (truncated?): \(error)", retryable: true)
        }
        guard let content = v["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue else {
            throw BackendError(message: "the response has no choices[0].message.content", retryable: true)
        }
        return content
    }
}
