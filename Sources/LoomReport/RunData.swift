// What the report reads: the stage directories of one pipeline output (OUT/NN-step/ with manifest.json,
// part-*.jsonl, rejects.jsonl and side files), and what it learns from their records in one pass each.

import Foundation
import LoomCore

/// One finished stage directory.
struct StageDir {
    /// The directory's name, e.g. "03-dedup".
    let name: String
    let path: String
    let manifest: Manifest
    /// The stage's kind from its manifest, e.g. "dedup-minhash", "train-sft".
    var stage: String { manifest.stage }
    var isTrain: Bool { stage.hasPrefix("train-") }
    var isMerge: Bool { stage == "merge" }
    func count(_ key: String) -> Int? { manifest.counts[key]?.intValue }
    func value(_ key: String) -> Double? { manifest.counts[key]?.doubleValue }
    func file(_ name: String) -> String { FS.join(path, name) }
}

struct RunData {
    let root: String
    let stages: [StageDir]
    /// Model directories `loom merge` wrote into the output folder (they have mergekit_config.yml, no manifest).
    var mergedModels: [String] = []

    /// The stage directories of `root` that have a manifest, in name order (the pipeline's step order), without
    /// earlier reports.
    static func load(root: String) throws -> RunData {
        guard FS.isDirectory(root) else {
            throw LoomError("\(root): no such directory (give the output directory of 'loom run', e.g. out/demo)")
        }
        var dirs: [String] = []
        for name in FS.list(root).sorted() where !name.hasPrefix(".") {
            let p = FS.join(root, name)
            if FS.isDirectory(p), FS.exists(FS.join(p, Manifest.fileName)) { dirs.append(p) }
        }
        var data = try load(directories: dirs, root: root)
        for name in FS.list(root).sorted() where !name.hasPrefix(".") {
            let p = FS.join(root, name)
            if FS.isDirectory(p), !FS.exists(FS.join(p, Manifest.fileName)), FS.exists(FS.join(p, "mergekit_config.yml")) {
                data.mergedModels.append(p)
            }
        }
        if data.stages.isEmpty {
            throw LoomError(
                "\(root): no stage directories (NN-step/ with a manifest.json) found: point 'loom report' at the output directory of 'loom run'")
        }
        return data
    }

    static func load(directories: [String], root: String) throws -> RunData {
        var stages: [StageDir] = []
        for p in directories {
            let m = try Manifest.read(directory: p)
            if m.stage == ReportStage.stageName { continue }
            stages.append(StageDir(name: (p as NSString).lastPathComponent, path: p, manifest: m))
        }
        return RunData(root: root, stages: stages)
    }

    /// The stage directory a manifest input names: the same path, or a directory of the same name in this output
    /// (so a moved output folder still resolves).
    func stage(forInput path: String) -> StageDir? {
        let std = (path as NSString).standardizingPath
        if let s = stages.first(where: { ($0.path as NSString).standardizingPath == std }) { return s }
        let base = (path as NSString).lastPathComponent
        return stages.first { $0.name == base }
    }

    /// The stages a stage read, nearest first (breadth-first over manifest inputs).
    func upstream(of s: StageDir) -> [StageDir] {
        var out: [StageDir] = []
        var queue = [s]
        var seen: Set<String> = [s.name]
        while !queue.isEmpty {
            let cur = queue.removeFirst()
            for i in cur.manifest.inputs where i.kind == "stage" {
                guard let u = stage(forInput: i.path), !seen.contains(u.name) else { continue }
                seen.insert(u.name)
                out.append(u)
                queue.append(u)
            }
        }
        return out
    }

    /// Records going into a stage: the records of its input stages, and its input files.
    func inputs(of s: StageDir) -> (records: Int?, files: Int, bytes: Int) {
        var records: Int?
        var files = 0
        var bytes = 0
        for i in s.manifest.inputs {
            if i.kind == "stage" {
                if let u = stage(forInput: i.path) {
                    records = (records ?? 0) + u.manifest.records
                    bytes += u.manifest.shards.reduce(0) { $0 + $1.bytes }
                } else if let m = try? Manifest.read(directory: i.path) {
                    records = (records ?? 0) + m.records
                    bytes += m.shards.reduce(0) { $0 + $1.bytes }
                }
            } else {
                files += 1
                bytes += FS.size(i.path) ?? 0
            }
        }
        return (records, files, bytes)
    }

