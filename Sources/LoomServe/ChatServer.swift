// `loom serve`: a Loom model behind the OpenAI chat API, so every OpenAI client (the official Python one, the
// generator's `openai` backend, LangChain, curl) talks to it like to vLLM or llama.cpp's server.
//   GET  /v1/models             the one model served
//   POST /v1/chat/completions   the conversation through the chat template the model was trained with (ChatML);
//                               max_tokens / max_completion_tokens, temperature, top_p, top_k, seed, stop, n = 1;
//                               stream: true sends server-sent events in OpenAI's chunk format (role, content
//                               deltas, finish_reason, then usage when stream_options.include_usage, then [DONE])
//                               response_format (json_schema, or json_object with or without a schema) constrains the
//                               reply to the schema's JSON (LoomGrammar, as the builtin backend does)
// Errors are OpenAI's JSON shape ({"error": {message, type, param, code}}) with 400/401/404/405/413/500; request
// fields OpenAI does not have are a 400, not silently ignored. The HTTP layer is HTTP.swift: a thread per
// connection with limits and timeouts (ServerLimits). Concurrent generations decode together (ChatModel's
// DecodeBatcher: one forward pass per step for up to `maxBatch` requests, each with its own KV cache; more wait
// their turn).

import Foundation
import LoomCore
import LoomTrain

public final class ChatServer: @unchecked Sendable {
    public let model: ChatModel
    public let host: String
    public let limits: ServerLimits
    /// Requests must carry `Authorization: Bearer <apiKey>` when set (401 otherwise).
    let apiKey: String?
    let http: HTTPListener
    let created = Int(Date().timeIntervalSince1970)
    /// Grammars for `response_format` schemas, each compiled once.
    let constraints: SchemaConstraintCache
    private let lock = NSLock()
    private var counter = 0
    private var stopped: CheckedContinuation<Void, Never>?
    private var isStopped = false

    /// Binds to `host` (127.0.0.1 unless told otherwise) at once; port 0 picks a free one (see `port`).
    public init(model: ChatModel, host: String = "127.0.0.1", port: UInt16 = 8000, limits: ServerLimits = ServerLimits(), apiKey: String? = nil) throws {
        self.model = model
        self.host = host
        self.limits = limits
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        constraints = SchemaConstraintCache { SchemaConstraint.trie(for: model.codec, vocabSize: model.model.config.vocabSize) }
        var handle: HTTPListener.Handler = { _, _ in }
        http = try HTTPListener(host: host, port: port, limits: limits) { req, r in handle(req, r) }
        handle = { [unowned self] req, r in self.handle(req, r) }
    }

    /// Whether `host` is a loopback address (anything else is reachable from other machines).
    public static func isLoopback(_ host: String) -> Bool {
        host.hasPrefix("127.") || host == "::1" || host == "localhost"
    }

