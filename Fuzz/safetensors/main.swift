// libFuzzer target for the safetensors reader (`SafeTensors.read(bytes:)`, the header parser SafeTensorsFile uses
// too): any bytes must give tensors or a LoomError naming the tensor, never a crash, a hang or an allocation beyond
// a small multiple of the input. Tensors that parse are written back (SafeTensorsWriter's header, then their bytes)
// and must read again to the same names, dtypes, shapes, bytes and metadata. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-safetensors
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-safetensors /tmp/scorpus -max_total_time=600 -max_len=4096

import Foundation
import LoomTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(bytes: data, count: size)
    guard let (tensors, metadata) = try? SafeTensors.read(bytes: bytes, source: "fuzz.safetensors") else { return 0 }
    for (_, t) in tensors where [.f32, .f16, .bf16, .f64].contains(t.dtype) {
        if t.floats().count != t.count { fatalError("floats() gives the wrong count") }
    }
    let sorted = tensors.sorted { $0.name < $1.name }
    // A header may name a tensor twice (JSON objects are read as written); a writer never does.
    for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name { return 0 }
    let specs = sorted.map { SafeTensorsWriter.Spec(name: $0.name, dtype: $0.tensor.dtype, shape: $0.tensor.shape) }
    let header = SafeTensorsWriter.header(specs, metadata: metadata)
    var file = Data(withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
    file.append(contentsOf: header)
    for (_, t) in sorted { file.append(contentsOf: t.bytes) }
    guard let (again, meta2) = try? SafeTensors.read(bytes: file, source: "written") else {
        fatalError("the written file does not read: \(String(decoding: header, as: UTF8.self))")
    }
    if again.map(\.name) != sorted.map(\.name) || again.map(\.tensor) != sorted.map(\.tensor) {
        fatalError("tensors changed on a round trip")
    }
    if meta2.map(\.0) != metadata.map(\.0) || meta2.map(\.1) != metadata.map(\.1) { fatalError("metadata changed on a round trip") }
    return 0
}
