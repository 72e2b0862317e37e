// Added tokens (special tokens such as <|endoftext|>) are found in the text before anything else runs, as
// tokenizers' AddedVocabulary does: leftmost match first, the longest token at that position; the text between
// matches goes through the normaliser, pre-tokeniser and model. Tokens marked `normalized` are looked for in the
// normalised text instead of the raw text.

import Foundation
import LoomCore

public struct AddedToken: Equatable, Sendable {
    public var id: Int32
    public var content: String
    public var singleWord = false
    public var lstrip = false
    public var rstrip = false
    public var normalized = false
    public var special = true

    public init(
        id: Int32, content: String, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
        normalized: Bool = false, special: Bool = true
    ) {
        self.id = id
        self.content = content
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
        self.special = special
    }

    init(json: JSONValue) throws {
        guard let id = json["id"]?.intValue, let c = json["content"]?.stringValue else {
            throw LoomError("added_tokens: an entry without id or content")
        }
        self.init(
            id: Int32(id), content: c, singleWord: json["single_word"]?.boolValue ?? false,
            lstrip: json["lstrip"]?.boolValue ?? false, rstrip: json["rstrip"]?.boolValue ?? false,
            normalized: json["normalized"]?.boolValue ?? false, special: json["special"]?.boolValue ?? false)
    }

    var json: JSONValue {
        [
            "id": .int(Int(id)), "content": .string(content), "single_word": .bool(singleWord), "lstrip": .bool(lstrip),
            "rstrip": .bool(rstrip), "normalized": .bool(normalized), "special": .bool(special),
        ]
    }
}

/// Finds a set of added tokens in bytes.
struct AddedMatcher: Sendable {
    let tokens: [AddedToken]
    let contents: [[UInt8]]
    /// For each first byte, the tokens starting with it, longest first.
    let byFirst: [[Int]]
    let firstBytes: [UInt8]

    init(_ tokens: [AddedToken]) {
        let ts = tokens.filter { !$0.content.isEmpty }
        self.tokens = ts
        let cs = ts.map { Array($0.content.utf8) }
        contents = cs
        var by = [[Int]](repeating: [], count: 256)
        for (i, c) in cs.enumerated() { by[Int(c[0])].append(i) }
        for b in 0..<256 { by[b].sort { cs[$0].count > cs[$1].count || (cs[$0].count == cs[$1].count && $0 < $1) } }
        byFirst = by
        firstBytes = (0..<256).filter { !by[$0].isEmpty }.map { UInt8($0) }
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Calls `segment` for the text between matches and `token` for each match, in order.
    func split(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, segment: (Int, Int) -> Void, token: (Int32, Int, Int) -> Void
    ) {
        var last = start
        var i = start
        let single: UInt8? = firstBytes.count == 1 ? firstBytes[0] : nil
        while i < end {
            if let b = single {
                guard let q = memchr(p + i, Int32(b), end - i) else { break }
                i = p.distance(to: q.assumingMemoryBound(to: UInt8.self))
            }
            let cands = byFirst[Int(p[i])]
            var matched = -1
            for c in cands {
                let n = contents[c].count
                if i + n <= end && contents[c].withUnsafeBufferPointer({ memcmp(p + i, $0.baseAddress!, n) == 0 }) {
                    if tokens[c].singleWord && !isWordBoundary(p, start, end, i, i + n) { continue }
                    matched = c
                    break
                }
            }
            if matched < 0 {
                i += 1
                continue
            }
            var a = i
            var b = i + contents[matched].count
            if tokens[matched].lstrip { while a > last && isSpace(p[a - 1]) { a -= 1 } }
            if tokens[matched].rstrip { while b < end && isSpace(p[b]) { b += 1 } }
            if a > last { segment(last, a) }
            token(tokens[matched].id, a, b)
            last = b
            i = b
        }
        if last < end { segment(last, end) }
    }

    @inline(__always) private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// single_word: the match must not touch a letter, digit or underscore on either side.
    private func isWordBoundary(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ a: Int, _ b: Int) -> Bool {
        func wordy(_ v: UInt32) -> Bool { v == 0x5F || scalarClass(v, bmpClasses) & (classLetter | classNumber) != 0 }
        if a > start {
            var k = a - 1
            while k > start && p[k] & 0xC0 == 0x80 { k -= 1 }
            if wordy(decodeScalar(p, k).0) { return false }
        }
        if b < end && wordy(decodeScalar(p, b).0) { return false }
        return true
    }
}
