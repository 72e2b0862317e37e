// A JSON schema compiled to a byte-level pushdown matcher: the grammar of the compact JSON documents (no whitespace
// between tokens, properties in the schema's declared order) that match the schema. Constrained decoding walks it
// byte by byte (GrammarMatcher) and, over a tokenizer's vocabulary, token by token (TokenMask).
//
// The subset: `type` object (`properties` in declared order, `required`, `additionalProperties` — extra properties
// are never produced, so any value is accepted), array (`items`, `minItems`, `maxItems`), string (`minLength`,
// `maxLength` in code points as JSON Schema counts them, escapes, multi-byte UTF-8), integer (`minimum`, `maximum`,
// at most 18 digits), number (at most 15 integer and 15 fraction digits and 2 exponent digits: always a finite
// double), boolean, null; `enum` and `const` of any JSON values but objects and arrays; nesting. Annotations
// (`title`, `description`, `$schema`, `$id`, `$comment`, `default`, `examples`) are ignored; any other keyword is an
// error naming it and its JSON path. With every string and array bounded, every document closes within `maxBytes`
// bytes (so within as many tokens).
//
// What the documents exclude that JSON would allow: whitespace between tokens, properties out of declared order,
// `\u` escapes of UTF-16 surrogates (a character outside the BMP is written as its UTF-8 bytes), `-0` as an integer.

import LoomCore

public struct GrammarError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "JSON schema at \(path): \(message)" }
}

public final class JSONSchemaGrammar: @unchecked Sendable {
    public enum Kind: UInt8, Sendable { case object, array, string, literals, integer, number }

    /// One schema node. Fields by kind: object (`start`/`count`: its properties in `propChild`, `keyRoot`;
    /// `reqStart`: `requiredFrom`), array (`child`: items, `minN`/`maxN`: item counts), string (`minN`/`maxN`:
    /// code points), literals (`child`: root of its literal trie), integer (`lo`/`hi`).
    struct Node {
        var kind: Kind
        var minN: Int32 = 0
        var maxN: Int32 = .max
        var child: Int32 = -1
        var start: Int32 = 0
        var count: Int32 = 0
        var reqStart: Int32 = 0
        var lo: Int64 = 0
        var hi: Int64 = 0
    }

    let nodes: [Node]
    /// Per object property (node.start + i): the value's node, and the root of the key trie for the keys that may
    /// come next when property i is the first candidate (`"name":` of properties i ... first required at or after i).
    let propChild: [Int32]
    let keyRoot: [Int32]
    /// Per object (node.reqStart + i, i in 0...count): whether a required property has index >= i.
    let requiredFrom: [Bool]
    /// Literal tries (enum/const/boolean/null values, object keys): per trie node its terminal value (-1: none)
    /// and its children (sorted bytes in childByte[childStart[n]..<childStart[n + 1]]).
    let trieValue: [Int32]
    let childStart: [Int32]
    let childByte: [UInt8]
    let childNode: [Int32]

    public let root: Int32
    /// The deepest stack a document needs (one frame per open value).
    public let maxFrames: Int
    /// Longest document in bytes (nil when an array or string is unbounded).
    public let maxBytes: Int?
    /// Property names per object node, for messages.
    let propNames: [String]

    public static let integerDigits = 18
    public static let numberDigits = 15
    public static let exponentDigits = 2

    /// Compiles `schema`; throws GrammarError naming the JSON path of an unsupported keyword or bad value.
    public init(schema: JSONValue) throws {
        var b = Builder()
        let r = try b.compile(schema, path: "$", depth: 1)
        root = r
        nodes = b.nodes
        propChild = b.propChild
        keyRoot = b.keyRoot
        requiredFrom = b.requiredFrom
        propNames = b.propNames
        maxFrames = b.maxDepth
        // Flatten the literal tries.
        trieValue = b.tries.map(\.value)
        var starts: [Int32] = [0], bytes: [UInt8] = [], next: [Int32] = []
        for t in b.tries {
            for (byte, n) in t.children.sorted(by: { $0.key < $1.key }) {
                bytes.append(byte)
                next.append(n)
            }
            starts.append(Int32(bytes.count))
        }
        childStart = starts
        childByte = bytes
        childNode = next
        maxBytes = Self.maxBytes(r, nodes: nodes, propChild: propChild, b: b)
    }

    private static func maxBytes(_ n: Int32, nodes: [Node], propChild: [Int32], b: Builder) -> Int? {
        let node = nodes[Int(n)]
        switch node.kind {
        case .string:
            // Six bytes a code point at most (\uXXXX); quotes.
            return node.maxN == .max ? nil : 2 + 6 * Int(node.maxN)
        case .literals: return b.longestLiteral[Int(n)]
        case .integer: return 1 + integerDigits
        case .number: return 1 + numberDigits + 1 + numberDigits + 2 + exponentDigits
        case .array:
            guard node.maxN != .max, let item = maxBytes(node.child, nodes: nodes, propChild: propChild, b: b) else {
                return nil
            }
            return 2 + Int(node.maxN) * item + max(0, Int(node.maxN) - 1)
        case .object:
            var total = 2
            for i in 0..<Int(node.count) {
                guard let v = maxBytes(propChild[Int(node.start) + i], nodes: nodes, propChild: propChild, b: b) else {
                    return nil
                }
                total += b.keyBytes[Int(node.start) + i] + v
            }
            return total + max(0, Int(node.count) - 1)
        }
    }