    /// Serves until `stop` is called (the connections run on threads of their own; this only waits).
    public func run() async throws {
        http.start()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = lock.withLock {
                if isStopped { return true }
                stopped = c
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    /// The socket listens from `init` on; kept for callers that wait for it.
    public func waitUntilListening() async throws {}

    /// The port actually bound.
    public var port: Int { get async { http.port } }

    /// Stops accepting, closes open connections and ends `run`.
    public func stop() async {
        let (first, c): (Bool, CheckedContinuation<Void, Never>?) = lock.withLock {
            if isStopped { return (false, nil) }
            isStopped = true
            defer { stopped = nil }
            return (true, stopped)
        }
        guard first else { return }
        http.stop()
        c?.resume()
    }

    /// A server dropped without `stop` stops here (its connections' handler refers to it unowned).
    deinit {
        if !lock.withLock({ isStopped }) { http.stop() }
    }

    /// Connections refused because `limits.maxConnections` were open.
    public var refusedConnections: Int { http.refused }

    // MARK: - Routes

    func handle(_ req: HTTPRequest, _ r: HTTPResponder) {
        func reply(_ status: Int, _ v: JSONValue) { r.send(status, body: Array((v.jsonString + "\n").utf8)) }
        if let apiKey {
            let given = req.header("authorization").flatMap { h -> String? in
                let p = h.split(separator: " ", maxSplits: 1)
                return p.count == 2 && p[0].lowercased() == "bearer" ? String(p[1]).trimmingCharacters(in: .whitespaces) : nil
            }
            guard let given, Self.sameBytes(given, apiKey) else {
                let m = given == nil
                    ? "this server needs an API key: send it as 'Authorization: Bearer KEY'"
                    : "the API key given is not this server's"
                r.send(401, body: Array(Self.errorBody(m, type: "invalid_request_error", code: "invalid_api_key").utf8),
                    extra: [("WWW-Authenticate", "Bearer")])
                return
            }
        }
        switch (req.method, req.path) {
        case ("GET", "/v1/models"): reply(200, models())
        case (_, "/v1/models"): reply(405, Self.errorJSON("use GET for /v1/models", type: "invalid_request_error"))
        case ("POST", "/v1/chat/completions"): chatCompletions(req.body, r)
        case (_, "/v1/chat/completions"): reply(405, Self.errorJSON("use POST for /v1/chat/completions", type: "invalid_request_error"))
        default:
            reply(404, Self.errorJSON(
                "no route \(req.method) \(req.path) (this server has /v1/models and /v1/chat/completions)",
                type: "invalid_request_error", code: "not_found"))
        }
    }

    /// Compares in time independent of where the strings differ.
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var d = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { d |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return d == 0
    }

    func models() -> JSONValue {
        let m: JSONValue = [
            "id": .string(model.name), "object": "model", "created": .int(created), "owned_by": "loom",
            "max_model_len": .int(model.model.config.maxPositions),
        ]
        return ["object": "list", "data": [m]]
    }

    /// A parsed and checked chat request.
    struct ChatRequest {
        var messages: [(role: String, content: String)]
        var options: SamplingOptions
        var stream: Bool
        var includeUsage: Bool
        /// The JSON schema of `response_format` (nil: free text).
        var schema: JSONValue?
    }

    func chatCompletions(_ body: [UInt8], _ r: HTTPResponder) {
        func fail(_ status: Int, _ v: JSONValue) { r.send(status, body: Array((v.jsonString + "\n").utf8)) }
        var parsed: ChatRequest
        switch parse(Data(body)) {
        case .failure(let e):
            fail(e.status, e.body)
            return
        case .success(let p): parsed = p
        }
        let prompt = model.promptTokens(parsed.messages)
        let context = model.model.config.maxPositions
        if prompt.count >= context {
            fail(400, Self.errorJSON(
                "the conversation has \(prompt.count) tokens; this model's context length is \(context)",
                type: "invalid_request_error", param: "messages", code: "context_length_exceeded"))
            return
        }
        // max_tokens is capped by what the context leaves (the reply then ends with finish_reason "length").
        parsed.options.maxTokens = min(parsed.options.maxTokens, context - prompt.count)
        let constraint: SchemaConstraint?
        do { constraint = try parsed.schema.map { try constraints.constraint(for: $0) } } catch {
            fail(400, Self.errorJSON("response_format: the schema cannot be used: \(error)", type: "invalid_request_error", param: "response_format"))
            return
        }
        let id = nextID()
        if parsed.stream { stream(parsed, constraint, id: id, r) } else { complete(parsed, constraint, id: id, r) }
    }

    func complete(_ q: ChatRequest, _ constraint: SchemaConstraint?, id: String, _ r: HTTPResponder) {
        let conn = r.connection
        let result = Result {
            // A client that hung up stops its generation at the next token.
            try model.reply(q.messages, options: q.options, constraint: constraint) { _ in !conn.clientGone }
        }
        switch result {
        case .failure(let e):
            r.send(500, body: Array((Self.errorJSON("generation failed: \(e)", type: "server_error").jsonString + "\n").utf8))
        case .success(let g):
            Log.info("serve: \(id) \(g.promptTokens) prompt + \(g.completionTokens) completion tokens (\(g.finishReason))")
            let choice: JSONValue = [
                "index": 0, "message": ["role": "assistant", "content": .string(g.text)],
                "logprobs": .null, "finish_reason": .string(g.finishReason),
            ]
            let v: JSONValue = [
                "id": .string(id), "object": "chat.completion", "created": .int(Int(Date().timeIntervalSince1970)),
                "model": .string(model.name), "choices": [choice], "usage": Self.usage(g),
            ]
            r.send(200, body: Array((v.jsonString + "\n").utf8))
        }
    }

    func stream(_ q: ChatRequest, _ constraint: SchemaConstraint?, id: String, _ r: HTTPResponder) {
        let name = model.name
        let created = Int(Date().timeIntervalSince1970)
        func chunk(_ delta: JSONValue, finish: JSONValue = .null) -> [UInt8] {
            let c: JSONValue = ["index": 0, "delta": delta, "logprobs": .null, "finish_reason": finish]
            var o = JSONObject([
                ("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .int(created)),
                ("model", .string(name)), ("choices", [c]),
            ])
            if q.includeUsage { o.append("usage", .null) }
            return Self.event(.object(o))
        }
        let out = r.stream(200, contentType: "text/event-stream")
        out.write(chunk(["role": "assistant", "content": ""]))
        do {
            let g = try model.reply(q.messages, options: q.options, constraint: constraint) { piece in
                out.write(chunk(["content": .string(piece)]))
            }
            out.write(chunk([:], finish: .string(g.finishReason)))
            if q.includeUsage {
                out.write(Self.event([
                    "id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                    "model": .string(name), "choices": [], "usage": Self.usage(g),
                ]))
            }
            Log.info("serve: \(id) streamed \(g.promptTokens) prompt + \(g.completionTokens) completion tokens (\(g.finishReason))\(out.failed ? " (client gone)" : "")")
        } catch {
            out.write(Self.event(["error": ["message": .string("generation failed: \(error)"), "type": "server_error"]]))
        }
        out.write(Array("data: [DONE]\n\n".utf8))
        out.end()
        if out.failed { r.streamFailed() }
    }

    // MARK: - Request parsing

    struct APIError: Error {
        let status: Int
        let body: JSONValue
    }

    /// The request fields of OpenAI's chat completions API this server takes. Others known to OpenAI are accepted
    /// when they ask for the default behaviour (`ignoredAtDefault`); anything else is a 400, as OpenAI answers
    /// "Unrecognized request argument", so a misspelt option is never silently ignored.
    static let knownFields: Set<String> = [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop",
        "stream", "stream_options", "n", "response_format",
    ]
    static let ignoredAtDefault: [String: JSONValue] = [
        "frequency_penalty": 0, "presence_penalty": 0, "logprobs": false, "user": .null, "metadata": .null,
        "store": false, "parallel_tool_calls": .null, "service_tier": .null, "logit_bias": .null, "top_logprobs": .null,
    ]

    func parse(_ body: Data) -> Result<ChatRequest, APIError> {
        func bad(_ m: String, _ param: String? = nil, status: Int = 400, code: String? = nil) -> Result<ChatRequest, APIError> {
            .failure(APIError(status: status, body: Self.errorJSON(m, type: "invalid_request_error", param: param, code: code)))
        }
        let j: JSONValue
        do { j = try JSONValue.parse(String(decoding: body, as: UTF8.self)) } catch {
            return bad("the request body is not JSON: \(error)")
        }
        guard let o = j.objectValue else { return bad("the request body must be a JSON object") }
        for (k, v) in o where !Self.knownFields.contains(k) {
            guard let d = Self.ignoredAtDefault[k] else {
                return bad("unrecognized request argument supplied: '\(k)'", k, code: "unknown_parameter")
            }
            // user, metadata and the like carry any value; the penalties and logprobs only their default.
            if d != .null, v != .null, v != d, !(d.doubleValue != nil && v.doubleValue == d.doubleValue) {
                return bad("'\(k)' is not supported by this server (only its default \(d.jsonString))", k, code: "unsupported_parameter")
            }
        }
        if let m = o["model"], m.stringValue != model.name {
            return bad(
                "the model '\(m.stringValue ?? m.jsonString)' does not exist; this server serves '\(model.name)'", "model",
                status: 404, code: "model_not_found")
        }
        guard let ms = o["messages"]?.arrayValue, !ms.isEmpty else {
            return bad("'messages' must be a non-empty list of {role, content}", "messages")
        }
        var messages: [(role: String, content: String)] = []
        for (i, m) in ms.enumerated() {
            guard let role = m["role"]?.stringValue, ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                return bad("messages[\(i)].role must be system, developer, user, assistant or tool", "messages[\(i)].role")
            }
            var content = ""
            switch m["content"] {
            case .string(let s)?: content = s
            case .array(let parts)?:
                for p in parts {
                    guard p["type"]?.stringValue == "text", let t = p["text"]?.stringValue else {
                        return bad("messages[\(i)].content: only text parts are supported", "messages[\(i)].content")
                    }
                    content += t
                }
            case .null?, nil where role == "assistant": content = ""
            default: return bad("messages[\(i)].content must be a string or a list of text parts", "messages[\(i)].content")
            }
            messages.append((role == "developer" ? "system" : role, content))
        }
        var opt = SamplingOptions(temperature: 1, maxTokens: model.model.config.maxPositions)
        func number(_ k: String) -> Double?? {
            guard let v = o[k], v != .null else { return .some(nil) }
            return v.doubleValue.map { .some($0) } ?? nil
        }
        guard let t = number("temperature") else { return bad("'temperature' must be a number", "temperature") }
        if let t { opt.temperature = t }
        guard let p = number("top_p") else { return bad("'top_p' must be a number", "top_p") }
        if let p { opt.topP = p }
        guard let k = number("top_k") else { return bad("'top_k' must be an integer", "top_k") }
        if let k { opt.topK = k < 0 ? 0 : Int(k) }  // vLLM's -1 means all
        guard let mt = number("max_completion_tokens"), let mt2 = number("max_tokens") else {
            return bad("'max_tokens' must be an integer", "max_tokens")
        }
        if let m = mt ?? mt2 {
            guard m >= 1, m == m.rounded() else { return bad("'max_tokens' must be an integer >= 1", "max_tokens") }
            opt.maxTokens = Int(min(m, 1e9))
        }
        guard let s = number("seed") else { return bad("'seed' must be an integer", "seed") }
        if let s { opt.seed = UInt64(bitPattern: Int64(s)) }
        switch o["stop"] {
        case .string(let s)?: opt.stop = [s]
        case .array(let a)?:
            let s = a.compactMap(\.stringValue)
            guard s.count == a.count, s.count <= 4 else { return bad("'stop' must be a string or up to 4 strings", "stop") }
            opt.stop = s
        case .null?, nil: break
        default: return bad("'stop' must be a string or a list of strings", "stop")
        }
        opt.stop = opt.stop.filter { !$0.isEmpty }
        if let n = o["n"]?.intValue, n != 1 { return bad("only n = 1 is supported", "n") }
        do { try opt.validate() } catch let e as LoomError { return bad(e.message) } catch { return bad("\(error)") }
        let stream = o["stream"]?.boolValue ?? false
        let usage = o["stream_options"]?["include_usage"]?.boolValue ?? false
        var schema: JSONValue?
        switch o["response_format"] {
        case nil, .null?: break
        case .object(let f)?:
            switch f["type"]?.stringValue {
            case "text": break
            case "json_schema":
                guard let s = f["json_schema"]?["schema"], s.objectValue != nil else {
                    return bad("response_format: json_schema needs {\"json_schema\": {\"schema\": {...}}}", "response_format")
                }
                schema = s
            case "json_object":
                // llama-cpp-python's form carries the schema beside the type; without one, any JSON object.
                schema = f["schema"] ?? ["type": "object"]
            default: return bad("response_format.type must be text, json_schema or json_object", "response_format")
            }
            if schema != nil { opt.stop = [] }  // the document's end is the stop (as the builtin backend does)
        default: return bad("response_format must be an object", "response_format")
        }
        return .success(ChatRequest(messages: messages, options: opt, stream: stream, includeUsage: usage, schema: schema))
    }

    func nextID() -> String {
        lock.withLock {
            counter += 1
            return "chatcmpl-loom\(created)-\(counter)"
        }
    }

    // MARK: - Responses

    static func usage(_ g: GenerationResult) -> JSONValue {
        [
            "prompt_tokens": .int(g.promptTokens), "completion_tokens": .int(g.completionTokens),
            "total_tokens": .int(g.promptTokens + g.completionTokens),
        ]
    }

    static func event(_ v: JSONValue) -> [UInt8] { Array(("data: " + v.jsonString + "\n\n").utf8) }

    static func errorJSON(_ message: String, type: String, param: String? = nil, code: String? = nil) -> JSONValue {
        [
            "error": [
                "message": .string(message), "type": .string(type), "param": param.map { .string($0) } ?? .null,
                "code": code.map { .string($0) } ?? .null,
            ]
        ]
    }

    static func errorBody(_ message: String, type: String, param: String? = nil, code: String? = nil) -> String {
        errorJSON(message, type: type, param: param, code: code).jsonString + "\n"
    }

    static func phrase(_ s: Int) -> String {
        [
            100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
        ][s] ?? "Error"
    }
}
