// Reading dedup's input: JSON Lines files cut into line-aligned byte ranges, each range turned into per-document
// rows (signature, band keys, content hash, shingles) by one worker, the rows appended to a `DocTable` in input
// order so the result does not depend on how many workers ran.

import Dispatch
import Foundation
import LoomCore

/// Dedup reads any record source: stage directories, directories of JSON Lines files, files.
public typealias DedupInput = RecordSource

/// A line-aligned byte range of one input file.
struct ByteRange: Equatable {
    var file: Int
    var start: Int
    var end: Int
}

// `ShardSpec` (`--shard i/N`) lives in LoomCore: shard i holds the records whose first byte falls in the i-th of
// N equal slices of all input bytes.

enum Ranges {
    /// The line-aligned ranges covering `files` (or one shard of them), each at most about `taskBytes` long.
    static func make(files: [String], shard: ShardSpec?, taskBytes: Int) throws -> [ByteRange] {
        let sizes = try files.map { f -> Int in
            guard let s = FS.size(f) else { throw LoomError("\(f): no such file") }
            return s
        }
        let total = sizes.reduce(0, +)
        var lo = 0
        var hi = total
        if let shard {
            lo = total * shard.index / shard.count
            hi = total * (shard.index + 1) / shard.count
        }
        var out: [ByteRange] = []
        var base = 0
        for (k, size) in sizes.enumerated() {
            defer { base += size }
            let a = max(lo, base) - base
            let b = min(hi, base + size) - base
            if a >= b && !(a == 0 && size == 0) { continue }
            // A record belongs to the slice holding its first byte: move both ends to the next line start.
            let start = try lineStart(files[k], atOrAfter: a, size: size)
            let end = b >= size ? size : try lineStart(files[k], atOrAfter: b, size: size)
            var s = start
            while s < end {
                let e = s + taskBytes >= end ? end : try lineStart(files[k], atOrAfter: s + taskBytes, size: size)
                out.append(ByteRange(file: k, start: s, end: e))
                s = e
            }
        }
        return out
    }

    /// The first line start at or after `offset` (a line starts at 0 and after every newline).
    static func lineStart(_ path: String, atOrAfter offset: Int, size: Int) throws -> Int {
        if offset <= 0 { return 0 }
        if offset >= size { return size }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var at = offset - 1
        while at < size {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(at)) }
            if n < 0 { throw LoomError("cannot read \(path): \(errnoText())") }
            if n == 0 { break }
            if let i = buf[0..<n].firstIndex(of: 0x0A) { return at + i + 1 }
            at += n
        }
        return size
    }

    /// Newlines in the first `upTo` bytes of a file (the line number base of a range starting there).
    static func newlines(_ path: String, upTo: Int) throws -> Int {
        guard upTo > 0 else { return 0 }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var at = 0
        var count = 0
        while at < upTo {
            let want = min(buf.count, upTo - at)
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(at)) }
            if n <= 0 { throw LoomError("cannot read \(path): \(errnoText())") }
            count += buf[0..<n].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            at += n
        }
        return count
    }

    static func read(_ path: String, _ r: ByteRange, into buf: inout [UInt8]) throws {
        buf.removeAll(keepingCapacity: true)
        let n = r.end - r.start
        buf.append(contentsOf: repeatElement(0, count: n))
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var done = 0
        while done < n {
            let k = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, n - done, off_t(r.start + done)) }
            if k < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot read \(path): \(errnoText())")
            }
            if k == 0 { throw LoomError("\(path): file shrank while being read") }
            done += k
        }
    }
}

/// What the scan computes for each document.
struct ScanSpec: Sendable {
    var textField: String
    var idField: String
    var normalization: Normalization
    var shingler: Shingler
    /// MinHash mode: signatures and band keys.
    var hasher: MinHasher?
    var lsh: LSHParameters?
    /// Keep sorted shingle hashes in the spool (exact verification).
    var keepShingles: Bool
    /// Exact mode: a 128-bit hash of the normalised text.
    var contentHash: Bool
}

/// One range's documents, before they are appended to the table in order.
final class RangeResult: @unchecked Sendable {
    let table: DocTable
    var hasId: [Bool] = []
    var shingles: [UInt64] = []
    var rejects: [(line: Int, column: Int?, reason: String)] = []
    var newlines = 0
    var lines = 0
    var emptyLines = 0

    init(numPerm: Int, bands: Int) { table = DocTable(numPerm: numPerm, bands: bands) }
}

