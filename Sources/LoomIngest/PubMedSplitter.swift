// Streams a PubMed XML file (plain or gzip) and cuts it into its top-level units: `<PubmedArticle>`,
// `<PubmedBookArticle>` and `<DeleteCitation>` elements, each handed over as bytes with the byte offset where it
// starts. Line numbers are not tracked while streaming (counting newlines cost more than finding the units);
// `LineIndex` turns the offsets of the few problems into lines afterwards. Memory holds one read block plus the unit being cut, whatever the file size.
//
// Cutting on the element tags (rather than parsing the whole file with one parser) is what lets a malformed
// article be rejected alone while parsing resumes at the next one. The bytes before the first unit (XML
// declaration, DOCTYPE, root tag) are handed over too, so the caller can check that the file is XML at all.
// Limitation: a literal "</PubmedArticle>" inside a comment or CDATA section would end a unit early; PubMed
// files have neither.

import CZlib
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

enum UnitKind: Sendable {
    case article, bookArticle, deleteCitation

    var name: String {
        switch self {
        case .article: return "PubmedArticle"
        case .bookArticle: return "PubmedBookArticle"
        case .deleteCitation: return "DeleteCitation"
        }
    }
}

/// A problem with a whole file; what was read before it is kept. `offset` is the byte (in the uncompressed XML)
/// the message is about, when there is one, so the caller can name its line.
struct FileError: Error {
    let message: String
    var offset: Int? = nil
}

/// Where the splitter's bytes come from.
protocol ByteSource: AnyObject {
    /// Reads up to `count` bytes; 0 at the end. Throws FileError on a damaged source.
    func read(into p: UnsafeMutableRawPointer, count: Int) throws -> Int
    /// Bytes of the underlying file consumed so far (compressed bytes for .gz), for progress.
    var fileOffset: Int { get }
}

/// Bytes in memory (tests and the fuzz target), handed out in small reads so block boundaries fall everywhere.
final class MemorySource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0
    private let step: Int
    init(_ bytes: [UInt8], step: Int = 4096) {
        self.bytes = bytes
        self.step = max(1, step)
    }
    var fileOffset: Int { offset }
    func read(into p: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = min(count, step, bytes.count - offset)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}

/// Reads plain or gzip files through zlib (gzread passes plain files through unchanged).
final class GzipReader: ByteSource {
    let path: String
    private let file: gzFile
    private(set) var uncompressedOffset = 0

    init(path: String) throws {
        self.path = path
        guard FS.exists(path) else { throw FileError(message: "no such file") }
        guard let f = gzopen(path, "rb") else { throw FileError(message: "cannot open: \(errnoText())") }
        file = f
        gzbuffer(f, 256 * 1024)
    }

    deinit { gzclose(file) }

    /// Bytes of the file itself consumed so far (compressed bytes for .gz), for progress.
    var fileOffset: Int { Int(gzoffset(file)) }

    /// Reads up to `count` bytes; 0 at the end. Throws on a corrupt or truncated gzip stream.
    func read(into p: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = gzread(file, p, UInt32(min(count, Int(Int32.max))))
        if n > 0 {
            // Hand over what was decompressed; an error after it is reported by the next call.
            uncompressedOffset += Int(n)
            return Int(n)
        }
        var errnum: Int32 = 0
        let msg = gzerror(file, &errnum)
        if n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END) {
            var text = msg.map { String(cString: $0) } ?? "read error"
            if text.hasPrefix(path + ": ") { text.removeFirst(path.count + 2) }
            let reason = errnum == Z_BUF_ERROR ? "the gzip stream is truncated (\(text))" : text
            throw FileError(message: "\(reason) at uncompressed byte \(uncompressedOffset) (file byte \(fileOffset))")
        }
        return 0
    }
}


final class PubMedSplitter {
    private let reader: ByteSource
    private var buf: [UInt8]
    private var base = 0  // absolute offset of buf[0]
    private var len = 0
    private var eof = false
    private var lastFileOffset = 0
    let progress: (_ fileBytes: Int) -> Void

