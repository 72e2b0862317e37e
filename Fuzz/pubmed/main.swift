// libFuzzer target for the PubMed splitter and SAX parser: any bytes must give articles, rejects or an error,
// never a crash. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --sanitize fuzzer --product loom-fuzz-pubmed
//   SWIFT_BACKTRACE=enable=no .build/debug/loom-fuzz-pubmed Fuzz/corpus -max_total_time=120

import LoomIngest

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The first byte picks the read size, so block boundaries land inside tags and names too.
    let step = size > 0 ? Int(bytes[0]) % 64 + 1 : 1
    _ = PubMedReader.parse(bytes, name: "fuzz", readSize: step)
    return 0
}
