// `loom ingest pdf`: one document per PDF. Pages are read in parallel (one poppler document and one tesseract
// handle per worker); a page whose text layer is missing or unusable is rendered and read by OCR; the pages are then
// cleaned together (running headers/footers, page numbers, hyphenation, whitespace) and written in input order.

import CPoppler
import Foundation
import LoomCore

public struct PDFIngestConfig: Codable, Equatable, Sendable {
    public var paths: [String] = []
    /// auto: OCR pages without a usable text layer; always: OCR every page; never: text layer only.
    public var ocr = "auto"
    /// Tesseract language codes, combined as "eng+kor".
    public var languages = ["eng"]
    public var dpi = 300
    /// When set, every page read by OCR is also written here as a PGM image (the page as rendered).
    public var ocrImages: String?
    /// When preprocessed readings of an OCR page are tried (`OCRPreprocess`): auto (when the first reading's
    /// confidence is below `OCREngine.retryBelow`), always, never.
    public var ocrPreprocess = "auto"
    public var removeRunningLines = true
    public var removePageNumbers = true
    public var joinHyphens = true
    public var normalizeWhitespace = true

    public init(paths: [String] = []) { self.paths = paths }

    public static let keys = [
        "kind", "paths", "ocr", "languages", "dpi", "ocr_images", "ocr_preprocess", "remove_running_lines", "remove_page_numbers", "join_hyphens",
        "normalize_whitespace", "jobs",
    ]

    enum CodingKeys: String, CodingKey {
        case paths, ocr, languages, dpi, ocrImages, ocrPreprocess, removeRunningLines, removePageNumbers, joinHyphens, normalizeWhitespace
    }

    /// Missing keys take their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PDFIngestConfig()
        paths = try c.decodeIfPresent([String].self, forKey: .paths) ?? []
        ocr = try c.decodeIfPresent(String.self, forKey: .ocr) ?? d.ocr
        languages = try c.decodeIfPresent([String].self, forKey: .languages) ?? d.languages
        dpi = try c.decodeIfPresent(Int.self, forKey: .dpi) ?? d.dpi
        ocrImages = try c.decodeIfPresent(String.self, forKey: .ocrImages)
        ocrPreprocess = try c.decodeIfPresent(String.self, forKey: .ocrPreprocess) ?? d.ocrPreprocess
        removeRunningLines = try c.decodeIfPresent(Bool.self, forKey: .removeRunningLines) ?? true
        removePageNumbers = try c.decodeIfPresent(Bool.self, forKey: .removePageNumbers) ?? true
        joinHyphens = try c.decodeIfPresent(Bool.self, forKey: .joinHyphens) ?? true
        normalizeWhitespace = try c.decodeIfPresent(Bool.self, forKey: .normalizeWhitespace) ?? true
    }

    public var cleanup: PDFCleanupOptions {
        var o = PDFCleanupOptions()
        o.removeRunningLines = removeRunningLines
        o.removePageNumbers = removePageNumbers
        o.joinHyphens = joinHyphens
        o.normalizeWhitespace = normalizeWhitespace
        return o
    }

    public var languageString: String { languages.joined(separator: "+") }
}

/// What became of one page.
struct PDFPageResult: Sendable {
    var text = ""
    var ocr = false
    var confidence: Int?
    /// The OCR method whose reading was kept, and every reading's mean word confidence by method, in the order read.
    var method: String?
    var candidates: JSONObject?
    var error: String?
    /// How the worker process reading this page died (the file is rejected).
    var crash: String?
    /// Not read: an earlier page of the file killed its worker.
    var skipped = false
}

public struct PDFIngestStage: Stage {
    public let settings: PDFIngestConfig
    public let files: [String]
    public let jobs: Int
    /// `--shard i/N`: only the files numbered in this shard's range of `files` (in the order given, directories
    /// sorted); every shard still fingerprints all of them, so the N shards join into what one run writes.
    public let shard: ShardSpec?

    public init(config: PDFIngestConfig, jobs: Int, shard: ShardSpec? = nil) throws {
        guard ["auto", "always", "never"].contains(config.ocr) else {
            throw LoomError("--ocr must be auto, always or never (got '\(config.ocr)')")
        }
        guard OCRPreprocess(rawValue: config.ocrPreprocess) != nil else {
            throw LoomError("--ocr-preprocess must be auto, always or never (got '\(config.ocrPreprocess)')")
        }
        guard config.dpi >= 50 && config.dpi <= 1200 else { throw LoomError("--dpi must be between 50 and 1200") }
        guard !config.languages.isEmpty else { throw LoomError("--languages: give at least one, e.g. eng") }
        if config.ocr != "never" { try OCREngine.checkLanguages(config.languageString) }
        if let dir = config.ocrImages { try FS.makeDirectory(dir) }
        settings = config
        var found: [String] = []
        for p in config.paths {
            if FS.isDirectory(p) {
                let pdfs = FS.listRecursive(p).filter { $0.lowercased().hasSuffix(".pdf") }.sorted()
                if pdfs.isEmpty { Log.warn("\(p): no .pdf files in this directory") }
                found += pdfs
            } else if FS.exists(p) {
                found.append(p)
            } else {
                throw LoomError("\(p): no such file or directory")
            }
        }
        if found.isEmpty { throw LoomError("ingest pdf: no PDF files given") }
        files = found
        self.jobs = max(1, jobs)
        self.shard = shard
    }

