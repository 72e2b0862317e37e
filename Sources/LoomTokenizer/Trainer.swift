// Byte-level BPE training, step for step the algorithm of Hugging Face tokenizers' BpeTrainer
// (tokenizers/src/models/bpe/trainer.rs), so that the same corpus and settings give the same vocabulary and merges:
//
// 1. Words: the pre-tokeniser's pieces of each sequence (a text file is read line by line, the newline kept with
//    its line, as tokenizers' train(files) does; a JSONL record's `text` field is one sequence), counted.
// 2. Vocabulary: the special tokens in order, then the alphabet (characters of the words and the initial alphabet,
//    the 256 byte characters by default) sorted by code point.
// 3. Pair counts over the words (each pair weighted by its word's count) and, per pair, the words it occurs in.
// 4. A max-heap of pairs ordered by count, ties to the smaller (left id, right id) pair. The top is popped; when its
//    count is stale it is pushed back with the current count; else, unless below min_frequency, it becomes a merge
//    (token = left + right, a new id unless that string is already known), is applied to the words it was recorded
//    in, and the pairs the merge changed are pushed with the positions where they were created.
// 5. Stop at vocab_size tokens (special tokens included) or when no pair is left.
//
// Word order does not change the result (only the word list's positions depend on it); Loom sorts the words so
// every run is the same.

import Foundation
import LoomCore

public struct BPETrainerConfig: Sendable {
    /// Final vocabulary size, special tokens included.
    public var vocabSize = 30000
    /// A pair seen fewer times than this is never merged.
    public var minFrequency = 0
    /// Added at ids 0, 1, ... in order.
    public var specialTokens: [String] = []
    /// Characters always in the alphabet (default: the 256 byte-level characters).
    public var initialAlphabet: [Unicode.Scalar] = ByteLevel.byteToScalar
    /// Keep at most this many alphabet characters (the most frequent; the initial alphabet counts as most frequent).
    public var limitAlphabet: Int? = nil
    /// No token longer than this many characters.
    public var maxTokenLength: Int? = nil

    public init() {}
}

