// The Hugging Face reference fixtures ($LOOM_SHARED/fixtures/tokenizer): both tokenizers, their 50 test strings,
// and a tokenizer trained by Loom on the fixture corpus compared with the one tokenizers trained.

import Foundation
import LoomCore
import XCTest

@testable import LoomTokenizer

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

func fixtureDirectory() throws -> String {
    guard let s = sharedDirectory(), FS.exists(s + "/fixtures/tokenizer/tokenizer.json") else {
        throw XCTSkip("LOOM_SHARED/fixtures/tokenizer not present: tokenizer fixture tests skipped")
    }
    return s + "/fixtures/tokenizer"
}

struct FixtureCase {
    var text: String
    var ids: [Int32]
    var tokens: [String]
    var decoded: String
}

func loadCases(_ path: String) throws -> [FixtureCase] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let json = try JSONValue.parse(String(decoding: data, as: UTF8.self))
    return (json["cases"]?.arrayValue ?? []).map { c in
        FixtureCase(
            text: c["text"]?.stringValue ?? "", ids: (c["ids"]?.arrayValue ?? []).map { Int32($0.intValue ?? -1) },
            tokens: (c["tokens"]?.arrayValue ?? []).map { $0.stringValue ?? "" }, decoded: c["decoded"]?.stringValue ?? "")
    }
}

final class FixtureTests: XCTestCase {
    func check(_ tokenizerFile: String, _ testsFile: String) throws {
        let dir = try fixtureDirectory()
        let tok = try Tokenizer.load(dir + "/" + tokenizerFile)
        let reference = try ReferenceTokenizer(tok)
        let cases = try loadCases(dir + "/" + testsFile)
        XCTAssertEqual(cases.count, 50)
        for c in cases {
            let ids = tok.encode(c.text)
            XCTAssertEqual(ids, c.ids, "\(tokenizerFile): \(c.text.debugDescription)")
            XCTAssertEqual(ids.map { tok.token(of: $0) ?? "?" }, c.tokens, "\(tokenizerFile): \(c.text.debugDescription)")
            XCTAssertEqual(tok.decode(ids), c.decoded)
            XCTAssertEqual(tok.decode(ids), c.text, "round trip of \(c.text.debugDescription)")
            XCTAssertEqual(reference.encode(c.text), c.ids, "reference: \(c.text.debugDescription)")
            // Offsets tile the text (byte-level tokens never split a byte).
            let (oi, offs) = tok.encodeWithOffsets(c.text)
            XCTAssertEqual(oi, ids)
            XCTAssertEqual(offs.map(\.count).reduce(0, +), c.text.utf8.count)
        }
    }

    func testGPT2StyleTokenizer() throws { try check("tokenizer.json", "tests.json") }

    func testLlama3SplitTokenizer() throws { try check("tokenizer-llama3-split.json", "tests-llama3-split.json") }

    func testFixtureMetadata() throws {
        let tok = try Tokenizer.load(try fixtureDirectory() + "/tokenizer.json")
        XCTAssertEqual(tok.vocabSize, 1000)
        XCTAssertEqual(tok.id(ofSpecial: "<|im_end|>"), 2)
        XCTAssertEqual(tok.eosId, 0)
        XCTAssertNil(tok.id(ofSpecial: "Ġt"))
        XCTAssertEqual(tok.model.merges.count, 741)
    }

    /// Reading a file and writing it back gives the same bytes (and the string form of the merges reads the same).
    func testRewritesFixtureByteForByte() throws {
        let dir = try fixtureDirectory()
        for name in ["tokenizer.json", "tokenizer-llama3-split.json"] {
            let tok = try Tokenizer.load(dir + "/" + name)
            let tmp = NSTemporaryDirectory() + "loom-tok-\(getpid())-\(name)"
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            try tok.save(tmp)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp)), try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)), name)
            try tok.save(tmp, mergesAsPairs: false)
            let text = try String(contentsOfFile: tmp, encoding: .utf8)
            XCTAssertTrue(text.contains("\"Ġ t\""))
            let again = try Tokenizer.load(tmp)
            XCTAssertEqual(again.model.merged.map { $0.0 + " " + $0.1 }, tok.model.merged.map { $0.0 + " " + $0.1 })
            XCTAssertEqual(again.encode("Hello, world! 12345"), tok.encode("Hello, world! 12345"))
        }
    }

    /// Loom's trainer on corpus.txt with the fixture's settings gives the fixture's vocabulary and merges, byte for byte.
    func testTrainingReproducesFixture() throws {
        let dir = try fixtureDirectory()
        for (name, pre) in [
            ("tokenizer.json", PreTokenizer.byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: true)),
            ("tokenizer-llama3-split.json", BPETrainer.llama3PreTokenizer),
        ] {
            var config = BPETrainerConfig()
            config.vocabSize = 1000
            config.minFrequency = 2
            config.specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            let trainer = BPETrainer(config: config, preTokenizer: pre)
            try trainer.feed(file: dir + "/corpus.txt")
            let tok = try trainer.train()
            let tmp = NSTemporaryDirectory() + "loom-train-\(getpid())-\(name)"
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            try tok.save(tmp)
            let mine = try String(contentsOfFile: tmp, encoding: .utf8)
            let theirs = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            XCTAssertEqual(mine, theirs, name)
        }
    }
}
