// `loom generate evolve`: Evol-Instruct (WizardLM, arXiv 2304.12244). Each round rewrites every instruction in the
// pool with one operation — five in depth (add constraints, deepen, concretise, increase reasoning steps,
// complicate the input) or one in breadth (a new instruction in the same domain) — answers it, and eliminates the
// failures by the paper's four rules. A failed instruction's parent goes back into the pool for the next round.

import Foundation
import LoomCore
import Mustache

public enum EvolOperation: String, CaseIterable, Sendable {
    case addConstraints = "add_constraints"
    case deepen
    case concretize
    case increaseReasoning = "increase_reasoning"
    case complicateInput = "complicate_input"
    case breadth = "in_breadth"
}

/// Why an evolved instruction was eliminated (WizardLM's four rules).
public enum Elimination: String, Sendable, CaseIterable {
    /// 1. No information gain over the parent.
    case noInformationGain = "no_information_gain"
    /// 2. The response says "sorry" and is shorter than 80 words.
    case sorry
    /// 3. The response is only punctuation and stop words.
    case emptyResponse = "empty_response"
    /// 4. The instruction copies words of the evolving prompt.
    case copiedPromptWords = "copied_prompt_words"
}

public enum EvolRules {
    static let stopwords: Set<String> = [
        "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "as", "is", "are",
        "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "i", "you", "he", "she", "we",
        "they", "me", "him", "her", "us", "them", "my", "your", "our", "their", "so", "not", "no", "yes", "ok", "okay",
        "do", "does", "did", "have", "has", "had", "can", "could", "will", "would", "should", "may", "might", "just",
        "very", "there", "here", "what", "which", "who", "when", "where", "why", "how", "all", "any", "some",
    ]

    static func tokens(_ s: String) -> [String] {
        s.lowercased().split(whereSeparator: { !($0.isLetter || $0.isNumber) }).map(String.init)
    }

    /// Rule 2.
    public static func isSorry(_ response: String) -> Bool {
        response.lowercased().contains("sorry") && tokens(response).count < 80
    }

    /// Rule 3.
    public static func isEmpty(_ response: String) -> Bool {
        tokens(response).allSatisfy { stopwords.contains($0) }
    }

    /// Rule 4.
    public static func copiesPromptWords(_ instruction: String) -> Bool {
        let l = instruction.lowercased()
        return ["#given prompt#", "#rewritten prompt#", "#the given prompt#", "#the rewritten prompt#",
                "#created prompt#", "#the created prompt#", "given prompt", "rewritten prompt", "created prompt"]
            .contains { l.contains($0) }
    }

    /// Rule 1 without a model: the evolved instruction adds no word the parent does not have (or is the parent).
    public static func noGainByTokens(parent: String, child: String) -> Bool {
        let p = Set(tokens(parent).filter { !stopwords.contains($0) })
        let c = Set(tokens(child).filter { !stopwords.contains($0) })
        return c.isSubset(of: p)
    }

    /// Rule 1 with a model: the judge's reply to the comparison prompt says "Equal" (not "Not Equal"): the
    /// `verdict` of a reply held to evol/verdict.schema.json, else the words of a free-text reply.
    public static func judgedEqual(_ reply: String) -> Bool {
        if let v = try? JSONValue.parse(reply.trimmingCharacters(in: .whitespacesAndNewlines)),
            let verdict = v["verdict"]?.stringValue
        {
            return verdict.lowercased() == "equal"
        }
        let l = reply.lowercased()
        return l.contains("equal") && !l.contains("not equal")
    }
}

public struct EvolveConfig: Codable, Equatable, Sendable {
    public var qa = QAConfig()
    public var rounds = 1
    public var seed = 1
    /// "backend": the model judges information gain (the paper); "rules": a token-set rule.
    public var judge = "backend"
    public init() {}
}

public struct EvolveStage: Stage {
    public let settings: EvolveConfig
    public let input: String
    let depth: MustacheTemplate
    let breadth: MustacheTemplate
    let equal: MustacheTemplate
    let methods: [String: String]
    let templateHash: String
    /// evol/verdict.schema.json: the judge's reply, {"verdict": "Equal" | "Not Equal"}.
    let verdictSchema: ReplySchema
    /// The few-shot prompts for base models (`endpoint: completions`).
    let fewShot: EvolFewShot?

