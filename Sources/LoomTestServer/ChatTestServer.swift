// A loopback OpenAI-compatible chat server for tests and benchmarks: configurable latency and injected faults
// (HTTP 500/503, 429 with Retry-After, truncated JSON, dropped connections, answers slower than the client's
// timeout). Not part of the product: the generator's tests and `loom-bench` start it in-process.

import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

public final class ChatTestServer: @unchecked Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        case serverError, rateLimited, unavailable, truncatedJSON, dropConnection, tooSlow
    }

    /// Seconds added to every answer.
    public var latency: Double
    /// Share of requests that get a fault (chosen by a seeded generator per request).
    public var faultRate: Double
    /// How long a `tooSlow` answer takes (set above the client's timeout).
    public var slowDelay: Double = 3
    /// The faults to choose from.
    public var kinds = Fault.allCases
    public let answer: @Sendable (String) -> String

    private var listener: Int32 = -1
    private let lock = NSLock()
    private var _requests = 0
    private var _faults: [Fault: Int] = [:]
    private var _answered: [String: Int] = [:]
    private var _received: [(path: String, body: JSONValue)] = []
    private var rng: SplitMix64
    public private(set) var port = 0

    public init(latency: Double = 0, faultRate: Double = 0, seed: UInt64 = 1, answer: @escaping @Sendable (String) -> String) {
        self.latency = latency
        self.faultRate = faultRate
        self.answer = answer
        rng = SplitMix64(seed: seed)
    }

    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    public var requests: Int { lock.withLock { _requests } }
    public var faults: [Fault: Int] { lock.withLock { _faults } }
    /// How many times each prompt (last user message) was answered successfully.
    public var answered: [String: Int] { lock.withLock { _answered } }
    /// Every request's path (e.g. /v1/chat/completions) and JSON body, in arrival order.
    public var received: [(path: String, body: JSONValue)] { lock.withLock { _received } }

    public func start() throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw LoomError("test server: socket: \(errnoText())") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 512) == 0 else { throw LoomError("test server: bind/listen: \(errnoText())") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let fd = listener
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Thread.detachNewThread { [self] in handle(c) }
            }
        }
    }

    public func stop() {
        if listener >= 0 {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            listener = -1
        }
    }

    deinit { stop() }

    private func handle(_ fd: Int32) {
        defer { close(fd) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        var headerEnd = -1
        var contentLength = 0
        var path = ""
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { return }
            data += buf[0..<n]
            if headerEnd < 0, let r = find(data, Array("\r\n\r\n".utf8)) {
                headerEnd = r + 4
                let head = String(decoding: data[0..<r], as: UTF8.self).lowercased()
                path = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if headerEnd >= 0 && data.count - headerEnd >= contentLength { break }
        }
        let body = Array(data[headerEnd..<(headerEnd + contentLength)])
        let request = (try? body.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }) ?? .null
        // /v1/completions sends the text to continue as `prompt` and reads `choices[0].text` back.
        let plain = path.hasSuffix("/completions") && !path.hasSuffix("/chat/completions")
        let prompt = (plain ? request["prompt"]?.stringValue : request["messages"]?.arrayValue?.last?["content"]?.stringValue) ?? ""
        let completion = { (text: String) in self.completion(text, plain: plain) }
        let fault: Fault? = lock.withLock {
            _requests += 1
            _received.append((path, request))
            let r = Double(rng.next() % 1_000_000) / 1_000_000
            guard r < faultRate else { return nil }
            let f = kinds[rng.below(kinds.count)]
            _faults[f, default: 0] += 1
            return f
        }
        if latency > 0 { Thread.sleep(forTimeInterval: latency) }
        switch fault {
        case .serverError?: respond(fd, status: "500 Internal Server Error", body: "{\"error\":\"injected\"}")
        case .unavailable?: respond(fd, status: "503 Service Unavailable", body: "{\"error\":\"injected\"}")
        case .rateLimited?:
            respond(fd, status: "429 Too Many Requests", body: "{\"error\":\"slow down\"}", extra: "Retry-After: 0\r\n")
        case .truncatedJSON?:
            let full = completion(answer(prompt))
            respond(fd, status: "200 OK", body: String(full.prefix(full.count / 2)))
        case .dropConnection?: return
        case .tooSlow?:
            Thread.sleep(forTimeInterval: slowDelay)
            respond(fd, status: "200 OK", body: completion(answer(prompt)))
        case nil:
            respond(fd, status: "200 OK", body: completion(answer(prompt)))
            lock.withLock { _answered[prompt, default: 0] += 1 }
        }
    }

    private func completion(_ text: String, plain: Bool) -> String {
        var choice = JSONObject()
        choice.append("index", 0)
        if plain {
            choice.append("text", .string(text))
        } else {
            var message = JSONObject()
            message.append("role", "assistant")
            message.append("content", .string(text))
            choice.append("message", .object(message))
        }
        choice.append("finish_reason", "stop")
        var o = JSONObject()
        o.append("id", plain ? "cmpl-test" : "chatcmpl-test")
        o.append("object", plain ? "text_completion" : "chat.completion")
        o.append("choices", .array([.object(choice)]))
        return JSONValue.object(o).jsonString
    }

    private func respond(_ fd: Int32, status: String, body: String, extra: String = "") {
        let bytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n\(extra)Connection: close\r\n\r\n"
        let all = Array(head.utf8) + bytes
        var off = 0
        while off < all.count {
            let n = all[off...].withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            off += n
        }
    }

    private func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }
}
