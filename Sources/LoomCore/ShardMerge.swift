// `loom merge-manifests`: the check that all N shards of a stage are present, finished and made with the same
// options from the same inputs, and (with an output directory) one stage directory holding their records in
// shard order, as if one process had run the stage.

import Foundation

public struct ShardSet {
    public struct Member {
        public var directory: String
        public var manifest: Manifest
        public var shard: ShardSpec
    }

    public let members: [Member]
    public let stage: String
    /// The shards' common config without "shard": what an unsharded run of the stage has.
    public let config: JSONValue

    /// Reads and checks the directories (any order): one stage, complete, shards 0/N ... N-1/N each exactly
    /// once, equal configs apart from the shard.
    public init(directories: [String]) throws {
        guard !directories.isEmpty else { throw LoomError("merge-manifests: give the shards' output directories") }
        var ms: [Member] = []
        for d in directories {
            let m = try Manifest.read(directory: d)
            guard let s = m.config["shard"]?.stringValue else {
                throw LoomError("\(d): the \(m.stage) stage here was not run with --shard i/N")
            }
            guard m.status == "complete" else {
                throw LoomError("\(d): shard \(s) of \(m.stage) did not finish (\(m.errors.first ?? "see its manifest")); run it again")
            }
            ms.append(Member(directory: d, manifest: m, shard: try ShardSpec(parsing: s)))
        }
        ms.sort { ($0.shard.index, $0.directory) < ($1.shard.index, $1.directory) }
        let first = ms[0]
        for m in ms where m.manifest.stage != first.manifest.stage {
            throw LoomError(
                "merge-manifests: \(m.directory) holds \(m.manifest.stage), \(first.directory) holds \(first.manifest.stage)")
        }
        let n = first.shard.count
        for m in ms where m.shard.count != n {
            throw LoomError("merge-manifests: \(m.directory) is shard \(m.shard), \(first.directory) is shard \(first.shard)")
        }
        var seen = [String?](repeating: nil, count: n)
        for m in ms {
            if let other = seen[m.shard.index] {
                throw LoomError("merge-manifests: shard \(m.shard) is given twice (\(other) and \(m.directory))")
            }
            seen[m.shard.index] = m.directory
        }
        let missing = (0..<n).filter { seen[$0] == nil }
        if !missing.isEmpty {
            throw LoomError(
                "merge-manifests: \(missing.count) of \(n) shards missing: "
                    + missing.prefix(10).map { "\($0)/\(n)" }.joined(separator: ", ")
                    + (missing.count > 10 ? ", ..." : "") + " (run them, then merge again)")
        }
        func unsharded(_ c: JSONValue) -> JSONValue {
            guard case .object(var o) = c else { return c }
            o["shard"] = nil
            return .object(o)
        }
        let base = unsharded(first.manifest.config)
        for m in ms.dropFirst() where unsharded(m.manifest.config) != base {
            throw LoomError("merge-manifests: \(m.directory) was run with other options than \(first.directory)")
        }
        members = ms
        stage = first.manifest.stage
        config = base
    }

    public var records: Int { members.reduce(0) { $0 + $1.manifest.records } }

