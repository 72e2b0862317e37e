// Gopher's quality and repetition rules (Rae et al. 2021, arXiv 2112.11446, appendix A.1.1 and table A1), with the
// thresholds of the paper and the checks in the order datatrove's GopherQualityFilter and GopherRepetitionFilter
// make them, so the first failing check names the same reason.

import LoomCore

/// The languages the word rules know besides English: their stop words (Gopher's rule asks for at least two of
/// a short list of function words).
public enum StopWordLists {
    public static let english = ["the", "be", "to", "of", "and", "that", "have", "with"]
    /// Korean function words and endings that stand alone between spaces (a text of Korean prose has several).
    public static let korean = ["이", "그", "저", "것", "수", "등", "및", "또는", "그리고", "있다", "있는", "하는", "한다", "때", "대한", "위한", "통해", "있습니다", "합니다", "것이다", "경우"]

    /// "en", "ko", or "auto": Korean when Hangul is at least a third of the letters.
    static func language(_ setting: String, _ doc: FilterDocument) -> String {
        guard setting == "auto" else { return setting }
        var letters = 0
        var hangul = 0
        for c in doc.text where Chars.isAlpha(c) {
            letters += 1
            if (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F) { hangul += 1 }
        }
        return letters > 0 && hangul * 3 >= letters ? "ko" : "en"
    }
}