    public init(config: EvolveConfig, input: String, templates: String? = nil) throws {
        guard config.rounds >= 1 else { throw LoomError("generate evolve: rounds must be at least 1") }
        guard ["backend", "rules"].contains(config.judge) else {
            throw LoomError("generate evolve: judge must be backend or rules")
        }
        settings = config
        self.input = input
        let dir = try templates ?? TemplateDirectory.locate()
        func load(_ name: String) throws -> (MustacheTemplate, String) {
            let t = try TemplateDirectory.load(dir, "evol/\(name).mustache")
            return (t.template, t.text)
        }
        let (d, dt) = try load("in-depth")
        let (b, bt) = try load("in-breadth")
        let (e, et) = try load("equal")
        depth = d
        breadth = b
        equal = e
        let methodsPath = FS.join(dir, "evol/methods.yaml")
        let methodsText = try FS.readText(methodsPath)
        guard let m = try YAMLFile.load(methodsText, file: methodsPath) as? [String: String] else {
            throw LoomError("\(methodsPath): expected operation: method text")
        }
        for op in EvolOperation.allCases where op != .breadth && m[op.rawValue] == nil {
            throw LoomError("\(methodsPath): no method text for '\(op.rawValue)'")
        }
        methods = m
        verdictSchema = try ReplySchema.load(dir, "evol/verdict.schema.json", name: "verdict")
        fewShot = config.qa.openai.endpoint == "completions" ? try EvolFewShot(directory: dir) : nil
        templateHash = SHA256.hex(([dt, bt, et, methodsText] + (fewShot.map { [$0.fingerprint] } ?? [])).joined(separator: "\u{0}"))
    }

    public var name: String { "generate-evolve" }
    public var config: JSONValue {
        var o = JSONObject()
        o.append("backend", .string(settings.qa.openai.backend))
        if settings.qa.openai.backend == "openai" { o.append("base_url", .string(settings.qa.openai.baseURL)) }
        o.append("model", .string(settings.qa.openai.modelIdentity))
        o.append("parameters", settings.qa.openai.parameters)
        o.append("rounds", .int(settings.rounds))
        o.append("seed", .int(settings.seed))
        o.append("judge", .string(settings.judge))
        if settings.judge == "backend" { o.append("structured", .string(settings.qa.openai.structured)) }
        if settings.qa.openai.endpoint != "chat" { o.append("endpoint", .string(settings.qa.openai.endpoint)) }
        o.append("templates", .string(templateHash))
        return .object(o)
    }
    public var inputs: [StageInput] { RecordSource.stageInputs([input]) }

    struct Item: Sendable {
        var id: String
        var root: String
        var instruction: String
        var round: Int
    }

    enum Outcome: Sendable {
        case evolved(Item, operation: EvolOperation, response: String)
        case eliminated(Elimination, operation: EvolOperation)
        case failed(String)
    }

