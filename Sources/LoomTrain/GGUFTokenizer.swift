// The tokenizer a GGUF file describes (`tokenizer.ggml.*`), as the Hugging Face tokenizer.json transformers builds
// from the same file (integrations/gguf/gguf_tokenizer_mapping.py), so LoomTokenizer and transformers read it alike:
//   - model "llama" (SentencePiece vocabulary): BPE with byte fallback. Without `tokenizer.ggml.merges` the merges
//     are recovered from the vocabulary (transformers' generate_merges: every split of a token into two tokens,
//     best first by score). Gemma files: tokens made only of spaces are respelled with '▁', and the sort key is the
//     token's position in the file, not its score; the layout is GemmaTokenizer's (spaces replaced by '▁', no
//     prefix space). Other architectures: LlamaTokenizer's (Metaspace, prefix space unless the file says not);
//   - model "gpt2": byte-level BPE with the file's merges, tokens respelled in the byte alphabet where needed, and
//     the pre-tokenizer regex the file's `tokenizer.ggml.pre` names (llama3, qwen2, ...);
//   - token types: control (3) become special added tokens, user-defined (4) non-special added tokens;
//   - BOS/EOS by `add_bos_token`/`add_eos_token` in a TemplateProcessing post-processor; the ids and the chat template
//     go to tokenizer_config.json.

import Foundation
import LoomCore
import LoomTensor
import LoomTokenizer

