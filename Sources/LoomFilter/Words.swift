// Words as the published quality rules count them. datatrove (the reference implementation of the Gopher, C4 and
// FineWeb rules) splits English text with spaCy's rule-based English tokenizer; the rules' thresholds were chosen
// on those counts, so this splitter follows the same algorithm, written from its description:
//   1. split on whitespace (Python's str.isspace);
//   2. in each piece, a special case (an abbreviation such as "e.g." or "Dr.", a contraction "don't" -> do + n't)
//      is taken whole; otherwise prefixes (opening punctuation, quotes, currency) and suffixes (closing punctuation,
//      "'s", a unit after a number, a full stop after a lower-case letter) are cut off repeatedly;
//   3. what remains is one token if it looks like a URL, else it is cut at infixes (a hyphen between letters, a
//      full stop between a lower- and an upper-case letter, ",", ":", "<", ">", "=", "/" between letters, "..."),
//      each infix a token of its own.
// Texts are arrays of Unicode scalars (UInt32): Python's len() counts scalars, and so do the rules' ratios.
// Korean and other scripts split on spaces and punctuation the same way (Hangul syllables are letters).

/// A text as Unicode scalar values.
public typealias Scalars = [UInt32]

public enum Chars {
    @inline(__always) static func isASCIILetter(_ c: UInt32) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
    @inline(__always) static func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }

    static func category(_ c: UInt32) -> Unicode.GeneralCategory? {
        Unicode.Scalar(c)?.properties.generalCategory
    }

    /// Python's str.isspace for one character: Unicode White_Space, and the separators U+001C...U+001F.
    @inline(__always) public static func isSpace(_ c: UInt32) -> Bool {
        if c < 0x80 { return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) }
        return Unicode.Scalar(c)?.properties.isWhitespace ?? false
    }

    /// Python's str.isalpha for one character: a letter (Lu, Ll, Lt, Lm, Lo).
    @inline(__always) public static func isAlpha(_ c: UInt32) -> Bool {
        if c < 0x80 { return isASCIILetter(c) }
        switch category(c) {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// spaCy's ALPHA_LOWER: lower-case letters and letters of scripts without case (Hangul, CJK, ...).
    @inline(__always) static func isLowerOrUncased(_ c: UInt32) -> Bool {
        if c < 0x80 { return c >= 0x61 && c <= 0x7A }
        switch category(c) {
        case .lowercaseLetter, .otherLetter: return true
        default: return false
        }
    }

    /// spaCy's ALPHA_UPPER: upper-case letters and letters of scripts without case.
    @inline(__always) static func isUpperOrUncased(_ c: UInt32) -> Bool {
        if c < 0x80 { return c >= 0x41 && c <= 0x5A }
        switch category(c) {
        case .uppercaseLetter, .titlecaseLetter, .otherLetter: return true
        default: return false
        }
    }

    /// Every character's general category is punctuation (spaCy's is_punct).
    static func isPunctuation(_ c: UInt32) -> Bool {
        switch category(c) {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// A symbol of category So (spaCy's "icons": dingbats, emoji, arrows, box drawing).
    @inline(__always) static func isIcon(_ c: UInt32) -> Bool {
        c >= 0xA6 && category(c) == .otherSymbol
    }

    static func set(_ s: String) -> CharSet { CharSet(s) }

    /// spaCy's punctuation that is cut off as a prefix or suffix (one character each).
    static let punct = set("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪")
    /// spaCy's quotes (also cut off either side).
    static let quotes = set("'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧")
    /// Single-character currency signs.
    static let currency = set("$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫€₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼₽₾₿")
    /// Characters that may stand before a full stop cut off as a suffix, besides digits and lower-case letters:
    /// `%²-+`, the punctuation and the quotes, and the characters of the regex syntax spaCy builds the class from.
    static let beforeSuffixStop = set("%²-+|(?:)").union(punct).union(quotes)
    /// Units cut off after a number ("10mg" -> 10 + mg).
    static let units: Set<Scalars> = Set(
        ("km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh mph "
            + "hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г "
            + "мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ").split(separator: " ").map {
                $0.unicodeScalars.map(\.value)
            })
    static let hyphens = set("-–—~")

    /// The characters that end a sentence for spaCy's sentencizer.
    static let sentenceEnds = set(
        "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？𐩖𐩗𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑩂𑩃𑪛𑪜𑱁𑱂𖩮𖩯𖫵𖬷𖬸𖭄𛲟𝪈｡。")
}

/// English abbreviations, contractions and emoticons that stay one token or split at fixed places (spaCy's English
/// special cases). A piece of text equal to one is split as it says; and, as spaCy's final pass does, a run of
/// tokens within one piece whose characters spell one ("e.g" + "." after an infix split, ")" + ":") is re-split
/// as it says.
enum SpecialCases {
    /// Each special case and where its tokens end.
    static let table: [Scalars: [Int]] = {
        var t: [Scalars: [Int]] = [:]
        func add(_ parts: [String]) {
            let whole = parts.joined()
            var ends: [Int] = []
            var n = 0
            for p in parts {
                n += p.unicodeScalars.count
                ends.append(n)
            }
            t[whole.scalars] = ends
        }
        var single = """
            Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. E.G. E.g. Feb. Fla. \
            Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. La. Ltd. Mar. Mass. Md. \
            Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. \
            Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. Sept. St. Tenn. Va. Wash. Wis. a.m. co. e.g. i.e. \
            p.m. v.s. vs. °C. °F. °K. °c. °f. °k. ä. ö. ü. and/or w/o C++ 0.0 o.O o.o O.o O.O v.v V.V o.0 0.o \
            (*_*) (-8 (-: (-; (-_-) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) )-: ): -_- -__- 0_0 0_o 8) 8-) 8-D 8D \
            :( :(( :((( :() :) :)) :))) :* :-( :-(( :-((( :-) :-)) :-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P :-X :-] \
            :-o :-p :-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :] :o :o) :p :x :| :} ;) ;-) ;-D ;D ;_; </3 <3 <33 <333 \
            =( =) =/ =3 =D =[ =] =| >:( >:o ><(((*> @_@ O_O O_o V_V XD XDD [-: [: [= ]= ^_^ ^__^ ^___^ o_0 o_O \
            o_o v_v xD xDD ಠ_ಠ ಠ︵ಠ <.< >.< >.> (._.) ._. (╯°□°）╯︵┻━┻ :'( :') :'-( :'-) :’( :’) :’-( \
            :’-) ' '' ’ ’’ — 's 'S ‘s ‘S ’s ’S 'd ’d 'em ’em 'll ’ll 're ’re 'cause 'Cause ’cause ’Cause 'cos 'Cos \
            ’cos ’Cos 'coz 'Coz ’coz ’Coz 'cuz 'Cuz ’cuz ’Cuz 'bout ’bout 'nuff ’nuff em ll nuff ma'am Ma'am ma’am \
            Ma’am o'clock O'clock o’clock O’clock
            """.split(separator: " ").map(String.init)
        single += ["\\\")", "¯\\(ツ)/¯"]
        for w in ["doin", "goin", "havin", "lovin", "nothin", "nuthin", "somethin", "ol"] {
            let c = w.prefix(1).uppercased() + w.dropFirst()
            single += [w, c, w + "'", c + "'", w + "’", c + "’"]
        }
        for c in "abcdefghijklmnopqrstuvwxyz" { single.append("\(c).") }
        for w in single { add([w]) }
        for h in 1...12 { for m in ["a.m.", "p.m.", "am", "pm"] { add(["\(h)", m]) } }
        // Contractions written without an apostrophe, with their splits; the same with ' or ’ ("don't" -> do n't,
        // "I'm" -> I 'm), each also capitalised.
        let bare = """
            ai|nt are|nt can|not ca|nt ca|nt|ve could|nt could|nt|ve could|ve dare|nt did|nt did|nt|ve does|nt \
            does|nt|ve do|nt do|nt|ve gon|na got|ta had|nt had|nt|ve has|nt have|nt he|d he|d|ve he|ll|ve he|s \
            how|d how|d|ve how|ll how|ll|ve how|re how|s how|ve i|d i|d|ve i|ll|ve i|m i|m|a is|nt it|d it|d|ve \
            it|ll it|ll|ve i|ve may|nt may|nt|ve might|nt might|nt|ve might|ve must|nt must|nt|ve must|ve need|nt \
            need|nt|ve not|ve ought|nt ought|nt|ve sha|nt sha|nt|ve she|d|ve she|ll|ve she|s should|nt \
            should|nt|ve should|ve that|d that|d|ve that|ll that|ll|ve that|s there|d there|d|ve there|ll \
            there|ll|ve there|re there|s there|ve these|d these|d|ve these|ll these|ll|ve these|re these|ve they|d \
            they|d|ve they|ll they|ll|ve they|re they|ve this|d this|d|ve this|ll this|ll|ve this|s those|d \
            those|d|ve those|ll those|ll|ve those|re those|ve was|nt we|d we|d|ve we|ll|ve were|nt we|ve what|d \
            what|d|ve what|ll what|ll|ve what|re what|s what|ve when|d when|d|ve when|ll when|ll|ve when|re when|s \
            when|ve where|d where|d|ve where|ll where|ll|ve where|re where|s where|ve who|d who|d|ve who|ll \
            who|ll|ve who|s who|ve why|d why|d|ve why|ll why|ll|ve why|re why|s why|ve wo|nt wo|nt|ve would|nt \
            would|nt|ve would|ve you|d you|d|ve you|ll you|ll|ve you|re you|ve
            """.split(separator: " ").map { $0.split(separator: "|").map(String.init) }
        for parts in bare {
            let capital = [parts[0].prefix(1).uppercased() + parts[0].dropFirst()] + parts.dropFirst()
            for p in [parts, capital] {
                add(p)
                if p == ["can", "not"] || p == ["Can", "not"] || p.contains("na") || p.contains("ta") { continue }
                for q in ["'", "’"] {
                    add([p[0]] + p.dropFirst().map { $0 == "nt" ? "n\(q)t" : q + $0 })
                    // "do" + "n't": the n belongs to the second token; "don't" splits after "do".
                }
            }
        }
        // Forms whose bare spelling is a word of its own ("shell", "well", "its"): only with the apostrophe.
        for pair in ["he|ll", "i|ll", "it|s", "let|s", "she|d", "she|ll", "we|ll", "we|re", "who|re"] {
            let p = pair.split(separator: "|").map(String.init)
            for first in [p[0], p[0].prefix(1).uppercased() + p[0].dropFirst()] {
                for q in ["'", "’"] { add([first, q + p[1]]) }
            }
        }
        for q in ["'", "’"] {
            add(["y" + q, "all"])
            add(["c" + q + "m", "on"])
            add(["C" + q + "m", "on"])
            add(["how", q + "d", q + "y"])
            add(["How", q + "d", q + "y"])
        }
        add(["y", "all"])
        return t
    }()

    /// No special case is longer than this many characters.
    static let maxLength = 16

    /// A bit per (length, first and last character) bucket that some special case falls in: most pieces of text
    /// are ruled out without building a key.
    static let buckets: [UInt64] = {
        var b = [UInt64](repeating: 0, count: 128)
        for k in table.keys {
            let h = bucket(k.count, k.first!, k.last!)
            b[h >> 6] |= 1 << UInt64(h & 63)
        }
        return b
    }()

    @inline(__always) static func bucket(_ n: Int, _ first: UInt32, _ last: UInt32) -> Int {
        (n &* 0x9E37 &+ Int(first) &* 0x85EB &+ Int(last) &* 0xC2B2) & 8191
    }

    /// Where a special case splits `s` (token ends relative to its start), or nil when `s` is not one.
    @inline(__always) static func split(_ s: ArraySlice<UInt32>) -> [Int]? {
        guard s.count <= maxLength, let f = s.first, let l = s.last else { return nil }
        let h = bucket(s.count, f, l)
        guard buckets[h >> 6] & (1 << UInt64(h & 63)) != 0 else { return nil }
        return table[Scalars(s)]
    }
}

/// A token: its range in the text, and whether it is whitespace (spaCy keeps runs of whitespace other than one
/// space as tokens; the word lists leave them out, the sentence count sees them).
public struct Token: Equatable, Sendable {
    public var start: Int
    public var end: Int
    public var isSpace: Bool
}

public enum WordSplitter {
    /// The words of `text[range]`: datatrove's `split_into_words` for English (spaCy's tokens, whitespace left out).
    public static func words(_ text: Scalars, _ range: Range<Int>? = nil) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(text.count / 5)
        tokenize(text, range ?? 0..<text.count) { t in if !t.isSpace { out.append(t.start..<t.end) } }
        return out
    }

    /// Every token of `text[range]` in order, whitespace tokens included.
    public static func tokenize(_ text: Scalars, _ range: Range<Int>, _ emit: (Token) -> Void) {
        var i = range.lowerBound
        let end = range.upperBound
        var previousWasToken = false
        while i < end {
            if Chars.isSpace(text[i]) {
                var j = i
                while j < end && Chars.isSpace(text[j]) { j += 1 }
                // One space after a token belongs to it; anything else is a token of its own.
                let s = (previousWasToken && text[i] == 0x20) ? i + 1 : i
                if s < j { emit(Token(start: s, end: j, isSpace: true)) }
                previousWasToken = false
                i = j
                continue
            }
            var j = i
            while j < end && !Chars.isSpace(text[j]) { j += 1 }
            var tokens: [Token] = []
            piece(text, i, j) { tokens.append($0) }
            if tokens.count > 1 { tokens = mergeSpecials(text, tokens) }
            for t in tokens { emit(t) }
            previousWasToken = true
            i = j
        }
    }

    /// spaCy's last pass over a piece: a run of two or more tokens that together spell a special case is split
    /// as the special case says (the longest run first, from the left).
    static func mergeSpecials(_ t: Scalars, _ tokens: [Token]) -> [Token] {
        var out: [Token] = []
        var i = 0
        while i < tokens.count {
            var matched = false
            var k = min(tokens.count, i + 8) - 1
            while k > i {
                let s = tokens[i].start
                let e = tokens[k].end
                if e - s <= SpecialCases.maxLength, let cuts = SpecialCases.split(t[s..<e]) {
                    var a = s
                    for c in cuts {
                        out.append(Token(start: a, end: s + c, isSpace: false))
                        a = s + c
                    }
                    i = k + 1
                    matched = true
                    break
                }
                k -= 1
            }
            if !matched {
                out.append(tokens[i])
                i += 1
            }
        }
        return out
    }

    /// One whitespace-free piece: special cases, affixes, then infixes.
    static func piece(_ t: Scalars, _ start: Int, _ end: Int, _ emit: (Token) -> Void) {
        if let cuts = SpecialCases.split(t[start..<end]) {
            emitCuts(start, cuts, emit)
            return
        }
        var lo = start
        var hi = end
        var suffixes: [Range<Int>] = []
        var lastSize = -1
        var special: [Int]?
        while lo < hi && hi - lo != lastSize {
            lastSize = hi - lo
            let pre = prefixLength(t, lo, hi)
            if pre > 0, lo + pre < hi, let cuts = SpecialCases.split(t[(lo + pre)..<hi]) {
                emit(Token(start: lo, end: lo + pre, isSpace: false))
                lo += pre
                special = cuts
                break
            }
            let suf = suffixLength(t, lo + pre, hi)
            if suf > 0, hi - suf > lo, let cuts = SpecialCases.split(t[lo..<(hi - suf)]) {
                suffixes.append((hi - suf)..<hi)
                hi -= suf
                special = cuts
                break
            }
            if pre > 0 && suf > 0 && pre + suf <= hi - lo {
                emit(Token(start: lo, end: lo + pre, isSpace: false))
                suffixes.append((hi - suf)..<hi)
                lo += pre
                hi -= suf
            } else if pre > 0 {
                emit(Token(start: lo, end: lo + pre, isSpace: false))
                lo += pre
            } else if suf > 0 {
                suffixes.append((hi - suf)..<hi)
                hi -= suf
            }
            if lo < hi, let cuts = SpecialCases.split(t[lo..<hi]) {
                special = cuts
                break
            }
        }
        if lo < hi {
            if let cuts = special {
                emitCuts(lo, cuts, emit)
            } else if looksLikeURL(t, lo, hi) {
                emit(Token(start: lo, end: hi, isSpace: false))
            } else {
                infixes(t, lo, hi, emit)
            }
        }
        for r in suffixes.reversed() { emit(Token(start: r.lowerBound, end: r.upperBound, isSpace: false)) }
    }

    static func emitCuts(_ start: Int, _ cuts: [Int], _ emit: (Token) -> Void) {
        var s = start
        for c in cuts {
            emit(Token(start: s, end: start + c, isSpace: false))
            s = start + c
        }
    }

    /// The length of the prefix at `lo` (0 when none).
    static func prefixLength(_ t: Scalars, _ lo: Int, _ hi: Int) -> Int {
        let c = t[lo]
        switch c {
        case 0xA7, 0x25, 0x3D, 0x2014, 0x2013: return 1  // § % = — –
        case 0x2B: return (lo + 1 < hi && Chars.isDigit(t[lo + 1])) ? 0 : 1  // + not before a digit
        case 0x2E:  // a run of two or more full stops
            var j = lo
            while j < hi && t[j] == 0x2E { j += 1 }
            return j - lo >= 2 ? j - lo : 0
        default: break
        }
        if Chars.punct.contains(c) || Chars.quotes.contains(c) || Chars.currency.contains(c) { return 1 }
        if hi - lo >= 2 && t[lo + 1] == 0x24 && (c == 0x43 || c == 0x41) { return 2 }  // C$ A$
        if hi - lo >= 3 && c == 0x55 && t[lo + 1] == 0x53 && t[lo + 2] == 0x24 { return 3 }  // US$
        if Chars.isIcon(c) { return 1 }
        return 0
    }

    /// The length of the longest suffix of `t[lo..<hi]` (spaCy searches its suffix patterns from the left, so the
    /// match that starts first, the longest, wins); 0 when none.
    static func suffixLength(_ t: Scalars, _ lo: Int, _ hi: Int) -> Int {
        guard lo < hi else { return 0 }
        var best = 0
        // A run of two or more full stops at the end.
        var j = hi
        while j > lo && t[j - 1] == 0x2E { j -= 1 }
        if hi - j >= 2 { best = hi - j }
        let from = max(lo, hi - 5)
        for i in from..<hi where hi - i > best {
            if suffixMatches(t, lo, i, hi) { return max(best, hi - i) }
        }
        return best
    }

    /// Whether `t[i..<hi]` is one of the suffixes, looking behind no further than `lo`.
    static func suffixMatches(_ t: Scalars, _ lo: Int, _ i: Int, _ hi: Int) -> Bool {
        let n = hi - i
        let c = t[i]
        let before: UInt32? = i > lo ? t[i - 1] : nil
        let digitBefore = before.map(Chars.isDigit) ?? false
        if n == 1 {
            if Chars.punct.contains(c) || Chars.quotes.contains(c) || Chars.isIcon(c) { return true }
            if c == 0x2014 || c == 0x2013 { return true }
            if c == 0x2B && digitBefore { return true }
            if c == 0x2E, let b = before {
                if Chars.isDigit(b) || Chars.isLowerOrUncased(b) || Chars.beforeSuffixStop.contains(b) { return true }
                if i - 2 >= lo, t[i - 2] == 0xB0, "FfCcKk".unicodeScalars.contains(where: { $0.value == b }) { return true }
                if i - 2 >= lo, Chars.isUpperOrUncased(b), Chars.isUpperOrUncased(t[i - 2]) { return true }
            }
        }
        if n == 2 {
            if c == 0x2026 && t[i + 1] == 0x2026 { return true }  // ……
            if (c == 0x27 || c == 0x2019) && (t[i + 1] == 0x73 || t[i + 1] == 0x53) { return true }  // 's 'S ’s ’S
        }
        if digitBefore {
            if n == 1 && Chars.currency.contains(c) { return true }
            if n == 3 && c == 0x55 && t[i + 1] == 0x53 && t[i + 2] == 0x24 { return true }
            if n == 2 && t[i + 1] == 0x24 && (c == 0x43 || c == 0x41) { return true }
            if Chars.units.contains(Scalars(t[i..<hi])) { return true }
        }
        return false
    }

    /// spaCy's URL test (the scheme, host labels, a top-level domain of two or more lower-case letters, a port and
    /// a path), applied to what remains after the affixes.
    static func looksLikeURL(_ t: Scalars, _ lo: Int, _ hi: Int) -> Bool {
        var i = lo
        // Optional scheme: [\w+\-.]{2,}://
        var k = lo
        while k < hi && (Chars.isAlpha(t[k]) || Chars.isDigit(t[k]) || t[k] == 0x2B || t[k] == 0x2D || t[k] == 0x2E || t[k] == 0x5F) {
            k += 1
        }
        if k - lo >= 2, k + 3 <= hi, t[k] == 0x3A, t[k + 1] == 0x2F, t[k + 2] == 0x2F { i = k + 3 }
        // Optional user information before an "@", then the host.
        if i < hi, (i..<hi).contains(where: { t[$0] == 0x40 }) {
            for at in (i..<hi).reversed() where t[at] == 0x40 && at > i {
                if hostMatches(t, at + 1, hi) { return true }
            }
        }
        return hostMatches(t, i, hi)
    }

    /// One or more "label." then a top-level domain, an optional port and path, to the end.
    static func hostMatches(_ t: Scalars, _ i: Int, _ hi: Int) -> Bool {
        func labelChar(_ c: UInt32) -> Bool {
            (c < 0x80 && (Chars.isASCIILetter(c) || Chars.isDigit(c))) || (c >= 0xA1 && c <= 0xFFFF)
        }
        var labels = 0
        var p = i
        while true {
            var q = p
            while q < hi && (labelChar(t[q]) || t[q] == 0x5F || t[q] == 0x2D) { q += 1 }
            guard q > p, q < hi, t[q] == 0x2E, labelChar(t[q - 1]), labelChar(t[p]) else { break }
            labels += 1
            p = q + 1
        }
        guard labels > 0 else { return false }
        // The TLD: the longest run of lower-case (or uncased) letters, 2 to 63 of them.
        var q = p
        while q < hi && Chars.isLowerOrUncased(t[q]) { q += 1 }
        guard q - p >= 2 && q - p <= 63 else { return false }
        if q == hi { return true }
        var r = q
        if t[r] == 0x3A {  // :port
            var d = r + 1
            while d < hi && Chars.isDigit(t[d]) { d += 1 }
            if d - r - 1 >= 2 && d - r - 1 <= 5 { r = d }
            if r == hi { return true }
        }
        return t[r] == 0x2F || t[r] == 0x3F || t[r] == 0x23
    }

    /// Splits `t[lo..<hi]` at its infixes, scanning from the left as a regex's finditer does.
    static func infixes(_ t: Scalars, _ lo: Int, _ hi: Int, _ emit: (Token) -> Void) {
        var start = lo
        var p = lo
        while p < hi {
            let len = infixLength(t, lo, p, hi)
            if len == 0 {
                p += 1
                continue
            }
            if p != lo {
                if p != start { emit(Token(start: start, end: p, isSpace: false)) }
                emit(Token(start: p, end: p + len, isSpace: false))
                start = p + len
            }
            p += len
        }
        if start < hi { emit(Token(start: start, end: hi, isSpace: false)) }
    }

    /// The length of an infix at `p` (0 when none); look-behind and look-ahead see the whole piece.
    static func infixLength(_ t: Scalars, _ lo: Int, _ p: Int, _ hi: Int) -> Int {
        let c = t[p]
        // No infix is a letter or a digit.
        if c < 0x80 && (Chars.isASCIILetter(c) || Chars.isDigit(c)) { return 0 }
        if c == 0x2E {
            var j = p
            while j < hi && t[j] == 0x2E { j += 1 }
            if j - p >= 2 { return j - p }
        }
        if c == 0x2026 || Chars.isIcon(c) { return 1 }
        // Every other infix looks one character behind and one ahead, inside the piece.
        guard p > lo, p + 1 < hi else { return 0 }
        let b = t[p - 1]
        let a = t[p + 1]
        // (?<=[0-9])[+\-*^](?=[0-9-])
        if Chars.isDigit(b), c == 0x2B || c == 0x2D || c == 0x2A || c == 0x5E, Chars.isDigit(a) || a == 0x2D {
            return 1
        }
        // (?<=[lower quotes])\.(?=[upper quotes])
        if c == 0x2E, Chars.isLowerOrUncased(b) || Chars.quotes.contains(b), Chars.isUpperOrUncased(a) || Chars.quotes.contains(a) {
            return 1
        }
        let alphaBefore = Chars.isAlpha(b)
        // (?<=[alpha]),(?=[alpha])
        if c == 0x2C, alphaBefore, Chars.isAlpha(a) { return 1 }
        // (?<=[alpha 0-9])(?:-|–|—|--|---|——|~)(?=[alpha])
        if alphaBefore || Chars.isDigit(b) {
            if Chars.hyphens.contains(c) {
                if Chars.isAlpha(a) { return 1 }
                // -- and --- and ——
                var j = p + 1
                while j < hi && j - p < 3 && t[j] == c && (c == 0x2D || c == 0x2014) { j += 1 }
                if j > p + 1, j < hi, Chars.isAlpha(t[j]), c == 0x2D || j - p == 2 { return j - p }
            }
            // (?<=[alpha 0-9])[:<>=/](?=[alpha])
            if c == 0x3A || c == 0x3C || c == 0x3E || c == 0x3D || c == 0x2F, Chars.isAlpha(a) { return 1 }
        }
        return 0
    }

    /// The number of sentences spaCy's sentencizer finds in `text[range]`: one, plus one for each token that follows
    /// a sentence-ending token and is neither punctuation nor sentence-ending itself.
    public static func sentenceCount(_ text: Scalars, _ range: Range<Int>) -> Int {
        var count = 0
        var seenEnd = false
        var first = true
        tokenize(text, range) { tok in
            if first {
                count = 1
                first = false
            }
            let single = tok.end - tok.start == 1
            let isEnd = single && Chars.sentenceEnds.contains(text[tok.start])
            if seenEnd && !isEnd && !(tok.isSpace ? false : (tok.start..<tok.end).allSatisfy { Chars.isPunctuation(text[$0]) }) {
                count += 1
                seenEnd = false
            } else if isEnd {
                seenEnd = true
            }
        }
        return count
    }
}
