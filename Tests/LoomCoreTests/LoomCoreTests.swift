import Foundation
import XCTest

@testable import LoomCore

final class JSONTests: XCTestCase {
    func testWriteEscapesOnlyWhatJSONRequires() {
        let v: JSONValue = ["a": "quote \" back \\ nl \n tab \t ctl \u{01} é 한 🙂", "n": 3, "d": 1.5, "z": nil, "b": true]
        XCTAssertEqual(
            v.jsonString, #"{"a":"quote \" back \\ nl \n tab \t ctl \u0001 é 한 🙂","n":3,"d":1.5,"z":null,"b":true}"#)
    }

    func testRoundTripKeepsKeyOrder() throws {
        let text = #"{"z":1,"a":[true,false,null,{"k":"v"}],"m":-2.5e3,"s":"\u00e9\ud83d\ude42\/"}"#
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v.objectValue?.keys, ["z", "a", "m", "s"])
        XCTAssertEqual(v["s"], "é🙂/")
        XCTAssertEqual(try JSONValue.parse(v.jsonString), v)
    }

    func testLargeObjectsKeepOrderReplaceInPlaceAndRemove() throws {
        // 40,000 keys: above JSONObject.indexAbove, so reads and writes go through the key index.
        let n = 40_000
        var text = "{" + (0..<n).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        text += ",\"k7\":\"again\"}"  // a repeated key replaces the first in place, as for small objects
        let o = try XCTUnwrap(try JSONValue.parse(text).objectValue)
        XCTAssertEqual(o.count, n)
        XCTAssertEqual(o.keys.prefix(3), ["k0", "k1", "k2"])
        XCTAssertEqual(o["k7"], "again")
        XCTAssertEqual(o.pairs[7].key, "k7")
        XCTAssertEqual(o["k39999"], 39999)
        XCTAssertNil(o["k40000"])
        var m = o
        m["k5"] = nil
        XCTAssertEqual(m.count, n - 1)
        XCTAssertNil(m["k5"])
        XCTAssertEqual(m["k6"], 6)
        XCTAssertEqual(m.pairs[5].key, "k6")
        m["new"] = 1
        XCTAssertEqual(m.keys.last, "new")
        XCTAssertEqual(m["new"], 1)
        XCTAssertEqual(o["k5"], 5)  // the copy was not touched
        // append keeps the first occurrence readable, as a scan would.
        var a = JSONObject()
        for i in 0..<20 { a.append("x\(i)", .int(i)) }
        a.append("x3", "later")
        XCTAssertEqual(a["x3"], 3)
        XCTAssertEqual(a.count, 21)
        XCTAssertEqual(try JSONValue.parse(JSONValue.object(o).jsonString), .object(o))
    }

    func testLongStringsWithEscapesAtEveryOffset() throws {
        // Exercises the eight-bytes-at-a-time path: an escape at each position of a word.
        for i in 0..<20 {
            var s = String(repeating: "a", count: 20)
            s.insert("\"", at: s.index(s.startIndex, offsetBy: i))
            let v = JSONValue.string(s)
            XCTAssertEqual(try JSONValue.parse(v.jsonString), v)
            XCTAssertEqual(v.jsonString.filter { $0 == "\\" }.count, 1)
        }
    }

