// The dedup stages: `loom dedup minhash|exact` in one process, and the three sharded steps
// (`minhash-signatures`, `minhash-clusters`, `apply`) that compute the same kept set over N shards.

import Foundation
import LoomCore

/// Default size of the byte ranges one worker reads at a time.
let defaultTaskBytes = 4 << 20

/// `loom dedup minhash` / `loom dedup exact`: the kept records as shards, `duplicates.jsonl` (one line per
/// cluster: the kept id and the removed ids with their similarity to it) and, for MinHash, `pairs.jsonl` (every
/// verified pair).
public struct DedupStage: Stage {
    public let settings: DedupConfig
    public let paths: [String]
    public let jobs: Int
    var maxTaskBytes = defaultTaskBytes

    /// `pending`: the paths are made by an earlier pipeline step, so they are resolved when the stage runs.
    public init(config: DedupConfig, paths: [String], jobs: Int, pending: Bool = false) throws {
        try config.validate()
        settings = config.resolved()
        self.paths = paths
        if !pending { _ = try DedupInput.resolve(paths) }
        self.jobs = max(1, jobs)
    }

    public var name: String { "dedup-\(settings.method)" }
    public var config: JSONValue { settings.json }
    public var inputs: [StageInput] { (try? DedupInput.resolve(paths).stageInputs) ?? paths.map { .file($0) } }
    public var sideFiles: [String] { settings.method == "exact" ? ["duplicates.jsonl"] : ["duplicates.jsonl", "pairs.jsonl"] }

    public func run(_ ctx: StageContext) throws {
        let input = try DedupInput.resolve(paths)
        let spec = settings.scanSpec
        var clock = PhaseClock()
        let ranges = try Ranges.make(files: input.files, shard: nil, taskBytes: taskBytes(input, jobs: jobs))
        ctx.progress.begin(totalBytes: ranges.reduce(0) { $0 + $1.end - $1.start }, unit: "documents")
        let table = DocTable(numPerm: spec.hasher?.numPerm ?? 0, bands: spec.lsh?.bands ?? 0)
        let spoolPath = FS.join(ctx.workDirectory, "shingles.bin")
        let spool = spec.keepShingles ? try BufferedFile(creating: spoolPath, capacity: 4 << 20) : nil
        let scanned = try DedupScanner(spec: spec, input: input).scan(
            ranges: ranges, into: table, spool: spool, ctx: ctx, jobs: jobs)
        try spool?.close(sync: false)
        clock.lap("scan")
        var store: ShingleStore?
        if spool != nil {
            store = ShingleStore()
            try store!.add(spool: spoolPath, firstDoc: 0)
        }
        let result =
            settings.method == "exact"
            ? Clustering.exact(table, keep: settings.keep)
            : try Clustering.run(
                table, store: store, threshold: settings.threshold, verify: settings.verify, keep: settings.keep,
                jobs: jobs)
        clock.lap("clusters")
        let dropped = applyEmptyPolicy(result.removed, table: table, policy: settings.empty)
        // The three outputs are independent files: written at the same time when there are workers to spare.
        _ = try parallelMap([0, 1, 2], jobs: jobs) { part in
            switch part {
            case 0: try DedupOutput.writeKept(table, files: input.files, drop: dropped, to: ctx.output)
            case 1:
                try DedupOutput.writeDuplicates(
                    result, table: table, store: store, verify: settings.method == "exact" ? nil : settings.verify,
                    to: ctx.sideFilePath("duplicates.jsonl"))
            default:
                if settings.method != "exact" {
                    try DedupOutput.writePairs(result, table: table, to: ctx.sideFilePath("pairs.jsonl"))
                }
            }
        }
        clock.lap("outputs")
        DedupOutput.count(ctx, table: table, result: result, dropped: dropped, scanned: scanned, settings: settings)
    }

    func taskBytes(_ input: DedupInput, jobs: Int) -> Int {
        let total = input.files.reduce(0) { $0 + (FS.size($1) ?? 0) }
        // Small inputs still split across the workers.
        return max(64 << 10, min(maxTaskBytes, total / max(1, jobs * 16) + 1))
    }
}

/// Removed-by-dedup plus blank documents when the policy drops them.
func applyEmptyPolicy(_ removed: [Bool], table: DocTable, policy: EmptyPolicy) -> [Bool] {
    guard policy == .drop else { return removed }
    var out = removed
    for i in 0..<table.count where table.blank[i] { out[i] = true }
    return out
}

