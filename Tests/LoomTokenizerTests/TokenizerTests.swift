// Tokenizer tests on inputs written here: the hand-matched regexes against ICU, the fast encoder against the
// reference one, the trainer on tokenizers' own unit-test example, added tokens, split behaviours, tokenizer.json
// round trips and errors.

import Foundation
import LoomCore
import XCTest

@testable import LoomTokenizer

/// Characters the pre-tokeniser classes care about: letters of several scripts, digits (ASCII, Arabic-Indic,
/// superscript), every kind of whitespace, apostrophes, punctuation, emoji, combining marks.
let awkward: [String] = [
    "a", "b", "s", "t", "e", "l", "d", "m", "r", "v", "S", "T", "L", "R", "E", "é", "ß", "ſ", "한", "語", "ж", "ع",
    "0", "1", "7", "٣", "²", "Ⅻ", " ", " ", " ", "\t", "\n", "\r", "\r\n", "\u{0B}", "\u{0C}", "\u{85}", "\u{A0}",
    "\u{3000}", "\u{2028}", "\u{200B}", "\u{FEFF}", "'", "'", "’", ".", ",", "!", "?", "-", "_", "(", ")", "<", ">",
    "|", "$", "😀", "👍🏽", "\u{301}", "\u{0}",
]

func randomText(_ rng: inout SplitMix64, length: Int) -> String {
    var s = ""
    for _ in 0..<length { s += awkward[rng.below(awkward.count)] }
    return s
}

/// The pieces of a text under a pattern (the fast matcher).
func fastPieces(_ pattern: SplitPattern, _ text: String) -> [String] {
    var t = text
    var out: [String] = []
    t.withUTF8 { b in
        guard let p = b.baseAddress else { return }
        pattern.matches(p, 0, b.count) { x, y in out.append(String(decoding: UnsafeBufferPointer(rebasing: b[x..<y]), as: UTF8.self)) }
    }
    return out
}

func icuPieces(_ pattern: SplitPattern, _ text: String) throws -> [String] {
    let re = try NSRegularExpression(pattern: ReferenceTokenizer.icuPattern(pattern)!)
    let ns = text as NSString
    return re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range) }
}

/// A byte-level tokenizer trained here on generated English-like text with the given pre-tokeniser.
func smallTokenizer(_ pre: PreTokenizer = BPETrainer.gpt2PreTokenizer, vocab: Int = 400, special: [String] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) throws -> Tokenizer {
    var config = BPETrainerConfig()
    config.vocabSize = vocab
    config.minFrequency = 2
    config.specialTokens = special
    let trainer = BPETrainer(config: config, preTokenizer: pre)
    let words = ["the", "cell", "cells", "protein", "binding", "of", "and", "in", "to", "receptor", "It's", "we'll", "2026", "3.14", "don't", "naïve", "über", "日本語", "테스트"]
    var rng = SplitMix64(seed: 7)
    for _ in 0..<300 {
        var line = ""
        for _ in 0..<(5 + rng.below(10)) { line += (rng.below(5) == 0 ? "  " : " ") + words[rng.below(words.count)] }
        trainer.feed(line + (rng.below(3) == 0 ? ".\n" : "\n"))
    }
    return try trainer.train()
}

final class PreTokenizerTests: XCTestCase {
    func testByteAlphabet() {
        XCTAssertEqual(Set(ByteLevel.alphabet).count, 256)
        XCTAssertEqual(ByteLevel.alphabet[0x20], "Ġ")
        XCTAssertEqual(ByteLevel.alphabet[0x0A], "Ċ")
        XCTAssertEqual(ByteLevel.alphabet[0x41], "A")
        let bytes = [UInt8](0...255)
        XCTAssertEqual(ByteLevel.decode(ByteLevel.encode(bytes)), bytes)
        XCTAssertNil(ByteLevel.decode("<|x|> ☃"))
    }

    func testKnownSplits() {
        XCTAssertEqual(fastPieces(.gpt2, "Hello world  it's\t 42!\n\n x"), ["Hello", " world", " ", " it", "'s", "\t", " 42", "!", "\n\n", " x"])
        XCTAssertEqual(fastPieces(.llama3(maxDigits: 3), "IT'S 12345"), ["IT", "'S", " ", "123", "45"])
        XCTAssertEqual(fastPieces(.llama3(maxDigits: 1), "12a"), ["1", "2", "a"])
        XCTAssertEqual(fastPieces(.llama3(maxDigits: 3), "a\n\n  b"), ["a", "\n\n", " ", " b"])
        XCTAssertEqual(fastPieces(.llama3(maxDigits: 3), "x.)\r\n\r\ny"), ["x", ".)\r\n\r\n", "y"])
        XCTAssertEqual(fastPieces(.gpt2, "   "), ["   "])
        XCTAssertEqual(fastPieces(.gpt2, ""), [])
    }

