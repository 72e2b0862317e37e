// Sentence-aware chunking: split a document into sentences, then pack whole sentences into chunks of at most
// `maxTokens`, each chunk starting with the last sentences of the previous one (up to `overlap` tokens) so no
// sentence loses its context. A single sentence longer than `maxTokens` is cut into word windows.
// Tokens are counted by a pluggable counter; `WordCounter` until the trained tokenizer exists.

import LoomCore

public protocol TokenCounter: Sendable {
    var name: String { get }
    func count(_ text: Substring) -> Int
}

/// Counts whitespace-separated words.
public struct WordCounter: TokenCounter {
    public init() {}
    public var name: String { "words" }
    public func count(_ text: Substring) -> Int {
        var n = 0
        var inWord = false
        for u in text.utf8 {
            let space = u == 0x20 || u == 0x0A || u == 0x09 || u == 0x0D
            if !space && !inWord { n += 1 }
            inWord = !space
        }
        return n
    }
}

public struct Chunk: Equatable, Sendable {
    public var text: String
    public var tokens: Int
    /// Offsets in Unicode scalars into the document text.
    public var start: Int
    public var end: Int
}

public struct Chunker: Sendable {
    public var maxTokens: Int
    public var overlap: Int
    public var counter: any TokenCounter

    public init(maxTokens: Int, overlap: Int, counter: any TokenCounter = WordCounter()) {
        self.maxTokens = max(1, maxTokens)
        self.overlap = max(0, min(overlap, maxTokens - 1))
        self.counter = counter
    }

    /// A piece to pack: a sentence, or a window of an over-long sentence.
    struct Piece {
        var range: Range<String.Index>
        var tokens: Int
    }

    func pieces(_ text: String) -> [Piece] {
        var out: [Piece] = []
        for r in SentenceSplitter.split(text) {
            let n = counter.count(text[r])
            if n <= maxTokens {
                out.append(Piece(range: r, tokens: n))
                continue
            }
            // Cut an over-long sentence at word boundaries into pieces of at most maxTokens.
            var words: [Range<String.Index>] = []
            var i = r.lowerBound
            while i < r.upperBound {
                while i < r.upperBound, text[i].isWhitespace { i = text.index(after: i) }
                guard i < r.upperBound else { break }
                var j = i
                while j < r.upperBound, !text[j].isWhitespace { j = text.index(after: j) }
                words.append(i..<j)
                i = j
            }
            var k = 0
            while k < words.count {
                var end = k
                var total = 0
                while end < words.count {
                    let t = counter.count(text[words[end]])
                    if total + t > maxTokens && end > k { break }
                    total += t
                    end += 1
                }
                out.append(Piece(range: words[k].lowerBound..<words[end - 1].upperBound, tokens: total))
                k = end
            }
        }
        return out
    }

    public func chunks(_ text: String) -> [Chunk] {
        let ps = pieces(text)
        guard !ps.isEmpty else { return [] }
        var out: [Chunk] = []
        var first = 0
        while first < ps.count {
            var last = first
            var total = ps[first].tokens
            while last + 1 < ps.count, total + ps[last + 1].tokens <= maxTokens {
                last += 1
                total += ps[last].tokens
            }
            let range = ps[first].range.lowerBound..<ps[last].range.upperBound
            out.append(
                Chunk(
                    text: String(text[range]), tokens: total,
                    start: text.unicodeScalars.distance(from: text.startIndex, to: range.lowerBound),
                    end: text.unicodeScalars.distance(from: text.startIndex, to: range.upperBound)))
            if last + 1 >= ps.count { break }
            // The next chunk starts with the trailing pieces of this one that fit in `overlap`, and always
            // moves forward by at least one piece.
            var next = last + 1
            var carried = 0
            while next - 1 > first, carried + ps[next - 1].tokens <= overlap,
                carried + ps[next - 1].tokens + ps[last + 1].tokens <= maxTokens
            {
                next -= 1
                carried += ps[next].tokens
            }
            first = next
        }
        return out
    }
}

public struct ChunkConfig: Codable, Sendable, Equatable {
    public var maxTokens = 512
    public var overlap = 64
    public var counter = "words"
    public init() {}
    public static let keys = ["max_tokens", "overlap", "counter"]

    enum CodingKeys: String, CodingKey { case maxTokens, overlap, counter }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 512
        overlap = try c.decodeIfPresent(Int.self, forKey: .overlap) ?? 64
        counter = try c.decodeIfPresent(String.self, forKey: .counter) ?? "words"
    }
}

/// `loom chunk`: documents to chunks, each keeping its document's metadata and provenance.
public struct ChunkStage: Stage {
    public let settings: ChunkConfig
    public let input: String
    /// `--shard i/N`: only the documents numbered in this shard's range (ids are the documents' own).
    public let shard: ShardSpec?
    /// The shard the output is recorded as: `shard`, or the one the input directory holds.
    let recordedShard: ShardSpec?
    public var name: String { "chunk" }
    public var config: JSONValue { withShard((try? JSONValue(encoding: settings)) ?? .null, recordedShard) }
    public var inputs: [StageInput] { [.stage(input)] }

    public init(config: ChunkConfig, input: String, shard: ShardSpec? = nil) throws {
        guard config.counter == "words" else {
            throw LoomError("chunk: unknown counter '\(config.counter)' (available: words)")
        }
        guard config.maxTokens > 0 else { throw LoomError("chunk: max_tokens must be positive") }
        guard config.overlap >= 0, config.overlap < config.maxTokens else {
            throw LoomError("chunk: overlap must be at least 0 and less than max_tokens (\(config.maxTokens))")
        }
        settings = config
        self.input = input
        self.shard = shard
        recordedShard = try outputShard(given: shard, input: input, stage: "chunk")
    }

    public func run(_ ctx: StageContext) throws {
        let reader = try StageReader(directory: input)
        ctx.progress.begin(totalBytes: reader.bytes(shard: shard), unit: "documents")
        let chunker = Chunker(maxTokens: settings.maxTokens, overlap: settings.overlap)
        var documents = 0
        var empty = 0
        try reader.forEachRecord(
            shard: shard, progress: ctx.progress,
            { doc, path, line in
                guard let id = doc["id"]?.stringValue, let text = doc["text"]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string 'id' and 'text'", line: line))
                    return
                }
                documents += 1
                let chunks = chunker.chunks(text)
                if chunks.isEmpty {
                    empty += 1
                    try ctx.reject(Reject(source: path, reason: "document has no text to chunk", line: line, id: id))
                    return
                }
                let meta = doc["meta"]?.objectValue ?? JSONObject()
                for (i, c) in chunks.enumerated() {
                    var m = meta
                    m["provenance"] = [
                        "doc_id": .string(id), "source": doc["source"] ?? .null, "stage": "chunk",
                        "char_start": .int(c.start), "char_end": .int(c.end), "tokens": .int(c.tokens),
                        "counter": .string(chunker.counter.name),
                    ]
                    var o = JSONObject()
                    o.append("id", .string("\(id)#\(i)"))
                    o.append("doc_id", .string(id))
                    o.append("index", .int(i))
                    o.append("text", .string(c.text))
                    o.append("meta", .object(m))
                    try ctx.output.write(.object(o))
                }
            },
            bad: { e, path, line in
                try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line))
            })
        ctx.setCount("documents", documents)
        ctx.setCount("empty_documents", empty)
    }
}
