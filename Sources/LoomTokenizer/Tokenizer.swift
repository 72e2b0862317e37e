// A Hugging Face `tokenizer.json` tokenizer: added tokens, normaliser, pre-tokeniser, BPE model, post-processor and
// decoder, in that order (one file each). This is the API the rest of Loom uses:
//
//   let tok = try Tokenizer.load("tokenizer.json")
//   let ids = tok.encode("Hello world")          // [Int32], no special tokens added
//   tok.decode(ids) == "Hello world"
//   tok.vocabSize, tok.id(ofSpecial: "<|im_end|>"), tok.bosId, tok.eosId
//
// A Tokenizer is immutable and safe to share between threads; each encoding thread borrows a private encoder (its
// word cache and scratch buffers) from a small pool.

import Foundation
import LoomCore

/// Scratch state of one encoding thread.
final class EncoderState {
    let cache = WordCache()
    var symbols: [Int32] = []
    var ranks: [UInt64] = []
    var pieces: [Range<Int>] = []
    var scratch: [Range<Int>] = []
}

public final class Tokenizer: @unchecked Sendable {
    public let model: BPEModel
    public let normalizer: Normalizer?
    public let preTokenizer: PreTokenizer?
    public let postProcessor: PostProcessor?
    public let decoder: TokenDecoder?
    public let addedTokens: [AddedToken]
    /// The bos and eos tokens: tokenizer_config.json beside the file when there is one, else the post-processor's
    /// first token (bos) and the usual names (<|begin_of_text|>, <s>; <|endoftext|>, <|end_of_text|>, </s>, ...).
    public let bosToken: String?
    public let eosToken: String?

    /// The original top-level JSON (written back unchanged apart from added_tokens and model).
    let source: JSONObject
    let rawMatcher: AddedMatcher
    let normalizedMatcher: AddedMatcher
    let addedById: [Int32: AddedToken]
    let byteLevel: Bool
    /// The pre-tokeniser when it is one isolated regex split over the bytes (the common case, matched inline).
    let fastPattern: SplitPattern?
    let generalPreTokenizer: Bool
    /// Bytes each model token stands for (offsets).
    let tokenBytes: [Int32]
    private let lock = NSLock()
    private var pool: [EncoderState] = []

    public init(
        model: BPEModel, normalizer: Normalizer?, preTokenizer: PreTokenizer?, postProcessor: PostProcessor?,
        decoder: TokenDecoder?, addedTokens: [AddedToken], bosToken: String? = nil, eosToken: String? = nil,
        source: JSONObject = JSONObject()
    ) {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.source = source
        if normalizer == nil {
            rawMatcher = AddedMatcher(addedTokens)
            normalizedMatcher = AddedMatcher([])
        } else {
            rawMatcher = AddedMatcher(addedTokens.filter { !$0.normalized })
            normalizedMatcher = AddedMatcher(addedTokens.filter { $0.normalized })
        }
        var byId: [Int32: AddedToken] = [:]
        for t in addedTokens { byId[t.id] = t }
        addedById = byId
        byteLevel = preTokenizer?.isByteLevel ?? false
        generalPreTokenizer = preTokenizer?.insertsBytes ?? false
        switch preTokenizer {
        case .byteLevel(false, _, true)?: fastPattern = .gpt2
        case .split(let p, .isolated, false)?: fastPattern = p
        case .sequence(let s)? where s.count == 2:
            if case .split(let p, .isolated, false) = s[0], case .byteLevel(false, _, false) = s[1] {
                fastPattern = p
            } else if case .byteLevel(false, _, false) = s[0], case .split(let p, .isolated, false) = s[1] {
                fastPattern = p
            } else {
                fastPattern = nil
            }
        default: fastPattern = nil
        }
        let bl = byteLevel
        tokenBytes = model.tokens.map { t in
            if bl, let b = ByteLevel.decode(t) { return Int32(b.count) }
            return Int32(t.utf8.count)
        }
        let specials = Set(addedTokens.map(\.content))
        func firstPresent(_ names: [String]) -> String? { names.first { specials.contains($0) || model.vocab[$0] != nil } }
        let prefix = postProcessor?.prefix.first
        let prefixToken = prefix.flatMap { id in addedTokens.first { $0.id == id }?.content }
        self.bosToken =
            bosToken ?? prefixToken ?? firstPresent(["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"])
        self.eosToken =
            eosToken ?? firstPresent(["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>", "<|im_end|>"])
    }

