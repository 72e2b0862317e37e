// The stage protocol and the runner that gives every stage the same directory contract:
//   - skip when the directory's manifest is complete and its fingerprint matches (same config, same inputs);
//   - otherwise clear what an earlier (possibly killed) run left, write shards under temporary names, rejects,
//     and the manifest last.

import Foundation

public enum StageInput: Sendable, Equatable {
    /// A raw input file (PDF, XML, ...): fingerprinted by path, size and modification time.
    case file(String)
    /// A finished stage directory: fingerprinted by its manifest's fingerprint.
    case stage(String)
}

/// A stage: reads its inputs, writes records and rejects through the context.
public protocol Stage: Sendable {
    /// A stable name, e.g. "ingest-pubmed", "chunk".
    var name: String { get }
    /// The stage's options with defaults filled in: hashed into the fingerprint and written to the manifest.
    var config: JSONValue { get }
    var inputs: [StageInput] { get }
    /// Files besides the shards that the stage writes into its directory (e.g. dedup's `duplicates.jsonl`). The
    /// stage writes each as `NAME.tmp` (see `StageContext.sideFilePath`); the runner renames them when the stage
    /// has finished, removes them when the stage starts over, and re-runs the stage if one is missing.
    /// A side file may be a directory (merge's `model`).
    var sideFiles: [String] { get }
    /// Those of `sideFiles` that are stage directories of their own (a split's `train`, written through
    /// `StageContext.sideStage`): such a side also counts as missing unless its manifest is complete, carries the
    /// fingerprint derived from this stage's, and its shards have their recorded sizes.
    var sideStages: [String] { get }
    func run(_ context: StageContext) throws
}

extension Stage {
    public var sideFiles: [String] { [] }
    public var sideStages: [String] { [] }
}

/// What a running stage writes to.
public final class StageContext: @unchecked Sendable {
    public let directory: String
    /// A scratch directory inside the output directory, removed when the stage finishes.
    public let workDirectory: String
    public let output: ShardWriter
    public let rejects: RejectWriter
    public let progress: Progress
    public let options: RunOptions
    /// The stage's fingerprint (name, version, config and every input's fingerprint): what identifies this run, for
    /// stages that keep state across interruptions (the trainer's checkpoints).
    public let fingerprint: String
    private let lock = NSLock()
    private var _counts = JSONObject()
    private var _errors: [String] = []

    init(directory: String, options: RunOptions, progress: Progress, fingerprint: String = "") throws {
        self.directory = directory
        self.options = options
        self.fingerprint = fingerprint
        workDirectory = FS.join(directory, ".loom-work")
        try FS.makeDirectory(workDirectory)
        output = ShardWriter(directory: directory, maxRecords: options.shardRecords)
        rejects = try RejectWriter(directory: directory)
        self.progress = progress
    }

    /// Where to write the side file `name` (one of the stage's `sideFiles`) while the stage runs.
    public func sideFilePath(_ name: String) -> String { FS.join(directory, name + ".tmp") }

    /// A side directory that is a complete stage directory of its own (shards and manifest), written at
    /// `sideFilePath(name)` and renamed to `name` with the other side files. `stage` and `config` go into its
    /// manifest; its fingerprint is `StageRunner.sideFingerprint(parent: fingerprint, name)`, so stages that
    /// read it re-run exactly when this stage does.
    public func sideStage(_ name: String, stage: String, config: JSONValue) throws -> SideStageWriter {
        let dir = sideFilePath(name)
        FS.remove(dir)
        try FS.makeDirectory(dir)
        return SideStageWriter(
            directory: dir, stage: stage, config: config,
            fingerprint: StageRunner.sideFingerprint(parent: fingerprint, name), shardRecords: options.shardRecords)
    }

    /// Records a stage-specific count in the manifest (e.g. "replaced", "deleted").
    public func setCount(_ key: String, _ value: Int) { lock.withLock { _counts[key] = .int(value) } }

    /// Records a stage-specific measurement that is not a count (e.g. a packing efficiency).
    public func setValue(_ key: String, _ value: JSONValue) { lock.withLock { _counts[key] = value } }