    public var name: String { "ingest-pdf" }
    public var config: JSONValue { withShard((try? JSONValue(encoding: settings)) ?? .null, shard) }
    public var inputs: [StageInput] { files.map { .file($0) } }

    public func run(_ ctx: StageContext) throws {
        // Worker processes when the `loom` executable is known (a crash in poppler or tesseract then costs one file),
        // else threads of this process.
        let processes = try PDFWorkers.executable.map { try PDFProcessPool(executable: $0, settings: settings) }
        defer { processes?.finish() }
        // Open every file once here: page counts and metadata, and whole-file problems become rejects.
        var opened: [(path: String, pages: Int, meta: JSONObject)] = []
        var crashedFiles = 0
        for path in shard.map({ $0.slice(files) }) ?? files {
            if let processes {
                do {
                    let r = try processes.request(["op": "open", "path": .string(path)])
                    if let e = r["error"]?.stringValue {
                        try ctx.reject(Reject(source: path, reason: e))
                    } else {
                        opened.append((path, r["pages"]?.intValue ?? 0, r["meta"]?.objectValue ?? JSONObject()))
                    }
                } catch let e as PDFWorkerDied {
                    crashedFiles += 1
                    try ctx.reject(Reject(source: path, reason: "\(e.reason) while opening the file; the file is skipped"))
                }
                continue
            }
            do {
                let f = try PDFFile(path: path)
                opened.append((path, f.pageCount, f.metadata))
            } catch let e as PDFOpenError {
                try ctx.reject(Reject(source: path, reason: e.message))
            }
        }
        let items = opened.indices.flatMap { d in (0..<opened[d].pages).map { (doc: d, page: $0) } }
        ctx.progress.begin(totalBytes: nil, unit: "pages")
        let pool = PDFWorkerPool(settings: settings)
        let dead = LockedSet<Int>()
        var pages: [PDFPageResult] = []
        var counts = (documents: 0, pages: 0, ocrPages: 0, failedPages: 0, empty: 0)
        func read(_ item: (doc: Int, page: Int)) throws -> PDFPageResult {
            let path = opened[item.doc].path
            guard let processes else { return try pool.process(path: path, page: item.page) }
            if dead.contains(item.doc) { return PDFPageResult(skipped: true) }
            do {
                let r = try processes.request(["op": "page", "path": .string(path), "page": .int(item.page)])
                return PDFPageResult(
                    text: r["text"]?.stringValue ?? "", ocr: r["ocr"]?.boolValue ?? false, confidence: r["confidence"]?.intValue,
                    method: r["method"]?.stringValue, candidates: r["candidates"]?.objectValue, error: r["error"]?.stringValue)
            } catch let e as PDFWorkerDied {
                dead.insert(item.doc)
                return PDFPageResult(crash: e.reason)
            }
        }
        try orderedParallelForEach(
            items, jobs: jobs, window: jobs * 8,
            produce: { item in try read(item) },
            consume: { k, result in
                let item = items[k]
                pages.append(result)
                ctx.progress.add(items: 1)
                guard item.page == opened[item.doc].pages - 1 else { return }
                let doc = opened[item.doc]
                defer { pages = [] }
                if let first = pages.indices.first(where: { pages[$0].crash != nil }) {
                    // One line for the file, at the first page whose worker died; none of its pages are kept.
                    crashedFiles += 1
                    try ctx.reject(Reject(
                        source: doc.path, reason: "\(pages[first].crash!) while reading page \(first + 1); the file is skipped",
                        page: first + 1))
                    return
                }
                counts.pages += pages.count
                counts.ocrPages += pages.filter(\.ocr).count
                for (i, p) in pages.enumerated() where p.error != nil {
                    counts.failedPages += 1
                    try ctx.reject(Reject(source: doc.path, reason: p.error!, page: i + 1))
                }
                if try writeDocument(doc, pages, ctx: ctx) { counts.documents += 1 } else { counts.empty += 1 }
            })
        ctx.setCount("crashed_files", crashedFiles)
        if let processes { ctx.setCount("worker_restarts", processes.restarts) }
        // Documents with no pages at all never reach `consume`.
        for doc in opened where doc.pages == 0 {
            try ctx.reject(Reject(source: doc.path, reason: "the PDF has no pages"))
        }
        ctx.setCount("files", shard.map { $0.slice(files).count } ?? files.count)
        ctx.setCount("documents", counts.documents)
        ctx.setCount("pages", counts.pages)
        ctx.setCount("ocr_pages", counts.ocrPages)
        ctx.setCount("failed_pages", counts.failedPages)
        ctx.setCount("documents_without_text", counts.empty)
    }

