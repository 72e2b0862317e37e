// JSON Lines shards: the writer (temporary names, renamed when a shard is complete), the reader over a stage
// directory, and the rejects file.

import Foundation

public struct ShardInfo: Equatable, Sendable {
    public var file: String
    public var records: Int
    public var bytes: Int

    var json: JSONValue { ["file": .string(file), "records": .int(records), "bytes": .int(bytes)] }

    init(file: String, records: Int, bytes: Int) {
        self.file = file
        self.records = records
        self.bytes = bytes
    }

    init?(json: JSONValue) {
        guard let f = json["file"]?.stringValue, let r = json["records"]?.intValue, let b = json["bytes"]?.intValue
        else { return nil }
        self.init(file: f, records: r, bytes: b)
    }
}

/// Writes records to `part-00000.jsonl`, `part-00001.jsonl`, ... in a directory. Each shard is written as
/// `part-NNNNN.jsonl.tmp` and renamed when it is full or the writer finishes, so a complete-looking shard is
/// always complete.
public final class ShardWriter {
    public let directory: String
    public let prefix: String
    public let maxRecords: Int
    public let maxBytes: Int
    public private(set) var shards: [ShardInfo] = []

    private var current: BufferedFile?
    private var currentRecords = 0
    private var line: [UInt8] = []
    /// Records written so far.
    public private(set) var written = 0
    /// The kill campaign's seam (`TestKill`): the process kills itself with SIGKILL once this many records are
    /// written.
    public var killAfterRecords: Int?

    private func counted(_ n: Int) {
        written += n
        if let k = killAfterRecords, written >= k { TestKill.now("after \(written) records written to \(directory)") }
    }

    public init(directory: String, prefix: String = "part", maxRecords: Int = 100_000, maxBytes: Int = 512 << 20) {
        self.directory = directory
        self.prefix = prefix
        self.maxRecords = max(1, maxRecords)
        self.maxBytes = max(1, maxBytes)
    }

    private func shardName(_ i: Int) -> String { "\(prefix)-\(String(i).leftPadded(5)).jsonl" }

    private func open() throws -> BufferedFile {
        if let current { return current }
        let f = try BufferedFile(creating: FS.join(directory, shardName(shards.count) + ".tmp"))
        current = f
        currentRecords = 0
        return f
    }

    /// Writes one record.
    public func write(_ record: JSONValue) throws {
        line.removeAll(keepingCapacity: true)
        record.write(to: &line)
        try writeLine(line)
    }

    /// Writes one already-serialised record (without its newline).
    public func writeLine(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBufferPointer { try writeLine($0) }
    }

    public func writeLine(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        let f = try open()
        try f.write(bytes)
        try f.write(byte: 0x0A)
        currentRecords += 1
        if currentRecords >= maxRecords || f.bytesWritten >= maxBytes { try closeShard() }
        counted(1)
    }

    /// Writes a block of `records` complete lines, each ending in a newline (e.g. a run of input lines copied as
    /// they are). Shard boundaries fall where `writeLine` would put them.
    public func writeLines(_ block: UnsafeBufferPointer<UInt8>, records: Int) throws {
        guard records > 0 else { return }
        let f = try open()
        if currentRecords + records < maxRecords && f.bytesWritten + block.count < maxBytes {
            try f.write(block)
            currentRecords += records
            counted(records)
            return
        }
        var start = 0
        for i in 0..<block.count where block[i] == 0x0A {
            try writeLine(UnsafeBufferPointer(rebasing: block[start..<i]))
            start = i + 1
        }
    }

    /// Takes a file of complete JSON lines holding `records` records (the file may be moved: the caller gives it
    /// up). If it would start a new shard and fits in one, it is renamed into place; if it fits in the current
    /// shard, its bytes are copied in blocks; otherwise it is written line by line, so shard boundaries stay
    /// where `write` puts them.
    public func takeLines(fromFile path: String, records: Int) throws {
        guard records > 0, let size = FS.size(path) else { return }
        if current == nil, records < maxRecords, size < maxBytes {
            let tmp = FS.join(directory, shardName(shards.count) + ".tmp")
            try FS.rename(path, tmp)
            current = try BufferedFile(appendingTo: tmp)
            currentRecords = records
            counted(records)
            return
        }
        let f = try open()
        if currentRecords + records < maxRecords && f.bytesWritten + size < maxBytes {
            try f.append(contentsOfFile: path)
            currentRecords += records
            counted(records)
            return
        }
        try LineReader(path: path).forEachLine { try writeLine($0) }
    }

