// Progress for long work and one-line logging, both on stderr.
//
// On a terminal the progress line redraws in place (items, bytes, rates, ETA when the total is known); when
// stderr is not a terminal (CI, a log file) it prints a plain line every `LOOM_PROGRESS_SECONDS` (default 10).

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public enum Log {
    private static let lock = NSLock()
    nonisolated(unsafe) public static var quiet = false

    static func emit(_ line: String) {
        lock.withLock {
            Progress.clearLine()
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    public static func info(_ message: String) { if !quiet { emit(message) } }
    public static func warn(_ message: String) { emit("warning: " + message) }
    public static func error(_ message: String) { emit("error: " + message) }
}

public final class Progress: @unchecked Sendable {
    public let label: String
    private let lock = NSLock()
    private var items = 0
    private var bytes = 0
    private var totalBytes: Int?
    /// Counted in items instead of bytes (`begin(totalItems:)`): the ETA comes from the item count.
    private var totalItems: Int?
    private var unit = "items"
    private let start = Date()
    private var stopped = false
    private let quiet: Bool
    private let tty: Bool
    private var thread: Thread?
    nonisolated(unsafe) static var lineShown = false

    public init(label: String, quiet: Bool = false) {
        self.label = label
        self.quiet = quiet
        tty = isatty(2) != 0
    }

    /// Sets the number of items to do (enables the ETA; no byte counts are shown), and starts reporting.
    public func begin(totalItems: Int, unit: String = "items") {
        lock.withLock { self.totalItems = totalItems }
        begin(totalBytes: nil, unit: unit)
    }

    /// Sets the total input size in bytes (enables the ETA) and what the items are, and starts reporting.
    public func begin(totalBytes: Int?, unit: String = "items") {
        lock.withLock {
            self.totalBytes = totalBytes
            self.unit = unit
        }
        guard !quiet else { return }
        let interval =
            tty ? 0.25 : (ProcessInfo.processInfo.environment["LOOM_PROGRESS_SECONDS"].flatMap(Double.init) ?? 10)
        let t = Thread { [weak self] in
            var last = Date()
            while true {
                Thread.sleep(forTimeInterval: min(0.05, interval / 2))
                guard let self, !self.isStopped else { return }
                if Date().timeIntervalSince(last) >= interval {
                    last = Date()
                    self.draw()
                }
            }
        }
        thread = t
        t.start()
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    public func add(items: Int = 0, bytes: Int = 0) {
        lock.withLock {
            self.items += items
            self.bytes += bytes
        }
    }

    public var line: String {
        let (i, b, total, what) = lock.withLock { (self.items, self.bytes, self.totalBytes, self.unit) }
        let dt = max(Date().timeIntervalSince(start), 1e-3)
        if let n = lock.withLock({ totalItems }), n > 0 {
            var s = "[\(label)] \(Progress.count(i)) of \(Progress.count(n)) \(what) (\(i * 100 / n)%)  \(String(format: "%.1f", Double(i) / dt))/s"
            if i > 0, i < n { s += "  ETA \(Progress.duration(Double(n - i) / (Double(i) / dt)))" }
            return s
        }
        var s = "[\(label)] \(Progress.count(i)) \(what)  \(Progress.size(b))"
        if let total, total > 0 {
            s += " of \(Progress.size(total)) (\(Int(Double(b) * 100 / Double(total)))%)"
        }
        s += "  \(Progress.count(Int(Double(i) / dt)))/s  \(Progress.size(Int(Double(b) / dt)))/s"
        if let total, b > 0, b < total {
            let eta = Double(total - b) / (Double(b) / dt)
            s += "  ETA \(Progress.duration(eta))"
        }
        return s
    }

    private func draw() {
        let text = line
        Log.lockedWrite(tty ? "\r\u{1B}[K" + text : text + "\n", progressShown: tty)
    }

    /// Stops reporting and clears the progress line.
    public func finish() {
        lock.withLock { stopped = true }
        Progress.clearLine()
    }

    static func clearLine() {
        if lineShown {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            lineShown = false
        }
    }

    public static func count(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 && c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    public static func size(_ n: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(n)
        var u = 0
        while v >= 1000 && u < units.count - 1 {
            v /= 1000
            u += 1
        }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    public static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
            : String(format: "%d:%02d", t / 60, t % 60)
    }
}

extension Log {
    static func lockedWrite(_ text: String, progressShown: Bool) {
        lock.withLock {
            FileHandle.standardError.write(Data(text.utf8))
            Progress.lineShown = progressShown
        }
    }
}