    /// Calls `body` with each record of a stage (up to `limit`), its shard file name and 1-based line.
    func forEachRecord(_ s: StageDir, limit: Int = .max, _ body: (JSONValue, String, Int) throws -> Bool) throws {
        var n = 0
        for shard in s.manifest.shards {
            let path = s.file(shard.file)
            guard FS.exists(path) else { continue }
            let reader = try LineReader(path: path)
            var stop = false
            try reader.forEachLine { bytes in
                if stop || bytes.isEmpty { return }
                guard let v = try? JSONValue.parse(bytes: bytes) else { return }
                n += 1
                if n > limit {
                    stop = true
                    return
                }
                if try !body(v, shard.file, reader.lineNumber) { stop = true }
            }
            if stop { return }
        }
    }

    /// Finds records by id in a stage's shards (or in a JSONL file), reading only the `id` member of other lines.
    func find(ids: Set<String>, inFiles files: [(path: String, name: String)], idField: String = "id") throws
        -> [String: Located]
    {
        var found: [String: Located] = [:]
        let key = [Array(idField.utf8)]
        for (path, name) in files where FS.exists(path) {
            let reader = try LineReader(path: path)
            var idBytes: [UInt8] = []
            try reader.forEachLine { line in
                if found.count == ids.count || line.isEmpty { return }
                guard let m = try? JSONScan.scan(line, keys: key), let r = m.values[0], line[r.lowerBound] == UInt8(ascii: "\"")
                else { return }
                idBytes.removeAll(keepingCapacity: true)
                JSONScan.appendString(line, r, to: &idBytes)
                let id = String(decoding: idBytes, as: UTF8.self)
                guard ids.contains(id), found[id] == nil, let v = try? JSONValue.parse(bytes: line) else { return }
                found[id] = Located(record: v, file: name, line: reader.lineNumber)
            }
        }
        return found
    }

    func shardFiles(_ s: StageDir) -> [(path: String, name: String)] {
        s.manifest.shards.map { (s.file($0.file), $0.file) }
    }
}

struct Located {
    var record: JSONValue
    var file: String
    var line: Int
}

// MARK: - Reading records

enum Records {
    /// The text a person would read in a record (LoomCore's RecordText; "" when it has none).
    static func text(_ r: JSONValue) -> String { RecordText.text(r) ?? "" }

    /// "sft", "preference", "text" or "window": what shape of training record this is.
    static func format(_ r: JSONValue) -> String {
        if r["chosen"] != nil { return "preference" }
        if r["messages"] != nil || r["instruction"] != nil { return "sft" }
        if r["members"] != nil { return "window" }
        return "text"
    }

    static func provenance(_ r: JSONValue) -> JSONValue? { r["meta"]?["provenance"] }

    /// The ids a record was made from: meta.provenance.ids, or a chunk's document.
    static func parents(_ r: JSONValue) -> [String] {
        if let ids = provenance(r)?["ids"]?.arrayValue?.compactMap(\.stringValue), !ids.isEmpty { return ids }
        if let d = provenance(r)?["doc_id"]?.stringValue { return [d] }
        if let d = r["doc_id"]?.stringValue { return [d] }
        return []
    }

    /// Whether a generator made this record (it names the ids it came from).
    static func isGenerated(_ r: JSONValue) -> Bool {
        !(provenance(r)?["ids"]?.arrayValue ?? []).isEmpty
    }

    /// The task types of a generated record (LoomCore's RecordMeta).
    static func tasks(_ r: JSONValue) -> [String] { RecordMeta.tasks(r) }

    static func generator(_ r: JSONValue) -> String { provenance(r)?["generator"]?.stringValue ?? "–" }

    /// The languages a record declares (LoomCore's RecordMeta).
    static func declaredLanguages(_ r: JSONValue) -> [String] { RecordMeta.declaredLanguages(r) }

    /// A record as a person reads it: a document's text, a conversation's turns with their roles, a preference
    /// pair's prompt, chosen and rejected answers.
    static func display(_ r: JSONValue) -> String {
        func roles(_ m: [JSONValue]) -> String {
            m.map { "[\($0["role"]?.stringValue ?? "?")] \($0["content"]?.stringValue ?? "")" }.joined(separator: "\n")
        }
        if r["text"]?.stringValue == nil, let m = r["messages"]?.arrayValue { return roles(m) }
        if r["chosen"] != nil {
            return ["prompt", "chosen", "rejected"].compactMap { k -> String? in
                guard let v = r[k] else { return nil }
                let body = v.stringValue ?? v.arrayValue.map(roles) ?? ""
                return "── \(k) ──\n" + body
            }.joined(separator: "\n")
        }
        return text(r)
    }

