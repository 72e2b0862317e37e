// Clean-up of PDF page text into what a careful person would copy out: running headers and footers and bare page
// numbers removed, end-of-line hyphenation joined, whitespace normalised with paragraphs kept. Pure functions of
// the pages' text, so the same rules can be applied to another extractor's output (the tests do that to pdftotext).

import Foundation
import LoomCore

public struct PDFCleanupOptions: Codable, Equatable, Sendable {
    /// Remove lines that repeat at the top or bottom of pages (digits ignored, so "Chapter 2 ... 17" and
    /// "Chapter 2 ... 19" are the same running header).
    public var removeRunningLines = true
    /// Remove bare page numbers ("17", "- 17 -", "Page 17", "17 of 90", "xii") at the top or bottom of a page.
    public var removePageNumbers = true
    /// Join a word hyphenated at the end of a line with its rest on the next line ("recog-\nnition").
    public var joinHyphens = true
    /// Collapse whitespace, apply NFKC (ligatures such as "ﬁ" become "fi"), and join the lines of a paragraph with
    /// spaces; blocks stay separate paragraphs (a blank line between them).
    public var normalizeWhitespace = true

    public init() {}
}

public enum PDFCleanup {
    /// How many non-empty lines at the top and at the bottom of a page can be running lines or page numbers (one
    /// on pages of fewer than six lines, so a short page's own text is not mistaken for its header).
    static let edgeLines = 2

    /// Cleans every page; running lines are found across all of them. The per-page work runs on `jobs` threads.
    public static func clean(_ pages: [String], options: PDFCleanupOptions = PDFCleanupOptions(), jobs: Int = 1)
        -> [String]
    {
        let split = (try? parallelMap(pages, jobs: jobs) { page -> [String] in
            page.split(separator: "\n", omittingEmptySubsequences: false).map { trimmed($0) }
        }) ?? []
        // Count each edge line's key once per page, separately for tops and bottoms.
        var top: [String: Int] = [:]
        var bottom: [String: Int] = [:]
        for lines in split {
            let (t, b) = edges(lines)
            for k in Set(t.map { key(lines[$0]) }) { top[k, default: 0] += 1 }
            for k in Set(b.map { key(lines[$0]) }) { bottom[k, default: 0] += 1 }
        }
        let minRepeats = pages.count >= 4 ? 3 : (pages.count >= 2 ? pages.count : Int.max)
        return (try? parallelMap(split, jobs: jobs) { lines -> String in
            var drop = Set<Int>()
            let (t, b) = edges(lines)
            for (region, counts) in [(t, top), (b, bottom)] {
                for i in region {
                    let line = lines[i]
                    if options.removeRunningLines, line.count <= 150, counts[key(line), default: 0] >= minRepeats {
                        drop.insert(i)
                    }
                    if options.removePageNumbers, isPageNumber(line) { drop.insert(i) }
                }
            }
            let kept = lines.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
            return paragraphs(kept, options: options)
        }) ?? []
    }

    /// A line without surrounding spaces and tabs (ASCII fast path).
    static func trimmed(_ line: Substring) -> String {
        var u = line.utf8[...]
        while let f = u.first, f == 0x20 || f == 0x09 || f == 0x0D { u = u.dropFirst() }
        while let l = u.last, l == 0x20 || l == 0x09 || l == 0x0D { u = u.dropLast() }
        let s = String(Substring(u))
        // Other Unicode spaces (no-break, ideographic) at the ends.
        if let f = s.unicodeScalars.first, f.value >= 0x80, f.properties.isWhitespace {
            return s.trimmingCharacters(in: .whitespaces)
        }
        if let l = s.unicodeScalars.last, l.value >= 0x80, l.properties.isWhitespace {
            return s.trimmingCharacters(in: .whitespaces)
        }
        return s
    }

    /// Indices of the first and last `edgeLines` non-empty lines.
    static func edges(_ lines: [String]) -> ([Int], [Int]) {
        let nonEmpty = lines.indices.filter { !lines[$0].isEmpty }
        let k = nonEmpty.count >= 6 ? edgeLines : 1
        return (Array(nonEmpty.prefix(k)), Array(nonEmpty.suffix(k)))
    }

