import XCTest

@testable import LoomReport

final class HTMLTests: XCTestCase {
    func testEscapesMarkupQuotesAndControlCharacters() {
        XCTAssertEqual(HTML.esc("<script>alert('x') & \"y\"</script>"), "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;")
        XCTAssertEqual(HTML.esc("a\u{0}b\u{7}c\td\ne"), "a\u{FFFD}b\u{FFFD}c\td\ne")
        XCTAssertEqual(HTML.esc("한국어 ok"), "한국어 ok")
    }
}