    /// The hand-written matchers and ICU agree on random strings of awkward characters (100k+ characters).
    func testRegexesMatchICU() throws {
        var rng = SplitMix64(seed: 42)
        for pattern in [SplitPattern.gpt2, .llama3(maxDigits: 3), .llama3(maxDigits: 1)] {
            for _ in 0..<600 {
                let text = randomText(&rng, length: 1 + rng.below(60))
                let fast = fastPieces(pattern, text)
                XCTAssertEqual(fast.joined(), text)
                XCTAssertEqual(fast, try icuPieces(pattern, text), "\(pattern) on \(text.debugDescription)")
            }
        }
    }

    /// tokenizers' documented example of the five behaviours ("the-final--countdown" split on "-").
    func testSplitBehaviours() {
        func pieces(_ b: SplitBehavior, invert: Bool = false) -> [String] {
            let pre = PreTokenizer.split(pattern: .literal("-"), behavior: b, invert: invert)
            return pre.pieces(of: Array("the-final--countdown".utf8)).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(pieces(.removed), ["the", "final", "countdown"])
        XCTAssertEqual(pieces(.isolated), ["the", "-", "final", "-", "-", "countdown"])
        XCTAssertEqual(pieces(.mergedWithPrevious), ["the-", "final-", "-", "countdown"])
        XCTAssertEqual(pieces(.mergedWithNext), ["the", "-final", "-", "-countdown"])
        XCTAssertEqual(pieces(.contiguous), ["the", "-", "final", "--", "countdown"])
        XCTAssertEqual(pieces(.removed, invert: true), ["-", "-", "-"])
    }

    func testAddPrefixSpace() throws {
        let pre = PreTokenizer.byteLevel(addPrefixSpace: true, trimOffsets: true, useRegex: true)
        XCTAssertEqual(pre.pieces(of: Array("hello world".utf8)).map { String(decoding: $0, as: UTF8.self) }, [" hello", " world"])
        XCTAssertEqual(pre.pieces(of: Array(" hi".utf8)).map { String(decoding: $0, as: UTF8.self) }, [" hi"])
        // A tokenizer with add_prefix_space encodes "x" as " x" (and each text between added tokens gets its space).
        let tok = try smallTokenizer()
        var json = tok.jsonValue()
        if case .object(var o) = json {
            o["pre_tokenizer"] = pre.json
            json = .object(o)
        }
        let spaced = try Tokenizer(json: json)
        XCTAssertEqual(spaced.encode("cells"), tok.encode(" cells"))
        XCTAssertEqual(spaced.encode("cells<|im_end|>cells"), tok.encode(" cells<|im_end|> cells"))
    }
}

final class EncoderTests: XCTestCase {
    /// The fast encoder (word cache, rank-array merging, heap merging for long pieces) gives the reference's ids.
    func testFastMatchesReference() throws {
        for pre in [BPETrainer.gpt2PreTokenizer, BPETrainer.llama3PreTokenizer] {
            let tok = try smallTokenizer(pre)
            let ref = try ReferenceTokenizer(tok)
            var rng = SplitMix64(seed: 3)
            let words = ["the", "cells", "protein", "binding", "receptor", "It's", "2026", "naïve", "日本語", "<|im_end|>", "<|im_start|>", "<|endoftext|>"]
            for _ in 0..<300 {
                var text = ""
                for _ in 0..<rng.below(25) {
                    text += rng.below(3) == 0 ? randomText(&rng, length: 1 + rng.below(4)) : words[rng.below(words.count)]
                }
                XCTAssertEqual(tok.encode(text), ref.encode(text), text.debugDescription)
                XCTAssertEqual(tok.decode(tok.encode(text)), text)
            }
            // Long pieces take the heap path (more than 96 symbols): same ids as the plain loop.
            let long = String(repeating: "thecellsproteinbinding", count: 20) + " " + String(repeating: "ab", count: 300)
            XCTAssertEqual(tok.encode(long), ref.encode(long))
            XCTAssertEqual(tok.decode(tok.encode(long)), long)
        }
    }

