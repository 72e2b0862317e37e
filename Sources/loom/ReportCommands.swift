// `loom report OUT_DIR` and the pipeline step `report:`.

import ArgumentParser
import Foundation
import LoomCore
import LoomReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write OUT_DIR/report.html: one page a person reads about a pipeline run.",
        discussion: """
            Reads the stage directories of a 'loom run' output (NN-step/ with
            manifest.json, rejects.jsonl, records and side files) and writes a
            single self-contained HTML file: inline CSS and SVG charts, no
            script, no fonts or images fetched. Open it in any browser.

            Sections: per stage the records in and out, rejects grouped by
            reason with examples and file:line, time and throughput; dataset
            statistics (length histograms, task-type mix, languages); dedup
            clusters with the kept and removed texts side by side; packing
            efficiency against first-fit-decreasing; training and evaluation
            loss curves (and DPO/ORPO reward margins); the merge; and a few
            generated records picked at random (--seed) traced back through
            their meta.provenance to the PubMed article, PDF page or Verilog
            module they came from. A section whose step did not run says so.

            The page is deterministic: the same directories give the same
            bytes (its only times are the manifests').

            Examples:
              loom report out/demo                 # writes out/demo/report.html
              loom report out/demo -o /tmp/run.html --seed 7 --samples 5

            In a pipeline, as the last step (writes NN-report/report.html):
              - report: { seed: 1, samples: 3 }
            """)

    @Argument(help: "The pipeline output directory (what 'loom run' wrote).")
    var directory: String

    @Option(name: [.short, .customLong("output")], help: "Write the page here instead of OUT_DIR/report.html.")
    var output: String?

    @Option(help: "Seed for the records whose provenance is traced.")
    var seed: UInt64 = 1

    @Option(help: "How many generated records to trace back to their source.")
    var samples = 3

    @Option(help: "Records read per stage for the statistics (counts from the manifests are always whole).")
    var maxRecords = 200_000

    @Option(help: "Duplicate clusters shown per dedup stage.")
    var clusters = 5

    @Option(help: "The page's title (default: the directory's name).")
    var title: String?

    func validate() throws {
        guard samples >= 0 else { throw ValidationError("--samples must be 0 or more") }
        guard maxRecords > 0 else { throw ValidationError("--max-records must be positive") }
        guard clusters >= 0 else { throw ValidationError("--clusters must be 0 or more") }
    }

    func run() throws {
        var o = ReportOptions()
        o.seed = seed
        o.provenanceSamples = samples
        o.maxRecords = maxRecords
        o.dedupClusters = clusters
        o.title = title
        do {
            print(try Report.write(root: directory, output: output, options: o))
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

enum ReportSteps {
    static let keys = ["seed", "samples", "max_records", "clusters", "title"]

    /// `- report: { seed: 1, samples: 3, max_records: 200000, clusters: 5, title: "..." }`: a report on every
    /// earlier step.
    static func step(_ ctx: StepContext) throws -> any Stage {
        let o = ctx.step.options.objectValue ?? JSONObject()
        for k in o.keys where !keys.contains(k) {
            throw LoomError("\(ctx.location): unknown option '\(k)' (allowed: \(keys.joined(separator: ", ")))")
        }
        var options = ReportOptions()
        func int(_ k: String, min: Int) throws -> Int? {
            guard let v = o[k] else { return nil }
            guard let i = v.intValue, i >= min else { throw LoomError("\(ctx.location): '\(k)' must be an integer >= \(min)") }
            return i
        }
        if let s = try int("seed", min: 0) { options.seed = UInt64(s) }
        if let s = try int("samples", min: 0) { options.provenanceSamples = s }
        if let s = try int("max_records", min: 1) { options.maxRecords = s }
        if let s = try int("clusters", min: 0) { options.dedupClusters = s }
        if let t = o["title"] {
            guard let s = t.stringValue else { throw LoomError("\(ctx.location): 'title' must be a string") }
            options.title = s
        }
        if options.title == nil { options.title = ctx.pipeline.name }
        let dirs = (0..<ctx.index).map { ctx.pipeline.stepDirectory($0, output: ctx.output) }
        guard !dirs.isEmpty else { throw LoomError("\(ctx.location): report needs steps before it") }
        return ReportStage(root: ctx.output, directories: dirs, options: options)
    }
}