    // MARK: Public API

    /// Loads a tokenizer.json (and the bos/eos tokens of a tokenizer_config.json beside it, when present).
    /// Reads a tokenizer.json, or the tokenizer.json inside a directory (a model or `loom tokenizer` stage directory).
    public static func load(_ given: String) throws -> Tokenizer {
        let path = FS.isDirectory(given) ? FS.join(given, "tokenizer.json") : given
        guard let data = FileManager.default.contents(atPath: path) else { throw LoomError("cannot read \(path)") }
        var bos: String? = nil
        var eos: String? = nil
        let config = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("tokenizer_config.json").path
        if let d = FileManager.default.contents(atPath: config),
            let c = try? d.withUnsafeBytes({ try JSONValue.parse(bytes: $0.bindMemory(to: UInt8.self)) })
        {
            func name(_ v: JSONValue?) -> String? { v?.stringValue ?? v?["content"]?.stringValue }
            bos = name(c["bos_token"])
            eos = name(c["eos_token"])
        }
        return try data.withUnsafeBytes {
            try load(bytes: $0.bindMemory(to: UInt8.self), source: path, bosToken: bos, eosToken: eos)
        }
    }

    /// A tokenizer from the bytes of a tokenizer.json; `source` names the file in errors.
    public static func load(
        bytes b: UnsafeBufferPointer<UInt8>, source: String, bosToken: String? = nil, eosToken: String? = nil
    ) throws -> Tokenizer {
        let json: JSONValue
        var vocab: [(String, Int)]? = nil
        do {
            if let (rest, v) = try VocabScan.split(b) {
                vocab = v
                json = try rest.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
            } else {
                json = try JSONValue.parse(bytes: b)
            }
        } catch let e as JSONParseError {
            throw LoomError("\(source): \(e)")
        } catch let e as VocabScan.Failure {
            throw LoomError("\(source): invalid JSON at byte \(e.offset): \(e.message)")
        }
        do {
            return try Tokenizer(json: json, vocabEntries: vocab, bosToken: bosToken, eosToken: eosToken)
        } catch let e as LoomError {
            throw LoomError("\(source): \(e.message)")
        }
    }

    /// Every id the tokenizer can produce: the model's vocabulary and the added tokens.
    public var vocabSize: Int { max(model.tokens.count, Int(addedTokens.map(\.id).max() ?? -1) + 1) }

    /// The id of an added (special) token.
    public func id(ofSpecial token: String) -> Int32? { addedTokens.first { $0.content == token }?.id }

    /// The id of any token (added or in the model's vocabulary).
    public func id(of token: String) -> Int32? { id(ofSpecial: token) ?? model.vocab[token] }

    /// The token string of an id.
    public func token(of id: Int32) -> String? {
        if let a = addedById[id] { return a.content }
        return id >= 0 && Int(id) < model.tokens.count ? model.tokens[Int(id)] : nil
    }

    /// The bytes token `id` adds to decoded text (as any token but the first: see TokenDecoder.bytes(ofToken:));
    /// nil for special added tokens and ids outside the vocabulary. Constrained decoding matches these.
    public func tokenBytes(of id: Int32) -> [UInt8]? {
        if let a = addedById[id] { return a.special ? nil : Array(a.content.utf8) }
        guard id >= 0, Int(id) < model.tokens.count else { return nil }
        let t = model.tokens[Int(id)]
        if let d = decoder { return d.bytes(ofToken: t) }
        return Array(t.utf8)
    }

    public var bosId: Int32? { bosToken.flatMap { id(of: $0) } }
    public var eosId: Int32? { eosToken.flatMap { id(of: $0) } }

