// Stage 2 of the Hugging Face pipeline: the pre-tokeniser cuts a text into pieces ("words"); the model encodes each
// piece on its own. Supported: ByteLevel (with or without the GPT-2 regex, add_prefix_space), Split (the GPT-2,
// Llama-3 and Qwen-2 regexes, or a literal string; every split behaviour), Metaspace (SentencePiece's "▁",
// prepend_scheme always/first/never, split) and Sequence.
//
// The regexes are not run by a regex engine: each known pattern is matched by hand over Unicode scalars, alternative
// by alternative, with the leftmost-alternative and backtracking semantics of the pattern (Oniguruma's, which
// tokenizers uses). `ReferenceTokenizer` runs the same patterns through NSRegularExpression; the tests compare both.

import Foundation
import LoomCore

/// The regexes Loom matches by hand.
public enum SplitPattern: Equatable, Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2; ByteLevel use_regex).
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (Llama-3, digits in runs of at most 3; Qwen-2 uses the same with `\p{N}`, runs of 1).
    case llama3(maxDigits: Int)
    /// A literal string.
    case literal(String)

    public static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    public static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let qwen2Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The pattern for a regex string from a tokenizer.json, nil when Loom does not know it.
    public static func regex(_ s: String) -> SplitPattern? {
        switch s {
        case gpt2Regex: return .gpt2
        case llama3Regex: return .llama3(maxDigits: 3)
        case qwen2Regex: return .llama3(maxDigits: 1)
        default: return nil
        }
    }

    /// The regex text, for writing tokenizer.json (nil for a literal).
    public var regexText: String? {
        switch self {
        case .gpt2: return SplitPattern.gpt2Regex
        case .llama3(let d): return d == 1 ? SplitPattern.qwen2Regex : SplitPattern.llama3Regex
        case .literal: return nil
        }
    }

    /// Calls `match` with the byte range of each match in `p[start..<end]`, left to right. The two regexes match
    /// every scalar, so their matches tile the range.
    func matches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ match: (Int, Int) -> Void) {
        switch self {
        case .gpt2: RegexSplit.gpt2(p, start, end, match)
        case .llama3(let d): RegexSplit.llama3(p, start, end, maxDigits: d, match)
        case .literal(let s):
            var s = s
            s.withUTF8 { lit in
                guard let l = lit.baseAddress, lit.count > 0 else { return }
                var i = start
                while i + lit.count <= end {
                    if p[i] == l[0] && memcmp(p + i, l, lit.count) == 0 {
                        match(i, i + lit.count)
                        i += lit.count
                    } else {
                        i += 1
                    }
                }
            }
        }
    }
}

/// Where Metaspace puts its replacement character in front of a section (Hugging Face `PrependScheme`).
public enum PrependScheme: String, Sendable {
    case always, first, never

    /// From a Metaspace pre-tokenizer's or decoder's JSON; older files say add_prefix_space instead.
    init(metaspace json: JSONValue, component: String) throws {
        guard let given = json["prepend_scheme"]?.stringValue else {
            self = (json["add_prefix_space"]?.boolValue ?? true) ? .always : .never
            return
        }
        guard let known = PrependScheme(rawValue: given) else {
            throw LoomError("\(component) Metaspace: unknown prepend_scheme \(given)")
        }
        self = known
    }
}

/// What Split does with the matches (Hugging Face `SplitDelimiterBehavior`).
public enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

