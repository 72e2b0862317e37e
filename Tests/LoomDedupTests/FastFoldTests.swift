// The Normalizer's fast Unicode path (NFKC and case folding piecewise, at normalization boundaries, with a per-scalar
// cache) against the reference: the whole text through Foundation, as before. Equal on random strings built from
// the characters where piecewise normalization could go wrong (combining marks after ASCII and after precomposed
// letters, marks in non-canonical order, conjoining and compatibility Hangul jamo, compatibility characters,
// Greek sigma in every position, ß, İ, ligatures, full-width forms, emoji with joiners, Indic vowel signs that
// compose), under every switch combination, and on every record of the shared corpora.

import Foundation
import XCTest

@testable import LoomCore
@testable import LoomDedup

final class FastFoldTests: XCTestCase {
    static let awkward: [String] = [
        "a", "e", "E", "I", "s", "S", "z", " ", "  ", "\t", "\n", ".", ",", "'", "-", "1", "\u{0}", "\u{1C}",
        "\u{0301}", "\u{0300}", "\u{0323}", "\u{0308}", "\u{0327}", "\u{0345}", "\u{034F}", "\u{0307}", "\u{20DD}",
        "é", "É", "Å", "Ω", "Ω", "K", "Å", "ǅ", "ǆ", "Σ", "σ", "ς", "ΑΣ", "ß", "ẞ", "İ", "ı", "ﬁ", "ﬀ", "ﬃ", "Ａ",
        "ｚ", "１", "²", "½", "µ", "℃", "™", "①", "ｶ", "ﾞ", "ｸﾞ", "가", "각", "\u{1100}", "\u{1161}", "\u{11A8}",
        "ㄱ", "ㅏ", "\u{3099}", "か", "\u{309A}", "क", "\u{093C}", "\u{0958}", "ো", "\u{09BE}", "\u{09C7}",
        "\u{0B47}", "\u{0B3E}", "\u{0BC6}", "\u{0BBE}", "\u{0D46}", "\u{0D3E}", "\u{1025}", "\u{102E}", "👍", "👍🏽",
        "👩‍💻", "\u{200D}", "\u{FE0F}", "\u{00A0}", "\u{2003}", "\u{2028}", "\u{3000}", "–", "—", "’", "“", "…",
        "‼", "№", "ℌ", "𝐀", "𝔄", "㎏", "㍿", "\u{F900}", "\u{2F800}", "Ǆ", "ǰ", "ΐ", "\u{1E9E}", "ῼ", "ﬗ", "ﷺ",
        "\u{FDFA}", "ᾈ", "ﬅ", "ſ", "ẛ", "\u{0344}", "\u{0F73}", "\u{0F77}", "ᄀ각",
    ]

    func check(_ text: String, _ n: Normalizer, file: StaticString = #filePath, line: UInt = #line) {
        var t = text
        var fast: [UInt8] = [], slow: [UInt8] = []
        t.withUTF8 { n.normalize($0, into: &fast) }
        t.withUTF8 { n.normalizeReference($0, into: &slow) }
        if fast != slow {
            XCTFail(
                "fast path differs on \(text.unicodeScalars.map { String($0.value, radix: 16) }): \(String(decoding: fast, as: UTF8.self)) vs \(String(decoding: slow, as: UTF8.self))",
                file: file, line: line)
        }
    }

    func testRandomAwkwardStrings() {
        var rng = SplitMix64(seed: 7)
        var options: [Normalization] = []
        for bits in 0..<16 {
            var o = Normalization()
            o.nfkc = bits & 1 != 0
            o.casefold = bits & 2 != 0
            o.stripPunctuation = bits & 4 != 0
            o.collapseWhitespace = bits & 8 != 0
            options.append(o)
        }
        for o in options {
            let n = Normalizer(o)
            for _ in 0..<1000 {
                let k = 1 + Int(rng.next() % 12)
                let s = (0..<k).map { _ in Self.awkward[Int(rng.next() % UInt64(Self.awkward.count))] }.joined()
                check(s, n)
            }
        }
        // Invalid UTF-8 takes the whole-text path (U+FFFD), as before.
        let bytes: [UInt8] = [0x61, 0xC3, 0x28, 0x62, 0xE2, 0x82]
        var fast: [UInt8] = [], slow: [UInt8] = []
        let n = Normalizer(Normalization())
        bytes.withUnsafeBufferPointer { n.normalize($0, into: &fast) }
        bytes.withUnsafeBufferPointer { n.normalizeReference($0, into: &slow) }
        XCTAssertEqual(fast, slow)
    }

    /// Every record's text of the shared corpora (PubMed abstracts, the near-duplicate corpus, Korean PDF text), and
    /// of the JSON Lines files named in LOOM_FOLD_CORPORA (colon-separated; e.g. the corpus
    /// Benchmarks/neardup-corpus.py builds from another PubMed file).
    func testSharedCorpora() throws {
        let shared = ProcessInfo.processInfo.environment["LOOM_SHARED"] ?? URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/../shared"
        let file = shared + "/corpora/dedup/neardup-20k.jsonl"
        guard FileManager.default.fileExists(atPath: file) else { throw XCTSkip("\(file) not present (LOOM_SHARED)") }
        let extra = (ProcessInfo.processInfo.environment["LOOM_FOLD_CORPORA"] ?? "").split(separator: ":").map(String.init)
        let n = Normalizer(Normalization())
        for f in [file] + extra {
            var records = 0, nonASCII = 0
            try LineReader(path: f).forEachLine { line in
                guard let r = try? JSONValue.parse(bytes: line), let text = r["text"]?.stringValue else { return }
                records += 1
                if text.utf8.contains(where: { $0 >= 0x80 }) { nonASCII += 1 }
                check(text, n)
            }
            XCTAssertGreaterThan(records, 10000, f)
            print("fast fold: \(f): \(records) records, \(nonASCII) with non-ASCII text, identical to Foundation's")
        }
    }
}
