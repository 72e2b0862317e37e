// libFuzzer target for the model-combining configs a user hands Loom: every input goes to the mergekit YAML reader
// (`MergeConfig.parse`) and to the PEFT adapter_config.json reader (`LoRAConfig(adapterConfig:)`, then the adapter
// built for a tiny model, as `loom lora merge` does). Any bytes must give a config or a LoomError, never a crash, a
// hang or unbounded memory. A merge config that parses must parse again from its own JSON form (a pipeline step's
// options) and answer every parameter lookup. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-merge
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-merge /tmp/mcorpus -max_total_time=600 -max_len=4096

import LoomCore
import LoomMerge
import LoomTrain

let tiny = LlamaConfig(vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numLayers: 2, numHeads: 2)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let c = try? MergeConfig.parse(yaml: text, file: "fuzz/merge.yaml") {
        guard let again = try? MergeConfig.from(c.json, context: "again") else { fatalError("a parsed config's JSON does not parse") }
        if again.models != c.models || again.method != c.method { fatalError("the config changed on a round trip") }
        let names = Set(c.parameters.keys).union(c.models.flatMap { $0.parameters.keys })
        for name in names.sorted() {
            for model in [nil] + c.models.map(\.name) {
                for tensor in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"] {
                    _ = c.parameter(name, model: model, tensor: tensor, t: 0.5)
                }
            }
        }
        _ = try? c.renamingModels { "renamed/" + $0 }
    }
    if let cfg = try? LoRAConfig(adapterConfig: text, source: "fuzz/adapter_config.json") {
        _ = try? LoRA(config: cfg, model: tiny)
    }
    return 0
}
