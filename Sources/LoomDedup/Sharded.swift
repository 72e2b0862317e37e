// Sharded MinHash dedup: the same computation as `DedupStage`, cut at the two points where the data is smallest.
// 1. `SignaturesStage` (per shard): the shard's `DocTable` (signatures, band keys, record positions) and its
//    shingle spool.
// 2. `ClustersStage` (once): joins the tables in shard order, so documents are numbered exactly as one process
//    numbers them, then runs the same `Clustering.run`; writes duplicates.jsonl, pairs.jsonl and removed.jsonl.
// 3. `ApplyStage` (per shard): copies the shard's records that removed.jsonl does not list.

import Foundation
import LoomCore

public struct SignaturesStage: Stage {
    public let settings: DedupConfig
    public let input: DedupInput
    public let shard: ShardSpec
    public let jobs: Int

    public init(config: DedupConfig, paths: [String], shard: ShardSpec, jobs: Int) throws {
        var c = config
        c.method = "minhash"
        try c.validate()
        settings = c.resolved()
        input = try DedupInput.resolve(paths)
        self.shard = shard
        self.jobs = max(1, jobs)
    }

    public var name: String { "dedup-minhash-signatures" }
    public var config: JSONValue {
        guard case .object(var o) = settings.json else { return .null }
        o["shard"] = .string(shard.description)
        o["files"] = .array(input.files.map { .string($0) })
        return .object(o)
    }
    public var inputs: [StageInput] { input.stageInputs }
    public var sideFiles: [String] { ["docs.bin", "shingles.bin"] }

    public func run(_ ctx: StageContext) throws {
        let spec = settings.scanSpec
        let total = input.files.reduce(0) { $0 + (FS.size($1) ?? 0) } / shard.count
        let taskBytes = max(64 << 10, min(defaultTaskBytes, total / (jobs * 16) + 1))
        let ranges = try Ranges.make(files: input.files, shard: shard, taskBytes: taskBytes)
        ctx.progress.begin(totalBytes: ranges.reduce(0) { $0 + $1.end - $1.start }, unit: "documents")
        let table = DocTable(numPerm: settings.numPerm, bands: spec.lsh!.bands)
        let spool = try BufferedFile(creating: ctx.sideFilePath("shingles.bin"), capacity: 4 << 20)
        let scanned = try DedupScanner(spec: spec, input: input).scan(
            ranges: ranges, into: table, spool: spec.keepShingles ? spool : nil, ctx: ctx, jobs: jobs)
        try spool.close(sync: false)
        try table.save(to: ctx.sideFilePath("docs.bin"))
        ctx.setCount("documents", table.count)
        ctx.setCount("empty_texts", table.blank.reduce(0) { $0 + ($1 ? 1 : 0) })
        ctx.setCount("blank_lines", scanned.emptyLines)
    }
}

/// What a signatures directory says about itself.
struct SignaturesDirectory {
    let directory: String
    let manifest: Manifest
    let settings: DedupConfig
    let shard: ShardSpec
    let files: [String]

    init(_ dir: String) throws {
        directory = dir
        manifest = try Manifest.read(directory: dir)
        guard manifest.stage == "dedup-minhash-signatures", case .object(var o) = manifest.config,
            let s = o["shard"]?.stringValue, let f = o["files"]?.arrayValue
        else { throw LoomError("\(dir): not the output of 'loom dedup minhash-signatures'") }
        guard manifest.status == "complete" else {
            throw LoomError("\(dir): minhash-signatures did not finish (\(manifest.errors.first ?? "see its manifest"))")
        }
        shard = try ShardSpec(parsing: s)
        files = f.compactMap(\.stringValue)
        o["shard"] = nil
        o["files"] = nil
        settings = try JSONValue.object(o).decode(DedupConfig.self, allowedKeys: DedupConfig.keys, context: dir)
    }
}

public struct ClustersStage: Stage {
    let shards: [SignaturesDirectory]
    let jobs: Int

    public init(signatures: [String], jobs: Int) throws {
        guard !signatures.isEmpty else { throw LoomError("minhash-clusters: give the signatures directories") }
        let dirs = try signatures.map(SignaturesDirectory.init).sorted { $0.shard.index < $1.shard.index }
        let n = dirs[0].shard.count
        guard dirs.map(\.shard.index) == Array(0..<n), dirs.allSatisfy({ $0.shard.count == n }) else {
            let have = dirs.map(\.shard.description).joined(separator: ", ")
            throw LoomError("minhash-clusters: need exactly shards 0/\(n) ... \(n - 1)/\(n) (got \(have))")
        }
        for d in dirs.dropFirst() {
            guard d.settings == dirs[0].settings, d.files == dirs[0].files else {
                throw LoomError(
                    "minhash-clusters: \(d.directory) was made with other inputs or options than \(dirs[0].directory)")
            }
        }
        shards = dirs
        self.jobs = max(1, jobs)
    }

