// A plain reference encoder the fast one is tested against: the pre-tokeniser regexes run by NSRegularExpression
// (ICU; `\s` spelled out as the White_Space set Oniguruma uses), added tokens found by a naive leftmost-longest
// search, and BPE as the textbook loop over token strings (merge the lowest-ranked adjacent pair, leftmost first,
// until none is left). Slow; for tests and benchmarks only.

import Foundation
import LoomCore

public struct ReferenceTokenizer {
    let tokenizer: Tokenizer
    let regex: NSRegularExpression?
    let ranks: [String: Int]

    static let ws = #"\t\n\x{0B}\f\r\x{20}\x{85}\p{Z}"#

    static func icuPattern(_ p: SplitPattern) -> String? {
        let w = ws
        switch p {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^"# + w + #"\p{L}\p{N}]+|["# + w + "]+(?![^" + w + "])|[" + w + "]+"
        case .llama3(let d):
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,"# + String(d) + #"}| ?[^"# + w
                + #"\p{L}\p{N}]+[\r\n]*|["# + w + #"]*[\r\n]+|["# + w + "]+(?![^" + w + "])|[" + w + "]+"
        case .literal: return nil
        }
    }

    public init(_ t: Tokenizer) throws {
        tokenizer = t
        guard t.normalizer == nil, t.byteLevel, !t.model.ignoreMerges else {
            throw LoomError("the reference encoder handles byte-level tokenizers without a normaliser")
        }
        if let p = t.fastPattern {
            guard let icu = ReferenceTokenizer.icuPattern(p) else { throw LoomError("the reference encoder needs a regex") }
            regex = try NSRegularExpression(pattern: icu)
        } else if t.preTokenizer == nil || t.preTokenizer == .byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: false) {
            regex = nil
        } else {
            throw LoomError("the reference encoder handles one regex split")
        }
        var r: [String: Int] = [:]
        for (i, m) in t.model.merged.enumerated() where r[m.0 + " " + m.1] == nil { r[m.0 + " " + m.1] = i }
        ranks = r
    }

    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        // Added tokens: leftmost match, longest at that position.
        let specials = tokenizer.addedTokens.sorted { $0.content.utf8.count > $1.content.utf8.count }
        var rest = Substring(text)
        while !rest.isEmpty {
            var best: (Range<Substring.Index>, AddedToken)? = nil
            for t in specials {
                if let r = rest.range(of: t.content, options: .literal), best == nil || r.lowerBound < best!.0.lowerBound {
                    best = (r, t)
                }
            }
            guard let (r, t) = best else {
                encodeSegment(String(rest), &out)
                break
            }
            encodeSegment(String(rest[..<r.lowerBound]), &out)
            out.append(t.id)
            rest = rest[r.upperBound...]
        }
        return out
    }

    func encodeSegment(_ s: String, _ out: inout [Int32]) {
        if s.isEmpty { return }
        var words: [String] = []
        if let re = regex {
            let ns = s as NSString
            for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) {
                words.append(ns.substring(with: m.range))
            }
        } else {
            words = [s]
        }
        for w in words {
            var symbols = Array(w.utf8).map { ByteLevel.alphabet[Int($0)] }
            while symbols.count > 1 {
                var best = Int.max
                var at = -1
                for i in 0..<(symbols.count - 1) {
                    if let r = ranks[symbols[i] + " " + symbols[i + 1]], r < best {
                        best = r
                        at = i
                    }
                }
                if at < 0 { break }
                symbols[at] += symbols[at + 1]
                symbols.remove(at: at + 1)
            }
            out.append(contentsOf: symbols.compactMap { tokenizer.model.vocab[$0] })
        }
    }
}