    static let maxProlog = 1 << 20
    static let maxUnit = 256 << 20

    convenience init(path: String, progress: @escaping (Int) -> Void) throws {
        self.init(source: try GzipReader(path: path), progress: progress)
    }

    init(source: ByteSource, progress: @escaping (Int) -> Void) {
        reader = source
        buf = [UInt8](repeating: 0, count: 1 << 20)
        self.progress = progress
    }


    /// Keeps buf[keepFrom...] and reads more. Returns false at the end of the file.
    private func refill(keepFrom: Int) throws -> Bool {
        if eof { return false }
        if keepFrom > 0 {
            buf.withUnsafeMutableBufferPointer { b in
                if len > keepFrom { memmove(b.baseAddress!, b.baseAddress! + keepFrom, len - keepFrom) }
            }
            len -= keepFrom
            base += keepFrom
        }
        if len == buf.count {
            guard buf.count < PubMedSplitter.maxUnit else {
                throw FileError(message: "an element at byte \(base) is larger than \(PubMedSplitter.maxUnit >> 20) MB")
            }
            buf.append(contentsOf: [UInt8](repeating: 0, count: buf.count))
        }
        let n = try buf.withUnsafeMutableBytes { try reader.read(into: $0.baseAddress! + len, count: $0.count - len) }
        let fo = reader.fileOffset
        progress(fo - lastFileOffset)
        lastFileOffset = fo
        if n == 0 {
            eof = true
            return false
        }
        len += n
        return true
    }

    private static let startTags: [(UnitKind, [UInt8])] = [
        (.article, Array("<PubmedArticle".utf8)), (.bookArticle, Array("<PubmedBookArticle".utf8)),
        (.deleteCitation, Array("<DeleteCitation".utf8)),
    ]

    @inline(__always) private static func isNameEnd(_ c: UInt8) -> Bool {
        c == UInt8(ascii: ">") || c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 || c == UInt8(ascii: "/")
    }

    private func startTag(at p: Int) -> UnitKind? {
        guard p + 1 < len, buf[p + 1] == UInt8(ascii: "P") || buf[p + 1] == UInt8(ascii: "D") else { return nil }
        for (kind, tag) in PubMedSplitter.startTags where p + tag.count < len {
            if buf.withUnsafeBufferPointer({ memcmp($0.baseAddress! + p, tag, tag.count) == 0 })
                && PubMedSplitter.isNameEnd(buf[p + tag.count])
            {
                return kind
            }
        }
        return nil
    }

