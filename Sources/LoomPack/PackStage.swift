// `loom pack`: samples packed into context windows of `--context-tokens`, so no window is wasted on padding.
// Each output record is one window holding its member records whole (the trainer puts a document boundary between
// them, so attention never crosses samples).

import Foundation
import LoomCore

public struct PackConfig: Codable, Equatable, Sendable {
    public var contextTokens = 4096
    /// Samples longer than the context: "split" (into word windows of at most the context) or "reject".
    public var overlong = "split"
    /// Tokens per word for the estimate used when no tokenizer is given.
    public var tokensPerWord = 1.3
    /// A tokenizer.json (LoomTokenizer) for exact token lengths; nil: the word estimate.
    public var tokenizer: String?

    public init() {}

    public static let keys = ["context_tokens", "overlong", "tokens_per_word", "tokenizer"]

    enum CodingKeys: String, CodingKey { case contextTokens, overlong, tokensPerWord, tokenizer }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        contextTokens = try c.decodeIfPresent(Int.self, forKey: .contextTokens) ?? 4096
        overlong = try c.decodeIfPresent(String.self, forKey: .overlong) ?? "split"
        tokensPerWord = try c.decodeIfPresent(Double.self, forKey: .tokensPerWord) ?? 1.3
        tokenizer = try c.decodeIfPresent(String.self, forKey: .tokenizer)
    }

    /// The token estimate of a text: words times `tokensPerWord`, rounded up (at least 1).
    public func tokens(_ text: String) -> Int {
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        return max(1, Int((Double(words) * tokensPerWord).rounded(.up)))
    }
}

public struct PackStage: Stage {
    public let settings: PackConfig
    public let input: String

    public init(config: PackConfig, input: String) throws {
        guard config.contextTokens >= 16 else { throw LoomError("pack: context_tokens must be at least 16") }
        guard ["split", "reject"].contains(config.overlong) else {
            throw LoomError("pack: overlong must be split or reject (got '\(config.overlong)')")
        }
        guard config.tokensPerWord > 0 else { throw LoomError("pack: tokens_per_word must be positive") }
        settings = config
        self.input = input
    }

    public var name: String { "pack" }
    public var config: JSONValue { (try? JSONValue(encoding: settings)) ?? .null }
    public var inputs: [StageInput] { [.stage(input)] }

    /// The text a record contributes: `text`, or its messages' contents.
    static func text(of r: JSONValue) -> String? {
        if let t = r["text"]?.stringValue { return t }
        if let m = r["messages"]?.arrayValue {
            return m.compactMap { $0["content"]?.stringValue }.joined(separator: "\n")
        }
        if let p = r["prompt"]?.stringValue, let c = r["chosen"]?.stringValue { return p + "\n" + c }
        return nil
    }

    public func run(_ ctx: StageContext) throws {
        let cap = settings.contextTokens
        let counter = try TokenCounter(tokenizer: settings.tokenizer, tokensPerWord: settings.tokensPerWord)
        var records: [JSONValue] = []
        var lengths: [Int] = []
        var split = 0
        try StageReader(directory: input).forEachRecord(
            { r, path, line in
                guard let text = PackStage.text(of: r) else {
                    try ctx.reject(Reject(source: path, reason: "record has no text, messages or prompt/chosen", line: line))
                    return
                }
                let n = counter.count(text)
                if n <= cap {
                    records.append(r)
                    lengths.append(n)
                    return
                }
                guard settings.overlong == "split", r["text"]?.stringValue != nil else {
                    try ctx.reject(
                        Reject(
                            source: path, reason: "sample of about \(n) tokens is longer than the context (\(cap))",
                            line: line, id: r["id"]?.stringValue))
                    return
                }
                // Word windows that fit, each a record of its own with the part number in its id: as many words as
                // the sample's own tokens per word allow, fewer while a window still counts more than the context.
                let words = text.split(whereSeparator: { $0.isWhitespace })
                let ratio = max(1e-9, Double(n) / Double(max(1, words.count)))
                var part = 0
                var start = 0
                while start < words.count {
                    var per = max(1, Int(Double(cap) / ratio))
                    var piece = words[start..<min(words.count, start + per)].joined(separator: " ")
                    var len = counter.count(piece)
                    while len > cap && per > 1 {
                        per = max(1, per * 9 / 10)
                        piece = words[start..<min(words.count, start + per)].joined(separator: " ")
                        len = counter.count(piece)
                    }
                    guard case .object(var o) = r else { break }
                    o["id"] = .string("\(r["id"]?.stringValue ?? "\(path):\(line)")#part\(part)")
                    o["text"] = .string(piece)
                    records.append(.object(o))
                    lengths.append(min(cap, len))
                    part += 1
                    start += per
                }
                split += 1
            }, bad: { e, path, line in try ctx.reject(Reject(source: path, reason: "not a JSON record: \(e)", line: line)) })
        ctx.progress.begin(totalBytes: nil, unit: "windows")
        let result = lengths.isEmpty ? PackResult(bins: [], capacity: cap, tokens: 0) : Packer.knapsack(lengths, capacity: cap)
        let ffd = lengths.isEmpty ? result : Packer.firstFitDecreasing(lengths, capacity: cap)
        for (n, bin) in result.bins.enumerated() {
            var o = JSONObject()
            o.append("id", .string("pack-\(String(n).leftPadded(8))"))
            o.append("tokens", .int(bin.reduce(0) { $0 + lengths[$1] }))
            o.append("capacity", .int(cap))
            o.append("lengths", .array(bin.map { .int(lengths[$0]) }))
            o.append("members", .array(bin.map { records[$0] }))
            try ctx.output.write(.object(o))
            ctx.progress.add(items: 1)
        }
        ctx.setCount("samples", records.count)
        ctx.setCount("windows", result.bins.count)
        ctx.setCount("ffd_windows", ffd.bins.count)
        ctx.setCount("split_samples", split)
        ctx.setValue("packing_efficiency", .double((result.efficiency * 1e6).rounded() / 1e6))
        ctx.setValue("ffd_efficiency", .double((ffd.efficiency * 1e6).rounded() / 1e6))
        ctx.setValue("token_lengths", .string(counter.name))
    }
}