public final class BPETrainer {
    /// ByteLevel(add_prefix_space=false, use_regex=true): the GPT-2 layout.
    public static let gpt2PreTokenizer = PreTokenizer.byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: true)
    /// Split(Llama-3 regex, Isolated) then ByteLevel(use_regex=false): the Llama-3 / Qwen layout.
    public static let llama3PreTokenizer = PreTokenizer.sequence([
        .split(pattern: .llama3(maxDigits: 3), behavior: .isolated, invert: false),
        .byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: false),
    ])

    public let config: BPETrainerConfig
    public let preTokenizer: PreTokenizer
    let byteLevel: Bool
    /// Piece bytes (before the byte-level mapping) -> count.
    private(set) var wordCounts: [[UInt8]: Int] = [:]
    private var pieces: [Range<Int>] = []
    private var scratch: [Range<Int>] = []
    /// Sequences fed so far.
    public private(set) var sequences = 0

    public init(config: BPETrainerConfig, preTokenizer: PreTokenizer = BPETrainer.gpt2PreTokenizer) {
        self.config = config
        self.preTokenizer = preTokenizer
        byteLevel = preTokenizer.isByteLevel
    }

    // MARK: Feeding

    /// Counts the words of one sequence.
    public func feed(_ text: String) {
        var t = text
        t.withUTF8 { feed(bytes: $0) }
    }

    /// Counts the words of one sequence given as valid UTF-8 (the bytes of a Swift String).
    func feed(bytes b: UnsafeBufferPointer<UInt8>) {
        sequences += 1
        guard let p = b.baseAddress, b.count > 0 else { return }
        if preTokenizer.insertsBytes {
            for w in preTokenizer.pieces(of: Array(b)) { wordCounts[w, default: 0] += 1 }
            return
        }
        pieces.removeAll(keepingCapacity: true)
        pieces.append(0..<b.count)
        preTokenizer.apply(p, &pieces, scratch: &scratch)
        for r in pieces where !r.isEmpty { wordCounts[Array(b[r]), default: 0] += 1 }
    }

    /// Feeds a file or a directory. A `.jsonl` file (or a directory of them, read in name order, subdirectories
    /// included) gives one sequence per record, the string in `textField`; any other file one per line, the line
    /// ending kept. Records that are not JSON objects with that string field are reported to `bad` (file, 1-based
    /// line, reason) and skipped. Invalid UTF-8 is read with replacement characters.
    public func feed(
        file path: String, textField: String = "text", bad: (String, Int, String) -> Void = { _, _, _ in }
    ) throws {
        if FS.isDirectory(path) {
            guard let e = FileManager.default.enumerator(atPath: path) else { throw LoomError("cannot list \(path)") }
            var files: [String] = []
            while let f = e.nextObject() as? String {
                if f.hasSuffix(".jsonl") { files.append(f) }
            }
            for f in files.sorted() { try feed(file: FS.join(path, f), textField: textField, bad: bad) }
            return
        }
        if path.hasSuffix(".jsonl") {
            let reader = try LineReader(path: path)
            try reader.forEachLine { line in
                if let why = feed(jsonLine: line, textField: textField) { bad(path, reader.lineNumber, why) }
            }
            return
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw LoomError("cannot read \(path)") }
        let text = String(decoding: data, as: UTF8.self)
        var t = text
        t.withUTF8 { buf in
            var start = 0
            while start < buf.count {
                var end = start
                while end < buf.count && buf[end] != 0x0A { end += 1 }
                if end < buf.count { end += 1 }
                feed(bytes: UnsafeBufferPointer(rebasing: buf[start..<end]))
                start = end
            }
        }
    }

    /// Feeds one JSON Lines record: its `textField` string, or else the `content` of each of its `messages` (one
    /// sequence each). Returns why the line was not used, or nil. Empty lines are ignored.
    @discardableResult
    public func feed(jsonLine line: UnsafeBufferPointer<UInt8>, textField: String = "text") -> String? {
        if line.isEmpty { return nil }
        let key = [Array(textField.utf8)]
        do {
            let m = try JSONScan.scan(line, keys: key)
            guard m.isObject else { return "not a JSON object" }
            if let r = m.values[0], r.count >= 2, line[r.lowerBound] == UInt8(ascii: "\"") {
                var s: [UInt8] = []
                JSONScan.appendString(line, r, to: &s)
                feed(String(decoding: s, as: UTF8.self))  // repairs invalid UTF-8 (lone surrogate escapes)
                return nil
            }
            let v = try JSONValue.parse(bytes: line)
            if let msgs = v["messages"]?.arrayValue {
                let contents = msgs.compactMap { $0["content"]?.stringValue }
                if !contents.isEmpty {
                    for c in contents { feed(c) }
                    return nil
                }
            }
            return "no string field \"\(textField)\" (nor messages with content)"
        } catch {
            return "\(error)"
        }
    }

    /// Distinct words counted so far.
    public var wordCount: Int { wordCounts.count }

    // MARK: Training

    struct Entry {
        var count: Int
        var pair: UInt64
        var pos: Set<Int>
    }

    /// Trains and returns the tokenizer (special tokens as added tokens, ByteLevel post-processor and decoder).
    public func train() throws -> Tokenizer {
        var w2id: [String: Int32] = [:]
        var id2w: [String] = []
        func add(_ s: String) -> Int32 {
            if let i = w2id[s] { return i }
            id2w.append(s)
            w2id[s] = Int32(id2w.count - 1)
            return Int32(id2w.count - 1)
        }
        for t in config.specialTokens { _ = add(t) }

        // Words as characters, in byte order of their bytes.
        let sortedWords = wordCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        let wordChars: [[Unicode.Scalar]] = sortedWords.map { w in
            byteLevel ? w.key.map { ByteLevel.byteToScalar[Int($0)] } : Array(String(decoding: w.key, as: UTF8.self).unicodeScalars)
        }
        let counts = sortedWords.map(\.value)

        // Alphabet.
        var alphabet: [Unicode.Scalar: Int] = [:]
        for (cs, c) in zip(wordChars, counts) { for ch in cs { alphabet[ch, default: 0] += c } }
        for ch in config.initialAlphabet { alphabet[ch] = Int.max }
        var kept = alphabet.map { ($0.key, $0.value) }
        if let limit = config.limitAlphabet, kept.count > limit {
            kept.sort { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.value < $1.0.value }
            kept.removeFirst(kept.count - limit)
        }
        kept.sort { $0.0.value < $1.0.value }
        for (ch, _) in kept { _ = add(String(ch)) }

        // Words as symbol ids (characters outside the alphabet are left out, as tokenizers does).
        var words: [[Int32]] = wordChars.map { cs in cs.compactMap { w2id[String($0)] } }
        var lens: [[Int32]] = words.map { [Int32](repeating: 1, count: $0.count) }
        let maxLength = config.maxTokenLength ?? Int.max

        // Pair counts and where each pair occurs.
        var pairCounts: [UInt64: Int] = [:]
        var whereToUpdate: [UInt64: Set<Int>] = [:]
        for (i, w) in words.enumerated() where w.count > 1 {
            for k in 0..<(w.count - 1) {
                let p = MergeTable.key(w[k], w[k + 1])
                pairCounts[p, default: 0] += counts[i]
                whereToUpdate[p, default: []].insert(i)
            }
        }
        var heap = TrainHeap()
        for (p, pos) in whereToUpdate.sorted(by: { $0.key < $1.key }) {
            let c = pairCounts[p]!
            if c > 0 { heap.push(Entry(count: c, pair: p, pos: pos)) }
        }
        whereToUpdate.removeAll()

        var merges: [(UInt64, Int32)] = []
        while w2id.count < config.vocabSize {
            guard var top = heap.pop() else { break }
            let current = pairCounts[top.pair]!
            if top.count != current {
                top.count = current
                heap.push(top)
                continue
            }
            if top.count < 1 || config.minFrequency > top.count { break }
            let a = Int32(truncatingIfNeeded: top.pair >> 32)
            let b = Int32(truncatingIfNeeded: top.pair & 0xFFFF_FFFF)
            let newId = add(id2w[Int(a)] + id2w[Int(b)])
            merges.append((top.pair, newId))
            for i in top.pos.sorted() {
                BPETrainer.mergeWord(&words[i], &lens[i], a, b, newId, maxLength) { pair, change in
                    pairCounts[pair, default: 0] += change * counts[i]
                    if change > 0 { whereToUpdate[pair, default: []].insert(i) }
                }
            }
            for (p, pos) in whereToUpdate.sorted(by: { $0.key < $1.key }) {
                let c = pairCounts[p]!
                if c > 0 { heap.push(Entry(count: c, pair: p, pos: pos)) }
            }
            whereToUpdate.removeAll(keepingCapacity: true)
        }

        // A pair merged twice keeps its last rank (tokenizers collects the merges into a map).
        var lastRank: [UInt64: Int] = [:]
        for (r, m) in merges.enumerated() { lastRank[m.0] = r }
        let ordered = merges.enumerated().filter { lastRank[$0.element.0] == $0.offset }.map { $0.element.0 }
        let mergeStrings = ordered.map { p in
            (id2w[Int(Int32(truncatingIfNeeded: p >> 32))], id2w[Int(Int32(truncatingIfNeeded: p & 0xFFFF_FFFF))])
        }
        let model = try BPEModel(vocab: Vocabulary(w2id), merges: mergeStrings)
        let added = config.specialTokens.map { AddedToken(id: w2id[$0]!, content: $0) }
        return Tokenizer(
            model: model, normalizer: nil, preTokenizer: preTokenizer, postProcessor: byteLevel ? .byteLevel : nil,
            decoder: byteLevel ? .byteLevel : nil, addedTokens: added)
    }

    /// tokenizers' `Word::merge`: replaces each (c1, c2) left to right and reports the pair count changes.
    static func mergeWord(
        _ s: inout [Int32], _ len: inout [Int32], _ c1: Int32, _ c2: Int32, _ rep: Int32, _ maxLength: Int,
        _ change: (UInt64, Int) -> Void
    ) {
        var i = 0
        while i < s.count {
            if s[i] == c1 && i + 1 < s.count && s[i + 1] == c2 {
                let newLen = len[i] + len[i + 1]
                let second = s[i + 1]
                if i > 0 {
                    change(MergeTable.key(s[i - 1], c1), -1)
                    if Int(len[i - 1] + newLen) < maxLength { change(MergeTable.key(s[i - 1], rep), 1) }
                }
                s[i] = rep
                len[i] = newLen
                s.remove(at: i + 1)
                len.remove(at: i + 1)
                if i < s.count - 1 {
                    change(MergeTable.key(second, s[i + 1]), -1)
                    if Int(len[i + 1] + newLen) < maxLength { change(MergeTable.key(rep, s[i + 1]), 1) }
                }
            }
            i += 1
        }
    }
}

/// Max-heap of trainer entries: higher count first, then the smaller pair.
struct TrainHeap {
    var items: [BPETrainer.Entry] = []

    @inline(__always) static func above(_ a: BPETrainer.Entry, _ b: BPETrainer.Entry) -> Bool {
        a.count != b.count ? a.count > b.count : a.pair < b.pair
    }

    mutating func push(_ e: BPETrainer.Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !TrainHeap.above(items[i], items[p]) { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> BPETrainer.Entry? {
        guard !items.isEmpty else { return nil }
        let first = items[0]
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < items.count && TrainHeap.above(items[l], items[m]) { m = l }
            if r < items.count && TrainHeap.above(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
    }
}
