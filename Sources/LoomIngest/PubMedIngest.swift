// `loom ingest pubmed`: PubMed/MEDLINE baseline and update files to document records.
//
// Files are parsed in parallel (`jobs`), each into its own spool in the stage's work directory. Then one pass
// writes the output shards in the order the files were given, reconciled the way NLM intends: a later record for a
// PMID replaces an earlier one, and a PMID listed in a later `DeleteCitation` block is removed. Output does not
// depend on `jobs`.

import CZlib  // memmem (declared there: Glibc's module leaves it out)
import Foundation
import LoomCore

public struct PubMedIngestConfig: Codable, Sendable, Equatable {
    /// Files (`.xml`, `.xml.gz`) or directories (searched recursively for those), in the order given.
    public var paths: [String]
    /// Drop articles without abstract text.
    public var requireAbstract = false
    /// Keep only articles with at least one of these MeSH descriptors (names or UIs, case-insensitive).
    public var meshInclude: [String] = []
    /// Drop articles with any of these MeSH descriptors.
    public var meshExclude: [String] = []
    /// Keep only articles in one of these languages (PubMed's three-letter codes: eng, fre, ger, ...).
    public var languages: [String] = []
    /// Keep only articles published in or after / in or before this year.
    public var since: Int?
    public var until: Int?

    public init(paths: [String]) { self.paths = paths }

    enum CodingKeys: String, CodingKey {
        case paths, requireAbstract, meshInclude, meshExclude, languages, since, until
    }

    /// Missing keys take their defaults (pipeline files give only what they change).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        paths = try c.decode([String].self, forKey: .paths)
        requireAbstract = try c.decodeIfPresent(Bool.self, forKey: .requireAbstract) ?? false
        meshInclude = try c.decodeIfPresent([String].self, forKey: .meshInclude) ?? []
        meshExclude = try c.decodeIfPresent([String].self, forKey: .meshExclude) ?? []
        languages = try c.decodeIfPresent([String].self, forKey: .languages) ?? []
        since = try c.decodeIfPresent(Int.self, forKey: .since)
        until = try c.decodeIfPresent(Int.self, forKey: .until)
    }

    public static let keys = [
        "kind", "paths", "require_abstract", "mesh_include", "mesh_exclude", "languages", "since", "until", "jobs",
    ]

    /// Whether an article passes the filters.
    func accepts(_ a: PubMedArticle) -> Bool {
        if requireAbstract && a.abstract.isEmpty { return false }
        if !languages.isEmpty && !a.languages.contains(where: { l in languages.contains { $0.lowercased() == l.lowercased() } }) {
            return false
        }
        if since != nil || until != nil {
            guard let y = a.pubDate.yearNumber else { return false }
            if let since, y < since { return false }
            if let until, y > until { return false }
        }
        func matches(_ list: [String]) -> Bool {
            a.mesh.contains { m in list.contains { $0.caseInsensitiveCompare(m.descriptor) == .orderedSame || $0 == m.ui } }
        }
        if !meshInclude.isEmpty && !matches(meshInclude) { return false }
        if !meshExclude.isEmpty && matches(meshExclude) { return false }
        return true
    }
}

public struct PubMedIngestStage: Stage {
    public let settings: PubMedIngestConfig
    public let files: [String]
    public let jobs: Int
    /// `--shard i/N`, by record: the input files are laid end to end by their uncompressed sizes (a `.gz` file's
    /// size from its gzip trailer) and shard i takes the articles that start in the i-th of N equal slices, so
    /// one big file splits as well as many small ones. Files wholly outside the slice are not read. Replacements
    /// and DeleteCitation blocks are applied within a shard (baseline files hold each PMID once).
    public let shard: ShardSpec?

    public var name: String { "ingest-pubmed" }
    public var config: JSONValue { withShard((try? JSONValue(encoding: settings)) ?? .null, shard) }
    public var inputs: [StageInput] { files.map { .file($0) } }

