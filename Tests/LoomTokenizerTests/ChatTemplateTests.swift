import Foundation
import LoomCore
import XCTest

@testable import LoomTokenizer

/// The project's templates/ folder.
let templatesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("templates").path

final class ChatTemplateTests: XCTestCase {
    let conversation = [
        ChatMessage(role: "system", content: "You are terse."),
        ChatMessage(role: "user", content: "What binds the receptor?"),
        ChatMessage(role: "assistant", content: "The protein."),
        ChatMessage(role: "user", content: "And then?"),
        ChatMessage(role: "assistant", content: "The cells respond."),
    ]

    func chatml() throws -> ChatTemplate {
        let dir = ProcessInfo.processInfo.environment["LOOM_TEMPLATES"] ?? templatesDirectory
        return try ChatTemplate.named("chatml", templates: dir)
    }

    func testChatMLRendering() throws {
        let t = try chatml()
        let (text, spans) = try t.render(conversation)
        XCTAssertEqual(
            text,
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat binds the receptor?<|im_end|>\n<|im_start|>assistant\nThe protein.<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\nThe cells respond.<|im_end|>\n")
        let bytes = Array(text.utf8)
        XCTAssertEqual(spans.map { String(decoding: bytes[$0], as: UTF8.self) }, ["The protein.<|im_end|>", "The cells respond.<|im_end|>"])
        let (prompt, none) = try t.render(Array(conversation.prefix(2)), addGenerationPrompt: true)
        XCTAssertTrue(prompt.hasSuffix("<|im_end|>\n<|im_start|>assistant\n"))
        XCTAssertEqual(none, [])
        XCTAssertThrowsError(try t.render([ChatMessage(role: "narrator", content: "x")])) {
            XCTAssertTrue("\($0)".contains("narrator"))
        }
    }

    func testLlama3TrimsContent() throws {
        let dir = ProcessInfo.processInfo.environment["LOOM_TEMPLATES"] ?? templatesDirectory
        let t = try ChatTemplate.named("llama3", templates: dir)
        let (text, spans) = try t.render([ChatMessage(role: "user", content: " hi \n"), ChatMessage(role: "assistant", content: "hello")])
        XCTAssertEqual(text, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>")
        XCTAssertEqual(spans.map { String(decoding: Array(text.utf8)[$0], as: UTF8.self) }, ["hello<|eot_id|>"])
    }

    /// The trained tokens are exactly the assistant replies and their end token.
    func testEncodeChatMask() throws {
        let t = try chatml()
        let tok = try smallTokenizer(special: t.specialTokens + ["<|endoftext|>"])
        let (ids, trained) = try tok.encodeChat(conversation, template: t)
        XCTAssertEqual(ids, tok.encode(try t.render(conversation).text))
        var runs: [String] = []
        var cur: [Int32] = []
        for (id, m) in zip(ids, trained) {
            if m { cur.append(id) } else if !cur.isEmpty {
                runs.append(tok.decode(cur))
                cur = []
            }
        }
        if !cur.isEmpty { runs.append(tok.decode(cur)) }
        XCTAssertEqual(runs, ["The protein.<|im_end|>", "The cells respond.<|im_end|>"])
    }
}
