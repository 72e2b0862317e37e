// PDF pages in worker processes: poppler and tesseract are C and C++ libraries reading untrusted files, and a PDF
// that makes one of them segfault or abort would otherwise end the whole run, which no Swift check can prevent. With
// `PDFWorkers.executable` set (the `loom` command sets it to itself), `loom ingest pdf` opens files and reads pages
// in `--jobs` child processes (`loom _pdf-worker SETTINGS`), one request at a time each, over a pipe of JSON lines.
// A worker that dies mid-request costs its file one reject line naming the file, the page and the signal; the file's
// other pages are not sent again, and a new worker takes the dead one's place. Without `executable` (the library used
// in-process, unit tests) pages are read on threads of this process as before.
//
// Protocol, one JSON object a line each way:
//   -> {"op":"open","path":P}                 <- {"pages":N,"meta":{...}} | {"error":"..."}
//   -> {"op":"page","path":P,"page":I}        <- {"text":T,"ocr":B,"confidence":C|null,"method":M|null,
//                                                 "candidates":{METHOD:CONFIDENCE,...}|null,"error":E|null}
// The worker answers on a duplicate of its standard output and points fd 1 at standard error, so nothing poppler or
// tesseract prints can break the protocol.
//
// Test seam: LOOM_TEST_PDF_CRASH=NAME.pdf:PAGE[:SIGNAL] makes the worker kill itself with SIGNAL (default SIGSEGV)
// when asked for page PAGE (1-based) of the file named NAME.pdf, as a crash inside poppler would.

import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

public enum PDFWorkers {
    /// The `loom` executable that runs `_pdf-worker`; nil reads pages in this process.
    nonisolated(unsafe) public static var executable: String?
    /// The hidden command's name.
    public static let command = "_pdf-worker"
    /// Longest a worker may take over one request before it is killed (a hang in a C library).
    nonisolated(unsafe) public static var requestTimeout: Double = 600

    /// The worker's side: answers requests on standard input until it closes.
    public static func serve(settingsJSON: String) throws {
        let settings = try JSONValue.parse(settingsJSON).decode(PDFIngestConfig.self, allowedKeys: PDFIngestConfig.keys, context: "pdf worker")
        let answer = dup(1)
        dup2(2, 1)
        let crash = crashSeam()
        let worker = PDFWorker()
        func respond(_ v: JSONValue) {
            if !writeLine(answer, v) { exit(0) }  // the parent is gone
        }
        while let request = readLine(strippingNewline: true) {
            let line = Array(request.utf8)
            guard let r = try? line.withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }), let path = r["path"]?.stringValue
            else {
                respond(["error": "bad request"])
                continue
            }
            switch r["op"]?.stringValue {
            case "open":
                do {
                    let f = try PDFFile(path: path)
                    respond(["pages": .int(f.pageCount), "meta": .object(f.metadata)])
                } catch {
                    respond(["error": .string("\(error)")])
                }
            case "page":
                let page = r["page"]?.intValue ?? 0
                if let crash, crash.name == (path as NSString).lastPathComponent, crash.page == page + 1 {
                    // As a fault inside a C library ends: the default action (a handler returning from a kill()
                    // would carry on).
                    signal(crash.signal, SIG_DFL)
                    kill(getpid(), crash.signal)
                }
                let p: PDFPageResult
                do { p = try worker.process(path: path, page: page, settings: settings) } catch {
                    p = PDFPageResult(error: "\(error)")
                }
                respond([
                    "text": .string(p.text), "ocr": .bool(p.ocr), "confidence": p.confidence.map { .int($0) } ?? .null,
                    "method": p.method.map { .string($0) } ?? .null, "candidates": p.candidates.map { .object($0) } ?? .null,
                    "error": p.error.map { .string($0) } ?? .null,
                ])
            default: respond(["error": "bad request"])
            }
        }
    }

    static func crashSeam() -> (name: String, page: Int, signal: Int32)? {
        guard let s = ProcessInfo.processInfo.environment["LOOM_TEST_PDF_CRASH"] else { return nil }
        let p = s.split(separator: ":").map(String.init)
        guard p.count >= 2, let page = Int(p[1]) else { return nil }
        let signal = p.count > 2 ? signalNumber(p[2]) ?? SIGSEGV : SIGSEGV
        return (p[0], page, signal)
    }

    static let signalNames: [(Int32, String)] = [
        (SIGSEGV, "SIGSEGV"), (SIGABRT, "SIGABRT"), (SIGBUS, "SIGBUS"), (SIGFPE, "SIGFPE"), (SIGILL, "SIGILL"),
        (SIGKILL, "SIGKILL"), (SIGTERM, "SIGTERM"), (SIGTRAP, "SIGTRAP"), (SIGPIPE, "SIGPIPE"),
    ]

    static func signalNumber(_ name: String) -> Int32? {
        signalNames.first { $0.1 == name.uppercased() || $0.1 == "SIG" + name.uppercased() }?.0 ?? Int32(name)
    }

    /// "SIGSEGV (signal 11)".
    public static func signalName(_ s: Int32) -> String {
        (signalNames.first { $0.0 == s }?.1).map { "\($0) (signal \(s))" } ?? "signal \(s)"
    }
}