    func testParseErrorsGiveTheOffset() {
        XCTAssertThrowsError(try JSONValue.parse(#"{"a": tru}"#)) { e in
            XCTAssertEqual((e as? JSONParseError)?.offset, 6)
        }
        XCTAssertThrowsError(try JSONValue.parse(#"{"a": 1} x"#))
        XCTAssertThrowsError(try JSONValue.parse(#""\ud800""#))
        XCTAssertThrowsError(try JSONValue.parse(String(repeating: "[", count: 600)))
    }

    func testWriterMatchesValueWriter() {
        let w = JSONWriter(capacity: 8)  // small, so the buffer grows while writing
        w.beginObject()
        w.field("id", "x")
        w.key("list")
        w.beginArray()
        w.int(1)
        w.beginObject()
        w.key("b")
        w.bool(false)
        w.endObject()
        w.string("s")
        w.endArray()
        w.field("skipped", nil)
        w.key("empty")
        w.beginObject()
        w.endObject()
        w.key("esc")
        w.string("q\" b\\ n\n c\u{01} é")
        w.endObject()
        let expected: JSONValue = ["id": "x", "list": [1, ["b": false], "s"], "empty": [:], "esc": "q\" b\\ n\n c\u{01} é"]
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), expected.jsonString)
    }
}

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}

/// A stage for tests: writes `count` records; optionally rejects every seventh, or fails a whole input.
struct CountingStage: Stage {
    var count: Int
    var input: String?
    var failAt: Int? = nil
    var name: String { "count" }
    var config: JSONValue { ["count": .int(count)] }
    var inputs: [StageInput] { input.map { [.file($0)] } ?? [] }

    func run(_ ctx: StageContext) throws {
        ctx.progress.begin(totalBytes: nil)
        for i in 0..<count {
            if i % 7 == 6 {
                try ctx.reject(Reject(source: "gen", reason: "multiple of seven", line: i + 1))
                continue
            }
            try ctx.output.write(["id": .string("r\(i)"), "text": .string("record \(i)")])
            ctx.progress.add(items: 1)
        }
        ctx.setCount("generated", count)
        if let failAt { ctx.fail("input broken at record \(failAt)") }
    }
}

final class StageRunnerTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-core-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testShardsRejectsAndManifest() throws {
        let out = dir + "/out"
        let r = try StageRunner.run(CountingStage(count: 25), directory: out, options: RunOptions(shardRecords: 10, quiet: true))
        XCTAssertFalse(r.skipped)
        XCTAssertEqual(FS.list(out), ["manifest.json", "part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl", "rejects.jsonl"])
        XCTAssertEqual(r.manifest.shards.map(\.records), [10, 10, 2])
        XCTAssertEqual(r.manifest.records, 22)
        XCTAssertEqual(r.manifest.rejects, 3)
        XCTAssertEqual(r.manifest.counts["generated"], 25)
        let m = try Manifest.read(directory: out)
        XCTAssertEqual(m.deterministicJSON, r.manifest.deterministicJSON)
        let rejectLines = try String(contentsOfFile: out + "/rejects.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rejectLines.first, #"{"source":"gen","reason":"multiple of seven","line":7}"#)
        var ids: [String] = []
        try StageReader(directory: out).forEachRecord({ v, _, _ in ids.append(v["id"]!.stringValue!) }, bad: { e, _, _ in throw e })
        XCTAssertEqual(ids.count, 22)
        XCTAssertEqual(ids.first, "r0")
    }

    func testSkipsWhenUpToDateAndRerunsWhenConfigOrInputChanges() throws {
        let out = dir + "/out"
        let input = dir + "/input.txt"
        FileManager.default.createFile(atPath: input, contents: Data("a".utf8))
        let opts = RunOptions(quiet: true)
        XCTAssertFalse(try StageRunner.run(CountingStage(count: 5, input: input), directory: out, options: opts).skipped)
        XCTAssertTrue(try StageRunner.run(CountingStage(count: 5, input: input), directory: out, options: opts).skipped)
        XCTAssertFalse(try StageRunner.run(CountingStage(count: 6, input: input), directory: out, options: opts).skipped)
        FileManager.default.createFile(atPath: input, contents: Data("bb".utf8))
        XCTAssertFalse(try StageRunner.run(CountingStage(count: 6, input: input), directory: out, options: opts).skipped)
        XCTAssertFalse(
            try StageRunner.run(
                CountingStage(count: 6, input: input), directory: out, options: RunOptions(force: true, quiet: true)
            ).skipped)
        // A damaged shard (size differs from the manifest) makes the stage run again.
        FileManager.default.createFile(atPath: out + "/part-00000.jsonl", contents: Data("x\n".utf8))
        XCTAssertFalse(try StageRunner.run(CountingStage(count: 6, input: input), directory: out, options: opts).skipped)
    }

    func testInterruptedRunIsCleanedUpButForeignFilesStay() throws {
        let out = dir + "/out"
        try FS.makeDirectory(out + "/.loom-work")
        for f in ["part-00000.jsonl", "part-00007.jsonl", "part-00001.jsonl.tmp", "rejects.jsonl.tmp", "notes.txt"] {
            FileManager.default.createFile(atPath: out + "/" + f, contents: Data("stale\n".utf8))
        }
        let r = try StageRunner.run(CountingStage(count: 3), directory: out, options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.records, 3)
        XCTAssertEqual(FS.list(out), ["manifest.json", "notes.txt", "part-00000.jsonl", "rejects.jsonl"])
    }

    func testFailedStageIsMarkedAndNotSkipped() throws {
        let out = dir + "/out"
        let r = try StageRunner.run(CountingStage(count: 3, failAt: 2), directory: out, options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.status, "failed")
        XCTAssertEqual(r.manifest.errors, ["input broken at record 2"])
        XCTAssertFalse(try StageRunner.run(CountingStage(count: 3, failAt: 2), directory: out, options: RunOptions(quiet: true)).skipped)
    }

    func testEmptyStageStillHasOneShard() throws {
        let r = try StageRunner.run(CountingStage(count: 0), directory: dir + "/e", options: RunOptions(quiet: true))
        XCTAssertEqual(r.manifest.shards.map(\.file), ["part-00000.jsonl"])
        XCTAssertEqual(r.manifest.records, 0)
    }

    func testReadingADirectoryWithoutManifestIsAClearError() {
        XCTAssertThrowsError(try StageReader(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("has no manifest.json"), "\(e)")
        }
    }
}

final class PipelineTests: XCTestCase {
    func load(_ yaml: String) throws -> Pipeline {
        let path = NSTemporaryDirectory() + "loom-pipe-" + UUID().uuidString.prefix(8) + ".yaml"
        FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Pipeline.load(path: path)
    }

    func testStepsKeepOrderTypesAndLines() throws {
        let p = try load(
            """
            name: demo
            output: out/
            steps:
              - ingest: { kind: pubmed, paths: [a.xml, "b.xml"], since: 1990, require_abstract: true }
              - chunk:
                  max_tokens: 128
                  ratio: 0.5
                  name: "007"
              - chunk
            """)
        XCTAssertEqual(p.name, "demo")
        XCTAssertEqual(p.steps.map(\.name), ["ingest", "chunk", "chunk"])
        XCTAssertEqual(p.steps.map(\.line), [4, 5, 9])
        XCTAssertEqual(p.steps[0].options["since"], 1990)
        XCTAssertEqual(p.steps[0].options["require_abstract"], true)
        XCTAssertEqual(p.steps[0].options["paths"], ["a.xml", "b.xml"])
        XCTAssertEqual(p.steps[1].options["ratio"], 0.5)
        XCTAssertEqual(p.steps[1].options["name"], "007")
        XCTAssertEqual(p.steps[2].options, [:])
        XCTAssertEqual(p.stepDirectory(1, output: "o"), "o/02-chunk")
    }

    func testBadFilesGiveClearErrors() {
        XCTAssertThrowsError(try load("name: x\nsteps: 3\n")) { XCTAssertTrue("\($0)".contains("'steps' must be a list")) }
        XCTAssertThrowsError(try load("name: x\nstep: []\n")) { XCTAssertTrue("\($0)".contains("unknown top-level key 'step'")) }
        XCTAssertThrowsError(try load("steps:\n  - a: 1\n    b: 2\n")) { XCTAssertTrue("\($0)".contains(":2: each step")) }
        XCTAssertThrowsError(try load("steps: [ {a: 1}\n")) { XCTAssertTrue("\($0)".contains(".yaml")) }
    }

    func testUnknownStepAndOptionAreErrorsBeforeAnythingRuns() throws {
        struct Opts: Codable { var count: Int }
        let runner = PipelineRunner(factories: [
            "count": { ctx in
                let o = try ctx.step.options.decode(Opts.self, allowedKeys: ["count"], context: ctx.location)
                return CountingStage(count: o.count)
            }
        ])
        let out = NSTemporaryDirectory() + "loom-pipe-out-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: out) }
        XCTAssertThrowsError(try runner.run(try load("steps:\n  - count: {count: 2}\n  - nope: {}\n"), output: out)) {
            XCTAssertTrue("\($0)".contains(":3: unknown step 'nope' (known: count)"), "\($0)")
        }
        XCTAssertFalse(FS.exists(out + "/01-count"))
        XCTAssertThrowsError(try runner.run(try load("steps:\n  - count: {count: 2, cuont: 3}\n"), output: out)) {
            XCTAssertTrue("\($0)".contains("unknown option 'cuont'"), "\($0)")
        }
        XCTAssertThrowsError(try runner.run(try load("steps:\n  - count: {count: two}\n"), output: out)) {
            XCTAssertTrue("\($0)".contains("option 'count' has the wrong type"), "\($0)")
        }
        let results = try runner.run(try load("steps:\n  - count: {count: 2}\n  - count: {count: 3}\n"), output: out, options: RunOptions(quiet: true))
        XCTAssertEqual(results.map(\.manifest.records), [2, 3])
        XCTAssertEqual(FS.list(out), ["01-count", "02-count"])
    }
}

extension PipelineTests {
    func testStepReferenceWithASubfolder() throws {
        let p = try load("steps:\n  - split: {}\n  - count: {input: \"@split/test\"}\n")
        let ctx = StepContext(pipeline: p, step: p.steps[1], input: nil, index: 1, output: "/tmp/o")
        XCTAssertEqual(try ctx.resolveStep("@split/test"), "/tmp/o/01-split/test")
        XCTAssertEqual(try ctx.resolveStep("@1/train"), "/tmp/o/01-split/train")
        XCTAssertThrowsError(try ctx.resolveStep("@split/../x")) { XCTAssertTrue("\($0)".contains("inside the step's output"), "\($0)") }
        XCTAssertThrowsError(try ctx.resolveStep("@nope/test")) { XCTAssertTrue("\($0)".contains("no earlier step is named 'nope'"), "\($0)") }
    }
}

final class JSONScanTests: XCTestCase {
    func scan(_ s: String, _ keys: [String]) throws -> (JSONMembers, [UInt8]) {
        let bytes = Array(s.utf8)
        let m = try bytes.withUnsafeBufferPointer { try JSONScan.scan($0, keys: keys.map { Array($0.utf8) }) }
        return (m, bytes)
    }

    func testAcceptsAndRejectsExactlyWhatParseDoes() {
        let lines = [
            #"{"id": 1, "text": "a\"b\\c\u00e9\ud83d\ude00\n"}"#, #"{"a": [1, 2.5e3, -0, true, false, null, {"b": {}}]}"#,
            #"[1, "x"]"#, #""just a string""#, "  {}  ", #"{"a": tru}"#, #"{"a": 1} x"#, #""\ud800""#, #"{"a": "\q"}"#,
            "{\"a\": \"tab\there\"}", #"{"a": 1,}"#, #"{"a" 1}"#, #"{"a": -}"#, #"{"a": 1.2.3}"#, #"{"a": "\u12G4"}"#,
            String(repeating: "[", count: 600), "", "{", #"{"a": 99999999999999999999999}"#, #"{"a": "x"#,
        ]
        for line in lines {
            let parsed = (try? JSONValue.parse(line)) != nil
            let scanned = (try? scan(line, ["a"])) != nil
            XCTAssertEqual(scanned, parsed, line)
        }
    }

    func testFindsTopLevelMembersAndUnescapes() throws {
        let line = #"{"meta": {"text": "inner"}, "id": "x-1", "te\u0078t": "caf\u00e9 \"q\" \ud83d\ude00\tend", "n": 3}"#
        let (m, bytes) = try scan(line, ["text", "id", "missing"])
        XCTAssertTrue(m.isObject)
        XCTAssertNil(m.values[2])
        let idRange = try XCTUnwrap(m.values[1])
        XCTAssertEqual(String(decoding: bytes[idRange], as: UTF8.self), "\"x-1\"")
        var out: [UInt8] = []
        bytes.withUnsafeBufferPointer { JSONScan.appendString($0, m.values[0]!, to: &out) }
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "café \"q\" 😀\tend")
        XCTAssertEqual(String(decoding: out, as: UTF8.self), try JSONValue.parse(line)["text"]?.stringValue)
        XCTAssertFalse(try scan("[1]", ["text"]).0.isObject)
    }
}

// YAMLFile.load, the reader of every YAML file Loom takes as Swift values (templates, rule files), refuses what
// trapped or exhausted memory in Yams.load (loom-fuzz-templates, Fuzz/templates).
final class YAMLFileTests: XCTestCase {
    func testNonScalarKeysAreErrorsWithTheLine() {
        XCTAssertThrowsError(try YAMLFile.load("a: 1\n{{question}}: 2\n", file: "t.yaml")) {
            XCTAssertTrue("\($0)".contains("t.yaml:2: a mapping key must be a plain value, not a mapping"), "\($0)")
        }
        XCTAssertThrowsError(try YAMLFile.load("? [a, b]\n: c\n", file: "t.yaml")) {
            XCTAssertTrue("\($0)".contains("not a list"), "\($0)")
        }
        let v = try? YAMLFile.load("a: [1, x]\n", file: "t.yaml") as? [String: Any]
        XCTAssertEqual((v?["a"] as? [Any])?.count, 2)
        XCTAssertEqual((v?["a"] as? [Any])?.last as? String, "x")
        XCTAssertNil(try YAMLFile.load("", file: "t.yaml"))
    }

    func testAliasBombIsRefused() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...7 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        XCTAssertThrowsError(try YAMLFile.load(text, file: "bomb.yaml")) {
            XCTAssertTrue("\($0)".contains("bomb.yaml: more than 1000000 values once its aliases are expanded"), "\($0)")
        }
    }
}
