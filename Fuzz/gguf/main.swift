// libFuzzer target for the GGUF reader: any bytes must give a parsed file or a LoomError, never a crash, a hang or
// an allocation beyond a small multiple of the input. A file that parses is also dequantized tensor by tensor, and
// its metadata written back (GGUFWriter) must parse again to the same bytes. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-gguf
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-gguf /tmp/gcorpus -max_total_time=600 -max_len=4096

import LoomTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let g = try? GGUFFile(bytes: bytes, name: "fuzz") else { return 0 }
    for t in g.tensors where t.type.canDequantize {
        var out = [Float](repeating: 0, count: t.count)
        let ok = out.withUnsafeMutableBufferPointer { (try? g.dequantize(t, rows: 0..<t.rows, into: $0, threads: 1)) != nil }
        if !ok { fatalError("tensor \(t.name) parsed but does not dequantize") }
    }
    let header = GGUFWriter.header(metadata: g.metadata, tensors: [])
    guard let again = try? GGUFFile(bytes: header, name: "again") else { fatalError("written metadata does not parse") }
    if GGUFWriter.header(metadata: again.metadata, tensors: []) != header { fatalError("metadata changed on a round trip") }
    return 0
}
