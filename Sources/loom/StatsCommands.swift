import ArgumentParser
import Foundation
import LoomCore

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Distributions of a dataset: kinds, lengths, languages, task types, meta.quality and meta.scores.",
        discussion: """
            Reads records (a stage directory, a folder of .jsonl files or one
            file) and prints how many there are of each kind, the languages
            they declare, their task types, and the distribution (mean, p10,
            median, p90) of their text length in characters and words, of
            every number under meta.quality (what `loom filter --mode score`
            writes), with how often each check failed, and of every score
            under meta.scores (what the generators write: RC answers found
            verbatim in the chunk, QA grounding, whether yosys and iverilog
            accept a Verilog target, a preference pair's length ratio and
            similarity). Yes/no scores are marked `*`: their mean is the share
            of yes. Use it to choose filter thresholds by looking at data:

              loom filter out/chunks -o out/scored --mode score
              loom stats out/scored
              loom filter out/chunks -o out/filtered --set gopher-quality.min_doc_words=40

            A stage directory that holds no records (a training run, a
            report) prints its stage name and manifest counts.
            --json prints the same as one JSON object.
            """)

    @Argument(help: "Records: a stage directory, a folder of .jsonl files or one .jsonl file.")
    var input: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        do {
            // A stage directory without records (train, merge, report): what its manifest counted.
            if FS.isDirectory(input), FS.exists(FS.join(input, Manifest.fileName)) {
                let m = try Manifest.read(directory: input)
                if m.records == 0 { return printWithoutRecords(m) }
            }
            var stats = RecordStats()
            try RecordSource.resolve([input]).forEachRecord({ r, _, _ in stats.add(r) }, bad: { _, _, _ in })
            let out = stats.summary
            if json { return printJSON(out) }
            print("\(stats.records) records: " + stats.kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
            func list(_ v: JSONValue?) -> String {
                (v?.objectValue ?? JSONObject()).map { "\($0.value.intValue ?? 0) \($0.key)" }.joined(separator: ", ")
            }
            if !stats.languages.isEmpty { print("languages: " + list(out["languages"])) }
            if !stats.tasks.isEmpty { print("task types: " + list(out["tasks"])) }
            guard let dist = out["distributions"]?.objectValue, dist.count > 0 else { return }
            func f(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(format: "%.4g", x) }
            let width = max(12, (dist.map { $0.key.count }.max() ?? 0) + 3)
            print("measure".padding(toLength: width, withPad: " ", startingAt: 0) + "       n       mean        p10     median        p90")
            for (k, v) in dist {
                let cols = ["n", "mean", "p10", "p50", "p90"].map { key -> String in
                    let s = v[key]?.doubleValue.map(f) ?? "-"
                    return String(repeating: " ", count: max(0, 10 - s.count)) + s
                }
                let name = k + (stats.booleans.contains(k) ? " *" : "")
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + cols.joined(separator: " "))
            }
            if !stats.booleans.isEmpty { print("* yes/no: the mean is the share of yes") }
            if !stats.failed.isEmpty {
                print("failed checks (records):")
                for (k, n) in stats.failed.sorted(by: { $0.value > $1.value }) { print("  \(k): \(n)") }
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }

    func printJSON(_ o: JSONObject) {
        var bytes: [UInt8] = []
        JSONValue.object(o).write(to: &bytes)
        print(String(decoding: bytes, as: UTF8.self))
    }

    func printWithoutRecords(_ m: Manifest) {
        if json {
            printJSON(JSONObject([("stage", .string(m.stage)), ("records", .int(0)), ("counts", .object(m.counts))]))
            return
        }
        print("0 records: stage \(m.stage) wrote no records")
        let scalars = m.counts.filter { $0.value.doubleValue != nil || $0.value.stringValue != nil }
        if !scalars.isEmpty {
            print("manifest counts: " + scalars.map { "\($0.key) \($0.value.doubleValue.map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int($0)) : String(format: "%.4g", $0) } ?? $0.value.stringValue ?? "")" }.joined(separator: ", "))
        }
    }
}
