// The generator's `builtin` backend: a Loom model in-process, with the same prompts and response cache as the
// `openai` backend — so a generate stage gives the same records through it as through `loom serve`.

import Foundation
import LoomCore
import LoomGenerate
import LoomServe
import LoomTensor
import LoomTrain
import XCTest

let templatesDirectory = packageRoot + "/templates"

final class BuiltinBackendTests: XCTestCase {
    var dir = ""

    override func setUp() {
        Compute.configure(threads: 2)
        TextBackends.register("builtin") { try BuiltinBackend.shared(directory: $0) }
        dir = NSTemporaryDirectory() + "loom-builtin-" + UUID().uuidString.prefix(8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func sample(_ id: String, _ q: String, _ a: String) -> JSONValue {
        ["id": .string(id), "messages": [["role": "user", "content": .string(q)], ["role": "assistant", "content": .string(a)]]]
    }

    func rejectedTexts(_ path: String) throws -> [String] {
        try FS.readText(path).split(separator: "\n").map { try JSONValue.parse(String($0)) }
            .compactMap { $0["rejected"]?.arrayValue?.first?["content"]?.stringValue }
    }

    /// Preference pairs with model-sampled rejected answers: through `builtin` the rejected answer is the model's
    /// reply to the question-only prompt; a re-run is served from the cache; through `openai` against `loom serve`
    /// of the same model the records are the same.
    func testPreferenceThroughBuiltinEqualsThroughServer() async throws {
        let modelDir = dir + "/model"
        try makeModelDirectory(modelDir, seed: 9)
        let records = [sample("a", "What divides quickly?", "The cell."), sample("b", "What lowers pressure?", "The drug.")]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        var c = PreferenceConfig()
        c.rejected = "sample"
        c.qa.openai.backend = "builtin"
        c.qa.openai.model = modelDir
        c.qa.openai.temperature = 0
        c.qa.openai.maxTokens = 12
        c.qa.cache = dir + "/cache.sqlite"
        let config = c
        let dirCopy = dir
        let m = try await Task.detached {
            try StageRunner.run(
                PreferenceStage(config: config, input: dirCopy + "/in", templates: templatesDirectory), directory: dirCopy + "/builtin",
                options: RunOptions(quiet: true)
            ).manifest
        }.value
        XCTAssertEqual(m.counts["pairs"]?.intValue, 2)
        XCTAssertEqual(m.config["backend"]?.stringValue, "builtin")
        XCTAssertTrue(m.config["model"]?.stringValue?.hasPrefix(modelDir + "@") ?? false)
        let got = try rejectedTexts(dir + "/builtin/part-00000.jsonl")
        let model = try BuiltinBackend.shared(directory: modelDir).model
        // The prompt the stage sends: templates/preference/question-only.mustache with the question (the file's
        // final newline is not part of the template).
        var template = try FS.readText(templatesDirectory + "/preference/question-only.mustache")
        if template.hasSuffix("\n") { template.removeLast() }
        XCTAssertEqual(template, "{{question}}")
        let prompts = ["What divides quickly?", "What lowers pressure?"].map {
            template.replacingOccurrences(of: "{{question}}", with: $0)
        }
        let want = try prompts.map {
            try model.reply([(role: "user", content: $0)], options: SamplingOptions(maxTokens: 12)).text
        }
        XCTAssertEqual(got, want)
        XCTAssertEqual(try ResponseCache(path: dir + "/cache.sqlite").count, 2)

        // The cache answers a forced re-run: the builtin backend is not asked again.
        let backend = try OpenAIBackend(config: c.qa.openai, cache: try ResponseCache(path: dir + "/cache.sqlite"))
        XCTAssertEqual(try backend.complete([(role: "user", content: prompts[0])]), want[0])
        XCTAssertEqual(backend.stats.cacheHits, 1)
        XCTAssertEqual(backend.stats.requests, 0)

        // The openai backend against `loom serve` of the same model writes the same rejected answers.
        let server = try ChatServer(model: model, host: "127.0.0.1", port: 0)
        let task = Task { try await server.run() }
        try await server.waitUntilListening()
        var o = PreferenceConfig()
        o.rejected = "sample"
        o.qa.openai.baseURL = "http://127.0.0.1:\(await server.port)/v1"
        o.qa.openai.model = model.name
        o.qa.openai.temperature = 0
        o.qa.openai.maxTokens = 12
        o.qa.noCache = true
        let served = o
        _ = try await Task.detached {
            try StageRunner.run(
                PreferenceStage(config: served, input: dirCopy + "/in", templates: templatesDirectory), directory: dirCopy + "/served",
                options: RunOptions(quiet: true))
        }.value
        await server.stop()
        task.cancel()
        XCTAssertEqual(try rejectedTexts(dir + "/served/part-00000.jsonl"), want)
    }

    /// Pipeline options: `backend: { kind: builtin, model: DIR }` or flat `backend: builtin` + `model`.
    func testPipelineOptions() throws {
        let nested = try QAConfig.from(
            ["backend": ["kind": "builtin", "model": "@train"], "max_tokens": 64], context: "step 3",
            resolve: { "/runs/" + $0.dropFirst() })
        XCTAssertEqual(nested.openai.backend, "builtin")
        XCTAssertEqual(nested.openai.model, "/runs/train")
        XCTAssertEqual(nested.openai.maxTokens, 64)
        let flat = try QAConfig.from(["backend": "builtin", "model": "m"], context: "step 3")
        XCTAssertEqual(flat.openai.model, "m")
        XCTAssertEqual(try QAConfig.from(["model": "qwen"], context: "s").openai.backend, "openai")
        XCTAssertThrowsError(try QAConfig.from(["backend": "builtin"], context: "s"))
        XCTAssertThrowsError(try QAConfig.from(["backend": ["kind": "vllm"]], context: "s"))
        XCTAssertThrowsError(try QAConfig.from(["backend": ["kind": "builtin", "model": "a"], "model": "b"], context: "s"))
        var bad = OpenAIConfig()
        bad.backend = "builtin"
        bad.model = dir + "/missing"
        XCTAssertThrowsError(try OpenAIBackend(config: bad, cache: nil))
    }
}
