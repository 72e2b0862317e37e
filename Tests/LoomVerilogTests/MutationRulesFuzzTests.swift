// The mutation rules file goes through YAMLFile.load (see loom-fuzz-mutations, Fuzz/mutations): a rules file that
// is not the mapping Loom expects is a LoomError naming the file, never a trap inside Yams.

import Foundation
import LoomCore
import XCTest

@testable import LoomVerilog

final class MutationRulesFuzzTests: XCTestCase {
    func testMalformedRuleFilesAreErrors() {
        for text in ["{{rules}}\n", "rules:\n  {[a]: b}\n", "rules: [drop_keyword]\n", ""] {
            XCTAssertThrowsError(try MutationRules.parse(yaml: text, path: "m.yaml"), text.debugDescription) {
                XCTAssertTrue("\($0)".hasPrefix("m.yaml"), "\($0)")
            }
        }
        let ok = try? MutationRules.parse(yaml: "rules:\n  insert_word: {kind: syntax, words: [foo, 1]}\n", path: "m.yaml")
        XCTAssertEqual(ok?.rules.map(\.words), [["foo", "1"]])
    }
}
