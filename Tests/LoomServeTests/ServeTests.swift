// `loom serve` end to end on loopback: /v1/models, chat completions with and without streaming (the same reply as
// the model run in-process), OpenAI-style errors, the generator's `openai` backend, and the official `openai`
// Python client (Benchmarks/peers/serve_check.py, when python3 has it).

import Foundation
import LoomCore
import LoomGenerate
import LoomServe
import LoomTensor
import LoomTrain
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A random byte-level model saved in a directory (no tokenizer.json: the byte vocabulary, as `loom train` does).
func makeModelDirectory(_ dir: String, seed: UInt64 = 5) throws {
    let c = LlamaConfig(
        vocabSize: ByteCodec().vocabSize, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2,
        maxPositions: 256)
    let m = try LlamaModel(config: c)
    m.initialize(seed: seed, std: 0.3)
    try m.save(directory: dir)
}

struct HTTPReply {
    var status: Int
    var body: String
    var contentType: String?
    var json: JSONValue? { try? JSONValue.parse(body) }
}

func http(_ method: String, _ url: String, body: String? = nil) throws -> HTTPReply {
    var req = URLRequest(url: URL(string: url)!)
    req.httpMethod = method
    if let body {
        req.httpBody = Data(body.utf8)
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: (Data?, URLResponse?, Error?) = (nil, nil, nil)
    URLSession.shared.dataTask(with: req) { d, r, e in
        result = (d, r, e)
        done.signal()
    }.resume()
    done.wait()
    if let e = result.2 { throw e }
    let h = result.1 as! HTTPURLResponse
    return HTTPReply(
        status: h.statusCode, body: String(decoding: result.0 ?? Data(), as: UTF8.self),
        contentType: h.value(forHTTPHeaderField: "Content-Type"))
}

/// Runs a Python script (through `python`, e.g. /usr/bin/env with "python3" first in `arguments`) and returns its
/// exit status and standard output, waiting without blocking this process's threads (the server under test answers
/// on them).
func runPython(_ python: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = arguments
    let outFile = NSTemporaryDirectory() + "serve-python-\(UUID().uuidString).json"
    FileManager.default.createFile(atPath: outFile, contents: nil)
    let h = try FileHandle(forWritingTo: URL(fileURLWithPath: outFile))
    p.standardOutput = h
    try p.run()
    while p.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
    try h.close()
    let out = try FS.readText(outFile)
    try? FileManager.default.removeItem(atPath: outFile)
    return (p.terminationStatus, out)
}

final class ServeTests: XCTestCase {
    var dir = ""
    var model: ChatModel!
    var server: ChatServer!
    var task: Task<Void, Error>?
    var base = ""

    override func setUp() async throws {
        Compute.configure(threads: 2)
        dir = NSTemporaryDirectory() + "loom-serve-" + UUID().uuidString.prefix(8) + "/tiny"
        try makeModelDirectory(dir)
        model = try ChatModel.load(directory: dir)
        server = try ChatServer(model: model, host: "127.0.0.1", port: 0)
        let s = server!
        task = Task { try await s.run() }
        try await s.waitUntilListening()
        base = "http://127.0.0.1:\(await s.port)/v1"
    }

    override func tearDown() async throws {
        await server.stop()
        task?.cancel()
        try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent)
    }

    let messages: [(role: String, content: String)] = [("system", "You are terse."), ("user", "Name three colours.")]
    var messagesJSON: String {
        JSONValue.array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }).jsonString
    }

    /// The reply of the model run in-process, greedy.
    func direct(_ maxTokens: Int, stop: [String] = []) throws -> GenerationResult {
        try model.reply(messages, options: SamplingOptions(maxTokens: maxTokens, stop: stop))
    }

    func testModelsAndCompletion() async throws {
        let models = try http("GET", base + "/models")
        XCTAssertEqual(models.status, 200)
        XCTAssertEqual(models.json?["data"]?.arrayValue?.first?["id"]?.stringValue, "tiny")
        XCTAssertEqual(models.json?["object"]?.stringValue, "list")

        let r = try http(
            "POST", base + "/chat/completions",
            body: #"{"model":"tiny","messages":\#(messagesJSON),"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let want = try direct(12)
        let j = try XCTUnwrap(r.json)
        XCTAssertEqual(j["object"]?.stringValue, "chat.completion")
        XCTAssertEqual(j["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, want.text)
        XCTAssertEqual(j["choices"]?.arrayValue?.first?["message"]?["role"]?.stringValue, "assistant")
        XCTAssertEqual(j["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, want.finishReason)
        XCTAssertEqual(j["usage"]?["prompt_tokens"]?.intValue, model.promptTokens(messages).count)
        XCTAssertEqual(j["usage"]?["completion_tokens"]?.intValue, want.completionTokens)
        XCTAssertEqual(j["usage"]?["total_tokens"]?.intValue, want.promptTokens + want.completionTokens)

        // A seeded sampled reply repeats; another seed (almost surely) differs.
        func sampled(_ seed: Int) throws -> String? {
            try http(
                "POST", base + "/chat/completions",
                body: #"{"messages":\#(messagesJSON),"max_tokens":20,"temperature":1.2,"top_p":0.95,"seed":\#(seed)}"#
            ).json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue
        }
        XCTAssertEqual(try sampled(3), try sampled(3))
        XCTAssertNotEqual(try sampled(3), try sampled(4))
    }

    /// Streaming: a role chunk, content deltas that add up to the non-streamed reply, a finish_reason chunk, a
    /// usage chunk (include_usage), then [DONE].
    func testStreaming() async throws {
        let want = try direct(16)
        XCTAssertEqual(want.completionTokens, 16)  // the tiny model does not stop early: a real stream of pieces
        let r = try http(
            "POST", base + "/chat/completions",
            body: #"{"model":"tiny","messages":\#(messagesJSON),"max_tokens":16,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.contentType, "text/event-stream")
        let events = r.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        XCTAssertTrue(events.allSatisfy { $0.hasPrefix("data: ") })
        XCTAssertEqual(events.last, "data: [DONE]")
        let chunks = events.dropLast().compactMap { try? JSONValue.parse(String($0.dropFirst(6))) }
        XCTAssertEqual(chunks.count, events.count - 1)
        XCTAssertTrue(chunks.allSatisfy { $0["object"]?.stringValue == "chat.completion.chunk" })
        XCTAssertEqual(chunks.first?["choices"]?.arrayValue?.first?["delta"]?["role"]?.stringValue, "assistant")
        let text = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
        XCTAssertEqual(text, want.text)
        XCTAssertGreaterThan(chunks.count, 6)
        let finishes = chunks.compactMap { $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue }
        XCTAssertEqual(finishes, [want.finishReason])
        let usage = try XCTUnwrap(chunks.last?["usage"])
        XCTAssertEqual(chunks.last?["choices"]?.arrayValue?.count, 0)
        XCTAssertEqual(usage["completion_tokens"]?.intValue, want.completionTokens)
        XCTAssertEqual(usage["prompt_tokens"]?.intValue, want.promptTokens)
    }

    /// A stop string cuts both replies at the same place.
    func testStopString() async throws {
        let free = try direct(24)
        let chars = Array(free.text)
        guard chars.count > 8 else { throw XCTSkip("reply too short to pick a stop string") }
        let stop = String(chars[5...6])
        let want = try direct(24, stop: [stop])
        XCTAssertEqual(want.finishReason, "stop")
        let stopJSON = JSONValue.string(stop).jsonString
        for stream in [false, true] {
            let r = try http(
                "POST", base + "/chat/completions",
                body: #"{"messages":\#(messagesJSON),"max_tokens":24,"temperature":0,"stop":[\#(stopJSON)],"stream":\#(stream)}"#)
            XCTAssertEqual(r.status, 200)
            if stream {
                let text = r.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }
                    .compactMap { try? JSONValue.parse(String($0.dropFirst(6))) }
                    .compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
                XCTAssertEqual(text, want.text)
            } else {
                XCTAssertEqual(r.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, want.text)
                XCTAssertEqual(r.json?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, "stop")
            }
        }
    }

    func testErrorsAreOpenAIShaped() async throws {
        func check(_ r: HTTPReply, _ status: Int, param: String? = nil, code: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(r.status, status, r.body, file: file, line: line)
            XCTAssertEqual(r.contentType, "application/json", file: file, line: line)
            let e = r.json?["error"]
            XCTAssertNotNil(e?["message"]?.stringValue, r.body, file: file, line: line)
            XCTAssertNotNil(e?["type"]?.stringValue, file: file, line: line)
            if let param { XCTAssertEqual(e?["param"]?.stringValue, param, file: file, line: line) }
            if let code { XCTAssertEqual(e?["code"]?.stringValue, code, file: file, line: line) }
        }
        let url = base + "/chat/completions"
        check(try http("POST", url, body: #"{"model":"gpt-4","messages":\#(messagesJSON)}"#), 404, code: "model_not_found")
        check(try http("POST", url, body: "{not json"), 400)
        check(try http("POST", url, body: #"{"messages":[]}"#), 400, param: "messages")
        check(try http("POST", url, body: #"{"messages":[{"role":"wizard","content":"x"}]}"#), 400, param: "messages[0].role")
        check(try http("POST", url, body: #"{"messages":\#(messagesJSON),"temperature":"hot"}"#), 400, param: "temperature")
        check(try http("POST", url, body: #"{"messages":\#(messagesJSON),"max_tokens":0}"#), 400, param: "max_tokens")
        check(try http("POST", url, body: #"{"messages":\#(messagesJSON),"n":2}"#), 400, param: "n")
        check(try http("POST", url, body: #"{"messages":\#(messagesJSON),"top_p":0}"#), 400)
        let long = String(repeating: "x", count: 300)
        check(
            try http("POST", url, body: #"{"messages":[{"role":"user","content":"\#(long)"}]}"#), 400, param: "messages",
            code: "context_length_exceeded")
        check(try http("GET", url), 405)
        check(try http("GET", base + "/completions"), 404)
    }

    /// The generator's `openai` backend against `loom serve`: the same reply as the model in-process.
    func testGeneratorOpenAIBackendEndToEnd() async throws {
        var c = OpenAIConfig()
        c.baseURL = base
        c.model = "tiny"
        c.temperature = 0
        c.maxTokens = 12
        c.retries = 0
        let backend = try OpenAIBackend(config: c, cache: nil)
        let got = try await Task.detached { [messages] in try backend.complete(messages) }.value
        XCTAssertEqual(got, try direct(12).text)
    }

    /// The official `openai` Python client: chat.completions.create, streaming and not, models.list, and its
    /// NotFoundError for an unknown model.
    func testOfficialPythonClient() async throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import openai"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            throw XCTSkip("python3 with the openai client not installed (pip install openai): client check skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
        }
        let (status, out) = try await runPython(
            "/usr/bin/env", ["python3", packageRoot + "/Benchmarks/peers/serve_check.py", "--base-url", base, "--model", "tiny", "--max-tokens", "16"])
        XCTAssertEqual(status, 0, out)
        let j = try JSONValue.parse(out.trimmingCharacters(in: .whitespacesAndNewlines))
        let want = try direct(16)
        XCTAssertEqual(j["models"]?.arrayValue?.first?.stringValue, "tiny")
        XCTAssertEqual(j["text"]?.stringValue, want.text)
        XCTAssertEqual(j["stream_text"]?.stringValue, want.text)
        XCTAssertEqual(j["finish_reason"]?.stringValue, want.finishReason)
        XCTAssertEqual(j["stream_finish_reason"]?.stringValue, want.finishReason)
        XCTAssertEqual(j["stream_roles"]?.arrayValue?.compactMap(\.stringValue), ["assistant"])
        XCTAssertEqual(j["usage"]?["completion_tokens"]?.intValue, want.completionTokens)
        XCTAssertEqual(j["stream_usage"]?["completion_tokens"]?.intValue, want.completionTokens)
        XCTAssertEqual(j["stream_usage"]?["prompt_tokens"]?.intValue, want.promptTokens)
        XCTAssertEqual(j["not_found"]?["status"]?.intValue, 404)
        XCTAssertGreaterThan(j["stream_pieces"]?.intValue ?? 0, 1)
        XCTAssertFalse(want.text.isEmpty)
    }
}