struct DedupScanner {
    let spec: ScanSpec
    let input: DedupInput

    /// Reads `ranges` with `jobs` workers and appends their documents to `table`, shingles to `spool`. Rejects are
    /// written in input order. Returns the number of records read and blank lines skipped.
    func scan(
        ranges: [ByteRange], into table: DocTable, spool: BufferedFile?, ctx: StageContext, jobs: Int
    ) throws -> (records: Int, emptyLines: Int) {
        var lineBase: [Int: Int] = [:]  // file -> newlines before the next range of that file
        var spooled = UInt64((spool?.bytesWritten ?? 0) / 8)
        var records = 0
        var emptyLines = 0
        try orderedParallelForEach(
            ranges, jobs: jobs, window: max(1, jobs) * 4, produce: { r in try scanRange(r) },
            consume: { k, res in
                let r = ranges[k]
                let path = input.files[r.file]
                if lineBase[r.file] == nil { lineBase[r.file] = try Ranges.newlines(path, upTo: r.start) }
                let base = lineBase[r.file]!
                lineBase[r.file] = base + res.newlines
                for rej in res.rejects {
                    try ctx.reject(Reject(source: path, reason: rej.reason, line: base + rej.line, column: rej.column))
                }
                let t = res.table
                if k == 0 && ranges.count > 1 { reserve(table, documents: t.count, of: r, in: ranges) }
                for i in 0..<t.count {
                    let absLine = base + Int(t.line[i])
                    table.appendDoc(
                        file: UInt32(r.file), line: UInt32(absLine), offset: t.offset[i], byteLength: t.byteLength[i],
                        textLength: t.textLength[i], blank: t.blank[i])
                    if res.hasId[i] {
                        table.idBytes.append(contentsOf: t.id(i))
                    } else {
                        JSONValue.writeString("\(path):\(absLine)", to: &table.idBytes)
                    }
                    table.idEnd.append(table.idBytes.count)
                    if spec.keepShingles {
                        table.shingleStart.append(spooled + t.shingleStart[i])
                        table.shingleCount.append(t.shingleCount[i])
                    }
                }
                table.signatures += t.signatures
                table.bandKeys += t.bandKeys
                table.contentHash += t.contentHash
                if let spool, !res.shingles.isEmpty {
                    try res.shingles.withUnsafeBytes { try spool.write($0.bindMemory(to: UInt8.self)) }
                    spooled += UInt64(res.shingles.count)
                }
                records += res.lines - res.emptyLines
                emptyLines += res.emptyLines
                ctx.progress.add(items: t.count, bytes: r.end - r.start)
            })
        return (records, emptyLines)
    }

    /// Reserves the table's columns for the whole input, estimated from the first range's documents per byte (plus
    /// 10%), so the big columns do not grow by doubling: a doubling copies the column while the old one is still
    /// held, which set the peak memory before.
    func reserve(_ table: DocTable, documents: Int, of first: ByteRange, in ranges: [ByteRange]) {
        let total = ranges.reduce(0) { $0 + $1.end - $1.start }
        let n = Int(Double(documents) * Double(total) / Double(max(1, first.end - first.start)) * 1.1) + 16
        table.reserve(table.count + n, idBytesPerDocument: max(1, table.idBytes.count / max(1, table.count)))
    }

