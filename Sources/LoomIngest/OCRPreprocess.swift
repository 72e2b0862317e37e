// Preprocessing page images before tesseract, chosen per page by tesseract's own confidence (issue 25, item 6).
//
// A page is read first as rendered (the grey image, tesseract's automatic layout analysis). When that reading's mean
// word confidence is below `OCREngine.retryBelow`, the page is read again from preprocessed images — the steps
// tesseract's "Improving the quality of the output" and ocrmypdf recommend, done with leptonica (linked with
// tesseract) — and the reading with the highest mean word confidence is kept. The ground truth never takes part.

import CTesseract
import Foundation
import LoomCore

/// How a page image is prepared for tesseract.
public enum OCRMethod: String, CaseIterable, Sendable {
    /// The rendered grey page as it is, tesseract's automatic page segmentation (the path before issue 25).
    case original
    /// Sauvola local binarisation (leptonica `pixSauvolaBinarizeTiled`, half-window 25 px, k 0.34), deskew
    /// (`pixFindSkewAndDeskew`: only when the skew found is reliable and at least 0.1°) and removal of dark
    /// components touching the page edge (`pixRemoveBorderConnComps`: scanner borders and shadows).
    case sauvola
    /// The grey page scaled up 1.5x (`pixScaleGrayLI`, linear interpolation), read at 1.5x the resolution; only at
    /// 400 dpi or less.
    case upscale
}

/// When preprocessed readings are tried: `auto` (only when the first reading is unsure), `always`, `never`.
public enum OCRPreprocess: String, Sendable {
    case auto, always, never
}

/// One reading of a page: the method (with `/column` when tesseract was told the page is one column), the text and
/// tesseract's mean word confidence (0-100).
public struct OCRReading: Sendable {
    public var method: String
    public var text: String
    public var confidence: Double

    public init(method: String, text: String, confidence: Double) {
        self.method = method
        self.text = text
        self.confidence = confidence
    }

    /// Characters read, spaces not counted.
    var characters: Int { text.unicodeScalars.reduce(0) { $0 + (isSpace($1) ? 0 : 1) } }
}

extension OCREngine {
    /// Below this mean word confidence the first reading is unsure and (`--ocr-preprocess auto`) preprocessed
    /// readings are tried. Clean pages read at 90-96 (the English scanned page of the dev corpus 94); the Korean
    /// page at 88.
    public static let retryBelow = 90.0

    /// A reading that keeps fewer than this share of the first reading's characters is never chosen: it dropped
    /// lines, and confidence only speaks for the words that were read.
    public static let minimumKept = 0.95

    /// Reads the page as rendered and, as `preprocess` says, with the preprocessing methods; `chosen` indexes the
    /// reading kept (`choose`). The readings are in the order read, the original first.
    public func readings(_ image: GrayImage, dpi: Int, preprocess: OCRPreprocess) -> (chosen: Int, readings: [OCRReading])
    {
        guard let page = image.pixels.withUnsafeBufferPointer({
            loom_pix_from_gray($0.baseAddress, Int32(image.width), Int32(image.height))
        }) else {
            return (0, [OCRReading(method: OCRMethod.original.rawValue, text: "", confidence: 0)])
        }
        defer { loom_pix_destroy(page) }
        let first = read(page, dpi: dpi, singleColumn: false)
        var readings = [OCRReading(method: OCRMethod.original.rawValue, text: first.text, confidence: first.confidence)]
        let retry = preprocess == .always || (preprocess == .auto && first.confidence < OCREngine.retryBelow)
        guard retry else { return (0, readings) }
        // Told that the page is one column (PSM_SINGLE_COLUMN), tesseract keeps headings and short lines it splits
        // off or drops with its automatic layout (on the Korean dev page 0.13-0.15 CER became 0.09-0.10); a page
        // whose layout has text blocks side by side keeps the automatic layout.
        let singleColumn = !first.sideBySide
        for method in [OCRMethod.sauvola, .upscale] {
            guard let (pix, scale) = prepare(page, method, dpi: dpi) else { continue }
            defer { loom_pix_destroy(pix) }
            let r = read(pix, dpi: Int((Double(dpi) * scale).rounded()), singleColumn: singleColumn)
            readings.append(
                OCRReading(method: method.rawValue + (singleColumn ? "/column" : ""), text: r.text, confidence: r.confidence))
        }
        return (OCREngine.choose(readings), readings)
    }

