// What dedup keeps per document, column by column (no object per document): where the record is, its id, its
// length, its MinHash signature and LSH band keys or its content hash. Shingle hashes for exact verification live
// in a spool file beside it. A table is built by `Scanner`, saved and loaded for the sharded commands, and
// several shards' tables concatenate into one.

import Foundation
import LoomCore

public final class DocTable {
    public let numPerm: Int
    public let bands: Int
    public private(set) var count = 0

    /// Input file index and the record's line (1-based), byte offset and byte length (without the newline).
    var file: [UInt32] = []
    var line: [UInt32] = []
    var offset: [UInt64] = []
    var byteLength: [UInt32] = []
    /// Length of the text in Unicode scalars (for `keep: longest`).
    var textLength: [UInt32] = []
    /// Whether the normalised text is empty (such documents never join a cluster).
    var blank: [Bool] = []
    /// The id as raw JSON (`idEnd[i-1]..<idEnd[i]` in `idBytes`).
    var idBytes: [UInt8] = []
    var idEnd: [Int] = []
    /// numPerm slots per document (MinHash mode).
    var signatures: [UInt32] = []
    /// `bands` 32-bit keys per document (MinHash mode). Two documents agreeing by chance in a band's key cost one
    /// verification, never a wrong result.
    var bandKeys: [UInt32] = []
    /// Two words per document (exact mode).
    var contentHash: [UInt64] = []
    /// Where a document's shingle hashes start in its spool, and how many (exact verification).
    var shingleStart: [UInt64] = []
    var shingleCount: [UInt32] = []

    public init(numPerm: Int, bands: Int) {
        self.numPerm = numPerm
        self.bands = bands
    }

    func id(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        idBytes.withUnsafeBufferPointer { b in
            UnsafeBufferPointer(rebasing: b[(i == 0 ? 0 : idEnd[i - 1])..<idEnd[i]])
        }
    }

    func reserve(_ n: Int, idBytesPerDocument: Int) {
        file.reserveCapacity(n)
        line.reserveCapacity(n)
        offset.reserveCapacity(n)
        byteLength.reserveCapacity(n)
        textLength.reserveCapacity(n)
        blank.reserveCapacity(n)
        idEnd.reserveCapacity(n)
        idBytes.reserveCapacity(n * idBytesPerDocument)
        if numPerm > 0 {
            signatures.reserveCapacity(n * numPerm)
            bandKeys.reserveCapacity(n * bands)
            shingleStart.reserveCapacity(n)
            shingleCount.reserveCapacity(n)
        } else {
            contentHash.reserveCapacity(2 * n)
        }
    }

    func appendDoc(
        file f: UInt32, line l: UInt32, offset o: UInt64, byteLength n: UInt32, textLength t: UInt32, blank b: Bool
    ) {
        file.append(f)
        line.append(l)
        offset.append(o)
        byteLength.append(n)
        textLength.append(t)
        blank.append(b)
        count += 1
    }

    /// Appends `other`'s documents after this table's (for the sharded join). Shingle starts stay relative to
    /// each shard's spool; `ShingleStore` knows which spool a document's shingles are in.
    func append(_ other: DocTable) {
        precondition(other.numPerm == numPerm && other.bands == bands)
        file += other.file
        line += other.line
        offset += other.offset
        byteLength += other.byteLength
        textLength += other.textLength
        blank += other.blank
        let base = idBytes.count
        idBytes += other.idBytes
        idEnd += other.idEnd.map { $0 + base }
        signatures += other.signatures
        bandKeys += other.bandKeys
        contentHash += other.contentHash
        shingleStart += other.shingleStart
        shingleCount += other.shingleCount
        count += other.count
    }

    // MARK: - Saving and loading (sharded mode)

    static let magic: [UInt8] = Array("LOOMDOC2".utf8)

    /// Writes the table as a small JSON header and the raw little-endian columns.
    func save(to path: String) throws {
        let f = try BufferedFile(creating: path, capacity: 4 << 20)
        var header = JSONObject()
        header.append("count", .int(count))
        header.append("num_perm", .int(numPerm))
        header.append("bands", .int(bands))
        header.append("id_bytes", .int(idBytes.count))
        header.append("signatures", .int(signatures.count))
        header.append("band_keys", .int(bandKeys.count))
        header.append("content_hash", .int(contentHash.count))
        header.append("shingles", .int(shingleStart.count))
        var h: [UInt8] = []
        JSONValue.object(header).write(to: &h)
        try f.write(DocTable.magic)
        try f.write(le(UInt64(h.count)))
        try f.write(h)
        func column<T>(_ a: [T]) throws { try a.withUnsafeBytes { try f.write($0.bindMemory(to: UInt8.self)) } }
        try column(file)
        try column(line)
        try column(offset)
        try column(byteLength)
        try column(textLength)
        try column(blank.map { $0 ? UInt8(1) : 0 })
        try column(idBytes)
        try column(idEnd.map { UInt64($0) })
        try column(signatures)
        try column(bandKeys)
        try column(contentHash)
        try column(shingleStart)
        try column(shingleCount)
        try f.close(sync: false)
    }

