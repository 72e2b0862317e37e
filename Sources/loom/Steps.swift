// The pipeline steps `loom run` knows, built from their YAML options. Each step takes the same options as its
// subcommand, in snake_case.

import LoomCore
import LoomIngest

enum Steps {
    static func factories(jobs: Int) -> [String: StepFactory] {
        [
            "ingest": { ctx in
                let kind = ctx.step.options["kind"]?.stringValue ?? ""
                switch kind {
                case "pubmed":
                    var c = try ctx.step.options.decode(
                        PubMedIngestConfig.self, allowedKeys: PubMedIngestConfig.keys, context: ctx.location)
                    c.paths = c.paths.map(ctx.resolve)
                    let j = ctx.step.options["jobs"]?.intValue ?? jobs
                    return try PubMedIngestStage(config: c, jobs: j)
                default:
                    throw LoomError("\(ctx.location): unknown ingest kind '\(kind)' (available: pubmed)")
                }
            },
            "chunk": { ctx in
                let c = try ctx.step.options.decode(ChunkConfig.self, allowedKeys: ChunkConfig.keys, context: ctx.location)
                guard let input = ctx.input else { throw LoomError("\(ctx.location): chunk needs a step before it") }
                return try ChunkStage(config: c, input: input)
            },
        ]
    }
}
