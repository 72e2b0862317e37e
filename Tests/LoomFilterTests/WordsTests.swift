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
