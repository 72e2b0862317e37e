// `loom generate text` and `loom serve` as a user runs them: a tiny model trained by `loom train sft` (150 steps on
// three one-word answers), sampled from the command line through the chat template it was trained with, then
// served and asked over HTTP — the served reply equals the command-line one.

import Foundation
import LoomCore
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

final class ServeCLITests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-serve-cli-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func start(_ args: [String]) throws -> (Process, String, String) {
        guard FileManager.default.isExecutableFile(atPath: CLITests.loom) else {
            throw XCTSkip("\(CLITests.loom) not built: run 'swift build' first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.loom)
        p.arguments = args
        let tag = UUID().uuidString.prefix(8)
        let out = dir + "/.out-\(tag)", err = dir + "/.err-\(tag)"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        return (p, out, err)
    }

    func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let (p, out, err) = try start(args)
        p.waitUntilExit()
        return (p.terminationStatus, (try? FS.readText(out)) ?? "", (try? FS.readText(err)) ?? "")
    }

    func post(_ url: String, _ body: String) throws -> JSONValue {
        var req = URLRequest(url: URL(string: url)!)
        req.httpMethod = "POST"
        req.httpBody = Data(body.utf8)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var data: Data?
        URLSession.shared.dataTask(with: req) { d, _, _ in
            data = d
            done.signal()
        }.resume()
        done.wait()
        return try JSONValue.parse(String(decoding: data ?? Data(), as: UTF8.self))
    }

    func testTrainGenerateServe() throws {
        let lines = (0..<24).map { i in
            #"{"id":"s\#(i)","text":"sample \#(i)","messages":[{"role":"user","content":"Say the colour number \#(i % 3)."},{"role":"assistant","content":"\#(["Red", "Green", "Blue"][i % 3])."}]}"#
        }
        FileManager.default.createFile(atPath: dir + "/sft.jsonl", contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(try run(["dedup", "exact", dir + "/sft.jsonl", "-o", dir + "/in", "-q"]).status, 0)
        let t = try run([
            "train", "sft", dir + "/in", "-o", dir + "/sft", "--preset", "tiny", "--steps", "150", "--seq-len", "64",
            "--batch-size", "8", "--lr", "3e-3", "-q",
        ])
        XCTAssertEqual(t.status, 0, t.stderr)

        // Command line: a chat reply as JSON, and ids from ids.
        let g = try run([
            "generate", "text", dir + "/sft", "--chat", "--prompt", "Say the colour number 1.", "--max-tokens", "12",
            "--output", "json",
        ])
        XCTAssertEqual(g.status, 0, g.stderr)
        let j = try JSONValue.parse(g.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let text = try XCTUnwrap(j["text"]?.stringValue)
        // Prompted the way it was trained (ChatML), the model answers its training reply and stops at <|im_end|>.
        XCTAssertEqual(text, "Green.")
        XCTAssertEqual(j["finish_reason"]?.stringValue, "stop")
        XCTAssertEqual(j["tokens"]?.arrayValue?.last?.intValue, 258)  // <|im_end|> in the byte-level vocabulary
        let ids = try run(["generate", "text", dir + "/sft", "--ids", "72,105", "--max-tokens", "5", "--output", "ids"])
        XCTAssertEqual(ids.status, 0, ids.stderr)
        XCTAssertLessThanOrEqual(ids.stdout.split(separator: " ").count, 5)
        XCTAssertNotEqual(try run(["generate", "text", dir + "/sft"]).status, 0)  // neither --prompt nor --ids
        XCTAssertNotEqual(try run(["generate", "text", dir + "/nope", "--prompt", "x"]).status, 0)

        // Served on a free port: the same reply through the OpenAI API.
        let (server, out, _) = try start(["serve", dir + "/sft", "--port", "0"])
        defer { server.terminate() }
        var base: String?
        for _ in 0..<200 where base == nil {
            Thread.sleep(forTimeInterval: 0.05)
            if let line = (try? FS.readText(out))?.split(separator: "\n").first, let r = line.range(of: "http://") {
                base = String(line[r.lowerBound...])
            }
        }
        let url = try XCTUnwrap(base, "loom serve printed no address")
        XCTAssertTrue(url.hasPrefix("http://127.0.0.1:"))
        let r = try post(
            url + "/chat/completions",
            #"{"model":"sft","messages":[{"role":"user","content":"Say the colour number 1."}],"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(r["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, text, r.jsonString)
    }

    /// The safety options as a user meets them: a missing key variable is an error before anything listens; a
    /// non-loopback address is a warning that says there is no key; with a key, a request without it gets 401.
    func testAPIKeyAndNonLoopbackWarning() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: serve CLI safety test skipped") }
        let model = shared + "/fixtures/llama-tiny"
        guard FileManager.default.fileExists(atPath: model + "/model.safetensors") else { throw XCTSkip("\(model) not present") }
        let missing = try run(["serve", model, "--port", "0", "--api-key-env", "LOOM_TEST_NO_SUCH_VARIABLE"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("LOOM_TEST_NO_SUCH_VARIABLE"), missing.stderr)
        XCTAssertNotEqual(try run(["serve", model, "--max-body", "lots"]).status, 0)

        setenv("LOOM_TEST_SERVE_KEY", "s3cret", 1)
        defer { unsetenv("LOOM_TEST_SERVE_KEY") }
        let (server, out, err) = try start(["serve", model, "--host", "0.0.0.0", "--port", "0", "--name", "tiny", "--api-key-env", "LOOM_TEST_SERVE_KEY"])
        defer { server.terminate() }
        var base: String?
        for _ in 0..<200 where base == nil {
            Thread.sleep(forTimeInterval: 0.05)
            if let line = (try? FS.readText(out))?.split(separator: "\n").first, let r = line.range(of: ":", options: .backwards) {
                base = "http://127.0.0.1" + line[r.lowerBound...]
            }
        }
        let url = try XCTUnwrap(base, "loom serve printed no address")
        let warning = try FS.readText(err)
        XCTAssertTrue(warning.contains("warning: serve: listening on 0.0.0.0"), warning)
        XCTAssertFalse(warning.contains("without an API key"), warning)
        let denied = try post(url + "/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#)
        XCTAssertEqual(denied["error"]?["code"]?.stringValue, "invalid_api_key", denied.jsonString)

        let (open, _, openErr) = try start(["serve", model, "--host", "0.0.0.0", "--port", "0"])
        defer { open.terminate() }
        var said = ""
        for _ in 0..<200 where !said.contains("without an API key") {
            Thread.sleep(forTimeInterval: 0.05)
            said = (try? FS.readText(openErr)) ?? ""
        }
        XCTAssertTrue(said.contains("without an API key"), said)
    }
}