    /// Expands directories; a path that does not exist is an error before anything runs.
    public init(
        config: PubMedIngestConfig, jobs: Int = ProcessInfo.processInfo.activeProcessorCount, shard: ShardSpec? = nil
    ) throws {
        settings = config
        self.shard = shard
        self.jobs = max(1, jobs)
        var files: [String] = []
        for p in config.paths {
            if FS.isDirectory(p) {
                let found = FS.listRecursive(p).filter { $0.hasSuffix(".xml") || $0.hasSuffix(".xml.gz") }
                if found.isEmpty { throw LoomError("\(p): no .xml or .xml.gz files in this directory") }
                files += found
            } else if FS.exists(p) {
                files.append(p)
            } else {
                throw LoomError("\(p): no such file or directory")
            }
        }
        if files.isEmpty { throw LoomError("ingest pubmed: no input files given") }
        self.files = files
    }

    struct Event {
        /// PMID << 8 | version.
        var key: Int
        var kind: UInt8  // 0 record written to the spool, 1 filtered out, 2 deletion
    }

    struct FileResult {
        var spool: String
        var rejects: String
        var events: [Event] = []
        var articles = 0
        var filtered = 0
        var rejected = 0
        var deleteCitations = 0
        var bookArticles = 0
    }

    /// Where each file starts on the line the shards cut, its length there, and this shard's slice of it.
    struct ShardLayout {
        var base: [Int] = []
        var size: [Int] = []
        var lo = 0
        var hi = Int.max

        /// The position of a unit starting at uncompressed offset `at` of file `k` (clamped inside the file, so
        /// positions grow through the files in order even when a size estimate is short).
        func position(file k: Int, at: Int) -> Int { base[k] + min(max(at, 0), size[k] - 1) }
        func owns(file k: Int, at: Int) -> Bool {
            let p = position(file: k, at: at)
            return p >= lo && p < hi
        }
        func touches(file k: Int) -> Bool { base[k] + size[k] > lo && base[k] < hi }
    }