    /// The index of the next `needle` in buf[from..<len], or nil.
    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard from < len else { return nil }
        return buf.withUnsafeBufferPointer { b in
            needle.withUnsafeBufferPointer { n in
                guard let q = memmem(b.baseAddress! + from, len - from, n.baseAddress!, n.count) else { return nil }
                return b.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// Runs through the file.
    /// - prolog: called once with the bytes before the first unit (`final` when the file has no unit); returns
    ///   an error message if they are not the start of an XML document.
    /// - unit: called for each unit; `complete` is false when the next unit of the same kind started before
    ///   this one's end tag.
    func run(
        prolog: (UnsafeBufferPointer<UInt8>, _ final: Bool) -> String?,
        unit: (UnitKind, UnsafeBufferPointer<UInt8>, _ offset: Int, _ complete: Bool) throws -> Void
    ) throws {
        var inside: (kind: UnitKind, start: Int, name: [UInt8])?
        var prologDone = false
        var pos = 0
        let lookahead = 32

        func checkProlog(upTo end: Int, final: Bool) throws {
            if let e = buf.withUnsafeBufferPointer({ prolog(UnsafeBufferPointer(rebasing: $0[0..<end]), final) }) {
                throw FileError(message: "not a PubMed XML file: \(e)")
            }
            prologDone = true
        }

        /// Reads more, keeping buf[keep...]; false when the end of the file was already reached (the bytes
        /// left have been looked at once with `eof` set).
        func more(keep: Int) throws -> Bool {
            if eof { return false }
            if !prologDone && len >= PubMedSplitter.maxProlog { try checkProlog(upTo: len, final: false) }
            let k = prologDone ? keep : 0
            _ = try refill(keepFrom: k)
            pos = max(0, pos - k)
            if let cur = inside { inside = (cur.kind, cur.start - k, cur.name) }
            return true
        }

        while true {
            if let cur = inside {
                // Inside a unit: look for its name, then tell "</Name>" (the end) from "<Name" (the next unit:
                // this one never closed) and from other text.
                let m = find(cur.name, from: pos)
                guard let m, m + cur.name.count + lookahead <= len || eof else {
                    // Resume at the match, or where a name cut by the block end could start.
                    pos = m ?? max(pos, len - cur.name.count)
                    if try !more(keep: cur.start) { break }
                    continue
                }
                let after = m + cur.name.count
                if m >= cur.start + 2, buf[m - 2] == UInt8(ascii: "<"), buf[m - 1] == UInt8(ascii: "/") {
                    var i = after
                    while i < len, buf[i] == 0x20 || buf[i] == 0x0A || buf[i] == 0x0D || buf[i] == 0x09 { i += 1 }
                    if i < len, buf[i] == UInt8(ascii: ">") {
                        let at = base + cur.start
                        try buf.withUnsafeBufferPointer {
                            try unit(cur.kind, UnsafeBufferPointer(rebasing: $0[cur.start..<(i + 1)]), at, true)
                        }
                        inside = nil
                        pos = i + 1
                        continue
                    }
                } else if m > cur.start + 1, buf[m - 1] == UInt8(ascii: "<"), after < len,
                    PubMedSplitter.isNameEnd(buf[after])
                {
                    let at = base + cur.start
                    try buf.withUnsafeBufferPointer {
                        try unit(cur.kind, UnsafeBufferPointer(rebasing: $0[cur.start..<(m - 1)]), at, false)
                    }
                    inside = (cur.kind, m - 1, cur.name)
                }
                pos = after
                continue
            }
            let found: Int? = buf.withUnsafeBufferPointer { b in
                guard pos < len, let q = memchr(b.baseAddress! + pos, Int32(UInt8(ascii: "<")), len - pos) else {
                    return nil
                }
                return b.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self))
            }
            guard let p = found, p + lookahead <= len || eof else {
                if try !more(keep: found ?? len) { break }
                continue
            }
            if let kind = startTag(at: p) {
                if !prologDone { try checkProlog(upTo: p, final: false) }
                inside = (kind, p, Array(kind.name.utf8))
            }
            pos = p + 1
        }
        if let cur = inside {
            throw FileError(
                message: "the file ends inside <\(cur.kind.name)> (truncated?)", offset: base + cur.start)
        }
        if !prologDone { try checkProlog(upTo: len, final: true) }
    }
}

/// Turns byte offsets of a file's uncompressed XML into 1-based line and column numbers, in one pass.
enum LineIndex {
    static func positions(path: String, offsets: [Int]) -> [Int: (line: Int, column: Int)] {
        var out: [Int: (line: Int, column: Int)] = [:]
        let wanted = Array(Set(offsets)).sorted()
        guard !wanted.isEmpty, let reader = try? GzipReader(path: path) else { return out }
        var next = 0
        var line = 1
        var lineStart = 0  // offset of the current line's first byte
        var base = 0
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while next < wanted.count {
            guard let n = try? block.withUnsafeMutableBytes({ try reader.read(into: $0.baseAddress!, count: $0.count) }),
                n > 0
            else { break }
            for i in 0..<n {
                while next < wanted.count && wanted[next] == base + i {
                    out[wanted[next]] = (line, base + i - lineStart + 1)
                    next += 1
                }
                if block[i] == 0x0A {
                    line += 1
                    lineStart = base + i + 1
                }
            }
            base += n
        }
        return out
    }
}
