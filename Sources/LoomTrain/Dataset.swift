// Training rows from stage records. A record becomes one or more segments (a document's tokens and which of them
// carry loss); segments are laid into rows of `length` tokens:
//   - `text` records (CPT): bos + text + eos, loss on every token;
//   - `messages` records (SFT, TRL's conversational format; `instruction`/`input`/`output` converted): the chat
//     template's text, loss on the assistant turns only;
//   - packed windows (`loom pack` output, `members`): each member a segment, the window one row of its own.
//   - `prompt`/`chosen`/`rejected` records (DPO, ORPO; Preference.swift): two segments per pair, kept in one row.
// Loose segments are packed greedily into rows in input order. Inside a row every segment is its own document:
// positions restart and attention stays inside it (Batch.segStart), so packing changes no loss.

import Foundation
import LoomCore
import LoomTokenizer

/// What the dataset needs of a tokenizer.
public protocol TokenCodec: Sendable {
    var vocabSize: Int { get }
    func encode(_ text: String) -> [Int32]
    func decode(_ ids: [Int32]) -> String
    /// Token that starts a document (nil: none is added).
    var bosId: Int32? { get }
    /// Token that ends a document (and a chat turn when the template has no end-of-turn token).
    var eosId: Int32 { get }
    var padId: Int32 { get }
    /// The id of a special token given by its text (e.g. "<|im_start|>"), if the vocabulary has it.
    func specialId(_ text: String) -> Int32?
    /// The bytes a token adds to decoded text (nil: a special or control token, never part of text). Constrained
    /// decoding matches these against the grammar.
    func tokenBytes(_ id: Int32) -> [UInt8]?
}

/// A byte-level vocabulary: ids 0-255 are bytes, then <|endoftext|>, <|im_start|>, <|im_end|>. Enough to train end
/// to end without a trained tokenizer.
public struct ByteCodec: TokenCodec {
    public static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    public init() {}
    public var vocabSize: Int { 256 + ByteCodec.specials.count }
    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        var out = ""
        for id in ids {
            if id < 256 { bytes.append(UInt8(id)); continue }
            out += String(decoding: bytes, as: UTF8.self)
            bytes = []
            let s = Int(id) - 256
            out += s < ByteCodec.specials.count ? ByteCodec.specials[s] : ""
        }
        return out + String(decoding: bytes, as: UTF8.self)
    }
    public var bosId: Int32? { nil }
    public var eosId: Int32 { 256 }
    public var padId: Int32 { 256 }
    public func specialId(_ text: String) -> Int32? { ByteCodec.specials.firstIndex(of: text).map { Int32(256 + $0) } }
    public func tokenBytes(_ id: Int32) -> [UInt8]? { id >= 0 && id < 256 ? [UInt8(id)] : nil }
}

/// One document's tokens; `loss[i]` says whether token i is a target (predicted from the tokens before it).
public struct Segment: Equatable, Sendable {
    public var tokens: [Int32]
    public var loss: [Bool]
    public init(tokens: [Int32], loss: [Bool]) {
        self.tokens = tokens
        self.loss = loss
    }
}

/// A row: segments laid end to end (at most the row length), padded when built into a batch.
public struct Row: Equatable, Sendable {
    public var segments: [Segment]
    public var tokenCount: Int { segments.reduce(0) { $0 + $1.tokens.count } }
}

public enum Objective: String, Sendable, CaseIterable {
    case cpt, sft, dpo, orpo

    /// DPO and ORPO train on prompt/chosen/rejected pairs (Preference.swift), not on token targets.
    public var isPreference: Bool { self == .dpo || self == .orpo }
}

public struct DatasetBuilder {
    public let codec: TokenCodec
    public let objective: Objective
    public let length: Int
    public let chat: ChatFormat

    public init(codec: TokenCodec, objective: Objective, length: Int, chat: ChatFormat = .chatML) {
        self.codec = codec
        self.objective = objective
        self.length = length
        self.chat = chat
    }

    /// A text record's segment: bos + text + eos, every token a target.
    public func textSegment(_ text: String) -> Segment {
        var t: [Int32] = []
        if let b = codec.bosId { t.append(b) }
        t += codec.encode(text)
        t.append(codec.eosId)
        return Segment(tokens: t, loss: [Bool](repeating: true, count: t.count))
    }

