// libFuzzer target for pipeline files (`loom run pipeline.yaml`): any bytes, read as UTF-8, must give a pipeline or
// a LoomError naming the file and line, never a crash, a hang or unbounded memory. A pipeline that parses has every
// `@NAME`/`@N` option resolved as the runner does before building its steps (an earlier step's directory, or an
// error). Which options a step accepts is checked by the `loom` executable's step factories, not here. Build and run
// (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-pipeline
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-pipeline /tmp/pcorpus -max_total_time=600 -max_len=4096

import LoomCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let p = try? Pipeline.parse(yaml: text, path: "fuzz/pipeline.yaml") else { return 0 }
    if p.steps.isEmpty { fatalError("a pipeline without steps parsed") }
    for (i, step) in p.steps.enumerated() {
        if step.options.objectValue == nil { fatalError("step \(i + 1)'s options are not a mapping") }
        let ctx = StepContext(pipeline: p, step: step, input: nil, index: i, output: "out")
        _ = try? PipelineRunner.resolveReferences(step.options, ctx)
        _ = p.stepDirectory(i, output: "out")
    }
    return 0
}
