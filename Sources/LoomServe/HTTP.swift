// The HTTP/1.1 layer of `loom serve`: a listening socket, a thread per connection, and the limits that make a
// server safe to leave running on a network: a cap on connections, on the request head and on the body, deadlines
// for the head (against slow clients that send a byte at a time), for the body and between kept-alive requests,
// and a write timeout against clients that stop reading. Every request is parsed strictly (RFC 9112): a malformed
// request line or header, a bad Content-Length, both Content-Length and Transfer-Encoding, or an unknown transfer
// coding closes the connection after one error response.
//
// A thread per connection keeps generation simple: the handler runs on the connection's thread, blocks in the
// model's batcher while its request decodes with the others, and streams server-sent events straight to the
// socket; a failed write (the client went away) stops that request's generation at the next token.

import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

/// What one connection and one request may cost.
public struct ServerLimits: Sendable {
    /// Largest request body in bytes (413 beyond it).
    public var maxBodyBytes = 8 << 20
    /// Largest request line plus headers in bytes (431 beyond it).
    public var maxHeaderBytes = 32 << 10
    /// Seconds for a request's line and headers to arrive, counted from the connection's opening or the request's
    /// first byte (408 and close when they do not).
    public var headerTimeout: Double = 10
    /// Seconds for the body to arrive once the headers are in.
    public var bodyTimeout: Double = 60
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    public var idleTimeout: Double = 30
    /// Seconds a write may wait on a client that does not read.
    public var writeTimeout: Double = 60
    /// Most connections open at once; one more gets 503 and is closed.
    public var maxConnections = 256

    public init() {}
}

/// One parsed request.
struct HTTPRequest {
    var method: String
    /// The path without the query string.
    var path: String
    var version: String
    /// Header names in lower case, in arrival order.
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep it.
    var keepAlive: Bool {
        let c = header("connection")?.lowercased() ?? ""
        return version == "HTTP/1.0" ? c.contains("keep-alive") : !c.contains("close")
    }
}

/// Why a request could not be read: the status to answer (nil: close without answering).
struct HTTPReadError: Error {
    var status: Int?
    var message: String
}

func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// One client connection: a blocking socket read through poll() with deadlines, written with a send timeout.
final class HTTPConnection {
    let fd: Int32
    let limits: ServerLimits
    private var buffer: [UInt8] = []
    private(set) var served = 0

