// `loom serve`: a Loom model behind the OpenAI chat API, so every OpenAI client (the official Python one, the
// generator's `openai` backend, LangChain, curl) talks to it like to vLLM or llama.cpp's server.
//   GET  /v1/models             the one model served
//   POST /v1/chat/completions   the conversation through the chat template the model was trained with (ChatML);
//                               max_tokens / max_completion_tokens, temperature, top_p, top_k, seed, stop, n = 1;
//                               stream: true sends server-sent events in OpenAI's chunk format (role, content
//                               deltas, finish_reason, then usage when stream_options.include_usage, then [DONE])
// Errors are OpenAI's JSON shape ({"error": {message, type, param, code}}) with 400/404/405/500. The HTTP layer is
// FlyingFox (no SwiftNIO: it builds in seconds). Each generation runs on a thread of its own and concurrent ones
// decode together (ChatModel's DecodeBatcher: one forward pass per step for up to `maxBatch` requests, each with its
// own KV cache; more wait their turn); the async HTTP side never blocks on the model.

import FlyingFox
import FlyingSocks
import Foundation
import LoomCore
import LoomTrain

// FlyingFox has a JSONValue of its own.
typealias JSONValue = LoomCore.JSONValue

public final class ChatServer: @unchecked Sendable {
    public let model: ChatModel
    public let host: String
    public let requestedPort: UInt16
    let server: HTTPServer
    /// A queue per request: serial queues get threads of their own (the global concurrent queue runs about one block
    /// per core, which would keep all but two requests out of the batch on this machine).
    func requestQueue() -> DispatchQueue { DispatchQueue(label: "loom.serve.request") }
    let created = Int(Date().timeIntervalSince1970)
    private let lock = NSLock()
    private var counter = 0

    /// Binds to `host` (127.0.0.1 unless told otherwise); port 0 picks a free one (see `port` once listening).
    public init(model: ChatModel, host: String = "127.0.0.1", port: UInt16 = 8000) throws {
        self.model = model
        self.host = host
        requestedPort = port
        let address: any SocketAddress
        do {
            address = host.contains(":") ? try sockaddr_in6.inet6(ip6: host, port: port) : try sockaddr_in.inet(ip4: host, port: port)
        } catch {
            throw LoomError("serve: '\(host)' is not an IPv4 or IPv6 address (use 127.0.0.1, 0.0.0.0 or ::1)")
        }
        server = HTTPServer(config: .init(address: address, timeout: 600, logger: .disabled))
    }

    /// Serves until the task is cancelled or `stop` is called.
    public func run() async throws {
        await server.appendRoute("GET /v1/models") { [self] _ in models() }
        await server.appendRoute("POST /v1/chat/completions") { [self] req in await chatCompletions(req) }
        await server.appendRoute("/v1/models") { _ in Self.error(405, "use GET for /v1/models", type: "invalid_request_error") }
        await server.appendRoute("/v1/chat/completions") { _ in
            Self.error(405, "use POST for /v1/chat/completions", type: "invalid_request_error")
        }
        await server.appendRoute("*") { req in
            Self.error(404, "no route \(req.method.rawValue) \(req.path) (this server has /v1/models and /v1/chat/completions)",
                type: "invalid_request_error", code: "not_found")
        }
        try await server.run()
    }

    /// Waits until the socket listens (for tests and the start-up line).
    public func waitUntilListening() async throws { try await server.waitUntilListening(timeout: 10) }

    /// The port actually bound.
    public var port: Int {
        get async {
            switch await server.listeningAddress {
            case .ip4(_, let p)?, .ip6(_, let p)?: return Int(p)
            default: return Int(requestedPort)
            }
        }
    }

    public func stop() async { await server.stop(timeout: 1) }

    // MARK: - Routes

    func models() -> HTTPResponse {
        let m: JSONValue = [
            "id": .string(model.name), "object": "model", "created": .int(created), "owned_by": "loom",
            "max_model_len": .int(model.model.config.maxPositions),
        ]
        return Self.json(200, ["object": "list", "data": [m]])
    }

    /// A parsed and checked chat request.
    struct ChatRequest {
        var messages: [(role: String, content: String)]
        var options: SamplingOptions
        var stream: Bool
        var includeUsage: Bool
    }

    func chatCompletions(_ req: HTTPRequest) async -> HTTPResponse {
        let body: Data
        do { body = try await req.bodyData } catch {
            return Self.error(400, "could not read the request body: \(error)", type: "invalid_request_error")
        }
        let parsed: ChatRequest
        switch parse(body) {
        case .failure(let e): return e.response
        case .success(let r): parsed = r
        }
        let prompt = model.promptTokens(parsed.messages)
        if prompt.count >= model.model.config.maxPositions {
            return Self.error(
                400,
                "the conversation has \(prompt.count) tokens; this model's context length is \(model.model.config.maxPositions)",
                type: "invalid_request_error", param: "messages", code: "context_length_exceeded")
        }
        let id = nextID()
        return parsed.stream ? stream(parsed, id: id) : await complete(parsed, id: id)
    }