    /// The ids of a text. Added tokens written in the text (<|im_end|>) become their ids; `addSpecialTokens` runs
    /// the post-processor (a bos token, for Llama-3's template).
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int32] {
        var out: [Int32] = []
        var offsets: [Range<Int>] = []
        encode(text, into: &out, offsets: &offsets, wantOffsets: false)
        if addSpecialTokens, let pp = postProcessor { out = pp.process(out) }
        return out
    }

    /// The ids of a text and, for each, the UTF-8 byte range of the text it came from. (With a normaliser, tokens
    /// of normalised text get the range of the whole text between two added tokens.)
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>]) {
        var out: [Int32] = []
        var offsets: [Range<Int>] = []
        encode(text, into: &out, offsets: &offsets, wantOffsets: true)
        return (out, offsets)
    }

    /// Encodes texts on `jobs` threads (results in input order).
    public func encodeBatch(_ texts: [String], jobs: Int = 1, addSpecialTokens: Bool = false) -> [[Int32]] {
        (try? parallelMap(texts, jobs: jobs) { self.encode($0, addSpecialTokens: addSpecialTokens) }) ?? []
    }

    /// The text of some ids. Special added tokens are kept unless `skipSpecialTokens`.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let a = addedById[id] {
                if skipSpecialTokens && a.special { continue }
                tokens.append(a.content)
            } else if id >= 0 && Int(id) < model.tokens.count {
                tokens.append(model.tokens[Int(id)])
            }
        }
        if let d = decoder { return d.decode(tokens) }
        return tokens.joined(separator: " ")
    }

    // MARK: Encoding

    private func borrow() -> EncoderState {
        lock.lock()
        defer { lock.unlock() }
        return pool.popLast() ?? EncoderState()
    }

    private func giveBack(_ s: EncoderState) {
        lock.lock()
        if pool.count < 64 { pool.append(s) }
        lock.unlock()
    }

    func encode(_ text: String, into out: inout [Int32], offsets: inout [Range<Int>], wantOffsets: Bool) {
        let st = borrow()
        defer { giveBack(st) }
        var t = text
        out.reserveCapacity(t.utf8.count / 3 + 4)
        t.withUTF8 { buf in
            guard let p = buf.baseAddress, buf.count > 0 else { return }
            if rawMatcher.isEmpty {
                segment(p, 0, buf.count, st, &out, &offsets, wantOffsets)
            } else {
                rawMatcher.split(
                    p, 0, buf.count,
                    segment: { a, b in segment(p, a, b, st, &out, &offsets, wantOffsets) },
                    token: { id, a, b in
                        out.append(id)
                        if wantOffsets { offsets.append(a..<b) }
                    })
            }
        }
    }

    /// Text between added tokens: normalise (then look for normalised added tokens), pre-tokenise, encode.
    private func segment(
        _ p: UnsafePointer<UInt8>, _ a: Int, _ b: Int, _ st: EncoderState, _ out: inout [Int32],
        _ offsets: inout [Range<Int>], _ wantOffsets: Bool
    ) {
        guard let norm = normalizer else {
            pieces(p, a, b, st, &out, &offsets, wantOffsets, origin: nil)
            return
        }
        var n = norm.normalize(String(decoding: UnsafeBufferPointer(start: p + a, count: b - a), as: UTF8.self))
        n.withUTF8 { nb in
            guard let q = nb.baseAddress, nb.count > 0 else { return }
            let origin = a..<b
            if normalizedMatcher.isEmpty {
                pieces(q, 0, nb.count, st, &out, &offsets, wantOffsets, origin: origin)
            } else {
                normalizedMatcher.split(
                    q, 0, nb.count,
                    segment: { x, y in pieces(q, x, y, st, &out, &offsets, wantOffsets, origin: origin) },
                    token: { id, _, _ in
                        out.append(id)
                        if wantOffsets { offsets.append(origin) }
                    })
            }
        }
    }

    private func pieces(
        _ p: UnsafePointer<UInt8>, _ a: Int, _ b: Int, _ st: EncoderState, _ out: inout [Int32],
        _ offsets: inout [Range<Int>], _ wantOffsets: Bool, origin: Range<Int>?
    ) {
        if let pattern = fastPattern {
            pattern.matches(p, a, b) { x, y in piece(p, x, y, st, &out, &offsets, wantOffsets, origin) }
            return
        }
        guard let pre = preTokenizer else {
            piece(p, a, b, st, &out, &offsets, wantOffsets, origin)
            return
        }
        if generalPreTokenizer {
            // add_prefix_space inserts bytes: pieces are built as their own byte arrays.
            let atStart = (origin?.lowerBound ?? a) == 0
            for w in pre.pieces(of: Array(UnsafeBufferPointer(start: p + a, count: b - a)), atStart: atStart) {
                let whole = origin ?? a..<b
                w.withUnsafeBufferPointer { wb in
                    if let base = wb.baseAddress { piece(base, 0, wb.count, st, &out, &offsets, wantOffsets, whole) }
                }
            }
            return
        }
        st.pieces.removeAll(keepingCapacity: true)
        st.pieces.append(a..<b)
        pre.apply(p, &st.pieces, scratch: &st.scratch)
        for r in st.pieces { piece(p, r.lowerBound, r.upperBound, st, &out, &offsets, wantOffsets, origin) }
    }

    /// One piece through the model (cache first).
    @inline(__always) private func piece(
        _ p: UnsafePointer<UInt8>, _ x: Int, _ y: Int, _ st: EncoderState, _ out: inout [Int32],
        _ offsets: inout [Range<Int>], _ wantOffsets: Bool, _ origin: Range<Int>?
    ) {
        let n = y - x
        if n == 0 { return }
        let before = out.count
        if n <= WordCache.maxKey {
            let h = WordCache.hash(p + x, n)
            if !st.cache.lookup(p + x, n, h, into: &out) {
                modelEncode(p + x, n, st)
                st.cache.insert(p + x, n, h, st.symbols)
                out.append(contentsOf: st.symbols)
            }
        } else {
            modelEncode(p + x, n, st)
            out.append(contentsOf: st.symbols)
        }
        if wantOffsets {
            if let o = origin {
                for _ in before..<out.count { offsets.append(o) }
            } else {
                var at = x
                for k in before..<out.count {
                    let id = Int(out[k])
                    let len = id < tokenBytes.count ? Int(tokenBytes[id]) : 0
                    let e = min(y, at + len)
                    offsets.append(at..<e)
                    at = e
                }
            }
        }
    }

    private func modelEncode(_ p: UnsafePointer<UInt8>, _ n: Int, _ st: EncoderState) {
        if model.ignoreMerges {
            let word =
                byteLevel
                ? ByteLevel.encode(UnsafeBufferPointer(start: p, count: n))
                : String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
            if let id = model.vocab[word] {
                st.symbols.removeAll(keepingCapacity: true)
                st.symbols.append(id)
                return
            }
        }
        model.initialSymbols(p, n, byteLevel: byteLevel, into: &st.symbols)
        model.merge(&st.symbols, ranks: &st.ranks)
    }
}

