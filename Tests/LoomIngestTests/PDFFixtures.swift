import CPoppler
import Foundation

/// Draws test PDFs with cairo (text pages with a running header and page numbers; image-only pages).
enum PDFDraw {
    static let width = 595.0  // A4 in points
    static let height = 842.0

    /// One page per entry: each page's body lines, with `header` at the top and "- N -" at the bottom.
    static func textPDF(_ path: String, pages: [[String]], header: String?, fontSize: Double = 11, title: String? = nil) {
        let surface = cairo_pdf_surface_create(path, width, height)
        if let title { cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title) }
        let cr = cairo_create(surface)
        cairo_select_font_face(cr, "DejaVu Serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
        for (n, lines) in pages.enumerated() {
            cairo_set_source_rgb(cr, 0, 0, 0)
            cairo_set_font_size(cr, 9)
            if let header {
                cairo_move_to(cr, 72, 40)
                cairo_show_text(cr, header)
            }
            cairo_set_font_size(cr, fontSize)
            var y = 90.0
            for line in lines {
                if !line.isEmpty {
                    cairo_move_to(cr, 72, y)
                    cairo_show_text(cr, line)
                }
                y += fontSize * 1.4
            }
            cairo_set_font_size(cr, 9)
            cairo_move_to(cr, width / 2 - 10, height - 40)
            cairo_show_text(cr, "- \(n + 1) -")
            cairo_show_page(cr)
        }
        cairo_destroy(cr)
        cairo_surface_finish(surface)
        cairo_surface_destroy(surface)
    }

    /// Pages that are only an image of text (no text layer): `lines` rendered at 150 dpi into a grey image that is
    /// painted onto each PDF page, like a scan. A nil entry is a text page with that body instead.
    static func scannedPDF(_ path: String, pages: [(image: [String]?, text: [String]?)]) {
        let surface = cairo_pdf_surface_create(path, width, height)
        let cr = cairo_create(surface)
        for page in pages {
            if let lines = page.image {
                let scale = 150.0 / 72
                let w = Int32(width * scale)
                let h = Int32(height * scale)
                let image = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h)
                let ic = cairo_create(image)
                cairo_set_source_rgb(ic, 1, 1, 1)
                cairo_paint(ic)
                cairo_scale(ic, scale, scale)
                cairo_set_source_rgb(ic, 0, 0, 0)
                cairo_select_font_face(ic, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
                cairo_set_font_size(ic, 14)
                var y = 100.0
                for line in lines {
                    cairo_move_to(ic, 72, y)
                    cairo_show_text(ic, line)
                    y += 22
                }
                cairo_destroy(ic)
                cairo_surface_flush(image)
                cairo_save(cr)
                cairo_scale(cr, 1 / scale, 1 / scale)
                cairo_set_source_surface(cr, image, 0, 0)
                cairo_paint(cr)
                cairo_restore(cr)
                cairo_surface_destroy(image)
            } else if let lines = page.text {
                cairo_select_font_face(cr, "DejaVu Serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
                cairo_set_font_size(cr, 11)
                cairo_set_source_rgb(cr, 0, 0, 0)
                var y = 90.0
                for line in lines {
                    cairo_move_to(cr, 72, y)
                    cairo_show_text(cr, line)
                    y += 16
                }
            }
            cairo_show_page(cr)
        }
        cairo_destroy(cr)
        cairo_surface_finish(surface)
        cairo_surface_destroy(surface)
    }

    /// A hand-written PDF whose trailer names an encryption dictionary whose user password is not empty.
    static func encryptedPDF(_ path: String) {
        let o = String(repeating: "A1", count: 32)
        let u = String(repeating: "B2", count: 32)
        let body = """
            %PDF-1.4
            1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
            2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
            3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj
            4 0 obj << /Filter /Standard /V 1 /R 2 /O <\(o)> /U <\(u)> /P -4 >> endobj
            trailer << /Root 1 0 R /Size 5 /Encrypt 4 0 R /ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>] >>
            %%EOF

            """
        FileManager.default.createFile(atPath: path, contents: Data(body.utf8))
    }

    /// Two pages, the second of which points at an object that does not exist.
    static func brokenPagePDF(_ path: String) {
        let stream = "BT /F1 12 Tf 20 100 Td (Page one is fine) Tj ET"
        let body = """
            %PDF-1.4
            1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
            2 0 obj << /Type /Pages /Kids [3 0 R 9 0 R] /Count 2 >> endobj
            3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >> endobj
            4 0 obj << /Length \(stream.utf8.count) >> stream
            \(stream)
            endstream endobj
            5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj
            trailer << /Root 1 0 R /Size 6 >>
            %%EOF

            """
        FileManager.default.createFile(atPath: path, contents: Data(body.utf8))
    }
}

/// Edit distances for comparing extracted text.
enum TextDistance {
    /// Levenshtein distance over Unicode scalars (for CER).
    static func levenshtein(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// 2 * LCS / (|a| + |b|) (difflib's ratio), by Myers' O((N+M)D) difference algorithm: fast when the texts
    /// nearly agree.
    static func similarity(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Double {
        let n = a.count
        let m = b.count
        if n + m == 0 { return 1 }
        let maxD = n + m
        let offset = maxD + 1
        var v = [Int](repeating: 0, count: 2 * maxD + 3)
        for d in 0...maxD {
            for k in stride(from: -d, through: d, by: 2) {
                var x: Int
                if k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]) {
                    x = v[offset + k + 1]
                } else {
                    x = v[offset + k - 1] + 1
                }
                var y = x - k
                while x < n && y < m && a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = x
                if x >= n && y >= m {
                    let lcs = (n + m - d) / 2
                    return 2 * Double(lcs) / Double(n + m)
                }
            }
        }
        return 0
    }

    /// Whitespace collapsed to single spaces, ends trimmed.
    static func normalized(_ s: String) -> [Unicode.Scalar] {
        Array(s.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ").unicodeScalars)
    }
}

/// Runs a command and returns its standard output (nil if it cannot run).
func commandOutput(_ argv: [String], environment: [String: String] = [:]) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle(forWritingAtPath: "/dev/null")
    do { try p.run() } catch { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
}
