// `loom report OUT_DIR`: one self-contained HTML page (inline CSS and SVG, no script, no external files) about a
// pipeline run, made from its stage directories alone. Deterministic: the same directories give the same bytes
// (the only times in it are the manifests' own).

import Foundation
import LoomCore

public struct ReportOptions: Sendable, Equatable {
    /// Seed for the records whose provenance is traced.
    public var seed: UInt64 = 1
    /// How many records to trace back to their source.
    public var provenanceSamples = 3
    /// Records read per stage for the statistics (the manifests' counts are always whole).
    public var maxRecords = 200_000
    /// Duplicate clusters shown per dedup stage.
    public var dedupClusters = 5
    /// The page's title (default: the output directory's name).
    public var title: String?

    public init() {}

    var json: JSONValue {
        [
            "seed": .int(Int(truncatingIfNeeded: seed)), "provenance_samples": .int(provenanceSamples),
            "max_records": .int(maxRecords), "dedup_clusters": .int(dedupClusters),
            "title": title.map { .string($0) } ?? .null,
        ]
    }
}

public enum Report {
    /// The HTML of the report on the pipeline output `root` (its NN-step/ directories).
    public static func render(root: String, options: ReportOptions = ReportOptions()) throws -> String {
        try Builder(data: try RunData.load(root: root), options: options).html()
    }

    /// The HTML of the report on the given stage directories (in pipeline order).
    public static func render(directories: [String], root: String, options: ReportOptions = ReportOptions()) throws
        -> String
    {
        try Builder(data: try RunData.load(directories: directories, root: root), options: options).html()
    }

    /// Writes `root/report.html` (or `output`) atomically; returns its path.
    @discardableResult
    public static func write(root: String, output: String? = nil, options: ReportOptions = ReportOptions()) throws
        -> String
    {
        let path = output ?? FS.join(root, "report.html")
        try FS.writeAtomically(try render(root: root, options: options), to: path)
        return path
    }

    /// The sections every report has, in order: (id, heading). A section whose stage is absent says so.
    public static let sections: [(id: String, title: String)] = [
        ("stages", "Stages"), ("rejects", "Rejects"), ("datasets", "Dataset statistics"), ("tasks", "Task types"),
        ("scores", "Generator scores"), ("languages", "Languages"), ("filter", "Quality filters"), ("dedup", "Deduplication"), ("packing", "Packing"), ("training", "Training"),
        ("evaluation", "Evaluation"), ("merge", "Merge"), ("provenance", "Provenance"),
    ]
}

/// Statistics of one data stage, from one pass over its records.
struct DataStats {
    var stage: StageDir
    var scanned = 0
    var lengths: [Double] = []
    var words: [Double] = []
    /// "generator\u{1}task" -> count, and per format.
    var tasks = Tally()
    var taskFormats = Tally()
    var languages = Tally()
    var scripts = Tally()
    var formats = Tally()
    var generated = 0
    /// meta.scores and per-task scores (LoomCore's RecordStats, scores only).
    var scores = RecordStats()
}

struct Builder {
    let data: RunData
    let options: ReportOptions
    var stats: [DataStats] = []

    init(data: RunData, options: ReportOptions) throws {
        self.data = data
        self.options = options
        for s in data.stages where !s.isTrain && !s.isMerge && s.manifest.records > 0 {
            var st = DataStats(stage: s)
            try data.forEachRecord(s, limit: options.maxRecords) { r, _, _ in
                st.scanned += 1
                let text = Records.text(r)
                st.lengths.append(Double(text.unicodeScalars.count))
                st.words.append(Double(Records.wordCount(text)))
                let format = Records.format(r)
                st.formats.add(format)
                if Records.isGenerated(r) {
                    st.generated += 1
                    let g = Records.generator(r)
                    for t in Records.tasks(r) {
                        st.tasks.add(g + "\u{1}" + t)
                        st.taskFormats.add(g + "\u{1}" + t + "\u{1}" + format)
                    }
                }
                let langs = Records.declaredLanguages(r)
                if langs.isEmpty { st.languages.add("(not declared)") }
                for l in langs { st.languages.add(l) }
                st.scripts.add(Records.script(text))
                st.scores.addScores(r)
                return true
            }
            if st.scanned > 0 { stats.append(st) }
            // Side stages (a Verilog step's preference/ pairs) hold their own records and scores.
            for name in FS.list(s.path).sorted() where FS.exists(FS.join(FS.join(s.path, name), Manifest.fileName)) {
                let dir = FS.join(s.path, name)
                guard let m = try? Manifest.read(directory: dir), m.records > 0 else { continue }
                var side = DataStats(stage: StageDir(name: s.name + "/" + name, path: dir, manifest: m))
                try data.forEachRecord(side.stage, limit: options.maxRecords) { r, _, _ in
                    side.scanned += 1
                    side.scores.addScores(r)
                    return true
                }
                if !side.scores.values.isEmpty { sideStats.append(side) }
            }
        }
    }

    /// Side stages' records, read for their scores only.
    var sideStats: [DataStats] = []

    // MARK: Page