public struct GopherQuality: RuleSet {
    public var name: String { "gopher-quality" }
    public var minDocWords: Double? = 50
    public var maxDocWords: Double? = 100_000
    public var minAvgWordLength: Double? = 3
    public var maxAvgWordLength: Double? = 10
    public var maxSymbolWordRatio: Double? = 0.1
    public var maxBulletLinesRatio: Double? = 0.9
    public var maxEllipsisLinesRatio: Double? = 0.3
    public var minAlphaWordsRatio: Double? = 0.8
    public var minStopWords: Double? = 2
    /// Stop words per language; "auto" picks Korean's for Hangul text.
    public var language = "auto"
    public var stopWords: [String] = StopWordLists.english
    public var koreanStopWords: [String] = StopWordLists.korean
    /// Korean words (spaced units of a stem and its particles) are measured in syllables: the English bounds on the
    /// mean word length do not apply, these do.
    public var koreanMinAvgWordLength: Double? = 1.5
    public var koreanMaxAvgWordLength: Double? = 10

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "gopher-quality", options)
        let d = GopherQuality()
        minDocWords = try r.number("min_doc_words", d.minDocWords)
        maxDocWords = try r.number("max_doc_words", d.maxDocWords)
        minAvgWordLength = try r.number("min_avg_word_length", d.minAvgWordLength)
        maxAvgWordLength = try r.number("max_avg_word_length", d.maxAvgWordLength)
        maxSymbolWordRatio = try r.number("max_symbol_word_ratio", d.maxSymbolWordRatio)
        maxBulletLinesRatio = try r.number("max_bullet_lines_ratio", d.maxBulletLinesRatio)
        maxEllipsisLinesRatio = try r.number("max_ellipsis_lines_ratio", d.maxEllipsisLinesRatio)
        minAlphaWordsRatio = try r.number("min_alpha_words_ratio", d.minAlphaWordsRatio)
        minStopWords = try r.number("min_stop_words", d.minStopWords)
        language = try r.string("language", d.language) ?? "auto"
        stopWords = try r.strings("stop_words", d.stopWords)
        koreanStopWords = try r.strings("korean_stop_words", d.koreanStopWords)
        koreanMinAvgWordLength = try r.number("korean_min_avg_word_length", d.koreanMinAvgWordLength)
        koreanMaxAvgWordLength = try r.number("korean_max_avg_word_length", d.koreanMaxAvgWordLength)
        try r.finish()
        guard ["auto", "en", "ko"].contains(language) else {
            throw LoomError("filter: gopher-quality.language must be auto, en or ko (got '\(language)')")
        }
    }

    public var options: JSONObject {
        var o = JSONObject()
        o.put("min_doc_words", minDocWords)
        o.put("max_doc_words", maxDocWords)
        o.put("min_avg_word_length", minAvgWordLength)
        o.put("max_avg_word_length", maxAvgWordLength)
        o.put("max_symbol_word_ratio", maxSymbolWordRatio)
        o.put("max_bullet_lines_ratio", maxBulletLinesRatio)
        o.put("max_ellipsis_lines_ratio", maxEllipsisLinesRatio)
        o.put("min_alpha_words_ratio", minAlphaWordsRatio)
        o.put("min_stop_words", minStopWords)
        o["language"] = .string(language)
        o["stop_words"] = .array(stopWords.map { .string($0) })
        o["korean_stop_words"] = .array(koreanStopWords.map { .string($0) })
        o.put("korean_min_avg_word_length", koreanMinAvgWordLength)
        o.put("korean_max_avg_word_length", koreanMaxAvgWordLength)
        return o
    }

    /// datatrove's PUNCTUATION_SET: a word made only of these is a symbol, not a word.
    static let punctuation: CharSet = {
        var s = Chars.set("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»")
        for r in [0..<9, 11..<13, 13..<32, 127..<160] { for c in r { s.insert(UInt32(c)) } }
        return s.union(FineWebQuality.terminal)
    }()

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        let t = doc.text
        let words = doc.words
        let nWords = Double(words.count)
        var nonSymbol = 0
        var lengthSum = 0
        var alphaWords = 0
        for w in words {
            var symbolOnly = true
            var alpha = false
            for i in w {
                let c = t[i]
                if symbolOnly && !GopherQuality.punctuation.contains(c) { symbolOnly = false }
                if !alpha && Chars.isAlpha(c) { alpha = true }
                if !symbolOnly && alpha { break }
            }
            if !symbolOnly {
                nonSymbol += 1
                lengthSum += w.count
            }
            if alpha { alphaWords += 1 }
        }
        let korean = StopWordLists.language(language, doc) == "ko"
        out.add(Measure("min_doc_words", "words", Double(nonSymbol), .min, minDocWords))
        out.add(Measure("max_doc_words", "words", Double(nonSymbol), .max, maxDocWords))
        let avg = nonSymbol == 0 ? Double.nan : Double(lengthSum) / Double(nonSymbol)
        out.add(Measure("min_avg_word_length", "avg_word_length", avg, .min, korean ? koreanMinAvgWordLength : minAvgWordLength))
        out.add(Measure("max_avg_word_length", "avg_word_length", avg, .max, korean ? koreanMaxAvgWordLength : maxAvgWordLength))
        let hashes = Double(doc.count([0x23]))
        let ellipses = Double(doc.count([0x2E, 0x2E, 0x2E]) + doc.count([0x2026]))
        out.add(Measure("max_symbol_word_ratio", "hash_ratio", hashes / nWords, .max, maxSymbolWordRatio))
        out.add(Measure("max_symbol_word_ratio", "ellipsis_ratio", ellipses / nWords, .max, maxSymbolWordRatio))
        let lines = Lines.splitlines(t, 0..<t.count)
        var bullets = 0
        var endEllipsis = 0
        for l in lines {
            let s = Lines.strip(t, l)
            if let c = s.first.map({ t[$0] }), c == 0x2022 || c == 0x2D { bullets += 1 }
            if Lines.hasSuffix(t, s, [0x2E, 0x2E, 0x2E]) || Lines.hasSuffix(t, s, [0x2026]) { endEllipsis += 1 }
        }
        let nLines = Double(lines.count)
        out.add(Measure("max_bullet_lines_ratio", "bullet_lines_ratio", Double(bullets) / nLines, .max, maxBulletLinesRatio))
        out.add(Measure("max_ellipsis_lines_ratio", "ellipsis_lines_ratio", Double(endEllipsis) / nLines, .max, maxEllipsisLinesRatio))
        out.add(Measure("min_alpha_words_ratio", "alpha_words_ratio", Double(alphaWords) / nWords, .min, minAlphaWordsRatio))
        let list = (korean ? koreanStopWords : stopWords).map(\.scalars)
        var found = Set<Int>()
        for w in words where found.count < list.count {
            for (k, s) in list.enumerated() where !found.contains(k) && doc.equals(w, s) { found.insert(k) }
        }
        out.add(Measure("min_stop_words", "stop_words", Double(found.count), .min, minStopWords))
        return out
    }
}

