// C4's rules (Raffel et al. 2020, section 2.2, as TensorFlow Datasets' c4_utils and datatrove's C4QualityFilter
// apply them) and FineWeb's (Penedo et al. 2024, datatrove's FineWebQualityFilter).

import LoomCore

public struct C4Quality: RuleSet {
    public var name: String { "c4" }
    public var removeCitations = true
    public var filterNoTerminalPunct = true
    public var minNumSentences: Double? = 5
    public var minWordsPerLine: Double? = 3
    public var maxWordLength: Double? = 1000
    public var filterLoremIpsum = true
    public var filterJavascript = true
    public var filterCurlyBracket = true
    public var filterPolicy = true
    /// Keep only the lines C4 keeps (its line-level removals) in a record that passes; false keeps the text whole.
    public var removeLines = true

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "c4", options)
        let d = C4Quality()
        removeCitations = try r.bool("remove_citations", d.removeCitations)
        filterNoTerminalPunct = try r.bool("filter_no_terminal_punct", d.filterNoTerminalPunct)
        minNumSentences = try r.number("min_num_sentences", d.minNumSentences)
        minWordsPerLine = try r.number("min_words_per_line", d.minWordsPerLine)
        maxWordLength = try r.number("max_word_length", d.maxWordLength)
        filterLoremIpsum = try r.bool("filter_lorem_ipsum", d.filterLoremIpsum)
        filterJavascript = try r.bool("filter_javascript", d.filterJavascript)
        filterCurlyBracket = try r.bool("filter_curly_bracket", d.filterCurlyBracket)
        filterPolicy = try r.bool("filter_policy", d.filterPolicy)
        removeLines = try r.bool("remove_lines", d.removeLines)
        try r.finish()
    }

    public var options: JSONObject {
        var o = JSONObject()
        o["remove_citations"] = .bool(removeCitations)
        o["filter_no_terminal_punct"] = .bool(filterNoTerminalPunct)
        o.put("min_num_sentences", minNumSentences)
        o.put("min_words_per_line", minWordsPerLine)
        o.put("max_word_length", maxWordLength)
        o["filter_lorem_ipsum"] = .bool(filterLoremIpsum)
        o["filter_javascript"] = .bool(filterJavascript)
        o["filter_curly_bracket"] = .bool(filterCurlyBracket)
        o["filter_policy"] = .bool(filterPolicy)
        o["remove_lines"] = .bool(removeLines)
        return o
    }

    static let policy = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
        .map(\.scalars)
    static let lorem = "lorem ipsum".scalars
    static let javascript = "javascript".scalars

    /// ASCII lower-case of a line, for the phrase checks.
    static func lower(_ s: Scalars) -> Scalars { s.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 } }

    static func contains(_ s: Scalars, _ needle: Scalars) -> Bool {
        Lines.count(s, 0..<s.count, needle) > 0
    }

    /// Removes Wikipedia-style citations: [12], [], [edit], [citation needed].
    static func removeCitations(_ s: Scalars) -> Scalars {
        guard s.contains(0x5B) else { return s }
        var out: Scalars = []
        out.reserveCapacity(s.count)
        var i = 0
        let edit = "[edit]".scalars
        let needed = "[citation needed]".scalars
        while i < s.count {
            if s[i] == 0x5B {
                var j = i + 1
                while j < s.count && Chars.isDigit(s[j]) { j += 1 }
                if j < s.count && s[j] == 0x5D {
                    i = j + 1
                    continue
                }
                if Lines.hasPrefix(s, i..<s.count, edit) { i += edit.count; continue }
                if Lines.hasPrefix(s, i..<s.count, needed) { i += needed.count; continue }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        let t = doc.text
        var sentences = 0
        var kept: [Scalars] = []
        var removed = 0
        var dropped: String?
        for raw in Lines.splitlines(t, 0..<t.count) {
            let r = Lines.strip(t, raw)
            let words = Lines.whitespaceWords(t, r)
            if let m = maxWordLength, m != -1, words.contains(where: { Double($0.count) > m }) {
                removed += 1
                continue
            }
            var line = Scalars(t[r])
            if removeCitations { line = C4Quality.removeCitations(line) }
            if filterNoTerminalPunct {
                let end = line.last
                let terminal = end == 0x2E || end == 0x3F || end == 0x21 || end == 0x22 || end == 0x27
                if !terminal || Lines.hasSuffix(line, 0..<line.count, [0x2E, 0x2E, 0x2E]) {
                    removed += 1
                    continue
                }
            }
            if let m = minWordsPerLine, m != -1, Double(words.count) < m {
                removed += 1
                continue
            }
            let lower = C4Quality.lower(line)
            if filterLoremIpsum && C4Quality.contains(lower, C4Quality.lorem) {
                dropped = "lorem_ipsum"
                break
            }
            if filterJavascript && C4Quality.contains(lower, C4Quality.javascript) {
                removed += 1
                continue
            }
            if filterCurlyBracket && line.contains(0x7B) {
                dropped = "curly_bracket"
                break
            }
            if filterPolicy && C4Quality.policy.contains(where: { C4Quality.contains(lower, $0) }) {
                removed += 1
                continue
            }
            if minNumSentences.map({ $0 != -1 }) ?? false {
                sentences += WordSplitter.sentenceCount(line, 0..<line.count)
            }
            kept.append(line)
        }
        if let dropped {
            out.flag(dropped)
            return out
        }
        out.add(Measure("min_num_sentences", "sentences", Double(sentences), .min, minNumSentences.flatMap { $0 == -1 ? nil : $0 }))
        out.add(Measure("lines_removed", "lines_removed", Double(removed), .max, nil))
        if removeLines && removed > 0 {
            var joined: Scalars = []
            for (i, l) in kept.enumerated() {
                if i > 0 { joined.append(0x0A) }
                joined += l
            }
            let s = Lines.strip(joined, 0..<joined.count)
            var view = String.UnicodeScalarView()
            for c in joined[s] { if let u = Unicode.Scalar(c) { view.append(u) } }
            out.text = String(view)
        }
        return out
    }
}

public struct FineWebQuality: RuleSet {
    public var name: String { "fineweb" }
    public var linePunctThr: Double? = 0.12
    public var linePunctExcludeZero = false
    public var shortLineThr: Double? = 0.67
    public var shortLineLength = 30
    public var charDuplicatesRatio: Double? = 0.01
    public var newLineRatio: Double? = 0.3

    public init() {}

    public init(options: JSONValue?) throws {
        var r = try OptionReader(rule: "fineweb", options)
        let d = FineWebQuality()
        linePunctThr = try r.number("line_punct_thr", d.linePunctThr)
        linePunctExcludeZero = try r.bool("line_punct_exclude_zero", d.linePunctExcludeZero)
        shortLineThr = try r.number("short_line_thr", d.shortLineThr)
        shortLineLength = Int(try r.number("short_line_length", Double(d.shortLineLength)) ?? 30)
        charDuplicatesRatio = try r.number("char_duplicates_ratio", d.charDuplicatesRatio)
        newLineRatio = try r.number("new_line_ratio", d.newLineRatio)
        try r.finish()
    }

    public var options: JSONObject {
        var o = JSONObject()
        o.put("line_punct_thr", linePunctThr)
        o["line_punct_exclude_zero"] = .bool(linePunctExcludeZero)
        o.put("short_line_thr", shortLineThr)
        o["short_line_length"] = .int(shortLineLength)
        o.put("char_duplicates_ratio", charDuplicatesRatio)
        o.put("new_line_ratio", newLineRatio)
        return o
    }

    /// datatrove's TERMINAL_PUNCTUATION: a line ending in one of these ends like a sentence.
    static let terminal = Chars.set(
        "!.?։؝؞؟۔܀܁܂߹࠷࠹࠽࠾।॥၊။።፧፨᙮᜵᜶។៕៖៙៚᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᭽᭾᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼⹓⹔。꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？｡𐩖𐩗𐽕𐽖𐽗𐽘𐽙𐾆𐾇𐾈𐾉𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑥄𑥆𑩂𑩃𑪛𑪜𑱁𑱂𑻷𑻸\u{11F43}\u{11F44}𖩮𖩯𖫵𖬷𖬸𖭄𖺘𛲟𝪈")

    public func evaluate(_ doc: FilterDocument) -> RuleOutcome {
        var out = RuleOutcome()
        let t = doc.text
        let lines = Lines.splitNewline(t, 0..<t.count).filter { !Lines.strip(t, $0).isEmpty }
        guard !lines.isEmpty else {
            out.flag("empty")
            return out
        }
        let n = Double(lines.count)
        let punct = lines.filter { $0.count > 0 && FineWebQuality.terminal.contains(t[$0.upperBound - 1]) }.count
        let ratio = Double(punct) / n
        var punctMeasure = Measure("line_punct_thr", "line_punct_ratio", ratio, .min, linePunctThr)
        if ratio == 0 && linePunctExcludeZero { punctMeasure.threshold = nil }
        out.add(punctMeasure)
        let short = lines.filter { $0.count <= shortLineLength }.count
        out.add(Measure("short_line_thr", "short_line_ratio", Double(short) / n, .max, shortLineThr))
        let newlines = t.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        let dup = findDuplicates(t, lines).chars
        out.add(Measure("char_duplicates_ratio", "char_dup_ratio", Double(dup) / Double(t.count - newlines), .max, charDuplicatesRatio))
        out.add(Measure("new_line_ratio", "list_ratio", Double(newlines) / Double(doc.words.count), .max, newLineRatio))
        return out
    }
}