    /// A file's uncompressed size: its own for .xml, the gzip trailer's ISIZE for .gz (an estimate: multi-member
    /// or >4 GB files only balance the shards worse, they never lose or repeat an article).
    static func uncompressedSize(_ path: String) -> Int {
        let size = FS.size(path) ?? 0
        guard path.hasSuffix(".gz"), size >= 18 else { return max(size, 1) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return max(size, 1) }
        defer { close(fd) }
        var b = [UInt8](repeating: 0, count: 4)
        let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 4, off_t(size - 4)) }
        guard n == 4 else { return max(size, 1) }
        let isize = Int(b[0]) | Int(b[1]) << 8 | Int(b[2]) << 16 | Int(b[3]) << 24
        return isize >= size ? isize : size * 8
    }

    func layout() -> ShardLayout? {
        guard let shard else { return nil }
        var l = ShardLayout()
        var total = 0
        for f in files {
            l.base.append(total)
            let s = PubMedIngestStage.uncompressedSize(f)
            l.size.append(s)
            total += s
        }
        l.lo = shard.range(total: total).lowerBound
        l.hi = shard.index == shard.count - 1 ? Int.max : shard.range(total: total).upperBound
        return l
    }

    struct StopReading: Error {}

    public func run(_ ctx: StageContext) throws {
        ctx.progress.begin(totalBytes: files.reduce(0) { $0 + (FS.size($1) ?? 0) } / (shard?.count ?? 1), unit: "articles")
        let shardLayout = layout()
        let results = Locked([FileResult?](repeating: nil, count: files.count))
        let next = Locked(0)
        let workers = min(jobs, files.count)
        let failure = Locked<Error?>(nil)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < files.count, failure.withLock({ $0 == nil }) else { return }
                do {
                    let r = try ingestFile(index: i, ctx: ctx, layout: shardLayout)
                    results.withLock { $0[i] = r }
                } catch {
                    failure.withLock { $0 = error }
                    return
                }
            }
        }
        if let e = failure.withLock({ $0 }) { throw e }
        let all = results.withLock { $0.map { $0! } }
        let late = try shardLayout.map { try laterEvents(after: $0, superseding: all) } ?? []
        try merge(all, late: late, ctx: ctx)
    }

    /// Parses one file into its spool; per-article problems become rejects, a problem with the whole file ends
    /// it early (what was read is kept) and is reported as the file's error.
    func ingestFile(index: Int, ctx: StageContext, layout: ShardLayout? = nil) throws -> FileResult {
        let path = files[index]
        let tag = String(index).leftPadded(5)
        var result = FileResult(
            spool: FS.join(ctx.workDirectory, "file-\(tag).jsonl"),
            rejects: FS.join(ctx.workDirectory, "file-\(tag).rejects.jsonl"))
        let spool = try BufferedFile(creating: result.spool)
        let rejects = try BufferedFile(creating: result.rejects, capacity: 64 << 10)
        if let layout, !layout.touches(file: index) {
            // Another shard's file: not read.
            try spool.close(sync: false)
            try rejects.close(sync: false)
            return result
        }
        let parser = PubMedUnitParser(filename: path)
        var line: [UInt8] = []
        let writer = JSONWriter()
        var sinceProgress = 0
        var fileError: FileError?

        // Rejects wait for the end of the file: their byte offsets are turned into lines in one extra pass.
        var pending: [(reason: String, unit: Int, line: Int, column: Int, id: String?)] = []
        func reject(_ reason: String, _ unit: Int, line: Int = 1, column: Int = 1, id: String? = nil) {
            result.rejected += 1
            pending.append((reason, unit, line, column, id))
        }

        do {
            let splitter = try PubMedSplitter(path: path) { ctx.progress.add(bytes: $0) }
            try splitter.run(
                prolog: { bytes, final in
                    guard let e = parser.checkProlog(bytes, final: final) else {
                        if final, let root = parser.rootName, root != "PubmedArticleSet" {
                            return "the root element is <\(root)>, not <PubmedArticleSet>"
                        }
                        return nil
                    }
                    return "line \(e.line), column \(e.column): \(e.message)"
                },
                unit: { kind, bytes, at, complete in
                    if let layout, !layout.owns(file: index, at: at) {
                        if layout.position(file: index, at: at) >= layout.hi { throw StopReading() }
                        return
                    }
                    sinceProgress += 1
                    if sinceProgress == 256 {
                        ctx.progress.add(items: sinceProgress)
                        sinceProgress = 0
                    }
                    if kind == .bookArticle {
                        result.bookArticles += 1
                        return
                    }
                    if !complete {
                        reject("<\(kind.name)> has no closing tag before the next one starts", at)
                        return
                    }
                    switch parser.parse(bytes) {
                    case .failed(let message, let l, let c):
                        reject("malformed XML in <\(kind.name)>: \(message)", at, line: max(l, 1), column: max(c, 1))
                    case .deletions(let list):
                        result.deleteCitations += list.count
                        for d in list {
                            guard let n = Int(d.pmid), n > 0 else {
                                reject("DeleteCitation lists a PMID that is not a number: '\(d.pmid)'", at)
                                continue
                            }
                            result.events.append(Event(key: n << 8 | (d.version & 0xFF), kind: 2))
                        }
                    case .article(let a):
                        guard !a.pmid.isEmpty else {
                            reject("<PubmedArticle> has no MedlineCitation/PMID", at)
                            return
                        }
                        guard let n = Int(a.pmid), n > 0 else {
                            reject("PMID is not a number: '\(a.pmid)'", at, id: a.pmid)
                            return
                        }
                        result.articles += 1
                        let key = n << 8 | (a.version & 0xFF)
                        guard settings.accepts(a) else {
                            result.filtered += 1
                            result.events.append(Event(key: key, kind: 1))
                            return
                        }
                        writer.reset()
                        a.writeDocument(source: path, to: writer)
                        writer.append(0x0A)
                        try spool.write(writer.buffer)
                        result.events.append(Event(key: key, kind: 0))
                    }
                })
        } catch let e as FileError {
            // With --shard, the shard whose slice holds the error reports it (the others keep what they read).
            if layout?.owns(file: index, at: e.offset ?? 0) ?? true { fileError = e }
        } catch is StopReading {
            // Past this shard's slice: the rest of the file belongs to later shards.
        }
        // Line and column of each problem: the unit's start plus the position libxml2 gave inside it.
        let starts = LineIndex.positions(path: path, offsets: pending.map(\.unit) + (fileError?.offset.map { [$0] } ?? []))
        func write(_ r: Reject) throws {
            line.removeAll(keepingCapacity: true)
            r.json.write(to: &line)
            line.append(0x0A)
            try rejects.write(line)
        }
        for (i, p) in pending.enumerated() {
            let s = starts[p.unit] ?? (0, 0)
            let r = Reject(
                source: path, reason: p.reason, line: s.line + p.line - 1,
                column: p.line == 1 ? s.column + p.column - 1 : p.column, byte: p.unit, id: p.id)
            try write(r)
            if i < 3 { Log.warn("rejected \(r.summary)") }
        }
        // A problem with the whole file is its last reject, and fails the stage (what was read is kept).
        if let e = fileError {
            let at = e.offset.flatMap { starts[$0] }
            let r = Reject(source: path, reason: e.message, line: at?.line, column: at?.column, byte: e.offset)
            try write(r)
            let kept = result.articles > 0 ? "; the \(result.articles) articles before it were kept" : ""
            ctx.fail(r.summary + (e.offset.map { " (byte \($0))" } ?? "") + kept)
        }
        ctx.progress.add(items: sinceProgress)
        try spool.close(sync: false)
        try rejects.close(sync: false)
        return result
    }

    /// Writes the kept records in file order and the rejects, and counts replacements and deletions.
    /// With --shard: the events after this shard's slice that replace or delete one of its records, so an update
    /// file in a later shard applies here as it would in one run. The later articles are only searched for the
    /// shard's PMIDs (a byte search, no XML parsing); the few that contain one are parsed for their real PMID.
    func laterEvents(after layout: ShardLayout, superseding results: [FileResult]) throws -> [Event] {
        guard layout.hi != Int.max else { return [] }
        var mine = Set<Int>()
        for r in results { for e in r.events where e.kind != 2 { mine.insert(e.key >> 8) } }
        guard !mine.isEmpty else { return [] }
        var late: [Event] = []
        for k in files.indices where layout.base[k] + layout.size[k] > layout.hi {
            let parser = PubMedUnitParser(filename: files[k])
            do {
                let splitter = try PubMedSplitter(path: files[k]) { _ in }
                try splitter.run(
                    prolog: { bytes, final in
                        _ = parser.checkProlog(bytes, final: final)
                        return nil
                    },
                    unit: { kind, bytes, at, complete in
                        guard complete, kind != .bookArticle, layout.position(file: k, at: at) >= layout.hi,
                            PubMedIngestStage.mentionsPMID(bytes, of: mine)
                        else { return }
                        switch parser.parse(bytes) {
                        case .failed: return
                        case .deletions(let list):
                            for d in list { if let n = Int(d.pmid), n > 0 { late.append(Event(key: n << 8 | (d.version & 0xFF), kind: 2)) } }
                        case .article(let a):
                            if let n = Int(a.pmid), n > 0 {
                                late.append(Event(key: n << 8 | (a.version & 0xFF), kind: settings.accepts(a) ? 0 : 1))
                            }
                        }
                    })
            } catch is FileError {
                // The shard that owns the problem reports it; what was read before it counts.
            }
        }
        return late
    }

    /// Whether any `<PMID ...>N</PMID>` in the bytes has N in `pmids`.
    static func mentionsPMID(_ b: UnsafeBufferPointer<UInt8>, of pmids: Set<Int>) -> Bool {
        let tag = Array("<PMID".utf8)
        var i = 0
        while i + tag.count < b.count {
            guard let q = memmem(b.baseAddress! + i, b.count - i, tag, tag.count) else { return false }
            var j = b.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self)) + tag.count
            while j < b.count, b[j] != UInt8(ascii: ">") { j += 1 }
            j += 1
            while j < b.count, b[j] == 0x20 || b[j] == 0x0A || b[j] == 0x09 || b[j] == 0x0D { j += 1 }
            var n = 0
            var digits = 0
            while j < b.count, b[j] >= 0x30, b[j] <= 0x39, digits < 18 {
                n = n * 10 + Int(b[j] - 0x30)
                digits += 1
                j += 1
            }
            if digits > 0 && pmids.contains(n) { return true }
            i = j
        }
        return false
    }

    func merge(_ results: [FileResult], late: [Event] = [], ctx: StageContext) throws {
        // Events are numbered across all files in order; the last event for a PMID+version decides, and a record
        // is kept only if it is that last event.
        var bases: [Int] = []
        var last: [Int: Int] = [:]
        var total = 0
        for r in results {
            bases.append(total)
            for (i, e) in r.events.enumerated() { last[e.key] = total + i }
            total += r.events.count
        }
        // Events after this shard's slice (--shard) come after all of its own.
        for (i, e) in late.enumerated() { last[e.key] = total + i }
        func kind(ofEvent global: Int) -> UInt8 {
            if global >= total { return late[global - total].kind }
            let fi = bases.lastIndex { $0 <= global }!
            return results[fi].events[global - bases[fi]].kind
        }

        // What reconciliation dropped, and deletions that matched nothing (normal: update files delete
        // citations of baseline files that were not given).
        var replaced = 0, deleted = 0, deletesUnmatched = 0
        var recorded = Set<Int>()
        for (fi, r) in results.enumerated() {
            for (i, e) in r.events.enumerated() {
                if e.kind != 2 { recorded.insert(e.key) }
                guard e.kind == 0, let winner = last[e.key], winner != bases[fi] + i else { continue }
                if kind(ofEvent: winner) == 2 { deleted += 1 } else { replaced += 1 }
            }
        }
        for r in results { for e in r.events where e.kind == 2 && !recorded.contains(e.key) { deletesUnmatched += 1 } }

        // The kept records, file by file in the order given.
        for (fi, r) in results.enumerated() {
            // Spool lines are the record events (kind 0), in order.
            let kept = r.events.indices.filter { r.events[$0].kind == 0 }.map { last[r.events[$0].key] == bases[fi] + $0 }
            let keptCount = kept.filter { $0 }.count
            if keptCount == kept.count {
                // Nothing in this file was replaced or deleted: take its spool whole.
                try ctx.output.takeLines(fromFile: r.spool, records: keptCount)
            } else if keptCount > 0 {
                var line = 0
                try LineReader(path: r.spool).forEachLine { bytes in
                    guard line < kept.count else { throw LoomError("internal: spool \(r.spool) has more lines than records") }
                    if kept[line] { try ctx.output.writeLine(bytes) }
                    line += 1
                }
            }
            try appendRejects(r.rejects, to: ctx)
        }

        ctx.setCount("files", results.count)
        ctx.setCount("articles", results.reduce(0) { $0 + $1.articles })
        ctx.setCount("filtered", results.reduce(0) { $0 + $1.filtered })
        ctx.setCount("replaced", replaced)
        ctx.setCount("deleted", deleted)
        ctx.setCount("delete_citations", results.reduce(0) { $0 + $1.deleteCitations })
        ctx.setCount("delete_citations_unmatched", deletesUnmatched)
        ctx.setCount("book_articles_skipped", results.reduce(0) { $0 + $1.bookArticles })
        ctx.setCount("rejected_articles", results.reduce(0) { $0 + $1.rejected })
    }

    private func appendRejects(_ path: String, to ctx: StageContext) throws {
        let reader = try LineReader(path: path)
        try reader.forEachLine { try ctx.rejects.writeRaw($0) }
    }
}

/// A value behind a lock, for the few counters workers share.
final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
