// `loom generate qa`: question/answer pairs written by an LLM (any OpenAI-compatible server, or a Loom model in this
// process) for each chunk. Prompts come from templates/qa/: a system and a user message for chat models, a few-shot
// prompt of worked examples for base models (`endpoint: completions`). The reply is held to the JSON schema in
// qa/schema.json (its item count set to `questions`) through the server's structured output or, in process, by
// constrained decoding; it is parsed strictly (repaired only where unambiguous), each answer's grounding in its
// chunk measured (`meta.scores.grounding`, `min_grounding`), and cached so a re-run asks nothing twice.

import Foundation
import LoomCore
import Mustache

public struct QAConfig: Codable, Equatable, Sendable {
    public var openai = OpenAIConfig()
    /// Questions asked for per chunk.
    public var questions = 3
    public var textField = "text"
    /// The SQLite response cache; nil: `LOOM_CACHE`, else ~/.cache/loom/responses.sqlite.
    public var cache: String?
    public var noCache = false
    /// Answers whose grounding score (Grounding.score) is below this are rejected (0: keep all).
    public var minGrounding = 0.0

    public init() {}

    public static let keys = [
        "method", "backend", "base_url", "model", "api_key_env", "temperature", "top_p", "max_tokens", "seed", "timeout",
        "retries", "backoff", "concurrency", "questions", "text_field", "cache", "no_cache", "templates", "structured",
        "endpoint", "min_grounding",
    ]

    /// The config from a pipeline step's flat options.
    /// `backend` is a kind (`openai`, `builtin`) beside the flat options, or an object holding `kind` and any of
    /// them: `backend: { kind: builtin, model: out/sft }`. `resolve` turns a builtin model path into a directory
    /// (a pipeline resolves it against the pipeline file, or to an earlier step's output for `@train`).
    public static func from(_ o: JSONValue, context: String, resolve: ((String) throws -> String)? = nil) throws -> QAConfig {
        var c = QAConfig()
        var o = o
        if case .object(var top) = o, let b = top["backend"]?.objectValue {
            top["backend"] = b["kind"] ?? "openai"
            for (k, v) in b where k != "kind" {
                guard top[k] == nil else { throw LoomError("\(context): '\(k)' is given both in backend and beside it") }
                top[k] = v
            }
            o = .object(top)
        }
        if let allowed = o.objectValue {
            for k in allowed.keys where !keys.contains(k) {
                throw LoomError("\(context): unknown option '\(k)' (allowed: \(keys.joined(separator: ", ")))")
            }
        }
        if let v = o["backend"] {
            guard let kind = v.stringValue, ["openai", "builtin"].contains(kind) else {
                throw LoomError("\(context): unknown backend '\(v.stringValue ?? v.jsonString)' (available: openai, builtin)")
            }
            c.openai.backend = kind
        }
        if let v = o["base_url"]?.stringValue { c.openai.baseURL = v }
        if let v = o["model"]?.stringValue { c.openai.model = v }
        if let v = o["api_key_env"]?.stringValue { c.openai.apiKeyEnv = v }
        if let v = o["temperature"]?.doubleValue { c.openai.temperature = v }
        if let v = o["top_p"]?.doubleValue { c.openai.topP = v }
        if let v = o["max_tokens"]?.intValue { c.openai.maxTokens = v }
        if let v = o["seed"]?.intValue { c.openai.seed = v }
        if let v = o["timeout"]?.doubleValue { c.openai.timeout = v }
        if let v = o["retries"]?.intValue { c.openai.retries = v }
        if let v = o["backoff"]?.doubleValue { c.openai.backoff = v }
        if let v = o["concurrency"]?.intValue { c.openai.concurrency = v }
        if let v = o["questions"]?.intValue { c.questions = v }
        if let v = o["text_field"]?.stringValue { c.textField = v }
        if let v = o["cache"]?.stringValue { c.cache = v }
        if let v = o["no_cache"]?.boolValue { c.noCache = v }
        if let v = o["structured"]?.stringValue { c.openai.structured = v }
        if let v = o["endpoint"]?.stringValue { c.openai.endpoint = v }
        if let v = o["min_grounding"]?.doubleValue { c.minGrounding = v }
        try c.openai.validate(context)
        if c.openai.backend == "builtin" {
            guard let m = o["model"]?.stringValue else {
                throw LoomError("\(context): the builtin backend needs 'model: DIR' (a model directory, e.g. @train)")
            }
            c.openai.model = try resolve?(m) ?? m
        }
        return c
    }

    public var cachePath: String {
        if let cache { return cache }
        if let env = ProcessInfo.processInfo.environment["LOOM_CACHE"] { return env }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSTemporaryDirectory()
        return home + "/.cache/loom/responses.sqlite"
    }
}