    func html() throws -> String {
        let title = options.title ?? (data.root as NSString).lastPathComponent
        var body = ""
        body += header(title)
        body += section("stages", stagesSection())
        body += section("rejects", try rejectsSection())
        body += section("datasets", datasetsSection())
        body += section("tasks", tasksSection())
        body += section("scores", scoresSection())
        body += section("languages", languagesSection())
        body += section("filter", try filterSection())
        body += section("dedup", try dedupSection())
        body += section("packing", try packingSection())
        body += section("training", try trainingSection())
        body += section("evaluation", try evaluationSection())
        body += section("merge", try mergeSection())
        body += section("provenance", try provenanceSection())
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Loom report: \(HTML.esc(title))</title>
            <style>\(Self.css)</style>
            </head>
            <body>
            <main>
            \(body)<footer>Written by loom \(HTML.esc(loomVersion)) from the stage directories of \(HTML.code(data.root)). Every number comes from a manifest or a record file; nothing here is estimated unless it says so.</footer>
            </main>
            </body>
            </html>

            """
    }

    func section(_ id: String, _ content: String) -> String {
        let title = Report.sections.first { $0.id == id }?.title ?? id
        return "<section id=\"\(id)\"><h2>\(HTML.esc(title))</h2>\n\(content)</section>\n"
    }

    func header(_ title: String) -> String {
        let ms = data.stages.map(\.manifest)
        let started = ms.map(\.startedAt).filter { !$0.isEmpty }.min() ?? "?"
        let finished = ms.map(\.finishedAt).filter { !$0.isEmpty }.max() ?? "?"
        let seconds = ms.reduce(0) { $0 + $1.seconds }
        let failed = data.stages.filter { $0.manifest.status != "complete" }
        var s = "<header><h1>Loom run: \(HTML.esc(title))</h1>\n"
        s += "<p class=\"lead\">\(data.stages.count) stages in \(HTML.code(data.root)), run from \(HTML.esc(started)) to \(HTML.esc(finished)) (\(Num.seconds(seconds)) of stage time). "
        s += failed.isEmpty
            ? "Every stage finished.</p>\n"
            : "<strong class=\"bad\">\(failed.count) stage(s) finished with errors: \(HTML.esc(failed.map(\.name).joined(separator: ", "))).</strong></p>\n"
        s += "<nav>" + Report.sections.map { "<a href=\"#\($0.id)\">\(HTML.esc($0.title))</a>" }.joined(separator: " ") + "</nav>\n"
        return s + "</header>\n"
    }

    func dirLabel(_ s: StageDir) -> String { "<b>\(HTML.esc(s.name))</b> <span class=\"dim\">\(HTML.esc(s.stage))</span>" }

    // MARK: Stages

    func stagesSection() -> String {
        var rows: [[String]] = []
        for s in data.stages {
            let m = s.manifest
            let input = data.inputs(of: s)
            let models = s.manifest.inputs.filter { $0.kind == "stage" }.compactMap { data.stage(forInput: $0.path) }
                .filter { $0.isTrain || $0.isMerge }
            var inText = input.records.map { Num.int($0) + " records" } ?? ""
            if (s.isMerge || s.stage == "sample"), !models.isEmpty, models.count == s.manifest.inputs.count {
                inText = "\(models.count) model\(models.count == 1 ? "" : "s")"
            }
            if input.files > 0 {
                inText += (inText.isEmpty ? "" : " + ") + "\(Num.int(input.files)) file\(input.files == 1 ? "" : "s")"
            }
            if let a = s.count("articles") { inText += " (\(Num.int(a)) articles)" }
            else if let p = s.count("pages"), s.stage.hasPrefix("ingest") { inText += " (\(Num.int(p)) pages)" }
            var through: [String] = []
            if m.seconds > 0 {
                if let t = s.value("tokens_per_s") ?? s.count("tokens_seen").map({ Double($0) / m.seconds }) {
                    through.append(Num.short(t) + " tokens/s")
                } else if m.records > 0 {
                    through.append(Num.short(Double(m.records) / m.seconds) + " records/s")
                }
                if input.bytes > 0 { through.append(Num.bytes(Int(Double(input.bytes) / m.seconds)) + "/s in") }
            }
            let status = m.status == "complete" ? "ok" : "<span class=\"bad\">\(HTML.esc(m.status))</span>"
            // The first counts inline, the rest behind a disclosure (plain HTML, no script).
            let all = m.counts.pairs.filter { $0.value.objectValue == nil }
                .map { "\(HTML.esc($0.key)) \(HTML.esc(HTML.clip($0.value.display, 60)))" }
            var counts = all.prefix(8).joined(separator: " · ")
            if all.count > 8 {
                counts += " <details><summary>\(all.count - 8) more</summary>\(all.dropFirst(8).joined(separator: " · "))</details>"
            }
            rows.append([
                "<b>\(HTML.esc(s.name))</b><br><span class=\"dim\">\(HTML.esc(s.stage))</span>", status, HTML.esc(inText.isEmpty ? "–" : inText), Num.int(m.records), Num.int(m.rejects),
                Num.seconds(m.seconds), HTML.esc(through.joined(separator: ", ")),
                m.peakMemoryMB > 0 ? Num.fixed(m.peakMemoryMB, 0) + " MB" : "–", "<span class=\"small\">\(counts)</span>",
            ])
        }
        var s = HTML.p("One row per stage directory, in pipeline order. <i>In</i> is what the stage read (the records of its input stages, or files); <i>out</i> the records it wrote; throughput is out-records (or training tokens) per second and input bytes per second.")
        s += HTML.table(
            ["stage", "status", "in", "out", "rejects", "time", "throughput", "peak memory", "counts"], rows,
            numeric: [3, 4, 5], cls: "stages")
        s += Chart.bars(
            data.stages.map { ($0.name + " " + $0.stage, $0.manifest.seconds, Num.seconds($0.manifest.seconds)) },
            title: "Time per stage", color: Chart.color(6))
        return s
    }

    func rejectsSection() throws -> String {
        var s = ""
        var any = false
        var rows: [[String]] = []
        for st in data.stages {
            let (groups, total) = try Rejects.read(st)
            guard total > 0 else { continue }
            any = true
            s += "<h3>\(dirLabel(st)): \(Num.int(total)) rejected</h3>\n"
            var grows: [[String]] = []
            for g in groups {
                let ex = g.examples.map { e -> String in
                    var line = "<div class=\"rej\"><code>\(HTML.esc(Rejects.location(e)))</code>"
                    if let id = e["id"]?.stringValue { line += " <span class=\"dim\">id</span> <code>\(HTML.esc(HTML.clip(id, 80)))</code>" }
                    line += ": \(HTML.esc(HTML.clip(e["reason"]?.stringValue ?? "", 300)))"
                    if let raw = e["raw"]?.stringValue { line += "<pre class=\"raw\">\(HTML.esc(HTML.clip(raw, 400)))</pre>" }
                    return line + "</div>"
                }.joined()
                grows.append([Num.int(g.count), HTML.esc(g.pattern), ex])
            }
            s += HTML.table(["count", "reason (numbers as N)", "examples (file:line)"], grows, numeric: [0], cls: "rejects")
            rows.append([dirLabel(st), Num.int(total), Num.int(groups.count)])
        }
        guard any else {
            return HTML.absent("No stage rejected anything: every input record was used.")
                + HTML.table(["stage", "rejects"], data.stages.map { [dirLabel($0), "0"] }, numeric: [1])
        }
        return HTML.p("Inputs a stage could not use, grouped by reason (numbers in the reason replaced by N), with the first examples of each and where they came from. The full lists are each stage's <code>rejects.jsonl</code>.")
            + HTML.table(["stage", "rejects", "distinct reasons"], rows, numeric: [1, 2]) + s
    }

    // MARK: Datasets

    func datasetsSection() -> String {
        guard !stats.isEmpty else { return HTML.absent("No stage wrote records with text, so there is nothing to measure.") }
        var s = HTML.p("Length of each record's text in characters (Unicode scalars): a document's or chunk's text, a conversation's turns, a preference pair's prompt, chosen and rejected, a packed window's members.")
        var rows: [[String]] = []
        for st in stats {
            let sorted = st.lengths.sorted()
            let q = { (p: Double) in sorted[min(sorted.count - 1, Int(p * Double(sorted.count - 1)))] }
            let meanW = st.words.reduce(0, +) / Double(max(1, st.words.count))
            rows.append([
                dirLabel(st.stage), Num.int(st.stage.manifest.records),
                st.scanned < st.stage.manifest.records ? "first " + Num.int(st.scanned) : "all",
                HTML.esc(st.formats.sorted.map { "\($0.key) \(Num.int($0.count))" }.joined(separator: ", ")),
                Num.int(Int(sorted.first ?? 0)), Num.int(Int(q(0.5))), Num.int(Int(q(0.9))), Num.int(Int(sorted.last ?? 0)),
                Num.fixed(meanW, 0),
            ])
        }
        s += HTML.table(
            ["stage", "records", "read", "kinds", "min chars", "median", "p90", "max", "mean words"], rows,
            numeric: [1, 4, 5, 6, 7, 8])
        s += "<div class=\"grid2\">"
        for (i, st) in stats.enumerated() {
            s += "<div>" + Chart.histogram(
                st.lengths, title: "\(st.stage.name) \(st.stage.stage): record length", xLabel: "characters",
                width: 520, height: 210, color: Chart.color(i)) + "</div>"
        }
        return s + "</div>\n"
    }

    /// Stages whose generated records are their own (a `combine` step copies records made by earlier steps).
    var generatingStats: [DataStats] { stats.filter { $0.generated > 0 && $0.stage.stage != "combine" } }

    func tasksSection() -> String {
        let gen = generatingStats
        guard !gen.isEmpty else {
            return HTML.absent("No generation step in this run: no record carries meta.provenance with the ids it came from, so there are no task types to count.")
        }
        var s = HTML.p("What the generated records ask for. A reading-comprehension conversation holds several tasks (each counted), a Verilog or preference record one. <i>SFT</i> counts conversations, <i>preference</i> prompt/chosen/rejected pairs.")
        for st in gen {
            var rows: [[String]] = []
            var items: [(String, Double, String)] = []
            for (k, n) in st.tasks.sorted {
                let parts = k.components(separatedBy: "\u{1}")
                let sft = st.taskFormats.counts[k + "\u{1}sft"] ?? 0
                let pref = st.taskFormats.counts[k + "\u{1}preference"] ?? 0
                rows.append([HTML.esc(parts.last ?? k), HTML.esc(parts.first ?? ""), Num.int(sft), Num.int(pref), Num.int(n)])
                items.append((parts.last ?? k, Double(n), Num.int(n) + " (" + Num.percent(Double(n) / Double(max(1, st.tasks.total))) + ")"))
            }
            s += "<h3>\(dirLabel(st.stage)): \(Num.int(st.generated)) generated records</h3>\n"
            s += "<div class=\"grid2\"><div>" + HTML.table(["task type", "generator", "SFT", "preference", "total"], rows, numeric: [2, 3, 4])
                + "</div><div>" + Chart.bars(items, title: "Task mix", width: 520, color: Chart.color(2)) + "</div></div>\n"
        }
        return s
    }

    func scoresSection() -> String {
        let scored = (stats + sideStats).filter { !$0.scores.values.isEmpty && $0.stage.stage != "combine" }
            .sorted { $0.stage.name < $1.stage.name }
        guard !scored.isEmpty else {
            return HTML.absent("No record in this run carries meta.scores: no generation step (generate rc, qa, preference, verilog) wrote records.")
        }
        var s = HTML.p("How good the generated records are, from the scores each generator writes in <code>meta.scores</code> (<code>loom stats DIR</code> prints the same): <i>verbatim</i>, the share of a reading-comprehension sample's span answers found word for word in its chunk (per task type under <code>tasks.TYPE.verbatim</code>); <i>grounding</i> and <i>longest_span</i>, the share of a QA answer's content words found in its chunk and the longest run of its words found there; <i>yosys_accepts</i> and <i>iverilog_accepts</i>, whether the tools accept a Verilog record's target module; <i>length_ratio</i> and <i>similarity</i>, a preference pair's chosen/rejected length in characters and the overlap of their tokens (DPO learns length when chosen answers are systematically longer). Yes/no scores show the share of yes as their mean.")
        for st in scored {
            let sc = st.scores
            var rows: [[String]] = []
            for k in sc.measures() {
                let d = Distribution.summary(sc.values[k]!)
                let yesNo = sc.booleans.contains(k)
                let cells = ["mean", "p10", "p50", "p90"].map { key -> String in
                    guard let x = d[key]?.doubleValue else { return "–" }
                    return yesNo && key == "mean" ? Num.percent(x) : yesNo ? "" : Num.short(x)
                }
                rows.append([HTML.code(k) + (yesNo ? " <span class=\"dim\">yes/no</span>" : ""), Num.int(sc.values[k]!.count)] + cells)
            }
            s += "<h3>\(dirLabel(st.stage))</h3>\n"
            s += HTML.table(["score", "values", "mean (share yes)", "p10", "median", "p90"], rows, numeric: [1, 2, 3, 4, 5])
            let charts = sc.measures(prefix: "scores.").filter { !sc.booleans.contains($0) }
            if !charts.isEmpty {
                s += "<div class=\"grid2\">"
                for (i, k) in charts.enumerated() {
                    s += "<div>" + Chart.histogram(
                        sc.values[k]!, title: "\(st.stage.name): \(k)", xLabel: String(k.dropFirst("scores.".count)),
                        width: 520, height: 210, color: Chart.color(i + 3)) + "</div>"
                }
                s += "</div>\n"
            }
        }
        return s
    }

    func languagesSection() -> String {
        guard !stats.isEmpty else { return HTML.absent("No stage wrote records with text, so there are no languages to count.") }
        var rows: [[String]] = []
        var total = Tally()
        for st in stats {
            for (k, n) in st.languages.sorted where st.generated > 0 || st.stage.stage.hasPrefix("ingest") { total.add(k, n) }
            rows.append([
                dirLabel(st.stage),
                HTML.esc(st.languages.sorted.map { "\($0.key) \(Num.int($0.count))" }.joined(separator: " · ")),
                HTML.esc(st.scripts.sorted.map { "\($0.key) \(Num.int($0.count))" }.joined(separator: " · ")),
            ])
        }
        var s = HTML.p("Declared languages come from the records (meta.language of mined samples, PubMed's languages, the OCR languages of scanned pages; Verilog sources count as verilog). The script column is measured here: the script most letters of each record are written in.")
        s += HTML.table(["stage", "declared language (records)", "dominant script (records)"], rows)
        let declared = total.sorted.filter { $0.key != "(not declared)" }
        if !declared.isEmpty {
            // The 12 most frequent, the rest in one bar.
            var bars = declared.prefix(12).map { ($0.key, Double($0.count), Num.int($0.count)) }
            let rest = declared.dropFirst(12)
            if !rest.isEmpty {
                let n = rest.reduce(0) { $0 + $1.count }
                bars.append(("\(rest.count) other languages", Double(n), Num.int(n)))
            }
            s += Chart.bars(
                bars,
                title: "Declared languages of the ingested documents and generated records", color: Chart.color(5))
        }
        return s
    }

    // MARK: Dedup

    /// Each filter step: what every rule set dropped (by check), with examples, and the distribution of every
    /// measurement, so thresholds can be chosen by looking at the data.
    func filterSection() throws -> String {
        let stages = data.stages.filter { $0.stage == "filter" }
        guard !stages.isEmpty else { return HTML.absent("No filter step in this run: no record was judged by quality rules.") }
        var s = HTML.p("Records the quality rules dropped (<code>loom filter</code>, docs/filter.md): by rule set and check, with the first examples from the stage's <code>rejects.jsonl</code>; then each measurement's distribution over the records it was taken on.")
        for st in stages {
            let c = st.manifest.counts
            let total = (c["kept"]?.intValue ?? 0) + (c["dropped"]?.intValue ?? 0)
            let rules = st.manifest.config["rules"]?.arrayValue?.compactMap(\.stringValue) ?? []
            s += "<h3>\(dirLabel(st))</h3>\n"
            s += HTML.p(
                "Rule sets \(rules.map(HTML.code).joined(separator: ", ")), mode \(HTML.code(st.manifest.config["mode"]?.stringValue ?? "drop")): kept \(Num.int(c["kept"]?.intValue ?? 0)) of \(Num.int(total)) text records"
                    + ((c["without_text"]?.intValue ?? 0) > 0 ? ", \(Num.int(c["without_text"]!.intValue!)) records without text passed through" : "")
                    + ((c["rewritten"]?.intValue ?? 0) > 0 ? ", \(Num.int(c["rewritten"]!.intValue!)) kept with lines removed (c4)" : "") + ".")
            // Examples per rule.check from the rejects.
            var examples: [String: [JSONValue]] = [:]
            let path = st.file("rejects.jsonl")
            if FS.exists(path) {
                let reader = try LineReader(path: path)
                try reader.forEachLine { line in
                    guard let v = try? JSONValue.parse(bytes: line), let r = v["rule"]?.stringValue, let k = v["check"]?.stringValue else { return }
                    if examples["\(r).\(k)", default: []].count < 2 { examples["\(r).\(k)", default: []].append(v) }
                }
            }
            var rows: [[String]] = []
            for (rule, checks) in c["dropped_by"]?.objectValue ?? JSONObject() {
                for (check, n) in checks.objectValue ?? JSONObject() {
                    let count = n.intValue ?? 0
                    let ex = (examples["\(rule).\(check)"] ?? []).map { e -> String in
                        var line = "<div class=\"rej\">"
                        if let id = e["id"]?.stringValue { line += "<code>\(HTML.esc(HTML.clip(id, 80)))</code> " }
                        if let m = e["metric"]?.stringValue, let v = e["value"]?.doubleValue {
                            line += "\(HTML.esc(m)) = \(Num.short(v))"
                            if let t = e["threshold"]?.doubleValue { line += " <span class=\"dim\">(threshold \(Num.short(t)))</span>" }
                        }
                        if let raw = e["raw"]?.stringValue { line += "<pre class=\"raw\">\(HTML.esc(HTML.clip(raw, 300)))</pre>" }
                        return line + "</div>"
                    }.joined()
                    rows.append([HTML.code(rule), HTML.code(check), Num.int(count), total > 0 ? Num.percent(Double(count) / Double(total)) : "–", ex])
                }
            }
            s += rows.isEmpty
                ? HTML.absent("Nothing dropped.")
                : HTML.table(["rule set", "check", "dropped", "share", "examples"], rows, numeric: [2, 3], cls: "rejects")
            var dist: [[String]] = []
            for (k, v) in c["quality"]?.objectValue ?? JSONObject() {
                dist.append([HTML.code(k), Num.int(v["n"]?.intValue ?? 0)] + ["mean", "p10", "p50", "p90"].map { v[$0]?.doubleValue.map(Num.short) ?? "–" })
            }
            if !dist.isEmpty {
                s += "<details><summary>Measurements (\(dist.count))</summary>\n"
                s += HTML.table(["measurement", "records", "mean", "p10", "median", "p90"], dist, numeric: [1, 2, 3, 4, 5]) + "</details>\n"
            }
        }
        return s
    }

    func dedupSection() throws -> String {
        let stages = data.stages.filter { $0.stage.hasPrefix("dedup") }
        guard !stages.isEmpty else { return HTML.absent("No dedup step in this run: near-duplicates were not looked for.") }
        var s = ""
        for st in stages {
            let c = { (k: String) in st.count(k).map(Num.int) ?? "–" }
            s += "<h3>\(dirLabel(st))</h3>\n"
            let cfg = st.manifest.config
            let method = cfg["method"]?.stringValue ?? st.stage
            var how = "Method \(HTML.code(method))"
            if let t = cfg["threshold"]?.doubleValue { how += ", Jaccard threshold \(Num.short(t))" }
            if let n = cfg["ngram"]?.intValue { how += " over \(n)-\(HTML.esc(cfg["shingle"]?.stringValue ?? "word")) shingles" }
            if let v = cfg["verify"]?.stringValue { how += ", pairs verified by \(HTML.esc(v)) similarity" }
            s += HTML.p(how + ".")
            s += HTML.table(
                ["documents", "kept", "removed", "clusters", "candidate pairs", "verified pairs"],
                [[c("documents"), c("kept"), c("removed_duplicates"), c("clusters"), c("candidate_pairs"), c("verified_pairs")]],
                numeric: [0, 1, 2, 3, 4, 5])
            let dupPath = st.file("duplicates.jsonl")
            // One pass over duplicates.jsonl: the size and similarity tallies of all clusters, and the largest few
            // (ties by cluster order) kept to show.
            var count = 0
            var sizes = Tally()
            var sims: [Double] = []
            var top: [(removed: Int, order: Int, value: JSONValue)] = []
            let keep = max(0, options.dedupClusters)
            if FS.exists(dupPath) {
                let reader = try LineReader(path: dupPath)
                try reader.forEachLine { line in
                    guard !line.isEmpty, let cl = try? JSONValue.parse(bytes: line) else { return }
                    let removed = cl["removed"]?.arrayValue ?? []
                    sizes.add(String(removed.count + 1))
                    for r in removed { if let j = r["jaccard"]?.doubleValue ?? r["similarity"]?.doubleValue { sims.append(j) } }
                    if keep > 0 && (top.count < keep || removed.count > top[top.count - 1].removed) {
                        top.append((removed.count, count, cl))
                        top.sort { $0.removed > $1.removed || ($0.removed == $1.removed && $0.order < $1.order) }
                        if top.count > keep { top.removeLast() }
                    }
                    count += 1
                }
            }
            guard count > 0 else {
                s += HTML.absent("This stage found no duplicates: duplicates.jsonl is empty, every document was kept.")
                continue
            }
            s += "<div class=\"grid2\"><div>" + Chart.bars(
                sizes.counts.keys.sorted { Int($0)! < Int($1)! }.map { ("\($0) documents", Double(sizes.counts[$0]!), Num.int(sizes.counts[$0]!) + " clusters") },
                title: "Cluster sizes", width: 520, color: Chart.color(3))
                + "</div><div>" + Chart.histogram(sims.map { $0 * 100 }, title: "Similarity of removed documents to the kept one", xLabel: "similarity (%)", bins: 10, width: 520, height: 200, color: Chart.color(3))
                + "</div></div>\n"
            let shown = top.map(\.value)
            let idField = cfg["id_field"]?.stringValue ?? "id"
            let textField = cfg["text_field"]?.stringValue ?? "text"
            var wanted: Set<String> = []
            for cl in shown {
                if let k = cl["kept"]?.stringValue { wanted.insert(k) }
                for r in (cl["removed"]?.arrayValue ?? []).prefix(3) { if let id = r["id"]?.stringValue { wanted.insert(id) } }
            }
            var files: [(path: String, name: String)] = []
            for i in st.manifest.inputs {
                if i.kind == "stage", let u = data.stage(forInput: i.path) {
                    files += data.shardFiles(u).map { ($0.path, u.name + "/" + $0.name) }
                } else if i.kind == "file" {
                    files.append((i.path, i.path))
                }
            }
            let found = try data.find(ids: wanted, inFiles: files, idField: idField)
            s += HTML.p("The \(shown.count) largest of \(Num.int(count)) clusters: the kept document on the left, what was removed as its near-duplicate beside it.")
            for cl in shown {
                let kept = cl["kept"]?.stringValue ?? "?"
                let removed = cl["removed"]?.arrayValue ?? []
                s += "<div class=\"cluster\"><div class=\"ch\">cluster \(Num.int(cl["cluster"]?.intValue ?? 0)): \(removed.count + 1) documents</div><div class=\"pair\">"
                s += card(title: "kept", id: kept, located: found[kept], textField: textField, note: nil, cls: "kept")
                for r in removed.prefix(3) {
                    let id = r["id"]?.stringValue ?? "?"
                    var note = "similarity " + Num.percent(r["similarity"]?.doubleValue ?? 0)
                    if let j = r["jaccard"]?.doubleValue { note += ", Jaccard " + Num.percent(j) }
                    s += card(title: "removed", id: id, located: found[id], textField: textField, note: note, cls: "removed")
                }
                if removed.count > 3 { s += "<div class=\"more\">and \(removed.count - 3) more removed</div>" }
                s += "</div></div>\n"
            }
        }
        return s
    }

    func card(title: String, id: String, located: Located?, textField: String, note: String?, cls: String) -> String {
        var s = "<div class=\"card \(cls)\"><div class=\"cardh\">\(HTML.esc(title)) <code>\(HTML.esc(HTML.clip(id, 90)))</code>"
        if let note { s += " <span class=\"dim\">\(HTML.esc(note))</span>" }
        s += "</div>"
        if let l = located {
            let text = l.record[textField]?.stringValue ?? Records.text(l.record)
            s += "<div class=\"where\">\(HTML.esc(l.file)):\(l.line)</div><pre>\(HTML.esc(HTML.clip(text, 1200)))</pre>"
        } else {
            s += "<p class=\"absent\">Not found in the stage's input (it may have been moved or deleted).</p>"
        }
        return s + "</div>"
    }

    // MARK: Packing

    /// A cluster stage: its counts, the share of documents that share a cluster, the MeSH coherence when the
    /// manifest has it (within-cluster against random-pair Jaccard), and the cluster-size histogram.
    func clusterSummary(_ st: StageDir) -> String {
        let c = st.manifest.counts
        var s = HTML.p("\(dirLabel(st)): \(Num.int(st.count("documents") ?? 0)) documents in \(Num.int(st.count("clusters") ?? 0)) clusters, \(Num.int(st.count("clusters_with_several_documents") ?? 0)) with several documents (embedder: \(HTML.esc(c["embedder"]?.display ?? "–")), similarity ≥ \(HTML.esc(c["similarity"]?.display ?? "–")), neighbour search: \(HTML.esc(c["search"]?.display ?? "–"))).")
        var rows = [["documents in clusters of two or more", st.value("share_in_clusters").map(Num.percent) ?? "–"]]
        if let co = c["coherence"] {
            rows.append(["MeSH Jaccard of two members of a cluster (\(Num.int(co["within_pairs"]?.intValue ?? 0)) pairs)", co["within_jaccard"]?.doubleValue.map { Num.fixed($0, 4) } ?? "–"])
            rows.append(["MeSH Jaccard of random pairs (\(Num.int(co["random_pairs"]?.intValue ?? 0)) pairs)", co["random_jaccard"]?.doubleValue.map { Num.fixed($0, 4) } ?? "–"])
            rows.append(["coherence: within / random", co["ratio"]?.doubleValue.map { Num.fixed($0, 2) + "×" } ?? "–"])
        }
        s += HTML.table(["measure", "value"], rows, numeric: [1])
        if let sizes = c["cluster_sizes"]?.objectValue, sizes.count > 0 {
            s += Chart.bars(
                sizes.map { k, v in ("\(k) documents", Double(v.intValue ?? 0), Num.int(v.intValue ?? 0) + " clusters") },
                title: "Cluster sizes", width: 520, color: Chart.color(2))
        }
        return s
    }

    func packingSection() throws -> String {
        let stages = data.stages.filter { $0.stage == "pack" || $0.manifest.counts["packing_efficiency"] != nil }
        let clusters = data.stages.filter { $0.stage == "cluster" }.map(clusterSummary).joined()
        guard !stages.isEmpty else {
            return clusters + HTML.absent("No pack step in this run: samples were not packed into context windows.")
        }
        var s = clusters
        s += HTML.p("Packing efficiency is tokens placed divided by windows × context length. Loom fills each window with the subset of the remaining samples that fills it most (a 0/1 knapsack) and compares with first-fit-decreasing (FFD), the usual packer, on the same samples.")
        for st in stages {
            let eff = st.value("packing_efficiency") ?? 0
            let ffd = st.value("ffd_efficiency") ?? 0
            let context = st.manifest.config["context_tokens"]?.intValue
            s += "<h3>\(dirLabel(st))</h3>\n"
            s += HTML.table(
                ["samples", "windows", "FFD windows", "split samples", "rejected", "context", "token lengths", "efficiency", "FFD efficiency"],
                [[Num.int(st.count("samples") ?? 0), Num.int(st.count("windows") ?? 0), Num.int(st.count("ffd_windows") ?? 0),
                  Num.int(st.count("split_samples") ?? 0), Num.int(st.manifest.rejects), context.map(Num.int) ?? "–",
                  HTML.esc(st.manifest.counts["token_lengths"]?.display ?? "–"), Num.percent(eff), Num.percent(ffd)]],
                numeric: [0, 1, 2, 3, 4, 5, 7, 8])
            var fills: [Double] = []
            try data.forEachRecord(st, limit: options.maxRecords) { r, _, _ in
                if let t = r["tokens"]?.doubleValue, let c = r["capacity"]?.doubleValue, c > 0 { fills.append(t / c * 100) }
                return true
            }
            s += "<div class=\"grid2\"><div>" + Chart.bars(
                [("Loom (knapsack)", eff * 100, Num.percent(eff)), ("first-fit-decreasing", ffd * 100, Num.percent(ffd))],
                title: "Packing efficiency", width: 520, color: Chart.color(0))
                + "</div><div>" + (fills.isEmpty ? HTML.absent("The windows carry no tokens/capacity fields.")
                    : Chart.histogram(fills, title: "How full each window is", xLabel: "tokens / context (%)", bins: 10, width: 520, height: 200, color: Chart.color(0)))
                + "</div></div>\n"
        }
        return s
    }

    // MARK: Training

    func metrics(_ st: StageDir) throws -> [JSONValue] {
        let path = st.file("metrics.jsonl")
        guard FS.exists(path) else { return [] }
        var out: [JSONValue] = []
        let reader = try LineReader(path: path)
        try reader.forEachLine { line in
            if !line.isEmpty, let v = try? JSONValue.parse(bytes: line), v["step"] != nil { out.append(v) }
        }
        return out
    }

    /// Points of one metric, at most `cap` of them (every k-th), so long runs draw quickly.
    func points(_ rows: [JSONValue], _ key: String, cap: Int = 1500) -> [(x: Double, y: Double)] {
        let all = rows.compactMap { r -> (x: Double, y: Double)? in
            guard let x = r["step"]?.doubleValue, let y = r[key]?.doubleValue else { return nil }
            return (x, y)
        }
        guard all.count > cap else { return all }
        let k = (all.count + cap - 1) / cap
        return all.enumerated().filter { $0.offset % k == 0 || $0.offset == all.count - 1 }.map(\.element)
    }

    func modelLabel(_ path: String) -> String {
        if let s = data.stage(forInput: path) ?? data.stage(forInput: (path as NSString).deletingLastPathComponent) {
            return "\(s.name) (\(s.stage))"
        }
        return path
    }

    func trainingSection() throws -> String {
        let stages = data.stages.filter(\.isTrain)
        guard !stages.isEmpty else { return HTML.absent("No train step in this run: no model was trained.") }
        var rows: [[String]] = []
        for st in stages {
            let cfg = st.manifest.config
            let from = cfg["model"]?.stringValue.map(modelLabel) ?? "new " + (cfg["preset"]?.stringValue ?? "model")
            let data = cfg["input"]?.stringValue
            _ = data
            rows.append([
                dirLabel(st), HTML.esc(cfg["objective"]?.stringValue ?? st.stage), HTML.esc(from),
                Num.int(st.count("steps") ?? 0), Num.int(st.count("parameters") ?? 0),
                Num.int(st.count("train_rows") ?? 0) + " / " + Num.int(st.count("eval_rows") ?? 0),
                Num.int(st.count("tokens_seen") ?? 0), st.value("final_loss").map { Num.fixed($0, 4) } ?? "–",
                st.value("eval_loss").map { Num.fixed($0, 4) } ?? "–", st.value("eval_perplexity").map { Num.fixed($0, 2) } ?? "–",
                (st.value("tokens_per_s") ?? st.count("tokens_seen").map { Double($0) / max(st.manifest.seconds, 1e-9) })
                    .map { Num.short($0) } ?? "–", Num.seconds(st.manifest.seconds),
            ])
        }
        var s = HTML.table(
            ["stage", "objective", "from", "steps", "parameters", "train / eval rows", "tokens seen", "final loss", "eval loss",
             "eval perplexity", "tokens/s", "time"], rows, numeric: [3, 4, 6, 7, 8, 9, 10, 11])
        for st in stages {
            let rows = try metrics(st)
            s += "<h3>\(dirLabel(st))</h3>\n"
            guard !rows.isEmpty else {
                s += HTML.absent("No metrics.jsonl in \(st.name): the loss curve cannot be drawn.")
                continue
            }
            var series = [Series(name: "train loss", points: points(rows, "loss"), color: Chart.color(0))]
            let eval = points(rows, "eval_loss")
            if !eval.isEmpty { series.append(Series(name: "eval loss", points: eval, color: Chart.color(1), dots: true, dashed: true)) }
            s += Chart.line(series, title: "Loss", xLabel: "step", yLabel: "loss")
            s += "<div class=\"grid2\"><div>"
            s += Chart.line([Series(name: "learning rate", points: points(rows, "lr"), color: Chart.color(2))], title: "Learning rate", xLabel: "step", yLabel: "lr", width: 520, height: 200, yFromZero: true)
            s += "</div><div>"
            s += Chart.line([Series(name: "gradient norm", points: points(rows, "grad_norm"), color: Chart.color(4))], title: "Gradient norm (before clipping)", xLabel: "step", yLabel: "norm", width: 520, height: 200, yFromZero: true)
            s += "</div></div>\n"
            if rows.contains(where: { $0["rewards/margins"] != nil }) {
                var m = [Series(name: "train margin", points: points(rows, "rewards/margins"), color: Chart.color(3))]
                let em = points(rows, "eval_rewards/margins")
                if !em.isEmpty { m.append(Series(name: "eval margin", points: em, color: Chart.color(1), dots: true, dashed: true)) }
                var a = [Series(name: "train accuracy", points: points(rows, "rewards/accuracies"), color: Chart.color(5))]
                let ea = points(rows, "eval_rewards/accuracies")
                if !ea.isEmpty { a.append(Series(name: "eval accuracy", points: ea, color: Chart.color(1), dots: true, dashed: true)) }
                s += "<div class=\"grid2\"><div>"
                s += Chart.line(m, title: "Reward margin (chosen − rejected)", xLabel: "step", yLabel: "margin", width: 520, height: 220, yFromZero: true)
                s += "</div><div>"
                s += Chart.line(a, title: "Reward accuracy (chosen ranked above rejected)", xLabel: "step", yLabel: "fraction", width: 520, height: 220, yFromZero: true)
                s += "</div></div>\n"
            }
        }
        return s
    }

    // MARK: Evaluation

    /// The headline figure of each kind of task, and whether higher is better.
    static let evalFigures: [String: [(name: String, higherIsBetter: Bool)]] = [
        "multiple_choice": [("acc", true)], "generation": [("exact_match", true), ("f1", true)],
        "perplexity": [("bits_per_byte", false)],
    ]

    /// One row per `eval` stage (the model, and the train step its adapter came from), one column per task and
    /// figure: value and 95% interval, then the difference to the first row (the base model), marked better or worse
    /// where the row's interval excludes the base value.
    func evaluationSection() throws -> String {
        let stages = data.stages.filter { $0.stage == "eval" }
        guard !stages.isEmpty else { return HTML.absent("No eval step in this run: no model was evaluated.") }
        var runs: [(StageDir, JSONValue)] = []
        for st in stages {
            guard let text = try? FS.readText(st.file("metrics.json")), let m = try? JSONValue.parse(text) else { continue }
            runs.append((st, m))
        }
        guard let base = runs.first else { return HTML.absent("The eval steps wrote no metrics.json.") }
        var columns: [(task: String, figure: String, higher: Bool)] = []
        for (_, m) in runs {
            for (task, v) in m["tasks"]?.objectValue ?? JSONObject() {
                for f in Self.evalFigures[v["kind"]?.stringValue ?? ""] ?? [] where !columns.contains(where: { $0.task == task && $0.figure == f.name }) {
                    columns.append((task, f.name, f.higherIsBetter))
                }
            }
        }
        func estimate(_ m: JSONValue, _ c: (task: String, figure: String, higher: Bool)) -> (Double, Double, Double)? {
            guard let e = m["tasks"]?[c.task]?[c.figure], let v = e["value"]?.doubleValue, let ci = e["ci95"]?.arrayValue, ci.count == 2,
                let lo = ci[0].doubleValue, let hi = ci[1].doubleValue
            else { return nil }
            return (v, lo, hi)
        }
        var rows: [[String]] = []
        for (i, (st, m)) in runs.enumerated() {
            let cfg = st.manifest.config
            var label = dirLabel(st) + "<br><span class=\"small\">" + HTML.esc((cfg["model"]?.stringValue).map { ($0 as NSString).lastPathComponent } ?? "?")
            if let a = cfg["adapter"]?.stringValue { label += " + " + HTML.esc(modelLabel(a)) }
            label += "</span>"
            var row = [label]
            for c in columns {
                guard let (v, lo, hi) = estimate(m, c) else {
                    row.append("–")
                    continue
                }
                var cell = Num.fixed(v, 3) + " <span class=\"dim small\">[" + Num.fixed(lo, 3) + ", " + Num.fixed(hi, 3) + "]</span>"
                if i > 0, let (b, _, _) = estimate(base.1, c) {
                    let d = v - b
                    let better = c.higher ? lo > b : hi < b
                    let worse = c.higher ? hi < b : lo > b
                    let cls = better ? "better" : worse ? "worse" : "dim"
                    cell += "<br><span class=\"\(cls) small\">" + (d >= 0 ? "+" : "−") + Num.fixed(abs(d), 3) + "</span>"
                }
                row.append(cell)
            }
            rows.append(row)
        }
        let header = ["model"] + columns.map { "\($0.task)<br><span class=\"small\">\($0.figure)\($0.higher ? "" : " (lower is better)")</span>" }
        var s = "<p>Each figure with its 95% bootstrap interval over the items (metrics.json of each eval step); under it the "
        s += "difference to the first row, <span class=\"better\">green</span> or <span class=\"worse\">red</span> where the row's interval excludes the first row's value.</p>\n"
        s += HTML.table(header, rows, numeric: Set(1...max(1, columns.count)))
        return s
    }

    // MARK: Merge

    func mergeSection() throws -> String {
        let stages = data.stages.filter(\.isMerge)
        guard !stages.isEmpty || !data.mergedModels.isEmpty else {
            return HTML.absent("No merge step in this run: no models were merged.") + (try samplesBlock())
        }
        var s = ""
        for st in stages {
            let cfg = st.manifest.config["merge"] ?? st.manifest.config
            let method = cfg["merge_method"]?.stringValue ?? st.manifest.counts["method"]?.display ?? "?"
            s += "<h3>\(dirLabel(st)): \(HTML.esc(method))</h3>\n"
            s += mergeBlock(cfg: cfg, written: "\(Num.int(st.count("tensors") ?? 0)) tensors, \(Num.int(st.count("parameters") ?? 0)) parameters, \(Num.bytes(st.count("bytes") ?? 0)) written in \(Num.seconds(st.manifest.seconds))", notes: st.manifest.counts["notes"]?.arrayValue ?? [], dir: st.file("model"), name: st.name + "/model")
        }
        // Written by `loom merge -o OUT/NAME` beside the steps: the config it recorded (mergekit_config.yml holds JSON).
        for dir in data.mergedModels {
            let name = (dir as NSString).lastPathComponent
            let cfg = (try? JSONValue.parse(FS.readText(FS.join(dir, "mergekit_config.yml")))) ?? .null
            s += "<h3><b>\(HTML.esc(name))</b> <span class=\"dim\">loom merge</span>: \(HTML.esc(cfg["merge_method"]?.stringValue ?? "?"))</h3>\n"
            let bytes = FS.list(dir).filter { $0.hasSuffix(".safetensors") }.reduce(0) { $0 + (FS.size(FS.join(dir, $1)) ?? 0) }
            s += mergeBlock(cfg: cfg, written: "\(Num.bytes(bytes)) of weights", notes: [], dir: dir, name: name)
        }
        return s + (try samplesBlock())
    }

    /// What a `sample` step generated with a model of the run (the merged one in the demo): prompt and completion.
    func samplesBlock() throws -> String {
        var s = ""
        for st in data.stages where st.stage == "sample" {
            var rows: [[String]] = []
            var model = st.manifest.config["model"]?.stringValue
            try data.forEachRecord(st, limit: 50) { r, _, _ in
                if model == nil { model = r["meta"]?["model"]?.stringValue }
                var facts: [String] = []
                if let n = r["meta"]?["completion_tokens"]?.intValue { facts.append("\(n) tokens") }
                if let f = r["meta"]?["finish_reason"]?.stringValue { facts.append(f) }
                rows.append([
                    "<pre>\(HTML.esc(HTML.clip(r["prompt"]?.stringValue ?? Records.text(r), 600)))</pre>",
                    "<pre>\(HTML.esc(HTML.clip(r["completion"]?.stringValue ?? "", 1200)))</pre>",
                    HTML.esc(facts.joined(separator: ", ")),
                ])
                return true
            }
            s += "<h3>\(dirLabel(st)): generations from \(HTML.code(model.map(modelLabel) ?? "the model"))</h3>\n"
            s += HTML.table(["prompt", "completion", ""], rows, cls: "samples")
        }
        return s
    }

    func mergeBlock(cfg: JSONValue, written: String, notes: [JSONValue], dir: String, name: String) -> String {
        var s = ""
        var rows: [[String]] = []
        for m in cfg["models"]?.arrayValue ?? [] {
            let model = m["model"]?.stringValue ?? m.stringValue ?? "?"
            let params = (m["parameters"]?.objectValue?.pairs ?? []).map { "\(HTML.esc($0.key)) \(HTML.esc($0.value.display))" }
                .joined(separator: ", ")
            rows.append([HTML.code(model), HTML.esc(modelLabel(model)), params.isEmpty ? "–" : params])
        }
        if let b = cfg["base_model"]?.stringValue {
            rows.append([HTML.code(b), HTML.esc(modelLabel(b)), "<i>base model</i>"])
        }
        s += HTML.table(["model", "made by", "parameters"], rows)
        var facts: [String] = []
        if let p = cfg["parameters"]?.objectValue, p.count > 0 {
            facts.append("method parameters: " + p.pairs.map { "\(HTML.esc($0.key)) \(HTML.esc($0.value.display))" }.joined(separator: ", "))
        }
        if let d = cfg["out_dtype"]?.stringValue ?? cfg["dtype"]?.stringValue { facts.append("dtype \(HTML.esc(d))") }
        facts.append(written)
        s += HTML.p(facts.joined(separator: "; ") + ".")
        for n in notes { s += HTML.p("Note: " + HTML.esc(n.display), cls: "dim") }
        var files: [[String]] = []
        for f in FS.list(dir).sorted() where !f.hasPrefix(".") {
            files.append([HTML.code(f), Num.bytes(FS.size(FS.join(dir, f)) ?? 0)])
        }
        if files.isEmpty {
            s += HTML.absent("The merged model directory \(name) is missing.")
        } else {
            var arch = ""
            if let text = try? FS.readText(FS.join(dir, "config.json")), let c = try? JSONValue.parse(text) {
                let keys = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "torch_dtype"]
                arch = keys.compactMap { k in c[k].map { "\(k) \(HTML.esc($0.display))" } }.joined(separator: ", ")
            }
            s += "<div class=\"grid2\"><div>" + HTML.table(["file in \(HTML.esc(name))", "size"], files, numeric: [1])
                + "</div><div>" + HTML.p(arch.isEmpty ? "No config.json in the merged model." : "Architecture (config.json): " + arch + ".")
                + "</div></div>\n"
        }
        return s
    }

    // MARK: Provenance

    struct Hop {
        var stage: StageDir
        var located: Located
        /// Stages that copied the record on its way (dedup keeps records as they are, combine concatenates).
        var via: [String] = []
    }

    /// Stages whose records are copies of their inputs' records.
    func copies(_ s: StageDir) -> Bool { s.stage == "combine" || s.stage.hasPrefix("dedup") }

    func provenanceSection() throws -> String {
        let gen = generatingStats
        guard !gen.isEmpty else {
            return HTML.absent("No generated records in this run (none carries meta.provenance), so there is nothing to trace.")
        }
        var rng = SplitMix64(seed: options.seed)
        var picks: [(DataStats, Int)] = []
        for k in 0..<options.provenanceSamples {
            let st = gen[k % gen.count]
            var i = rng.below(st.generated)
            var tries = 0
            while picks.contains(where: { $0.0.stage.name == st.stage.name && $0.1 == i }), tries < 16, st.generated > 1 {
                i = rng.below(st.generated)
                tries += 1
            }
            picks.append((st, i))
        }
        var s = ""
        var summary: [[String]] = []
        for (n, (st, index)) in picks.enumerated() {
            var start: Located?
            var k = 0
            try data.forEachRecord(st.stage, limit: options.maxRecords) { r, file, line in
                guard Records.isGenerated(r) else { return true }
                if k == index { start = Located(record: r, file: file, line: line); return false }
                k += 1
                return true
            }
            guard let start else { continue }
            let (hops, missing) = try trace(Hop(stage: st.stage, located: start))
            let end = hops.last!
            summary.append([
                "\(n + 1)", HTML.code(HTML.clip(start.record["id"]?.stringValue ?? "\(start.file):\(start.line)", 70)),
                dirLabel(st.stage), HTML.esc(Records.tasks(start.record).joined(separator: ", ")), "\(hops.count - 1)",
                missing == nil ? "\(dirLabel(end.stage)) " + sourceFacts(hops).joined(separator: " · ")
                    : "<span class=\"bad\">not found</span>",
            ])
            s += "<div class=\"prov\"><h3>Record \(n + 1): <code>\(HTML.esc(HTML.clip(start.record["id"]?.stringValue ?? "\(start.file):\(start.line)", 100)))</code></h3>\n"
            s += sourceSummary(hops)
            s += "<ol class=\"chain\">"
            for (i, h) in hops.enumerated() {
                let r = h.located.record
                var head = "\(dirLabel(h.stage)) <code>\(HTML.esc(h.stage.name))/\(HTML.esc(h.located.file)):\(h.located.line)</code>"
                if let id = r["id"]?.stringValue { head += " id <code>\(HTML.esc(HTML.clip(id, 100)))</code>" }
                var detail = ""
                if let p = Records.provenance(r), p["ids"] != nil {
                    var parts: [String] = []
                    if let g = p["generator"]?.stringValue { parts.append("generator " + HTML.esc(g)) }
                    if let b = p["backend"]?.stringValue { parts.append("backend " + HTML.esc(b)) }
                    if let m = p["model"]?.stringValue { parts.append("model " + HTML.esc(m)) }
                    if let seed = p["seed"], seed != .null { parts.append("seed " + HTML.esc(seed.display)) }
                    if let t = p["templates"]?.arrayValue, !t.isEmpty {
                        parts.append("templates " + HTML.esc(HTML.clip(t.map(\.display).joined(separator: ", "), 160)))
                    }
                    parts.append("from " + HTML.esc(Records.parents(r).joined(separator: ", ")))
                    detail = parts.joined(separator: " · ")
                } else if let p = Records.provenance(r), let d = p["doc_id"]?.stringValue {
                    detail = "chunk of \(HTML.code(d)), characters \(p["char_start"]?.intValue ?? 0)–\(p["char_end"]?.intValue ?? 0)"
                } else if i == hops.count - 1 {
                    detail = "the ingested document"
                }
                s += "<li><div class=\"hop\">\(head)</div>"
                if !h.via.isEmpty { detail += (detail.isEmpty ? "" : " · ") + "passed through " + HTML.esc(h.via.joined(separator: ", ")) }
                if !detail.isEmpty { s += "<div class=\"dim small\">\(detail)</div>" }
                s += "<pre>\(HTML.esc(HTML.clip(Records.display(r), 700)))</pre></li>"
            }
            s += "</ol>"
            if let missing { s += HTML.absent(missing) }
            s += "</div>\n"
        }
        return HTML.p("\(picks.count) generated records picked at random (seed \(options.seed)), each followed back through the ids in its meta.provenance, stage by stage, to the document it came from.")
            + HTML.table(["#", "record", "made by", "tasks", "hops", "traced to"], summary, numeric: [0, 4]) + s
    }

    /// Follows a record's parents (the first id that can be found, nearest upstream stage first) to a record with
    /// none: the ingested document.
    func trace(_ first: Hop) throws -> ([Hop], String?) {
        var hops = [first]
        var cur = first
        while hops.count < 16 {
            let parents = Records.parents(cur.located.record)
            if parents.isEmpty { return (hops, nil) }
            var next: Hop?
            let ups = data.upstream(of: cur.stage)
            search: for id in parents {
                for u in ups {
                    if let l = try data.find(ids: [id], inFiles: data.shardFiles(u))[id] {
                        var hop = Hop(stage: u, located: l)
                        // Through the copies to the stage that made the record.
                        copying: while copies(hop.stage) {
                            for w in data.upstream(of: hop.stage) {
                                if let o = try data.find(ids: [id], inFiles: data.shardFiles(w))[id] {
                                    hop = Hop(stage: w, located: o, via: hop.via + [hop.stage.name])
                                    continue copying
                                }
                            }
                            break
                        }
                        next = hop
                        break search
                    }
                }
            }
            guard let next else {
                return (hops, "\(parents.joined(separator: ", ")) not found in the stages \(cur.stage.name) read (\(ups.map(\.name).joined(separator: ", ")))")
            }
            hops.append(next)
            cur = next
        }
        return (hops, nil)
    }

    /// The source at the end of a chain: file, PubMed id and title, PDF page, Verilog module and line.
    func sourceSummary(_ hops: [Hop]) -> String {
        let facts = sourceFacts(hops)
        guard !facts.isEmpty else { return "" }
        return "<p class=\"src\"><b>Source:</b> " + facts.joined(separator: " · ") + "</p>\n"
    }

    func sourceFacts(_ hops: [Hop]) -> [String] {
        guard let doc = hops.last?.located.record, Records.parents(doc).isEmpty else { return [] }
        let meta = doc["meta"]
        var parts: [String] = []
        let source = doc["source"]?.stringValue ?? meta?["path"]?.stringValue ?? "?"
        parts.append("source " + HTML.code(source))
        if let pmid = meta?["pmid"]?.stringValue ?? meta?["pmid"]?.intValue.map(String.init) { parts.append("PMID " + HTML.code(pmid)) }
        if let t = meta?["title"]?.stringValue { parts.append("“" + HTML.esc(HTML.clip(t, 160)) + "”") }
        if let offsets = meta?["page_offsets"]?.arrayValue {
            // The chunk just before the document says where in the text it starts.
            let chunk = hops.dropLast().last { Records.provenance($0.located.record)?["char_start"] != nil }
            if let startChar = chunk.flatMap({ Records.provenance($0.located.record)?["char_start"]?.intValue }) {
                let endChar = Records.provenance(chunk!.located.record)?["char_end"]?.intValue ?? startChar
                let pageOf = { (c: Int) -> Int? in
                    offsets.firstIndex { ($0.arrayValue?.last?.intValue ?? 0) > c }.map { $0 + 1 }
                }
                if let a = pageOf(startChar) {
                    let b = pageOf(max(startChar, endChar - 1)) ?? a
                    var page = a == b ? "page \(a)" : "pages \(a)–\(b)"
                    page += " of \(meta?["pages"]?.intValue ?? offsets.count)"
                    let ocr = Set(meta?["ocr"]?["pages"]?.arrayValue?.compactMap(\.intValue) ?? [])
                    if ocr.contains(a) { page += " (scanned, read by OCR)" }
                    parts.append(page)
                }
            } else {
                parts.append("\(meta?["pages"]?.intValue ?? offsets.count) pages")
            }
        }
        if let m = meta?["module"]?.stringValue {
            parts.append("module " + HTML.code(m) + (meta?["line"]?.intValue.map { " at line \($0)" } ?? ""))
        }
        return parts
    }

    static let css = """
        :root{--fg:#1f2937;--dim:#6b7280;--line:#e5e7eb;--bg:#fff;--soft:#f8fafc;--bad:#b91c1c}
        *{box-sizing:border-box}
        body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
        main{max-width:1140px;margin:0 auto;padding:24px 28px 60px}
        h1{font-size:28px;margin:0 0 6px}
        h2{font-size:22px;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
        h3{font-size:16px;margin:22px 0 8px}
        .lead{color:#374151;margin:0 0 10px}
        nav a{display:inline-block;margin:0 12px 4px 0;color:#2563eb;text-decoration:none;font-size:14px}
        table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:13.5px}
        th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
        th{background:var(--soft);font-weight:600}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        table.stages td:first-child{white-space:nowrap}
        code{font:12.5px ui-monospace,"DejaVu Sans Mono",Menlo,monospace;background:var(--soft);padding:0 3px;border-radius:3px;word-break:break-all}
        pre{font:12.5px/1.45 ui-monospace,"DejaVu Sans Mono",Menlo,monospace;white-space:pre-wrap;word-break:break-word;background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin:4px 0;max-height:320px;overflow:auto}
        .dim{color:var(--dim)} .small{font-size:12px} .bad{color:var(--bad)} .better{color:#15803d;font-weight:600} .worse{color:var(--bad);font-weight:600}
        .absent{color:var(--dim);font-style:italic;background:var(--soft);border-left:3px solid #cbd5e1;padding:8px 12px}
        .grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px;align-items:start}
        svg.chart{max-width:100%;height:auto;display:block;margin:6px 0}
        svg .ct{font-size:13px;font-weight:600;fill:#111827}
        svg .tick,svg .lg,svg .bv{font-size:11px;fill:#4b5563}
        svg .bl{font-size:11.5px;fill:#1f2937}
        svg .al{font-size:11.5px;fill:#374151}
        svg .grid{stroke:#eef0f3} svg .axis{stroke:#9ca3af}
        svg .series{fill:none;stroke-width:1.8}
        .rej{margin:0 0 4px} pre.raw{max-height:80px}
        .cluster{border:1px solid var(--line);border-radius:8px;margin:12px 0;overflow:hidden}
        .ch{background:var(--soft);padding:6px 10px;font-weight:600;font-size:13.5px}
        .pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:10px;padding:10px}
        .card .cardh{font-size:13px;margin-bottom:2px} .card.kept .cardh{color:#15803d} .card.removed .cardh{color:var(--bad)}
        .where{font-size:11.5px;color:var(--dim)}
        .more{color:var(--dim);font-size:13px;align-self:center}
        .prov{border:1px solid var(--line);border-radius:8px;padding:4px 14px 10px;margin:14px 0}
        .src{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:6px;padding:6px 10px}
        ol.chain{padding-left:22px} ol.chain li{margin:8px 0} .hop{font-size:13.5px}
        details summary{cursor:pointer;color:#2563eb}
        footer{margin-top:40px;color:var(--dim);font-size:12.5px}
        @media (max-width:800px){.grid2{grid-template-columns:1fr}}
        """
}