    /// A conversation's segment through the chat template, targets on the assistant turns only.
    public func chatSegment(_ messages: [(role: String, content: String)]) -> Segment {
        var t: [Int32] = [], loss: [Bool] = []
        let pieces = chat.render(messages)
        // The start-of-text token, unless the template begins with it (Gemma's <bos>, Llama 3's <|begin_of_text|>).
        var beginsWithBOS = false
        if case .special(let s)? = pieces.first?.parts.first, let b = codec.bosId, codec.specialId(s) == b { beginsWithBOS = true }
        if let b = codec.bosId, !beginsWithBOS {
            t.append(b)
            loss.append(false)
        }
        for piece in pieces {
            var ids: [Int32] = []
            for part in piece.parts {
                switch part {
                case .text(let s): ids += codec.encode(s)
                case .special(let s): ids.append(codec.specialId(s) ?? codec.eosId)
                }
            }
            t += ids
            loss += [Bool](repeating: piece.trained, count: ids.count)
        }
        return Segment(tokens: t, loss: loss)
    }

    /// The tokens of a conversation followed by the opening of an assistant turn: what a model continues to reply.
    public func promptTokens(_ messages: [(role: String, content: String)]) -> [Int32] {
        var t = chatSegment(messages).tokens
        // The assistant turn's opening: the piece after what the template begins every conversation with.
        let begin = chat.render([]).count
        for part in chat.render([(role: "assistant", content: "")]).dropFirst(begin).first?.parts ?? [] {
            switch part {
            case .text(let s): t += codec.encode(s)
            case .special(let s): t.append(codec.specialId(s) ?? codec.eosId)
            }
        }
        return t
    }

    /// The segments of one record, or a reason it cannot be used.
    public func segments(of r: JSONValue) -> Result<[Segment], LoomError> {
        if let members = r["members"]?.arrayValue {
            var out: [Segment] = []
            for m in members {
                switch segments(of: m) {
                case .success(let s): out += s
                case .failure(let e): return .failure(e)
                }
            }
            return .success(out)
        }
        switch objective {
        case .cpt:
            if let t = r["text"]?.stringValue { return .success([textSegment(t)]) }
            if let m = DatasetBuilder.messages(r) { return .success([textSegment(m.map(\.content).joined(separator: "\n"))]) }
            return .failure(LoomError("record has no 'text' (continued pre-training reads text records)"))
        case .sft:
            guard let m = DatasetBuilder.messages(r) else {
                // Plain text mixed into SFT data (domain text beside the tasks mined from it, as AdaptLLM mixes them)
                // is learned on every token, as continued pre-training learns it.
                if let t = r["text"]?.stringValue { return .success([textSegment(t)]) }
                return .failure(LoomError("record has no 'messages', 'instruction'/'output' or 'text' (SFT reads conversations, and text as in continued pre-training)"))
            }
            guard m.contains(where: { $0.role == "assistant" }) else {
                return .failure(LoomError("conversation has no assistant message to learn from"))
            }
            return .success([chatSegment(m)])
        case .dpo, .orpo:
            return preferencePair(of: r).map { [$0.chosen, $0.rejected] }
        }
    }

    /// `messages` as (role, content), or `instruction`/`input`/`output` converted (Alpaca style).
    public static func messages(_ r: JSONValue) -> [(role: String, content: String)]? {
        if let ms = r["messages"]?.arrayValue {
            let out = ms.compactMap { m -> (role: String, content: String)? in
                guard let role = m["role"]?.stringValue, let content = m["content"]?.stringValue else { return nil }
                return (role, content)
            }
            return out.count == ms.count && !out.isEmpty ? out : nil
        }
        if let ins = r["instruction"]?.stringValue, let out = r["output"]?.stringValue {
            let input = r["input"]?.stringValue ?? ""
            return [("user", input.isEmpty ? ins : ins + "\n\n" + input), ("assistant", out)]
        }
        return nil
    }

    /// Cuts a segment longer than a row into row-sized pieces (each its own document).
    func fit(_ s: Segment) -> [Segment] {
        if s.tokens.count <= length { return [s] }
        return stride(from: 0, to: s.tokens.count, by: length).map { i in
            let j = min(s.tokens.count, i + length)
            return Segment(tokens: Array(s.tokens[i..<j]), loss: Array(s.loss[i..<j]))
        }
    }

