// Token string -> id, with tokens compared as Unicode scalar sequences (byte for byte in UTF-8), the way Hugging Face
// tokenizers compares them. A Swift `[String: Int32]` would not do: String equality is canonical equivalence, so
// Gemma's ";" (U+003B) and ";" (U+037E GREEK QUESTION MARK, canonically equal to it) were one key, the later id
// won, and every semicolon was encoded as the Greek question mark.

import LoomCore

public struct Vocabulary: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Key = String
    public typealias Value = Int32

    private var table: [ExactString: Int32] = [:]

    public init() {}
    public init(dictionaryLiteral elements: (String, Int32)...) {
        for (k, v) in elements { table[ExactString(k)] = v }
    }
    /// From entries; a token given twice keeps its last id.
    public init(_ entries: some Sequence<(String, Int32)>) {
        for (k, v) in entries { table[ExactString(k)] = v }
    }
    public init(_ dictionary: [String: Int32]) { self.init(dictionary.map { ($0.key, $0.value) }) }

    public subscript(token: String) -> Int32? {
        get { table[ExactString(token)] }
        set { table[ExactString(token)] = newValue }
    }

    public var count: Int { table.count }
    public var values: [Int32] { Array(table.values) }
    public mutating func reserveCapacity(_ n: Int) { table.reserveCapacity(n) }

    public func makeIterator() -> AnyIterator<(key: String, value: Int32)> {
        var it = table.makeIterator()
        return AnyIterator { it.next().map { (key: $0.key.text, value: $0.value) } }
    }
}