    /// The reading with the highest mean word confidence among those that kept at least `minimumKept` of the first
    /// reading's characters; ties keep the earlier reading (the original first).
    public static func choose(_ readings: [OCRReading]) -> Int {
        guard let first = readings.first else { return 0 }
        let floor = Double(first.characters) * minimumKept
        var best = 0
        for (i, r) in readings.enumerated().dropFirst() where Double(r.characters) >= floor {
            if r.confidence > readings[best].confidence { best = i }
        }
        return best
    }

    /// The preprocessed image (owned by the caller) and its scale; nil when the method does not apply or leptonica
    /// fails (the page then keeps its other readings).
    func prepare(_ page: UnsafeMutablePointer<PIX>, _ method: OCRMethod, dpi: Int) -> (UnsafeMutablePointer<PIX>, Double)? {
        switch method {
        case .original:
            return pixClone(page).map { ($0, 1) }
        case .sauvola:
            var binary: UnsafeMutablePointer<PIX>? = nil
            guard pixSauvolaBinarizeTiled(page, 25, 0.34, 2, 2, nil, &binary) == 0, let binary else { return nil }
            defer { loom_pix_destroy(binary) }
            var angle: Float = 0
            var confidence: Float = 0
            guard let straight = pixFindSkewAndDeskew(binary, 0, &angle, &confidence) else { return nil }
            defer { loom_pix_destroy(straight) }
            return pixRemoveBorderConnComps(straight, 8).map { ($0, 1) }
        case .upscale:
            guard dpi <= 400 else { return nil }
            return pixScaleGrayLI(page, 1.5, 1.5).map { ($0, 1.5) }
        }
    }

    /// One tesseract reading of a leptonica image: text, mean word confidence (unrounded), and whether the layout
    /// analysis put text blocks side by side (columns).
    func read(_ pix: UnsafeMutablePointer<PIX>, dpi: Int, singleColumn: Bool) -> (text: String, confidence: Double, sideBySide: Bool) {
        TessBaseAPISetPageSegMode(api, singleColumn ? PSM_SINGLE_COLUMN : PSM_AUTO)
        TessBaseAPISetImage2(api, pix)
        TessBaseAPISetSourceResolution(api, Int32(dpi))
        defer { TessBaseAPIClear(api) }
        var text = ""
        if let t = TessBaseAPIGetUTF8Text(api) {
            text = String(cString: t)
            TessDeleteText(t)
        }
        var confidence = 0.0
        if let words = TessBaseAPIAllWordConfidences(api) {
            var sum = 0
            var n = 0
            while words[n] >= 0 {
                sum += Int(words[n])
                n += 1
            }
            if n > 0 { confidence = (Double(sum) / Double(n) * 10).rounded() / 10 }
            TessDeleteIntArray(words)
        }
        return (text, confidence, singleColumn ? false : textBlocksSideBySide())
    }

    /// Whether two text blocks of the reading just made sit side by side: their horizontal extents apart and
    /// their vertical extents overlapping by more than half of the shorter one.
    func textBlocksSideBySide() -> Bool {
        guard let results = TessBaseAPIGetIterator(api) else { return false }
        defer { TessResultIteratorDelete(results) }
        guard let it = TessResultIteratorGetPageIterator(results) else { return false }
        var blocks: [(x1: Int32, y1: Int32, x2: Int32, y2: Int32)] = []
        repeat {
            switch TessPageIteratorBlockType(it) {
            case PT_FLOWING_TEXT, PT_HEADING_TEXT, PT_PULLOUT_TEXT, PT_VERTICAL_TEXT, PT_CAPTION_TEXT:
                var b: (x1: Int32, y1: Int32, x2: Int32, y2: Int32) = (0, 0, 0, 0)
                if TessPageIteratorBoundingBox(it, RIL_BLOCK, &b.x1, &b.y1, &b.x2, &b.y2) != 0 { blocks.append(b) }
            default: break
            }
        } while TessPageIteratorNext(it, RIL_BLOCK) != 0
        for (i, a) in blocks.enumerated() {
            for b in blocks[(i + 1)...] where a.x2 <= b.x1 || b.x2 <= a.x1 {
                let overlap = min(a.y2, b.y2) - max(a.y1, b.y1)
                if Double(overlap) > 0.5 * Double(min(a.y2 - a.y1, b.y2 - b.y1)) { return true }
            }
        }
        return false
    }
}
