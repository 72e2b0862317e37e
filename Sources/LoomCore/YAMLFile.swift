// Reading a YAML file into Swift values (`[String: Any]`, `[Any]`, scalars) for the files Loom reads that way
// (templates, rule files). Yams.load traps on a mapping key that is not a scalar (`{{question}}` — a Mustache tag —
// is a flow mapping whose key is a mapping) and expands aliases without a bound (a few lines of nested `*a` make
// billions of values); this composes the document first, refuses both with the file and line, then converts.

import Foundation
import Yams

public enum YAMLFile {
    /// Most values a document may hold once its aliases are expanded.
    public static let maxValues = 1_000_000

    /// The document of `text` as Swift values (nil for an empty document); `file` names it in errors.
    public static func load(_ text: String, file: String) throws -> Any? {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let e as YamlError { throw LoomError("\(file): \(e)") }
        guard let node else { return nil }
        var budget = maxValues
        try check(node, file: file, budget: &budget)
        return node.any
    }

    static func check(_ node: Node, file: String, budget: inout Int) throws {
        budget -= 1
        if budget < 0 {
            throw LoomError("\(file): more than \(maxValues) values once its aliases are expanded (an alias bomb?)")
        }
        switch node {
        case .scalar, .alias:
            return
        case .sequence(let s):
            for v in s { try check(v, file: file, budget: &budget) }
        case .mapping(let m):
            for (k, v) in m {
                guard case .scalar = k else {
                    throw LoomError(
                        "\(file):\(k.mark?.line ?? 0): a mapping key must be a plain value, not a \(k.isMapping ? "mapping" : "list") (quote a line that starts with '{' or '[', e.g. a Mustache '{{name}}')")
                }
                try check(v, file: file, budget: &budget)
            }
        }
    }
}

extension Node {
    fileprivate var isMapping: Bool { if case .mapping = self { return true } else { return false } }
}
