// Greedy generation from a transformers checkpoint gives transformers' `generate` tokens. The checkpoint and the
// expected tokens come from Benchmarks/peers/generate_check.py (a random LlamaForCausalLM saved with
// save_pretrained); runs when python3 has torch and transformers, skips otherwise.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

func runPython(_ args: [String]) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + args
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-py-\(UUID().uuidString).log")
    FileManager.default.createFile(atPath: out.path, contents: nil)
    guard let h = try? FileHandle(forWritingTo: out) else { return (-1, "") }
    p.standardOutput = h
    p.standardError = h
    do { try p.run() } catch { return (-1, "\(error)") }
    p.waitUntilExit()
    try? h.close()
    let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(at: out)
    return (p.terminationStatus, text)
}

/// The package root (for Benchmarks/peers scripts).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

final class TransformersGenerateTests: XCTestCase {
    func testGreedyGenerationMatchesTransformers() throws {
        guard runPython(["-c", "import torch, transformers"]).status == 0 else {
            throw XCTSkip("python3 with torch and transformers not installed: generate check skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
        }
        Compute.configure(threads: 2)
        let dir = NSTemporaryDirectory() + "loom-gen-check-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = runPython([packageRoot + "/Benchmarks/peers/generate_check.py", dir, "--max-new-tokens", "40"])
        XCTAssertEqual(r.status, 0, r.output)
        let expected = try JSONValue.parse(try FS.readText(dir + "/expected.json"))
        let model = try ChatModel.load(directory: dir)
        let cases = expected["cases"]?.arrayValue ?? []
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let prompt = (c["prompt"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
            let want = (c["generated"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
            let got = try model.continuation(ids: prompt, options: SamplingOptions(maxTokens: 40))
            // Greedy tokens agree where the lead of the top logit exceeds what rounding can move the top two by,
            // 8·√(sd_loom² + sd_torch²) each (float64 reference on the sequence so far): checked at every step.
            let r = ReferenceLlama(model: model.model)
            for step in want.indices {
                let seq = prompt + want[..<step]
                let b = Batch(rows: 1, length: seq.count, tokens: Array(seq))
                let V = model.model.config.vocabSize, o = (seq.count - 1) * V
                r.loomKernels = true
                r.forward(b)
                let z = Array(r.logits.v[o..<o + V]), loom = Array(r.logits.sd[o..<o + V])
                r.loomKernels = false
                r.forward(b)
                let bound = differenceBound(loom, Array(r.logits.sd[o..<o + V]))
                let top = Int(want[step]), second = z.indices.filter { $0 != top }.max { z[$0] < z[$1] }!
                XCTAssertGreaterThan(z[top] - z[second], bound[top] + bound[second], "step \(step): the greedy choice is within rounding")
            }
            XCTAssertEqual(got.tokens, want, "prompt of \(prompt.count) tokens")
            XCTAssertEqual(got.finishReason, "length")
        }
    }
}