public struct GopherRepetition: RuleSet {
    public var name: String { "gopher-repetition" }
    public var dupLineFrac: Double? = 0.3
    public var dupParaFrac: Double? = 0.3
    public var dupLineCharFrac: Double? = 0.2
    public var dupParaCharFrac: Double? = 0.2
    /// (n, the largest share of characters the most frequent n-gram may cover)
    public var topNGrams: [(Int, Double)] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    /// (n, the largest share of characters in repeated n-grams)
    public var dupNGrams: [(Int, Double)] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "gopher-repetition", options)
        let d = GopherRepetition()
        dupLineFrac = try r.number("dup_line_frac", d.dupLineFrac)
        dupParaFrac = try r.number("dup_para_frac", d.dupParaFrac)
        dupLineCharFrac = try r.number("dup_line_char_frac", d.dupLineCharFrac)
        dupParaCharFrac = try r.number("dup_para_char_frac", d.dupParaCharFrac)
        for n in 2...4 {
            let k = "top_\(n)_gram_frac"
            let v = try r.number(k, d.topNGrams.first { $0.0 == n }?.1)
            topNGrams.removeAll { $0.0 == n }
            if let v { topNGrams.append((n, v)) }
        }
        for n in 5...10 {
            let v = try r.number("dup_\(n)_gram_frac", d.dupNGrams.first { $0.0 == n }?.1)
            dupNGrams.removeAll { $0.0 == n }
            if let v { dupNGrams.append((n, v)) }
        }
        topNGrams.sort { $0.0 < $1.0 }
        dupNGrams.sort { $0.0 < $1.0 }
        try r.finish()
    }

    public var options: JSONObject {
        var o = JSONObject()
        o.put("dup_line_frac", dupLineFrac)
        o.put("dup_para_frac", dupParaFrac)
        o.put("dup_line_char_frac", dupLineCharFrac)
        o.put("dup_para_char_frac", dupParaCharFrac)
        for n in 2...4 { o.put("top_\(n)_gram_frac", topNGrams.first { $0.0 == n }?.1) }
        for n in 5...10 { o.put("dup_\(n)_gram_frac", dupNGrams.first { $0.0 == n }?.1) }
        return o
    }

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        let t = doc.text
        guard !t.isEmpty else {
            out.flag("empty")
            return out
        }
        let length = Double(t.count)
        let paragraphs = Lines.splitNewlineRuns(t, Lines.strip(t, 0..<t.count), min: 2)
        let (pd, pc) = findDuplicates(t, paragraphs)
        out.add(Measure("dup_para_frac", "dup_para_frac", Double(pd) / Double(paragraphs.count), .max, dupParaFrac))
        out.add(Measure("dup_para_char_frac", "dup_para_char_frac", Double(pc) / length, .max, dupParaCharFrac))
        let lines = Lines.splitNewlineRuns(t, 0..<t.count, min: 1)
        let (ld, lc) = findDuplicates(t, lines)
        out.add(Measure("dup_line_frac", "dup_line_frac", Double(ld) / Double(lines.count), .max, dupLineFrac))
        out.add(Measure("dup_line_char_frac", "dup_line_char_frac", Double(lc) / length, .max, dupLineCharFrac))
        let words = doc.words
        let hashes = doc.wordHashes
        let lengths = words.map(\.count)
        let powers = lengths.map(Poly.power)
        let spaceStep = Poly.base  // joining with " " multiplies by B and adds the space's term
        for (n, frac) in topNGrams {
            guard words.count >= n else { continue }
            // The most frequent n-gram (the first seen among equals, as Counter.most_common(1)) times its length.
            var counts = HashCounts(capacity: words.count)
            for i in 0...(words.count - n) {
                var h = hashes[i]
                var chars = lengths[i]
                for k in (i + 1)..<(i + n) {
                    h = (h &* spaceStep &+ 0x20 &+ 1) &* powers[k] &+ hashes[k]
                    chars += 1 + lengths[k]
                }
                counts.add(h, first: i, length: chars)
            }
            let best = counts.mostFrequent()
            out.add(Measure("top_\(n)_gram_frac", "top_\(n)_gram_frac", Double(best.count * best.length) / length, .max, frac))
        }
        for (n, frac) in dupNGrams {
            // datatrove joins these n-grams without a separator; a repeated one skips its n words.
            var seen = HashCounts(capacity: words.count)
            var repeated = 0
            var i = 0
            while i < words.count - n + 1 {
                var h = hashes[i]
                var chars = lengths[i]
                for k in (i + 1)..<(i + n) {
                    h = h &* powers[k] &+ hashes[k]
                    chars += lengths[k]
                }
                if seen.add(h, first: i, length: 0) {
                    i += 1
                } else {
                    repeated += chars
                    i += n
                }
            }
            out.add(Measure("dup_\(n)_gram_frac", "dup_\(n)_gram_frac", Double(repeated) / length, .max, frac))
        }
        return out
    }
}
