// `loom lora merge BASE ADAPTER -o OUT`: folds a LoRA adapter (PEFT layout, written by `loom train --lora-rank` or
// by PEFT) into its base model and writes a plain Hugging Face model directory.

import ArgumentParser
import Foundation
import LoomCore
import LoomTrain

struct LoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Work with LoRA adapters (PEFT layout).",
        subcommands: [LoRAMerge.self])
}

struct LoRAMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA adapter into its base model (W += alpha/r · B A).",
        discussion: """
            BASE is a Hugging Face model directory (config.json +
            model.safetensors); ADAPTER a PEFT LoRA directory
            (adapter_config.json + adapter_model.safetensors). The output is a
            model directory transformers opens without PEFT; the base's
            tokenizer files are copied beside it.

            Example:
              loom train sft out/rc -o out/sft-lora --model out/cpt --lora-rank 8
              loom lora merge out/cpt out/sft-lora -o out/sft-merged
            """)

    @Argument(help: "The base model directory.")
    var base: String

    @Argument(help: "The adapter directory.")
    var adapter: String

    @Option(name: [.short, .customLong("output")], help: "The merged model's directory.")
    var output: String

    func run() throws {
        do {
            let model = try LlamaModel.load(directory: base)
            let lora = try LoRA.load(directory: adapter, model: model.config)
            lora.merge(into: model)
            try model.save(directory: output)
            for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let src = FS.join(base, f)
                if FS.exists(src) { try FS.writeAtomically(try FS.readText(src), to: FS.join(output, f)) }
            }
            print(output)
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}