    /// Lower-cased, digits replaced by '#', whitespace collapsed.
    static func key(_ line: String) -> String {
        var out = ""
        var lastDigit = false
        var lastSpace = false
        for ch in line.lowercased() {
            if ch.isNumber {
                if !lastDigit { out.append("#") }
                lastDigit = true
                lastSpace = false
            } else if ch.isWhitespace {
                if !lastSpace { out.append(" ") }
                lastSpace = true
                lastDigit = false
            } else {
                out.append(ch)
                lastDigit = false
                lastSpace = false
            }
        }
        return out
    }

    /// "17", "- 17 -", "— 17 —", "Page 17", "page 17 of 90", "17 / 90", "xii", "[17]".
    static func isPageNumber(_ line: String) -> Bool {
        var s = line.lowercased().trimmingCharacters(in: .whitespaces)
        let dashes: Set<Character> = ["-", "–", "—", "[", "]", "(", ")", "|"]
        s = String(s.drop(while: { dashes.contains($0) || $0 == " " }))
        while let last = s.last, dashes.contains(last) || last == " " { s.removeLast() }
        if s.hasPrefix("page ") { s = String(s.dropFirst(5)).trimmingCharacters(in: .whitespaces) }
        for sep in [" of ", "/"] {
            if let r = s.range(of: sep) {
                let rest = s[r.upperBound...].trimmingCharacters(in: .whitespaces)
                guard !rest.isEmpty, rest.allSatisfy(\.isASCIIDigit) else { return false }
                s = String(s[..<r.lowerBound]).trimmingCharacters(in: .whitespaces)
            }
        }
        if s.isEmpty || s.count > 8 { return false }
        if s.allSatisfy(\.isASCIIDigit) { return true }
        return s.count <= 6 && s.allSatisfy { "ivxlcdm".contains($0) }
    }

    /// Blocks (separated by empty lines) to paragraphs.
    static func paragraphs(_ lines: [String], options: PDFCleanupOptions) -> String {
        var blocks: [[String]] = [[]]
        for l in lines {
            if l.isEmpty {
                if !blocks[blocks.count - 1].isEmpty { blocks.append([]) }
            } else {
                blocks[blocks.count - 1].append(l)
            }
        }
        var out: [String] = []
        for var block in blocks where !block.isEmpty {
            if options.joinHyphens { block = joinHyphenated(block) }
            if options.normalizeWhitespace {
                block = block.map(collapse)
                out += joinLines(block)
            } else {
                out.append(block.joined(separator: "\n"))
            }
        }
        let text = out.joined(separator: "\n\n")
        guard options.normalizeWhitespace, text.utf8.contains(where: { $0 >= 0x80 }) else { return text }
        return text.precomposedStringWithCompatibilityMapping
    }

    /// "recog-" + "nition" -> "recognition" when the hyphen follows a letter and the next line starts lower-case.
    static func joinHyphenated(_ block: [String]) -> [String] {
        var out: [String] = []
        for line in block {
            if let prev = out.last, let first = line.first, first.isLowercase,
                prev.count >= 3, let h = prev.last, h == "-" || h == "\u{00AD}",
                prev.dropLast().last?.isLetter == true
            {
                out[out.count - 1] = String(prev.dropLast()) + line
            } else {
                out.append(line)
            }
        }
        return out
    }

    static func collapse(_ s: String) -> String {
        // Most lines have single ASCII spaces only: nothing to do.
        var previousSpace = false
        var plain = true
        for b in s.utf8 {
            if b >= 0x80 || b == 0x09 || (b == 0x20 && previousSpace) {
                plain = false
                break
            }
            previousSpace = b == 0x20
        }
        if plain { return s }
        return s.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// Lines of one block joined with spaces; a line that ends a sentence and is clearly shorter than the block's
    /// longest line ends a paragraph (the short last line of a typeset paragraph).
    static func joinLines(_ block: [String]) -> [String] {
        // Lengths in Unicode scalars (cheap; the rule only compares lines with each other).
        let lengths = block.map { $0.unicodeScalars.count }
        let longest = lengths.max() ?? 0
        var paragraphs: [String] = []
        var current: [String] = []
        for (i, line) in block.enumerated() {
            current.append(line)
            let last = line.unicodeScalars.last
            let endsSentence = last == "." || last == "!" || last == "?" || last == ":" || last == "。"
            if i + 1 < block.count, endsSentence, Double(lengths[i]) < 0.8 * Double(longest) {
                paragraphs.append(current.joined(separator: " "))
                current = []
            }
        }
        if !current.isEmpty { paragraphs.append(current.joined(separator: " ")) }
        return paragraphs
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