    /// One range: parse each line, normalise, shingle, sign.
    func scanRange(_ r: ByteRange) throws -> RangeResult {
        let res = RangeResult(numPerm: spec.hasher?.numPerm ?? 0, bands: spec.lsh?.bands ?? 0)
        var data: [UInt8] = []
        try Ranges.read(input.files[r.file], r, into: &data)
        let keys = [Array(spec.textField.utf8), Array(spec.idField.utf8)]
        let normalizer = Normalizer(spec.normalization)
        var text: [UInt8] = []
        var norm: [UInt8] = []
        var units: [UInt64] = []
        var shingles: [UInt64] = []
        var hashKeys: [UInt32] = []
        let t = res.table
        data.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                var end = start
                if let q = memchr(all.baseAddress! + start, 0x0A, all.count - start) {
                    end = all.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self))
                    res.newlines += 1
                } else {
                    end = all.count
                }
                res.lines += 1
                let lineNo = res.lines
                let line = UnsafeBufferPointer(rebasing: all[start..<end])
                let lineOffset = start
                start = end + 1
                var blankLine = true
                for b in line where !(b == 0x20 || b == 0x09 || b == 0x0D) { blankLine = false; break }
                if blankLine { res.emptyLines += 1; continue }
                let members: JSONMembers
                do {
                    members = try JSONScan.scan(line, keys: keys)
                } catch let e as JSONParseError {
                    res.rejects.append((lineNo, e.offset + 1, "not a JSON record: \(e.message)"))
                    continue
                } catch {
                    res.rejects.append((lineNo, nil, "not a JSON record: \(error)"))
                    continue
                }
                text.removeAll(keepingCapacity: true)
                if members.isObject, let tr = members.values[0] {
                    guard line[tr.lowerBound] == UInt8(ascii: "\"") else {
                        res.rejects.append((lineNo, tr.lowerBound + 1, "'\(spec.textField)' is not a string"))
                        continue
                    }
                    JSONScan.appendString(line, tr, to: &text)
                } else if members.isObject, spec.textField == "text", let r = try? JSONValue.parse(bytes: line),
                    let s = RecordText.text(r)
                {
                    // Generated SFT and preference records: their turns' text (the slow path, a full parse).
                    text.append(contentsOf: s.utf8)
                } else {
                    let shapes = spec.textField == "text" ? " (nor messages, prompt/chosen/rejected or instruction)" : ""
                    res.rejects.append((lineNo, nil, "record has no '\(spec.textField)' field\(shapes)"))
                    continue
                }
                let scalars = text.withUnsafeBufferPointer(scalarCount)
                text.withUnsafeBufferPointer { normalizer.normalize($0, into: &norm) }
                var blank = true
                for b in norm where !(b == 0x20 || (b >= 0x09 && b <= 0x0D)) { blank = false; break }
                t.appendDoc(
                    file: UInt32(r.file), line: UInt32(lineNo), offset: UInt64(r.start + lineOffset),
                    byteLength: UInt32(line.count), textLength: UInt32(scalars), blank: blank)
                if let ir = members.values[1] {
                    res.hasId.append(true)
                    t.idBytes.append(contentsOf: UnsafeBufferPointer(rebasing: line[ir]))
                } else {
                    res.hasId.append(false)
                }
                t.idEnd.append(t.idBytes.count)
                if spec.contentHash {
                    norm.withUnsafeBufferPointer { n in
                        t.contentHash.append(Hash.bytes(n.baseAddress!, n.count, seed: 0x6A09_E667_F3BC_C908))
                        t.contentHash.append(Hash.bytes(n.baseAddress!, n.count, seed: 0xBB67_AE85_84CA_A73B))
                    }
                }
                guard spec.hasher != nil || spec.keepShingles else { continue }
                norm.withUnsafeBufferPointer { spec.shingler.shingles($0, units: &units, into: &shingles) }
                if let h = spec.hasher, let lsh = spec.lsh {
                    let at = t.signatures.count
                    t.signatures.append(contentsOf: repeatElement(0, count: h.numPerm))
                    shingles.withUnsafeBufferPointer { s in
                        t.signatures.withUnsafeMutableBufferPointer { sig in
                            h.signature(s, keys: &hashKeys, into: sig.baseAddress! + at)
                        }
                    }
                    for band in 0..<lsh.bands {
                        var k = Hash.shingleSeed &+ UInt64(band)
                        for j in 0..<lsh.rows { k = Hash.combine(k, UInt64(t.signatures[at + band * lsh.rows + j])) }
                        t.bandKeys.append(UInt32(truncatingIfNeeded: Hash.finish(k) >> 32))
                    }
                }
                if spec.keepShingles {
                    t.shingleStart.append(UInt64(res.shingles.count))
                    t.shingleCount.append(UInt32(shingles.count))
                    res.shingles += shingles
                }
            }
        }
        return res
    }
}

/// Unicode scalars in UTF-8 bytes: the bytes that are not continuation bytes (10xxxxxx), eight at a time.
func scalarCount(_ b: UnsafeBufferPointer<UInt8>) -> Int {
    var continuation = 0
    var i = 0
    let raw = UnsafeRawPointer(b.baseAddress ?? UnsafePointer(bitPattern: 1)!)
    while i + 8 <= b.count {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        continuation += (w & ~(w << 1) & 0x8080_8080_8080_8080).nonzeroBitCount
        i += 8
    }
    while i < b.count {
        if b[i] & 0xC0 == 0x80 { continuation += 1 }
        i += 1
    }
    return b.count - continuation
}