extension PreTokenizer {
    /// The pieces of some bytes, each its own array (the general path, for add_prefix_space and Metaspace).
    /// `atStart`: the bytes begin the text (Metaspace's prepend_scheme `first`).
    func pieces(of bytes: [UInt8], atStart: Bool = true) -> [[UInt8]] {
        func cut(_ ws: [[UInt8]], _ pattern: SplitPattern, _ behavior: SplitBehavior, _ invert: Bool) -> [[UInt8]] {
            var out: [[UInt8]] = []
            for w in ws {
                w.withUnsafeBufferPointer { wb in
                    guard let base = wb.baseAddress else { return }
                    var rs = [0..<wb.count]
                    var scratch: [Range<Int>] = []
                    PreTokenizer.split(base, &rs, &scratch, pattern, behavior, invert)
                    for r in rs { out.append(Array(wb[r])) }
                }
            }
            return out
        }
        func run(_ pre: PreTokenizer, _ ws: [[UInt8]]) -> [[UInt8]] {
            switch pre {
            case .sequence(let steps): return steps.reduce(ws) { run($1, $0) }
            case .byteLevel(let add, _, let useRegex):
                let prefixed = add ? ws.map { $0.isEmpty || $0[0] == 0x20 ? $0 : [0x20] + $0 } : ws
                return useRegex ? cut(prefixed, .gpt2, .isolated, false) : prefixed
            case .split(let pattern, let behavior, let invert): return cut(ws, pattern, behavior, invert)
            case .metaspace(let r, let scheme, let split):
                let rep = Array(r.utf8)
                let replaced: [[UInt8]] = ws.enumerated().map { i, w in
                    var o: [UInt8] = []
                    o.reserveCapacity(w.count + rep.count)
                    for b in w { if b == 0x20 { o += rep } else { o.append(b) } }
                    let prepend = scheme == .always || (scheme == .first && atStart && i == 0)
                    if prepend && !o.starts(with: rep) { o = rep + o }
                    return o
                }
                return split ? cut(replaced, .literal(r), .mergedWithNext, false) : replaced
            }
        }
        return run(self, [bytes]).filter { !$0.isEmpty }
    }
}