enum DedupOutput {
    /// Copies the lines of documents not in `drop`, in input order, byte for byte.
    static func writeKept(
        _ t: DocTable, docs: Range<Int>? = nil, files: [String], drop: [Bool], dropOffset: Int = 0,
        to out: ShardWriter
    ) throws {
        let docs = docs ?? 0..<t.count
        var buf: [UInt8] = []
        var d = docs.lowerBound
        while d < docs.upperBound {
            let f = Int(t.file[d])
            let blockStart = Int(t.offset[d])
            var e = d + 1
            while e < docs.upperBound, Int(t.file[e]) == f,
                Int(t.offset[e]) + Int(t.byteLength[e]) - blockStart <= 8 << 20
            { e += 1 }
            if (d..<e).contains(where: { !drop[$0 - dropOffset] }) {
                let blockEnd = Int(t.offset[e - 1]) + Int(t.byteLength[e - 1])
                try Ranges.read(files[f], ByteRange(file: f, start: blockStart, end: blockEnd), into: &buf)
                try buf.withUnsafeBufferPointer { b in
                    // Runs of kept records that are adjacent lines ending in a newline go out as one block.
                    var k = d
                    while k < e {
                        if drop[k - dropOffset] {
                            k += 1
                            continue
                        }
                        let s = Int(t.offset[k]) - blockStart
                        var end = s + Int(t.byteLength[k])
                        var n = 1
                        while end < b.count, b[end] == 0x0A, k + n < e, !drop[k + n - dropOffset],
                            Int(t.offset[k + n]) - blockStart == end + 1
                        {
                            end = Int(t.offset[k + n]) - blockStart + Int(t.byteLength[k + n])
                            n += 1
                        }
                        if n > 1 {
                            // The last record of the run is written as a line (it may have no newline in the input).
                            let lastStart = Int(t.offset[k + n - 1]) - blockStart
                            try out.writeLines(UnsafeBufferPointer(rebasing: b[s..<lastStart]), records: n - 1)
                            try out.writeLine(UnsafeBufferPointer(rebasing: b[lastStart..<end]))
                        } else {
                            try out.writeLine(UnsafeBufferPointer(rebasing: b[s..<end]))
                        }
                        k += n
                    }
                }
            }
            d = e
        }
    }

    static func number(_ x: Double) -> JSONValue { .double((x * 1_000_000).rounded() / 1_000_000) }

    /// One line per cluster: {"cluster", "kept", "removed": [{"id", "similarity", "jaccard"?}]}.
    static func writeDuplicates(
        _ r: ClusterResult, table t: DocTable, store: ShingleStore?, verify: Verification?, to path: String
    ) throws {
        let f = try BufferedFile(creating: path)
        var line: [UInt8] = []
        for (n, c) in r.clusters.enumerated() {
            line.removeAll(keepingCapacity: true)
            line += Array("{\"cluster\":".utf8)
            JSONValue.int(n).write(to: &line)
            line += Array(",\"kept\":".utf8)
            line += t.id(c.kept)
            line += Array(",\"removed\":[".utf8)
            for (k, d) in c.removed.enumerated() {
                if k > 0 { line.append(UInt8(ascii: ",")) }
                line += Array("{\"id\":".utf8)
                line += t.id(d)
                line += Array(",\"similarity\":".utf8)
                if let verify {
                    number(Clustering.estimate(t, c.kept, d)).write(to: &line)
                    if verify == .exact, let store {
                        line += Array(",\"jaccard\":".utf8)
                        number(try store.jaccard(c.kept, d, table: t))
                            .write(to: &line)
                    }
                } else {
                    JSONValue.double(1).write(to: &line)
                }
                line.append(UInt8(ascii: "}"))
            }
            line += Array("]}\n".utf8)
            try f.write(line)
        }
        try f.close(sync: false)
    }

    /// One line per verified pair: {"a", "b", "similarity", "jaccard"?}, a before b in the input.
    static func writePairs(_ r: ClusterResult, table t: DocTable, to path: String) throws {
        let f = try BufferedFile(creating: path)
        var line: [UInt8] = []
        for p in r.pairs {
            line.removeAll(keepingCapacity: true)
            line += Array("{\"a\":".utf8)
            line += t.id(p.a)
            line += Array(",\"b\":".utf8)
            line += t.id(p.b)
            line += Array(",\"similarity\":".utf8)
            number(p.estimate).write(to: &line)
            if let j = p.jaccard {
                line += Array(",\"jaccard\":".utf8)
                number(j).write(to: &line)
            }
            line += Array("}\n".utf8)
            try f.write(line)
        }
        try f.close(sync: false)
    }

    static func count(
        _ ctx: StageContext, table t: DocTable, result r: ClusterResult, dropped: [Bool],
        scanned: (records: Int, emptyLines: Int), settings: DedupConfig
    ) {
        let removedDup = r.clusters.reduce(0) { $0 + $1.removed.count }
        let blank = t.blank.reduce(0) { $0 + ($1 ? 1 : 0) }
        ctx.setCount("documents", t.count)
        ctx.setCount("kept", dropped.reduce(0) { $0 + ($1 ? 0 : 1) })
        ctx.setCount("removed_duplicates", removedDup)
        ctx.setCount("clusters", r.clusters.count)
        ctx.setCount("empty_texts", blank)
        ctx.setCount("empty_dropped", settings.empty == .drop ? blank : 0)
        ctx.setCount("blank_lines", scanned.emptyLines)
        if settings.method == "minhash" {
            ctx.setCount("candidate_pairs", r.candidates)
            ctx.setCount("verified_pairs", r.pairs.count)
            ctx.setCount("large_buckets", r.largeBuckets)
        }
    }
}

/// Phase times on stderr when LOOM_TIMING is set (for profiling; never in manifests, which stay deterministic).
struct PhaseClock {
    let on = ProcessInfo.processInfo.environment["LOOM_TIMING"] != nil
    var last = DispatchTime.now().uptimeNanoseconds

    mutating func lap(_ name: String) {
        guard on else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if name.isEmpty {
            last = now
            return
        }
        FileHandle.standardError.write(Data("timing: \(name) \(String(format: "%.3f", Double(now - last) / 1e9)) s\n".utf8))
        last = now
    }
}
