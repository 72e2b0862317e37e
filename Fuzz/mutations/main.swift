// libFuzzer target for the Verilog mutation rules file (grammars/verilog-mutations.yaml, or the one a user points
// LOOM_GRAMMARS at): any bytes, read as UTF-8, must give rules or a LoomError naming the file, never a crash, a hang
// or unbounded memory. Rules that load are applied to a small module (the words of insert_word come from the file),
// and every mutant must be a nonempty text with its edits listed. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-mutations
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-mutations /tmp/vmcorpus -max_total_time=600 -max_len=4096

import LoomVerilog

let module = """
    module counter(input clk, input rst, input en, output reg [3:0] q);
      wire carry;
      assign carry = en && (q == 4'hf);
      always @(posedge clk) begin
        if (rst) q <= 4'd0;
        else if (en && !carry) q <= q + 1;
      end
    endmodule
    """

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let rules = try? MutationRules.parse(yaml: text, path: "fuzz/verilog-mutations.yaml") else { return 0 }
    var m = Mutator(rules: rules.rules)
    m.maxEdits = 3
    for mutant in m.mutants(of: module, samples: 6, seed: UInt64(size)) {
        if mutant.text.isEmpty || mutant.edits.isEmpty { fatalError("an empty mutant or one without edits") }
    }
    return 0
}