    /// A problem with one whole input (a truncated file, a file that is not XML): the stage finishes what it
    /// can, the manifest is marked failed, and the command exits non-zero.
    public func fail(_ message: String) {
        lock.withLock { _errors.append(message) }
        Log.error(message)
    }

    /// Writes a reject and prints its one-line summary (the first few, then a count at the end).
    public func reject(_ r: Reject) throws {
        try rejects.write(r)
        if rejects.count <= 5 { Log.warn("rejected \(r.summary)") }
    }

    var counts: JSONObject { lock.withLock { _counts } }
    var errors: [String] { lock.withLock { _errors } }
}

/// Writes a side directory that is a stage directory of its own (see `StageContext.sideStage`).
public final class SideStageWriter {
    public let directory: String
    public let output: ShardWriter
    let stage: String
    let config: JSONValue
    let fingerprint: String

    init(directory: String, stage: String, config: JSONValue, fingerprint: String, shardRecords: Int) {
        self.directory = directory
        self.stage = stage
        self.config = config
        self.fingerprint = fingerprint
        output = ShardWriter(directory: directory, maxRecords: shardRecords)
    }

    /// Closes the shards and writes the manifest (with `counts`); call once, after the last record.
    public func finish(counts: JSONObject = JSONObject()) throws {
        var configText: [UInt8] = []
        config.write(to: &configText)
        var m = Manifest(
            stage: stage, config: config, configHash: SHA256.hex(String(decoding: configText, as: UTF8.self)),
            inputs: [], fingerprint: fingerprint, status: "complete")
        m.shards = try output.finish()
        m.counts = counts
        try m.write(directory: directory)
    }
}

public struct RunOptions: Sendable {
    /// Records per output shard.
    public var shardRecords = 100_000
    /// Re-run even when the manifest matches.
    public var force = false
    public var quiet = false
    public init(shardRecords: Int = 100_000, force: Bool = false, quiet: Bool = false) {
        self.shardRecords = shardRecords
        self.force = force
        self.quiet = quiet
    }
}

public struct StageResult: Sendable {
    public var manifest: Manifest
    public var skipped: Bool
    public var directory: String
    public var failed: Bool { manifest.status != "complete" }
}

public enum StageRunner {
    public static func fingerprint(of input: StageInput) throws -> ManifestInput {
        switch input {
        case .file(let path):
            guard let id = FS.identity(path) else { throw LoomError("\(path): no such file") }
            return ManifestInput(
                path: path, kind: "file", fingerprint: SHA256.hex("file\0\(path)\0\(id.size)\0\(id.mtimeNs)"))
        case .stage(let dir):
            let m = try Manifest.read(directory: dir)
            if m.status != "complete" {
                Log.warn("\(dir) finished with errors (\(m.errors.first ?? "see its manifest")); using what it wrote")
            }
            return ManifestInput(path: dir, kind: "stage", fingerprint: m.fingerprint)
        }
    }

    /// The files a stage directory may hold; only these are removed when a stage starts over, so pointing
    /// `-o` at a folder with other files never deletes them.
    static func isOwned(_ name: String, sideFiles: [String] = []) -> Bool {
        if sideFiles.contains(name) { return true }
        if name == Manifest.fileName || name == "rejects.jsonl" || name == ".loom-work" { return true }
        if name.hasSuffix(".tmp") { return true }
        return name.hasPrefix("part-") && name.hasSuffix(".jsonl")
    }

    /// The fingerprint of the side stage directory `name` of a stage whose fingerprint is `parent`.
    public static func sideFingerprint(parent: String, _ name: String) -> String {
        SHA256.hex(parent + "\0side\0" + name)
    }

    static func isUpToDate(directory: String, fingerprint: String, sideFiles: [String] = [], sideStages: [String] = [])
        -> Manifest?
    {
        guard let m = try? Manifest.read(directory: directory), m.status == "complete",
            m.fingerprint == fingerprint
        else { return nil }
        for f in sideFiles {
            let path = FS.join(directory, f)
            guard FS.exists(path) else { return nil }
            if sideStages.contains(f) {
                guard let sm = try? Manifest.read(directory: path), sm.status == "complete",
                    sm.fingerprint == sideFingerprint(parent: fingerprint, f)
                else { return nil }
                for s in sm.shards where FS.size(FS.join(path, s.file)) != s.bytes { return nil }
            }
        }
        for s in m.shards where FS.size(FS.join(directory, s.file)) != s.bytes { return nil }
        return m
    }

