// Small POSIX file helpers: a buffered appending writer that reports errors (full disk, permissions) as
// `LoomError`s, a line reader, and the file-system calls the stage runner needs.

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A problem with the run itself (not with one input item): stops the run with one clear line.
public struct LoomError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public func errnoText() -> String { String(cString: strerror(errno)) }

/// A buffered writer to a new file. `close()` flushes and reports any error.
public final class BufferedFile {
    public let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let capacity: Int
    public private(set) var bytesWritten: Int = 0

    public init(creating path: String, capacity: Int = 1 << 20) throws {
        self.path = path
        self.capacity = capacity
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw LoomError("cannot create \(path): \(errnoText())") }
        buffer.reserveCapacity(capacity)
    }

    /// Opens an existing file to append to it (bytesWritten starts at its size).
    public init(appendingTo path: String, capacity: Int = 1 << 20) throws {
        self.path = path
        self.capacity = capacity
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        bytesWritten = FS.size(path) ?? 0
        buffer.reserveCapacity(capacity)
    }

    public func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        bytesWritten += bytes.count
        if buffer.count >= capacity { try flush() }
    }

    public func write(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        if bytes.count >= capacity / 2 {
            // Large blocks go straight to the file instead of through the buffer.
            try flush()
            try writeAll(bytes)
            bytesWritten += bytes.count
            return
        }
        buffer.append(contentsOf: bytes)
        bytesWritten += bytes.count
        if buffer.count >= capacity { try flush() }
    }

    private func writeAll(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        guard fd >= 0, let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, base + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot write \(path): \(errnoText())")
            }
            off += n
        }
    }

    public func write(_ string: String) throws { try write(Array(string.utf8)) }

    /// Appends one byte (a newline after a record) without building an array.
    public func write(byte: UInt8) throws {
        buffer.append(byte)
        bytesWritten += 1
        if buffer.count >= capacity { try flush() }
    }

    public func flush() throws {
        guard fd >= 0 else { return }
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot write \(path): \(errnoText())")
            }
            off += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Appends a whole file's bytes, in blocks (no per-line work).
    public func append(contentsOfFile source: String) throws {
        try flush()
        let src = open(source, O_RDONLY | O_CLOEXEC)
        if src < 0 { throw LoomError("cannot open \(source): \(errnoText())") }
        defer { _ = Glibc.close(src) }
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = block.withUnsafeMutableBytes { Glibc.read(src, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot read \(source): \(errnoText())")
            }
            if n == 0 { return }
            try block.withUnsafeBufferPointer { try write(UnsafeBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Flushes, syncs to disk and closes.
    public func close(sync: Bool = true) throws {
        guard fd >= 0 else { return }
        try flush()
        if sync { _ = fsync(fd) }
        let r = Glibc.close(fd)
        fd = -1
        if r != 0 { throw LoomError("cannot close \(path): \(errnoText())") }
    }

    deinit { if fd >= 0 { _ = Glibc.close(fd) } }
}

/// Reads a file line by line (without the newline), streaming, with 1-based line numbers.
public final class LineReader {
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    public private(set) var lineNumber = 0

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        buffer = [UInt8](repeating: 0, count: 1 << 20)
    }

    deinit { _ = Glibc.close(fd) }

    /// Calls `body` with each line's bytes; they are valid only during the call.
    public func forEachLine(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        while true {
            // Find a newline in the buffered bytes.
            let found: Int? = buffer.withUnsafeBufferPointer { b in
                guard end > start, let q = memchr(b.baseAddress! + start, 0x0A, end - start) else { return nil }
                return b.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self))
            }
            if let nl = found {
                lineNumber += 1
                try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<nl])) }
                start = nl + 1
                continue
            }
            if eof {
                if start < end {
                    lineNumber += 1
                    try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
                    start = end
                }
                return
            }
            // Compact and read more.
            if start > 0 {
                buffer.withUnsafeMutableBufferPointer { b in
                    if end > start { memmove(b.baseAddress!, b.baseAddress! + start, end - start) }
                }
                end -= start
                start = 0
            }
            if end == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + end, $0.count - end) }
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot read \(path): \(errnoText())")
            }
            if n == 0 { eof = true } else { end += n }
        }
    }
}

public enum FS {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func size(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    /// Size and modification time (ns) of a file, for cheap input fingerprints.
    public static func identity(_ path: String) -> (size: Int, mtimeNs: Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (Int(st.st_size), Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec))
    }

    public static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw LoomError("cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    public static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 { throw LoomError("cannot rename \(from) to \(to): \(errnoText())") }
    }

    public static func remove(_ path: String) {
        if isDirectory(path) { try? FileManager.default.removeItem(atPath: path) } else { unlink(path) }
    }

    public static func list(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// Every regular file under a directory, recursively, sorted by path.
    public static func listRecursive(_ dir: String) -> [String] {
        var out: [String] = []
        for name in list(dir) where !name.hasPrefix(".") {
            let p = join(dir, name)
            if isDirectory(p) { out += listRecursive(p) } else { out.append(p) }
        }
        return out
    }

    public static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoomError("cannot read \(path): \(exists(path) ? "permission denied" : "no such file")")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes a whole file atomically: a temporary name, then rename.
    public static func writeAtomically(_ text: String, to path: String) throws {
        let tmp = path + ".tmp"
        let f = try BufferedFile(creating: tmp)
        try f.write(text)
        try f.close()
        try rename(tmp, path)
    }

    public static func join(_ a: String, _ b: String) -> String {
        if b.hasPrefix("/") { return b }
        if a.isEmpty || a == "." { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }
}
