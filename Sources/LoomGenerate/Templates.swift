// Prompt and task phrasings live in templates/ (Mustache); this finds and loads them.

import Foundation
import LoomCore
import Mustache

// TemplateDirectory.locate() is in LoomCore (the trainer's chat templates use it too).

/// The reading-comprehension phrasings of one language: task type -> Mustache templates, plus answer labels.
public struct RCTemplates: Sendable {
    public let language: String
    let phrasings: [String: [(name: String, template: MustacheTemplate)]]
    let answers: [String: String]

    public init(directory: String, language: String) throws {
        let path = FS.join(FS.join(directory, "rc"), language + ".yaml")
        try self.init(yaml: try FS.readText(path), path: path, language: language)
    }

    /// The phrasings of a `rc/LANGUAGE.yaml` file's text; `path` names the file in errors.
    public init(yaml text: String, path: String, language: String) throws {
        guard let root = try YAMLFile.load(text, file: path) as? [String: Any] else {
            throw LoomError("\(path): expected a mapping of task types to lists of templates")
        }
        var phrasings: [String: [(String, MustacheTemplate)]] = [:]
        var answers: [String: String] = [:]
        for (key, value) in root {
            if key == "answers" {
                for (k, v) in (value as? [String: Any]) ?? [:] { answers[k] = "\(v)" }
                continue
            }
            guard let list = value as? [String] else { throw LoomError("\(path): '\(key)' must be a list of strings") }
            phrasings[key] = try list.enumerated().map { i, s in
                do {
                    return ("rc/\(language)/\(key)#\(i)", try MustacheTemplate(plainText: s))
                } catch {
                    throw LoomError("\(path): '\(key)' template \(i + 1) is not valid Mustache: \(error)")
                }
            }
        }
        for task in RCTask.allCases where phrasings[task.templateKey]?.isEmpty ?? true {
            throw LoomError("\(path): no templates for '\(task.templateKey)'")
        }
        self.language = language
        self.phrasings = phrasings.mapValues { $0.map { (name: $0.0, template: $0.1) } }
        self.answers = answers
    }

    /// Renders a phrasing of `key` picked by `pick`.
    func render(_ key: String, _ values: [String: String], pick: inout SplitMix64) -> (name: String, text: String) {
        let options = phrasings[key] ?? []
        let chosen = options[pick.below(options.count)]
        return (chosen.name, chosen.template.render(values))
    }

    func answer(_ label: String) -> String { answers[label] ?? label }
}

extension TemplateDirectory {
    /// The Mustache template at `relative` under `directory`, and its text; an invalid one is an error naming the file.
    /// One trailing newline (the file's last line end) is not part of the template, as in Jinja: a prompt rendered
    /// from `{{question}}` + newline is the question, not the question and a line break.
    public static func load(_ directory: String, _ relative: String) throws -> (template: MustacheTemplate, text: String) {
        let path = FS.join(directory, relative)
        return try parse(try FS.readText(path), path: path)
    }

    /// The Mustache template of a template file's text; `path` names the file in errors.
    public static func parse(_ fileText: String, path: String) throws -> (template: MustacheTemplate, text: String) {
        var text = fileText
        if let last = text.last, last == "\n" || last == "\r\n" { text.removeLast() }
        do { return (try MustacheTemplate(plainText: text), text) } catch {
            throw LoomError("\(path): not valid Mustache: \(error)")
        }
    }
}

extension MustacheTemplate {
    /// A template rendering prompts and training text: `{{x}}` inserts x verbatim (Mustache's default is HTML,
    /// which would turn quotes and ampersands into `&quot;` and `&amp;`).
    public init(plainText text: String) throws {
        try self.init(string: "{{% CONTENT_TYPE: TEXT}}" + text)
    }
}

/// A seed for one record: the run's seed plus a hash of the record's key, so choices do not depend on the order
/// records are read in.
func recordSeed(_ seed: Int, _ key: String) -> UInt64 {
    UInt64(seed) &+ (UInt64(SHA256.hex(key).prefix(16), radix: 16) ?? 0)
}

/// `meta.provenance` of a generated record (DESIGN.md: the ids it came from, generator, templates, backend, model,
/// seed).
func provenance(
    ids: [String], generator: String, templates: [String], backend: String, model: String?, seed: Int?
) -> JSONValue {
    var p = JSONObject()
    p.append("ids", .array(ids.map { .string($0) }))
    p.append("generator", .string(generator))
    p.append("templates", .array(templates.map { .string($0) }))
    p.append("backend", .string(backend))
    p.append("model", model.map { .string($0) } ?? .null)
    p.append("seed", seed.map { .int($0) } ?? .null)
    return .object(p)
}
