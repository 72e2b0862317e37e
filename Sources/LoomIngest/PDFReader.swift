// PDF pages through poppler-glib, and OCR through tesseract's C API for pages without a usable text layer.
// A `PDFFile` and an `OCREngine` belong to one thread at a time (poppler documents and tesseract handles are not
// shared across threads: ../shared/NATIVE.md).

import CPoppler
import CTesseract
import Foundation
import LoomCore

/// Why a whole PDF could not be read.
public struct PDFOpenError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// One open PDF document.
public final class PDFFile {
    public let path: String
    let document: OpaquePointer
    public let pageCount: Int

    public init(path: String) throws {
        self.path = path
        guard let size = FS.size(path) else { throw PDFOpenError(message: "no such file") }
        if size == 0 { throw PDFOpenError(message: "empty file (0 bytes)") }
        var head = [UInt8](repeating: 0, count: 1024)
        if let f = fopen(path, "rb") {
            let n = fread(&head, 1, head.count, f)
            fclose(f)
            head.removeLast(head.count - n)
        }
        if !head.starts(with: Array("%PDF-".utf8)) && !String(decoding: head, as: UTF8.self).contains("%PDF-") {
            throw PDFOpenError(message: "not a PDF (no %PDF- header)")
        }
        var gerror: UnsafeMutablePointer<GError>? = nil
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        guard let uri = g_filename_to_uri(absolute, nil, &gerror) else {
            defer { loom_error_free(gerror) }
            throw PDFOpenError(message: "bad path: \(String(cString: loom_error_message(gerror)))")
        }
        defer { loom_g_free(uri) }
        guard let doc = poppler_document_new_from_file(uri, nil, &gerror) else {
            defer { loom_error_free(gerror) }
            if loom_error_is_encrypted(gerror) != 0 {
                throw PDFOpenError(message: "encrypted PDF (a password is needed)")
            }
            throw PDFOpenError(message: "cannot open PDF: \(String(cString: loom_error_message(gerror)))")
        }
        document = doc
        pageCount = Int(poppler_document_get_n_pages(doc))
    }

    deinit { loom_unref(UnsafeMutableRawPointer(document)) }

    /// Title, author, subject, creator, producer and creation date, where the PDF has them.
    public var metadata: JSONObject {
        var o = JSONObject()
        func add(_ key: String, _ p: UnsafeMutablePointer<gchar>?) {
            guard let p else { return }
            let s = String(cString: p).trimmingCharacters(in: .whitespacesAndNewlines)
            loom_g_free(p)
            if !s.isEmpty { o.append(key, .string(s)) }
        }
        add("title", poppler_document_get_title(document))
        add("author", poppler_document_get_author(document))
        add("subject", poppler_document_get_subject(document))
        add("creator", poppler_document_get_creator(document))
        add("producer", poppler_document_get_producer(document))
        let created = poppler_document_get_creation_date(document)
        if created > 0 {
            let f = ISO8601DateFormatter()
            o.append("created", .string(f.string(from: Date(timeIntervalSince1970: TimeInterval(created)))))
        }
        return o
    }

    /// The page's text layer (poppler's reading order, the same as `pdftotext` without `-layout`), or nil when
    /// poppler cannot load the page.
    ///
    /// poppler-glib's text has one line per text line but, unlike pdftotext, no blank line between layout blocks;
    /// the blocks are put back from the glyph boxes (`blockBreaks`), so paragraphs and headings stay apart.
    public func text(page index: Int) -> String? {
        guard let page = poppler_document_get_page(document, Int32(index)) else { return nil }
        defer { loom_unref(UnsafeMutableRawPointer(page)) }
        guard let t = poppler_page_get_text(page) else { return "" }
        defer { loom_g_free(t) }
        let text = String(cString: t)
        var rects: UnsafeMutablePointer<PopplerRectangle>? = nil
        var n: guint = 0
        guard poppler_page_get_text_layout(page, &rects, &n) != 0, let rects else { return text }
        defer { loom_g_free(rects) }
        return PDFFile.blockBreaks(text, boxes: UnsafeBufferPointer(start: rects, count: Int(n)))
    }

    /// Inserts a blank line between two lines that belong to different blocks: a vertical gap of more than 0.7 of
    /// a line's height, or a jump back up the page (a new column).
    static func blockBreaks(_ text: String, boxes: UnsafeBufferPointer<PopplerRectangle>) -> String {
        struct Line {
            var range: Range<Int>
            var x1 = Double.infinity, y1 = Double.infinity, x2 = -Double.infinity, y2 = -Double.infinity
            var hasBox: Bool { y2 > y1 }
        }
        let scalars = Array(text.unicodeScalars)
        var lines: [Line] = []
        var start = 0
        for i in 0...scalars.count where i == scalars.count || scalars[i] == "\n" {
            var line = Line(range: start..<i)
            for k in start..<i where k < boxes.count && !isSpace(scalars[k]) {
                let b = boxes[k]
                line.x1 = min(line.x1, min(b.x1, b.x2))
                line.x2 = max(line.x2, max(b.x1, b.x2))
                line.y1 = min(line.y1, min(b.y1, b.y2))
                line.y2 = max(line.y2, max(b.y1, b.y2))
            }
            lines.append(line)
            start = i + 1
        }
        var out = String.UnicodeScalarView()
        for (i, line) in lines.enumerated() {
            if i > 0 {
                out.append("\n")
                let prev = lines[i - 1]
                if prev.hasBox && line.hasBox {
                    let hp = prev.y2 - prev.y1
                    let hl = line.y2 - line.y1
                    let h = max(hp, hl)
                    let gap = line.y1 - prev.y2
                    if gap > 0.7 * h || line.y2 < prev.y1 { out.append("\n") }
                }
            }
            // Within a line, a wide gap between two glyphs with no space between them is a column gap (table
            // cells come out run together otherwise: "requiredthe widget is required1<<1").
            let h = line.y2 - line.y1
            var previous: Int? = nil
            for k in line.range {
                let c = scalars[k]
                if let p = previous, h > 0, k < boxes.count, p < boxes.count, !isSpace(c), !isSpace(scalars[p]) {
                    let gap = min(boxes[k].x1, boxes[k].x2) - max(boxes[p].x1, boxes[p].x2)
                    if gap > 0.5 * h { out.append(" ") }
                }
                out.append(c)
                previous = k
            }
        }
        return String(out)
    }