    func testAddedTokens() throws {
        let tok = try smallTokenizer(special: ["<|im_end|>", "<|im", "<x>"])
        let end = tok.id(ofSpecial: "<|im_end|>")!
        let im = tok.id(ofSpecial: "<|im")!
        // Leftmost match, longest at that position.
        XCTAssertEqual(tok.encode("<|im_end|>"), [end])
        XCTAssertEqual(tok.encode("<|im_start|>").first, im)
        XCTAssertEqual(tok.encode("a<x><x>b").filter { $0 == tok.id(ofSpecial: "<x>")! }.count, 2)
        XCTAssertEqual(tok.decode(tok.encode("hi<|im_end|>there")), "hi<|im_end|>there")
        XCTAssertEqual(tok.decode(tok.encode("hi<|im_end|>there"), skipSpecialTokens: true), "hithere")
        // lstrip / rstrip take the spaces around the token.
        var t = AddedMatcher([AddedToken(id: 7, content: "<m>", lstrip: true, rstrip: true)])
        var parts: [String] = []
        let text = Array("a  <m>  b".utf8)
        text.withUnsafeBufferPointer { b in
            t.split(b.baseAddress!, 0, b.count, segment: { parts.append(String(decoding: b[$0..<$1], as: UTF8.self)) }, token: { id, x, y in parts.append("[\(id):\(y - x)]") })
        }
        XCTAssertEqual(parts, ["a", "[7:7]", "b"])
        // single_word: not inside a word.
        t = AddedMatcher([AddedToken(id: 9, content: "cat", singleWord: true)])
        parts = []
        Array("cats cat".utf8).withUnsafeBufferPointer { b in
            t.split(b.baseAddress!, 0, b.count, segment: { parts.append(String(decoding: b[$0..<$1], as: UTF8.self)) }, token: { id, _, _ in parts.append("[\(id)]") })
        }
        XCTAssertEqual(parts, ["cats ", "[9]"])
    }

    func testOffsetsAndBatch() throws {
        let tok = try smallTokenizer()
        let text = "The cells<|im_end|> 日本語 don't"
        let (ids, offsets) = tok.encodeWithOffsets(text)
        XCTAssertEqual(ids, tok.encode(text))
        let bytes = Array(text.utf8)
        for (id, o) in zip(ids, offsets) {
            XCTAssertEqual(tok.decode([id]).utf8.count == o.count || tok.decode([id]).contains("\u{FFFD}"), true)
            if let s = String(validating: bytes[o], as: UTF8.self) { XCTAssertEqual(tok.decode([id]), s) }
        }
        let texts = (0..<50).map { "text \($0) of the cells" }
        XCTAssertEqual(tok.encodeBatch(texts, jobs: 2), texts.map { tok.encode($0) })
    }

    func testPostProcessorTemplate() throws {
        let tok = try smallTokenizer(special: ["<s>", "</s>"])
        var json = tok.jsonValue()
        if case .object(var o) = json {
            o["post_processor"] = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [], "special_tokens": ["<s>": ["id": "<s>", "ids": [0], "tokens": ["<s>"]]],
            ]
            json = .object(o)
        }
        let t = try Tokenizer(json: json)
        XCTAssertEqual(t.encode("the cells", addSpecialTokens: true), [0] + t.encode("the cells"))
        XCTAssertEqual(t.bosId, 0)
        XCTAssertEqual(t.eosId, 1)
    }
}

final class TrainerTests: XCTestCase {
    /// tokenizers' own test_train (trainer.rs): words with counts, min_frequency 2, no initial alphabet.
    func testTokenizersUnitExample() throws {
        var config = BPETrainerConfig()
        config.minFrequency = 2
        config.initialAlphabet = []
        let trainer = BPETrainer(config: config, preTokenizer: .split(pattern: .literal(" "), behavior: .removed, invert: false))
        trainer.feed("roses are are red voilets blue BERT is is big and so GPT-2")
        let tok = try trainer.train()
        let expected: [String: Int32] = [
            "-": 0, "2": 1, "B": 2, "E": 3, "G": 4, "P": 5, "R": 6, "T": 7, "a": 8, "b": 9, "d": 10, "e": 11, "g": 12,
            "i": 13, "l": 14, "n": 15, "o": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "re": 22, "are": 23, "is": 24,
        ]
        XCTAssertEqual(tok.model.vocab, Vocabulary(expected))
        XCTAssertEqual(tok.model.merged.map { $0.0 + " " + $0.1 }, ["r e", "a re", "i s"])
    }