    func complete(_ r: ChatRequest, id: String) async -> HTTPResponse {
        let model = self.model
        let result: Result<GenerationResult, Error> = await withCheckedContinuation { cont in
            requestQueue().async { cont.resume(returning: Result { try model.reply(r.messages, options: r.options) }) }
        }
        switch result {
        case .failure(let e):
            return Self.error(500, "generation failed: \(e)", type: "server_error")
        case .success(let g):
            Log.info("serve: \(id) \(g.promptTokens) prompt + \(g.completionTokens) completion tokens (\(g.finishReason))")
            let choice: JSONValue = [
                "index": 0, "message": ["role": "assistant", "content": .string(g.text)],
                "logprobs": .null, "finish_reason": .string(g.finishReason),
            ]
            return Self.json(200, [
                "id": .string(id), "object": "chat.completion", "created": .int(Int(Date().timeIntervalSince1970)),
                "model": .string(model.name), "choices": [choice], "usage": Self.usage(g),
            ])
        }
    }

    func stream(_ r: ChatRequest, id: String) -> HTTPResponse {
        let (events, cont) = AsyncStream<Data>.makeStream(bufferingPolicy: .unbounded)
        let gone = Flag()
        cont.onTermination = { _ in gone.set() }
        let model = self.model, name = model.name
        let created = Int(Date().timeIntervalSince1970)
        @Sendable func chunk(_ delta: JSONValue, finish: JSONValue = .null) -> Data {
            let c: JSONValue = ["index": 0, "delta": delta, "logprobs": .null, "finish_reason": finish]
            var o = JSONObject([
                ("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .int(created)),
                ("model", .string(name)), ("choices", [c]),
            ])
            if r.includeUsage { o.append("usage", .null) }
            return Self.event(.object(o))
        }
        requestQueue().async {
            cont.yield(chunk(["role": "assistant", "content": ""]))
            do {
                let g = try model.reply(r.messages, options: r.options) { piece in
                    cont.yield(chunk(["content": .string(piece)]))
                    return !gone.isSet
                }
                cont.yield(chunk([:], finish: .string(g.finishReason)))
                if r.includeUsage {
                    cont.yield(Self.event([
                        "id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                        "model": .string(name), "choices": [], "usage": Self.usage(g),
                    ]))
                }
                Log.info("serve: \(id) streamed \(g.promptTokens) prompt + \(g.completionTokens) completion tokens (\(g.finishReason))")
            } catch {
                cont.yield(Self.event(["error": ["message": .string("generation failed: \(error)"), "type": "server_error"]]))
            }
            cont.yield(Data("data: [DONE]\n\n".utf8))
            cont.finish()
        }
        return HTTPResponse(
            statusCode: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"],
            body: HTTPBodySequence(from: DataStreamBytes(events)))
    }

    // MARK: - Request parsing

    struct APIError: Error {
        let response: HTTPResponse
    }

    func parse(_ body: Data) -> Result<ChatRequest, APIError> {
        func bad(_ m: String, _ param: String? = nil, status: Int = 400, code: String? = nil) -> Result<ChatRequest, APIError> {
            .failure(APIError(response: Self.error(status, m, type: "invalid_request_error", param: param, code: code)))
        }
        let j: JSONValue
        do { j = try JSONValue.parse(String(decoding: body, as: UTF8.self)) } catch {
            return bad("the request body is not JSON: \(error)")
        }
        guard let o = j.objectValue else { return bad("the request body must be a JSON object") }
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
        return .success(ChatRequest(messages: messages, options: opt, stream: stream, includeUsage: usage))
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

    static func json(_ status: Int, _ v: JSONValue) -> HTTPResponse {
        HTTPResponse(
            statusCode: HTTPStatusCode(status, phrase: phrase(status)), headers: [.contentType: "application/json"],
            body: Data((v.jsonString + "\n").utf8))
    }

    static func event(_ v: JSONValue) -> Data { Data(("data: " + v.jsonString + "\n\n").utf8) }

    static func error(_ status: Int, _ message: String, type: String, param: String? = nil, code: String? = nil) -> HTTPResponse {
        json(status, [
            "error": [
                "message": .string(message), "type": .string(type), "param": param.map { .string($0) } ?? .null,
                "code": code.map { .string($0) } ?? .null,
            ]
        ])
    }

    static func phrase(_ s: Int) -> String {
        [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"][s] ?? "Error"
    }
}

/// A flag set from one thread and read from another.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// The bytes of a stream of Data pieces, one piece per buffer (so each server-sent event is written as soon as it
/// is produced: FlyingFox sends every buffer as one HTTP chunk).
struct DataStreamBytes: AsyncBufferedSequence, Sendable {
    typealias Element = UInt8
    let stream: AsyncStream<Data>
    init(_ stream: AsyncStream<Data>) { self.stream = stream }
    func makeAsyncIterator() -> Iterator { Iterator(base: stream.makeAsyncIterator()) }

    struct Iterator: AsyncBufferedIteratorProtocol {
        var base: AsyncStream<Data>.Iterator
        var pending: [UInt8] = []
        var at = 0

        mutating func fill() async -> Bool {
            while at >= pending.count {
                guard let d = await base.next() else { return false }
                pending = Array(d)
                at = 0
            }
            return true
        }

        mutating func next() async throws -> UInt8? {
            guard await fill() else { return nil }
            at += 1
            return pending[at - 1]
        }

        mutating func nextBuffer(suggested count: Int) async throws -> ArraySlice<UInt8>? {
            guard await fill() else { return nil }
            let n = Swift.min(Swift.max(1, count), pending.count - at)
            defer { at += n }
            return pending[at..<(at + n)]
        }
    }
}