/// Writes a value as one JSON line to a pipe; false when the other end is gone.
func writeLine(_ fd: Int32, _ v: JSONValue) -> Bool {
    var out: [UInt8] = []
    v.write(to: &out)
    out.append(0x0A)
    var at = 0
    while at < out.count {
        let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + at, out.count - at) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        at += n
    }
    return true
}

/// Why a worker process could not answer: it died (by a signal or an exit) or hung.
struct PDFWorkerDied: Error {
    let reason: String
}

/// One worker process and its pipes.
final class PDFWorkerProcess {
    let process = Process()
    private let toWorker: Int32
    private let fromWorker: Int32
    private var buffer: [UInt8] = []

    init(executable: String, settingsJSON: String) throws {
        let input = Pipe(), output = Pipe()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [PDFWorkers.command, settingsJSON]
        process.standardInput = input
        process.standardOutput = output
        // A crash is reported as one reject line naming the signal; Swift's backtracer would print a long trace
        // and take a second over it (set SWIFT_BACKTRACE to have it anyway).
        var env = ProcessInfo.processInfo.environment
        if env["SWIFT_BACKTRACE"] == nil { env["SWIFT_BACKTRACE"] = "enable=no" }
        process.environment = env
        do { try process.run() } catch {
            throw LoomError("ingest pdf: cannot start a worker process (\(executable)): \(error)")
        }
        toWorker = input.fileHandleForWriting.fileDescriptor
        fromWorker = output.fileHandleForReading.fileDescriptor
        // Keep the FileHandles (they own the descriptors) alive with the process.
        handles = [input.fileHandleForWriting, output.fileHandleForReading]
    }

    private var handles: [FileHandle] = []

    /// Sends one request and waits for its answer.
    func request(_ v: JSONValue) throws -> JSONValue {
        guard writeLine(toWorker, v) else { throw died() }
        let deadline = Date().addingTimeInterval(PDFWorkers.requestTimeout)
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[0..<i])
                buffer.removeFirst(i + 1)
                return try line.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
            }
            var p = pollfd(fd: fromWorker, events: Int16(POLLIN), revents: 0)
            let wait = deadline.timeIntervalSinceNow
            if wait <= 0 {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw PDFWorkerDied(reason: "the worker took more than \(Int(PDFWorkers.requestTimeout)) s and was killed")
            }
            if poll(&p, 1, Int32(min(wait, 60) * 1000)) <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            let n = chunk.withUnsafeMutableBytes { read(fromWorker, $0.baseAddress, $0.count) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw died()
            }
            buffer += chunk[0..<n]
        }
    }

    /// The worker's end, once its pipe closed.
    private func died() -> PDFWorkerDied {
        process.waitUntilExit()
        switch process.terminationReason {
        case .uncaughtSignal: return PDFWorkerDied(reason: "the worker process died of \(PDFWorkers.signalName(process.terminationStatus))")
        default: return PDFWorkerDied(reason: "the worker process exited with status \(process.terminationStatus)")
        }
    }

    /// Closes its input so it exits, and waits.
    func finish() {
        try? handles.first?.close()
        handles.removeFirst()
        process.waitUntilExit()
    }
}

/// The worker processes of one stage run: at most `jobs`, each used by one thread at a time; a dead one is replaced.
final class PDFProcessPool: @unchecked Sendable {
    let executable: String
    let settingsJSON: String
    private let lock = NSLock()
    private var idle: [PDFWorkerProcess] = []
    private var all: [PDFWorkerProcess] = []
    private(set) var restarts = 0

    init(executable: String, settings: PDFIngestConfig) throws {
        self.executable = executable
        settingsJSON = try JSONValue(encoding: settings).jsonString
        // A dead worker's pipe must give EPIPE to write(), not kill this process.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Runs one request on an idle worker (started if none is idle). A worker that dies is dropped (and counted);
    /// the error says how it died.
    func request(_ v: JSONValue) throws -> JSONValue {
        let w = try lock.withLock { idle.popLast() } ?? start()
        do {
            let r = try w.request(v)
            lock.withLock { idle.append(w) }
            return r
        } catch let e as PDFWorkerDied {
            lock.withLock {
                all.removeAll { $0 === w }
                restarts += 1
            }
            throw e
        }
    }

    private func start() throws -> PDFWorkerProcess {
        let w = try PDFWorkerProcess(executable: executable, settingsJSON: settingsJSON)
        lock.withLock { all.append(w) }
        return w
    }

    /// Ends every worker.
    func finish() {
        let ws = lock.withLock {
            defer {
                all = []
                idle = []
            }
            return all
        }
        for w in ws { w.finish() }
    }
}

/// A set shared by the page threads.
final class LockedSet<T: Hashable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items = Set<T>()
    func insert(_ x: T) { lock.withLock { _ = items.insert(x) } }
    func contains(_ x: T) -> Bool { lock.withLock { items.contains(x) } }
}
