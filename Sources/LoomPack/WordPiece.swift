// BERT's WordPiece tokenizer from a vocab.txt, as Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece
// model (the fast tokenizer sentence-transformers uses) does it:
// 1. normalise: drop NUL, U+FFFD and control/format characters, whitespace becomes a space; put spaces around CJK
//    ideographs; when lower-casing, strip accents (NFD, then drop non-spacing marks) and lower-case;
// 2. split on whitespace, and make every punctuation character a word of its own;
// 3. each word: the longest vocabulary entry from the left, then "##"-prefixed continuations; a word that cannot
//    be covered, or has more than 100 characters, is [UNK].
// Then [CLS] ... [SEP], truncated to the model's max_seq_length.

import Foundation
import LoomCore

public struct WordPieceTokenizer: Sendable {
    public let vocab: [String: Int32]
    public let unk: Int32
    public let cls: Int32
    public let sep: Int32
    public var lowercase = true
    public var stripAccents = true
    public var maxCharsPerWord = 100

    /// Reads vocab.txt: one token a line, its id the line number (from 0).
    public init(vocabFile path: String) throws {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw LoomError("cannot read the vocabulary \(path): \(error.localizedDescription)")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var v: [String: Int32] = [:]
        for (n, line) in lines.enumerated() {
            var s = String(line)
            if s.hasSuffix("\r") { s.removeLast() }
            v[s] = Int32(n)  // a repeated token keeps its last id, as transformers' load_vocab does
        }
        try self.init(vocab: v, source: path)
    }

    public init(vocab: [String: Int32], source: String = "vocabulary") throws {
        self.vocab = vocab
        func id(_ t: String) throws -> Int32 {
            guard let i = vocab[t] else { throw LoomError("\(source): has no \(t) token") }
            return i
        }
        unk = try id("[UNK]")
        cls = try id("[CLS]")
        sep = try id("[SEP]")
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The normalised text (step 1).
    public func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
            if Self.isWhitespace(s) {
                cleaned.append(" ")
            } else if Self.isCJK(s) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        var out = String(cleaned)
        if lowercase && stripAccents {
            let nfd = out.decomposedStringWithCanonicalMapping
            var kept = String.UnicodeScalarView()
            for s in nfd.unicodeScalars where s.properties.generalCategory != .nonspacingMark { kept.append(s) }
            out = String(kept)
        }
        if lowercase { out = out.lowercased() }
        return out
    }

    /// Words of a normalised text (step 2), as scalar arrays.
    func words(_ normalized: String) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var cur: [Unicode.Scalar] = []
        for s in normalized.unicodeScalars {
            if Self.isWhitespace(s) {
                if !cur.isEmpty { out.append(cur); cur = [] }
            } else if Self.isPunctuation(s) {
                if !cur.isEmpty { out.append(cur); cur = [] }
                out.append([s])
            } else {
                cur.append(s)
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// The pieces of one word (step 3).
    func pieces(_ word: [Unicode.Scalar], into ids: inout [Int32]) {
        if word.count > maxCharsPerWord {
            ids.append(unk)
            return
        }
        let mark = ids.count
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while end > start {
                var s = String.UnicodeScalarView()
                if start > 0 { s.append(contentsOf: "##".unicodeScalars) }
                s.append(contentsOf: word[start..<end])
                if let id = vocab[String(s)] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                ids.removeSubrange(mark...)
                ids.append(unk)
                return
            }
            ids.append(id)
            start = end
        }
    }

    /// Word-piece ids of a text, without [CLS]/[SEP].
    public func tokenize(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for w in words(normalize(text)) { pieces(w, into: &ids) }
        return ids
    }

    /// [CLS] pieces [SEP], the pieces truncated so the whole is at most `maxLength` ids.
    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        let p = tokenize(text)
        return [cls] + p.prefix(max(0, maxLength - 2)) + [sep]
    }
}
