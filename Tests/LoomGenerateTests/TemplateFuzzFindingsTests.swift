// loom-fuzz-templates' finding (Fuzz/templates): templates/preference/question-only.mustache, `{{question}}`, read
// as a reading-comprehension YAML file trapped inside Yams (a flow mapping whose key is a mapping, force-unwrapped as
// a string). Every YAML file Loom reads as Swift values goes through YAMLFile.load now, which refuses it by line.

import Foundation
import LoomCore
import XCTest

@testable import LoomGenerate

final class TemplateFuzzFindingsTests: XCTestCase {
    func testMustacheTextReadAsYAML() {
        XCTAssertThrowsError(try RCTemplates(yaml: "{{question}}\n", path: "rc/en.yaml", language: "en")) {
            XCTAssertTrue("\($0)".contains("rc/en.yaml:1: a mapping key must be a plain value, not a mapping"), "\($0)")
        }
        XCTAssertThrowsError(try RCTemplates(yaml: "summary:\n  - {[a]: b}\n", path: "rc/en.yaml", language: "en")) {
            XCTAssertTrue("\($0)".contains("rc/en.yaml:2: a mapping key must be a plain value, not a list"), "\($0)")
        }
    }

    // The same bytes as a Mustache prompt template, what they are: a template that renders.
    func testMustacheTextAsATemplate() throws {
        let (template, _) = try TemplateDirectory.parse("{{question}}\n", path: "preference/question-only.mustache")
        XCTAssertEqual(template.render(["question": "Why & how?"]), "Why & how?")
    }
}