/// One question/answer pair parsed from a model's reply.
public struct QAPair: Equatable, Sendable {
    public var question: String
    public var answer: String
}

public enum QAParser {
    /// The pairs in a reply: a JSON list of {"question", "answer"} objects, or an object holding such a list, or a
    /// single such object. Repaired only where unambiguous: a surrounding code fence, text before the first '[' or
    /// '{' and after the last ']' or '}', raw control characters inside strings, trailing commas. Nil when nothing
    /// usable is there.
    public static func parse(_ reply: String) -> [QAPair]? {
        var s = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        if s.hasPrefix("```") {
            s = String(s.drop(while: { $0 != "\n" }).dropFirst())
            if let end = s.range(of: "```", options: .backwards) { s = String(s[..<end.lowerBound]) }
        }
        guard let first = s.firstIndex(where: { $0 == "[" || $0 == "{" }),
            let last = s.lastIndex(where: { $0 == "]" || $0 == "}" }), first < last
        else { return nil }
        s = String(s[first...last])
        var value = try? JSONValue.parse(s)
        if value == nil {
            // Raw control characters inside strings (llama.cpp's schema grammars let a newline through) can only
            // mean their escapes; a comma before a closing bracket can only be a slip.
            s = escapingControlCharactersInStrings(s)
            value = try? JSONValue.parse(s)
            if value == nil {
                value = try? JSONValue.parse(s.replacingOccurrences(of: #",\s*([\]}])"#, with: "$1", options: .regularExpression))
            }
        }
        guard let v = value else { return nil }
        var items: [JSONValue] = []
        if let a = v.arrayValue {
            items = a
        } else if let o = v.objectValue {
            if o["question"] != nil {
                items = [v]
            } else if let list = o.pairs.first(where: { $0.value.arrayValue != nil })?.value.arrayValue {
                items = list
            }
        }
        let pairs = items.compactMap { item -> QAPair? in
            guard let q = item["question"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines),
                let a = item["answer"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines),
                !q.isEmpty, !a.isEmpty
            else { return nil }
            return QAPair(question: q, answer: a)
        }
        return pairs.isEmpty ? nil : pairs
    }

    /// `text` with U+0000-U+001F inside JSON strings written as escapes (outside strings they are whitespace or
    /// errors either way).
    static func escapingControlCharactersInStrings(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var inString = false
        var escaped = false
        for u in text.unicodeScalars {
            if inString {
                if escaped {
                    escaped = false
                } else if u == "\\" {
                    escaped = true
                } else if u == "\"" {
                    inString = false
                } else if u.value < 0x20 {
                    let e: String
                    switch u {
                    case "\n": e = "\\n"
                    case "\r": e = "\\r"
                    case "\t": e = "\\t"
                    default: e = String(format: "\\u%04x", u.value)
                    }
                    out.append(contentsOf: e.unicodeScalars)
                    continue
                }
            } else if u == "\"" {
                inString = true
            }
            out.append(u)
        }
        return String(out)
    }

    /// Whether the answer shares at least one content word (four letters or more, not a stopword) with the text.
    public static func supported(_ answer: String, by text: String) -> Bool {
        let words = Set(RCMiner.terms(text).map { $0.lowercased() })
        let terms = RCMiner.terms(answer).map { $0.lowercased() }
        if terms.isEmpty { return true }
        return terms.contains { words.contains($0) }
    }
}

public struct QAStage: Stage {
    public let settings: QAConfig
    public let input: String
    public let templateDirectory: String
    let system: MustacheTemplate
    let user: MustacheTemplate
    let fewShot: FewShotPrompt?
    /// qa/schema.json with the list's maxItems set to `questions`.
    public let schema: ReplySchema

    public init(config: QAConfig, input: String, templates: String? = nil) throws {
        guard config.questions >= 1 else { throw LoomError("generate qa: questions must be at least 1") }
        guard config.openai.concurrency >= 1 else { throw LoomError("generate qa: concurrency must be at least 1") }
        guard config.minGrounding >= 0, config.minGrounding <= 1 else {
            throw LoomError("generate qa: min_grounding must be in [0, 1]")
        }
        try config.openai.validate("generate qa")
        settings = config
        self.input = input
        let dir = try templates ?? TemplateDirectory.locate()
        templateDirectory = dir
        system = try TemplateDirectory.load(dir, "qa/system.mustache").template
        user = try TemplateDirectory.load(dir, "qa/user.mustache").template
        fewShot = config.openai.endpoint == "completions" ? try FewShotPrompt(directory: dir, questions: config.questions) : nil
        schema = try QASchema.load(dir, questions: config.questions)
    }

    public var name: String { "generate-qa" }
    public var config: JSONValue {
        var o = JSONObject()
        o.append("backend", .string(settings.openai.backend))
        if settings.openai.backend == "openai" { o.append("base_url", .string(settings.openai.baseURL)) }
        o.append("model", .string(settings.openai.modelIdentity))
        o.append("parameters", settings.openai.parameters)
        o.append("questions", .int(settings.questions))
        o.append("text_field", .string(settings.textField))
        var prompts = system.description + "\u{0}" + user.description
        if let fewShot { prompts += "\u{0}" + fewShot.fingerprint }
        o.append("templates", .string(SHA256.hex(prompts)))
        // Options added later go in only when they differ from the old behaviour, so finished runs stay current.
        if settings.openai.endpoint != "chat" { o.append("endpoint", .string(settings.openai.endpoint)) }
        o.append("structured", .string(settings.openai.structured))
        if settings.openai.structured != "off" { o.append("schema", schema.schema) }
        if settings.minGrounding > 0 { o.append("min_grounding", .double(settings.minGrounding)) }
        return .object(o)
    }
    public var inputs: [StageInput] { RecordSource.stageInputs([input]) }

    public func run(_ ctx: StageContext) throws {
        let cache = settings.noCache ? nil : try ResponseCache(path: settings.cachePath)
        let backend = try OpenAIBackend(config: settings.openai, cache: cache)
        let reader = try RecordSource.resolve([input])
        ctx.progress.begin(totalBytes: reader.totalBytes, unit: "chunks")
        var batch: [(id: String, text: String, docId: String?, path: String, line: Int)] = []
        var counts = (pairs: 0, unsupported: 0, failed: 0, unparseable: 0, wrongLanguage: 0, ungrounded: 0, grounded: 0, duplicates: 0)
        func flush() throws {
            let items = batch
            batch = []
            try orderedParallelForEach(
                items, jobs: settings.openai.concurrency, window: settings.openai.concurrency * 4,
                produce: { item -> Result<String, BackendError> in
                    do {
                        if let fewShot {
                            return .success(try backend.complete(prompt: fewShot.render(item.text), schema: schema, stop: fewShot.stop))
                        }
                        let messages = [
                            (role: "system", content: system.render([String: String]()).trimmingCharacters(in: .newlines)),
                            (role: "user", content: user.render(["text": item.text, "count": "\(settings.questions)"])),
                        ]
                        return .success(try backend.complete(messages, schema: schema))
                    } catch let e as BackendError {
                        return .failure(e)
                    } catch {
                        return .failure(BackendError(message: "\(error)", retryable: false))
                    }
                },
                consume: { k, result in
                    let item = items[k]
                    ctx.progress.add(items: 1)
                    switch result {
                    case .failure(let e):
                        counts.failed += 1
                        try ctx.reject(Reject(source: item.path, reason: "the model server failed: \(e.message)", line: item.line, id: item.id))
                    case .success(let reply):
                        guard let pairs = QAParser.parse(reply) else {
                            counts.unparseable += 1
                            try ctx.reject(
                                Reject(
                                    source: item.path, reason: "the model's reply is not a JSON list of question/answer objects",
                                    line: item.line, id: item.id, raw: reply))
                            return
                        }
                        let language = RCMiner.language(item.text)
                        var questions = Set<String>()
                        for (n, p) in pairs.enumerated() {
                            // A small model repeats itself: the same question twice in one reply is kept once.
                            guard questions.insert(p.question.lowercased()).inserted else {
                                counts.duplicates += 1
                                continue
                            }
                            // An answer in another language than its chunk (a Korean chunk answered in English)
                            // is not what was asked for.
                            if RCMiner.language(p.question + " " + p.answer) != language {
                                counts.wrongLanguage += 1
                                try ctx.reject(
                                    Reject(
                                        source: item.path, reason: "question/answer not in the chunk's language (\(language))",
                                        line: item.line, id: item.id, raw: p.question + "\n" + p.answer))
                                continue
                            }
                            let grounding = Grounding.measure(answer: p.answer, chunk: item.text)
                            if grounding.score < settings.minGrounding {
                                counts.ungrounded += 1
                                try ctx.reject(
                                    Reject(
                                        source: item.path,
                                        reason: "answer grounding \(grounding.score) below min_grounding \(settings.minGrounding)",
                                        line: item.line, id: item.id, raw: p.question + "\n" + p.answer))
                                continue
                            }
                            if grounding.score >= 0.5 { counts.grounded += 1 }
                            let ok = QAParser.supported(p.answer, by: item.text)
                            if !ok { counts.unsupported += 1 }
                            var ids = [item.id]
                            if let d = item.docId { ids.append(d) }
                            var meta = JSONObject()
                            meta.append(
                                "provenance",
                                provenance(
                                    ids: ids, generator: "qa", templates: fewShot == nil ? ["qa/system", "qa/user"] : ["qa/fewshot"],
                                    backend: settings.openai.backend, model: settings.openai.model, seed: settings.openai.seed))
                            meta.append("supported", .bool(ok))
                            meta.append("scores", grounding.json)
                            meta.append("language", .string(language))
                            var o = JSONObject()
                            o.append("id", .string("\(item.id)#qa\(n)"))
                            o.append(
                                "messages",
                                [
                                    ["role": "user", "content": .string(p.question)],
                                    ["role": "assistant", "content": .string(p.answer)],
                                ])
                            o.append("meta", .object(meta))
                            try ctx.output.write(.object(o))
                            counts.pairs += 1
                        }
                    }
                })
        }
        try reader.forEachRecord(
            { r, path, line in
                guard let text = r[settings.textField]?.stringValue else {
                    try ctx.reject(Reject(source: path, reason: "record has no string '\(settings.textField)'", line: line))
                    return
                }
                batch.append((r["id"]?.stringValue ?? "\(path):\(line)", text, r["doc_id"]?.stringValue, path, line))
                if batch.count >= 4096 { try flush() }
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        try flush()
        let s = backend.stats
        ctx.setCount("pairs", counts.pairs)
        ctx.setCount("unsupported_answers", counts.unsupported)
        ctx.setCount("failed_chunks", counts.failed)
        ctx.setCount("unparseable_replies", counts.unparseable)
        ctx.setCount("wrong_language", counts.wrongLanguage)
        // Answers with at least half their content words in the chunk (of those kept), and those dropped below
        // min_grounding.
        ctx.setCount("grounded_answers", counts.grounded)
        ctx.setCount("ungrounded_rejected", counts.ungrounded)
        ctx.setCount("duplicate_questions", counts.duplicates)
        // Not deterministic across runs (they depend on the cache and the server), but what an operator wants to see.
        Log.info("generate-qa: \(s.requests) requests sent, \(s.cacheHits) answers from the cache, \(s.retries) retries")
    }
}

/// qa/schema.json: the reply's JSON schema, with the list's item count bounded by the questions asked for.
enum QASchema {
    static func load(_ directory: String, questions: Int) throws -> ReplySchema {
        var s = try ReplySchema.load(directory, "qa/schema.json", name: "qa_pairs")
        guard case .object(var root) = s.schema, case .object(var props) = root["properties"] ?? .null,
            case .object(var pairs) = props["pairs"] ?? .null, pairs["type"]?.stringValue == "array"
        else {
            throw LoomError("\(FS.join(directory, "qa/schema.json")): expected an object schema with an array property 'pairs'")
        }
        pairs["maxItems"] = .int(questions)
        if let min = pairs["minItems"]?.intValue, min > questions { pairs["minItems"] = .int(questions) }
        props["pairs"] = .object(pairs)
        root["properties"] = .object(props)
        s.schema = .object(root)
        return s
    }
}

/// The few-shot prompt for base models: qa/fewshot.yaml's worked examples rendered by qa/fewshot.mustache before the
/// chunk, each example's pairs (as many as asked for, up to what it has) as the JSON the schema describes.
struct FewShotPrompt: Sendable {
    let template: MustacheTemplate
    let instruction: String
    let examples: [[String: String]]
    let fingerprint: String
    /// Where a base model's answer ends: the separator the examples use, or the start of another text.
    let stop = ["\n###", "\nText:"]

    init(directory: String, questions: Int) throws {
        let t = try TemplateDirectory.load(directory, "qa/fewshot.mustache")
        let path = FS.join(directory, "qa/fewshot.yaml")
        let yaml = try FS.readText(path)
        guard let root = try YAMLFile.load(yaml, file: path) as? [String: Any], let instruction = root["instruction"] as? String,
            let list = root["examples"] as? [[String: Any]], !list.isEmpty
        else { throw LoomError("\(path): expected 'instruction' and a list of 'examples' (text, pairs)") }
        examples = try list.enumerated().map { i, e in
            guard let text = e["text"] as? String, let pairs = e["pairs"] as? [[String: String]], !pairs.isEmpty else {
                throw LoomError("\(path): example \(i + 1) needs 'text' and a list of 'pairs' (question, answer)")
            }
            let shown = pairs.prefix(questions).map { p -> JSONValue in
                ["question": .string(p["question"] ?? ""), "answer": .string(p["answer"] ?? "")]
            }
            let json: JSONValue = ["pairs": .array(Array(shown))]
            return ["text": text, "json": json.jsonString]
        }
        template = t.template
        self.instruction = instruction
        fingerprint = SHA256.hex(t.text + "\u{0}" + yaml)
    }

    func render(_ text: String) -> String {
        template.render(["instruction": instruction, "examples": examples, "text": text] as [String: Any])
    }
}