public indirect enum PreTokenizer: Equatable, Sendable {
    /// Maps bytes to the byte-level alphabet (the model sees bytes); optionally splits with the GPT-2 regex first and
    /// puts a space before each piece that does not start with one.
    case byteLevel(addPrefixSpace: Bool, trimOffsets: Bool, useRegex: Bool)
    case split(pattern: SplitPattern, behavior: SplitBehavior, invert: Bool)
    /// SentencePiece's space handling (transformers' newer Llama/Mistral conversions): every space becomes
    /// `replacement` ("▁"), which is also put in front of a section that does not start with it (`always`, or
    /// `first`: only the section at the start of the text); with `split`, pieces are cut before each replacement.
    case metaspace(replacement: String, prependScheme: PrependScheme, split: Bool)
    case sequence([PreTokenizer])

    /// True when the model's input is bytes (a ByteLevel step is present).
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .split, .metaspace: return false
        case .sequence(let s): return s.contains { $0.isByteLevel }
        }
    }

    /// True when some step inserts bytes (add_prefix_space), so pieces are no longer ranges of the input.
    var insertsBytes: Bool {
        switch self {
        case .byteLevel(let a, _, _): return a
        case .split: return false
        case .metaspace: return true
        case .sequence(let s): return s.contains { $0.insertsBytes }
        }
    }

    /// Refines `pieces` (byte ranges of `p`) in place. Pieces never cross the ranges they come from.
    func apply(_ p: UnsafePointer<UInt8>, _ pieces: inout [Range<Int>], scratch: inout [Range<Int>]) {
        switch self {
        case .sequence(let steps):
            for s in steps { s.apply(p, &pieces, scratch: &scratch) }
        case .byteLevel(_, _, let useRegex):
            // add_prefix_space is applied by the caller (it changes the bytes); only the regex cuts here.
            if useRegex { PreTokenizer.split(p, &pieces, &scratch, .gpt2, .isolated, false) }
        case .split(let pattern, let behavior, let invert):
            PreTokenizer.split(p, &pieces, &scratch, pattern, behavior, invert)
        case .metaspace:
            break  // it changes the bytes: the general path (`pieces(of:)`) runs it
        }
    }

    static func split(
        _ p: UnsafePointer<UInt8>, _ pieces: inout [Range<Int>], _ out: inout [Range<Int>], _ pattern: SplitPattern,
        _ behavior: SplitBehavior, _ invert: Bool
    ) {
        out.removeAll(keepingCapacity: true)
        for r in pieces {
            if r.isEmpty { continue }
            // Matches and the gaps between them, in order; `isMatch` after inversion.
            var parts: [(Range<Int>, Bool)] = []
            var last = r.lowerBound
            pattern.matches(p, r.lowerBound, r.upperBound) { a, b in
                if a > last { parts.append((last..<a, invert)) }
                parts.append((a..<b, !invert))
                last = b
            }
            if last < r.upperBound { parts.append((last..<r.upperBound, invert)) }
            switch behavior {
            case .isolated:
                for (x, _) in parts { out.append(x) }
            case .removed:
                for (x, m) in parts where !m { out.append(x) }
            case .mergedWithPrevious:
                // A match joins the part before it unless that part is a match too.
                var previous = false
                var acc: [Range<Int>] = []
                for (x, m) in parts {
                    if m && !previous, let l = acc.last { acc[acc.count - 1] = l.lowerBound..<x.upperBound } else { acc.append(x) }
                    previous = m
                }
                out.append(contentsOf: acc)
            case .mergedWithNext:
                // A match joins the part after it unless that part is a match too.
                var previous = false
                var acc: [Range<Int>] = []
                for (x, m) in parts.reversed() {
                    if m && !previous, let l = acc.last { acc[acc.count - 1] = x.lowerBound..<l.upperBound } else { acc.append(x) }
                    previous = m
                }
                out.append(contentsOf: acc.reversed())
            case .contiguous:
                // Runs of matches become one part.
                var previous = false
                var acc: [Range<Int>] = []
                for (x, m) in parts {
                    if m == previous, let l = acc.last { acc[acc.count - 1] = l.lowerBound..<x.upperBound } else { acc.append(x) }
                    previous = m
                }
                out.append(contentsOf: acc)
            }
        }
        swap(&pieces, &out)
    }
}

// MARK: - tokenizer.json

extension PreTokenizer {
    init(json: JSONValue) throws {
        guard let type = json["type"]?.stringValue else { throw LoomError("pre_tokenizer without a type") }
        switch type {
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: json["add_prefix_space"]?.boolValue ?? true,
                trimOffsets: json["trim_offsets"]?.boolValue ?? true, useRegex: json["use_regex"]?.boolValue ?? true)
        case "Split":
            let pattern: SplitPattern
            if let r = json["pattern"]?["Regex"]?.stringValue {
                guard let known = SplitPattern.regex(r) else {
                    throw LoomError("pre_tokenizer Split: regex \(r) is not one Loom knows (GPT-2, Llama-3, Qwen-2)")
                }
                pattern = known
            } else if let s = json["pattern"]?["String"]?.stringValue {
                pattern = .literal(s)
            } else {
                throw LoomError("pre_tokenizer Split: pattern is neither {\"Regex\": ...} nor {\"String\": ...}")
            }
            let b = json["behavior"]?.stringValue ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: b) else { throw LoomError("pre_tokenizer Split: unknown behavior \(b)") }
            self = .split(pattern: pattern, behavior: behavior, invert: json["invert"]?.boolValue ?? false)
        case "Metaspace":
            let r = json["replacement"]?.stringValue ?? "▁"
            guard r.count == 1 else { throw LoomError("pre_tokenizer Metaspace: replacement must be one character") }
            self = .metaspace(
                replacement: r, prependScheme: try PrependScheme(metaspace: json, component: "pre_tokenizer"),
                split: json["split"]?.boolValue ?? true)
        case "Sequence":
            guard let list = json["pretokenizers"]?.arrayValue else { throw LoomError("pre_tokenizer Sequence without pretokenizers") }
            self = .sequence(try list.map { try PreTokenizer(json: $0) })
        default:
            throw LoomError("pre_tokenizer \(type) is not supported (ByteLevel, Split, Metaspace, Sequence)")
        }
    }

    var json: JSONValue {
        switch self {
        case .byteLevel(let a, let t, let r):
            return ["type": "ByteLevel", "add_prefix_space": .bool(a), "trim_offsets": .bool(t), "use_regex": .bool(r)]
        case .split(let pattern, let behavior, let invert):
            let pat: JSONValue
            if case .literal(let s) = pattern { pat = ["String": .string(s)] } else { pat = ["Regex": .string(pattern.regexText!)] }
            return ["type": "Split", "pattern": pat, "behavior": .string(behavior.rawValue), "invert": .bool(invert)]
        case .metaspace(let r, let scheme, let split):
            return ["type": "Metaspace", "replacement": .string(r), "prepend_scheme": .string(scheme.rawValue), "split": .bool(split)]
        case .sequence(let s):
            return ["type": "Sequence", "pretokenizers": .array(s.map { $0.json })]
        }
    }
}
