import ArgumentParser
import Foundation
import LoomCore
import LoomIngest
import LoomPack

struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Turn raw domain documents into training data.",
        discussion: """
            Every stage reads a directory and writes a directory of JSON Lines
            shards, rejects.jsonl and manifest.json. A stage whose manifest
            matches its options and inputs is skipped when run again; an
            interrupted stage starts over cleanly.

            Examples:
              loom ingest pubmed pubmed25n0001.xml.gz -o out/ingest
              loom chunk out/ingest -o out/chunks --max-tokens 512 --overlap 64
              loom run examples/pipeline.yaml
            """,
        version: loomVersion,
        subcommands: [Ingest.self, ChunkCommand.self, Generate.self, Dedup.self, EmbedCommand.self, ClusterCommand.self, PackCommand.self, Train.self, LoRACommand.self, MergeCommand.self, ModelCommand.self, TokenizerCommand.self, VerilogCommand.self, ServeCommand.self, RunCommand.self, ReportCommand.self, SplitCommand.self, TasksCommand.self, FilterCommand.self, StatsCommand.self, EvalCommand.self, MergeManifestsCommand.self, PDFWorkerCommand.self])
}

/// Options every command that runs stages takes.
struct RunFlags: ParsableArguments {
    @Flag(help: "Run even if the output directory's manifest says it is up to date.")
    var force = false

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    @Option(help: "Records per output shard.")
    var shardRecords = 100_000

    var runOptions: RunOptions { RunOptions(shardRecords: shardRecords, force: force, quiet: quiet) }
}

/// Options every stage command takes.
struct StageOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "The stage's output directory.")
    var output: String

    @OptionGroup var flags: RunFlags

    var quiet: Bool { flags.quiet }
    var runOptions: RunOptions { flags.runOptions }
}

/// Runs a stage and turns errors into one clear line and a non-zero exit.
func runStage(_ make: () throws -> any Stage, options: StageOptions) throws {
    Log.quiet = options.quiet
    do {
        let stage = try make()
        let r = try StageRunner.run(stage, directory: options.output, options: options.runOptions)
        if r.failed { throw ExitCode(1) }
        if !options.quiet { print(r.directory) }
    } catch let e as LoomError {
        Log.error(e.message)
        throw ExitCode(1)
    }
}

/// A PDF worker process (`loom ingest pdf` starts them; not for users): requests on standard input, answers on
/// standard output (Sources/LoomIngest/PDFWorkerProcess.swift).
struct PDFWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: PDFWorkers.command, shouldDisplay: false)

    @Argument var settings: String

    func run() throws {
        do { try PDFWorkers.serve(settingsJSON: settings) } catch let e as LoomError {
            Log.error("pdf worker: \(e.message)")
            throw ExitCode(1)
        }
    }
}

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read source documents into document records.",
        subcommands: [IngestPubMed.self, IngestPDF.self, IngestVerilog.self])
}

struct IngestPubMed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubmed",
        abstract: "Ingest PubMed/MEDLINE XML (baseline and update files, .xml or .xml.gz).",
        discussion: """
            One document per PubmedArticle: text is the title and abstract
            (structured abstracts keep their labels, "BACKGROUND: ..."); meta
            holds pmid, version, MeSH headings with qualifiers, keywords,
            journal, publication date, authors, languages, publication types
            and DOI.

            Give baseline and update files in order (shell globs sort them): a
            later record for a PMID replaces an earlier one, and PMIDs in
            DeleteCitation blocks are removed. The manifest counts both. A
            malformed article goes to rejects.jsonl with its line; a truncated
            or non-XML file is an error naming the file and offset, and the
            articles read before it are kept.

            Example:
              loom ingest pubmed baseline/*.xml.gz updates/*.xml.gz \\
                -o out/pubmed --require-abstract --languages eng \\
                --since 2000 --mesh-exclude Animals
            """)

    @Argument(help: "PubMed XML files (.xml, .xml.gz) or directories holding them.")
    var paths: [String]

    @OptionGroup var stage: StageOptions

    @Option(help: "Files parsed at once (default: the number of cores).")
    var jobs: Int?

    @Flag(help: "Skip articles without an abstract.")
    var requireAbstract = false

    @Option(
        help: "Keep only articles with one of these MeSH descriptors (comma-separated names or UIs, e.g. D006801).")
    var meshInclude: String?

    @Option(help: "Skip articles with any of these MeSH descriptors (comma-separated names or UIs).")
    var meshExclude: String?

    @Option(help: "Keep only these languages (comma-separated PubMed codes, e.g. eng,fre).")
    var languages: String?

    @Option(help: "Keep only articles published in or after this year.")
    var since: Int?

    @Option(help: "Keep only articles published in or before this year.")
    var until: Int?

    @Option(
        help: "Only shard i/N: the articles starting in the i-th of N equal slices of the input's uncompressed bytes.")
    var shard: String?

    func run() throws {
        var c = PubMedIngestConfig(paths: paths)
        c.requireAbstract = requireAbstract
        c.meshInclude = list(meshInclude)
        c.meshExclude = list(meshExclude)
        c.languages = list(languages)
        c.since = since
        c.until = until
        try runStage(
            { try PubMedIngestStage(config: c, jobs: jobCount(jobs), shard: ShardSpec.parse(shard)) },
            options: stage)
    }
}