    static func load(from path: String) throws -> DocTable {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw LoomError("cannot read \(path): \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw -> DocTable in
            var at = 0
            func bad(_ why: String) -> LoomError { LoomError("\(path): not a Loom dedup table (\(why))") }
            guard raw.count >= 16, Array(raw[0..<8]) == magic else { throw bad("wrong magic") }
            let hlen = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian)
            at = 16
            guard at + hlen <= raw.count else { throw bad("short header") }
            let header = try JSONValue.parse(bytes: UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[at..<(at + hlen)]))
            at += hlen
            guard let n = header["count"]?.intValue, let p = header["num_perm"]?.intValue,
                let b = header["bands"]?.intValue, let ib = header["id_bytes"]?.intValue,
                let sg = header["signatures"]?.intValue, let bk = header["band_keys"]?.intValue,
                let ch = header["content_hash"]?.intValue, let sh = header["shingles"]?.intValue
            else { throw bad("header fields missing") }
            func column<T>(_ k: Int, _: T.Type) throws -> [T] {
                let bytes = k * MemoryLayout<T>.stride
                guard at + bytes <= raw.count else { throw bad("truncated") }
                let start = at
                let a = [T](unsafeUninitializedCapacity: k) { buf, initialized in
                    if bytes > 0 { memcpy(buf.baseAddress!, raw.baseAddress! + start, bytes) }
                    initialized = k
                }
                at += bytes
                return a
            }
            let t = DocTable(numPerm: p, bands: b)
            t.file = try column(n, UInt32.self)
            t.line = try column(n, UInt32.self)
            t.offset = try column(n, UInt64.self)
            t.byteLength = try column(n, UInt32.self)
            t.textLength = try column(n, UInt32.self)
            t.blank = try column(n, UInt8.self).map { $0 != 0 }
            t.idBytes = try column(ib, UInt8.self)
            t.idEnd = try column(n, UInt64.self).map { Int($0) }
            t.signatures = try column(sg, UInt32.self)
            t.bandKeys = try column(bk, UInt32.self)
            t.contentHash = try column(ch, UInt64.self)
            t.shingleStart = try column(sh, UInt64.self)
            t.shingleCount = try column(sh, UInt32.self)
            t.count = n
            guard at == raw.count else { throw bad("trailing bytes") }
            return t
        }
    }
}

func le(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

/// Read-only access to the shingle spools of one or more tables (one spool per shard). Documents are read with
/// pread when a pair is verified: the spool is never mapped, so its pages count as page cache, not as the
/// process's memory (a mapped 4.8 GB spool showed up whole in the peak RSS of a 10-million-document run).
final class ShingleStore: @unchecked Sendable {
    private var files: [Int32] = []
    private var paths: [String] = []
    /// The first document of each spool, in the joined table's numbering.
    private var firstDoc: [Int] = []

    func add(spool path: String, firstDoc d: Int) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        files.append(fd)
        paths.append(path)
        firstDoc.append(d)
    }

    /// Reads document `doc`'s shingle hashes into `out`.
    func read(_ doc: Int, table: DocTable, into out: inout [UInt64]) throws {
        var s = firstDoc.count - 1
        while s > 0 && firstDoc[s] > doc { s -= 1 }
        let n = Int(table.shingleCount[doc])
        out.removeAll(keepingCapacity: true)
        guard n > 0 else { return }
        out.append(contentsOf: repeatElement(0, count: n))
        let want = n * 8
        let at = off_t(table.shingleStart[doc]) * 8
        var done = 0
        try out.withUnsafeMutableBytes { b in
            while done < want {
                let k = pread(files[s], b.baseAddress! + done, want - done, at + off_t(done))
                if k < 0 && errno == EINTR { continue }
                if k <= 0 { throw LoomError("cannot read \(paths[s]): \(k < 0 ? errnoText() : "file is short")") }
                done += k
            }
        }
    }

    /// Exact Jaccard similarity of two documents' shingle sets.
    func jaccard(_ a: Int, _ b: Int, table: DocTable) throws -> Double {
        var x: [UInt64] = []
        var y: [UInt64] = []
        try read(a, table: table, into: &x)
        try read(b, table: table, into: &y)
        return x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { Clustering.jaccard(xp, $0) } }
    }

    deinit {
        for fd in files { close(fd) }
    }
}
