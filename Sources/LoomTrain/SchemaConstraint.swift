// Constrained decoding from a JSON schema: the TokenConstraint that keeps a generation a prefix of a compact JSON
// document matching the schema (LoomGrammar's matcher and token mask over the codec's vocabulary).
//
//   let trie = SchemaConstraint.trie(for: codec, vocabSize: model.config.vocabSize)   // once per vocabulary
//   let grammar = try JSONSchemaGrammar(schema: schema)                               // once per schema
//   let c = SchemaConstraint(mask: TokenMask(grammar: grammar, trie: trie))           // one per generation
//   try chat.reply(messages, options: o, constraint: c)

import Foundation
import LoomCore
import LoomGrammar

public final class SchemaConstraint: TokenConstraint {
    public let mask: TokenMask
    public private(set) var matcher: GrammarMatcher
    /// A token that the matcher refused (a bug, never expected): nothing is allowed after it.
    public private(set) var failed = false

    public init(mask: TokenMask) {
        self.mask = mask
        matcher = GrammarMatcher(mask.grammar)
    }

    /// The token trie of a codec's vocabulary (`vocabSize`: the model's, which may be larger than the codec's).
    public static func trie(for codec: TokenCodec, vocabSize: Int? = nil) -> TokenTrie {
        let n = codec.vocabSize
        return TokenTrie(tokens: (0..<n).map { codec.tokenBytes(Int32($0)) }, vocabSize: max(n, vocabSize ?? n))
    }

    public func allowedTokens(_ allowed: UnsafeMutablePointer<UInt64>, vocabSize: Int) {
        guard !failed else { return }
        if vocabSize >= mask.vocabSize {
            mask.fill(matcher, allowed)
        } else {
            // The logits are narrower than the vocabulary the trie was built for: mask into scratch, then copy.
            let bits = mask.mask(matcher)
            for w in 0..<(vocabSize + 63) / 64 { allowed[w] |= bits[w] }
            if vocabSize % 64 != 0 { allowed[vocabSize / 64] &= (1 << UInt64(vocabSize % 64)) - 1 }
        }
    }

    public func accept(_ token: Int32) {
        guard !failed else { return }
        guard Int(token) < mask.trie.tokens.count, let bytes = mask.trie.tokens[Int(token)], matcher.feed(bytes) else {
            failed = true
            return
        }
    }

    public var isComplete: Bool { !failed && matcher.isComplete }
    public var mustStop: Bool { !failed && matcher.mustStop }
}

/// Compiled grammars and token tries, kept so a schema or a vocabulary is prepared once per process.
public final class SchemaConstraintCache: @unchecked Sendable {
    private let lock = NSLock()
    private var grammars: [String: JSONSchemaGrammar] = [:]
    private var masks: [String: TokenMask] = [:]
    private var trie: TokenTrie?
    private let makeTrie: () -> TokenTrie

    public init(makeTrie: @escaping () -> TokenTrie) { self.makeTrie = makeTrie }

    /// A new constraint for `schema` (its grammar and mask compiled on first use).
    public func constraint(for schema: JSONValue) throws -> SchemaConstraint {
        let key = schema.jsonString
        let m: TokenMask = try lock.withLock {
            if let m = masks[key] { return m }
            let t = trie ?? makeTrie()
            trie = t
            let g = try grammars[key] ?? JSONSchemaGrammar(schema: schema)
            grammars[key] = g
            let m = TokenMask(grammar: g, trie: t)
            masks[key] = m
            return m
        }
        return SchemaConstraint(mask: m)
    }
}
