import ArgumentParser
import Foundation
import LoomCore

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Distributions of a dataset: record kinds, text lengths, and every number under meta.quality.",
        discussion: """
            Reads records (a stage directory, a folder of .jsonl files or one
            file) and prints how many there are, the distribution (mean, p10,
            median, p90) of their text length in characters and words, and of
            every number under meta.quality (what `loom filter --mode score`
            writes), with how often each check failed. Use it to choose filter
            thresholds by looking at data:

              loom filter out/chunks -o out/scored --mode score
              loom stats out/scored
              loom filter out/chunks -o out/filtered --set gopher-quality.min_doc_words=40

            --json prints the same as one JSON object.
            """)

    @Argument(help: "Records: a stage directory, a folder of .jsonl files or one .jsonl file.")
    var input: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        do {
            let source = try RecordSource.resolve([input])
            var records = 0
            var kinds: [String: Int] = [:]
            var values: [String: [Double]] = [:]
            var failed: [String: Int] = [:]
            try source.forEachRecord(
                { r, _, _ in
                    records += 1
                    let kind = r["text"] != nil ? "text" : r["messages"] != nil ? "messages" : r["chosen"] != nil ? "preference" : "other"
                    kinds[kind, default: 0] += 1
                    if let t = RecordText.text(r) {
                        values["text.chars", default: []].append(Double(t.unicodeScalars.count))
                        values["text.words", default: []].append(Double(t.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count))
                    }
                    guard let q = r["meta"]?["quality"]?.objectValue else { return }
                    for (rule, v) in q {
                        if rule == "failed" {
                            for f in v.arrayValue ?? [] { if let s = f.stringValue { failed[s, default: 0] += 1 } }
                            continue
                        }
                        for (k, x) in v.objectValue ?? JSONObject() {
                            if let d = x.doubleValue { values["quality.\(rule).\(k)", default: []].append(d) }
                        }
                    }
                }, bad: { _, _, _ in })
            var out = JSONObject()
            out["records"] = .int(records)
            out["kinds"] = .object(JSONObject(kinds.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) }))
            var dist = JSONObject()
            for k in values.keys.sorted() {
                let v = values[k]!.sorted()
                func q(_ p: Double) -> Double { v[min(v.count - 1, Int((p * Double(v.count - 1)).rounded()))] }
                dist[k] = [
                    "n": .int(v.count), "mean": .double(v.reduce(0, +) / Double(v.count)), "p10": .double(q(0.1)),
                    "p50": .double(q(0.5)), "p90": .double(q(0.9)),
                ]
            }
            out["distributions"] = .object(dist)
            out["failed"] = .object(JSONObject(failed.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) }))
            if json {
                var bytes: [UInt8] = []
                JSONValue.object(out).write(to: &bytes)
                print(String(decoding: bytes, as: UTF8.self))
                return
            }
            print("\(records) records: " + kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
            func f(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(format: "%.4g", x) }
            let width = max(12, (dist.map { $0.key.count }.max() ?? 0) + 2)
            print("measure".padding(toLength: width, withPad: " ", startingAt: 0) + "       n       mean        p10     median        p90")
            for (k, v) in dist {
                let cols = ["n", "mean", "p10", "p50", "p90"].map { key -> String in
                    let s = v[key]?.doubleValue.map(f) ?? "-"
                    return String(repeating: " ", count: max(0, 10 - s.count)) + s
                }
                print(k.padding(toLength: width, withPad: " ", startingAt: 0) + cols.joined(separator: " "))
            }
            if !failed.isEmpty {
                print("failed checks (records):")
                for (k, n) in failed.sorted(by: { $0.value > $1.value }) { print("  \(k): \(n)") }
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}
