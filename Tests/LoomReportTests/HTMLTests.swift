import XCTest

@testable import LoomCore
@testable import LoomReport

final class HTMLTests: XCTestCase {
    func testEscapesMarkupQuotesAndControlCharacters() {
        XCTAssertEqual(HTML.esc("<script>alert('x') & \"y\"</script>"), "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;")
        XCTAssertEqual(HTML.esc("a\u{0}b\u{7}c\td\ne"), "a\u{FFFD}b\u{FFFD}c\td\ne")
        XCTAssertEqual(HTML.esc("한국어 ok"), "한국어 ok")
    }

    func testRejectReasonsGroupWithTheirNumbersReplaced() {
        XCTAssertEqual(
            Rejects.pattern("sample of about 1209 tokens is longer than the context (512)"),
            "sample of about N tokens is longer than the context (N)")
        XCTAssertEqual(Rejects.pattern("similarity 0.85 below 1.0"), "similarity N below N")
        XCTAssertEqual(Rejects.location(["source": "a.xml", "line": 3, "column": 7]), "a.xml:3:7")
        XCTAssertEqual(Rejects.location(["source": "b.pdf", "page": 2]), "b.pdf page 2")
    }

    func testNumbersPrintTheSameWhateverTheLocale() {
        XCTAssertEqual(Num.int(1234567), "1,234,567")
        XCTAssertEqual(Num.percent(0.768555), "76.9%")
        XCTAssertEqual(Num.short(0.0005), "0.0005")
        XCTAssertEqual(Num.short(0.00002), "2e-05")
        XCTAssertEqual(Num.short(25_000), "25k")
        XCTAssertEqual(Num.seconds(0.036), "36 ms")
        XCTAssertEqual(Chart.ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
    }

    func testHistogramPutsTheLargestValueInTheLastBin() {
        let svg = Chart.histogram([80, 85, 100, 100], title: "t", xLabel: "x", bins: 10)
        // 10 bins of 10 from 0: the axis ends at 100, no bin starts at 100.
        XCTAssertTrue(svg.contains(">100</text>"))
        XCTAssertFalse(svg.contains(">110</text>"))
        XCTAssertTrue(svg.contains("<title>90–100: 2</title>"))
    }

    func testConversationsShowTheirRoles() {
        let r: JSONValue = ["messages": [["role": "user", "content": "Q?"], ["role": "assistant", "content": "A."]]]
        XCTAssertEqual(Records.display(r), "[user] Q?\n[assistant] A.")
        XCTAssertEqual(Records.text(r), "Q?\nA.")
        let p: JSONValue = ["prompt": "P", "chosen": [["role": "assistant", "content": "good"]], "rejected": "bad"]
        XCTAssertEqual(Records.format(p), "preference")
        XCTAssertEqual(Records.display(p), "── prompt ──\nP\n── chosen ──\n[assistant] good\n── rejected ──\nbad")
        XCTAssertEqual(Records.declaredLanguages(["meta": ["languages": ["eng", "kor"]]]), ["en", "ko"])
        XCTAssertEqual(Records.script("안녕하세요 세계"), "Hangul")
    }
}
