import ArgumentParser
import Foundation
import LoomCore
import LoomGenerate

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make instruction data from chunks.",
        discussion: """
            rc mines reading-comprehension tasks from the text itself (no model,
            no network): title, key terms, a sentence using given terms,
            inference and cause/effect from connectives, sentence completion.
            Phrasings are in templates/rc/ (English and Korean).
            """,
        subcommands: [GenerateRC.self])
}

struct GenerateRC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rc",
        abstract: "Reading-comprehension samples mined from each chunk (AdaptLLM), no model needed.",
        discussion: """
            Each chunk becomes one sample in the TRL conversational format: the
            chunk's text followed by its tasks as user/assistant turns. Every
            answer comes from the chunk itself. meta holds provenance (chunk and
            document ids, templates, seed) and the task types.

            Example:
              loom generate rc out/chunks -o out/rc --seed 7
            """)

    @Argument(help: "A finished stage directory of chunks or documents.")
    var input: String

    @OptionGroup var stage: StageOptions

    @Option(help: "Seed for choosing examples and phrasings.")
    var seed = 1

    @Option(help: "Most examples of each task type per chunk.")
    var maxPerTask = 2

    @Option(help: "The field holding the text.")
    var textField = "text"

    @Option(help: "The templates directory (default: LOOM_TEMPLATES, or the project's templates/).")
    var templates: String?

    func run() throws {
        var c = RCConfig()
        c.seed = seed
        c.maxPerTask = maxPerTask
        c.textField = textField
        try runStage({ try RCStage(config: c, input: input, templates: templates) }, options: stage)
    }
}
