import ArgumentParser
import Foundation
import LoomCore
import LoomDedup

struct Dedup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove exact and near-duplicate records.",
        discussion: """
            minhash finds near-duplicates (word 5-gram MinHash, LSH, exact
            Jaccard check); exact removes records whose normalised text is
            identical. Both keep one record per cluster and write
            duplicates.jsonl so every removal can be audited.

            For corpora larger than one machine, run minhash-signatures on each
            shard, minhash-clusters once over all of them, and apply on each
            shard: the kept set is the same as one 'dedup minhash' run.
            """,
        subcommands: [
            DedupMinHash.self, DedupExact.self, DedupSignatures.self, DedupClusters.self, DedupApply.self,
            DedupBandKeys.self, DedupVerifyPairs.self,
        ])
}

/// How records are read and their text normalised (every dedup command that reads records).
struct DedupTextOptions: ParsableArguments {
    @Option(
        help: """
            The field holding the text to compare. With the default, records without 'text' are compared by \
            their turns: 'messages' (SFT), 'prompt'/'chosen'/'rejected' (preference) or 'instruction'/'input'/'output'.
            """)
    var textField = "text"

    @Option(help: "The field holding the record's id (reported in duplicates.jsonl; FILE:LINE when absent).")
    var idField = "id"

    @Flag(inversion: .prefixedNo, help: "Unicode NFKC normalisation before comparing.")
    var nfkc = true

    @Flag(inversion: .prefixedNo, help: "Case folding before comparing.")
    var casefold = true

    @Flag(help: "Replace punctuation with spaces before comparing (off: 'cells.' and 'cells' differ).")
    var stripPunctuation = false

    @Flag(
        inversion: .prefixedNo,
        help: "Collapse whitespace runs to one space (off: tokens are exactly text.split(\" \")).")
    var collapseWhitespace = true

    @Option(help: "Records whose normalised text is empty: keep or drop.")
    var empty: EmptyPolicy = .keep

    @Option(help: "Which record of a cluster stays: first (in input order) or longest (ties: first).")
    var keep: KeepPolicy = .first

    func apply(to c: inout DedupConfig) {
        c.textField = textField
        c.idField = idField
        c.nfkc = nfkc
        c.casefold = casefold
        c.stripPunctuation = stripPunctuation
        c.collapseWhitespace = collapseWhitespace
        c.empty = empty
        c.keep = keep
    }
}

/// MinHash and LSH options.
struct MinHashOptions: ParsableArguments {
    @Option(help: "Similarity at or above which two records are duplicates (Jaccard of their shingle sets).")
    var threshold = 0.8

    @Option(help: "Shingles: word n-grams or char n-grams.")
    var shingle: ShingleKind = .word

    @Option(help: "Shingle length n.")
    var ngram = 5

    @Option(help: "MinHash permutations.")
    var numPerm = 128

    @Option(help: "LSH bands (with --rows; default: chosen for --threshold).")
    var bands: Int?

    @Option(help: "LSH rows per band (with --bands).")
    var rows: Int?

    @Option(help: "How candidate pairs are confirmed: exact (Jaccard of the shingle sets) or estimate (MinHash).")
    var verify: Verification = .exact

    @Option(help: "Seed of the MinHash permutations.")
    var seed = 1

    func apply(to c: inout DedupConfig) {
        c.threshold = threshold
        c.shingle = shingle
        c.ngram = ngram
        c.numPerm = numPerm
        c.bands = bands
        c.rows = rows
        c.verify = verify
        c.seed = seed
    }
}

struct DedupMinHash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minhash",
        abstract: "Remove near-duplicates: MinHash signatures, LSH candidates, exact Jaccard check, clusters.",
        discussion: """
            Texts are normalised (NFKC, case folding, whitespace), cut into
            word 5-grams and hashed into --num-perm MinHash slots. LSH bands x
            rows are chosen for --threshold so that nearly every pair above it
            becomes a candidate; each candidate is then checked with the exact
            Jaccard similarity of the two shingle sets (--verify estimate uses
            the MinHash estimate instead: faster, noisier). Confirmed pairs are
            joined into clusters and one record of each is kept.

            Output: the kept records (unchanged lines, input order),
            duplicates.jsonl (per cluster: kept id, removed ids with their
            similarity to it), pairs.jsonl (every confirmed pair).

            Example:
              loom dedup minhash out/chunks -o out/dedup --threshold 0.8
            """)

    @Argument(help: "Stage directories, JSON Lines files, or directories of .jsonl files.")
    var inputs: [String]

    @OptionGroup var stage: StageOptions
    @OptionGroup var text: DedupTextOptions
    @OptionGroup var minhash: MinHashOptions

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        var c = DedupConfig()
        c.method = "minhash"
        text.apply(to: &c)
        minhash.apply(to: &c)
        try runStage(
            { try DedupStage(config: c, paths: inputs, jobs: jobCount(jobs)) },
            options: stage)
    }
}