    public static func run(_ stage: some Stage, directory: String, options: RunOptions = RunOptions()) throws
        -> StageResult
    {
        let inputs = try stage.inputs.map(fingerprint(of:))
        var configText: [UInt8] = []
        stage.config.write(to: &configText)
        let configHash = SHA256.hex(String(decoding: configText, as: UTF8.self))
        let fp = SHA256.hex(
            ([stage.name, loomVersion, configHash] + inputs.map(\.fingerprint)).joined(separator: "\0"))

        if !options.force, let m = isUpToDate(
            directory: directory, fingerprint: fp, sideFiles: stage.sideFiles, sideStages: stage.sideStages)
        {
            Log.info("\(stage.name): up to date in \(directory) (\(m.records) records); skipped")
            return StageResult(manifest: m, skipped: true, directory: directory)
        }

        // Start over cleanly: remove what an earlier or interrupted run of this stage left.
        try FS.makeDirectory(directory)
        for name in FS.list(directory) where isOwned(name, sideFiles: stage.sideFiles) { FS.remove(FS.join(directory, name)) }

        let started = Date()
        let progress = Progress(label: stage.name, quiet: options.quiet)
        let kill = TestKill.point(for: directory)
        if case .start? = kill { TestKill.now("at the start of \(directory)") }
        let ctx = try StageContext(directory: directory, options: options, progress: progress, fingerprint: fp)
        if case .records(let n)? = kill { ctx.output.killAfterRecords = n }
        do {
            try stage.run(ctx)
        } catch {
            progress.finish()
            throw error
        }
        progress.finish()
        let shards = try ctx.output.finish()
        try ctx.rejects.finish()
        for f in stage.sideFiles where FS.exists(ctx.sideFilePath(f)) {
            try FS.rename(ctx.sideFilePath(f), FS.join(directory, f))
        }
        FS.remove(ctx.workDirectory)
        if case .commit? = kill { TestKill.now("with \(directory) written but no manifest") }

        var m = Manifest(
            stage: stage.name, config: stage.config, configHash: configHash, inputs: inputs, fingerprint: fp,
            status: ctx.errors.isEmpty ? "complete" : "failed")
        m.errors = ctx.errors
        m.counts = ctx.counts
        m.shards = shards
        m.rejects = ctx.rejects.count
        let finished = Date()
        let iso = ISO8601DateFormatter()
        m.startedAt = iso.string(from: started)
        m.finishedAt = iso.string(from: finished)
        m.seconds = finished.timeIntervalSince(started)
        m.peakMemoryMB = peakMemoryMB()
        try m.write(directory: directory)
        if m.rejects > 5 { Log.warn("\(m.rejects) rejects in all: see \(FS.join(directory, "rejects.jsonl"))") }
        Log.info(
            "\(stage.name): \(m.records) records, \(m.rejects) rejects in \(String(format: "%.1f", m.seconds)) s -> \(directory)"
        )
        return StageResult(manifest: m, skipped: false, directory: directory)
    }
}

/// The kill campaign's seam (Benchmarks/kill-campaign.py, `KillCampaignTests`): `LOOM_TEST_KILL=DIR:POINT[,...]` makes
/// the process kill itself with SIGKILL — the same signal, delivered at the same instant, as `kill -9` from outside —
/// at a chosen point of the stage whose output directory is named DIR (e.g. `04-chunk`): `start` (after the
/// directory is cleaned, before the stage runs), `records:N` (once N records are written to its shards), `commit`
/// (every file written and renamed, the manifest not yet). Most of the demo's stages finish in milliseconds, too fast
/// to hit from outside at a chosen place; the trainer's steps are killed from outside at random times as well.
public enum TestKill: Equatable {
    case start, commit
    case records(Int)

