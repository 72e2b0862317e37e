// Sharded MinHash dedup under an outside engine (Spark, Ray, ...): the engine does the band-key shuffle, the
// grouping and the connected components; `loom` does everything that touches a record.
//   - `BandKeyDump`: one signatures shard's LSH band keys as text, `band key doc` a line (doc numbered inside the
//     shard; blank texts are left out, as `Clustering.candidates` leaves them out).
//   - `PairVerifier`: candidate pairs (global document numbers: shards in order, as minhash-clusters numbers them)
//     confirmed with the shards' settings (exact Jaccard over the shingle spools, or the MinHash estimate).
//   - `RemovedListApplyStage`: a shard's kept records, given the removed documents as a list the engine wrote.

import Foundation
import LoomCore

public enum BandKeyDump {
    /// Writes `band key doc` lines (decimal) for every band of every non-blank document of one shard.
    public static func write(signatures dir: String, to out: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        _ = try SignaturesDirectory(dir)
        let t = try DocTable.load(from: FS.join(dir, "docs.bin"))
        var line: [UInt8] = []
        line.reserveCapacity(1 << 16)
        func num(_ v: Int) { line.append(contentsOf: String(v).utf8) }
        for d in 0..<t.count where !t.blank[d] {
            for b in 0..<t.bands {
                num(b)
                line.append(0x20)
                num(Int(t.bandKeys[d * t.bands + b]))
                line.append(0x20)
                num(d)
                line.append(0x0A)
            }
            if line.count > 60_000 {
                try line.withUnsafeBufferPointer { try out($0) }
                line.removeAll(keepingCapacity: true)
            }
        }
        try line.withUnsafeBufferPointer { try out($0) }
    }

    /// Documents per shard (from each signatures manifest), in shard order: the offsets of the global numbering.
    public static func documentCounts(signatures: [String]) throws -> [Int] {
        try signatures.map { try SignaturesDirectory($0).manifest.counts["documents"]?.intValue ?? 0 }
    }
}

/// Confirms candidate pairs against all shards' tables, joined in shard order.
public final class PairVerifier {
    let table: DocTable
    let store = ShingleStore()
    public let threshold: Double
    let verify: Verification

    public init(signatures: [String]) throws {
        guard !signatures.isEmpty else { throw LoomError("verify-pairs: give the signatures directories") }
        let dirs = try signatures.map(SignaturesDirectory.init).sorted { $0.shard.index < $1.shard.index }
        let n = dirs[0].shard.count
        guard dirs.map(\.shard.index) == Array(0..<n), dirs.allSatisfy({ $0.shard.count == n }) else {
            let have = dirs.map(\.shard.description).joined(separator: ", ")
            throw LoomError("verify-pairs: need exactly shards 0/\(n) ... \(n - 1)/\(n) (got \(have))")
        }
        for d in dirs.dropFirst() where d.settings != dirs[0].settings || d.files != dirs[0].files {
            throw LoomError("verify-pairs: \(d.directory) was made with other inputs or options than \(dirs[0].directory)")
        }
        let first = try DocTable.load(from: FS.join(dirs[0].directory, "docs.bin"))
        table = DocTable(numPerm: first.numPerm, bands: first.bands)
        for (k, s) in dirs.enumerated() {
            let t = k == 0 ? first : try DocTable.load(from: FS.join(s.directory, "docs.bin"))
            try store.add(spool: FS.join(s.directory, "shingles.bin"), firstDoc: table.count)
            table.append(t)
        }
        threshold = dirs[0].settings.threshold
        verify = dirs[0].settings.verify
    }

    public var documents: Int { table.count }

    /// The similarity used to decide the pair (exact Jaccard or the estimate), or nil when it is below threshold.
    public func confirm(_ a: Int, _ b: Int) throws -> Double? {
        guard a >= 0, b >= 0, a < table.count, b < table.count else {
            throw LoomError("verify-pairs: document \(max(a, b)) is out of range (\(table.count) documents)")
        }
        let s: Double
        switch verify {
        case .estimate: s = Clustering.estimate(table, a, b)
        case .exact: s = try store.jaccard(a, b, table: table)
        }
        return s >= threshold ? s : nil
    }
}

/// `loom dedup apply SIG --removed FILE`: like `ApplyStage`, with the removed documents (numbers inside the shard,
/// one a line) computed elsewhere.
public struct RemovedListApplyStage: Stage {
    let shard: SignaturesDirectory
    let removedPath: String
    let removed: [Int]

    public init(signatures: String, removed path: String) throws {
        shard = try SignaturesDirectory(signatures)
        removedPath = path
        var list: [Int] = []
        let reader = try LineReader(path: path)
        try reader.forEachLine { bytes in
            let s = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if s.isEmpty { return }
            guard let v = Int(s), v >= 0 else {
                throw LoomError("\(path):\(reader.lineNumber): expected a document number, found '\(s)'")
            }
            list.append(v)
        }
        removed = list
        for i in shard.manifest.inputs {
            let now = try StageRunner.fingerprint(of: i.kind == "stage" ? .stage(i.path) : .file(i.path))
            guard now.fingerprint == i.fingerprint else {
                throw LoomError("\(i.path) changed after minhash-signatures read it; run the signatures again")
            }
        }
    }

    public var name: String { "dedup-apply" }
    public var config: JSONValue { ["shard": .string(shard.shard.description)] }
    public var inputs: [StageInput] { [.stage(shard.directory), .file(removedPath)] }

    public func run(_ ctx: StageContext) throws {
        let table = try DocTable.load(from: FS.join(shard.directory, "docs.bin"))
        var drop = [Bool](repeating: false, count: table.count)
        for r in removed {
            guard r < table.count else {
                throw LoomError("\(removedPath): document \(r) is out of range (shard \(shard.shard) has \(table.count))")
            }
            drop[r] = true
        }
        drop = applyEmptyPolicy(drop, table: table, policy: shard.settings.empty)
        ctx.progress.begin(totalBytes: nil, unit: "documents")
        try DedupOutput.writeKept(table, files: shard.files, drop: drop, to: ctx.output)
        let n = drop.reduce(0) { $0 + ($1 ? 1 : 0) }
        ctx.setCount("documents", table.count)
        ctx.setCount("kept", table.count - n)
        ctx.setCount("removed", n)
    }
}
