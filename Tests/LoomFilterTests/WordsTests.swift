import XCTest

@testable import LoomFilter

/// The word splitter against spaCy 3.8's English tokenizer (what datatrove's split_into_words uses): each expected
/// list was printed by `spacy.blank("en").tokenizer(text)` for these inputs.
final class WordsTests: XCTestCase {
    func words(_ s: String) -> [String] {
        let t = s.unicodeScalars.map(\.value)
        return WordSplitter.words(t).map { r in String(String.UnicodeScalarView(t[r].compactMap(Unicode.Scalar.init))) }
    }

    func testSpacyEnglishTokens() {
        let cases: [(String, [String])] = [
            ("cells.The end", ["cells", ".", "The", "end"]),
            ("see r-project.org/x now", ["see", "r-project.org/x", "now"]),
            ("e.g. this", ["e.g.", "this"]),
            ("p<0.05)", ["p<0.05", ")"]),
            ("non-small-cell", ["non", "-", "small", "-", "cell"]),
            ("10mg/kg", ["10mg", "/", "kg"]),
            ("A.B.", ["A.B."]),
            ("(n=12).", ["(", "n=12", ")", "."]),
            ("IL-2-dependent", ["IL-2", "-", "dependent"]),
            ("x=y", ["x", "=", "y"]),
            ("U.S.A.", ["U.S.A."]),
            ("https://www.r-project.org/", ["https://www.r-project.org/"]),
            ("Fig.3", ["Fig.3"]),
            ("patients.", ["patients", "."]),
            ("cannot", ["can", "not"]),
            ("1,000", ["1,000"]),
            ("a,b", ["a", ",", "b"]),
            ("Smith J.", ["Smith", "J."]),
            ("3.5%.", ["3.5", "%", "."]),
            ("wasn't", ["was", "n't"]),
        ]
        for (text, expected) in cases { XCTAssertEqual(words(text), expected, text) }
    }

    func testWhitespaceRunsAreNotWords() {
        XCTAssertEqual(words("one  two\n\nthree\tfour "), ["one", "two", "three", "four"])
        XCTAssertEqual(words(""), [])
    }

    func testKoreanSplitsOnSpacesAndPunctuation() {
        XCTAssertEqual(words("한국어 문서는 (예: 보험 약관) 띄어쓰기로 나뉜다."), ["한국어", "문서는", "(", "예", ":", "보험", "약관", ")", "띄어쓰기로", "나뉜다", "."])
        XCTAssertTrue(Chars.isAlpha(0xD55C))  // 한: a letter, as Python's isalpha says
    }

    func testSentenceCountFollowsTheSentencizer() {
        func n(_ s: String) -> Int { let t = s.unicodeScalars.map(\.value); return WordSplitter.sentenceCount(t, 0..<t.count) }
        XCTAssertEqual(n("One sentence here."), 1)
        XCTAssertEqual(n("One. Two! Three? Four."), 4)
        // An abbreviation is one token, so its full stop ends nothing; "..." is punctuation and ends nothing either.
        XCTAssertEqual(n("See e.g. the table. Then go"), 2)
        XCTAssertEqual(n("Wait... and see"), 1)
    }

    func testLinesFollowPython() {
        let t = "a\r\nb\u{2028}c\n\nd\n".unicodeScalars.map(\.value)
        XCTAssertEqual(Lines.splitlines(t, 0..<t.count).count, 5)  // a, b, c, "", d
        XCTAssertEqual(Lines.splitNewline(t, 0..<t.count).count, 5)  // "a\r", "b\u{2028}c", "", "d", ""
    }
}

/// Untrusted text: random strings of awkward characters (every affix and infix character, quotes, digits, letters
/// of several scripts, combining marks, control and private-use characters, emoji, long runs) must never crash a
/// rule set, and the tokens must partition the text: in order, inside it, not overlapping, every non-space
/// character in exactly one word.
final class RandomTextTests: XCTestCase {
    func testRandomTextNeverBreaksTheSplitterOrTheRules() {
        let pool = Array(("abcXYZ019 .,:;!?'\"()[]{}<>/=-+*^#&%$€£…—–~_@|\\°²µ\n\n\t\r\u{00A0}\u{2028}\u{0301}\u{FFFD}\u{E000}\u{1F600}"
            + "가나한글ーカナ漢字αβγабв").unicodeScalars.map(\.value))
        var seed: UInt64 = 0x5EED
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let rules: [any RuleSet] = [GopherQuality(), GopherRepetition(), C4Quality(), FineWebQuality(), OCRQuality()]
        for round in 0..<3000 {
            let n = Int(next() % 120)
            var t: Scalars = []
            for _ in 0..<n {
                let c = pool[Int(next() % UInt64(pool.count))]
                // Sometimes a run of the same character, a special case, a URL or a contraction (seeded: the same strings each run).
                switch next() % 40 {
                case 0: t += Array(repeating: c, count: Int(next() % 20))
                case 1: t += "e.g.".scalars
                case 2: t += "http://a.bc/x".scalars
                case 3: t += "don't".scalars
                default: t.append(c)
                }
            }
            var tokens: [Token] = []
            WordSplitter.tokenize(t, 0..<t.count) { tokens.append($0) }
            var pos = 0
            var covered = [Bool](repeating: false, count: t.count)
            for tok in tokens {
                XCTAssertLessThan(tok.start, tok.end, "round \(round)")
                XCTAssertGreaterThanOrEqual(tok.start, pos, "round \(round): tokens out of order")
                XCTAssertLessThanOrEqual(tok.end, t.count)
                for i in tok.start..<min(tok.end, t.count) where !tok.isSpace { covered[i] = true }
                pos = tok.end
            }
            for i in 0..<t.count where !Chars.isSpace(t[i]) {
                XCTAssertTrue(covered[i], "round \(round): character \(i) in no word")
            }
            let s = String(String.UnicodeScalarView(t.compactMap(Unicode.Scalar.init)))
            let doc = FilterDocument(s)
            for r in rules { _ = r.evaluate(doc) }
            _ = WordSplitter.sentenceCount(t, 0..<t.count)
        }
    }
}
