// libFuzzer target for LoomCore's JSON reader (every JSON Lines record Loom reads goes through it): any bytes must
// give a value or a JSONParseError, never a crash, a hang or unbounded memory; a value that parses must write back
// to text that parses to the same value, and writing that again must give the same bytes. Build and run (see
// Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-json
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-json /tmp/jcorpus -max_total_time=600 -max_len=4096

import LoomCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let value: JSONValue
    do {
        value = try JSONValue.parse(bytes: UnsafeBufferPointer(start: data, count: size))
    } catch {
        return 0
    }
    var text: [UInt8] = []
    value.write(to: &text)
    let again: JSONValue
    do {
        again = try text.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
    } catch {
        fatalError("written JSON does not parse: \(String(decoding: text, as: UTF8.self))")
    }
    var text2: [UInt8] = []
    again.write(to: &text2)
    if text2 != text { fatalError("JSON changed on a second round trip") }
    return 0
}