    private func closeShard() throws {
        guard let f = current else { return }
        // No fsync: the rename makes a shard visible only when complete, which is what a killed run needs.
        try f.close(sync: false)
        let name = shardName(shards.count)
        try FS.rename(f.path, FS.join(directory, name))
        shards.append(ShardInfo(file: name, records: currentRecords, bytes: f.bytesWritten))
        current = nil
    }

    /// Closes the last shard. A writer that got no records still leaves one empty shard, so every finished
    /// stage directory has at least `part-00000.jsonl`.
    public func finish() throws -> [ShardInfo] {
        if current == nil && shards.isEmpty { _ = try open() }
        try closeShard()
        return shards
    }
}

/// One line of `rejects.jsonl`: an input that could not be used, with a reason a person can act on.
public struct Reject: Sendable {
    public var source: String
    public var reason: String
    public var line: Int?
    public var column: Int?
    public var byte: Int?
    public var page: Int?
    public var id: String?
    /// The raw input that could not be used (e.g. a model's unparseable answer), kept for inspection.
    public var raw: String?
    /// Further fields a stage records (a filter's rule, value and threshold), written after the others.
    public var fields = JSONObject()

    public init(
        source: String, reason: String, line: Int? = nil, column: Int? = nil, byte: Int? = nil, page: Int? = nil,
        id: String? = nil, raw: String? = nil
    ) {
        self.source = source
        self.reason = reason
        self.line = line
        self.column = column
        self.byte = byte
        self.page = page
        self.id = id
        self.raw = raw
    }

    public var json: JSONValue {
        var o = JSONObject()
        o.append("source", .string(source))
        o.append("reason", .string(reason))
        if let line { o.append("line", .int(line)) }
        if let column { o.append("column", .int(column)) }
        if let byte { o.append("byte", .int(byte)) }
        if let page { o.append("page", .int(page)) }
        if let id { o.append("id", .string(id)) }
        if let raw { o.append("raw", .string(raw)) }
        for (k, v) in fields { o.append(k, v) }
        return .object(o)
    }

    /// "file:line: reason" for the terminal.
    public var summary: String {
        var s = source
        if let line { s += ":\(line)" }
        if let column { s += ":\(column)" }
        if let page { s += " page \(page)" }
        if line == nil, let byte { s += " byte \(byte)" }
        return s + ": " + reason
    }
}

/// Appends rejects to `rejects.jsonl.tmp`, renamed to `rejects.jsonl` on finish. Thread-safe.
public final class RejectWriter: @unchecked Sendable {
    private let lock = NSLock()
    private let file: BufferedFile
    private let finalPath: String
    public private(set) var count = 0

    public init(directory: String) throws {
        finalPath = FS.join(directory, "rejects.jsonl")
        file = try BufferedFile(creating: finalPath + ".tmp", capacity: 64 << 10)
    }

    public func write(_ reject: Reject) throws {
        var line: [UInt8] = []
        reject.json.write(to: &line)
        line.append(0x0A)
        try lock.withLock {
            try file.write(line)
            count += 1
        }
    }

    /// Appends an already-serialised reject line (without its newline).
    public func writeRaw(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        guard !bytes.isEmpty else { return }
        try lock.withLock {
            try file.write(bytes)
            try file.write(byte: 0x0A)
            count += 1
        }
    }

    public func finish() throws {
        try file.close()
        try FS.rename(file.path, finalPath)
    }
}

/// Reads the records of a finished stage directory, shard by shard in manifest order.
public struct StageReader {
    public let directory: String
    public let manifest: Manifest

    public init(directory: String) throws {
        self.directory = directory
        manifest = try Manifest.read(directory: directory)
    }

    public var shardPaths: [String] { manifest.shards.map { FS.join(directory, $0.file) } }

    /// Calls `body` for each line with its shard path and 1-based line number. Lines that are not valid JSON
    /// are passed to `bad` (the caller usually writes them to rejects).
    public func forEachRecord(
        progress: Progress? = nil,
        _ body: (JSONValue, _ path: String, _ line: Int) throws -> Void,
        bad: (_ error: JSONParseError, _ path: String, _ line: Int) throws -> Void
    ) throws {
        try RecordSource(files: shardPaths, stageInputs: [.stage(directory)]).forEachRecord(progress: progress, body, bad: bad)
    }
}
