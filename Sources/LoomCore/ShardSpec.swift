// `--shard i/N`: one of N parts of a stage's input, so that N shard runs concatenated in shard order hold exactly
// the records of one full run. Stages cut their input one of two ways:
//   - by record: the records numbered lo..<hi of the input in order, lo = total * i / N (chunk, generate rc,
//     embed: the input stage's manifest gives the total without reading it);
//   - by file: the files numbered lo..<hi of the sorted input list (pdf, verilog ingest).
// Record ids never depend on the shard: a shard only chooses which records it writes.

import Foundation

public struct ShardSpec: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// Parses "i/N" (0-based i), e.g. "0/4" ... "3/4".
    public init(parsing s: String) throws {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0].trimmingCharacters(in: .whitespaces)),
            let n = Int(parts[1].trimmingCharacters(in: .whitespaces))
        else { throw LoomError("--shard '\(s)': expected i/N with 0 <= i < N, e.g. 0/4") }
        guard n >= 1 else { throw LoomError("--shard '\(s)': N must be at least 1") }
        guard i >= 0, i < n else {
            throw LoomError("--shard '\(s)': i must be between 0 and \(n - 1) (shards are numbered from 0)")
        }
        self.init(index: i, count: n)
    }

    /// `nil` for nil or "" (no sharding), else the parsed value.
    public static func parse(_ s: String?) throws -> ShardSpec? {
        guard let s, !s.isEmpty else { return nil }
        return try ShardSpec(parsing: s)
    }

    public var description: String { "\(index)/\(count)" }

    /// The items numbered lo..<hi of `total` that this shard owns: the N ranges are contiguous, in order, disjoint
    /// and cover 0..<total (sizes differ by at most one).
    public func range(total: Int) -> Range<Int> {
        let lo = total * index / count
        let hi = total * (index + 1) / count
        return lo..<hi
    }

    /// This shard's part of a list (files in sorted order, ...).
    public func slice<T>(_ items: [T]) -> [T] { Array(items[range(total: items.count)]) }
}

extension StageReader {
    /// Like `forEachRecord`, restricted to the records `shard` owns (all when nil). Records are numbered in input
    /// order from the manifest's per-file counts, so a shard skips the files before its range without reading
    /// them; paths and line numbers are the real ones, so ids made from them do not depend on the shard.
    public func forEachRecord(
        shard: ShardSpec?, progress: Progress? = nil,
        _ body: (JSONValue, _ path: String, _ line: Int) throws -> Void,
        bad: (_ error: JSONParseError, _ path: String, _ line: Int) throws -> Void
    ) throws {
        guard let shard else { return try forEachRecord(progress: progress, body, bad: bad) }
        let range = shard.range(total: manifest.records)
        var first = 0  // number of the file's first record
        for s in manifest.shards {
            defer { first += s.records }
            if first + s.records <= range.lowerBound && s.records > 0 { continue }
            if first >= range.upperBound { break }
            let path = FS.join(directory, s.file)
            let reader = try LineReader(path: path)
            var k = first
            var stop = false
            try reader.forEachLine { bytes in
                if stop || bytes.isEmpty { return }
                defer { k += 1 }
                if k < range.lowerBound { return }
                if k >= range.upperBound {
                    stop = true
                    return
                }
                progress?.add(items: 1, bytes: bytes.count + 1)
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

    /// Bytes of the shard files that hold `shard`'s records (for progress totals).
    public func bytes(shard: ShardSpec?) -> Int {
        let all = manifest.shards.reduce(0) { $0 + $1.bytes }
        guard let shard else { return all }
        return all / shard.count
    }
}

/// Adds "shard": "i/N" to a stage's config when it runs as a shard (an unsharded config is left as it was, so
/// its fingerprint does not change).
public func withShard(_ config: JSONValue, _ shard: ShardSpec?) -> JSONValue {
    guard let shard, case .object(var o) = config else { return config }
    o["shard"] = .string(shard.description)
    return .object(o)
}

/// The shard a stage directory holds ("shard" in its manifest's config), if any: a stage that reads one shard's
/// output (chunking ingest shard 3 of 16) carries the shard on, so `merge-manifests` can check its shards too.
public func shardOfStage(_ dir: String) -> ShardSpec? {
    guard let s = (try? Manifest.read(directory: dir))?.config["shard"]?.stringValue else { return nil }
    return try? ShardSpec(parsing: s)
}

/// The shard a stage's output is recorded as: the one it was given, else the one its input directory holds.
/// Giving --shard to a stage whose input is already a shard is an error (the shards would nest).
public func outputShard(given: ShardSpec?, input dir: String, stage: String) throws -> ShardSpec? {
    let inherited = shardOfStage(dir)
    if let given, let inherited {
        throw LoomError(
            "\(stage): \(dir) is already shard \(inherited); drop --shard \(given) (its output is shard \(inherited) too)")
    }
    return given ?? inherited
}