struct DedupExact: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exact",
        abstract: "Remove records whose normalised text is identical (128-bit content hash).",
        discussion: """
            Example:
              loom dedup exact out/generate -o out/exact --no-casefold
            """)

    @Argument(help: "Stage directories, JSON Lines files, or directories of .jsonl files.")
    var inputs: [String]

    @OptionGroup var stage: StageOptions
    @OptionGroup var text: DedupTextOptions

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        var c = DedupConfig()
        c.method = "exact"
        text.apply(to: &c)
        try runStage(
            { try DedupStage(config: c, paths: inputs, jobs: jobCount(jobs)) },
            options: stage)
    }
}

struct DedupSignatures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minhash-signatures",
        abstract: "Sharded step 1: signatures and LSH band keys of one shard of the input.",
        discussion: """
            Shard i/N holds the records whose first byte lies in the i-th of N
            equal slices of all input bytes (files in the order given). Give
            every shard the same inputs and options.

            Example (4 shards, then join and apply):
              for i in 0 1 2 3; do
                loom dedup minhash-signatures corpus/ --shard $i/4 -o sig/$i
              done
              loom dedup minhash-clusters sig/0 sig/1 sig/2 sig/3 -o clusters
              for i in 0 1 2 3; do
                loom dedup apply sig/$i --clusters clusters -o kept/$i
              done
            """)

    @Argument(help: "Stage directories, JSON Lines files, or directories of .jsonl files.")
    var inputs: [String]

    @Option(help: "Which shard, as i/N with 0 <= i < N.")
    var shard: String

    @OptionGroup var stage: StageOptions
    @OptionGroup var text: DedupTextOptions
    @OptionGroup var minhash: MinHashOptions

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        var c = DedupConfig()
        text.apply(to: &c)
        minhash.apply(to: &c)
        let s = try ShardSpec(parsing: shard)
        try runStage(
            {
                try SignaturesStage(
                    config: c, paths: inputs, shard: s, jobs: jobCount(jobs))
            }, options: stage)
    }
}

struct DedupClusters: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minhash-clusters",
        abstract: "Sharded step 2: join the shards' band keys, confirm pairs, and compute clusters.",
        discussion: """
            Takes the output directories of minhash-signatures for shards 0..N-1
            (any order). Writes duplicates.jsonl and pairs.jsonl for the whole
            corpus and the removal list 'apply' reads.
            """)

    @Argument(help: "The minhash-signatures output directories, one per shard.")
    var signatures: [String]

    @OptionGroup var stage: StageOptions

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        try runStage(
            {
                try ClustersStage(
                    signatures: signatures, jobs: jobCount(jobs))
            }, options: stage)
    }
}

struct DedupApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Sharded step 3: write one shard's kept records.",
        discussion: """
            With --removed instead of --clusters, the removed documents come
            from a file (numbers inside the shard, one a line), e.g. written by
            the Spark driver in integrations/spark.

            Example:
              loom dedup apply sig/2 --clusters clusters -o kept/2
              loom dedup apply sig/2 --removed removed/2.txt -o kept/2
            """)

    @Argument(help: "The shard's minhash-signatures output directory.")
    var signatures: String

    @Option(help: "The minhash-clusters output directory.")
    var clusters: String?

    @Option(help: "A file of the shard's removed document numbers, one a line (instead of --clusters).")
    var removed: String?

    @OptionGroup var stage: StageOptions

    func run() throws {
        switch (clusters, removed) {
        case (let c?, nil):
            try runStage({ try ApplyStage(signatures: signatures, clusters: c) }, options: stage)
        case (nil, let r?):
            try runStage({ try RemovedListApplyStage(signatures: signatures, removed: r) }, options: stage)
        default:
            throw ValidationError("give exactly one of --clusters DIR and --removed FILE")
        }
    }
}

extension ShingleKind: ExpressibleByArgument {}
extension Verification: ExpressibleByArgument {}
extension KeepPolicy: ExpressibleByArgument {}
extension EmptyPolicy: ExpressibleByArgument {}
