// `loom serve` left running on a network: an API key, a body limit, strict request parsing, timeouts against slow
// clients, a connection cap, max_tokens capped by the context, and clients that hang up mid-reply. Each case talks
// raw HTTP over a socket, so what the server sends is seen byte for byte (no client library smoothing it over).
// The timeouts are set short here (0.5 s) so the slow-client cases finish quickly; nothing asserts how long
// anything took, only what the server answered and that it stayed up.

import Foundation
import LoomCore
import LoomServe
import LoomTensor
import LoomTrain
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A raw client connection.
final class RawClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw LoomError("connect: \(errnoText())") }
        // A hang guard, not a timing assertion: a read that waits this long means the server never answered.
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ s: String) { send(Array(s.utf8)) }
    func send(_ b: [UInt8]) { _ = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// Everything until the server closes (or the hang guard).
    func readAll() -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// One response on a kept-alive connection: the head, then Content-Length bytes.
    func readResponse() -> (status: Int, head: String, body: String) {
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1)
        while !(got.count >= 4 && Array(got.suffix(4)) == [13, 10, 13, 10]) {
            guard recv(fd, &buf, 1, 0) == 1 else { break }
            got.append(buf[0])
        }
        let head = String(decoding: got, as: UTF8.self)
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        var body: [UInt8] = []
        while body.count < length {
            var b = [UInt8](repeating: 0, count: length - body.count)
            let n = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            body += b[0..<n]
        }
        return (status(head), head, String(decoding: body, as: UTF8.self))
    }

    func status(_ head: String) -> Int { head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0 }
}

/// A POST request's bytes.
func post(_ path: String, _ body: String, headers: [String] = [], close: Bool = true) -> String {
    var h = "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
    for x in headers { h += x + "\r\n" }
    if close { h += "Connection: close\r\n" }
    return h + "\r\n" + body
}

final class ServeHardeningTests: XCTestCase {
    var dir = ""
    var model: ChatModel!
    var servers: [(ChatServer, Task<Void, Error>)] = []

    override func setUp() async throws {
        Compute.configure(threads: 2)
        dir = NSTemporaryDirectory() + "loom-serve-hard-" + UUID().uuidString.prefix(8) + "/tiny"
        try makeModelDirectory(dir)
        model = try ChatModel.load(directory: dir)
    }

