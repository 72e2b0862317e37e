// The options of every dedup command and pipeline step, with their defaults.

import LoomCore

public enum EmptyPolicy: String, Codable, Sendable, CaseIterable {
    /// Records whose normalised text is empty are kept (they never join a cluster).
    case keep
    /// They are dropped and counted in the manifest (`empty_dropped`).
    case drop
}

public struct DedupConfig: Codable, Equatable, Sendable {
    /// "minhash" or "exact" (pipeline steps; the subcommands set it).
    public var method = "minhash"
    public var textField = "text"
    public var idField = "id"
    public var nfkc = true
    public var casefold = true
    public var stripPunctuation = false
    public var collapseWhitespace = true
    public var shingle = ShingleKind.word
    public var ngram = 5
    public var numPerm = 128
    public var threshold = 0.8
    /// Explicit LSH bands x rows; both nil: chosen from the threshold.
    public var bands: Int?
    public var rows: Int?
    /// Weights of the false-positive and false-negative areas when bands x rows are chosen. nil: 0.05/0.95 with
    /// exact verification (a false candidate only costs one exact comparison), 0.5/0.5 with estimates
    /// (datasketch's default).
    public var falsePositiveWeight: Double?
    public var falseNegativeWeight: Double?
    public var verify = Verification.exact
    public var keep = KeepPolicy.first
    public var empty = EmptyPolicy.keep
    public var seed = 1

    public init() {}

    public static let keys = [
        "method", "text_field", "id_field", "nfkc", "casefold", "strip_punctuation", "collapse_whitespace", "shingle",
        "ngram", "num_perm", "threshold", "bands", "rows", "false_positive_weight", "false_negative_weight", "verify",
        "keep", "empty", "seed", "jobs",
    ]

    enum CodingKeys: String, CodingKey {
        case method, textField, idField, nfkc, casefold, stripPunctuation, collapseWhitespace, shingle, ngram
        case numPerm, threshold, bands, rows, falsePositiveWeight, falseNegativeWeight, verify, keep, empty, seed
    }

    /// Missing keys take their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DedupConfig()
        method = try c.decodeIfPresent(String.self, forKey: .method) ?? d.method
        textField = try c.decodeIfPresent(String.self, forKey: .textField) ?? d.textField
        idField = try c.decodeIfPresent(String.self, forKey: .idField) ?? d.idField
        nfkc = try c.decodeIfPresent(Bool.self, forKey: .nfkc) ?? d.nfkc
        casefold = try c.decodeIfPresent(Bool.self, forKey: .casefold) ?? d.casefold
        stripPunctuation = try c.decodeIfPresent(Bool.self, forKey: .stripPunctuation) ?? d.stripPunctuation
        collapseWhitespace = try c.decodeIfPresent(Bool.self, forKey: .collapseWhitespace) ?? d.collapseWhitespace
        shingle = try c.decodeIfPresent(ShingleKind.self, forKey: .shingle) ?? d.shingle
        ngram = try c.decodeIfPresent(Int.self, forKey: .ngram) ?? d.ngram
        numPerm = try c.decodeIfPresent(Int.self, forKey: .numPerm) ?? d.numPerm
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
        bands = try c.decodeIfPresent(Int.self, forKey: .bands)
        rows = try c.decodeIfPresent(Int.self, forKey: .rows)
        falsePositiveWeight = try c.decodeIfPresent(Double.self, forKey: .falsePositiveWeight)
        falseNegativeWeight = try c.decodeIfPresent(Double.self, forKey: .falseNegativeWeight)
        verify = try c.decodeIfPresent(Verification.self, forKey: .verify) ?? d.verify
        keep = try c.decodeIfPresent(KeepPolicy.self, forKey: .keep) ?? d.keep
        empty = try c.decodeIfPresent(EmptyPolicy.self, forKey: .empty) ?? d.empty
        seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? d.seed
    }

    public var normalization: Normalization {
        var n = Normalization()
        n.nfkc = nfkc
        n.casefold = casefold
        n.stripPunctuation = stripPunctuation
        n.collapseWhitespace = collapseWhitespace
        return n
    }

    /// Checks ranges; an error names the option.
    public func validate() throws {
        guard method == "minhash" || method == "exact" else {
            throw LoomError("dedup: unknown method '\(method)' (available: minhash, exact)")
        }
        guard ngram >= 1 else { throw LoomError("dedup: ngram must be at least 1") }
        guard numPerm >= 1 && numPerm <= 1024 else { throw LoomError("dedup: num_perm must be between 1 and 1024") }
        guard threshold > 0 && threshold <= 1 else { throw LoomError("dedup: threshold must be in (0, 1]") }
        guard !textField.isEmpty else { throw LoomError("dedup: text_field must not be empty") }
        guard seed >= 0 else { throw LoomError("dedup: seed must be at least 0") }
        switch (bands, rows) {
        case (nil, nil): break
        case (let b?, let r?):
            guard b >= 1, r >= 1, b * r <= numPerm else {
                throw LoomError("dedup: bands x rows (\(b) x \(r)) must be positive and at most num_perm (\(numPerm))")
            }
        default: throw LoomError("dedup: give both bands and rows, or neither")
        }
        for w in [falsePositiveWeight, falseNegativeWeight] {
            if let w, !(w >= 0 && w <= 1) { throw LoomError("dedup: LSH weights must be between 0 and 1") }
        }
    }

    /// Bands x rows: the explicit ones, or the optimum for the threshold (`resolved()` stores it).
    public var lsh: LSHParameters {
        if let bands, let rows { return LSHParameters(bands: bands, rows: rows) }
        if method == "exact" { return LSHParameters(bands: 0, rows: 0) }
        let fp = falsePositiveWeight ?? (verify == .exact ? 0.05 : 0.5)
        let fn = falseNegativeWeight ?? (1 - fp)
        return LSHParameters.optimal(threshold: threshold, numPerm: numPerm, fpWeight: fp, fnWeight: fn)
    }

    /// The config with bands and rows filled in (so the optimum is computed once).
    public func resolved() -> DedupConfig {
        var c = self
        if method == "minhash" && (bands == nil || rows == nil) {
            let p = lsh
            c.bands = p.bands
            c.rows = p.rows
        }
        return c
    }

    var scanSpec: ScanSpec {
        let exactMethod = method == "exact"
        return ScanSpec(
            textField: textField, idField: idField, normalization: normalization,
            shingler: Shingler(kind: shingle, n: ngram),
            hasher: exactMethod ? nil : MinHasher(numPerm: numPerm, seed: UInt64(seed)),
            lsh: exactMethod ? nil : lsh,
            keepShingles: !exactMethod && verify == .exact, contentHash: exactMethod)
    }

    /// The options hashed into a stage's fingerprint and written to its manifest (LSH parameters resolved).
    var json: JSONValue { (try? JSONValue(encoding: resolved())) ?? .null }
}
