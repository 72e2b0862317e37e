import Foundation
import LoomTestServer
import XCTest

@testable import LoomCore
@testable import LoomGenerate

final class EvolRuleTests: XCTestCase {
    func testRule1NoInformationGain() {
        XCTAssertTrue(EvolRules.noGainByTokens(parent: "Explain how insulin works.", child: "Explain how insulin works"))
        XCTAssertTrue(EvolRules.noGainByTokens(parent: "Explain how insulin works in the liver.", child: "How does insulin work in the liver?") == false)
        XCTAssertFalse(EvolRules.noGainByTokens(parent: "Explain how insulin works.", child: "Explain how insulin works in muscle cells."))
        XCTAssertTrue(EvolRules.judgedEqual("Equal"))
        XCTAssertTrue(EvolRules.judgedEqual(" equal."))
        XCTAssertFalse(EvolRules.judgedEqual("Not Equal"))
        XCTAssertFalse(EvolRules.judgedEqual("not equal - the second adds a constraint"))
    }

    func testRule2Sorry() {
        XCTAssertTrue(EvolRules.isSorry("Sorry, I cannot answer that."))
        XCTAssertFalse(EvolRules.isSorry("Insulin binds its receptor."))
        let long = "I am sorry to say this is complicated. " + String(repeating: "The receptor signals through kinases. ", count: 20)
        XCTAssertFalse(EvolRules.isSorry(long))  // 80 words or more
    }

    func testRule3OnlyPunctuationAndStopWords() {
        XCTAssertTrue(EvolRules.isEmpty("..."))
        XCTAssertTrue(EvolRules.isEmpty("It is what it is, so!"))
        XCTAssertTrue(EvolRules.isEmpty(""))
        XCTAssertFalse(EvolRules.isEmpty("Glucose."))
    }

    func testRule4CopiedPromptWords() {
        XCTAssertTrue(EvolRules.copiesPromptWords("#Rewritten Prompt#: explain insulin"))
        XCTAssertTrue(EvolRules.copiesPromptWords("Rewrite the given prompt to ask about insulin"))
        XCTAssertTrue(EvolRules.copiesPromptWords("As the rewritten prompt says, explain insulin"))
        XCTAssertFalse(EvolRules.copiesPromptWords("Explain insulin signalling in three steps."))
    }
}

