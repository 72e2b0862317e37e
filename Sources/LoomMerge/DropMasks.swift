// DARE's random drop masks. Loom draws them from SplitMix64, seeded per (random_seed, model, tensor) so a mask
// does not depend on the order tensors are merged in; `SafeTensorsDropMask` takes them from a file instead (to
// reproduce another tool's run exactly, e.g. masks mergekit drew from numpy).

import Foundation
import LoomCore
import LoomTensor

/// Gives the keep-mask (1 = keep the delta entry, 0 = drop it) for one model's task vector of one tensor.
public protocol DropMaskProvider: Sendable {
    /// `model` is the model as the config names it, `modelIndex` its position among the config's models.
    func mask(model: String, modelIndex: Int, tensor: String, count: Int, density: Double) throws -> [UInt8]
}

/// Bernoulli(density) masks from SplitMix64: entry i of a tensor is kept when the i-th draw, as a 53-bit fraction
/// in [0, 1), is below the density. The generator is seeded with seed ⊕ FNV-1a("INDEX:TENSOR").
public struct SeededDropMask: DropMaskProvider {
    public var seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    public func mask(model: String, modelIndex: Int, tensor: String, count: Int, density: Double) throws -> [UInt8] {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in "\(modelIndex):\(tensor)".utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        var rng = SplitMix64(seed: seed ^ h)
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<count { o[i] = Double(rng.next() >> 11) * 0x1p-53 < density ? 1 : 0 }
        }
        return out
    }
}

/// Masks stored in a safetensors file as U8 (or BOOL) tensors named `MODEL.TENSOR`, MODEL as the config names the
/// model (the layout of the merge fixture's `dare_masks.safetensors`).
public final class SafeTensorsDropMask: DropMaskProvider, @unchecked Sendable {
    public let file: SafeTensorsFile
    private let lock = NSLock()

    public init(path: String) throws { file = try SafeTensorsFile(path: path) }

    public func mask(model: String, modelIndex: Int, tensor: String, count: Int, density: Double) throws -> [UInt8] {
        let name = "\(model).\(tensor)"
        guard let e = file.entry(name) else { throw LoomError("\(file.path): no mask named '\(name)'") }
        guard e.dtype == .u8 || e.dtype == .bool else {
            throw LoomError("\(file.path): mask '\(name)' is \(e.dtype.rawValue), expected U8 or BOOL")
        }
        guard e.count == count else {
            throw LoomError("\(file.path): mask '\(name)' has \(e.count) entries, the tensor has \(count)")
        }
        return try lock.withLock { try file.tensor(name).bytes }
    }
}
