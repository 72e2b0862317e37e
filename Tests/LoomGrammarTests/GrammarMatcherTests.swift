// The JSON-schema matcher byte by byte (valid and invalid prefixes, escapes, UTF-8, limits, numbers, enums,
// unsupported keywords), and the token trie's fast mask against the reference mask on a synthetic vocabulary.

import Foundation
import LoomCore
import XCTest

@testable import LoomGrammar

final class GrammarMatcherTests: XCTestCase {
    static let qa: JSONValue = [
        "type": "object",
        "properties": [
            "pairs": [
                "type": "array", "minItems": 1, "maxItems": 2,
                "items": [
                    "type": "object",
                    "properties": [
                        "question": ["type": "string", "minLength": 3, "maxLength": 10],
                        "answer": ["type": "string", "minLength": 1, "maxLength": 4],
                    ],
                    "required": ["question", "answer"], "additionalProperties": false,
                ],
            ]
        ],
        "required": ["pairs"], "additionalProperties": false,
    ]

    /// How many bytes of `text` the matcher takes, and whether the document is complete after all of them.
    func run(_ schema: JSONValue, _ text: String) throws -> (taken: Int, complete: Bool) {
        var m = GrammarMatcher(try JSONSchemaGrammar(schema: schema))
        var taken = 0
        for c in text.utf8 {
            guard m.feed(c) else { break }
            taken += 1
        }
        return (taken, m.isComplete)
    }

    func assertValid(_ schema: JSONValue, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(schema, text)
        XCTAssertEqual(r.taken, text.utf8.count, "stopped in \(text)", file: file, line: line)
        XCTAssertTrue(r.complete, "incomplete: \(text)", file: file, line: line)
    }