    /// Writes `output`: the shards' part files in shard order (hard links where possible, else copies), their
    /// rejects concatenated, counts summed, and a manifest. When every shard read the same inputs (ingest,
    /// chunk, generate), the fingerprint is the one an unsharded run of the stage has, so later stages see the
    /// same input either way.
    /// `sideFiles`: files besides the records that are joined too (e.g. embed's vectors.bin), each by a function
    /// from the shards' copies, in shard order, to the output's.
    public func write(
        to output: String, sideFiles: [String: (_ shards: [String], _ output: String) throws -> Void] = [:]
    ) throws {
        for m in members {
            for name in FS.list(m.directory)
            where !(StageRunner.isOwned(name) || name.hasPrefix(".") || sideFiles[name] != nil) {
                throw LoomError(
                    "merge-manifests: \(m.directory) holds \(name) besides the records; this stage's shards are read as they are (merge-manifests without -o only checks them)"
                )
            }
        }
        if members.contains(where: { FS.join($0.directory, "") == FS.join(output, "") }) {
            throw LoomError("merge-manifests: the output directory must not be one of the shards")
        }
        try FS.makeDirectory(output)
        for name in FS.list(output) where StageRunner.isOwned(name) || sideFiles[name] != nil {
            FS.remove(FS.join(output, name))
        }

        var shards: [ShardInfo] = []
        let rejects = try BufferedFile(creating: FS.join(output, "rejects.jsonl.tmp"))
        var rejectCount = 0
        for m in members {
            for s in m.manifest.shards {
                let name = "part-\(String(shards.count).leftPadded(5)).jsonl"
                let src = FS.join(m.directory, s.file)
                guard FS.size(src) == s.bytes else {
                    throw LoomError("\(src): \(FS.size(src) ?? 0) bytes, its manifest says \(s.bytes); run shard \(m.shard) again")
                }
                let dst = FS.join(output, name + ".tmp")
                if link(src, dst) != 0 {
                    let f = try BufferedFile(creating: dst)
                    try f.append(contentsOfFile: src)
                    try f.close(sync: false)
                }
                try FS.rename(dst, FS.join(output, name))
                shards.append(ShardInfo(file: name, records: s.records, bytes: s.bytes))
            }
            let r = FS.join(m.directory, "rejects.jsonl")
            if FS.exists(r) {
                try LineReader(path: r).forEachLine { line in
                    if line.isEmpty { return }
                    try rejects.write(line)
                    try rejects.write(byte: 0x0A)
                    rejectCount += 1
                }
            }
        }
        try rejects.close()
        try FS.rename(FS.join(output, "rejects.jsonl.tmp"), FS.join(output, "rejects.jsonl"))

        for (name, join) in sideFiles.sorted(by: { $0.key < $1.key }) {
            let sources = members.map { FS.join($0.directory, name) }
            guard sources.allSatisfy(FS.exists) else { continue }
            try join(sources, FS.join(output, name + ".tmp"))
            try FS.rename(FS.join(output, name + ".tmp"), FS.join(output, name))
        }

        var configText: [UInt8] = []
        config.write(to: &configText)
        let configHash = SHA256.hex(String(decoding: configText, as: UTF8.self))
        let sameInputs = members.allSatisfy { $0.manifest.inputs == members[0].manifest.inputs }
        let inputs: [ManifestInput]
        let fp: String
        if sameInputs {
            inputs = members[0].manifest.inputs
            fp = SHA256.hex(([stage, loomVersion, configHash] + inputs.map(\.fingerprint)).joined(separator: "\0"))
        } else {
            var seen = Set<String>()
            inputs = members.flatMap(\.manifest.inputs).filter { seen.insert($0.fingerprint).inserted }
            fp = SHA256.hex(
                (["merge-manifests", stage, loomVersion, configHash] + members.map(\.manifest.fingerprint))
                    .joined(separator: "\0"))
        }
        var m = Manifest(
            stage: stage, config: config, configHash: configHash, inputs: inputs, fingerprint: fp, status: "complete")
        var counts = JSONObject()
        for key in members[0].manifest.counts.keys {
            let values = members.map { $0.manifest.counts[key] }
            if values.allSatisfy({ $0?.intValue != nil }) {
                counts.append(key, .int(values.reduce(0) { $0 + ($1?.intValue ?? 0) }))
            } else if values.allSatisfy({ $0 == values[0] }), let v = values[0] {
                counts.append(key, v)
            }
        }
        counts.append("merged_shards", .int(members.count))
        m.counts = counts
        m.shards = shards
        m.rejects = rejectCount
        let iso = ISO8601DateFormatter()
        m.startedAt = members.map(\.manifest.startedAt).min() ?? ""
        m.finishedAt = iso.string(from: Date())
        m.seconds = members.reduce(0) { $0 + $1.manifest.seconds }
        m.peakMemoryMB = members.map(\.manifest.peakMemoryMB).max() ?? 0
        try m.write(directory: output)
    }
}