    public var name: String { "dedup-minhash-clusters" }
    public var config: JSONValue {
        guard case .object(var o) = shards[0].settings.json else { return .null }
        o["shards"] = .int(shards.count)
        return .object(o)
    }
    public var inputs: [StageInput] { shards.map { .stage($0.directory) } }
    public var sideFiles: [String] { ["duplicates.jsonl", "pairs.jsonl", "removed.jsonl"] }

    public func run(_ ctx: StageContext) throws {
        let settings = shards[0].settings
        let first = try DocTable.load(from: FS.join(shards[0].directory, "docs.bin"))
        let table = DocTable(numPerm: first.numPerm, bands: first.bands)
        let store = ShingleStore()
        var shardDocs: [Int] = []
        ctx.progress.begin(totalBytes: nil, unit: "shards")
        for (k, s) in shards.enumerated() {
            let t = k == 0 ? first : try DocTable.load(from: FS.join(s.directory, "docs.bin"))
            try store.add(spool: FS.join(s.directory, "shingles.bin"), firstDoc: table.count)
            shardDocs.append(t.count)
            table.append(t)
            ctx.progress.add(items: 1)
        }
        let result = try Clustering.run(
            table, store: store, threshold: settings.threshold, verify: settings.verify, keep: settings.keep,
            jobs: jobs)
        let dropped = applyEmptyPolicy(result.removed, table: table, policy: settings.empty)
        try DedupOutput.writeDuplicates(
            result, table: table, store: store, verify: settings.verify, to: ctx.sideFilePath("duplicates.jsonl"))
        try DedupOutput.writePairs(result, table: table, to: ctx.sideFilePath("pairs.jsonl"))
        let f = try BufferedFile(creating: ctx.sideFilePath("removed.jsonl"))
        var base = 0
        for (k, n) in shardDocs.enumerated() {
            let removed = (0..<n).filter { dropped[base + $0] }
            var o = JSONObject()
            o.append("shard", .int(k))
            o.append("documents", .int(n))
            o.append("removed", .array(removed.map { .int($0) }))
            var line: [UInt8] = []
            JSONValue.object(o).write(to: &line)
            line.append(0x0A)
            try f.write(line)
            base += n
        }
        try f.close(sync: false)
        DedupOutput.count(
            ctx, table: table, result: result, dropped: dropped, scanned: (table.count, 0), settings: settings)
    }
}

public struct ApplyStage: Stage {
    let shard: SignaturesDirectory
    let clusters: String
    let clustersManifest: Manifest

    public init(signatures: String, clusters: String) throws {
        shard = try SignaturesDirectory(signatures)
        self.clusters = clusters
        clustersManifest = try Manifest.read(directory: clusters)
        guard clustersManifest.stage == "dedup-minhash-clusters" else {
            throw LoomError("\(clusters): not the output of 'loom dedup minhash-clusters'")
        }
        guard clustersManifest.inputs.contains(where: { $0.fingerprint == shard.manifest.fingerprint }) else {
            throw LoomError(
                "\(clusters) was not computed from \(signatures) (run minhash-clusters again over the current shards)")
        }
        // The records are copied by byte offset: the inputs must be the ones the signatures were made from.
        for i in shard.manifest.inputs {
            let now = try StageRunner.fingerprint(of: i.kind == "stage" ? .stage(i.path) : .file(i.path))
            guard now.fingerprint == i.fingerprint else {
                throw LoomError("\(i.path) changed after minhash-signatures read it; run the three steps again")
            }
        }
    }

    public var name: String { "dedup-apply" }
    public var config: JSONValue { ["shard": .string(shard.shard.description)] }
    public var inputs: [StageInput] { [.stage(shard.directory), .stage(clusters)] }

    public func run(_ ctx: StageContext) throws {
        let table = try DocTable.load(from: FS.join(shard.directory, "docs.bin"))
        var removed: [Int]?
        try LineReader(path: FS.join(clusters, "removed.jsonl")).forEachLine { line in
            let v = try JSONValue.parse(bytes: line)
            guard v["shard"]?.intValue == shard.shard.index else { return }
            guard v["documents"]?.intValue == table.count else {
                throw LoomError("\(clusters)/removed.jsonl: shard \(shard.shard) has a different document count")
            }
            removed = (v["removed"]?.arrayValue ?? []).compactMap(\.intValue)
        }
        guard let removed else { throw LoomError("\(clusters)/removed.jsonl: no line for shard \(shard.shard)") }
        var drop = [Bool](repeating: false, count: table.count)
        for r in removed where r >= 0 && r < table.count { drop[r] = true }
        ctx.progress.begin(totalBytes: nil, unit: "documents")
        try DedupOutput.writeKept(table, files: shard.files, drop: drop, to: ctx.output)
        ctx.setCount("documents", table.count)
        ctx.setCount("kept", table.count - removed.count)
        ctx.setCount("removed", removed.count)
    }
}