    /// Whitespace-separated words, counted without splitting the string.
    static func wordCount(_ text: String) -> Int {
        var n = 0
        var inWord = false
        for b in text.utf8 {
            let space = b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D
            if !space && !inWord { n += 1 }
            inWord = !space
        }
        return n
    }

    /// The script most of a text's letters are written in (from its first 2,000 letters).
    static func script(_ text: String) -> String {
        var counts: [String: Int] = [:]
        var seen = 0
        for u in text.unicodeScalars {
            guard u.properties.isAlphabetic else { continue }
            let v = u.value
            let s: String
            switch v {
            case 0x41...0x5A, 0x61...0x7A, 0xC0...0x24F, 0x1E00...0x1EFF: s = "Latin"
            case 0xAC00...0xD7AF, 0x1100...0x11FF, 0x3130...0x318F: s = "Hangul"
            case 0x4E00...0x9FFF, 0x3400...0x4DBF: s = "Han"
            case 0x3040...0x30FF: s = "Kana"
            case 0x0400...0x04FF: s = "Cyrillic"
            case 0x0370...0x03FF: s = "Greek"
            case 0x0600...0x06FF: s = "Arabic"
            default: s = "other"
            }
            counts[s, default: 0] += 1
            seen += 1
            if seen >= 2000 { break }
        }
        guard let best = counts.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }) else {
            return "no letters"
        }
        return best.key
    }
}

/// Values counted by key, reported largest first (ties by name), so output order never depends on hashing.
struct Tally {
    private(set) var counts: [String: Int] = [:]
    mutating func add(_ k: String, _ n: Int = 1) { counts[k, default: 0] += n }
    var sorted: [(key: String, count: Int)] {
        counts.map { ($0.key, $0.value) }.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
    }
    var total: Int { counts.values.reduce(0, +) }
    var isEmpty: Bool { counts.isEmpty }
}

// MARK: - Rejects

struct RejectGroup {
    var pattern: String
    var count = 0
    var examples: [JSONValue] = []
}

enum Rejects {
    /// A reason with its numbers replaced by N, so "sample of about 1209 tokens" and "... 832 tokens" group together.
    static func pattern(_ reason: String) -> String {
        var out = ""
        var inNumber = false
        for c in reason {
            if c.isASCII && c.isNumber {
                if !inNumber { out += "N" }
                inNumber = true
            } else if inNumber && c == "." {
                continue
            } else {
                inNumber = false
                out.append(c)
            }
        }
        return out
    }

    /// Reads a stage's rejects.jsonl: groups by reason pattern, keeping the first `examples` of each.
    static func read(_ s: StageDir, examples: Int = 3, maxGroups: Int = 200) throws -> (groups: [RejectGroup], total: Int) {
        let path = s.file("rejects.jsonl")
        guard FS.exists(path) else { return ([], 0) }
        var groups: [String: RejectGroup] = [:]
        var order: [String] = []
        var total = 0
        let reader = try LineReader(path: path)
        try reader.forEachLine { line in
            guard !line.isEmpty else { return }
            total += 1
            let v = (try? JSONValue.parse(bytes: line)) ?? ["reason": .string(String(decoding: line, as: UTF8.self))]
            let reason = v["reason"]?.stringValue ?? "(no reason given)"
            var key = pattern(reason)
            if groups[key] == nil && groups.count >= maxGroups { key = "(other reasons)" }
            if groups[key] == nil {
                groups[key] = RejectGroup(pattern: key)
                order.append(key)
            }
            groups[key]!.count += 1
            if groups[key]!.examples.count < examples { groups[key]!.examples.append(v) }
        }
        let list = order.map { groups[$0]! }.sorted { $0.count > $1.count }
        return (list, total)
    }

    /// "file:line", "file page 3", "file byte 120": where a reject came from.
    static func location(_ v: JSONValue) -> String {
        var s = v["source"]?.stringValue ?? "?"
        if let l = v["line"]?.intValue { s += ":\(l)" }
        if let c = v["column"]?.intValue { s += ":\(c)" }
        if let p = v["page"]?.intValue { s += " page \(p)" }
        if v["line"] == nil, let b = v["byte"]?.intValue { s += " byte \(b)" }
        return s
    }
}