    /// Rows from records in order: a packed window is one row (cut to the length); other records' segments are
    /// packed greedily. Segments with fewer than two tokens or no target are dropped (nothing to learn).
    public func rows(_ records: [(record: JSONValue, window: Bool)]) -> [Row] {
        var rows: [Row] = []
        var open = Row(segments: [])
        func useful(_ s: Segment) -> Bool { s.tokens.count >= 2 && s.loss.dropFirst().contains(true) }
        for (r, window) in records {
            guard case .success(let segs) = segments(of: r) else { continue }
            if window {
                var row = Row(segments: [])
                for s in segs.flatMap(fit) where useful(s) {
                    let room = length - row.tokenCount
                    if room <= 1 { break }
                    let piece = s.tokens.count <= room ? s : Segment(tokens: Array(s.tokens.prefix(room)), loss: Array(s.loss.prefix(room)))
                    if useful(piece) { row.segments.append(piece) }
                }
                if !row.segments.isEmpty { rows.append(row) }
                continue
            }
            for s in segs.flatMap(fit) where useful(s) {
                if open.tokenCount + s.tokens.count > length {
                    rows.append(open)
                    open = Row(segments: [])
                }
                open.segments.append(s)
            }
        }
        if !open.segments.isEmpty { rows.append(open) }
        return rows
    }

    /// A batch of rows, padded to `length`.
    public func batch(_ rows: [Row]) -> Batch {
        let T = length
        var tokens = [Int32](repeating: codec.padId, count: rows.count * T)
        var targets = [Int32](repeating: -1, count: rows.count * T)
        var positions = [Int32](repeating: 0, count: rows.count * T)
        var seg = [Int32](repeating: 0, count: rows.count * T)
        for (b, row) in rows.enumerated() {
            var at = 0
            for s in row.segments {
                for (i, tok) in s.tokens.enumerated() {
                    let n = b * T + at + i
                    tokens[n] = tok
                    positions[n] = Int32(i)
                    seg[n] = Int32(at)
                    if i + 1 < s.tokens.count, s.loss[i + 1] { targets[n] = s.tokens[i + 1] }
                }
                at += s.tokens.count
            }
            // Padding: each pad token its own document, no targets.
            for t in at..<T {
                positions[b * T + t] = 0
                seg[b * T + t] = Int32(t)
            }
        }
        return Batch(rows: rows.count, length: T, tokens: tokens, targets: targets, positions: positions, segStart: seg)
    }
}

/// How a conversation becomes text: pieces of literal text and special tokens, each trained or not.
public struct ChatFormat: Sendable {
    public enum Part: Equatable, Sendable {
        case text(String)
        case special(String)
    }
    public struct Piece: Equatable, Sendable {
        public var parts: [Part]
        public var trained: Bool
    }
    public let name: String
    public let render: @Sendable ([(role: String, content: String)]) -> [Piece]

    public init(name: String, render: @escaping @Sendable ([(role: String, content: String)]) -> [Piece]) {
        self.name = name
        self.render = render
    }

    /// A chat template from templates/chat (LoomTokenizer's ChatTemplate: prefix, suffix and trailer per role, its
    /// special tokens): the prefix and trailer of every turn are not trained; the content and suffix of the
    /// template's trained roles (the assistant) are.
    public init(template t: ChatTemplate) {
        let specials = t.specialTokens.sorted { $0.count > $1.count }
        @Sendable func parts(_ s: String) -> [Part] {
            var out: [Part] = []
            var rest = Substring(s)
            while !rest.isEmpty {
                // The earliest special token in what is left (longest first at equal positions).
                var best: (Range<Substring.Index>, String)?
                for sp in specials {
                    if let r = rest.range(of: sp), best == nil || r.lowerBound < best!.0.lowerBound { best = (r, sp) }
                }
                guard let (r, sp) = best else {
                    out.append(.text(String(rest)))
                    break
                }
                if r.lowerBound > rest.startIndex { out.append(.text(String(rest[rest.startIndex..<r.lowerBound]))) }
                out.append(.special(sp))
                rest = rest[r.upperBound...]
            }
            return out
        }
        self.init(name: t.name) { messages in
            var out: [Piece] = []
            if !t.begin.isEmpty { out.append(Piece(parts: parts(t.begin), trained: false)) }
            for m in t.arranged(messages.map { ChatMessage(role: $0.role, content: $0.content) }) {
                // Roles the template does not name are rendered as user turns (never trained).
                guard let r = t.roles[m.role] ?? t.roles["user"] else { continue }
                let content = t.trimContent ? m.content.trimmingCharacters(in: .whitespacesAndNewlines) : m.content
                out.append(Piece(parts: parts(r.prefix), trained: false))
                out.append(Piece(parts: [.text(content)] + parts(r.suffix), trained: t.trainedRoles.contains(m.role)))
                if !r.after.isEmpty { out.append(Piece(parts: parts(r.after), trained: false)) }
            }
            return out
        }
    }

