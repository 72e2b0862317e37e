// libFuzzer target for PyTorch checkpoints (pytorch_model.bin: a zip archive holding a pickle and raw storages,
// `TorchCheckpoint.read(data:)`): any bytes must give tensors or a LoomError naming the entry, tensor or pickle
// byte, never a crash, a hang or an allocation beyond a small multiple of the input. Every tensor read must hold
// exactly as many bytes as its shape and dtype say. Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-torch
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-torch /tmp/tzcorpus -max_total_time=600 -max_len=4096

import Foundation
import LoomPack
import LoomTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let tensors = try? TorchCheckpoint.read(data: Data(bytes: data, count: size), path: "fuzz.bin") else { return 0 }
    for (name, t) in tensors where t.bytes.count != t.count * t.dtype.size {
        fatalError("tensor \(name): \(t.bytes.count) bytes for shape \(t.shape) of \(t.dtype)")
    }
    return 0
}
