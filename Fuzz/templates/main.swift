// libFuzzer target for the templates Loom loads from disk: every input goes to the chat template reader
// (templates/chat/*.json, `ChatTemplate(text:)`), to the Mustache prompt templates (`TemplateDirectory.parse`, what
// templates/qa, evol, preference go through) and to the reading-comprehension phrasings (templates/rc/*.yaml,
// `RCTemplates(yaml:)`). Any bytes must give a template or a LoomError naming the file, never a crash, a hang or
// unbounded memory. A chat template renders a fixed conversation (its trained spans must lie inside the text, in
// order); a Mustache template renders against a small fixed context. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-templates
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-templates /tmp/tmcorpus -max_total_time=600 -max_len=4096

import LoomCore
import LoomGenerate
import LoomTokenizer
import Mustache

let conversation = [
    ChatMessage(role: "system", content: " Be brief. "), ChatMessage(role: "user", content: "What is 2+2?"),
    ChatMessage(role: "assistant", content: "4"), ChatMessage(role: "user", content: "And 3+3?\n"),
]
nonisolated(unsafe) let context: [String: Any] = [
    "question": "What is 2+2?", "answer": "4", "text": "A <b>short</b> passage & more.", "instruction": "Rewrite it.",
    "examples": [["question": "q1", "answer": "a1"], ["question": "q2", "answer": "a2"]], "count": 3, "flag": true,
    "empty": [String](), "nested": ["inner": ["deep": "value"]],
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let chat = try? ChatTemplate(text: text, source: "fuzz/chat.json") {
        for prompt in [false, true] {
            guard let (out, spans) = try? chat.render(conversation, addGenerationPrompt: prompt) else { continue }
            var last = 0
            for s in spans {
                if s.lowerBound < last || s.upperBound > out.utf8.count { fatalError("span \(s) outside the text or out of order") }
                last = s.upperBound
            }
        }
    }
    if let (template, _) = try? TemplateDirectory.parse(text, path: "fuzz/prompt.mustache") {
        _ = template.render(context)
    }
    _ = try? RCTemplates(yaml: text, path: "fuzz/rc/en.yaml", language: "en")
    return 0
}