    /// templates/chat/NAME.json (or a template file path).
    public static func named(_ name: String) throws -> ChatFormat {
        if name.hasSuffix(".json") { return ChatFormat(template: try ChatTemplate.load(name)) }
        return ChatFormat(template: try ChatTemplate.named(name, templates: try TemplateDirectory.locate()))
    }

    /// The template a tokenizer's vocabulary was made for: Gemma's turns where it has `<start_of_turn>`, Llama 3's
    /// headers where it has `<|start_header_id|>`, else ChatML (Qwen's, and what Loom's own models train with).
    public static func forVocabulary(_ codec: TokenCodec) throws -> ChatFormat {
        if codec.specialId("<start_of_turn>") != nil { return try named("gemma") }
        if codec.specialId("<|start_header_id|>") != nil, codec.specialId("<|im_start|>") == nil { return try named("llama3") }
        return chatML
    }

    /// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, Qwen's and TRL's default) from templates/chat/chatml.json;
    /// `builtInChatML` only where no templates/ directory can be found (a test keeps the two identical).
    public static let chatML: ChatFormat = (try? named("chatml")) ?? builtInChatML

    static let builtInChatML = ChatFormat(
        template: ChatTemplate(
            name: "chatml",
            roles: Dictionary(uniqueKeysWithValues: ["system", "user", "assistant", "tool"].map {
                ($0, ChatTemplate.Role(prefix: "<|im_start|>\($0)\n", suffix: "<|im_end|>", after: "\n"))
            }),
            generationPrompt: "<|im_start|>assistant\n", specialTokens: ["<|im_start|>", "<|im_end|>"]))
}

/// A Hugging Face tokenizer.json (LoomTokenizer) as the dataset's codec: end-of-text from the usual special
/// tokens (`<|endoftext|>`, `</s>`, `<|end_of_text|>`), beginning-of-text where the vocabulary has one.
public struct TokenizerCodec: TokenCodec {
    public let tokenizer: Tokenizer
    public let bosId: Int32?
    public let eosId: Int32
    public let padId: Int32

    public init(_ tokenizer: Tokenizer, source: String) throws {
        self.tokenizer = tokenizer
        // Gemma's vocabulary also holds <s> and </s> (as plain added tokens): its own <bos> and <eos> come first.
        let eos = ["<eos>", "<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>"].lazy.compactMap { tokenizer.id(ofSpecial: $0) }.first
        guard let eos else {
            throw LoomError("\(source): the tokenizer has no end-of-text token (<|endoftext|>, </s> or <|end_of_text|>) to end documents with")
        }
        eosId = eos
        bosId = ["<bos>", "<s>", "<|begin_of_text|>"].lazy.compactMap { tokenizer.id(ofSpecial: $0) }.first
        padId = ["<pad>", "<|pad|>"].lazy.compactMap { tokenizer.id(ofSpecial: $0) }.first ?? eos
    }

    public static func load(_ path: String) throws -> TokenizerCodec { try TokenizerCodec(Tokenizer.load(path), source: path) }

    public var vocabSize: Int { tokenizer.vocabSize }
    public func encode(_ text: String) -> [Int32] { tokenizer.encode(text) }
    public func decode(_ ids: [Int32]) -> String { tokenizer.decode(ids) }
    public func specialId(_ text: String) -> Int32? { tokenizer.id(ofSpecial: text) }
    public func tokenBytes(_ id: Int32) -> [UInt8]? { tokenizer.tokenBytes(of: id) }
}