    /// Renders the page at `dpi` to 8-bit grey (white background), for OCR. Nil when the page cannot be loaded.
    public func renderGray(page index: Int, dpi: Double) -> GrayImage? {
        guard let page = poppler_document_get_page(document, Int32(index)) else { return nil }
        defer { loom_unref(UnsafeMutableRawPointer(page)) }
        var w = 0.0
        var h = 0.0
        poppler_page_get_size(page, &w, &h)
        let width = Int((w * dpi / 72).rounded(.up))
        let height = Int((h * dpi / 72).rounded(.up))
        guard width > 0, height > 0, width * height < 400_000_000 else { return nil }
        guard let surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(width), Int32(height)) else {
            return nil
        }
        defer { cairo_surface_destroy(surface) }
        guard cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS, let cr = cairo_create(surface) else { return nil }
        cairo_set_source_rgb(cr, 1, 1, 1)
        cairo_paint(cr)
        cairo_scale(cr, dpi / 72, dpi / 72)
        poppler_page_render_for_printing(page, cr)
        cairo_destroy(cr)
        cairo_surface_flush(surface)
        let stride = Int(cairo_image_surface_get_stride(surface))
        guard let data = cairo_image_surface_get_data(surface) else { return nil }
        var gray = [UInt8](repeating: 255, count: width * height)
        gray.withUnsafeMutableBufferPointer { g in
            for y in 0..<height {
                let row = data + y * stride
                for x in 0..<width {
                    // RGB24 is B, G, R, x in memory (little-endian 32-bit pixels).
                    let b = UInt32(row[4 * x])
                    let gr = UInt32(row[4 * x + 1])
                    let r = UInt32(row[4 * x + 2])
                    g[y * width + x] = UInt8((r * 299 + gr * 587 + b * 114) / 1000)
                }
            }
        }
        return GrayImage(width: width, height: height, pixels: gray)
    }
}

public struct GrayImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    /// Binary PGM (P5), which tesseract and most image tools read.
    public func writePGM(to path: String) throws {
        let f = try BufferedFile(creating: path)
        try f.write("P5\n\(width) \(height)\n255\n")
        try pixels.withUnsafeBufferPointer { try f.write($0) }
        try f.close(sync: false)
    }
}

/// A tesseract handle for one set of languages ("eng+kor"), reused page after page (initialising costs ~170 ms).
public final class OCREngine {
    let api: OpaquePointer
    public let languages: String

    public init(languages: String) throws {
        try OCREngine.checkLanguages(languages)
        guard let api = TessBaseAPICreate() else { throw LoomError("tesseract: cannot create a handle") }
        if TessBaseAPIInit3(api, nil, languages) != 0 {
            TessBaseAPIDelete(api)
            throw LoomError("tesseract cannot load the languages '\(languages)'")
        }
        TessBaseAPISetPageSegMode(api, PSM_AUTO)
        // Tesseract's own notes ("Detected 192 diacritics") would go to stderr between Loom's progress lines.
        _ = TessBaseAPISetVariable(api, "debug_file", "/dev/null")
        // Leptonica's warnings (a page too small to measure skew on) likewise; failures show as a missing reading.
        _ = setMsgSeverity(Int32(L_SEVERITY_NONE))
        self.api = api
        self.languages = languages
    }

    deinit {
        TessBaseAPIEnd(api)
        TessBaseAPIDelete(api)
    }

    /// Where tesseract looks for `LANG.traineddata`.
    static var dataDirectories: [String] {
        var dirs: [String] = []
        if let p = ProcessInfo.processInfo.environment["TESSDATA_PREFIX"] { dirs += [p, p + "/tessdata"] }
        dirs += [
            "/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata",
            "/usr/local/share/tessdata",
        ]
        return dirs
    }

    /// A clear error naming the Debian package for a language tesseract has no data for.
    public static func checkLanguages(_ languages: String) throws {
        for lang in languages.split(separator: "+").map(String.init) {
            guard !lang.isEmpty, lang.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw LoomError("--languages: '\(lang)' is not a tesseract language code (e.g. eng, kor, chi_sim)")
            }
            if !dataDirectories.contains(where: { FS.exists($0 + "/" + lang + ".traineddata") }) {
                let pkg = "tesseract-ocr-" + lang.lowercased().replacingOccurrences(of: "_", with: "-")
                throw LoomError(
                    "tesseract has no data for language '\(lang)': install the Debian package \(pkg) (apt-get install \(pkg))"
                )
            }
        }
    }
}

/// Unicode White_Space, with the common ASCII answers first (this runs for every character of every page).
@inline(__always) func isSpace(_ u: Unicode.Scalar) -> Bool {
    if u.value < 0x80 { return u.value == 0x20 || (u.value >= 0x09 && u.value <= 0x0D) }
    return u.properties.isWhitespace
}