    public func kind(of node: Int32) -> Kind { nodes[Int(node)].kind }
}

/// Builds the node tables from a schema.
private struct Builder {
    struct TrieNode {
        var value: Int32 = -1
        var children: [UInt8: Int32] = [:]
    }
    var nodes: [JSONSchemaGrammar.Node] = []
    var propChild: [Int32] = []
    var keyRoot: [Int32] = []
    var keyBytes: [Int] = []
    var requiredFrom: [Bool] = []
    var propNames: [String] = []
    var tries: [TrieNode] = []
    var longestLiteral: [Int: Int] = [:]
    var maxDepth = 1

    static let annotations: Set<String> = ["title", "description", "$schema", "$id", "$comment", "default", "examples"]
    static let allowed: [String: Set<String>] = [
        "object": ["type", "properties", "required", "additionalProperties"],
        "array": ["type", "items", "minItems", "maxItems"],
        "string": ["type", "minLength", "maxLength", "enum", "const"],
        "integer": ["type", "minimum", "maximum", "enum", "const"],
        "number": ["type", "enum", "const"],
        "boolean": ["type", "enum", "const"],
        "null": ["type", "enum", "const"],
        "": ["enum", "const"],
    ]

    /// A literal trie over `values` (byte strings, prefix-free or not), terminal value = index. Returns its root.
    mutating func trie(_ values: [[UInt8]]) -> Int32 {
        let root = Int32(tries.count)
        tries.append(TrieNode())
        for (i, v) in values.enumerated() {
            var n = root
            for c in v {
                if let next = tries[Int(n)].children[c] {
                    n = next
                } else {
                    let next = Int32(tries.count)
                    tries.append(TrieNode())
                    tries[Int(n)].children[c] = next
                    n = next
                }
            }
            tries[Int(n)].value = Int32(i)
        }
        return root
    }

    func bound(_ s: JSONObject, _ key: String, _ path: String) throws -> Int32? {
        guard let v = s[key] else { return nil }
        guard let i = v.intValue, i >= 0, i < Int(Int32.max) else {
            throw GrammarError(path: path + "." + key, message: "'\(key)' must be a non-negative integer")
        }
        return Int32(i)
    }