    public func run(_ ctx: StageContext) throws {
        let cache = settings.qa.noCache ? nil : try ResponseCache(path: settings.qa.cachePath)
        let backend = try OpenAIBackend(config: settings.qa.openai, cache: cache)
        var pool: [Item] = []
        try RecordSource.resolve([input]).forEachRecord(
            { r, path, line in
                let id = r["id"]?.stringValue ?? "\(path):\(line)"
                let instruction =
                    r["instruction"]?.stringValue
                    ?? r["messages"]?.arrayValue?.first(where: { $0["role"]?.stringValue == "user" })?["content"]?
                    .stringValue
                guard let instruction, !instruction.isEmpty else {
                    try ctx.reject(Reject(source: path, reason: "record has no instruction or user message", line: line))
                    return
                }
                pool.append(Item(id: id, root: id, instruction: instruction, round: 0))
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.progress.begin(totalBytes: nil, unit: "instructions")
        var eliminated: [String: Int] = [:]
        var written = 0
        var failed = 0
        for round in 1...settings.rounds {
            var next: [Item] = []
            try orderedParallelForEach(
                pool, jobs: settings.qa.openai.concurrency, window: settings.qa.openai.concurrency * 4,
                produce: { item in evolve(item, round: round, backend: backend) },
                consume: { k, outcome in
                    let parent = pool[k]
                    ctx.progress.add(items: 1)
                    switch outcome {
                    case .evolved(let child, let op, let response):
                        next.append(child)
                        var evol = JSONObject()
                        evol.append("round", .int(round))
                        evol.append("operation", .string(op.rawValue))
                        evol.append("parent", .string(parent.id))
                        evol.append("root", .string(parent.root))
                        var meta = JSONObject()
                        let templates =
                            fewShot != nil
                            ? ["evol/fewshot-rewrite", "evol/fewshot-answer"] : [op == .breadth ? "evol/in-breadth" : "evol/in-depth"]
                        meta.append(
                            "provenance",
                            provenance(
                                ids: [parent.root, parent.id], generator: "evol-instruct", templates: templates,
                                backend: settings.qa.openai.backend,
                                model: settings.qa.openai.model, seed: settings.seed))
                        meta.append("evol", .object(evol))
                        var o = JSONObject()
                        o.append("id", .string(child.id))
                        o.append(
                            "messages",
                            [["role": "user", "content": .string(child.instruction)],
                             ["role": "assistant", "content": .string(response)]])
                        o.append("meta", .object(meta))
                        try ctx.output.write(.object(o))
                        written += 1
                    case .eliminated(let why, _):
                        eliminated[why.rawValue, default: 0] += 1
                        next.append(parent)  // back into the pool, as in the paper
                    case .failed(let message):
                        failed += 1
                        next.append(parent)
                        try ctx.reject(Reject(source: input, reason: "round \(round): \(message)", id: parent.id))
                    }
                })
            pool = next
        }
        ctx.setCount("evolved", written)
        ctx.setCount("failed_requests", failed)
        for why in Elimination.allCases { ctx.setCount("eliminated_" + why.rawValue, eliminated[why.rawValue] ?? 0) }
    }

    /// One evolution step for one instruction: rewrite, answer, eliminate.
    func evolve(_ item: Item, round: Int, backend: OpenAIBackend) -> Outcome {
        var rng = SplitMix64(
            seed: recordSeed(settings.seed, item.id) &+ UInt64(round) &* 0x9E37_79B9)
        let op = EvolOperation.allCases[rng.below(EvolOperation.allCases.count)]
        let prompt =
            op == .breadth
            ? breadth.render(["instruction": item.instruction])
            : depth.render(["instruction": item.instruction, "method": methods[op.rawValue] ?? ""])
        do {
            let evolved: String
            let response: String
            if let fewShot {
                evolved = try backend.complete(prompt: fewShot.rewrite(item.instruction, op), stop: EvolFewShot.stop)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                evolved = try backend.complete([(role: "user", content: prompt)]).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if EvolRules.copiesPromptWords(evolved) { return .eliminated(.copiedPromptWords, operation: op) }
            if let fewShot {
                response = try backend.complete(prompt: fewShot.answer(evolved), stop: EvolFewShot.stop)
                    .trimmingCharacters(in: .whitespaces)
            } else {
                response = try backend.complete([(role: "user", content: evolved)])
            }
            if EvolRules.isSorry(response) { return .eliminated(.sorry, operation: op) }
            if EvolRules.isEmpty(response) { return .eliminated(.emptyResponse, operation: op) }
            let same: Bool
            if settings.judge == "rules" {
                same = EvolRules.noGainByTokens(parent: item.instruction, child: evolved)
            } else {
                let question = equal.render(["first": item.instruction, "second": evolved])
                let reply =
                    fewShot == nil
                    ? try backend.complete([(role: "user", content: question)], schema: verdictSchema)
                    : try backend.complete(prompt: question + " ", schema: verdictSchema, stop: ["\n"])
                same = EvolRules.judgedEqual(reply)
            }
            if same { return .eliminated(.noInformationGain, operation: op) }
            let child = Item(id: "\(item.root)#evol\(round)", root: item.root, instruction: evolved, round: round)
            return .evolved(child, operation: op, response: response)
        } catch let e as BackendError {
            return .failed("the model server failed: \(e.message)")
        } catch {
            return .failed("\(error)")
        }
    }
}

/// The few-shot prompts of Evol-Instruct for base models: evol/fewshot.yaml's worked rewrites before the instruction
/// to evolve (evol/fewshot-rewrite.mustache), its worked answers before the evolved one (evol/fewshot-answer.mustache).
struct EvolFewShot: Sendable {
    let rewriteTemplate: MustacheTemplate
    let answerTemplate: MustacheTemplate
    let instruction: String
    let methods: [String: String]
    let rewrites: [[String: String]]
    let answers: [[String: String]]
    let fingerprint: String
    /// Where a base model's rewrite or answer ends: the examples' separator, the next example, a blank line.
    static let stop = ["\n###", "\nInstruction:", "\nQuestion:", "\n\n"]

    init(directory: String) throws {
        let r = try TemplateDirectory.load(directory, "evol/fewshot-rewrite.mustache")
        let a = try TemplateDirectory.load(directory, "evol/fewshot-answer.mustache")
        let path = FS.join(directory, "evol/fewshot.yaml")
        let yaml = try FS.readText(path)
        guard let root = try YAMLFile.load(yaml, file: path) as? [String: Any], let instruction = root["instruction"] as? String,
            let methods = root["methods"] as? [String: String], let rewrites = root["rewrites"] as? [[String: String]],
            let answers = root["answers"] as? [[String: String]], !rewrites.isEmpty
        else {
            throw LoomError("\(path): expected 'instruction', 'methods' (operation: text), 'rewrites' (given, method, rewritten) and 'answers' (question, answer)")
        }
        for op in EvolOperation.allCases where methods[op.rawValue] == nil {
            throw LoomError("\(path): no method text for '\(op.rawValue)'")
        }
        for (i, e) in rewrites.enumerated() {
            guard e["given"] != nil, e["rewritten"] != nil, let m = e["method"], methods[m] != nil else {
                throw LoomError("\(path): rewrite \(i + 1) needs 'given', 'rewritten' and a 'method' named in 'methods'")
            }
        }
        rewriteTemplate = r.template
        answerTemplate = a.template
        self.instruction = instruction
        self.methods = methods
        // The examples' method names become their plain-words text.
        self.rewrites = rewrites.map { e in
            var e = e
            e["method"] = methods[e["method"] ?? ""] ?? ""
            return e
        }
        self.answers = answers
        fingerprint = SHA256.hex(r.text + "\u{0}" + a.text + "\u{0}" + yaml)
    }

    func rewrite(_ given: String, _ op: EvolOperation) -> String {
        rewriteTemplate.render(
            ["instruction": instruction, "rewrites": rewrites, "given": given, "method": methods[op.rawValue] ?? ""] as [String: Any])
    }

    func answer(_ question: String) -> String {
        answerTemplate.render(["answers": answers, "question": question] as [String: Any])
    }
}
