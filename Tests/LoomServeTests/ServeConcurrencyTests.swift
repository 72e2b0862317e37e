// `loom serve` under 16 concurrent clients of the official `openai` Python client (Benchmarks/peers/
// serve_concurrent_check.py), half streaming and half not, against the llama-tiny fixture model
// ($LOOM_SHARED/fixtures/llama-tiny, byte vocabulary): every request succeeds and each reply — text, finish reason,
// completion tokens — equals the same request generated alone through the single-sequence path (InferenceSession),
// while the server decodes them in batches of at most --max-batch.

import Foundation
import LoomCore
import LoomServe
import LoomTensor
import LoomTrain
import XCTest

final class ServeConcurrencyTests: XCTestCase {
    override func setUp() { Compute.configure(threads: 2) }

    func shared() -> String? {
        let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] ?? packageRoot + "/../shared"
        return FileManager.default.fileExists(atPath: s) ? s : nil
    }

    func python() throws -> String {
        for p in [packageRoot + "/.build/reference-venv/bin/python", "/usr/bin/env"] {
            guard FileManager.default.fileExists(atPath: p) else { continue }
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: p)
            probe.arguments = (p.hasSuffix("env") ? ["python3"] : []) + ["-c", "import openai"]
            probe.standardError = FileHandle.nullDevice
            try probe.run()
            probe.waitUntilExit()
            if probe.terminationStatus == 0 { return p }
        }
        throw XCTSkip("python3 with the openai client not installed (pip install openai): concurrent client check skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
    }

    func testSixteenConcurrentOpenAIClients() async throws {
        guard let shared = shared() else { throw XCTSkip("LOOM_SHARED not present: concurrent serve test skipped") }
        let dir = shared + "/fixtures/llama-tiny"
        guard FileManager.default.fileExists(atPath: dir + "/model.safetensors") else { throw XCTSkip("\(dir) not present") }
        let py = try python()
        let model = try ChatModel.load(directory: dir, name: "tiny")
        model.maxBatch = 8
        let server = try ChatServer(model: model, host: "127.0.0.1", port: 0)
        let task = Task { try await server.run() }
        try await server.waitUntilListening()
        let base = "http://127.0.0.1:\(await server.port)/v1"

        let (status, out) = try await runPython(
            py,
            (py.hasSuffix("env") ? ["python3"] : []) + [
                packageRoot + "/Benchmarks/peers/serve_concurrent_check.py", "--base-url", base, "--model", "tiny", "--clients", "16",
                "--max-tokens", "8",
            ])
        await server.stop()
        task.cancel()
        XCTAssertEqual(status, 0, out)
        let results = try XCTUnwrap(try JSONValue.parse(out.trimmingCharacters(in: .whitespacesAndNewlines))["results"]?.arrayValue)
        XCTAssertEqual(results.count, 16)
        var streamed = 0
        for r in results {
            XCTAssertNil(r["error"], "client \(r["client"]?.intValue ?? -1): \(r["error"]?.stringValue ?? "")")
            let q = try XCTUnwrap(r["question"]?.stringValue), maxTokens = try XCTUnwrap(r["max_tokens"]?.intValue)
            // The same request alone, through the single-sequence reference.
            var o = SamplingOptions(maxTokens: maxTokens)
            o.stopTokens = model.stopTokens
            let codec = model.codec
            let want = try InferenceSession(model: model.model).generate(
                prompt: model.promptTokens([("user", q)]), options: o, decode: { codec.decode($0) })
            XCTAssertEqual(r["text"]?.stringValue, want.text, q)
            XCTAssertEqual(r["finish_reason"]?.stringValue, want.finishReason, q)
            XCTAssertEqual(r["completion_tokens"]?.intValue, want.completionTokens, q)
            if r["stream"]?.boolValue == true { streamed += 1 }
        }
        XCTAssertEqual(streamed, 8)
        XCTAssertLessThanOrEqual(model.batcher.largestBatch, 8)
        print("16 concurrent clients: \(model.batcher.passes) passes, largest batch \(model.batcher.largestBatch)")
    }
}
