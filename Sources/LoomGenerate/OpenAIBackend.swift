// A client for any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI): `/v1/chat/completions`, or
// `/v1/completions` for base models prompted with examples (`endpoint`), with retries (exponential backoff with
// jitter on 429, 5xx, timeouts, broken or truncated responses; `Retry-After` honoured) and the response cache in
// front of it. Structured output: a request may carry the JSON schema its reply must match, sent as
// `response_format` in OpenAI's `json_schema` form or the `json_object` + `schema` form llama.cpp's servers take
// (`structured`). With `backend: builtin` the same client asks a Loom model in this process instead (LoomCore's
// TextGenerationBackend, registered by the `loom` command): the same prompts, parameters and cache, no server; there
// the schema constrains decoding token by token.

import CHTTP
import Foundation
import LoomCore

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
    /// How a request's JSON schema reaches the model: "json_schema" (OpenAI's `response_format`, also vLLM,
    /// llama.cpp's llama-server, Ollama), "json_object" (`{"type": "json_object", "schema": ...}`, llama-cpp-python)
    /// or "off" (no schema: the prompt alone asks for JSON). The builtin backend constrains decoding in either of the
    /// first two.
    public var structured = "json_schema"
    /// "chat" (`/v1/chat/completions`, instruction-tuned models) or "completions" (`/v1/completions` with a
    /// few-shot prompt and stop strings, for base models).
    public var endpoint = "chat"

    public static let structuredModes = ["json_schema", "json_object", "off"]
    public static let endpoints = ["chat", "completions"]

    public init() {}

    public func validate(_ context: String) throws {
        guard Self.structuredModes.contains(structured) else {
            throw LoomError("\(context): structured must be one of \(Self.structuredModes.joined(separator: ", ")), not '\(structured)'")
        }
        guard Self.endpoints.contains(endpoint) else {
            throw LoomError("\(context): endpoint must be chat or completions, not '\(endpoint)'")
        }
    }

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
            guard FS.isDirectory(config.model) || (config.model.lowercased().hasSuffix(".gguf") && FS.exists(config.model)) else {
                throw LoomError(
                    "builtin backend: model '\(config.model)' is not a model directory (config.json, model.safetensors) or a .gguf file")
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
    }

    /// Requests sent (attempts included), answers served from the cache, retries.
    public var stats: (requests: Int, cacheHits: Int, retries: Int) { lock.withLock { (_requests, _cacheHits, _retries) } }

    /// The assistant's text for `messages` (chat endpoint): from the cache, or from the model (retrying), then cached.
    /// `schema` (ignored when `structured` is off) is the JSON schema the reply must match.
    public func complete(_ messages: [(role: String, content: String)], schema: ReplySchema? = nil, stop: [String] = []) throws -> String {
        try perform(.chat(messages), schema: schema, stop: stop)
    }

    /// The continuation of `prompt` (completions endpoint: a few-shot prompt for a base model).
    public func complete(prompt: String, schema: ReplySchema? = nil, stop: [String] = []) throws -> String {
        try perform(.text(prompt), schema: schema, stop: stop)
    }

    enum Input {
        case chat([(role: String, content: String)])
        case text(String)
    }

    func perform(_ input: Input, schema given: ReplySchema?, stop: [String]) throws -> String {
        let schema = config.structured == "off" ? nil : given
        let promptJSON: JSONValue
        switch input {
        case .chat(let messages):
            promptJSON = .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] })
        case .text(let prompt):
            promptJSON = ["prompt": .string(prompt)]
        }
        // The cache key: what changes the answer. Requests without a schema or stop strings keep the keys they had.
        var keyParameters = config.parameters
        if case .object(var p) = keyParameters {
            if !stop.isEmpty { p.append("stop", .array(stop.map { .string($0) })) }
            if let schema {
                p.append("structured", .string(config.structured))
                p.append("schema", schema.schema)
            }
            keyParameters = .object(p)
        }
        let key = ResponseCache.key(
            backend: config.backend, model: local?.identity ?? config.model, parameters: keyParameters, messages: promptJSON)
        if let hit = cache?.get(key) {
            lock.withLock { _cacheHits += 1 }
            return hit
        }
        if let local {
            lock.withLock { _requests += 1 }
            let p = TextGenerationParameters(
                temperature: config.temperature, topP: config.topP, maxTokens: config.maxTokens, seed: config.seed, stop: stop,
                schema: schema?.schema)
            let text: String
            do {
                switch input {
                case .chat(let messages): text = try local.complete(messages, parameters: p)
                case .text(let prompt): text = try local.continueText(prompt, parameters: p)
                }
            } catch {
                throw BackendError(message: "the builtin model failed: \(error)", retryable: false)
            }
            try cache?.put(key, text)
            return text
        }
        var attempt = 0
        while true {
            do {
                let text = try send(input, schema: schema, stop: stop)
                try cache?.put(key, text)
                return text
            } catch let e as BackendError where e.retryable && attempt < config.retries {
                attempt += 1
                lock.withLock { _retries += 1 }
                let base = config.backoff * pow(2, Double(attempt - 1))
                let wait = e.retryAfter ?? (base * (0.5 + Double.random(in: 0..<1)))
                Thread.sleep(forTimeInterval: min(wait, 60))
            } catch let e as BackendError where schema != nil && config.structured == "json_schema" && e.message.hasPrefix("HTTP ") {
                // The most common cause of a server answering every structured request with an error.
                throw BackendError(
                    message: e.message + " (if the server does not take OpenAI's json_schema response_format, try structured: json_object)",
                    retryable: false)
            }
        }
    }

    /// The request body (OpenAI's names).
    func body(_ input: Input, schema: ReplySchema?, stop: [String]) -> JSONValue {
        var body = JSONObject()
        body.append("model", .string(config.model))
        switch input {
        case .chat(let messages):
            body.append("messages", .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }))
        case .text(let prompt):
            body.append("prompt", .string(prompt))
        }
        if case .object(let p) = config.parameters { for (k, v) in p { body.append(k, v) } }
        if !stop.isEmpty { body.append("stop", .array(stop.map { .string($0) })) }
        if let schema {
            if config.structured == "json_schema" {
                var js = JSONObject()
                js.append("name", .string(schema.name))
                js.append("strict", .bool(true))
                js.append("schema", schema.schema)
                body.append("response_format", ["type": "json_schema", "json_schema": .object(js)])
            } else {
                body.append("response_format", ["type": "json_object", "schema": schema.schema])
            }
        }
        return .object(body)
    }

    func send(_ input: Input, schema: ReplySchema?, stop: [String]) throws -> String {
        lock.withLock { _requests += 1 }
        let chat: Bool
        if case .chat = input { chat = true } else { chat = false }
        let path = chat ? "chat/completions" : "completions"
        let base = config.baseURL.hasSuffix("/") ? config.baseURL : config.baseURL + "/"
        var headers = ["Content-Type: application/json"]
        if let env = config.apiKeyEnv, let key = ProcessInfo.processInfo.environment[env] {
            headers.append("Authorization: Bearer \(key)")
        }
        let payload = Array(body(input, schema: schema, stop: stop).jsonString.utf8)
        let (status, data, retryAfter) = try HTTP.post(base + path, headers: headers, body: payload, timeout: config.timeout)
        if status == 429 || status >= 500 {
            throw BackendError(message: "HTTP \(status)", retryable: true, retryAfter: retryAfter)
        }
        guard status == 200 else {
            let text = String(decoding: data.prefix(300), as: UTF8.self)
            throw BackendError(message: "HTTP \(status): \(text)", retryable: false)
        }
        let v: JSONValue
        do {
            v = try data.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
        } catch {
            throw BackendError(message: "the response is not valid JSON (truncated?): \(error)", retryable: true)
        }
        let choice = v["choices"]?.arrayValue?.first
        guard let content = chat ? choice?["message"]?["content"]?.stringValue : choice?["text"]?.stringValue else {
            throw BackendError(
                message: "the response has no " + (chat ? "choices[0].message.content" : "choices[0].text"), retryable: true)
        }
        // A server that ignores `stop` (or returns the stop string) is cut here as one that honours it would be.
        if let cut = stop.compactMap({ content.range(of: $0)?.lowerBound }).min() { return String(content[..<cut]) }
        return content
    }
}

