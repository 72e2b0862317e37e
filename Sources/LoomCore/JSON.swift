// A JSON value with ordered object keys, a deterministic writer and a strict parser.
//
// Records are JSON Lines. Loom writes them itself (not through JSONSerialization) so that the same record always
// gives the same bytes: object keys stay in the order they were built, numbers print one way, non-ASCII text is
// written as UTF-8, and only the characters JSON requires are escaped.

public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }
}

/// A JSON object that keeps its keys in insertion order (a later set of an existing key replaces it in place).
/// Objects with more than `indexAbove` keys also keep a key -> position index, so building and reading large ones
/// (a tokenizer's 128K-entry vocabulary) costs O(1) a key instead of a scan of the keys before it.
/// A string as a dictionary key compared and hashed by its Unicode scalars (its UTF-8 bytes), not by Swift's canonical
/// equivalence: for keys that formats define byte for byte (JSON object keys, tokenizer vocabularies).
public struct ExactString: Hashable, Sendable {
    public let text: String
    public init(_ text: String) { self.text = text }
    public static func == (a: ExactString, b: ExactString) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }
    public func hash(into h: inout Hasher) {
        var s = text
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

public struct JSONObject: Equatable, Sendable, Sequence {
    public private(set) var pairs: [(key: String, value: JSONValue)] = []
    /// Position of each key's first occurrence; nil while the object is small. Keys compare as Unicode scalar
    /// sequences, as JSON's do: "\u00e9" and "e\u0301" are two keys though Swift's String calls them equal.
    private var index: [ExactString: Int]?
    static let indexAbove = 16

    public init() {}
    public init(_ pairs: [(String, JSONValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var keys: [String] { pairs.map { $0.key } }
    public var count: Int { pairs.count }

    func position(_ key: String) -> Int? {
        if let index { return index[ExactString(key)] }
        return pairs.firstIndex { $0.key.utf8.elementsEqual(key.utf8) }
    }

    public subscript(key: String) -> JSONValue? {
        get { position(key).map { pairs[$0].value } }
        set {
            if let i = position(key) {
                if let newValue {
                    pairs[i].value = newValue
                } else {
                    pairs.remove(at: i)
                    index = nil
                    buildIndexIfLarge()
                }
            } else if let newValue {
                append(key, newValue)
            }
        }
    }

    /// Appends without looking for an existing key: for builders that know their keys are new. (A repeated key
    /// stays readable at its first occurrence, as a scan would find it.)
    public mutating func append(_ key: String, _ value: JSONValue) {
        pairs.append((key, value))
        if index != nil {
            if index![ExactString(key)] == nil { index![ExactString(key)] = pairs.count - 1 }
        } else {
            buildIndexIfLarge()
        }
    }

    private mutating func buildIndexIfLarge() {
        guard index == nil, pairs.count > Self.indexAbove else { return }
        var d = [ExactString: Int](minimumCapacity: pairs.count * 2)
        for (i, p) in pairs.enumerated() where d[ExactString(p.key)] == nil { d[ExactString(p.key)] = i }
        index = d
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { pairs.makeIterator() }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - Writing

extension JSONValue {
    /// The compact JSON text of this value (no newline).
    public var jsonString: String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the compact JSON bytes of this value.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if d.isFinite {
                if d == d.rounded(), abs(d) < 1e15 {
                    out.append(contentsOf: String(Int(d)).utf8)
                    out.append(contentsOf: ".0".utf8)
                } else {
                    out.append(contentsOf: "\(d)".utf8)
                }
            } else {
                out.append(contentsOf: "null".utf8)  // JSON has no NaN/Infinity
            }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (i, p) in o.pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(p.key, to: &out)
                out.append(UInt8(ascii: ":"))
                p.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        writeEscaped(s, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends a string's JSON-escaped content, without quotes.
    public static func writeEscaped(_ s: String, to out: inout [UInt8]) {
        escape(s, literal: { out.append(contentsOf: UnsafeBufferPointer(start: $0, count: $1)) }, escaped: { out.append(contentsOf: $0) })
    }

    /// The one JSON string escaper: calls `literal` with runs that need no escaping and `escaped` with the escape
    /// sequence of each byte that does (`\"`, `\\`, `\n`, ..., `\u00XX`). Non-ASCII UTF-8 passes through.
    @inline(__always)
    static func escape(
        _ s: String, literal: (UnsafePointer<UInt8>, Int) -> Void, escaped: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        var s = s
        s.withUTF8 { buf in
            guard let base = buf.baseAddress else { return }
            let raw = UnsafeRawPointer(base)
            var start = 0
            var i = 0
            while i < buf.count {
                // Eight bytes at a time: skip words with no control character, quote or backslash.
                if i + 8 <= buf.count, !needsEscape(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                    i += 8
                    continue
                }
                let c = base[i]
                if c >= 0x20 && c != 0x22 && c != 0x5C {
                    i += 1
                    continue
                }
                if start < i { literal(base + start, i - start) }
                i += 1
                start = i
                var seq: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x5C, 0, 0x30, 0x30, 0, 0)
                var n = 2
                switch c {
                case 0x22: seq.1 = 0x22
                case 0x5C: seq.1 = 0x5C
                case 0x0A: seq.1 = UInt8(ascii: "n")
                case 0x0D: seq.1 = UInt8(ascii: "r")
                case 0x09: seq.1 = UInt8(ascii: "t")
                case 0x08: seq.1 = UInt8(ascii: "b")
                case 0x0C: seq.1 = UInt8(ascii: "f")
                default:
                    seq.1 = UInt8(ascii: "u")
                    seq.4 = hex[Int(c >> 4)]
                    seq.5 = hex[Int(c & 15)]
                    n = 6
                }
                withUnsafeBytes(of: &seq) { escaped(UnsafeBufferPointer(start: $0.bindMemory(to: UInt8.self).baseAddress, count: n)) }
            }
            if start < buf.count { literal(base + start, buf.count - start) }
        }
    }

    /// Whether any byte of `x` is below 0x20, a quote or a backslash (SWAR: "has a zero byte" tests).
    @inline(__always) static func needsEscape(_ x: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let below20 = (x &- ones &* 0x20) & ~x & high
        let q = x ^ (ones &* 0x22)
        let quote = (q &- ones) & ~q & high
        let b = x ^ (ones &* 0x5C)
        let backslash = (b &- ones) & ~b & high
        return (below20 | quote | backslash) != 0
    }
}

// MARK: - Parsing

public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let offset: Int
    public let message: String
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

extension JSONValue {
    public static func parse(_ text: String) throws -> JSONValue {
        var t = text
        return try t.withUTF8 { try parse(bytes: $0) }
    }

    public static func parse(bytes: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
        var p = JSONParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.i != bytes.count { throw p.fail("unexpected text after the value") }
        return v
    }
}

struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0
    init(bytes: UnsafeBufferPointer<UInt8>) { b = bytes }

    func fail(_ m: String) -> JSONParseError { JSONParseError(offset: i, message: m) }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw fail("nesting deeper than 512") }
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o = JSONObject()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                o[k] = try value(depth: depth + 1)
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of input in object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSONValue] = []
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of input in array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return try number()
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count, memcmp(b.baseAddress! + i, word.utf8Start, n) == 0 else {
            throw fail("unexpected character")
        }
        i += n
    }

    mutating func number() throws -> JSONValue {
        let start = i
        var isDouble = false
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        while i < b.count {
            let c = b[i]
            if c >= 0x30 && c <= 0x39 { i += 1; continue }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+")
                || c == UInt8(ascii: "-")
            {
                isDouble = true
                i += 1
                continue
            }
            break
        }
        guard i > start else { throw fail("unexpected character") }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        if !isDouble, let v = Int(text) { return .int(v) }
        guard let d = Double(text) else { throw JSONParseError(offset: start, message: "bad number '\(text)'") }
        return .double(d)
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") {
            if b[i] < 0x20 { throw fail("control character in string") }
            i += 1
        }
        guard i < b.count else { throw fail("unterminated string") }
        if b[i] == UInt8(ascii: "\"") {
            let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            i += 1
            return s
        }
        var out = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A surrogate pair.
                    if i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        throw fail("lone surrogate")
                    }
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw fail("lone surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("bad unicode escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw fail("bad escape")
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("short unicode escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad hex digit in unicode escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Streaming writer

/// Writes JSON straight to a byte buffer, for hot paths that would otherwise build a `JSONValue` tree per
/// record. Produces exactly what `JSONValue.write` produces for the same keys and values in the same order.
/// The buffer is raw memory (no array uniqueness checks on every byte appended); reuse one writer with `reset()`.
public final class JSONWriter {
    // Unchecked exclusivity: a writer is used from one thread at a time, and these are touched per byte.
    @exclusivity(unchecked) private var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) public private(set) var count = 0
    /// Per open container: whether nothing has been written in it yet (so no comma is due). Raw memory, like
    /// the bytes; nesting deeper than `maxDepth` is a programming error, not something input can cause.
    private static let maxDepth = 256
    private let first = UnsafeMutablePointer<Bool>.allocate(capacity: JSONWriter.maxDepth)
    @exclusivity(unchecked) private var depth = 0
    @exclusivity(unchecked) private var pendingKey = false

    public init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
        first.deallocate()
    }

    /// The bytes written so far; valid until the next write or reset.
    public var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }
    public var bytes: [UInt8] { Array(buffer) }

    public func reset() {
        count = 0
        depth = 0
        pendingKey = false
    }

    @inline(__always) private func reserve(_ n: Int) {
        guard count + n > capacity else { return }
        capacity = max(capacity * 2, count + n)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
    }

    @inline(__always) public func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always) public func append(_ p: UnsafePointer<UInt8>, _ n: Int) {
        reserve(n)
        (base + count).update(from: p, count: n)
        count += n
    }

    @inline(__always) private func separator() {
        guard depth > 0 else { return }
        if first[depth - 1] { first[depth - 1] = false } else { append(UInt8(ascii: ",")) }
    }

    @inline(__always) private func open(_ bracket: UInt8) {
        valuePrefix()
        append(bracket)
        precondition(depth < JSONWriter.maxDepth, "JSONWriter: nesting deeper than \(JSONWriter.maxDepth)")
        first[depth] = true
        depth += 1
    }

    @inline(__always) private func valuePrefix() {
        if pendingKey { pendingKey = false } else { separator() }
    }

    public func beginObject() { open(UInt8(ascii: "{")) }

    public func endObject() {
        depth -= 1
        append(UInt8(ascii: "}"))
    }

    public func beginArray() { open(UInt8(ascii: "[")) }

    public func endArray() {
        depth -= 1
        append(UInt8(ascii: "]"))
    }

    /// Writes `"key":`; the value call that follows does not add a comma. Keys are literals that need no
    /// escaping, so their bytes are copied as they are.
    public func key(_ k: StaticString) {
        separator()
        reserve(k.utf8CodeUnitCount + 3)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: k.utf8Start, count: k.utf8CodeUnitCount)
        count += k.utf8CodeUnitCount + 1
        base[count] = UInt8(ascii: "\"")
        base[count + 1] = UInt8(ascii: ":")
        count += 2
        pendingKey = true
    }

    public func string(_ s: String) {
        valuePrefix()
        append(UInt8(ascii: "\""))
        stringPart(s)
        append(UInt8(ascii: "\""))
    }

    public func int(_ i: Int) {
        valuePrefix()
        var s = String(i)
        s.withUTF8 { append($0.baseAddress!, $0.count) }
    }

    public func bool(_ b: Bool) {
        valuePrefix()
        var s = b ? "true" : "false"
        s.withUTF8 { append($0.baseAddress!, $0.count) }
    }

    /// A string value written in parts (no concatenated copy is made): `beginString`, `stringPart`...,
    /// `endString`.
    public func beginString() {
        valuePrefix()
        append(UInt8(ascii: "\""))
    }

    /// Appends a string's JSON-escaped content.
    public func stringPart(_ s: String) {
        JSONValue.escape(s, literal: { append($0, $1) }, escaped: { append($0.baseAddress!, $0.count) })
    }

    public func endString() { append(UInt8(ascii: "\"")) }

    /// Key and string value, skipped when the value is nil.
    public func field(_ k: StaticString, _ s: String?) {
        guard let s else { return }
        key(k)
        string(s)
    }
}