final class EvolveStageTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-evol-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A fake model: rewrites add a clause (one in five copies the prompt's words), answers are sentences (the
    /// instruction about "kidney" gets a sorry), the judge says Not Equal.
    static let model: @Sendable (String) -> String = { prompt in
        if prompt.hasPrefix("Here are two instructions") { return "Not Equal" }
        if let r = prompt.range(of: "#The Given Prompt#:\n") {
            let given = prompt[r.upperBound...].components(separatedBy: "\n#The").first ?? ""
            if given.contains("copy") { return "#The Rewritten Prompt#: \(given)" }
            return given + " Answer in three numbered steps and cite one study."
        }
        if prompt.contains("kidney") { return "Sorry, I cannot help." }
        return "Step 1: insulin binds its receptor. Step 2: signalling follows. Step 3: glucose uptake rises."
    }

    func testRoundsLineageAndElimination() throws {
        let server = ChatTestServer(answer: Self.model)
        try server.start()
        defer { server.stop() }
        let records: [JSONValue] = ["How does insulin act on muscle?", "What does the kidney filter?", "Please copy this text."]
            .enumerated().map { i, q in
                ["id": .string("s\(i)"), "messages": [["role": "user", "content": .string(q)], ["role": "assistant", "content": "x"]]]
            }
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        var c = EvolveConfig()
        c.qa.openai.baseURL = server.baseURL
        c.qa.openai.retries = 1
        c.qa.cache = dir + "/cache.sqlite"
        c.rounds = 2
        let m = try StageRunner.run(
            EvolveStage(config: c, input: dir + "/in", templates: templatesDirectory), directory: dir + "/evol",
            options: RunOptions(quiet: true)
        ).manifest
        // s0 evolves twice; s1's answers are "sorry" (eliminated both rounds, parent back in the pool); s2 copies.
        XCTAssertEqual(m.counts["evolved"]?.intValue, 2)
        XCTAssertEqual(m.counts["eliminated_sorry"]?.intValue, 2)
        XCTAssertEqual(m.counts["eliminated_copied_prompt_words"]?.intValue, 2)
        let out = try String(contentsOfFile: dir + "/evol/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(out.map { $0["meta"]?["evol"]?["round"]?.intValue }, [1, 2])
        XCTAssertEqual(out[1]["meta"]?["evol"]?["parent"]?.stringValue, "s0#evol1")
        XCTAssertEqual(out[1]["meta"]?["evol"]?["root"]?.stringValue, "s0")
        let second = out[1]["messages"]?.arrayValue?.first?["content"]?.stringValue ?? ""
        XCTAssertTrue(second.hasPrefix("How does insulin act on muscle? Answer in three numbered steps"), second)
    }

    /// Base models (`endpoint: completions`): the rewrite and the answer are few-shot prompts on /v1/completions
    /// (evol/fewshot.yaml's worked examples, then the instruction) cut at stop strings; the judge too, with the schema.
    func testBaseModelsGetFewShotPromptsOnTheCompletionsEndpoint() throws {
        let server = ChatTestServer(answer: { prompt in
            if prompt.hasPrefix("Here are two instructions") { return #"{"verdict":"Not Equal"}"# }
            if prompt.hasPrefix("Instructions for an AI assistant") {
                let given = prompt.components(separatedBy: "\nInstruction: ").last?.components(separatedBy: "\n").first ?? ""
                return " " + given + " Answer in three numbered steps.\n###\n"
            }
            return " Step 1: insulin binds its receptor. Step 2: signalling follows. Step 3: glucose uptake rises.\n###"
        })
        try server.start()
        defer { server.stop() }
        let records: [JSONValue] = [["id": "s0", "messages": [["role": "user", "content": "How does insulin act on muscle?"]]]]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        var c = EvolveConfig()
        c.qa.openai.baseURL = server.baseURL
        c.qa.openai.retries = 1
        c.qa.openai.endpoint = "completions"
        c.qa.noCache = true
        let m = try StageRunner.run(
            EvolveStage(config: c, input: dir + "/in", templates: templatesDirectory), directory: dir + "/evol",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["evolved"]?.intValue, 1, "\(m.counts)")
        let r = server.received
        XCTAssertEqual(r.count, 3)
        XCTAssertEqual(Set(r.map(\.path)), ["/v1/completions"])
        let rewrite = try XCTUnwrap(r[0].body["prompt"]?.stringValue)
        XCTAssertTrue(rewrite.contains("Rewritten: What does the kidney filter out of the blood? Name three substances"), rewrite)
        XCTAssertTrue(rewrite.hasSuffix("Instruction: How does insulin act on muscle?\nMethod: " + rewrite.components(separatedBy: "\nMethod: ").last!), rewrite)
        XCTAssertTrue(rewrite.hasSuffix("\nRewritten:"), rewrite)
        XCTAssertEqual(r[0].body["stop"]?.arrayValue?.first?.stringValue, "\n###")
        let answer = try XCTUnwrap(r[1].body["prompt"]?.stringValue)
        XCTAssertTrue(answer.hasSuffix("Question: How does insulin act on muscle? Answer in three numbered steps.\nAnswer:"), answer)
        XCTAssertEqual(r[2].body["response_format"]?["type"]?.stringValue, "json_schema")
        let out = try JSONValue.parse(String(try String(contentsOfFile: dir + "/evol/part-00000.jsonl", encoding: .utf8).split(separator: "\n")[0]))
        XCTAssertEqual(out["messages"]?.arrayValue?[0]["content"]?.stringValue, "How does insulin act on muscle? Answer in three numbered steps.")
        XCTAssertEqual(out["meta"]?["provenance"]?["templates"], ["evol/fewshot-rewrite", "evol/fewshot-answer"])
        XCTAssertEqual(out["messages"]?.arrayValue?[1]["content"]?.stringValue, "Step 1: insulin binds its receptor. Step 2: signalling follows. Step 3: glucose uptake rises.")
    }

    /// The judge's request carries evol/verdict.schema.json as response_format; a JSON verdict is read by its field.
    func testTheJudgeIsHeldToTheVerdictSchema() throws {
        let server = ChatTestServer(answer: { prompt in
            prompt.hasPrefix("Here are two instructions") ? #"{"verdict":"Equal"}"# : Self.model(prompt)
        })
        try server.start()
        defer { server.stop() }
        let records: [JSONValue] = [["id": "s0", "messages": [["role": "user", "content": "How does insulin act on muscle?"]]]]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        var c = EvolveConfig()
        c.qa.openai.baseURL = server.baseURL
        c.qa.openai.retries = 1
        c.qa.noCache = true
        let m = try StageRunner.run(
            EvolveStage(config: c, input: dir + "/in", templates: templatesDirectory), directory: dir + "/evol",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["eliminated_no_information_gain"]?.intValue, 1, "\(m.counts)")
        XCTAssertEqual(m.counts["evolved"]?.intValue, 0)
        let judge = try XCTUnwrap(server.received.first { $0.body["messages"]?.jsonString.contains("Here are two instructions") == true })
        let rf = judge.body["response_format"]
        XCTAssertEqual(rf?["type"]?.stringValue, "json_schema")
        XCTAssertEqual(rf?["json_schema"]?["schema"]?["properties"]?["verdict"]?["enum"], ["Equal", "Not Equal"])
        // The rewrite and the answer are free text: no schema.
        XCTAssertEqual(server.received.filter { $0.body["response_format"] != nil }.count, 1)
        XCTAssertTrue(EvolRules.judgedEqual(#" {"verdict": "Equal"}"#))
        XCTAssertFalse(EvolRules.judgedEqual(#"{"verdict":"Not Equal"}"#))
    }
}

final class PreferenceStageTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-pref-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func sample(_ id: String, _ turns: [(String, String, String)]) -> JSONValue {
        var messages: [JSONValue] = []
        for (q, a, _) in turns { messages += [["role": "user", "content": .string(q)], ["role": "assistant", "content": .string(a)]] }
        return [
            "id": .string(id), "messages": .array(messages),
            "meta": ["tasks": .array(turns.map { ["type": .string($0.2)] }), "language": id == "c" ? "ko" : "en"],
        ]
    }

    func testDistractorsAndSampledAnswers() throws {
        let records = [
            sample("a", [("Text A\n\nDoes it follow?", "Yes", "nli"), ("Complete: the cell", "divides quickly.", "completion")]),
            sample("b", [("Text B\n\nDoes it follow?", "No", "nli"), ("Complete: the drug", "lowers pressure.", "completion")]),
            sample("c", [("Text C\n\nDoes it follow?", "Yes", "nli")]),
        ]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        let m = try StageRunner.run(
            PreferenceStage(config: PreferenceConfig(), input: dir + "/in", templates: templatesDirectory),
            directory: dir + "/pref", options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["pairs"]?.intValue, 5)
        let out = try String(contentsOfFile: dir + "/pref/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONValue.parse(String($0)) }
        for r in out {
            let chosen = r["chosen"]?.arrayValue?.first?["content"]?.stringValue
            let rejected = r["rejected"]?.arrayValue?.first?["content"]?.stringValue
            XCTAssertNotEqual(chosen, rejected)
            XCTAssertEqual(r["prompt"]?.arrayValue?.last?["role"]?.stringValue, "user")
        }
        XCTAssertEqual(out[0]["rejected"]?.arrayValue?.first?["content"]?.stringValue, "No")  // the other label
        // Each pair declares its conversation's language.
        XCTAssertEqual(out.map { $0["meta"]?["language"]?.stringValue }, ["en", "en", "en", "en", "ko"])
        // And its scores: chosen "Yes" (3 characters) against rejected "No" (2): ratio 1.5, no token in common.
        XCTAssertEqual(out[0]["meta"]?["scores"]?["length_ratio"]?.doubleValue, 1.5)
        XCTAssertEqual(out[0]["meta"]?["scores"]?["similarity"]?.doubleValue, 0)
        for r in out { XCTAssertNotNil(r["meta"]?["scores"]?["similarity"]?.doubleValue, "\(r)") }
        let share = try XCTUnwrap(m.counts["chosen_longer_share"]?.doubleValue)
        let longer = out.filter { ($0["meta"]?["scores"]?["length_ratio"]?.doubleValue ?? 0) > 1 }.count
        XCTAssertEqual(share, Double(longer) / Double(out.count), accuracy: 1e-4)
        // Sampled: the model sees the question alone; an answer equal to the reference is dropped.
        let server = ChatTestServer(answer: { $0.contains("the cell") ? "divides quickly." : "I do not know." })
        try server.start()
        defer { server.stop() }
        var c = PreferenceConfig()
        c.rejected = "sample"
        c.qa.openai.baseURL = server.baseURL
        c.qa.noCache = true
        let s = try StageRunner.run(
            PreferenceStage(config: c, input: dir + "/in", templates: templatesDirectory), directory: dir + "/sampled",
            options: RunOptions(quiet: true)
        ).manifest
        XCTAssertEqual(s.counts["pairs"]?.intValue, 4)
        XCTAssertEqual(s.counts["dropped_equal"]?.intValue, 1)
        XCTAssertTrue(server.answered.keys.allSatisfy { !$0.contains("Text A") }, "\(server.answered.keys)")
    }
}

final class PairScoresTests: XCTestCase {
    /// Length ratio in characters and the weighted Jaccard of token bags, on pairs whose values are counted by hand.
    func testLengthRatioAndSimilarity() {
        // Tokens: "assign y = a & b ;" (7) against "assign y = a | b" (6): 5 shared, union 8.
        let s = PairScores.measure(chosen: "assign y = a & b;", rejected: "assign y = a | b")
        XCTAssertEqual(s["length_ratio"]?.doubleValue, 1.0625)
        XCTAssertEqual(s["similarity"]?.doubleValue, 0.625)
        XCTAssertEqual(PairScores.similarity("The cell divides.", "The cell divides."), 1)
        // Counts matter: "a a b" against "a b" shares 2 of 3.
        XCTAssertEqual(PairScores.similarity("a a b", "a b"), 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(PairScores.measure(chosen: "보험료", rejected: "")["length_ratio"]?.doubleValue, 3)
        XCTAssertEqual(PairScores.similarity("", ""), 1)
    }
}
