// A tokenizer trained by Loom, read by Hugging Face tokenizers: same ids for the test strings, same decoded text,
// and tokenizers' own BpeTrainer with the same settings learns the same vocabulary and merges. Runs when python3
// with tokenizers is installed (pip install tokenizers==0.23.3); skipped otherwise.

import Foundation
import LoomCore
import XCTest

@testable import LoomTokenizer

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

func pythonHasTokenizers() -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import tokenizers"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

func runPython(_ args: [String]) throws -> JSONValue {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + args
    var env = ProcessInfo.processInfo.environment
    env["RAYON_NUM_THREADS"] = "1"
    p.environment = env
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, "python3 \(args.joined(separator: " "))")
    return try JSONValue.parse(String(decoding: out, as: UTF8.self))
}

final class InteropTests: XCTestCase {
    func check(corpus: String, pre: String, vocab: Int, minFrequency: Int, strings: [String]) throws {
        guard pythonHasTokenizers() else { throw XCTSkip("python3 with tokenizers not installed: interop test skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)") }
        let scripts = (ProcessInfo.processInfo.environment["LOOM_PEERS"] ?? packageRoot + "/Benchmarks/peers")
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var config = BPETrainerConfig()
        config.vocabSize = vocab
        config.minFrequency = minFrequency
        config.specialTokens = specials
        let trainer = BPETrainer(config: config, preTokenizer: pre == "llama3" ? BPETrainer.llama3PreTokenizer : BPETrainer.gpt2PreTokenizer)
        try trainer.feed(file: corpus)
        let tok = try trainer.train()
        let tmp = NSTemporaryDirectory() + "loom-interop-\(getpid())-\(pre)-\(vocab)"
        try FS.makeDirectory(tmp)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try tok.save(tmp + "/tokenizer.json")
        try Data(JSONValue.array(strings.map { .string($0) }).jsonString.utf8).write(to: URL(fileURLWithPath: tmp + "/strings.json"))
        var args = [scripts + "/tokenizer_check.py", tmp + "/tokenizer.json", tmp + "/strings.json", "--train", corpus,
            "--vocab-size", String(vocab), "--min-frequency", String(minFrequency), "--pre", pre]
        for s in specials { args += ["--special", s] }
        let r = try runPython(args)
        let ids = (r["ids"]?.arrayValue ?? []).map { ($0.arrayValue ?? []).map { Int32($0.intValue ?? -1) } }
        let decoded = (r["decoded"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
        XCTAssertEqual(ids.count, strings.count)
        for (i, s) in strings.enumerated() where i < ids.count {
            XCTAssertEqual(tok.encode(s), ids[i], "ids of \(s.debugDescription)")
            XCTAssertEqual(decoded[i], s)
        }
        XCTAssertEqual(r["same_as_trained"], .bool(true), "tokenizers' trainer learned a different vocabulary or merges")
    }

    func testsStrings() throws -> [String] {
        var out = ["", "Hello, world!", "don't STOP 12345 \t\r\n  x", "<|im_start|>user\nhi<|im_end|>\n", "日本語 한국어 café 😀"]
        if let s = sharedDirectory(), let cases = try? loadCases(s + "/fixtures/tokenizer/tests.json") { out += cases.map(\.text) }
        return out
    }

    /// On a corpus written here (runs without the shared fixtures).
    func testGeneratedCorpus() throws {
        let path = NSTemporaryDirectory() + "loom-interop-corpus-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var rng = SplitMix64(seed: 11)
        let words = ["the", "cell", "cells", "protein", "binding", "of", "and", "receptor", "It's", "2026", "3.14", "naïve", "日本語", "테스트", "(x)", "--", "\t"]
        var text = ""
        for _ in 0..<2000 {
            for _ in 0..<(3 + rng.below(12)) { text += (rng.below(6) == 0 ? "  " : " ") + words[rng.below(words.count)] }
            text += rng.below(4) == 0 ? "\r\n" : "\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try check(corpus: path, pre: "gpt2", vocab: 500, minFrequency: 2, strings: try testsStrings())
        try check(corpus: path, pre: "llama3", vocab: 600, minFrequency: 1, strings: try testsStrings())
    }

    /// On the fixture corpus with settings other than the fixture's.
    func testFixtureCorpusOtherSettings() throws {
        let dir = try fixtureDirectory()
        try check(corpus: dir + "/corpus.txt", pre: "gpt2", vocab: 2000, minFrequency: 1, strings: try testsStrings())
        try check(corpus: dir + "/corpus.txt", pre: "llama3", vocab: 1500, minFrequency: 3, strings: try testsStrings())
    }

    /// SentencePiece-style tokenizer.json files built and trained by tokenizers — the Llama-2 layout (Prepend/Replace
    /// normaliser, Replace/ByteFallback/Fuse/Strip decoder) and the Metaspace layout (pre-tokenizer and decoder,
    /// prepend_scheme first, split on and off), BPE with byte fallback: Loom reads them and gives the same ids (with
    /// and without <s>) and the same decoded text, byte-fallback characters (Korean, emoji) included.
    func testSentencePieceStyleTokenizerFromTokenizers() throws {
        guard pythonHasTokenizers() else { throw XCTSkip("python3 with tokenizers not installed: interop test skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)") }
        let scripts = (ProcessInfo.processInfo.environment["LOOM_PEERS"] ?? packageRoot + "/Benchmarks/peers")
        let tmp = NSTemporaryDirectory() + "loom-interop-spm-\(getpid())"
        try FS.makeDirectory(tmp)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var rng = SplitMix64(seed: 5)
        let words = ["the", "policy", "covers", "water", "damage", "of", "and", "insured", "It's", "2026", "naïve", "claims", "(x)"]
        var text = ""
        for _ in 0..<1500 {
            for _ in 0..<(3 + rng.below(10)) { text += " " + words[rng.below(words.count)] }
            text += "\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: tmp + "/corpus.txt"))
        let strings = [
            "", "Hello world", "the policy covers water damage", "  two  spaces ", "line\nbreak\ttab",
            "보험 약관 제3조 (보상하는 손해)", "emoji 🙂 ok", "naïve café ∑ 日本語", "x", " leading", "trailing ",
            "<s> looks special", "claims (x) 2026",
        ]
        try Data(JSONValue.array(strings.map { .string($0) }).jsonString.utf8).write(to: URL(fileURLWithPath: tmp + "/strings.json"))
        // The Llama-2 layout, and the Metaspace layout of transformers' newer conversions (split and not).
        for layout in ["llama2", "metaspace", "metaspace-nosplit"] {
            let file = tmp + "/\(layout).json"
            let r = try runPython([scripts + "/spm_tokenizer_check.py", tmp + "/corpus.txt", tmp + "/strings.json", file, "700", layout])
            let rows = r["rows"]?.arrayValue ?? []
            XCTAssertEqual(rows.count, strings.count)
            let tok = try Tokenizer.load(file)
            func ids(_ v: JSONValue?) -> [Int32] { (v?.arrayValue ?? []).map { Int32($0.intValue ?? -1) } }
            for (s, row) in zip(strings, rows) {
                let plain = tok.encode(s)
                XCTAssertEqual(plain, ids(row["ids"]), "\(layout): ids of \(s.debugDescription)")
                XCTAssertEqual(tok.encode(s, addSpecialTokens: true), ids(row["with_special"]), "\(layout): ids with <s> of \(s.debugDescription)")
                XCTAssertEqual(tok.decode(plain), row["decoded"]?.stringValue, "\(layout): decoded \(s.debugDescription)")
            }
        }
    }
}
