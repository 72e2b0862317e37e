import ArgumentParser
import LoomCore
import LoomEval

struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Build multiple-choice evaluation items from the domain's own documents (no model needed).",
        discussion: """
            Each item is {"id", "doc_id", "task", "context", "choices",
            "gold"}, with meta.provenance naming the record it came from; loom
            eval scores " " + each choice after the context. Build the items
            from the test side of 'loom split' so they test documents the model
            was not trained on. Phrasings are in templates/tasks/.
            """,
        subcommands: [TasksRCT.self, TasksCloze.self])
}

/// Options both task builders take.
struct TasksOptions: ParsableArguments {
    @Option(help: "Most items to write, in input order (default: all).")
    var maxItems: Int?

    @Option(help: "Seed of every random choice (same seed and input: the same items).")
    var seed = 1

    @Option(help: "Templates directory (default: Loom's templates/; the phrasings are tasks/*.yaml).")
    var templates: String?

    func config(_ kind: String) -> TasksConfig {
        var c = TasksConfig(kind: kind)
        c.maxItems = maxItems
        c.seed = seed
        return c
    }
}

struct TasksRCT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rct",
        abstract: "Sentences of structured PubMed abstracts, to be classified into their section.",
        discussion: """
            Every sentence of a BACKGROUND, OBJECTIVE, METHODS, RESULTS or
            CONCLUSIONS section becomes an item whose choices are the five
            sections (the PubMed RCT task, Dernoncourt & Lee 2017). A section's
            NLM category decides its class; without one, its label's words do
            ("MATERIALS AND METHODS" is methods); a section with neither is
            skipped. Documents without meta.abstract_sections (unstructured
            abstracts) are counted in the manifest and skipped.

            Example:
              loom ingest pubmed baseline/ -o out/ingest
              loom split out/ingest -o out/split
              loom tasks rct out/split/test -o out/rct
            """)

    @Argument(help: "PubMed documents: the output of 'loom ingest pubmed' (or a side of 'loom split' over it).")
    var input: String

    @OptionGroup var stage: StageOptions
    @OptionGroup var options: TasksOptions

    func run() throws {
        try runStage({ try TasksStage(config: options.config("rct"), input: input, templates: options.templates) }, options: stage)
    }
}

struct TasksCloze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloze",
        abstract: "A record's text up to a content word of its last sentence; pick the word among distractors.",
        discussion: """
            For each record, one content word of its last sentence (five or more
            letters, not a stop word) is hidden; the context is the text before
            it. The other choices are content words of similar length from the
            other records of the same input, in the answer's case; the choices
            are shuffled. Records with no such word, or too few distractors,
            are counted in the manifest and skipped.

            Example:
              loom tasks cloze out/split/test -o out/cloze --choices 4 --seed 7
            """)

    @Argument(help: "Chunks or documents (records with text): a stage directory, a folder of .jsonl or a .jsonl file.")
    var input: String

    @OptionGroup var stage: StageOptions
    @OptionGroup var options: TasksOptions

    @Option(help: "Choices per item: the hidden word and choices - 1 distractors.")
    var choices = 4

    @Option(help: "The field holding the text.")
    var textField = "text"

    func run() throws {
        var c = options.config("cloze")
        c.choices = choices
        c.textField = textField
        try runStage({ try TasksStage(config: c, input: input, templates: options.templates) }, options: stage)
    }
}
