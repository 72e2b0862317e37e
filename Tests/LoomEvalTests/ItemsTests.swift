import LoomCore
import XCTest

@testable import LoomEval

final class ItemsTests: XCTestCase {
    func testChoiceItemRoundTripAndErrors() throws {
        let item = ChoiceItem(id: "a", docId: "pubmed:1", task: "rct", context: "Sentence: x\nSection:", choices: ["methods", "results"], gold: 1)
        let back = try ChoiceItem.from(try JSONValue.parse(item.json().jsonString), fallbackID: "?")
        XCTAssertEqual(back, item)
        XCTAssertNil(try ChoiceItem.from(try JSONValue.parse(#"{"text": "plain"}"#), fallbackID: "?"))
        XCTAssertThrowsError(try ChoiceItem.from(try JSONValue.parse(#"{"context": "c", "choices": ["a", "b"], "gold": 2}"#), fallbackID: "?"))
        XCTAssertThrowsError(try ChoiceItem.from(try JSONValue.parse(#"{"context": "c", "choices": ["a"], "gold": 0}"#), fallbackID: "?"))
    }
}