    init(fd: Int32, limits: ServerLimits) {
        self.fd = fd
        self.limits = limits
        var tv = timeval(tv_sec: Int(limits.writeTimeout), tv_usec: Int((limits.writeTimeout.truncatingRemainder(dividingBy: 1)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads what has arrived into the buffer, waiting until `deadline`. False when the deadline passed; throws
    /// when the peer closed or the socket failed.
    private func fill(until deadline: Double) throws -> Bool {
        let wait = deadline - monotonicSeconds()
        if wait <= 0 { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, Int32(min(wait * 1000 + 1, 2_000_000_000)))
        if n == 0 { return false }
        if n < 0 { if errno == EINTR { return true }; throw HTTPReadError(status: nil, message: "poll: \(errnoText())") }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if got == 0 { throw HTTPReadError(status: nil, message: "closed by the client") }
        if got < 0 {
            if errno == EINTR || errno == EAGAIN { return true }
            throw HTTPReadError(status: nil, message: "recv: \(errnoText())")
        }
        buffer.append(contentsOf: chunk[0..<got])
        return true
    }

    /// The next request, or nil when the client closed or stayed silent past the idle (or, on a new connection,
    /// the header) timeout without starting one. Throws `HTTPReadError` with the status to answer.
    func readRequest() throws -> HTTPRequest? {
        let opened = monotonicSeconds()
        if buffer.isEmpty {
            let wait = served == 0 ? limits.headerTimeout : limits.idleTimeout
            do { guard try fill(until: opened + wait) else { return nil } } catch { return nil }
        }
        // Request line and headers, within the header timeout and size.
        let headDeadline = (served == 0 ? opened : monotonicSeconds()) + limits.headerTimeout
        var end: Int?
        var searched = 0
        while true {
            // RFC 9112 §2.2: empty lines before the request line are ignored.
            if let first = buffer.firstIndex(where: { $0 != 13 && $0 != 10 }), first > 0 {
                buffer.removeFirst(first)
                searched = 0
            } else if buffer.allSatisfy({ $0 == 13 || $0 == 10 }) {
                buffer.removeAll()
                searched = 0
            }
            if let e = Self.headEnd(buffer, from: max(0, searched - 3)) {
                end = e
                break
            }
            searched = buffer.count
            if buffer.count > limits.maxHeaderBytes {
                throw HTTPReadError(status: 431, message: "the request line and headers exceed \(limits.maxHeaderBytes) bytes")
            }
            guard try fill(until: headDeadline) else {
                throw HTTPReadError(status: 408, message: "the request headers did not arrive within \(Int(limits.headerTimeout)) s")
            }
        }
        let headEnd = end!
        if headEnd > limits.maxHeaderBytes {
            throw HTTPReadError(status: 431, message: "the request line and headers exceed \(limits.maxHeaderBytes) bytes")
        }
        var request = try Self.parseHead(buffer[0..<headEnd])
        buffer.removeFirst(headEnd)

        // The body.
        let te = request.header("transfer-encoding"), cls = request.headers.filter { $0.name == "content-length" }.map(\.value)
        if te != nil && !cls.isEmpty {
            throw HTTPReadError(status: 400, message: "a request may not have both Content-Length and Transfer-Encoding")
        }
        let bodyDeadline = monotonicSeconds() + limits.bodyTimeout
        if let te {
            guard te.split(separator: ",").last.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) == "chunked" else {
                throw HTTPReadError(status: 501, message: "transfer coding '\(te)' is not supported (only chunked)")
            }
            try continueIfExpected(request)
            request.body = try readChunked(until: bodyDeadline)
        } else if !cls.isEmpty {
            guard Set(cls).count == 1, !cls[0].isEmpty, cls[0].allSatisfy({ $0 >= "0" && $0 <= "9" }), let n = Int(cls[0]) else {
                throw HTTPReadError(status: 400, message: "bad Content-Length '\(cls.joined(separator: ", "))'")
            }
            if n > limits.maxBodyBytes {
                throw HTTPReadError(status: 413, message: "the request body has \(n) bytes; this server takes at most \(limits.maxBodyBytes)")
            }
            try continueIfExpected(request)
            while buffer.count < n {
                guard try fill(until: bodyDeadline) else {
                    throw HTTPReadError(status: 408, message: "the request body did not arrive within \(Int(limits.bodyTimeout)) s")
                }
            }
            request.body = Array(buffer[0..<n])
            buffer.removeFirst(n)
        }
        served += 1
        return request
    }

    /// `Expect: 100-continue` (curl sends it for bodies over 1 KB): say go on before reading the body.
    private func continueIfExpected(_ r: HTTPRequest) throws {
        if r.header("expect")?.lowercased() == "100-continue", r.version == "HTTP/1.1" {
            try write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
    }

    /// A chunked body (RFC 9112 §7.1), size-limited; trailers are read and dropped.
    private func readChunked(until deadline: Double) throws -> [UInt8] {
        var body: [UInt8] = []
        func line() throws -> [UInt8] {
            while true {
                if let i = buffer.firstIndex(of: 10) {
                    var l = Array(buffer[0..<i])
                    buffer.removeFirst(i + 1)
                    if l.last == 13 { l.removeLast() }
                    return l
                }
                if buffer.count > 4096 { throw HTTPReadError(status: 400, message: "a chunk size line is too long") }
                guard try fill(until: deadline) else {
                    throw HTTPReadError(status: 408, message: "the request body did not arrive within \(Int(limits.bodyTimeout)) s")
                }
            }
        }
        while true {
            let l = try line()
            let hex = String(decoding: l.prefix { $0 != 59 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            // Hex digits only (Int(_:radix:) would also take a sign: "-4" was the fuzzer's first finding).
            guard !hex.isEmpty, hex.count <= 8, hex.allSatisfy(\.isHexDigit), let size = Int(hex, radix: 16) else {
                throw HTTPReadError(status: 400, message: "bad chunk size '\(hex.prefix(20))'")
            }
            if size == 0 { break }
            if body.count + size > limits.maxBodyBytes {
                throw HTTPReadError(status: 413, message: "the request body exceeds \(limits.maxBodyBytes) bytes")
            }
            while buffer.count < size + 2 {
                guard try fill(until: deadline) else {
                    throw HTTPReadError(status: 408, message: "the request body did not arrive within \(Int(limits.bodyTimeout)) s")
                }
            }
            guard buffer[size] == 13, buffer[size + 1] == 10 else { throw HTTPReadError(status: 400, message: "a chunk does not end in CRLF") }
            body.append(contentsOf: buffer[0..<size])
            buffer.removeFirst(size + 2)
        }
        var trailers = 0
        while try !line().isEmpty {
            trailers += 1
            if trailers > 100 { throw HTTPReadError(status: 400, message: "too many trailer lines") }
        }
        return body
    }

    /// The index just past the blank line that ends the head (CRLF CRLF, or a bare LF LF as RFC 9112 allows).
    static func headEnd(_ b: [UInt8], from start: Int) -> Int? {
        var i = start
        while i < b.count {
            if b[i] == 10 {
                if i + 1 < b.count, b[i + 1] == 10 { return i + 2 }
                if i + 2 < b.count, b[i + 1] == 13, b[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    static let tokenBytes: Set<UInt8> = Set(Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8))

    /// Request line and header fields, strictly.
    static func parseHead(_ head: ArraySlice<UInt8>) throws -> HTTPRequest {
        var lines = head.split(separator: 10, omittingEmptySubsequences: false).map { l -> ArraySlice<UInt8> in
            l.last == 13 ? l.dropLast() : l
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        while lines.first?.isEmpty == true { lines.removeFirst() }
        guard let first = lines.first else { throw HTTPReadError(status: 400, message: "an empty request") }
        let parts = first.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ tokenBytes.contains($0) }), !parts[1].isEmpty,
            parts[1].allSatisfy({ $0 > 32 && $0 < 127 })
        else {
            throw HTTPReadError(status: 400, message: "a malformed request line")
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw HTTPReadError(status: 505, message: "HTTP version '\(version.prefix(16))' is not supported (1.0 and 1.1 are)")
        }
        let target = String(decoding: parts[1], as: UTF8.self)
        var headers: [(name: String, value: String)] = []
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: 58), colon > l.startIndex,
                l[l.startIndex..<colon].allSatisfy({ tokenBytes.contains($0) })
            else {
                throw HTTPReadError(status: 400, message: "a malformed header line")
            }
            guard headers.count < 100 else { throw HTTPReadError(status: 431, message: "more than 100 header fields") }
            let name = String(decoding: l[l.startIndex..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: l[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
            headers.append((name, value))
        }
        let path = String(target.prefix { $0 != "?" })
        return HTTPRequest(method: String(decoding: parts[0], as: UTF8.self), path: path, version: version, headers: headers, body: [])
    }

    /// Writes all bytes; throws when the client is gone or did not read within the write timeout.
    func write(_ bytes: [UInt8]) throws {
        var at = 0
        while at < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + at, bytes.count - at, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("send: \(errnoText())")
            }
            at += n
        }
    }

    /// True when the client closed its side or the connection failed (a pipelined next request is not "gone").
    var clientGone: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & (0x2000 | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }
}

/// Answers one request: exactly one of `send` or `stream`.
final class HTTPResponder {
    let connection: HTTPConnection
    let request: HTTPRequest
    /// Whether the connection stays open after this response.
    private(set) var keepAlive: Bool
    private(set) var responded = false

    init(connection: HTTPConnection, request: HTTPRequest) {
        self.connection = connection
        self.request = request
        keepAlive = request.keepAlive
    }

    static func head(_ status: Int, _ headers: [(String, String)]) -> String {
        var s = "HTTP/1.1 \(status) \(ChatServer.phrase(status))\r\n"
        for (k, v) in headers { s += "\(k): \(v)\r\n" }
        return s + "\r\n"
    }

    func send(_ status: Int, body: [UInt8], contentType: String = "application/json", close: Bool = false, extra: [(String, String)] = []) {
        responded = true
        if close { keepAlive = false }
        var h: [(String, String)] = [("Content-Type", contentType), ("Content-Length", String(body.count))]
        h.append(("Connection", keepAlive ? "keep-alive" : "close"))
        h += extra
        do { try connection.write(Array(Self.head(status, h).utf8) + body) } catch { keepAlive = false }
    }

    /// Starts a streamed response (chunked on HTTP/1.1, close-delimited on 1.0); `write` returns false once the
    /// client is gone.
    func stream(_ status: Int, contentType: String) -> HTTPStream {
        responded = true
        let chunked = request.version == "HTTP/1.1"
        if !chunked { keepAlive = false }
        var h: [(String, String)] = [("Content-Type", contentType), ("Cache-Control", "no-cache")]
        h.append(chunked ? ("Transfer-Encoding", "chunked") : ("Connection", "close"))
        if chunked { h.append(("Connection", keepAlive ? "keep-alive" : "close")) }
        let s = HTTPStream(connection: connection, chunked: chunked)
        s.raw(Array(Self.head(status, h).utf8))
        return s
    }

    func streamFailed() { keepAlive = false }
}

/// The body of a streamed response.
final class HTTPStream {
    let connection: HTTPConnection
    let chunked: Bool
    private(set) var failed = false

    init(connection: HTTPConnection, chunked: Bool) {
        self.connection = connection
        self.chunked = chunked
    }

    fileprivate func raw(_ b: [UInt8]) {
        guard !failed else { return }
        do { try connection.write(b) } catch { failed = true }
    }

    /// Sends one piece; false when the client is gone.
    @discardableResult
    func write(_ data: [UInt8]) -> Bool {
        guard !data.isEmpty else { return !failed }
        raw(chunked ? Array((String(data.count, radix: 16) + "\r\n").utf8) + data + [13, 10] : data)
        return !failed
    }

    func end() { if chunked { raw(Array("0\r\n\r\n".utf8)) } }
}

/// The listening socket and its connection threads.
final class HTTPListener: @unchecked Sendable {
    typealias Handler = (HTTPRequest, HTTPResponder) -> Void
    let limits: ServerLimits
    let handler: Handler
    let listener: Int32
    let port: Int
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var stopping = false
    private var acceptDone = DispatchSemaphore(value: 0)
    private var started = false
    /// Connections refused because `maxConnections` were open, and requests answered (for tests and logs).
    private(set) var refused = 0

    /// Binds and listens at once (so a port in use is an error before anything starts).
    init(host: String, port: UInt16, limits: ServerLimits, handler: @escaping Handler) throws {
        self.limits = limits
        self.handler = handler
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoomError("serve: socket: \(errnoText())") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        func bindTo<A>(_ a: inout A) -> Int32 {
            withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<A>.size)) } }
        }
        var rc: Int32 = -1, parsed = false
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            parsed = inet_pton(AF_INET6, host, &a.sin6_addr) == 1
            if parsed { rc = bindTo(&a) }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            parsed = inet_pton(AF_INET, host, &a.sin_addr) == 1
            if parsed { rc = bindTo(&a) }
        }
        guard parsed else {
            close(fd)
            throw LoomError("serve: '\(host)' is not an IPv4 or IPv6 address (use 127.0.0.1, 0.0.0.0 or ::1)")
        }
        guard rc == 0, listen(fd, 128) == 0 else {
            let e = errnoText()
            close(fd)
            throw LoomError("serve: cannot listen on \(host):\(port): \(e)")
        }
        var a = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let p = withUnsafePointer(to: &a) { ptr -> UInt16 in
            v6
                ? ptr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
                : ptr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
        }
        listener = fd
        self.port = Int(UInt16(bigEndian: p))
    }

    /// Accepts connections on a thread of its own until `stop`.
    func start() {
        lock.withLock { started = true }
        let t = Thread { [self] in acceptLoop() }
        t.name = "loom.serve.accept"
        t.start()
    }

    private func acceptLoop() {
        defer { acceptDone.signal() }
        while !lock.withLock({ stopping }) {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let c = accept(listener, nil, nil)
            if c < 0 { continue }
            let admitted: Bool = lock.withLock {
                if open.count >= limits.maxConnections || stopping {
                    refused += 1
                    return false
                }
                open.insert(c)
                return true
            }
            guard admitted else {
                let body = Array(ChatServer.errorBody("the server has \(limits.maxConnections) connections open; try again shortly", type: "server_error").utf8)
                let head = HTTPResponder.head(503, [("Content-Type", "application/json"), ("Content-Length", String(body.count)), ("Connection", "close"), ("Retry-After", "1")])
                let bytes = Array(head.utf8) + body
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                close(c)
                continue
            }
            let t = Thread { [self] in serve(c) }
            t.name = "loom.serve.connection"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        let conn = HTTPConnection(fd: fd, limits: limits)
        defer {
            lock.withLock { _ = open.remove(fd) }
            close(fd)
        }
        while !lock.withLock({ stopping }) {
            let request: HTTPRequest
            do {
                guard let r = try conn.readRequest() else { return }
                request = r
            } catch let e as HTTPReadError {
                if let status = e.status {
                    let body = Array(ChatServer.errorBody(e.message, type: "invalid_request_error").utf8)
                    let head = HTTPResponder.head(status, [("Content-Type", "application/json"), ("Content-Length", String(body.count)), ("Connection", "close")])
                    try? conn.write(Array(head.utf8) + body)
                    // Let the client read the answer before the close resets the connection.
                    shutdown(fd, Int32(SHUT_WR))
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    var sink = [UInt8](repeating: 0, count: 4096)
                    let until = monotonicSeconds() + 1
                    while monotonicSeconds() < until, poll(&p, 1, 100) > 0 {
                        if sink.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) <= 0 { break }
                    }
                }
                return
            } catch { return }
            let r = HTTPResponder(connection: conn, request: request)
            handler(request, r)
            if !r.responded { r.send(500, body: Array(ChatServer.errorBody("no response", type: "server_error").utf8), close: true) }
            if !r.keepAlive { return }
        }
    }

    /// Stops accepting, closes every open connection (a generation in progress stops at its next token), and waits
    /// for the accept thread.
    func stop() {
        let (wasStarted, fds): (Bool, Set<Int32>) = lock.withLock {
            let already = stopping
            stopping = true
            return (started && !already, open)
        }
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        if wasStarted { acceptDone.wait() }
        close(listener)
    }

    var openConnections: Int { lock.withLock { open.count } }
}

/// Parses `bytes` as what a client sent on one connection (through a socket pair, as the server reads it): the
/// requests read before the bytes ran out, and the status of the error that ended the connection, if any. For the
/// libFuzzer target (Fuzz/http) and tests.
public func parseHTTPStream(_ bytes: [UInt8], limits: ServerLimits = ServerLimits()) -> (requests: Int, errorStatus: Int?) {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return (0, nil) }
    defer { close(fds[0]) }
    var tv = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(fds[1], SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var at = 0
    while at < bytes.count {
        let n = bytes.withUnsafeBytes { send(fds[1], $0.baseAddress! + at, bytes.count - at, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }
        at += n
    }
    close(fds[1])
    let conn = HTTPConnection(fd: fds[0], limits: limits)
    var count = 0
    while true {
        do {
            guard try conn.readRequest() != nil else { return (count, nil) }
            count += 1
        } catch let e as HTTPReadError {
            return (count, e.status)
        } catch {
            return (count, nil)
        }
    }
}