    mutating func compile(_ schema: JSONValue, path: String, depth: Int) throws -> Int32 {
        maxDepth = max(maxDepth, depth)
        if case .bool = schema {
            throw GrammarError(path: path, message: "boolean schemas are not supported (give a schema object with a type)")
        }
        guard let s = schema.objectValue else { throw GrammarError(path: path, message: "a schema must be an object") }
        var type = ""
        if let t = s["type"] {
            guard let name = t.stringValue else {
                throw GrammarError(path: path + ".type", message: "only a single type name is supported (not a list)")
            }
            guard Self.allowed[name] != nil, !name.isEmpty else {
                throw GrammarError(path: path + ".type", message: "unknown type '\(name)'")
            }
            type = name
        }
        let keys = Self.allowed[type]!
        for k in s.keys where !keys.contains(k) && !Self.annotations.contains(k) {
            let what = type.isEmpty ? "a schema without a type" : "type \(type)"
            throw GrammarError(path: path + "." + k, message: "keyword '\(k)' is not supported for \(what)")
        }
        if s["enum"] != nil || s["const"] != nil {
            var values: [JSONValue]
            if let c = s["const"] {
                values = [c]
            } else {
                guard let e = s["enum"]?.arrayValue, !e.isEmpty else {
                    throw GrammarError(path: path + ".enum", message: "'enum' must be a non-empty array")
                }
                values = e
            }
            if s["const"] != nil, s["enum"] != nil {
                throw GrammarError(path: path, message: "give 'enum' or 'const', not both")
            }
            // Keep the values the type allows (the type narrows the enum).
            let fits: (JSONValue) -> Bool = { v in
                switch (type, v) {
                case ("", _): return true
                case ("string", .string), ("boolean", .bool), ("null", .null), ("number", .int), ("number", .double),
                    ("integer", .int):
                    return true
                case ("integer", .double(let d)): return d == d.rounded()
                default: return false
                }
            }
            values = values.filter(fits)
            guard !values.isEmpty else {
                throw GrammarError(path: path + ".enum", message: "no value of the enum is of type \(type)")
            }
            for v in values {
                if case .object = v { throw GrammarError(path: path + ".enum", message: "object values are not supported in enum/const") }
                if case .array = v { throw GrammarError(path: path + ".enum", message: "array values are not supported in enum/const") }
            }
            var literals: [[UInt8]] = []
            for v in values {
                var out: [UInt8] = []
                if type == "integer", case .double(let d) = v { out = Array(String(Int(d)).utf8) } else { v.write(to: &out) }
                if !literals.contains(out) { literals.append(out) }
            }
            let id = Int32(nodes.count)
            nodes.append(.init(kind: .literals, child: trie(literals)))
            longestLiteral[Int(id)] = literals.map(\.count).max() ?? 0
            return id
        }
        switch type {
        case "object":
            var props: [(String, JSONValue)] = []
            if let p = s["properties"] {
                guard let o = p.objectValue else {
                    throw GrammarError(path: path + ".properties", message: "'properties' must be an object")
                }
                props = o.map { ($0.key, $0.value) }
            }
            guard props.count <= 4096 else { throw GrammarError(path: path + ".properties", message: "too many properties") }
            var required = Set<String>()
            if let r = s["required"] {
                guard let list = r.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                    throw GrammarError(path: path + ".required", message: "'required' must be an array of property names")
                }
                for name in list.compactMap(\.stringValue) {
                    guard props.contains(where: { $0.0 == name }) else {
                        throw GrammarError(
                            path: path + ".required",
                            message: "required property '\(name)' is not in 'properties' (additional properties are never generated)")
                    }
                    required.insert(name)
                }
            }
            let id = Int32(nodes.count)
            nodes.append(.init(kind: .object))
            var children: [Int32] = []
            for (name, sub) in props {
                children.append(try compile(sub, path: path + ".properties." + name, depth: depth + 1))
            }
            let start = Int32(propChild.count)
            let reqStart = Int32(requiredFrom.count)
            var reqFrom = [Bool](repeating: false, count: props.count + 1)
            for i in stride(from: props.count - 1, through: 0, by: -1) {
                reqFrom[i] = reqFrom[i + 1] || required.contains(props[i].0)
            }
            requiredFrom += reqFrom
            let keyLiterals: [[UInt8]] = props.map { name, _ in
                var out: [UInt8] = []
                JSONValue.writeString(name, to: &out)
                out.append(UInt8(ascii: ":"))
                return out
            }
            for i in 0..<props.count {
                propChild.append(children[i])
                propNames.append(props[i].0)
                keyBytes.append(keyLiterals[i].count)
                // Candidates: i, i+1, ... up to and including the first required one (values = property index).
                var values: [[UInt8]] = []
                var j = i
                while j < props.count {
                    values.append(keyLiterals[j])
                    if required.contains(props[j].0) { break }
                    j += 1
                }
                // The trie's terminal values are offsets from i.
                keyRoot.append(trie(values))
            }
            nodes[Int(id)].start = start
            nodes[Int(id)].count = Int32(props.count)
            nodes[Int(id)].reqStart = reqStart
            return id
        case "array":
            guard let items = s["items"] else { throw GrammarError(path: path, message: "an array needs 'items'") }
            let minN = try bound(s, "minItems", path) ?? 0
            let maxN = try bound(s, "maxItems", path) ?? .max
            guard minN <= maxN else { throw GrammarError(path: path, message: "minItems is greater than maxItems") }
            let id = Int32(nodes.count)
            nodes.append(.init(kind: .array, minN: minN, maxN: maxN))
            nodes[Int(id)].child = try compile(items, path: path + ".items", depth: depth + 1)
            return id
        case "string":
            let minN = try bound(s, "minLength", path) ?? 0
            let maxN = try bound(s, "maxLength", path) ?? .max
            guard minN <= maxN else { throw GrammarError(path: path, message: "minLength is greater than maxLength") }
            nodes.append(.init(kind: .string, minN: minN, maxN: maxN))
            return Int32(nodes.count - 1)
        case "integer":
            let limit = Int64(999_999_999_999_999_999)
            var lo = -limit, hi = limit
            for (k, isMin) in [("minimum", true), ("maximum", false)] {
                guard let v = s[k] else { continue }
                guard let d = v.doubleValue, d.isFinite, abs(d) <= Double(limit) else {
                    throw GrammarError(path: path + "." + k, message: "'\(k)' must be a number of at most 18 digits")
                }
                if isMin { lo = max(lo, Int64(d.rounded(.up))) } else { hi = min(hi, Int64(d.rounded(.down))) }
            }
            guard lo <= hi else { throw GrammarError(path: path, message: "no integer lies between minimum and maximum") }
            nodes.append(.init(kind: .integer, lo: lo, hi: hi))
            return Int32(nodes.count - 1)
        case "number":
            nodes.append(.init(kind: .number))
            return Int32(nodes.count - 1)
        case "boolean":
            let id = Int32(nodes.count)
            nodes.append(.init(kind: .literals, child: trie([Array("true".utf8), Array("false".utf8)])))
            longestLiteral[Int(id)] = 5
            return id
        case "null":
            let id = Int32(nodes.count)
            nodes.append(.init(kind: .literals, child: trie([Array("null".utf8)])))
            longestLiteral[Int(id)] = 4
            return id
        default:
            throw GrammarError(path: path, message: "a schema needs a 'type' (or 'enum'/'const')")
        }
    }
}