    /// `text` is refused at byte `at` (a prefix of it is fine).
    func assertRefused(_ schema: JSONValue, _ text: String, at: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try run(schema, text).taken, at, text, file: file, line: line)
    }

    func testQADocumentsAndPrefixes() throws {
        let s = Self.qa
        try assertValid(s, #"{"pairs":[{"question":"Why?","answer":"ok"}]}"#)
        try assertValid(s, #"{"pairs":[{"question":"abc","answer":"x"},{"question":"0123456789","answer":"abcd"}]}"#)
        // A valid prefix is not complete.
        let partial = try run(s, #"{"pairs":[{"question":"Why?""#)
        XCTAssertEqual(partial.taken, 28)
        XCTAssertFalse(partial.complete)
        // No whitespace anywhere outside strings.
        try assertRefused(s, #"{ "pairs":[]}"#, at: 1)
        try assertRefused(s, #" {"pairs"}"#, at: 0)
        // Declared order, no extra property, required ones present.
        try assertRefused(s, #"{"pairs":[{"answer":"x","question":"abc"}]}"#, at: 12)
        try assertRefused(s, #"{"pairs":[{"question":"abc","note":"x"}]}"#, at: 29)
        try assertRefused(s, #"{"pairs":[{"question":"abc"}]}"#, at: 27)
        try assertRefused(s, #"{}"#, at: 1)
        // minLength: the quote comes too early; maxLength: the 11th character is refused.
        try assertRefused(s, #"{"pairs":[{"question":"ab""#, at: 25)
        try assertRefused(s, #"{"pairs":[{"question":"0123456789X"#, at: 33)
        // minItems 1, maxItems 2.
        try assertRefused(s, #"{"pairs":[]}"#, at: 10)
        let two = #"{"pairs":[{"question":"abc","answer":"x"},{"question":"abc","answer":"x"}"#
        try assertRefused(s, two + ",", at: two.utf8.count)
        // After the document closes nothing may follow.
        var m = GrammarMatcher(try JSONSchemaGrammar(schema: s))
        XCTAssertTrue(m.feed(Array(#"{"pairs":[{"question":"abc","answer":"x"}]}"#.utf8)))
        XCTAssertTrue(m.mustStop)
        XCTAssertFalse(m.feed(0x20))
        XCTAssertEqual(try JSONSchemaGrammar(schema: s).maxBytes, 2 + 8 + 2 + 2 * (2 + 11 + 2 + 60 + 1 + 9 + 2 + 24) + 1)
    }

    func testEscapesCountOneCharacterAndSurrogatesAreRefused() throws {
        let s: JSONValue = ["type": "string", "minLength": 2, "maxLength": 3]
        try assertValid(s, #""\n\"""#)
        try assertValid(s, #""a\\\/""#)
        try assertValid(s, #""\u00e9\uFFFFx""#)
        try assertRefused(s, #""\u00e9\uFFFFxy""#, at: 14)
        try assertRefused(s, #""\x""#, at: 2)
        try assertRefused(s, #""\u12G4""#, at: 5)
        // UTF-16 surrogates are refused at their second hex digit (their UTF-8 bytes are the way to write them).
        try assertRefused(s, #""\ud83d\ude00""#, at: 4)
        try assertRefused(s, #""\uDC00""#, at: 4)
        try assertValid(s, #""\ud7ff\ue000""#)
        // Raw control characters are refused; DEL is fine.
        try assertRefused(s, "\"a\nb\"", at: 2)
        try assertValid(s, "\"a\u{7F}\"")
    }

    func testUTF8CodePointsAndMalformedSequences() throws {
        let s: JSONValue = ["type": "string", "minLength": 2, "maxLength": 2]
        try assertValid(s, "\"é😀\"")
        try assertValid(s, "\"한국\"")
        try assertRefused(s, "\"é😀x\"", at: 7)
        func bytes(_ b: [UInt8]) -> (Int, Bool) {
            var m = GrammarMatcher(try! JSONSchemaGrammar(schema: s))
            var n = 0
            for c in b {
                guard m.feed(c) else { break }
                n += 1
            }
            return (n, m.isComplete)
        }
        XCTAssertEqual(bytes([0x22, 0xC0, 0x80]).0, 1, "overlong 2-byte")
        XCTAssertEqual(bytes([0x22, 0xE0, 0x80]).0, 2, "overlong 3-byte")
        XCTAssertEqual(bytes([0x22, 0xED, 0xA0]).0, 2, "UTF-8 surrogate")
        XCTAssertEqual(bytes([0x22, 0xF4, 0x90]).0, 2, "above U+10FFFF")
        XCTAssertEqual(bytes([0x22, 0xF5]).0, 1)
        XCTAssertEqual(bytes([0x22, 0x80]).0, 1, "stray continuation byte")
        XCTAssertEqual(bytes([0x22, 0x61, 0xC3, 0x22]).0, 3, "quote inside a character")
        XCTAssertEqual(bytes([0x22, 0x61, 0xF0, 0x9F, 0x98, 0x80, 0x22]).0, 7)
    }

    func testNumbersIntegersEnumsAndNesting() throws {
        let int: JSONValue = ["type": "integer", "minimum": -5, "maximum": 120]
        for ok in ["0", "-5", "-1", "7", "99", "120", "12"] { try assertValid(int, ok) }
        try assertRefused(int, "121", at: 2)  // "12" may still be completed, "121" may not
        try assertRefused(int, "-6", at: 1)
        try assertRefused(int, "-0", at: 1)
        try assertRefused(int, "01", at: 1)
        try assertRefused(int, "1.5", at: 1)
        XCTAssertFalse(try run(int, "-").complete)
        let positive: JSONValue = ["type": "integer", "minimum": 10]
        try assertRefused(positive, "-", at: 0)
        XCTAssertFalse(try run(positive, "9").complete)
        try assertValid(positive, "90")
        let num: JSONValue = ["type": "number"]
        for ok in ["0", "-0", "1.25", "-3e10", "6.02E+23", "1e-5", "10"] { try assertValid(num, ok) }
        try assertRefused(num, "1.", at: 2)
        XCTAssertFalse(try run(num, "1.").complete)
        try assertRefused(num, "00", at: 1)
        try assertRefused(num, ".5", at: 0)
        try assertRefused(num, "1e+", at: 3)
        let obj: JSONValue = [
            "type": "object",
            "properties": [
                "n": ["type": "number"], "i": ["type": "integer"], "b": ["type": "boolean"], "z": ["type": "null"],
                "e": ["enum": ["a", 1, 12, true, nil]], "c": ["const": "x\"y"],
                "inner": ["type": "object", "properties": ["l": ["type": "array", "items": ["type": "integer"], "maxItems": 3]]],
            ],
            "required": ["n", "c"],
        ]
        try assertValid(obj, #"{"n":1.5,"i":-3,"b":false,"z":null,"e":12,"c":"x\"y","inner":{"l":[1,22,333]}}"#)
        try assertValid(obj, #"{"n":0,"e":1,"c":"x\"y"}"#)
        try assertValid(obj, #"{"n":0,"e":"a","c":"x\"y","inner":{}}"#)
        try assertValid(obj, #"{"n":2e5,"c":"x\"y","inner":{"l":[]}}"#)
        try assertRefused(obj, #"{"n":0,"c":"x\"y","inner":{"l":[1,2,3,4"#, at: 37)
        try assertRefused(obj, #"{"n":0,"e":123"#, at: 13)
        try assertRefused(obj, #"{"i":1}"#, at: 2)  // n is required and comes first
        try assertRefused(obj, #"{"n":0,"b":tru}"#, at: 14)
        try assertRefused(obj, #"{"n":0,"c":"x"}"#, at: 13)
        // A top-level number is complete but not finished; an object is finished at its brace.
        var m = GrammarMatcher(try JSONSchemaGrammar(schema: num))
        XCTAssertTrue(m.feed(Array("12".utf8)))
        XCTAssertTrue(m.isComplete)
        XCTAssertFalse(m.mustStop)
        let verdict: JSONValue = [
            "type": "object", "properties": ["verdict": ["type": "string", "enum": ["Equal", "Not Equal"]]],
            "required": ["verdict"], "additionalProperties": false,
        ]
        try assertValid(verdict, #"{"verdict":"Not Equal"}"#)
        try assertRefused(verdict, #"{"verdict":"Equals"}"#, at: 17)
        try assertRefused(verdict, #"{"verdict":"equal"}"#, at: 12)
    }

    func testUnsupportedKeywordsNameTheKeywordAndPath() throws {
        func message(_ s: JSONValue) -> String {
            do {
                _ = try JSONSchemaGrammar(schema: s)
                return "compiled"
            } catch { return "\(error)" }
        }
        let pattern = message([
            "type": "object",
            "properties": ["pairs": ["type": "array", "items": ["type": "string", "pattern": "^a"]]],
        ])
        XCTAssertTrue(pattern.contains("'pattern'") && pattern.contains("$.properties.pairs.items.pattern"), pattern)
        let anyOf = message(["anyOf": [["type": "string"]]])
        XCTAssertTrue(anyOf.contains("'anyOf'") && anyOf.contains("$.anyOf"), anyOf)
        XCTAssertTrue(message(["type": ["string", "null"]]).contains("$.type"))
        XCTAssertTrue(message(["type": "number", "minimum": 1]).contains("'minimum'"))
        XCTAssertTrue(message(["type": "object", "properties": [:], "required": ["a"]]).contains("'a'"))
        XCTAssertTrue(message(["type": "string", "minLength": 3, "maxLength": 2]).contains("minLength"))
        XCTAssertEqual(message(["type": "string", "title": "t", "description": "d"]), "compiled")
    }

    /// Every short string over an alphabet of JSON's structural characters, letters, escapes and UTF-8 pieces as a
    /// vocabulary; random documents walked token by token: the fast mask equals the reference mask at every step.
    func testFastMaskEqualsReferenceOnSyntheticVocabulary() throws {
        let ascii = ["{", "}", "[", "]", ":", ",", "\"", "\\", "Q", "1", "-", ".", " ", "\n", "E", "N"]
            + "abcdefghijklmnopqrstuvwxyz".map { String($0) }
        let alphabet: [[UInt8]] = ascii.map { Array($0.utf8) } + [[0xC3], [0xA9], [0xF0, 0x9F], [0x98, 0x80], [0xED, 0xA0]]
        var vocab: [[UInt8]?] = [nil]  // a special token
        for a in alphabet { vocab.append(a) }
        for a in alphabet { for b in alphabet { vocab.append(a + b) } }
        for w in ["\"question\":\"", "\"answer\":", "\"pairs\":[{", "\",\"", "\"}", "\"}]}", "é", "ab", "null", "true", "Not Equal", "Equal"] {
            vocab.append(Array(w.utf8))
        }
        vocab.append(Array("abc".utf8))  // a duplicate of the same bytes under two ids
        vocab.append(Array("abc".utf8))
        let trie = TokenTrie(tokens: vocab, vocabSize: vocab.count + 5)
        let schemas: [JSONValue] = [
            Self.qa,
            ["type": "object", "properties": ["verdict": ["type": "string", "enum": ["Equal", "Not Equal"]]], "required": ["verdict"]],
            ["type": "array", "maxItems": 4, "items": ["type": "object", "properties": ["x": ["type": "number"], "s": ["type": "string", "maxLength": 3], "k": ["type": "boolean"]]]],
        ]
        var rng = SplitMix64(seed: 7)
        var steps = 0
        for schema in schemas {
            let mask = TokenMask(grammar: try JSONSchemaGrammar(schema: schema), trie: trie)
            for _ in 0..<60 {
                var m = GrammarMatcher(mask.grammar)
                var text: [UInt8] = []
                for _ in 0..<200 {
                    let fast = mask.mask(m), ref = mask.referenceMask(m)
                    XCTAssertEqual(fast, ref, "after \(String(decoding: text, as: UTF8.self))")
                    steps += 1
                    let allowed = (0..<vocab.count).filter { fast[$0 >> 6] >> UInt64($0 & 63) & 1 == 1 }
                    if m.isComplete && (allowed.isEmpty || rng.next() % 8 == 0) { break }
                    XCTAssertFalse(allowed.isEmpty, "dead end after \(String(decoding: text, as: UTF8.self))")
                    guard !allowed.isEmpty else { break }
                    let t = allowed[Int(rng.next() % UInt64(allowed.count))]
                    XCTAssertTrue(m.feed(vocab[t]!))
                    text += vocab[t]!
                }
                // Whatever was generated, complete or not, is a prefix the matcher took.
                if m.isComplete { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(text), options: [.fragmentsAllowed])) }
            }
        }
        XCTAssertGreaterThan(steps, 1000)
    }
}