/// The JSON schema a reply must match, with the name OpenAI's `json_schema` form wants.
public struct ReplySchema: Sendable, Equatable {
    public var name: String
    public var schema: JSONValue

    public init(name: String, schema: JSONValue) {
        self.name = name
        self.schema = schema
    }

    /// A schema file under the templates directory (e.g. `qa/schema.json`); an invalid one is an error naming it.
    public static func load(_ directory: String, _ relative: String, name: String) throws -> ReplySchema {
        let path = FS.join(directory, relative)
        let text = try FS.readText(path)
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw LoomError("\(path): not valid JSON: \(error)") }
        guard value.objectValue != nil else { throw LoomError("\(path): a JSON schema must be an object") }
        return ReplySchema(name: name, schema: value)
    }
}

/// A blocking POST (CHTTP: libcurl's easy interface), so a thread waiting on the server sleeps instead of spinning.
enum HTTP {
    static func post(_ url: String, headers: [String], body: [UInt8], timeout: Double) throws -> (
        status: Int, body: [UInt8], retryAfter: Double?
    ) {
        var r = loom_http_response()
        defer { loom_http_free(&r) }
        let rc = withArrayOfCStrings(headers) { h in
            body.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, b.count)) {
                    loom_http_post(url, h, Int32(headers.count), $0, b.count, timeout, &r)
                }
            }
        }
        if rc != 0 {
            let why = withUnsafeBytes(of: r.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw BackendError(message: "request failed: \(why)" + (r.timed_out != 0 ? " (timeout \(timeout) s)" : ""), retryable: true)
        }
        let data = r.body.map { Array(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: r.length)) } ?? []
        return (Int(r.status), data, r.retry_after >= 0 ? r.retry_after : nil)
    }

    static func withArrayOfCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