public enum GGUFTokenizer {
    /// tokenizer.json and tokenizer_config.json, or nil when the file has no tokenizer.
    public static func build(_ g: GGUFFile) throws -> (tokenizer: JSONValue, config: JSONObject)? {
        guard let model = g["tokenizer.ggml.model"]?.stringValue else { return nil }
        guard var tokens = g["tokenizer.ggml.tokens"]?.arrayValue?.strings, !tokens.isEmpty else {
            throw LoomError("\(g.path): tokenizer.ggml.tokens is missing or not a string array")
        }
        let types = g["tokenizer.ggml.token_type"]?.arrayValue?.ints ?? []
        let scores = g["tokenizer.ggml.scores"]?.arrayValue?.floats
        let fileMerges = g["tokenizer.ggml.merges"]?.arrayValue?.strings
        func id(_ key: String) -> Int? {
            guard let i = g["tokenizer.ggml.\(key)"]?.intValue, i >= 0, i < tokens.count else { return nil }
            return i
        }
        let original = tokens
        let gemma = ["gemma", "gemma2", "gemma3"].contains(g.architecture ?? "")
        var addBos = g["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        let addEos = g["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        var top = JSONObject()
        var normalizer: JSONValue = .null, preTokenizer: JSONValue = .null, decoder: JSONValue
        var merges: [(String, String)]
        var modelJSON = JSONObject()
        modelJSON.append("type", "BPE")
        modelJSON.append("dropout", .null)
        switch model {
        case "llama":
            // llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise.
            if g["tokenizer.ggml.add_bos_token"] == nil { addBos = true }
            if gemma {
                tokens = tokens.map { t in
                    t.unicodeScalars.contains(" ") && t.unicodeScalars.allSatisfy({ $0.properties.isWhitespace })
                        ? String(repeating: "▁", count: t.unicodeScalars.count) : t
                }
            }
            if let fileMerges {
                merges = try splitMerges(fileMerges, g.path)
            } else if gemma {
                merges = generateMerges(firstOccurrences(tokens), score: { -Double($0) })
            } else {
                guard let scores, scores.count == tokens.count else {
                    throw LoomError("\(g.path): a SentencePiece vocabulary needs tokenizer.ggml.scores (one per token) or merges")
                }
                merges = generateMerges(firstOccurrences(tokens), score: { Double(scores[$0]) })
            }
            modelJSON.append("unk_token", id("unknown_token_id").map { .string(tokens[$0]) } ?? (gemma ? "<unk>" : .null))
            if gemma {
                normalizer = ["type": "Replace", "pattern": ["String": " "], "content": "▁"]
                preTokenizer = ["type": "Split", "pattern": ["String": " "], "behavior": "MergedWithPrevious", "invert": false]
                decoder = [
                    "type": "Sequence",
                    "decoders": [["type": "Replace", "pattern": ["String": "▁"], "content": " "], ["type": "ByteFallback"], ["type": "Fuse"]],
                ]
            } else {
                let prefix = g["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
                preTokenizer = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": prefix ? "first" : "never", "split": false]
                var decoders: [JSONValue] = [["type": "Replace", "pattern": ["String": "▁"], "content": " "], ["type": "ByteFallback"], ["type": "Fuse"]]
                if prefix { decoders.append(["type": "Strip", "content": " ", "start": 1, "stop": 0]) }
                decoder = ["type": "Sequence", "decoders": .array(decoders)]
            }
            modelJSON.append("continuing_subword_prefix", .null)
            modelJSON.append("end_of_word_suffix", .null)
            modelJSON.append("fuse_unk", true)
            modelJSON.append("byte_fallback", true)
        case "gpt2":
            guard let fileMerges else { throw LoomError("\(g.path): a byte-level (gpt2) tokenizer needs tokenizer.ggml.merges") }
            let alphabet = Set(ByteLevel.byteToScalar)
            tokens = tokens.map { t in t.unicodeScalars.allSatisfy { alphabet.contains($0) } ? t : ByteLevel.encode(Array(t.utf8)) }
            merges = try splitMerges(fileMerges, g.path)
            let byteLevel: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
            preTokenizer = byteLevel
            if let regex = splitRegex(g["tokenizer.ggml.pre"]?.stringValue ?? "") {
                preTokenizer = [
                    "type": "Sequence",
                    "pretokenizers": [
                        ["type": "Split", "pattern": ["Regex": .string(regex)], "behavior": "Isolated", "invert": false],
                        ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
                    ],
                ]
            }
            decoder = byteLevel
            modelJSON.append("unk_token", .null)
            modelJSON.append("continuing_subword_prefix", "")
            modelJSON.append("end_of_word_suffix", "")
            modelJSON.append("fuse_unk", false)
            modelJSON.append("byte_fallback", false)
        default:
            throw LoomError("\(g.path): tokenizer model '\(model)' is not supported (llama/SentencePiece and gpt2/byte-level BPE are)")
        }
        modelJSON.append("ignore_merges", false)
        var vocab = JSONObject()
        // Python's {token: index} keeps a repeated token's last index; tokenizers writes the vocabulary by id.
        for (t, i) in firstOccurrences(tokens).sorted(by: { $0.index < $1.index }) { vocab.append(t, .int(i)) }
        modelJSON.append("vocab", .object(vocab))
        modelJSON.append("merges", .array(merges.map { [.string($0.0), .string($0.1)] }))

        // Added tokens: control ones special; user-defined ones (still spelled as in the vocabulary) plain.
        var added: [JSONValue] = []
        let byteAlphabet = Set(ByteLevel.byteToScalar)
        for (i, t) in types.enumerated() where i < tokens.count {
            let special: Bool
            if t == 3 {
                if model == "gpt2", !tokens[i].unicodeScalars.allSatisfy({ byteAlphabet.contains($0) }) { continue }
                special = true
            } else if t == 4 {
                guard tokens[i] == original[i] else { continue }
                special = false
            } else {
                continue
            }
            added.append([
                "id": .int(i), "content": .string(tokens[i]), "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": .bool(special),
            ])
        }
        var post: JSONValue = .null
        let bos = id("bos_token_id").map { tokens[$0] }, eos = id("eos_token_id").map { tokens[$0] }
        if (addBos && bos != nil) || (addEos && eos != nil) {
            func item(_ seq: String, _ typeId: Int) -> [JSONValue] {
                var out: [JSONValue] = []
                if addBos, let b = bos { out.append(["SpecialToken": ["id": .string(b), "type_id": .int(typeId)]]) }
                out.append(["Sequence": ["id": .string(seq), "type_id": .int(typeId)]])
                if addEos, let e = eos { out.append(["SpecialToken": ["id": .string(e), "type_id": .int(typeId)]]) }
                return out
            }
            var specials = JSONObject()
            for (flag, name, key) in [(addBos, bos, "bos_token_id"), (addEos, eos, "eos_token_id")] where flag {
                if let name, let i = id(key), specials[name] == nil {
                    specials.append(name, ["id": .string(name), "ids": [.int(i)], "tokens": [.string(name)]])
                }
            }
            post = [
                "type": "TemplateProcessing", "single": .array(item("A", 0)),
                "pair": .array(item("A", 0) + item("B", 1)), "special_tokens": .object(specials),
            ]
        }
        top.append("version", "1.0")
        top.append("truncation", .null)
        top.append("padding", .null)
        top.append("added_tokens", .array(added))
        top.append("normalizer", normalizer)
        top.append("pre_tokenizer", preTokenizer)
        top.append("post_processor", post)
        top.append("decoder", decoder)
        top.append("model", .object(modelJSON))

        var config = JSONObject()
        config.append("add_bos_token", .bool(addBos))
        config.append("add_eos_token", .bool(addEos))
        for (name, key) in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")] {
            if let i = id(key) { config.append(name, .string(tokens[i])) }
        }
        if let t = g["tokenizer.chat_template"]?.stringValue { config.append("chat_template", .string(t)) }
        config.append("model_max_length", .int(g[(g.architecture ?? "") + ".context_length"]?.intValue ?? 2048))
        config.append("tokenizer_class", .string(model == "gpt2" ? "GPT2Tokenizer" : gemma ? "GemmaTokenizer" : "LlamaTokenizer"))
        return (.object(top), config)
    }

    /// For each distinct token, in order of first occurrence, the last index it has (a Python dict built from
    /// enumerate: the key's position is its first occurrence, its value the last). Tokens are told apart by their
    /// bytes, as Python does: Swift's String equality would merge canonically equivalent spellings ("é" and "e"
    /// + U+0301), which are different tokens.
    static func firstOccurrences(_ tokens: [String]) -> [(token: String, index: Int)] {
        // Every spelling in one table; probing meets the first of equal spellings first.
        let table = ByteTable(tokens.enumerated().map { ($0.element, $0.offset) })
        var last = Array(0..<tokens.count)
        var first = [Int](repeating: 0, count: tokens.count)
        for k in 0..<tokens.count {
            first[k] = table.find(table.offsets[k], table.offsets[k + 1] - table.offsets[k]) ?? k
            last[first[k]] = k
        }
        return (0..<tokens.count).filter { first[$0] == $0 }.map { (tokens[$0], last[$0]) }
    }

    /// transformers' generate_merges(vocab, vocab_scores): for every token, each split into two vocabulary tokens
    /// (ordered by the ids of the left, then the right part); then all of them best first by (score, length of the
    /// left part, length of the right part), ties kept in that order. Lengths count Unicode scalars and tokens are
    /// compared by their bytes, as in Python. The vocabulary is an open-addressing table over one buffer of bytes,
    /// so the millions of candidate splits of a 262k vocabulary are looked up without allocating.
    static func generateMerges(_ order: [(token: String, index: Int)], score: (Int) -> Double) -> [(String, String)] {
        let table = ByteTable(order)
        struct Merge {
            let token: Int32, cut: Int32
            let score: Double
            let leftLength: Int32, rightLength: Int32
            let leftId: Int, rightId: Int
        }
        var merges: [Merge] = []
        var starts: [Int] = []
        for (k, (_, index)) in order.enumerated() {
            let (lo, hi) = (table.offsets[k], table.offsets[k + 1])
            starts.removeAll(keepingCapacity: true)
            for i in lo..<hi where table.bytes[i] & 0xC0 != 0x80 { starts.append(i - lo) }
            guard starts.count > 1 else { continue }
            let first = merges.count
            for (n, cut) in starts.enumerated().dropFirst() {
                if let li = table.find(lo, cut), let ri = table.find(lo + cut, hi - lo - cut) {
                    merges.append(
                        Merge(
                            token: Int32(k), cut: Int32(cut), score: score(index), leftLength: Int32(n),
                            rightLength: Int32(starts.count - n), leftId: li, rightId: ri))
                }
            }
            merges[first...].sort { ($0.leftId, $0.rightId) < ($1.leftId, $1.rightId) }
        }
        let sorted = merges.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if x.score != y.score { return x.score > y.score }
            if x.leftLength != y.leftLength { return x.leftLength > y.leftLength }
            if x.rightLength != y.rightLength { return x.rightLength > y.rightLength }
            return a.offset < b.offset
        }
        return sorted.map { m in
            let lo = table.offsets[Int(m.element.token)], hi = table.offsets[Int(m.element.token) + 1], cut = lo + Int(m.element.cut)
            return (String(decoding: table.bytes[lo..<cut], as: UTF8.self), String(decoding: table.bytes[cut..<hi], as: UTF8.self))
        }
    }

