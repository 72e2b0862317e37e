// Signs of text a bad scan or a broken font made: few characters in words that look like dictionary words, glyphs
// that stand for nothing (U+FFFD, private-use code points, control characters), and tesseract's own confidence
// for the record's OCR pages where the PDF ingest recorded it (meta.ocr).

import LoomCore

public struct OCRQuality: RuleSet {
    public var name: String { "ocr" }
    /// The smallest share of non-space characters that sit in dictionary-like words.
    public var minWordCharsRatio: Double? = 0.5
    /// The largest share of replacement, private-use and control characters.
    public var maxBadGlyphRatio: Double? = 0.01
    /// The lowest mean tesseract confidence (0-100) of the record's OCR pages.
    public var minConfidence: Double? = 50

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "ocr", options)
        let d = OCRQuality()
        minWordCharsRatio = try r.number("min_word_chars_ratio", d.minWordCharsRatio)
        maxBadGlyphRatio = try r.number("max_bad_glyph_ratio", d.maxBadGlyphRatio)
        minConfidence = try r.number("min_confidence", d.minConfidence)
        try r.finish()
    }

    public var options: JSONObject {
        var o = JSONObject()
        o.put("min_word_chars_ratio", minWordCharsRatio)
        o.put("max_bad_glyph_ratio", maxBadGlyphRatio)
        o.put("min_confidence", minConfidence)
        return o
    }

    static let vowels = Chars.set("aeiouyAEIOUYàáâãäåèéêëìíîïòóôõöùúûüýÀÁÂÃÄÅÈÉÊËÌÍÎÏÒÓÔÕÖÙÚÛÜÝæœÆŒ")

    /// A word that could stand in a dictionary: letters only; in Latin script, at most 25 of them, a vowel among
    /// them unless it is one letter, and lower case after its first letter or all capitals (so "tbe1", "lIl",
    /// "rnodeI" are not); Hangul, kana and CJK words of letters only.
    static func dictionaryLike(_ t: Scalars, _ r: Range<Int>) -> Bool {
        guard r.count > 0 else { return false }
        var latin = false
        var vowel = false
        var upperAfterFirst = 0
        var lower = 0
        for i in r {
            let c = t[i]
            guard Chars.isAlpha(c) else { return false }
            if c < 0x250 {
                latin = true
                if vowels.contains(c) { vowel = true }
                let upper = c < 0x80 ? (c >= 0x41 && c <= 0x5A) : Chars.isUpperOrUncased(c)
                if upper && i > r.lowerBound { upperAfterFirst += 1 }
                if !upper { lower += 1 }
            }
        }
        if latin {
            if r.count > 25 { return false }
            if !vowel && r.count > 1 { return false }
            if upperAfterFirst > 0 && lower > 0 { return false }
        }
        return true
    }

    static func badGlyph(_ c: UInt32) -> Bool {
        c == 0xFFFD || (c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000 || (c < 0x20 && c != 0x0A && c != 0x09 && c != 0x0D)
            || (c >= 0x7F && c < 0xA0)
    }

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        let t = doc.text
        var nonSpace = 0
        var bad = 0
        for c in t where !Chars.isSpace(c) {
            nonSpace += 1
            if OCRQuality.badGlyph(c) { bad += 1 }
        }
        var inWords = 0
        for w in doc.words where OCRQuality.dictionaryLike(t, w) { inWords += w.count }
        let denominator = Double(max(1, nonSpace))
        out.add(Measure("min_word_chars_ratio", "word_chars_ratio", Double(inWords) / denominator, .min, minWordCharsRatio))
        out.add(Measure("max_bad_glyph_ratio", "bad_glyph_ratio", Double(bad) / denominator, .max, maxBadGlyphRatio))
        if let c = doc.meta["ocr_confidence"] {
            out.add(Measure("min_confidence", "ocr_confidence", c, .min, minConfidence))
        }
        return out
    }

    /// The mean tesseract confidence of the OCR pages a record covers: a PDF document's pages in meta.ocr, or for a
    /// chunk the pages its characters (meta.provenance.char_start/char_end) fall on by meta.page_offsets. Nil when
    /// no page of the record was read by OCR.
    public static func confidence(_ record: JSONValue) -> Double? {
        let meta = record["meta"]
        guard let ocr = meta?["ocr"], let pages = ocr["pages"]?.arrayValue?.compactMap(\.intValue),
            let conf = ocr["confidence"]?.arrayValue?.compactMap(\.intValue), !pages.isEmpty, pages.count == conf.count
        else { return nil }
        var chosen = Array(zip(pages, conf))
        if let p = meta?["provenance"], let s = p["char_start"]?.intValue, let e = p["char_end"]?.intValue,
            let offsets = meta?["page_offsets"]?.arrayValue
        {
            chosen = chosen.filter { page, _ in
                guard page >= 1, page <= offsets.count, let span = offsets[page - 1].arrayValue, span.count == 2,
                    let a = span[0].intValue, let b = span[1].intValue
                else { return false }
                return a < e && s < b
            }
        }
        guard !chosen.isEmpty else { return nil }
        return Double(chosen.reduce(0) { $0 + $1.1 }) / Double(chosen.count)
    }
}