    /// The point set for the stage writing `directory`, if any (the variable may list several, comma-separated:
    /// `05-filter:records:3,06-dedup:start` also stops a run that got past the first one at the next stage).
    public static func point(for directory: String) -> TestKill? {
        guard let spec = ProcessInfo.processInfo.environment["LOOM_TEST_KILL"] else { return nil }
        let name = (directory as NSString).lastPathComponent
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":").map(String.init)
            guard parts.count >= 2, parts[0] == name else { continue }
            switch parts[1] {
            case "start": return .start
            case "commit": return .commit
            case "records": return parts.count == 3 ? Int(parts[2]).map { .records(max(1, $0)) } : nil
            default: return nil
            }
        }
        return nil
    }

    /// Kills this process with SIGKILL (no cleanup, no flush: what a power cut or the OOM killer does).
    public static func now(_ why: String) -> Never {
        FileHandle.standardError.write(Data("loom: LOOM_TEST_KILL: killing myself \(why)\n".utf8))
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}

// MARK: - Configs

extension JSONValue {
    /// The JSON form of an Encodable config (snake_case keys, sorted), for hashing and manifests.
    public init(encoding value: some Encodable) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        let data = try enc.encode(value)
        self = try data.withUnsafeBytes { try JSONValue.parse(bytes: $0.bindMemory(to: UInt8.self)) }
    }

    /// Decodes a config from its JSON/YAML form; unknown keys are an error naming the allowed ones.
    public func decode<T: Decodable>(_ type: T.Type, allowedKeys: [String], context: String) throws -> T {
        if let o = objectValue {
            for k in o.keys where !allowedKeys.contains(k) {
                throw LoomError("\(context): unknown option '\(k)' (allowed: \(allowedKeys.joined(separator: ", ")))")
            }
        }
        var bytes: [UInt8] = []
        write(to: &bytes)
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try dec.decode(T.self, from: Data(bytes))
        } catch let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c) {
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            throw LoomError("\(context): option '\(path)' has the wrong type: \(c.debugDescription)")
        } catch let DecodingError.keyNotFound(k, _) {
            throw LoomError("\(context): missing option '\(k.stringValue)'")
        } catch {
            throw LoomError("\(context): \(error)")
        }
    }
}

/// The peak resident memory of this process in MB, from /proc/self/status (VmHWM). Not getrusage: Linux carries
/// the parent's peak into a child's ru_maxrss across posix_spawn and exec, so a small stage started by a large
/// process would report the parent's memory.
public func peakMemoryMB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
    return kb / 1024
}

/// A stage that writes records it was given: turns values in memory into a finished stage directory (tests,
/// imports).
public struct RecordsStage: Stage {
    public let records: [JSONValue]
    public let name: String

    public init(records: [JSONValue], name: String = "records") {
        self.records = records
        self.name = name
    }

    public var config: JSONValue { .string(SHA256.hex(JSONValue.array(records).jsonString)) }
    public var inputs: [StageInput] { [] }
    public func run(_ ctx: StageContext) throws { for r in records { try ctx.output.write(r) } }
}

/// The records of several finished stage directories, one after another in the order given (the pipeline's
/// `combine` step: e.g. documents from PDF and PubMed ingest chunked together). Records are copied byte for byte.
public struct CombineStage: Stage {
    public let directories: [String]

    public init(directories: [String]) throws {
        guard !directories.isEmpty else { throw LoomError("combine: no inputs") }
        self.directories = directories
    }

    public var name: String { "combine" }
    public var config: JSONValue { .array(directories.map { .string($0) }) }
    public var inputs: [StageInput] { directories.map { .stage($0) } }

    public func run(_ ctx: StageContext) throws {
        for d in directories {
            let reader = try StageReader(directory: d)
            var n = 0
            for path in reader.shardPaths {
                try LineReader(path: path).forEachLine { line in
                    if line.isEmpty { return }
                    try ctx.output.writeLine(line)
                    n += 1
                }
            }
            ctx.setCount("records_from_" + ((d as NSString).lastPathComponent), n)
        }
    }
}