    /// Tokens' bytes in one buffer and an open-addressing hash table from bytes to the token's id (its `index`).
    struct ByteTable {
        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        var ids: [Int] = []
        private var slots: [Int32]
        private let mask: Int

        init(_ order: [(token: String, index: Int)]) {
            for (t, i) in order {
                bytes.append(contentsOf: t.utf8)
                offsets.append(bytes.count)
                ids.append(i)
            }
            var size = 16
            while size < 2 * order.count { size <<= 1 }
            slots = [Int32](repeating: -1, count: size)
            mask = size - 1
            for k in 0..<order.count {
                var s = Self.hash(bytes, offsets[k], offsets[k + 1] - offsets[k]) & mask
                while slots[s] >= 0 { s = (s + 1) & mask }
                slots[s] = Int32(k)
            }
        }

        /// FNV-1a over bytes[start ..< start + count].
        static func hash(_ b: [UInt8], _ start: Int, _ count: Int) -> Int {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for i in start..<(start + count) { h = (h ^ UInt64(b[i])) &* 0x100_0000_01b3 }
            return Int(truncatingIfNeeded: h ^ (h >> 29))
        }

        /// The id of the token spelled by bytes[start ..< start + count], or nil.
        func find(_ start: Int, _ count: Int) -> Int? {
            var s = Self.hash(bytes, start, count) & mask
            while slots[s] >= 0 {
                let k = Int(slots[s])
                let (lo, hi) = (offsets[k], offsets[k + 1])
                if hi - lo == count {
                    var same = true
                    for i in 0..<count where bytes[lo + i] != bytes[start + i] {
                        same = false
                        break
                    }
                    if same { return ids[k] }
                }
                s = (s + 1) & mask
            }
            return nil
        }
    }

    static func splitMerges(_ merges: [String], _ path: String) throws -> [(String, String)] {
        try merges.enumerated().map { n, m in
            guard let sp = m.firstIndex(of: " ") else { throw LoomError("\(path): tokenizer.ggml.merges entry \(n) \"\(m)\" has no space") }
            return (String(m[..<sp]), String(m[m.index(after: sp)...]))
        }
    }

    /// The pre-tokenizer split of `tokenizer.ggml.pre` values (transformers' GGUF_PRE_TOKENIZER_SPLITS); nil keeps
    /// GPT-2's own.
    static func splitRegex(_ pre: String) -> String? {
        let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        switch pre {
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe": return llama3
        case "qwen2", "deepseek-r1-qwen": return qwen2
        default: return nil
        }
    }
}
