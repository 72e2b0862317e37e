// Where a stage reads records from: a finished stage directory (its shards in manifest order), any other directory
// (its `*.jsonl` files, recursively, sorted, `rejects.jsonl` left out) or a JSON Lines file, so data made by other
// tools needs no pass through a Loom stage first. `dedup` and the generators read their inputs through it.

import Foundation

public struct RecordSource: Sendable {
    /// The JSON Lines files, in reading order.
    public let files: [String]
    /// What the stage's fingerprint covers: a stage directory by its manifest, a file by path, size and time.
    public let stageInputs: [StageInput]

    public static func resolve(_ paths: [String]) throws -> RecordSource {
        var files: [String] = []
        var inputs: [StageInput] = []
        for p in paths {
            if FS.isDirectory(p) {
                if FS.exists(FS.join(p, Manifest.fileName)) {
                    let r = try StageReader(directory: p)
                    files += r.shardPaths
                    inputs.append(.stage(p))
                } else {
                    let found = FS.listRecursive(p).filter {
                        $0.hasSuffix(".jsonl") && !$0.hasSuffix("/rejects.jsonl") && $0 != "rejects.jsonl"
                    }.sorted()
                    if found.isEmpty { throw LoomError("\(p): no .jsonl files in this directory") }
                    files += found
                    inputs += found.map { .file($0) }
                }
            } else if FS.exists(p) {
                files.append(p)
                inputs.append(.file(p))
            } else {
                throw LoomError("\(p): no such file or directory")
            }
        }
        if files.isEmpty { throw LoomError("no input files") }
        return RecordSource(files: files, stageInputs: inputs)
    }

    /// The stage inputs of `paths`, or the paths as files when they cannot be resolved yet (made by an earlier
    /// pipeline step).
    public static func stageInputs(_ paths: [String]) -> [StageInput] {
        (try? resolve(paths).stageInputs) ?? paths.map { .file($0) }
    }

    public var totalBytes: Int { files.reduce(0) { $0 + (FS.size($1) ?? 0) } }

    /// Calls `body` for each record with its file and 1-based line number; lines that are not JSON go to `bad`.
    public func forEachRecord(
        progress: Progress? = nil,
        _ body: (JSONValue, _ path: String, _ line: Int) throws -> Void,
        bad: (_ error: JSONParseError, _ path: String, _ line: Int) throws -> Void
    ) throws {
        for path in files {
            let reader = try LineReader(path: path)
            try reader.forEachLine { bytes in
                progress?.add(items: 1, bytes: bytes.count + 1)
                if bytes.isEmpty { return }
                let value: JSONValue
                do {
                    value = try JSONValue.parse(bytes: bytes)
                } catch let e as JSONParseError {
                    try bad(e, path, reader.lineNumber)
                    return
                }
                try body(value, path, reader.lineNumber)
            }
        }
    }
}

/// The records of one input path for a stage that can also run on a slice (`--shard i/N`): a stage directory is read
/// through its manifest (StageReader, so a shard skips the files before its range), anything else through
/// RecordSource, where a shard needs the record counts only a manifest has.
public struct InputRecords {
    let stage: StageReader?
    let source: RecordSource

    public init(_ path: String) throws {
        source = try RecordSource.resolve([path])
        stage = FS.exists(FS.join(path, Manifest.fileName)) ? try StageReader(directory: path) : nil
    }

    public func bytes(shard: ShardSpec?) -> Int {
        if let stage { return stage.bytes(shard: shard) }
        return source.totalBytes
    }

    public func forEachRecord(
        shard: ShardSpec? = nil, progress: Progress? = nil,
        _ body: (JSONValue, _ path: String, _ line: Int) throws -> Void,
        bad: (_ error: JSONParseError, _ path: String, _ line: Int) throws -> Void
    ) throws {
        if let stage { return try stage.forEachRecord(shard: shard, progress: progress, body, bad: bad) }
        guard shard == nil else {
            throw LoomError("--shard needs a finished stage directory as input (its manifest counts the records)")
        }
        try source.forEachRecord(progress: progress, body, bad: bad)
    }
}