    func testTiesGoToTheSmallerPair() throws {
        // "ab" and "cd" both twice: (a,b) has the smaller ids, so it is merged first.
        var config = BPETrainerConfig()
        config.initialAlphabet = []
        config.vocabSize = 6
        let trainer = BPETrainer(config: config, preTokenizer: .split(pattern: .literal(" "), behavior: .removed, invert: false))
        trainer.feed("cd ab cd ab")
        let tok = try trainer.train()
        XCTAssertEqual(tok.model.merged.map { $0.0 + $0.1 }, ["ab", "cd"])
        XCTAssertEqual(tok.vocabSize, 6)
    }

    func testJSONLAndDirectoriesAndBadRecords() throws {
        let dir = NSTemporaryDirectory() + "loom-tok-jsonl-\(getpid())"
        try FS.makeDirectory(dir + "/sub")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("{\"text\": \"the cells bind the receptor\"}\nnot json\n{\"id\": 3}\n{\"text\": \"the cells\\nagain\"}\n".utf8).write(to: URL(fileURLWithPath: dir + "/a.jsonl"))
        try Data("{\"text\": \"the receptor\"}\n".utf8).write(to: URL(fileURLWithPath: dir + "/sub/b.jsonl"))
        var config = BPETrainerConfig()
        config.vocabSize = 300
        let trainer = BPETrainer(config: config)
        var bad: [(String, Int)] = []
        try trainer.feed(file: dir, bad: { f, l, _ in bad.append(((f as NSString).lastPathComponent, l)) })
        XCTAssertEqual(bad.map { "\($0.0):\($0.1)" }, ["a.jsonl:2", "a.jsonl:3"])
        XCTAssertEqual(trainer.sequences, 3)
        let tok = try trainer.train()
        XCTAssertNotNil(tok.id(of: "Ġthe"))
        XCTAssertEqual(tok.encode(" the receptor").count, 2)
    }

    func testTextFilesAreReadByLine() throws {
        // Lines keep their newline: "a\n" and "  b" are separate sequences, so "\n  " never forms.
        let path = NSTemporaryDirectory() + "loom-tok-lines-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("a\n  b\na\n  b\n".utf8).write(to: URL(fileURLWithPath: path))
        let trainer = BPETrainer(config: BPETrainerConfig())
        try trainer.feed(file: path)
        XCTAssertEqual(trainer.sequences, 4)
        XCTAssertEqual(Set(trainer.wordCounts.keys.map { String(decoding: $0, as: UTF8.self) }), ["a", "\n", " ", " b"])
    }

    func testDeterministicAndRoundTrips() throws {
        let a = try smallTokenizer()
        let b = try smallTokenizer()
        let pa = NSTemporaryDirectory() + "loom-tok-a-\(getpid()).json"
        let pb = NSTemporaryDirectory() + "loom-tok-b-\(getpid()).json"
        defer {
            try? FileManager.default.removeItem(atPath: pa)
            try? FileManager.default.removeItem(atPath: pb)
        }
        try a.save(pa)
        try b.save(pb, mergesAsPairs: false)
        let la = try Tokenizer.load(pa)
        let lb = try Tokenizer.load(pb)
        XCTAssertEqual(la.model.merged.map { $0.0 + " " + $0.1 }, lb.model.merged.map { $0.0 + " " + $0.1 })
        XCTAssertEqual(la.model.vocab, lb.model.vocab)
        try lb.save(pb)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: pa)), try Data(contentsOf: URL(fileURLWithPath: pb)))
    }
}

final class TokenizerJSONErrorTests: XCTestCase {
    func json(_ s: String) throws -> JSONValue { try JSONValue.parse(s) }

