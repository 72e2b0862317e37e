import Foundation
import LoomTestServer
import XCTest

@testable import LoomCore
@testable import LoomGenerate


func chunkRecords(_ n: Int) -> [JSONValue] {
    (0..<n).map { i in
        [
            "id": .string("doc\(i)#0"), "doc_id": .string("doc\(i)"),
            "text": .string("Compound \(i) lowers blood pressure in hypertensive rats. The effect lasts \(i % 24) hours."),
        ]
    }
}

/// The fake model: one pair whose answer is the first sentence of the text in the prompt.
let fakeModel: @Sendable (String) -> String = { prompt in
    let text = prompt.components(separatedBy: "Text:\n").last ?? ""
    let first = text.components(separatedBy: ". ").first ?? text
    return "```json\n[{\"question\": \"What does the compound do?\", \"answer\": \"\(first).\"},]\n```"
}

final class QAParserTests: XCTestCase {
    func testRepairsOnlyWhatIsUnambiguous() {
        let pair = [QAPair(question: "Q?", answer: "A.")]
        XCTAssertEqual(QAParser.parse(#"[{"question": "Q?", "answer": "A."}]"#), pair)
        XCTAssertEqual(QAParser.parse("```json\n[{\"question\": \"Q?\", \"answer\": \"A.\"},]\n```"), pair)
        XCTAssertEqual(QAParser.parse(#"Here you go: {"pairs": [{"question": "Q?", "answer": "A."}]} Enjoy."#), pair)
        XCTAssertEqual(QAParser.parse(#"{"question": "Q?", "answer": "A."}"#), pair)
        XCTAssertNil(QAParser.parse("I cannot help with that."))
        XCTAssertNil(QAParser.parse(#"[{"question": "Q?", "answer": "A."#))  // truncated
        XCTAssertNil(QAParser.parse(#"[{"q": "Q?", "a": "A."}]"#))
        // A raw newline inside a string (what llama.cpp's schema grammar let Gemma write) means "\n"; with a trailing
        // comma too. The answer keeps its line break (trimmed at the ends only).
        XCTAssertEqual(
            QAParser.parse("{ \"pairs\": [ { \"question\": \"Q?\", \"answer\": \"A.\nB.\r\t\" }, ] }"),
            [QAPair(question: "Q?", answer: "A.\nB.")])
        XCTAssertEqual(QAParser.escapingControlCharactersInStrings("{\"a\\\"\n\":\n1}"), "{\"a\\\"\\n\":\n1}")
    }

    func testSupportIsContentWordOverlap() {
        let text = "Metformin lowers hepatic glucose output in adults with diabetes."
        XCTAssertTrue(QAParser.supported("It lowers glucose output.", by: text))
        XCTAssertFalse(QAParser.supported("Paris is the capital of France.", by: text))
    }
}

final class QABackendTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-qa-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func makeInput(_ n: Int) throws -> String {
        _ = try StageRunner.run(RecordsStage(records: chunkRecords(n)), directory: dir + "/in", options: RunOptions(quiet: true))
        return dir + "/in"
    }

    func config(_ server: ChatTestServer) -> QAConfig {
        var c = QAConfig()
        c.openai.baseURL = server.baseURL
        c.openai.model = "fake"
        c.openai.concurrency = 16
        c.openai.timeout = 0.5
        c.openai.retries = 12
        c.openai.backoff = 0.01
        c.questions = 1
        c.cache = dir + "/cache.sqlite"
        return c
    }

    /// 1,000 requests with 20% injected faults: every chunk gets its answer; a second run sends nothing.
    func testFaultsLoseNoAnswerAndTheCacheAnswersTheRerun() throws {
        let server = ChatTestServer(faultRate: Double(ProcessInfo.processInfo.environment["QA_FAULTS"] ?? "0.2")!, seed: 7, answer: fakeModel)
        server.slowDelay = 0.6  // just past the client's 0.5 s timeout
        if let k = ProcessInfo.processInfo.environment["QA_FAULT_KINDS"] {
            server.kinds = k.split(separator: ",").compactMap { ChatTestServer.Fault(rawValue: String($0)) }
        }
        try server.start()
        defer { server.stop() }
        let input = try makeInput(1000)
        let stage = try QAStage(config: config(server), input: input, templates: templatesDirectory)
        let m = try StageRunner.run(stage, directory: dir + "/qa", options: RunOptions(quiet: true)).manifest
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(m.counts["pairs"]?.intValue, 1000)
        XCTAssertEqual(m.counts["failed_chunks"]?.intValue, 0)
        XCTAssertEqual(m.rejects, 0)
        XCTAssertEqual(server.answered.count, 1000)
        let injected = server.faults.values.reduce(0, +)
        XCTAssertGreaterThan(injected, 120, "\(server.faults)")
        XCTAssertEqual(Set(server.faults.keys).count, ChatTestServer.Fault.allCases.count, "\(server.faults)")
        let first = try String(contentsOfFile: dir + "/qa/part-00000.jsonl", encoding: .utf8)
        // Every answer is the chunk's own first sentence, in input order.
        let lines = first.split(separator: "\n")
        XCTAssertEqual(lines.count, 1000)
        XCTAssertTrue(lines[5].contains("Compound 5 lowers blood pressure in hypertensive rats."))
        // Re-run from scratch: all from the cache, not one request.
        let before = server.requests
        _ = try StageRunner.run(stage, directory: dir + "/qa", options: RunOptions(force: true, quiet: true))
        XCTAssertEqual(server.requests, before)
        XCTAssertEqual(try String(contentsOfFile: dir + "/qa/part-00000.jsonl", encoding: .utf8), first)
    }

    func testUnparseableRepliesAreRejectedWithTheRawText() throws {
        let server = ChatTestServer(answer: { prompt in
            prompt.contains("Compound 1 ") ? "Sorry, I cannot do that." : "[{\"question\": \"Q?\", \"answer\": \"The capital of France is Paris.\"}]"
        })
        try server.start()
        defer { server.stop() }
        let input = try makeInput(3)
        var c = config(server)
        c.noCache = true
        let m = try StageRunner.run(
            QAStage(config: c, input: input, templates: templatesDirectory), directory: dir + "/qa",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["unparseable_replies"]?.intValue, 1)
        XCTAssertEqual(m.counts["unsupported_answers"]?.intValue, 2)
        let rejects = try String(contentsOfFile: dir + "/qa/rejects.jsonl", encoding: .utf8)
        XCTAssertTrue(rejects.contains("\"raw\":\"Sorry, I cannot do that.\""), rejects)
        XCTAssertTrue(rejects.contains("\"id\":\"doc1#0\""), rejects)
    }

    func testServerDownIsRejectedPerChunkAndTheRunEnds() throws {
        var c = QAConfig()
        c.openai.baseURL = "http://127.0.0.1:9/v1"  // discard port: connection refused
        c.openai.retries = 1
        c.openai.backoff = 0.01
        c.noCache = true
        let input = try makeInput(2)
        let m = try StageRunner.run(
            QAStage(config: c, input: input, templates: templatesDirectory), directory: dir + "/qa",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["failed_chunks"]?.intValue, 2)
        XCTAssertEqual(m.rejects, 2)
    }

    func testAnswerInTheWrongLanguageIsRejected() throws {
        let server = ChatTestServer(answer: { _ in "[{\"question\": \"What is covered?\", \"answer\": \"Fire damage is covered.\"}]" })
        try server.start()
        defer { server.stop() }
        let records: [JSONValue] = [["id": "k1", "text": "화재로 인한 손해는 보상합니다. 다만 고의로 인한 손해는 제외합니다."]]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        var c = config(server)
        c.noCache = true
        let m = try StageRunner.run(
            QAStage(config: c, input: dir + "/in", templates: templatesDirectory), directory: dir + "/qa",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["wrong_language"]?.intValue, 1)
        XCTAssertEqual(m.counts["pairs"]?.intValue, 0)
    }

    /// The happy path against a real OpenAI-compatible server (e.g. llama.cpp's, see ../shared/LLM-SERVER.md) when
    /// LOOM_TEST_OPENAI_URL names one: structure only (a small base model's content is not checked).
    func testRealServerWhenOneIsReachable() throws {
        guard let url = ProcessInfo.processInfo.environment["LOOM_TEST_OPENAI_URL"] else {
            throw XCTSkip("LOOM_TEST_OPENAI_URL not set: real-server test skipped")
        }
        let input = try makeInput(2)
        var c = QAConfig()
        c.openai.baseURL = url
        c.openai.model = ProcessInfo.processInfo.environment["LOOM_TEST_OPENAI_MODEL"] ?? "default"
        c.openai.temperature = 0
        c.openai.seed = 1
        c.openai.maxTokens = 200
        c.openai.timeout = 120
        c.cache = dir + "/cache.sqlite"
        let m = try StageRunner.run(
            QAStage(config: c, input: input, templates: templatesDirectory), directory: dir + "/qa",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(m.counts["failed_chunks"]?.intValue, 0)
        // Every chunk either gave pairs or an unparseable reply kept in rejects.jsonl with its raw text.
        XCTAssertEqual((m.counts["pairs"]?.intValue ?? 0) > 0 || (m.counts["unparseable_replies"]?.intValue ?? 0) > 0, true)
    }
}

final class TemplateFileTests: XCTestCase {
    /// A template file's final line end is not part of the template (as in Jinja); other newlines are.
    func testTheFilesLastNewlineIsNotRendered() throws {
        let dir = NSTemporaryDirectory() + "loom-template-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, text, want) in [
            ("lf", "{{q}}\n", "Why?"), ("crlf", "{{q}}\r\n", "Why?"), ("two", "Q: {{q}}\n\n", "Q: Why?\n"),
            ("none", "{{q}}", "Why?"), ("inner", "Text:\n{{q}}\n", "Text:\nWhy?"),
        ] {
            try text.write(toFile: dir + "/\(name).mustache", atomically: true, encoding: .utf8)
            let t = try TemplateDirectory.load(dir, "\(name).mustache")
            XCTAssertEqual(t.template.render(["q": "Why?"]), want, name)
        }
    }

    /// Prompts are plain text: Mustache's default HTML escaping would send `&quot;` and `&lt;` to the model (and, in
    /// reading-comprehension tasks, into training text). Every template loader renders `{{x}}` verbatim.
    func testTemplatesDoNotEscapeHTML() throws {
        let raw = #"IC50 < 5 "nM" & Tom's > 3"#
        let templates = try TemplateDirectory.locate()
        let user = try TemplateDirectory.load(templates, "qa/user.mustache").template
        XCTAssertTrue(user.render(["text": raw, "count": "1"]).contains(raw))
        let equal = try TemplateDirectory.load(templates, "evol/equal.mustache").template
        XCTAssertTrue(equal.render(["first": raw, "second": "x"]).contains(raw))
        let rc = try RCTemplates(directory: templates, language: "en")
        var pick = SplitMix64(seed: 1)
        for task in RCTask.allCases {
            let text = rc.render(task.templateKey, ["text": raw, "sentence": raw, "question": raw, "word": raw], pick: &pick).text
            XCTAssertFalse(text.contains("&quot;") || text.contains("&lt;") || text.contains("&amp;"), "\(task): \(text)")
        }
    }
}

final class QAStructuredTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-qas-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The chunk a prompt ends with (chat: after "Text:\n"; few-shot: between the last "Text:\n" and "\n\nJSON:").
    static func chunk(of prompt: String) -> String {
        let tail = prompt.components(separatedBy: "Text:\n").last ?? ""
        return tail.components(separatedBy: "\n\nJSON:").first ?? tail
    }

    /// A schema-shaped reply: {"pairs": [one pair whose answer is the chunk's first sentence]}.
    static let objectModel: @Sendable (String) -> String = { prompt in
        let first = chunk(of: prompt).components(separatedBy: ". ").first ?? ""
        let pair: JSONValue = ["question": "What does the compound do?", "answer": .string(first + ".")]
        let reply: JSONValue = ["pairs": .array([pair])]
        return reply.jsonString
    }

    func config(_ server: ChatTestServer, questions: Int = 2) -> QAConfig {
        var c = QAConfig()
        c.openai.baseURL = server.baseURL
        c.openai.model = "fake"
        c.openai.concurrency = 4
        c.openai.retries = 1
        c.openai.backoff = 0.01
        c.questions = questions
        c.noCache = true
        return c
    }

    /// Input as a plain JSON Lines file, not a stage directory (what other tools write).
    func writeJSONL(_ n: Int) throws -> String {
        let path = dir + "/chunks.jsonl"
        try (chunkRecords(n).map(\.jsonString).joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func run(_ c: QAConfig, _ input: String, _ out: String = "qa") throws -> Manifest {
        try StageRunner.run(QAStage(config: c, input: input, templates: templatesDirectory), directory: dir + "/" + out, options: RunOptions(quiet: true))
            .manifest
    }

    /// The reply's schema reaches the server in the form chosen: OpenAI's json_schema, llama-cpp-python's json_object
    /// + schema, or not at all; its item count is the number of questions asked for.
    func testTheSchemaIsSentInTheChosenForm() throws {
        let server = ChatTestServer(answer: Self.objectModel)
        try server.start()
        defer { server.stop() }
        let input = try writeJSONL(3)
        for mode in ["json_schema", "json_object", "off"] {
            var c = config(server, questions: 2)
            c.openai.structured = mode
            let before = server.received.count
            let m = try run(c, input, "qa-" + mode)
            XCTAssertEqual(m.counts["pairs"]?.intValue, 3, mode)
            let bodies = server.received[before...].map(\.body)
            XCTAssertEqual(bodies.count, 3, mode)
            for b in bodies {
                let rf = b["response_format"]
                switch mode {
                case "json_schema":
                    XCTAssertEqual(rf?["type"]?.stringValue, "json_schema")
                    XCTAssertEqual(rf?["json_schema"]?["name"]?.stringValue, "qa_pairs")
                    XCTAssertEqual(rf?["json_schema"]?["schema"]?["properties"]?["pairs"]?["maxItems"]?.intValue, 2)
                    XCTAssertEqual(
                        rf?["json_schema"]?["schema"]?["properties"]?["pairs"]?["items"]?["properties"]?["answer"]?["maxLength"]?.intValue, 240)
                case "json_object":
                    XCTAssertEqual(rf?["type"]?.stringValue, "json_object")
                    XCTAssertEqual(rf?["schema"]?["properties"]?["pairs"]?["maxItems"]?.intValue, 2)
                default:
                    XCTAssertNil(rf, "structured: off sends no response_format")
                }
            }
            XCTAssertEqual(server.received[before].path, "/v1/chat/completions")
        }
        // The manifest's config carries the schema only when one is sent.
        let withSchema = try QAStage(config: config(server), input: input, templates: templatesDirectory).config
        XCTAssertNotNil(withSchema["schema"])
        var off = config(server)
        off.openai.structured = "off"
        XCTAssertNil(try QAStage(config: off, input: input, templates: templatesDirectory).config["schema"])
    }

    /// Base models: /v1/completions with a few-shot prompt (worked examples, then the chunk) and stop strings; the
    /// reply is the JSON that follows "JSON:".
    func testBaseModelsGetAFewShotPromptOnTheCompletionsEndpoint() throws {
        let server = ChatTestServer(answer: { " " + Self.objectModel($0) + "\n###\n" })
        try server.start()
        defer { server.stop() }
        let input = try writeJSONL(2)
        var c = config(server, questions: 2)
        c.openai.endpoint = "completions"
        c.openai.structured = "off"
        let m = try run(c, input)
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(m.counts["pairs"]?.intValue, 2)
        let r = server.received
        XCTAssertEqual(r.count, 2)
        XCTAssertEqual(r[0].path, "/v1/completions")
        let prompt = try XCTUnwrap(r.compactMap { $0.body["prompt"]?.stringValue }.first { $0.contains("Compound 0 ") })
        XCTAssertNil(r[0].body["messages"])
        // Three worked examples, each with two pairs (questions: 2) as the schema's JSON, before the chunk.
        XCTAssertEqual(prompt.components(separatedBy: "\n###\n").count - 1, 3, prompt)
        XCTAssertTrue(prompt.contains(#"JSON: {"pairs":[{"question":"How much capacity did cells stored at 100% charge and 40 °C retain after two years?""#), prompt)
        XCTAssertFalse(prompt.contains("Which cells retained 96%"), "a third pair is shown only when three are asked for")
        XCTAssertTrue(prompt.hasSuffix("Text:\nCompound 0 lowers blood pressure in hypertensive rats. The effect lasts 0 hours.\n\nJSON:"), prompt)
        XCTAssertEqual(r[0].body["stop"]?.arrayValue?.compactMap(\.stringValue), ["\n###", "\nText:"])
        let out = try String(contentsOfFile: dir + "/qa/part-00000.jsonl", encoding: .utf8)
        XCTAssertTrue(out.contains("qa/fewshot"), out)
    }

    /// Every record carries meta.scores (grounding, longest_span) and meta.language; min_grounding drops answers not taken from the chunk.
    func testGroundingIsMeasuredAndMinGroundingRejects() throws {
        let server = ChatTestServer(answer: { prompt in
            let text = Self.chunk(of: prompt)
            let answer = text.contains("Compound 1 ") ? "Paris remains the capital city of France." : text.components(separatedBy: ". ")[0]
            let pair: JSONValue = ["question": "What happens?", "answer": .string(answer)]
            let again: JSONValue = ["question": "What Happens?", "answer": "Something else."]
            let reply: JSONValue = ["pairs": .array([pair, again])]
            return reply.jsonString
        })
        try server.start()
        defer { server.stop() }
        let input = try writeJSONL(3)
        var c = config(server, questions: 2)
        c.minGrounding = 0.5
        let m = try run(c, input)
        XCTAssertEqual(m.counts["pairs"]?.intValue, 2)
        XCTAssertEqual(m.counts["ungrounded_rejected"]?.intValue, 1)
        XCTAssertEqual(m.counts["grounded_answers"]?.intValue, 2)
        XCTAssertEqual(m.counts["duplicate_questions"]?.intValue, 3, "the repeated question of each reply is dropped")
        let rejects = try String(contentsOfFile: dir + "/qa/rejects.jsonl", encoding: .utf8)
        XCTAssertTrue(rejects.contains("below min_grounding 0.5") && rejects.contains("Paris remains"), rejects)
        let first = try JSONValue.parse(
            String(try String(contentsOfFile: dir + "/qa/part-00000.jsonl", encoding: .utf8).split(separator: "\n")[0]))
        XCTAssertEqual(first["meta"]?["scores"]?["grounding"]?.doubleValue, 1)
        XCTAssertEqual(first["meta"]?["scores"]?["longest_span"]?.intValue, 8)
        XCTAssertEqual(first["meta"]?["language"]?.stringValue, "en")
        c.minGrounding = 1.5
        XCTAssertThrowsError(try QAStage(config: c, input: input, templates: templatesDirectory))
    }

    func testGroundingScoresContentWordsAndTheLongestSpan() {
        let chunk = "Metformin lowered fasting glucose by 20% in patients with type 2 diabetes over twelve weeks."
        let copied = Grounding.measure(answer: "It lowered fasting glucose by 20%.", chunk: chunk)
        XCTAssertEqual(copied.score, 1)
        XCTAssertEqual(copied.longestSpan, 5)  // lowered fasting glucose by 20
        let invented = Grounding.measure(answer: "Insulin resistance increased sharply.", chunk: chunk)
        XCTAssertEqual(invented.score, 0)
        let half = Grounding.measure(answer: "Metformin causes nausea in diabetes.", chunk: chunk)
        // content words: metformin, causes, nausea, diabetes -> 2 of 4 in the chunk
        XCTAssertEqual(half.score, 0.5)
        XCTAssertEqual(Grounding.measure(answer: "Yes.", chunk: chunk).score, 1, "no content word: nothing to check")
        // Korean particles attach to words: 보험료를 is grounded in 보험료는.
        XCTAssertEqual(Grounding.measure(answer: "보험료를 납입합니다", chunk: "보험료는 매월 납입합니다.").score, 1)
    }
}