    override func tearDown() async throws {
        for (s, t) in servers {
            await s.stop()
            t.cancel()
        }
        try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent)
    }

    func start(_ change: (inout ServerLimits) -> Void = { _ in }, apiKey: String? = nil) async throws -> Int {
        var l = ServerLimits()
        l.headerTimeout = 0.5
        l.idleTimeout = 0.5
        l.bodyTimeout = 0.5
        l.maxBodyBytes = 4096
        change(&l)
        let s = try ChatServer(model: model, host: "127.0.0.1", port: 0, limits: l, apiKey: apiKey)
        let t = Task { try await s.run() }
        servers.append((s, t))
        return await s.port
    }

    let hello = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#

    func exchange(_ port: Int, _ request: String) throws -> (status: Int, json: JSONValue?, raw: String) {
        let c = try RawClient(port: port)
        c.send(request)
        let raw = c.readAll()
        let parts = raw.components(separatedBy: "\r\n\r\n")
        return (c.status(raw), try? JSONValue.parse(parts.dropFirst().joined(separator: "\r\n\r\n")), raw)
    }

    func assertError(_ r: (status: Int, json: JSONValue?, raw: String), _ status: Int, code: String? = nil, param: String? = nil,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.raw, file: file, line: line)
        XCTAssertNotNil(r.json?["error"]?["message"]?.stringValue, r.raw, file: file, line: line)
        XCTAssertNotNil(r.json?["error"]?["type"]?.stringValue, r.raw, file: file, line: line)
        if let code { XCTAssertEqual(r.json?["error"]?["code"]?.stringValue, code, r.raw, file: file, line: line) }
        if let param { XCTAssertEqual(r.json?["error"]?["param"]?.stringValue, param, r.raw, file: file, line: line) }
    }

    func testAPIKey() async throws {
        let port = try await start(apiKey: "k3y-1234")
        assertError(try exchange(port, post("/v1/chat/completions", hello)), 401, code: "invalid_api_key")
        assertError(try exchange(port, post("/v1/chat/completions", hello, headers: ["Authorization: Bearer wrong"])), 401, code: "invalid_api_key")
        assertError(try exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n"), 401)
        let ok = try exchange(port, post("/v1/chat/completions", hello, headers: ["Authorization: Bearer k3y-1234"]))
        XCTAssertEqual(ok.status, 200, ok.raw)
        XCTAssertEqual(ok.json?["object"]?.stringValue, "chat.completion")
        XCTAssertEqual(try exchange(port, "GET /v1/models HTTP/1.1\r\nAuthorization: bearer k3y-1234\r\nConnection: close\r\n\r\n").status, 200)
    }

    func testBodyLimitMalformedJSONAndUnknownFields() async throws {
        let port = try await start()
        // Over the limit: 413 from the Content-Length alone, before any of the body is read.
        let c = try RawClient(port: port)
        c.send("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n{")
        let r = c.readAll()
        XCTAssertEqual(c.status(r), 413, r)
        // A chunked body that grows past the limit.
        var chunked = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<5 { chunked += "400\r\n" + String(repeating: " ", count: 1024) + "\r\n" }
        assertError(try exchange(port, chunked + "0\r\n\r\n"), 413)
        // A chunked body within it is read.
        let h = Array(hello.utf8)
        let inChunks = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + String(10, radix: 16) + "\r\n" + String(decoding: h[0..<10], as: UTF8.self) + "\r\n"
            + String(h.count - 10, radix: 16) + "\r\n" + String(decoding: h[10...], as: UTF8.self) + "\r\n0\r\n\r\n"
        XCTAssertEqual(try exchange(port, inChunks).status, 200)

        assertError(try exchange(port, post("/v1/chat/completions", #"{"messages": [}"#)), 400)
        assertError(try exchange(port, post("/v1/chat/completions", "\u{FF}\u{FE}")), 400)
        assertError(
            try exchange(port, post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokns":4}"#)), 400,
            code: "unknown_parameter", param: "max_tokns")
        assertError(
            try exchange(port, post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"frequency_penalty":0.5}"#)),
            400, code: "unsupported_parameter", param: "frequency_penalty")
        // Fields OpenAI clients send with their default values are taken.
        let defaults = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"frequency_penalty":0,"presence_penalty":0.0,"user":"u-1","logprobs":false}"#
        XCTAssertEqual(try exchange(port, post("/v1/chat/completions", defaults)).status, 200)
        assertError(
            try exchange(port, post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}"#)),
            400, param: "response_format")
    }

    func testMalformedRequests() async throws {
        let port = try await start()
        assertError(try exchange(port, "GARBAGE\r\n\r\n"), 400)
        assertError(try exchange(port, "GET /v1/models HTTP/2.0\r\n\r\n"), 505)
        assertError(try exchange(port, "GET /v1/models HTTP/1.1\r\nno colon here\r\n\r\n"), 400)
        assertError(try exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400)
        assertError(try exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -3\r\n\r\n"), 400)
        assertError(try exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"), 400)
        assertError(try exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 501)
        assertError(try exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400)
        assertError(try exchange(port, "GET /v1/models HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 40000) + "\r\n\r\n"), 431)
        // The server is still up and answers.
        XCTAssertEqual(try exchange(port, post("/v1/chat/completions", hello)).status, 200)
    }

    func testSlowClientsAndIdleConnections() async throws {
        let port = try await start()
        // Headers that never finish: 408, then the connection is closed.
        let c = try RawClient(port: port)
        c.send("POST /v1/chat/completions HTTP/1.1\r\nContent-Le")
        let r = c.readAll()
        XCTAssertEqual(c.status(r), 408, r)
        // A byte at a time, slower than the header deadline allows in total (slowloris): 408 as well.
        let slow = try RawClient(port: port)
        let trickle = Task.detached {
            for b in Array("GET /v1/models HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
                slow.send([b])
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        let sr = slow.readAll()
        trickle.cancel()
        XCTAssertEqual(slow.status(sr), 408, sr)
        // A body that stops halfway: 408.
        let half = try RawClient(port: port)
        half.send("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"messages\"")
        let hr = half.readAll()
        XCTAssertEqual(half.status(hr), 408, hr)
        // A connection that never sends anything is closed without an answer.
        let silent = try RawClient(port: port)
        XCTAssertEqual(silent.readAll(), "")
        // Keep-alive: two requests on one connection, then the idle connection is closed.
        let k = try RawClient(port: port)
        k.send(post("/v1/chat/completions", hello, close: false))
        XCTAssertEqual(k.readResponse().status, 200)
        k.send("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        let second = k.readResponse()
        XCTAssertEqual(second.status, 200)
        XCTAssertEqual(try JSONValue.parse(second.body)["object"]?.stringValue, "list")
        XCTAssertEqual(k.readAll(), "")
        // curl's Expect: 100-continue.
        let e = try RawClient(port: port)
        e.send("POST /v1/chat/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: \(hello.utf8.count)\r\nConnection: close\r\n\r\n")
        let cont = e.readResponse()
        XCTAssertEqual(cont.status, 100)
        e.send(hello)
        XCTAssertEqual(e.readResponse().status, 200)
    }

    func testConnectionCap() async throws {
        let port = try await start { $0.maxConnections = 3; $0.headerTimeout = 20 }
        let held = try (0..<3).map { _ in try RawClient(port: port) }
        // The accept thread admits them one by one; wait until all three are counted.
        let server = servers[0].0
        var refused: String?
        for _ in 0..<100 {
            let extra = try RawClient(port: port)
            extra.send(post("/v1/chat/completions", hello))
            let r = extra.readAll()
            if extra.status(r) == 503 {
                refused = r
                break
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let r = try XCTUnwrap(refused, "no 503 with 3 connections held open")
        XCTAssertTrue(r.contains("Retry-After: 1"), r)
        XCTAssertGreaterThanOrEqual(server.refusedConnections, 1)
        for c in held { shutdown(c.fd, Int32(SHUT_RDWR)) }
        // Once they are gone, requests are served again.
        var status = 0
        for _ in 0..<100 where status != 200 {
            status = try exchange(port, post("/v1/chat/completions", hello)).status
            if status != 200 { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        XCTAssertEqual(status, 200)
    }

    func testMaxTokensCappedByContextAndStructuredReply() async throws {
        let port = try await start()
        let r = try exchange(port, post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":100000000}"#))
        XCTAssertEqual(r.status, 200, r.raw)
        let prompt = try XCTUnwrap(r.json?["usage"]?["prompt_tokens"]?.intValue)
        let completion = try XCTUnwrap(r.json?["usage"]?["completion_tokens"]?.intValue)
        let context = model.model.config.maxPositions
        XCTAssertLessThanOrEqual(prompt + completion, context)
        // The same as the model asked in-process for exactly what the context leaves.
        let want = try model.reply([("user", "hi")], options: SamplingOptions(temperature: 1, maxTokens: context - prompt))
        XCTAssertEqual(r.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, want.text)
        XCTAssertEqual(r.json?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, want.finishReason)
        XCTAssertEqual(completion, want.completionTokens)

        // response_format json_schema: the reply is a document of the schema (the random model could not write one
        // unconstrained).
        let schema = #"{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"]}"#
        let body = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":60,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":\#(schema)}}}"#
        let s = try exchange(port, post("/v1/chat/completions", body))
        XCTAssertEqual(s.status, 200, s.raw)
        let text = try XCTUnwrap(s.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue)
        XCTAssertNotNil(try JSONValue.parse(text)["answer"]?.intValue, text)
    }

    func testClientHangingUpMidReply() async throws {
        let port = try await start()
        // Streamed and not: the client sends a long request and hangs up at once; the server stops that
        // generation and keeps serving.
        for stream in [true, false] {
            let c = try RawClient(port: port)
            c.send(post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":200,"stream":\#(stream)}"#))
            if stream {
                var b = [UInt8](repeating: 0, count: 64)
                XCTAssertGreaterThan(recv(c.fd, &b, 64, 0), 0)
            }
            shutdown(c.fd, Int32(SHUT_RDWR))
        }
        XCTAssertEqual(try exchange(port, post("/v1/chat/completions", hello)).status, 200)
        XCTAssertTrue(ChatServer.isLoopback("127.0.0.1") && ChatServer.isLoopback("::1"))
        XCTAssertFalse(ChatServer.isLoopback("0.0.0.0") || ChatServer.isLoopback("192.168.1.4"))
    }

    /// The request reader alone (what the fuzz target drives): pipelined requests, a chunked body with an
    /// extension and a trailer, and where each malformed stream stops.
    func testRequestReaderOnByteStreams() {
        func parse(_ s: String) -> (Int, Int?) {
            let r = parseHTTPStream(Array(s.utf8))
            return (r.requests, r.errorStatus)
        }
        XCTAssertTrue(parse("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /c HTTP/1.0\r\n\r\n") == (3, nil))
        XCTAssertTrue(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n") == (1, nil))
        XCTAssertTrue(parse("\r\n\r\nGET / HTTP/1.1\n\n") == (1, nil))  // leading empty lines, bare LF line ends
        XCTAssertTrue(parse("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n") == (1, 400))
        XCTAssertTrue(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\n") == (0, 400))
        XCTAssertTrue(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXY") == (0, 400))
        XCTAssertTrue(parse("GET / HTTP/1.1\r\n Folded: no\r\n\r\n") == (0, 400))
        // The fuzzer's findings: a signed chunk size (it indexed before the buffer), and a signed Content-Length.
        XCTAssertTrue(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-4\r\nabcd\r\n0\r\n\r\n") == (0, 400))
        XCTAssertTrue(parse("POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}") == (0, 400))
        XCTAssertTrue(parse("GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc") == (0, nil))  // the client went away
        XCTAssertTrue(parse("") == (0, nil))
    }
}
