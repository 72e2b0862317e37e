// `loom split`: records to train / validation / test by a hash of their document, so that chunks, tasks generated
// from them and near-duplicates of one document never sit on both sides of an evaluation (docs/evaluation.md).
//
// A record's document key: the field `key` names (a dotted path), or by default `doc_id`, else the ids in
// `meta.provenance` (`doc_id`, else `ids`), else `id`. Default keys are mapped to their document: Loom derives every
// id from its parent's by a `#` suffix (chunk "D#3", reading-comprehension sample "D#3#rc", evolved "D#3#rc#evol1"),
// so the document of an id is the part before its first `#`. A record naming several documents (a cluster record,
// or dedup's duplicates.jsonl clusters) joins them into one group, and a group goes to one side: the side of its
// representative (a document dedup kept, else the smallest key), hashed with the seed.

import Foundation
import LoomCore

public struct SplitConfig: Codable, Equatable, Sendable {
    /// A dotted path to the document key (`meta.pmid`); nil: the default rule above.
    public var key: String?
    /// Shares of train, validation and test (each at least 0, summing to 1).
    public var ratios = [0.8, 0.1, 0.1]
    public var seed = 1
    /// dedup's duplicates.jsonl: removed records follow their cluster's kept record.
    public var duplicates: String?

    public init() {}

    public static let keys = ["key", "ratios", "seed", "duplicates"]
    public static let sides = ["train", "validation", "test"]

    enum CodingKeys: String, CodingKey { case key, ratios, seed, duplicates }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        if let s = try? c.decodeIfPresent(String.self, forKey: .ratios) {
            ratios = try SplitConfig.parseRatios(s)
        } else {
            ratios = try c.decodeIfPresent([Double].self, forKey: .ratios) ?? [0.8, 0.1, 0.1]
        }
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 1
        duplicates = try c.decodeIfPresent(String.self, forKey: .duplicates)
    }

    /// "0.8,0.1,0.1" as three numbers.
    public static func parseRatios(_ s: String) throws -> [Double] {
        let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap(Double.init)
        guard values.count == parts.count else {
            throw LoomError("split: ratios '\(s)' are not numbers (write train,validation,test, e.g. 0.8,0.1,0.1)")
        }
        return values
    }

    public func validate() throws {
        guard ratios.count == 3 else {
            throw LoomError("split: ratios need three numbers, train,validation,test (got \(ratios.count))")
        }
        guard ratios.allSatisfy({ $0 >= 0 && $0.isFinite }), abs(ratios.reduce(0, +) - 1) < 1e-6 else {
            throw LoomError("split: ratios must be at least 0 and add up to 1 (got \(ratios.map { String($0) }.joined(separator: ",")))")
        }
        guard ratios[0] > 0 else { throw LoomError("split: the train ratio must be more than 0") }
        if let k = key, k.isEmpty || k.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            throw LoomError("split: key '\(k)' is not a field path (write e.g. doc_id or meta.pmid)")
        }
    }
}

/// The document keys of records and the side each goes to.
public struct DocumentKeys: Sendable {
    public let field: [String]?

    public init(field: String?) { self.field = field.map { $0.split(separator: ".").map(String.init) } }

    /// The document of a Loom id: the part before its first `#`.
    public static func document(of id: String) -> String {
        guard let i = id.firstIndex(of: "#"), i != id.startIndex else { return id }
        return String(id[..<i])
    }

    static func scalar(_ v: JSONValue?) -> String? {
        switch v {
        case .string(let s) where !s.isEmpty: return s
        case .int(let i): return String(i)
        default: return nil
        }
    }

    static func scalars(_ v: JSONValue?) -> [String] {
        if let s = scalar(v) { return [s] }
        return (v?.arrayValue ?? []).compactMap(scalar)
    }

    /// The keys of a record, deduplicated in order; empty when it has none.
    public func keys(_ r: JSONValue) -> [String] {
        var out: [String] = []
        if let field {
            var v: JSONValue? = r
            for p in field { v = v?[p] }
            out = DocumentKeys.scalars(v)
        } else if let d = DocumentKeys.scalar(r["doc_id"]) {
            out = [d]
        } else if let d = DocumentKeys.scalar(r["meta"]?["provenance"]?["doc_id"]) {
            out = [d]
        } else if let ids = r["meta"]?["provenance"]?["ids"], !DocumentKeys.scalars(ids).isEmpty {
            out = DocumentKeys.scalars(ids)
        } else if let id = DocumentKeys.scalar(r["id"]) {
            out = [id]
        }
        if field == nil { out = out.map(DocumentKeys.document(of:)) }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Which side (0 train, 1 validation, 2 test) the group whose representative is `key` goes to.
    public static func side(_ key: String, seed: Int, ratios: [Double]) -> Int {
        let u = Double(stableHash(seed, key) >> 11) / Double(UInt64(1) << 53)
        if u < ratios[0] { return 0 }
        if u < ratios[0] + ratios[1] { return 1 }
        return 2
    }
}

/// Documents joined into groups (near-duplicates, records naming several documents). The root of a group is its
/// best member: a document dedup kept before any other, then the smallest key, so the representative does not
/// depend on the order the links were seen in.
struct DocumentGroups {
    var parent: [String: String] = [:]
    var kept: Set<String> = []

    func better(_ a: String, _ b: String) -> Bool {
        let ka = kept.contains(a)
        let kb = kept.contains(b)
        if ka != kb { return ka }
        return a < b
    }

