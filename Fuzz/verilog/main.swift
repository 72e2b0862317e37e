// libFuzzer target for the Verilog preprocessor, parser and printer: any bytes must give a tree or diagnostics,
// never a crash or a hang; and a tree that parsed must print to text that parses back to the same tree.
// Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-verilog
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-verilog CORPUS -max_total_time=600 -max_len=8192

import LoomVerilog

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var options = PreprocessorOptions()
    options.loader = nil  // no file system access: every `include is a diagnostic
    let r = VerilogParser.parse(bytes, name: "fuzz.v", options: options)
    if r.ok {
        let printed = Printer.print(r.source)
        let again = VerilogParser.parse(Array(printed.utf8), name: "printed.v", options: options)
        if !again.ok || again.source != r.source {
            fatalError("round trip failed:\n\(printed)\n\(again.diagnostics)")
        }
    }
    return 0
}