struct IngestPDF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdf",
        abstract: "Ingest PDFs: the text layer through poppler, OCR (tesseract) for scanned pages.",
        discussion: """
            One document per PDF. Each page's text layer is read in reading
            order; a page without a usable one (no text, or mostly unmappable
            glyphs) is rendered at --dpi and read by tesseract (--ocr auto);
            a page read with low confidence is read again from preprocessed
            images and the surest reading kept (--ocr-preprocess).
            The pages are then cleaned: running headers and footers and bare
            page numbers removed, hyphenated line ends joined, whitespace
            normalised with paragraphs kept (each rule has a --keep-... flag).

            meta holds path, pages, page_offsets (start and end of each page
            in the text, in Unicode scalars), ocr (pages read by OCR, their
            confidence, method and candidates, languages, dpi), failed_pages, and the PDF's title,
            author and creation date where present. An encrypted, truncated or
            non-PDF file goes to rejects.jsonl and the run goes on; a page that
            cannot be read is rejected alone.

            Example:
              loom ingest pdf policies/ scans/ -o out/pdf --languages eng,kor
            """)

    @Argument(help: "PDF files, or directories searched recursively for *.pdf.")
    var paths: [String]

    @OptionGroup var stage: StageOptions

    @Option(help: "OCR policy: auto (pages without a usable text layer), always, never.")
    var ocr = "auto"

    @Option(help: "Tesseract languages, comma-separated (eng, kor, ...; mixed pages: eng,kor).")
    var languages = "eng"

    @Option(help: "Resolution pages are rendered at for OCR.")
    var dpi = 300

    @Option(help: "Pages read at once (default: the number of cores).")
    var jobs: Int?

    @Option(help: "Also write every page read by OCR to this directory as a PGM image (the page as rendered).")
    var ocrImages: String?

    @Option(help: """
        Preprocessed OCR readings (Sauvola binarisation with deskew and border removal; 1.5x upscaling), the one \
        tesseract is surest of kept: auto (pages first read with confidence below 90), always, never.
        """)
    var ocrPreprocess = "auto"

    @Flag(help: "Keep lines that repeat at the top or bottom of pages (running headers and footers).")
    var keepRunningLines = false

    @Flag(help: "Keep bare page numbers.")
    var keepPageNumbers = false

    @Flag(help: "Keep end-of-line hyphens as they are.")
    var keepHyphens = false

    @Flag(help: "Keep the text layer's line breaks and spacing (no NFKC, no joining of lines).")
    var keepWhitespace = false

    @Option(help: "Only shard i/N of the PDF files, in the order found (N shard outputs in order = one run).")
    var shard: String?

    func run() throws {
        var c = PDFIngestConfig(paths: paths)
        c.ocr = ocr
        c.languages = list(languages.replacingOccurrences(of: "+", with: ","))
        c.dpi = dpi
        c.ocrImages = ocrImages
        c.ocrPreprocess = ocrPreprocess
        c.removeRunningLines = !keepRunningLines
        c.removePageNumbers = !keepPageNumbers
        c.joinHyphens = !keepHyphens
        c.normalizeWhitespace = !keepWhitespace
        try runStage(
            { try PDFIngestStage(config: c, jobs: jobCount(jobs), shard: ShardSpec.parse(shard)) },
            options: stage)
    }
}

func list(_ s: String?) -> [String] {
    (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

struct ChunkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chunk",
        abstract: "Split documents into sentence-aligned chunks of at most --max-tokens.",
        discussion: """
            Whole sentences are packed into each chunk; the next chunk starts
            with the previous one's last sentences, up to --overlap tokens.
            Tokens are words until a trained tokenizer is given. Each chunk
            keeps its document's meta, plus meta.provenance (doc_id, source,
            character offsets, tokens).

            Example:
              loom chunk out/ingest -o out/chunks --max-tokens 256 --overlap 32
            """)

    @Argument(help: "A finished stage directory of documents (e.g. the output of 'loom ingest').")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Most tokens in a chunk.")
    var maxTokens = 512

    @Option(help: "Tokens of trailing sentences repeated at the start of the next chunk.")
    var overlap = 64

    @Option(help: "Only shard i/N of the input documents (N shard outputs in order = one run; see merge-manifests).")
    var shard: String?

    func run() throws {
        var c = ChunkConfig()
        c.maxTokens = maxTokens
        c.overlap = overlap
        try runStage({ try ChunkStage(config: c, input: input, shard: ShardSpec.parse(shard)) }, options: stage)
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline file: its steps in order, each reading the previous step's output.",
        discussion: """
            name: pubmed-demo
            output: out/            # relative paths are relative to this file
            steps:
              - ingest: { kind: pubmed, paths: [pubmed/], require_abstract: true }
              - chunk: { max_tokens: 256, overlap: 32 }

            Step N writes OUTPUT/NN-STEP. Steps that are up to date are
            skipped; a step that was interrupted (even by kill -9) starts over
            and produces the same bytes as an uninterrupted run.
            """)

    @Argument(help: "The pipeline YAML file.")
    var file: String

    @Option(name: [.short, .customLong("output")], help: "Write here instead of the file's 'output'.")
    var output: String?

    @OptionGroup var flags: RunFlags

    @Option(help: "Parallel jobs for steps that use them (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        Log.quiet = flags.quiet
        do {
            let pipeline = try Pipeline.load(path: file)
            let runner = PipelineRunner(
                factories: Steps.factories(jobs: jobCount(jobs)))
            let results = try runner.run(pipeline, output: output, options: flags.runOptions)
            if !flags.quiet, let last = results.last {
                print("\(pipeline.name): \(results.count) steps done; output in \(last.directory)")
            }
            // A `report:` step: the page to open.
            if !flags.quiet, let r = results.last(where: { $0.manifest.stage == "report" }) {
                print("report: " + FS.join(r.directory, "report.html"))
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

/// `--jobs` as given, or the number of cores.
func jobCount(_ given: Int?) -> Int { given ?? ProcessInfo.processInfo.activeProcessorCount }