    // loom-fuzz-tokenizer's finding (Fuzz/tokenizer): a vocabulary giving two tokens one id loaded, decoded the id as
    // one of them and wrote a tokenizer.json without the other (which then encoded differently); and one id near
    // Int32.max made a table of two billion slots.
    func testVocabularyIdsMustBeDistinctAndDense() throws {
        func load(_ text: String) throws -> Tokenizer {
            try Array(text.utf8).withUnsafeBufferPointer { try Tokenizer.load(bytes: $0, source: "fuzz/tokenizer.json") }
        }
        XCTAssertThrowsError(try load(#"{"model": {"type": "BPE", "vocab": {"<": 13, "E": 37, "F": 37, "x": 0}, "merges": []}}"#)) {
            XCTAssertTrue("\($0)".contains("fuzz/tokenizer.json: vocabulary: tokens ") && "\($0)".contains(" both have id 37"), "\($0)")
        }
        XCTAssertThrowsError(try load(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []}}"#)) {
            XCTAssertTrue("\($0)".contains("the largest id, 2000000000, leaves 1999999999 ids unused"), "\($0)")
        }
        XCTAssertEqual(try load(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 5}, "merges": []}}"#).encode("ab"), [0, 5])
    }

    func testErrorsNameTheProblem() throws {
        let base = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#
        XCTAssertEqual(try Tokenizer(json: json(base + "}")).encode("abab"), [2, 2])
        XCTAssertThrowsError(try Tokenizer(json: json(base + #", "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}}"#))) {
            XCTAssertTrue("\($0)".contains("not one Loom knows"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(json: json(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#))) {
            XCTAssertTrue("\($0)".contains("merge 1"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(json: json(#"{"model": {"type": "WordPiece", "vocab": {}}}"#)))
        XCTAssertThrowsError(try Tokenizer(json: json(base + #", "pre_tokenizer": {"type": "Whitespace"}}"#))) {
            XCTAssertTrue("\($0)".contains("Whitespace is not supported"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(json: json(base + #", "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "sometimes"}}"#)))
        let path = NSTemporaryDirectory() + "loom-tok-bad-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"model\": ".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Tokenizer.load(path)) { XCTAssertTrue("\($0)".contains(path), "\($0)") }
    }

    /// Tokens that Swift's String calls equal (canonical equivalence) are different tokens, as in tokenizers: Gemma's
    /// vocabulary has ";" (U+003B) and U+037E (GREEK QUESTION MARK), "é" precomposed and "e" + U+0301 combining.
    func testCanonicallyEquivalentTokensStayApart() throws {
        let text = #"{"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "dropout": null, "vocab": {";": 0, "\u037e": 1, "\u00e9": 2, "e": 3, "\u0301": 4, "e\u0301": 5}, "merges": ["e \u0301"]}, "decoder": null}"#
        for load in [{ try Tokenizer(json: try JSONValue.parse(text)) }, {
            let path = NSTemporaryDirectory() + "loom-tok-canon-\(getpid()).json"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return try Tokenizer.load(path)
        }] as [() throws -> Tokenizer] {
            let t = try load()
            XCTAssertEqual(t.model.vocab.count, 6)
            XCTAssertEqual(t.model.vocab[";"], 0)
            XCTAssertEqual(t.model.vocab["\u{037E}"], 1)
            XCTAssertEqual(t.model.vocab["\u{E9}"], 2)
            XCTAssertEqual(t.model.vocab["e\u{301}"], 5)
            XCTAssertEqual(t.encode(";"), [0])
            XCTAssertEqual(t.encode("\u{037E}"), [1])
            XCTAssertEqual(t.encode("\u{E9}"), [2])
            XCTAssertEqual(t.encode("e\u{301}"), [5])
        }
    }

    /// Tokenizer.load reads model.vocab apart from the JSON parser (escapes, surrogate pairs, a large vocabulary).
    func testVocabScan() throws {
        var entries = [#""a": 0"#, #""\"q": 1"#, #""\\": 2"#, #""\u00e9": 3"#, #""\ud83d\ude00": 4"#, #""a\"q": 5"#]
        for k in 6..<30000 { entries.append("\"w\(k)\": \(k)") }
        let text = #"{"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "dropout": null, "vocab": {"# + entries.joined(separator: ", ") + #"}, "merges": ["a \"q"]}, "decoder": null}"#
        let path = NSTemporaryDirectory() + "loom-tok-scan-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let t = try Tokenizer.load(path)
        XCTAssertEqual(t.model.vocab["\"q"], 1)
        XCTAssertEqual(t.model.vocab["\\"], 2)
        XCTAssertEqual(t.model.vocab["é"], 3)
        XCTAssertEqual(t.model.vocab["😀"], 4)
        XCTAssertEqual(t.model.vocab["w29999"], 29999)
        XCTAssertEqual(t.vocabSize, 30000)
        XCTAssertEqual(t.model.merges.count, 1)
        XCTAssertEqual(t.model.merged.map { [$0.0, $0.1] }, [["a", "\"q"]])
    }

    func testCharacterLevelBPEWithUnknownAndByteFallback() throws {
        let t = try Tokenizer(json: json(#"{"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": [["a", "b"]]}}"#))
        XCTAssertEqual(t.encode("abxyab"), [3, 0, 3])
        let f = try Tokenizer(json: json(#"{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"<0xC3>": 0, "<0xA9>": 1, "a": 2}, "merges": []}}"#))
        XCTAssertEqual(f.encode("aé"), [2, 0, 1])
    }
}

final class SentencePieceDecoderTests: XCTestCase {
    /// Llama-2's decoder chain on tokens written here: "▁" back to spaces, byte tokens joined into UTF-8 (an
    /// invalid run becomes one U+FFFD a byte), one leading space stripped.
    func testReplaceByteFallbackFuseStrip() throws {
        let chain = try TokenDecoder(json: try JSONValue.parse(#"""
            {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
            """#))
        XCTAssertEqual(chain.decode(["▁Hello", "▁wor", "ld", "▁", "<0xED>", "<0x95>", "<0x9C>", "!"]), "Hello world 한!")
        // A run that is not UTF-8 as a whole is one U+FFFD a byte (tokenizers' ByteFallback).
        XCTAssertEqual(chain.decode(["▁a", "<0xED>", "<0x95>", "<0x9C>", "<0xFF>", "<0x41>", "b"]), "a\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}b")
        XCTAssertEqual(chain.decode(["▁▁two"]), " two")
        XCTAssertEqual(chain.decode(["<0xF0>", "<0x9F>"]), "\u{FFFD}\u{FFFD}")
        XCTAssertEqual(chain.decode([]), "")
        XCTAssertEqual(TokenDecoder.fallbackByte("<0x0A>"), 10)
        XCTAssertNil(TokenDecoder.fallbackByte("<0xZZ>"))
        XCTAssertNil(TokenDecoder.fallbackByte("<0x0A"))
        // The chain is written back as tokenizers writes it.
        XCTAssertEqual(try TokenDecoder(json: chain.json), chain)
        XCTAssertThrowsError(try TokenDecoder(json: ["type": "WordPiece"]))
        // Metaspace: "▁" is a space, except in the first token where it is dropped (unless the scheme is never).
        XCTAssertEqual(TokenDecoder.metaspace(replacement: "▁", prependScheme: .first).decode(["▁Hello", "▁world", "▁"]), "Hello world ")
        XCTAssertEqual(TokenDecoder.metaspace(replacement: "▁", prependScheme: .never).decode(["▁Hello", "▁world"]), " Hello world")
        XCTAssertThrowsError(try TokenDecoder(json: ["type": "Metaspace", "prepend_scheme": "sometimes"]))
        let pre = try PreTokenizer(json: ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true])
        XCTAssertEqual(pre.pieces(of: Array("a b  c".utf8)).map { String(decoding: $0, as: UTF8.self) }, ["▁a", "▁b", "▁", "▁c"])
        XCTAssertEqual(pre.pieces(of: Array("x y".utf8), atStart: false).map { String(decoding: $0, as: UTF8.self) }, ["x", "▁y"])
    }
}

/// The Unicode normalisers of tokenizer.json: ASCII text skips Foundation (it is its own NFC/NFD/NFKC/NFKD), other
/// text goes through it; both agree with Foundation's forms on ASCII strings, awkward characters and mixes.
final class UnicodeNormalizerTests: XCTestCase {
    func testFormsAgreeWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        let awkward: [String] = ["ﬁ", "Ａ", "é", "e\u{301}", "Å", "ß", "µ", "²", "…", "한", "\u{1100}\u{1161}", "Ω", "ǅ", "\u{FB01}x"]
        var samples = ["", "plain ASCII text, with punctuation & digits 0-9.\n\t~"]
        for _ in 0..<500 {
            var t = ""
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                t += Bool.random(using: &rng) ? String(UnicodeScalar(UInt8.random(in: 0x20...0x7E, using: &rng))) : awkward.randomElement(using: &rng)!
            }
            samples.append(t)
        }
        for t in samples {
            XCTAssertEqual(Normalizer.nfc.normalize(t), t.precomposedStringWithCanonicalMapping, t)
            XCTAssertEqual(Normalizer.nfd.normalize(t), t.decomposedStringWithCanonicalMapping, t)
            XCTAssertEqual(Normalizer.nfkc.normalize(t), t.precomposedStringWithCompatibilityMapping, t)
            XCTAssertEqual(Normalizer.nfkd.normalize(t), t.decomposedStringWithCompatibilityMapping, t)
        }
        XCTAssertEqual(Normalizer.nfkc.normalize("ﬁle Ａ"), "file A")
    }
}
