import Foundation
import XCTest

@testable import LoomCore
@testable import LoomReport

/// Runs a real pipeline with `loom run` (PDF, PubMed, chunking, dedup, reading comprehension, packing, CPT, SFT,
/// preference pairs, DPO, merge and the report step) on inputs written here, then reads the report it wrote.
final class ReportTests: XCTestCase {
    /// One pipeline run shared by the tests of this class (it trains three small models).
    nonisolated(unsafe) static var run: (dir: String, status: Int32, log: String)?
    static let lock = NSLock()

    static var loom: String {
        if let b = ProcessInfo.processInfo.environment["LOOM_BIN"] { return b }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("loom").path
    }

    override class func tearDown() {
        // LOOM_REPORT_KEEP=1 keeps the pipeline output to look at.
        if let r = run, ProcessInfo.processInfo.environment["LOOM_REPORT_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: r.dir)
        }
        super.tearDown()
    }

    /// Runs `loom ARGS` in `cwd`; returns the exit status, stdout and stderr.
    static func loom(_ args: [String], in cwd: String) throws -> (Int32, String, String) {
        guard FileManager.default.isExecutableFile(atPath: loom) else {
            throw XCTSkip("\(loom) not built: run 'swift build' first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loom)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        let tag = UUID().uuidString.prefix(8)
        let out = cwd + "/.out-\(tag)", err = cwd + "/.err-\(tag)"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        p.waitUntilExit()
        let o = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: out)
        try? FileManager.default.removeItem(atPath: err)
        return (p.terminationStatus, o, e)
    }

    // MARK: Inputs

    static let topics = [
        ("statin", "Statin therapy lowered hepatic enzyme elevations in older adults followed for four years"),
        ("sleep", "Short sleep duration was associated with higher glycated haemoglobin in adolescents with diabetes"),
        ("music", "Music therapy reduced dental anxiety and heart rate in a crossover study of forty adults"),
        ("exercise", "Supervised exercise improved walking distance in patients with peripheral artery disease"),
    ]

    static func abstract(_ topic: (String, String), variant: Int) -> String {
        let (word, claim) = topic
        var s = [
            "\(claim).",
            "The cohort was recruited from three clinics between 2015 and 2019 and followed with regular visits.",
            "Researchers measured the primary outcome at baseline and every six months using standard laboratory methods.",
            "Secondary outcomes included quality of life, adverse events and adherence to the \(word) protocol.",
            "Adjustment for age, sex and baseline severity did not change the main association in any model.",
            "The effect was larger in participants with more severe disease at the start of the \(word) study.",
            "Dropout was low and similar between groups, and no serious adverse events were attributed to \(word) care.",
            "These findings support further randomised trials of \(word) interventions in routine clinical practice.",
        ]
        if variant == 1 { s[1] = "The cohort was recruited from four clinics between 2015 and 2019 and followed with regular visits." }
        if word == "sleep" {
            // Untrusted text: markup in a record must reach the page as text (it is shown in the dedup cluster).
            s.insert("Some participants typed &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt; into the diary form.", at: 4)
        }
        return s.joined(separator: " ")
    }

    static func pubmed() -> String {
        var x = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PubmedArticleSet>\n"
        func article(_ pmid: String, _ title: String, _ abstract: String) -> String {
            """
            <PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">\(pmid)</PMID>
            <Article><Journal><Title>Journal of Tests</Title></Journal><ArticleTitle>\(title)</ArticleTitle>
            <Abstract><AbstractText>\(abstract)</AbstractText></Abstract><Language>eng</Language></Article>
            </MedlineCitation></PubmedArticle>

            """
        }
        for (i, t) in topics.enumerated() {
            x += article(String(700_001 + i), "A study of \(t.0) outcomes", abstract(t, variant: 0))
        }
        // A near-duplicate of the second article (one word differs) and an article the ingester rejects.
        x += article("700101", "A second report of sleep outcomes", abstract(topics[1], variant: 1))
        x += article("not-a-number", "A broken record", abstract(topics[2], variant: 0))
        return x + "</PubmedArticleSet>\n"
    }

    /// A two-page PDF with a text layer (Helvetica, no embedded font), written byte by byte with a correct xref.
    static func pdf(pages: [[String]]) -> Data {
        var objects: [String] = []
        let n = pages.count
        let fontObj = 3 + 2 * n
        objects.append("<< /Type /Catalog /Pages 2 0 R >>")
        objects.append("<< /Type /Pages /Kids [\((0..<n).map { "\(3 + 2 * $0) 0 R" }.joined(separator: " "))] /Count \(n) >>")
        for (i, lines) in pages.enumerated() {
            objects.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 \(fontObj) 0 R >> >> /Contents \(4 + 2 * i) 0 R >>")
            var content = "BT /F1 11 Tf 72 720 Td 15 TL\n"
            for l in lines { content += "(\(l)) Tj T*\n" }
            content += "ET\n"
            objects.append("<< /Length \(content.utf8.count) >>\nstream\n\(content)endstream")
        }
        objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        var out = "%PDF-1.4\n"
        var offsets: [Int] = []
        for (i, o) in objects.enumerated() {
            offsets.append(out.utf8.count)
            out += "\(i + 1) 0 obj\n\(o)\nendobj\n"
        }
        let xref = out.utf8.count
        out += "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        for o in offsets { out += String(format: "%010d 00000 n \n", o) }
        out += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        return Data(out.utf8)
    }

    static let pipeline = """
        name: report-test
        output: out
        steps:
          - ingest: { kind: pdf, paths: [manual.pdf], ocr: never }
          - chunk: { max_tokens: 60, overlap: 0 }
          - generate: { method: rc, seed: 1 }
          - ingest: { kind: pubmed, paths: [articles.xml], require_abstract: true }
          - chunk: { max_tokens: 40, overlap: 0 }
          - dedup: { method: minhash, threshold: 0.7 }
          - generate: { method: rc, seed: 1 }
          - pack: { context_tokens: 300, tokens_per_word: 2.5 }
          - train: { objective: cpt, preset: tiny, steps: 6, seq_len: 128, batch_size: 2, lr: 0.003, eval_every: 3 }
          - train: { objective: sft, input: "@generate", model: "@train", steps: 6, seq_len: 256, batch_size: 2, lr: 0.001, eval_every: 3 }
          - generate: { method: preference, input: "@generate", rejected: distractor, seed: 1 }
          - train: { objective: dpo, input: "@generate", model: "@train", beta: 0.1, steps: 4, seq_len: 256, batch_size: 2, lr: 0.0005, eval_every: 2 }
          - merge:
              merge_method: linear
              models:
                - model: out/10-train
                  parameters: { weight: 0.5 }
                - model: out/12-train
                  parameters: { weight: 0.5 }
          - sample: { model: "@merge", prompts: ["When does the occlusion alarm sound?"], max_tokens: 8 }
          - ingest: { kind: verilog, paths: [counter.v] }
          - verilog: { tasks: [describe, complete, mutate], samples: 2, seed: 1 }
          - eval: { model: out/09-train, data: [out/07-generate, out/05-chunk], limit: 3, max_tokens: 4, resamples: 20 }
          - eval: { model: out/10-train, data: [out/07-generate, out/05-chunk], limit: 3, max_tokens: 4, resamples: 20 }
          - filter: { input: "@5", rules: [gopher-repetition, gopher-quality] }
          - report: { seed: 1, samples: 3 }

        """

    static let verilog = """
        // An up/down counter with a synchronous load.
        module counter #(parameter WIDTH = 8) (
          input wire clk,
          input wire rst_n,
          input wire load,
          input wire up,
          input wire [WIDTH-1:0] d,
          output reg [WIDTH-1:0] q
        );
          always @(posedge clk or negedge rst_n) begin
            if (!rst_n) q <= {WIDTH{1'b0}};
            else if (load) q <= d;
            else if (up) q <= q + 1'b1;
            else q <= q - 1'b1;
          end
        endmodule

        """

    static let manualPages = [
        [
            "Chapter 1. Installing the pump",
            "The infusion pump must be mounted on a vertical pole at chest height.",
            "Connect the power cable before switching the pump on for the first time.",
            "The display shows the battery level and the current flow rate in millilitres per hour.",
            "Calibrate the pressure sensor every month using the supplied test cartridge.",
        ],
        [
            "Chapter 2. Cleaning and alarms",
            "Clean the housing with a soft cloth and a mild disinfectant after each patient.",
            "An occlusion alarm sounds when the line pressure rises above the configured limit.",
            "Replace the battery when the display warns that fewer than thirty minutes remain.",
            "Never immerse the pump in water or sterilise it in an autoclave.",
        ],
    ]

    /// Writes the inputs and runs the pipeline once for the class.
    func pipelineRun() throws -> (dir: String, status: Int32, log: String) {
        try Self.lock.withLock {
            if let r = Self.run { return r }
            let dir = NSTemporaryDirectory() + "loom-report-" + UUID().uuidString.prefix(8)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.pdf(pages: Self.manualPages).write(to: URL(fileURLWithPath: dir + "/manual.pdf"))
            try FS.writeAtomically(Self.pubmed(), to: dir + "/articles.xml")
            try FS.writeAtomically(Self.pipeline, to: dir + "/pipeline.yaml")
            try FS.writeAtomically(Self.verilog, to: dir + "/counter.v")
            let (status, out, err) = try Self.loom(["run", "pipeline.yaml"], in: dir)
            let r = (dir, status, out + err)
            Self.run = r
            return r
        }
    }

    func report() throws -> (dir: String, html: String) {
        let r = try pipelineRun()
        XCTAssertEqual(r.status, 0, r.log)
        let path = r.dir + "/out/20-report/report.html"
        return (r.dir, try FS.readText(path))
    }

    /// The HTML of one section.
    func section(_ html: String, _ id: String) -> String? {
        guard let a = html.range(of: "<section id=\"\(id)\">") else { return nil }
        guard let b = html.range(of: "</section>", range: a.upperBound..<html.endIndex) else { return nil }
        return String(html[a.lowerBound..<b.upperBound])
    }

    // MARK: Tests

    func testPipelineStepWritesAReportWithEverySectionFilled() throws {
        let (dir, html) = try report()
        let r = try pipelineRun()
        XCTAssertTrue(r.log.contains("report: out/20-report/report.html"), r.log)
        for (id, title) in Report.sections {
            guard let s = section(html, id) else {
                XCTFail("section \(id) missing")
                continue
            }
            XCTAssertTrue(s.contains("<h2>\(title)</h2>"), id)
            XCTAssertTrue(s.contains("<svg") || s.contains("<table"), "section \(id) has no chart or table")
            XCTAssertFalse(s.contains("class=\"absent\""), "section \(id) says it has nothing: \(s.prefix(2000))")
        }
        // Quality filters: what the filter step (gopher rules on the 40-word PubMed chunks) dropped, by check.
        XCTAssertTrue(section(html, "filter")!.contains("<b>19-filter</b>"))
        XCTAssertTrue(section(html, "filter")!.contains("<code>gopher-quality</code>"))
        // Stages: every step directory but the report's own, with its counts in and out.
        for d in ["01-ingest", "02-chunk", "03-generate", "06-dedup", "08-pack", "09-train", "13-merge"] {
            XCTAssertTrue(section(html, "stages")!.contains("<b>\(d)</b>"), d)
        }
        XCTAssertFalse(html.contains("<b>20-report</b>"))
        // Rejects: the ingester's broken PMID and the packer's overlong samples, grouped, with file:line.
        let rejects = section(html, "rejects")!
        XCTAssertTrue(rejects.contains("PMID is not a number"), rejects)
        XCTAssertTrue(rejects.contains("articles.xml:"), rejects)
        XCTAssertTrue(rejects.contains("is longer than the context (N)"), rejects)
        XCTAssertTrue(rejects.contains("part-00000.jsonl:"), rejects)
        // Task mix: reading-comprehension task types and preference pairs.
        let tasks = section(html, "tasks")!
        for t in ["completion", "keywords", "reading-comprehension", "preference", "verilog-describe", "complete_module"] {
            XCTAssertTrue(tasks.contains(t), t)
        }
        // Generator scores: RC answers found verbatim (per record and per task type), preference pairs' length ratio
        // and similarity, the EDA tools' verdicts on Verilog targets, with the side stage's pairs.
        let scores = section(html, "scores")!
        for k in ["<b>03-generate</b>", "scores.verbatim", "tasks.completion.verbatim", "<b>11-generate</b>", "scores.length_ratio",
                  "scores.similarity", "<b>16-verilog</b>", "<b>16-verilog/preference</b>", "scores.yosys_accepts", "scores.iverilog_accepts"] {
            XCTAssertTrue(scores.contains(k), "\(k): \(scores.prefix(3000))")
        }
        XCTAssertFalse(scores.contains("<b>12-train</b>"))
        XCTAssertTrue(section(html, "languages")!.contains("verilog"))
        XCTAssertTrue(section(html, "languages")!.contains("Latin"))
        XCTAssertTrue(section(html, "languages")!.contains("en "))
        // Dedup: the near-duplicate article's chunks side by side with the kept ones.
        let dedup = section(html, "dedup")!
        XCTAssertTrue(dedup.contains("class=\"card kept\""), dedup)
        XCTAssertTrue(dedup.contains("class=\"card removed\""), dedup)
        XCTAssertTrue(dedup.contains("pubmed:700101"), dedup)
        XCTAssertTrue(dedup.contains("Jaccard"), dedup)
        // Packing against FFD.
        let pack = section(html, "packing")!
        XCTAssertTrue(pack.contains("first-fit-decreasing"))
        let packManifest = try Manifest.read(directory: dir + "/out/08-pack")
        XCTAssertTrue(pack.contains(Num.percent(packManifest.counts["packing_efficiency"]!.doubleValue!)), pack)
        // Training: three loss curves, DPO's margins.
        let training = section(html, "training")!
        XCTAssertEqual(training.components(separatedBy: "aria-label=\"Loss\"").count - 1, 3)
        XCTAssertTrue(training.contains("Reward margin"))
        XCTAssertTrue(training.contains("eval loss"))
        // Merge: the method, both models and the written files.
        let merge = section(html, "merge")!
        XCTAssertTrue(merge.contains("linear"))
        XCTAssertTrue(merge.contains("10-train (train-sft)"), merge)
        XCTAssertTrue(merge.contains("12-train (train-dpo)"), merge)
        XCTAssertTrue(merge.contains("model.safetensors"))
        // The sample step's generation from the merged model.
        XCTAssertTrue(merge.contains("<b>14-sample</b>"), merge)
        XCTAssertTrue(merge.contains("generations from <code>13-merge (merge)</code>"), merge)
        XCTAssertTrue(merge.contains("When does the occlusion alarm sound?"), merge)
        // Evaluation: one row per eval step, the reading-comprehension answers and the chunks' perplexity, each with
        // its interval, the second row's difference to the first.
        let evaluation = section(html, "evaluation")!
        XCTAssertTrue(evaluation.contains("<b>17-eval</b>") && evaluation.contains("<b>18-eval</b>"), evaluation)
        XCTAssertTrue(evaluation.contains("exact_match") && evaluation.contains("bits_per_byte"), evaluation)
        XCTAssertTrue(evaluation.contains("10-train (train-sft)") || evaluation.contains("09-train"), evaluation)
        let second = evaluation.components(separatedBy: "<b>18-eval</b>")[1]
        XCTAssertTrue(second.contains("class=\"better small\"") || second.contains("class=\"worse small\"") || second.contains("class=\"dim small\">+") || second.contains("class=\"dim small\">−"), second)
        // Provenance: three records, one from each generating step, each traced to its source.
        let prov = section(html, "provenance")!
        XCTAssertEqual(prov.components(separatedBy: "<div class=\"prov\">").count - 1, 3)
        XCTAssertEqual(prov.components(separatedBy: "<p class=\"src\"><b>Source:</b>").count - 1, 3, prov)
        XCTAssertTrue(prov.contains("manual.pdf"), prov)
        XCTAssertTrue(prov.contains(" of 2"), prov)  // the PDF page of the chunk
        XCTAssertTrue(prov.contains("PMID <code>7000"), prov)
        XCTAssertTrue(prov.contains("11-generate"), prov)  // a preference pair ...
        XCTAssertTrue(prov.contains("07-generate"), prov)  // ... from its conversation
        // A chunk kept by dedup is shown where it was made, with the copy it passed through.
        XCTAssertTrue(prov.contains("passed through 06-dedup"), prov)
        XCTAssertTrue(prov.contains("<b>05-chunk</b>"), prov)
    }

    func testRecordTextIsEscaped() throws {
        let (_, html) = try report()
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("<img"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        // Nothing is loaded from elsewhere.
        XCTAssertNil(html.range(of: #"<[a-zA-Z][^>]*\s(src|href)=\"?(https?:|//)"#, options: .regularExpression), "no external resource")
        XCTAssertFalse(html.contains("<link"))
        XCTAssertFalse(html.contains("url("))
    }

    func testCommandWritesTheSameBytesAsTheStepAndIsDeterministic() throws {
        let (dir, html) = try report()
        let (status, out, err) = try Self.loom(["report", "out", "--title", "report-test", "-o", "again.html"], in: dir)
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(out, "again.html\n")
        XCTAssertEqual(try FS.readText(dir + "/again.html"), html)
        // In process, twice, and with another seed: other records traced.
        let root = dir + "/out"
        var o = ReportOptions()
        o.title = "report-test"
        let a = try Report.render(root: root, options: o)
        XCTAssertEqual(a, try Report.render(root: root, options: o))
        o.seed = 7
        XCTAssertNotEqual(section(a, "provenance"), section(try Report.render(root: root, options: o), "provenance"))
        // A re-run of the pipeline skips the report: nothing changed.
        let (again, _, log) = try Self.loom(["run", "pipeline.yaml"], in: dir)
        XCTAssertEqual(again, 0, log)
        XCTAssertTrue(log.contains("report: up to date"), log)
    }

    /// `loom stats` on every stage directory of the run (and the Verilog step's side stage): records, or the
    /// manifest of a stage that writes none; the generators' scores where they wrote them.
    func testStatsRunsOnEveryStageDirectory() throws {
        let r = try pipelineRun()
        XCTAssertEqual(r.status, 0, r.log)
        var dirs: [String] = []
        for name in FS.list(r.dir + "/out").sorted() where FS.exists(r.dir + "/out/" + name + "/manifest.json") {
            dirs.append("out/" + name)
            for side in FS.list(r.dir + "/out/" + name).sorted() where FS.exists(r.dir + "/out/\(name)/\(side)/manifest.json") {
                dirs.append("out/\(name)/\(side)")
            }
        }
        XCTAssertGreaterThanOrEqual(dirs.count, 21)
        var outputs: [String: String] = [:]
        for d in dirs {
            let (status, out, err) = try Self.loom(["stats", d], in: r.dir)
            XCTAssertEqual(status, 0, "\(d): \(err)")
            XCTAssertFalse(out.isEmpty, d)
            outputs[d] = out
            let (js, json, jerr) = try Self.loom(["stats", d, "--json"], in: r.dir)
            XCTAssertEqual(js, 0, "\(d): \(jerr)")
            XCTAssertNoThrow(try JSONValue.parse(json), d)
        }
        let rc = outputs["out/07-generate"] ?? ""
        XCTAssertTrue(rc.contains("scores.verbatim") && rc.contains("tasks.completion.verbatim *"), rc)
        XCTAssertTrue(rc.contains("languages: ") && rc.contains("task types: ") && rc.contains("text.chars"), rc)
        let pref = outputs["out/11-generate"] ?? ""
        XCTAssertTrue(pref.contains("scores.length_ratio") && pref.contains("scores.similarity") && pref.contains("chosen.chars"), pref)
        XCTAssertTrue(outputs["out/16-verilog"]?.contains("scores.yosys_accepts *") == true, outputs["out/16-verilog"] ?? "")
        XCTAssertTrue(outputs["out/16-verilog/preference"]?.contains("scores.length_ratio") == true)
        XCTAssertTrue(outputs["out/09-train"]?.hasPrefix("0 records: stage train-cpt wrote no records") == true, outputs["out/09-train"] ?? "")
        // The share printed is the records' own: every RC answer of the miner is a span of its chunk.
        let (_, json, _) = try Self.loom(["stats", "out/07-generate", "--json"], in: r.dir)
        let v = try JSONValue.parse(json)["distributions"]?["scores.verbatim"]
        XCTAssertEqual(v?["mean"]?.doubleValue, 1)
        XCTAssertEqual(v?["n"]?.intValue, try Manifest.read(directory: r.dir + "/out/07-generate").records)
    }

    func testAbsentStagesAreSaidPlainly() throws {
        let dir = NSTemporaryDirectory() + "loom-report-small-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FS.writeAtomically(Self.pubmed(), to: dir + "/articles.xml")
        try FS.writeAtomically(
            "name: small\noutput: out\nsteps:\n  - ingest: { kind: pubmed, paths: [articles.xml] }\n  - chunk: { max_tokens: 40, overlap: 0 }\n",
            to: dir + "/pipeline.yaml")
        let (status, _, err) = try Self.loom(["run", "pipeline.yaml", "-q"], in: dir)
        XCTAssertEqual(status, 0, err)
        let (rs, out, rerr) = try Self.loom(["report", "out"], in: dir)
        XCTAssertEqual(rs, 0, rerr)
        XCTAssertEqual(out, "out/report.html\n")
        let html = try FS.readText(dir + "/out/report.html")
        for (id, _) in Report.sections { XCTAssertNotNil(section(html, id), id) }
        XCTAssertTrue(section(html, "dedup")!.contains("No dedup step in this run"))
        XCTAssertTrue(section(html, "packing")!.contains("No pack step in this run"))
        XCTAssertTrue(section(html, "training")!.contains("No train step in this run"))
        XCTAssertTrue(section(html, "merge")!.contains("No merge step in this run"))
        XCTAssertTrue(section(html, "provenance")!.contains("No generated records"))
        XCTAssertTrue(section(html, "tasks")!.contains("No generation step"))
        XCTAssertTrue(section(html, "scores")!.contains("No record in this run carries meta.scores"))
        // What did run is still measured.
        XCTAssertTrue(section(html, "datasets")!.contains("<svg"))
        XCTAssertTrue(section(html, "rejects")!.contains("PMID is not a number"))

        let (bad, _, berr) = try Self.loom(["report", "nowhere"], in: dir)
        XCTAssertEqual(bad, 1)
        XCTAssertTrue(berr.contains("nowhere: no such directory"), berr)
        let (empty, _, eerr) = try Self.loom(["report", "."], in: dir + "/out/01-ingest")
        XCTAssertEqual(empty, 1)
        XCTAssertTrue(eerr.contains("no stage directories"), eerr)
    }

    /// A cluster step on PubMed chunks with MeSH: the packing section shows the share of documents in clusters, the
    /// MeSH coherence the manifest measured, and the cluster-size histogram.
    func testClusterCoherenceAndSizesAreShown() throws {
        let dir = NSTemporaryDirectory() + "loom-report-cluster-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var x = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PubmedArticleSet>\n"
        for (i, t) in Self.topics.enumerated() {
            for v in 0..<2 {
                let mesh = ["Humans", "\(t.0.capitalized) Studies", v == 0 ? "Cohort Studies" : "Adolescent"].enumerated().map {
                    "<MeshHeading><DescriptorName UI=\"D\($0.offset)\(i)\" MajorTopicYN=\"N\">\($0.element)</DescriptorName></MeshHeading>"
                }.joined()
                x += """
                    <PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">\(800_001 + 2 * i + v)</PMID>
                    <Article><Journal><Title>Journal of Tests</Title></Journal><ArticleTitle>On \(t.0)</ArticleTitle>
                    <Abstract><AbstractText>\(Self.abstract(t, variant: v))</AbstractText></Abstract><Language>eng</Language></Article>
                    <MeshHeadingList>\(mesh)</MeshHeadingList></MedlineCitation></PubmedArticle>

                    """
            }
        }
        try FS.writeAtomically(x + "</PubmedArticleSet>\n", to: dir + "/articles.xml")
        try FS.writeAtomically(
            "name: small\noutput: out\nsteps:\n  - ingest: { kind: pubmed, paths: [articles.xml] }\n  - chunk: {}\n"
                + "  - cluster: { embedder: hashing, similarity: 0.5 }\n",
            to: dir + "/pipeline.yaml")
        let (status, _, err) = try Self.loom(["run", "pipeline.yaml", "-q"], in: dir)
        XCTAssertEqual(status, 0, err)
        let m = try Manifest.read(directory: dir + "/out/03-cluster")
        let co = try XCTUnwrap(m.counts["coherence"])
        XCTAssertEqual(co["labelled_documents"]?.intValue, 8)
        XCTAssertGreaterThan(try XCTUnwrap(m.counts["share_in_clusters"]?.doubleValue), 0)
        let (rs, _, rerr) = try Self.loom(["report", "out"], in: dir)
        XCTAssertEqual(rs, 0, rerr)
        let packing = try XCTUnwrap(section(try FS.readText(dir + "/out/report.html"), "packing"))
        XCTAssertTrue(packing.contains("embedder: hashing"), packing)
        XCTAssertTrue(packing.contains(String(format: "%.1f%%", m.counts["share_in_clusters"]!.doubleValue! * 100)), packing)
        XCTAssertTrue(packing.contains(String(format: "%.4f", co["within_jaccard"]!.doubleValue!)), packing)
        XCTAssertTrue(packing.contains(String(format: "%.4f", co["random_jaccard"]!.doubleValue!)), packing)
        XCTAssertTrue(packing.contains("Cluster sizes"), packing)
        XCTAssertTrue(packing.contains("No pack step in this run"), packing)
    }

    func testMergeCommandOutputIsSummarised() throws {
        let (dir, _) = try report()
        let run = dir + "/merge-run"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: run) }
        try FileManager.default.copyItem(atPath: dir + "/out/09-train", toPath: run + "/01-train")
        try FS.writeAtomically(
            "merge_method: task_arithmetic\nbase_model: \(dir)/out/09-train\nmodels:\n  - model: \(dir)/out/10-train\n    parameters: {weight: 1.0}\n  - model: \(dir)/out/12-train\n    parameters: {weight: 0.5}\n",
            to: run + "/chat-vector.yml")
        let (ms, _, merr) = try Self.loom(["merge", "chat-vector.yml", "-o", "domain-chat", "-q"], in: run)
        XCTAssertEqual(ms, 0, merr)
        let (rs, _, rerr) = try Self.loom(["report", "."], in: run)
        XCTAssertEqual(rs, 0, rerr)
        let merge = section(try FS.readText(run + "/report.html"), "merge")!
        XCTAssertTrue(merge.contains("<b>domain-chat</b> <span class=\"dim\">loom merge</span>: task_arithmetic"), merge)
        XCTAssertTrue(merge.contains("weight 0.5"), merge)
        XCTAssertTrue(merge.contains("<i>base model</i>"), merge)
        XCTAssertTrue(merge.contains("model.safetensors"), merge)
        XCTAssertFalse(merge.contains("class=\"absent\""), merge)
    }

    // MARK: Headless browser

    static var chromium: String? {
        for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        where FileManager.default.isExecutableFile(atPath: p) { return p }
        return nil
    }

    func chromium(_ args: [String], home: String) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.chromium!)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(home)/profile"] + args
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home
        p.environment = env
        let out = home + "/stdout", err = home + "/stderr"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    func testChromiumRendersEverySectionWithoutConsoleErrors() throws {
        guard Self.chromium != nil else {
            throw XCTSkip("chromium is not installed (apt-get install -y chromium): the headless-browser check is skipped")
        }
        let (dir, _) = try report()
        let page = "file://" + dir + "/out/20-report/report.html"
        let home = dir + "/chromium"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let png = dir + "/report.png"
        let (shot, _, shotErr) = try chromium(
            ["--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--screenshot=\(png)", "--window-size=1280,4000", page],
            home: home)
        XCTAssertEqual(shot, 0, shotErr)
        XCTAssertFalse(shotErr.contains("Uncaught"), shotErr)
        XCTAssertFalse(shotErr.contains("ERROR:CONSOLE"), shotErr)
        XCTAssertFalse(shotErr.contains(":CONSOLE("), shotErr)
        let pngData = try Data(contentsOf: URL(fileURLWithPath: png))
        XCTAssertEqual(Array(pngData.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertGreaterThan(pngData.count, 50_000, "a blank page would compress to almost nothing")
        if let keep = ProcessInfo.processInfo.environment["LOOM_REPORT_PNG"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: png, toPath: keep)
        }

        // The DOM as the browser built it: every section with its heading and a drawn chart or a filled table.
        let (dumped, dom, domErr) = try chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", page], home: home)
        XCTAssertEqual(dumped, 0, domErr)
        XCTAssertFalse(domErr.contains("Uncaught"), domErr)
        XCTAssertFalse(domErr.contains("ERROR:CONSOLE"), domErr)
        for (id, title) in Report.sections {
            guard let s = section(dom, id) else {
                XCTFail("the browser's DOM has no section \(id)")
                continue
            }
            XCTAssertTrue(s.contains("<h2>\(title)</h2>"), id)
            let chart = s.range(of: #"<svg[^>]*>.*?<(rect|polyline|circle)"#, options: .regularExpression) != nil
            let table = s.range(of: #"<tbody><tr><td"#, options: .regularExpression) != nil
            XCTAssertTrue(chart || table, "section \(id) shows neither a drawn chart nor a table row")
        }
    }
}
