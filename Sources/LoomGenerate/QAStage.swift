// `loom generate qa`: question/answer pairs written by an LLM (any OpenAI-compatible server) for each chunk.
// Prompts come from templates/qa/; answers are parsed strictly (repaired only where unambiguous), flagged when
// they share no content word with their chunk, and cached so a re-run asks nothing twice.

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

    public init() {}

    public static let keys = [
        "method", "backend", "base_url", "model", "api_key_env", "temperature", "top_p", "max_tokens", "seed", "timeout",
        "retries", "backoff", "concurrency", "questions", "text_field", "cache", "no_cache", "templates",
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
    /// '{' and after the last ']' or '}', trailing commas. Nil when nothing usable is there.
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
            let repaired = s.replacingOccurrences(of: #",\s*([\]}])"#, with: "$1", options: .regularExpression)
            value = try? JSONValue.parse(repaired)
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

    public init(config: QAConfig, input: String, templates: String? = nil) throws {
        guard config.questions >= 1 else { throw LoomError("generate qa: questions must be at least 1") }
        guard config.openai.concurrency >= 1 else { throw LoomError("generate qa: concurrency must be at least 1") }
        settings = config
        self.input = input
        let dir = try templates ?? TemplateDirectory.locate()
        templateDirectory = dir
        system = try TemplateDirectory.load(dir, "qa/system.mustache").template
        user = try TemplateDirectory.load(dir, "qa/user.mustache").template
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
        o.append("templates", .string(SHA256.hex(system.description + "\u{0}" + user.description)))
        return .object(o)
    }
    public var inputs: [StageInput] { [.stage(input)] }

    public func run(_ ctx: StageContext) throws {
        let cache = settings.noCache ? nil : try ResponseCache(path: settings.cachePath)
        let backend = try OpenAIBackend(config: settings.openai, cache: cache)
        let reader = try StageReader(directory: input)
        ctx.progress.begin(totalBytes: reader.manifest.shards.reduce(0) { $0 + $1.bytes }, unit: "chunks")
        var batch: [(id: String, text: String, docId: String?, path: String, line: Int)] = []
        var counts = (pairs: 0, unsupported: 0, failed: 0, unparseable: 0, wrongLanguage: 0)
        func flush() throws {
            let items = batch
            batch = []
            try orderedParallelForEach(
                items, jobs: settings.openai.concurrency, window: settings.openai.concurrency * 4,
                produce: { item -> Result<String, BackendError> in
                    let messages = [
                        (role: "system", content: system.render([String: String]()).trimmingCharacters(in: .newlines)),
                        (role: "user", content: user.render(["text": item.text, "count": "\(settings.questions)"])),
                    ]
                    do { return .success(try backend.complete(messages)) } catch let e as BackendError {
                        return .failure(e)
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
                        for (n, p) in pairs.enumerated() {
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
                            let ok = QAParser.supported(p.answer, by: item.text)
                            if !ok { counts.unsupported += 1 }
                            var ids = [item.id]
                            if let d = item.docId { ids.append(d) }
                            var meta = JSONObject()
                            meta.append(
                                "provenance",
                                provenance(
                                    ids: ids, generator: "qa", templates: ["qa/system", "qa/user"], backend: settings.openai.backend,
                                    model: settings.openai.model, seed: settings.openai.seed))
                            meta.append("supported", .bool(ok))
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
        // Not deterministic across runs (they depend on the cache and the server), but what an operator wants to see.
        Log.info("generate-qa: \(s.requests) requests sent, \(s.cacheHits) answers from the cache, \(s.retries) retries")
    }
}
