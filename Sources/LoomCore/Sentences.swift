// Sentence splitting shared by the stages that work on sentences (chunking, reading-comprehension mining).

import Foundation

public enum SentenceSplitter {
    /// Words that end with a period without ending a sentence (compared lower-cased, without the period).
    static let abbreviations: Set<String> = [
        "e.g", "i.e", "al", "fig", "figs", "dr", "mr", "mrs", "ms", "prof", "vs", "approx", "no", "nos", "ref", "refs",
        "vol", "eq", "eqs", "ca", "cf", "etc", "st", "jr", "sr", "inc", "ltd", "co", "dept", "univ", "resp", "sp", "spp",
        "art", "sec", "ch", "p", "pp", "min", "max", "mg", "ml", "wt", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
        "sep", "sept", "oct", "nov", "dec",
    ]

    /// Sentence ranges of `text`, in order, covering every non-space character. Boundaries: `.`, `!`, `?`
    /// (with closing quotes or brackets) followed by a space and then a capital, digit or opening bracket;
    /// `。！？` in CJK text; and line breaks.
    public static func split(_ text: String) -> [Range<String.Index>] {
        var out: [Range<String.Index>] = []
        var start: String.Index? = nil
        var i = text.startIndex
        let chars = text
        func close(_ end: String.Index) {
            if let s = start, s < end { out.append(s..<end) }
            start = nil
        }
        while i < chars.endIndex {
            let c = chars[i]
            if c.isNewline {
                close(i)
                i = chars.index(after: i)
                continue
            }
            if start == nil {
                if c.isWhitespace {
                    i = chars.index(after: i)
                    continue
                }
                start = i
            }
            if c == "。" || c == "！" || c == "？" {
                let e = chars.index(after: i)
                close(e)
                i = e
                continue
            }
            if c == "." || c == "!" || c == "?" {
                var e = chars.index(after: i)
                while e < chars.endIndex, "\"')]”’".contains(chars[e]) { e = chars.index(after: e) }
                if e == chars.endIndex {
                    close(e)
                    i = e
                    continue
                }
                if chars[e] == " " || chars[e] == "\t" {
                    var n = e
                    while n < chars.endIndex, chars[n] == " " || chars[n] == "\t" { n = chars.index(after: n) }
                    let next = n < chars.endIndex ? chars[n] : " "
                    // Scripts without letter case (Hangul, CJK) start a sentence with any letter.
                    let caseless = next.isLetter && !next.isUppercase && !next.isLowercase
                    let startsSentence =
                        next.isUppercase || caseless || next.isNumber || "\"'([“‘".contains(next) || next.isNewline
                    if startsSentence && !(c == "." && isAbbreviation(chars, before: i, start: start!)) {
                        close(e)
                        i = n
                        continue
                    }
                }
                i = e
                continue
            }
            i = chars.index(after: i)
        }
        // Trim trailing spaces of the last sentence.
        if let s = start {
            var e = chars.endIndex
            while e > s, chars[chars.index(before: e)].isWhitespace { e = chars.index(before: e) }
            if s < e { out.append(s..<e) }
        }
        return out
    }

    /// Whether the word before the period at `dot` is an abbreviation or a single-letter initial ("J.").
    static func isAbbreviation(_ text: String, before dot: String.Index, start: String.Index) -> Bool {
        var w = dot
        while w > start, !text[text.index(before: w)].isWhitespace, text[text.index(before: w)] != "(" {
            w = text.index(before: w)
        }
        let word = text[w..<dot]
        if word.count == 1, let f = word.first, f.isLetter { return true }
        return abbreviations.contains(word.lowercased())
    }
}