    mutating func root(_ x: String) -> String {
        var r = x
        while let p = parent[r], p != r { r = p }
        var y = x
        while let p = parent[y], p != r {
            parent[y] = r
            y = p
        }
        return r
    }

    mutating func union(_ a: String, _ b: String) {
        let ra = root(a)
        let rb = root(b)
        if ra == rb { return }
        if better(ra, rb) { parent[rb] = ra; parent[ra] = ra } else { parent[ra] = rb; parent[rb] = rb }
    }

    var isEmpty: Bool { parent.isEmpty }
}

public struct SplitStage: Stage {
    public let settings: SplitConfig
    public let input: String

    public init(config: SplitConfig, input: String) throws {
        try config.validate()
        settings = config
        self.input = input
    }

    public var name: String { "split" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] {
        RecordSource.stageInputs([input]) + (settings.duplicates.map { [.file($0)] } ?? [])
    }
    public var sideFiles: [String] { SplitConfig.sides }
    public var sideStages: [String] { SplitConfig.sides }

    /// Reads duplicates.jsonl: one line per cluster, {"kept": ID, "removed": [{"id": ID, ...}, ...]}.
    func readDuplicates(_ path: String, into groups: inout DocumentGroups, map: (String) -> String) throws -> Int {
        guard FS.exists(path) else { throw LoomError("\(path): no such file (give dedup's duplicates.jsonl)") }
        var clusters = 0
        let reader = try LineReader(path: path)
        var links: [(String, [String])] = []
        try reader.forEachLine { bytes in
            if bytes.isEmpty { return }
            let where_ = "\(path):\(reader.lineNumber)"
            let v: JSONValue
            do { v = try JSONValue.parse(bytes: bytes) } catch {
                throw LoomError("\(where_): not JSON (\(error)); expected dedup's duplicates.jsonl")
            }
            guard let kept = DocumentKeys.scalar(v["kept"]), let removed = v["removed"]?.arrayValue else {
                throw LoomError("\(where_): not a duplicates.jsonl line (needs 'kept' and 'removed')")
            }
            let ids = try removed.map { r -> String in
                guard let id = DocumentKeys.scalar(r["id"]) ?? DocumentKeys.scalar(r) else {
                    throw LoomError("\(where_): a removed entry without an 'id'")
                }
                return map(id)
            }
            links.append((map(kept), ids))
            clusters += 1
        }
        // Kept documents first, so every union knows which members are kept.
        for (k, _) in links { groups.kept.insert(k) }
        for (k, ids) in links { for id in ids { groups.union(k, id) } }
        return clusters
    }

    public func run(_ ctx: StageContext) throws {
        let source = try RecordSource.resolve([input])
        let keys = DocumentKeys(field: settings.key)
        let raw = settings.key != nil
        let mapID: (String) -> String = { raw ? $0 : DocumentKeys.document(of: $0) }
        var groups = DocumentGroups()
        if let d = settings.duplicates {
            ctx.setCount("duplicate_clusters", try readDuplicates(d, into: &groups, map: mapID))
        }
        // Pass 1: records naming several documents join them.
        var multi = 0
        try source.forEachRecord({ r, _, _ in
            let ks = keys.keys(r)
            guard ks.count > 1 else { return }
            multi += 1
            for k in ks.dropFirst() { groups.union(ks[0], k) }
        }, bad: { _, _, _ in })
        ctx.setCount("records_joining_documents", multi)

        // Pass 2: each record to its group's side.
        let sideConfig = config
        let writers = try SplitConfig.sides.map { try ctx.sideStage($0, stage: "split-" + $0, config: sideConfig) }
        var records = [0, 0, 0]
        var documents: [Set<String>] = [[], [], []]
        var sideOf: [String: Int] = [:]
        ctx.progress.begin(totalBytes: source.totalBytes, unit: "records")
        // Read line by line, not through RecordSource, so a record is copied byte for byte.
        for path in source.files {
            let reader = try LineReader(path: path)
            try reader.forEachLine { bytes in
                ctx.progress.add(items: 1, bytes: bytes.count + 1)
                if bytes.isEmpty { return }
                let r: JSONValue
                do { r = try JSONValue.parse(bytes: bytes) } catch {
                    try ctx.reject(Reject(source: path, reason: "not a JSON record: \(error)", line: reader.lineNumber))
                    return
                }
                let ks = keys.keys(r)
                guard let first = ks.first else {
                    let what = settings.key.map { "no '\($0)'" } ?? "no doc_id, meta.provenance ids or id"
                    try ctx.reject(
                        Reject(
                            source: path, reason: "record has \(what) to split it by (choose a field with --key)",
                            line: reader.lineNumber))
                    return
                }
                let rep = groups.isEmpty ? first : groups.root(first)
                let side: Int
                if let s = sideOf[rep] {
                    side = s
                } else {
                    side = DocumentKeys.side(rep, seed: settings.seed, ratios: settings.ratios)
                    sideOf[rep] = side
                }
                try writers[side].output.writeLine(bytes)
                records[side] += 1
                for k in ks { documents[side].insert(k) }
            }
        }
        for (i, s) in SplitConfig.sides.enumerated() {
            var counts = JSONObject()
            counts.append("documents", .int(documents[i].count))
            try writers[i].finish(counts: counts)
            ctx.setCount(s + "_records", records[i])
            ctx.setCount(s + "_documents", documents[i].count)
        }
        ctx.setCount("groups", sideOf.count)
    }
}
