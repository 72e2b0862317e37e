import ArgumentParser
import LoomCore
import LoomEval

struct SplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Split records into train, validation and test by document, so no document is on two sides.",
        discussion: """
            Every record goes to the side of its document, chosen by a hash of
            the document key and --seed: all chunks of a document, every task
            generated from them, and (with --duplicates) every near-duplicate
            of it land on the same side, so a test score never rewards
            memorising training text.

            The document key is --key (a field, dotted for nested ones:
            meta.pmid), or by default doc_id, else the ids in meta.provenance,
            else id; default keys are cut at their first '#', which maps Loom's
            derived ids (chunk "D#3", task "D#3#rc") to their document. A
            record naming several documents (a cluster record) keeps them
            together. A record with no key goes to rejects.jsonl.

            Output: OUT/train, OUT/validation and OUT/test, each a finished
            stage directory that any command reads (loom generate rc OUT/test,
            loom train ... OUT/train). OUT/manifest.json counts the records and
            documents of each side. Records are copied unchanged.

            Examples:
              loom split out/chunks -o out/split
              loom split out/ingest -o out/split --ratios 0.9,0,0.1 --seed 7
              loom split out/ingest -o out/split --duplicates out/dedup/duplicates.jsonl
            """)

    @Argument(help: "Records to split: a stage directory, a folder of .jsonl files or one .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "The field that names a record's document, e.g. doc_id or meta.pmid (default: see above).")
    var key: String?

    @Option(help: "Shares of train,validation,test, adding up to 1; validation may be 0.")
    var ratios = "0.8,0.1,0.1"

    @Option(help: "Mixed into the hash: another seed gives another split of the same documents.")
    var seed = 1

    @Option(
        help: """
            dedup's duplicates.jsonl: a record whose document was clustered with others goes where the \
            cluster's kept document goes (its ids must be the same keys: record ids, or the --key field \
            dedup was given as --id-field).
            """)
    var duplicates: String?

    func run() throws {
        try runStage(
            {
                var c = SplitConfig()
                c.key = key
                c.ratios = try SplitConfig.parseRatios(ratios)
                c.seed = seed
                c.duplicates = duplicates
                return try SplitStage(config: c, input: input)
            }, options: stage)
    }
}
