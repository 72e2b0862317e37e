// libFuzzer target for `loom serve`'s HTTP/1.1 request reader (Sources/LoomServe/HTTP.swift): any bytes a client
// sends must give requests, an error status to answer, or the end of the connection — never a crash, a hang or
// unbounded memory. The bytes arrive through a socket pair, as from a client, then the writer closes. Build and run
// (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-http
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-http /tmp/hcorpus -max_total_time=600 -max_len=16384

import LoomServe

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var limits = ServerLimits()
    // Small limits so the fuzzer reaches them; short timeouts (the writer has closed: reads end at once anyway).
    limits.maxHeaderBytes = 2048
    limits.maxBodyBytes = 4096
    limits.headerTimeout = 1
    limits.bodyTimeout = 1
    limits.idleTimeout = 1
    let r = parseHTTPStream(Array(UnsafeBufferPointer(start: data, count: size)), limits: limits)
    if let s = r.errorStatus, ![400, 408, 413, 431, 501, 505].contains(s) { fatalError("unexpected status \(s)") }
    return 0
}
