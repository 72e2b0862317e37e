import Foundation
import XCTest

@testable import LoomCore

/// `loom model info | import | export` as a process, on the tiny GGUF fixtures ($LOOM_SHARED/fixtures/gguf).
extension CLITests {
    func ggufFixture(_ name: String) throws -> String {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: model CLI tests skipped") }
        let p = shared + "/fixtures/gguf/" + name
        guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("\(p) not present") }
        return p
    }

    func testModelInfoImportExport() throws {
        let gguf = try ggufFixture("gemma3-tiny-q8_0.gguf")
        var r = try loom(["model", "info", gguf])
        XCTAssertEqual(r.status, 0, r.stderr)
        for s in ["GGUF v3", "architecture: gemma3", "gemma3_text: 4 layers, hidden 64", "Q8_0", "F32", "tokenizer.ggml.tokens = [STRING × 512] \"<pad>\""] {
            XCTAssertTrue(r.stdout.contains(s), "'\(s)' not in:\n\(r.stdout)")
        }
        r = try loom(["model", "import", gguf, "-o", dir + "/m"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("54 tensors"), r.stdout)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/m/" + f), f)
        }
        r = try loom(["model", "info", dir + "/m"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Hugging Face model directory") && r.stdout.contains("F32"), r.stdout)
        // The imported tokenizer encodes (byte fallback: the tiny vocabulary has 18 normal pieces).
        r = try loom(["tokenizer", "encode", dir + "/m/tokenizer.json", "hi"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try loom(["model", "export", dir + "/m", "-o", dir + "/back.gguf", "--type", "q8_0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Q8_0") && r.stdout.contains("tokenizer"), r.stdout)
        r = try loom(["model", "info", dir + "/back.gguf"])
        XCTAssertTrue(r.stdout.contains("tokenizer.ggml.model = \"llama\""), r.stdout)
    }

    func testModelCommandsGiveOneClearLineOnBadInput() throws {
        FileManager.default.createFile(atPath: dir + "/bad.gguf", contents: Data("GGUF\u{3}\0\0\0".utf8))
        var r = try loom(["model", "import", dir + "/bad.gguf", "-o", dir + "/out"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(dir + "/bad.gguf: not a valid GGUF file: tensor_count at byte 8"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        r = try loom(["model", "export", dir, "-o", dir + "/x.gguf", "--type", "q4_k"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--type q4_k: use f32, f16 or q8_0"), r.stderr)
        r = try loom(["model", "info", dir + "/missing.gguf"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("cannot open"), r.stderr)
        // The help teaches.
        for sub in ["import", "export", "info"] {
            let help = try loom(["model", sub, "--help"])
            XCTAssertTrue(help.stdout.contains("Examples:") && help.stdout.contains("loom model \(sub)"), help.stdout)
        }
    }
}