    /// Cleans the pages and writes the document; false when no text is left.
    func writeDocument(
        _ doc: (path: String, pages: Int, meta: JSONObject), _ pages: [PDFPageResult], ctx: StageContext
    ) throws -> Bool {
        let cleaned = PDFCleanup.clean(pages.map(\.text), options: settings.cleanup, jobs: jobs)
        var text = ""
        var offsets: [JSONValue] = []
        var scalars = 0
        for page in cleaned {
            if !page.isEmpty && !text.isEmpty {
                text += "\n\n"
                scalars += 2
            }
            let start = scalars
            text += page
            scalars += page.unicodeScalars.count
            offsets.append([.int(start), .int(scalars)])
        }
        if text.isEmpty {
            let why = settings.ocr == "never" ? "no text layer on any page (OCR is off: --ocr never)" : "no text on any page, even after OCR"
            try ctx.reject(Reject(source: doc.path, reason: why))
            return false
        }
        var meta = JSONObject()
        meta.append("path", .string(doc.path))
        meta.append("pages", .int(doc.pages))
        meta.append("page_offsets", .array(offsets))
        let ocrPages = pages.indices.filter { pages[$0].ocr }
        var ocr = JSONObject()
        ocr.append("pages", .array(ocrPages.map { .int($0 + 1) }))
        ocr.append("confidence", .array(ocrPages.map { .int(pages[$0].confidence ?? 0) }))
        ocr.append("method", .array(ocrPages.map { .string(pages[$0].method ?? OCRMethod.original.rawValue) }))
        ocr.append("candidates", .array(ocrPages.map { .object(pages[$0].candidates ?? JSONObject()) }))
        if !ocrPages.isEmpty {
            let mean = Double(ocrPages.reduce(0) { $0 + (pages[$1].confidence ?? 0) }) / Double(ocrPages.count)
            ocr.append("mean_confidence", .double((mean * 10).rounded() / 10))
            ocr.append("languages", .string(settings.languageString))
            ocr.append("dpi", .int(settings.dpi))
        }
        meta.append("ocr", .object(ocr))
        let failed = pages.indices.filter { pages[$0].error != nil }
        if !failed.isEmpty { meta.append("failed_pages", .array(failed.map { .int($0 + 1) })) }
        for (k, v) in doc.meta { meta.append(k, v) }
        var o = JSONObject()
        o.append("id", .string(doc.path))
        o.append("text", .string(text))
        o.append("source", .string(doc.path))
        o.append("meta", .object(meta))
        try ctx.output.write(.object(o))
        return true
    }
}

/// Whether a text layer is unusable: nothing printable, or mostly replacement, control or private-use characters
/// (fonts without a Unicode mapping).
func isUnusableTextLayer(_ text: String) -> Bool {
    var printable = 0
    var bad = 0
    for u in text.unicodeScalars where !isSpace(u) {
        if u.value >= 0x20 && u.value < 0x7F {
            printable += 1
            continue
        }
        switch u.properties.generalCategory {
        case .control, .privateUse, .unassigned, .surrogate: bad += 1
        default: if u.value == 0xFFFD { bad += 1 } else { printable += 1 }
        }
    }
    return printable == 0 || bad > printable
}

/// Workers' poppler documents and tesseract handles, each used by one page at a time.
final class PDFWorkerPool: @unchecked Sendable {
    let settings: PDFIngestConfig
    private let lock = NSLock()
    private var idle: [PDFWorker] = []

    init(settings: PDFIngestConfig) { self.settings = settings }

    func process(path: String, page: Int) throws -> PDFPageResult {
        let w = lock.withLock { idle.popLast() } ?? PDFWorker()
        defer { lock.withLock { idle.append(w) } }
        return try w.process(path: path, page: page, settings: settings)
    }
}

final class PDFWorker {
    var file: PDFFile?
    var engine: OCREngine?

    func process(path: String, page: Int, settings: PDFIngestConfig) throws -> PDFPageResult {
        if file?.path != path {
            file = nil
            file = try? PDFFile(path: path)
        }
        guard let file else { return PDFPageResult(error: "the file could not be opened again") }
        guard let layer = file.text(page: page) else {
            return PDFPageResult(error: "poppler cannot load the page")
        }
        var result = PDFPageResult(text: layer)
        let needsOCR =
            settings.ocr == "always" || (settings.ocr == "auto" && isUnusableTextLayer(layer))
        guard needsOCR else { return result }
        guard let image = file.renderGray(page: page, dpi: Double(settings.dpi)) else {
            result.error = "the page could not be rendered for OCR"
            return result
        }
        if let dir = settings.ocrImages {
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            try image.writePGM(to: FS.join(dir, "\(name)-p\(page + 1).pgm"))
        }
        if engine == nil { engine = try OCREngine(languages: settings.languageString) }
        let preprocess = OCRPreprocess(rawValue: settings.ocrPreprocess) ?? .auto
        let (chosen, readings) = engine!.readings(image, dpi: settings.dpi, preprocess: preprocess)
        result.text = readings[chosen].text
        result.ocr = true
        result.confidence = Int(readings[chosen].confidence.rounded())
        result.method = readings[chosen].method
        result.candidates = JSONObject(readings.map { ($0.method, .double($0.confidence)) })
        return result
    }
}
