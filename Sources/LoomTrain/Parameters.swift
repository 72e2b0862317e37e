// A model's parameters in one flat Float32 buffer, with a gradient buffer of the same layout: each named tensor
// (transformers' names and shapes) is a range of it. One buffer makes the optimiser, clipping and checkpoints
// single loops.

import Foundation
import LoomCore
import LoomTensor

/// An owned, zeroed Float32 buffer.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { pointer.deallocate() }

    public func zero() { pointer.update(repeating: 0, count: count) }
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }
}

public struct ParameterInfo: Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Matrices (and embeddings) take weight decay; norm weights do not.
    public var decays: Bool { shape.count >= 2 }
}

public final class ParameterStore: @unchecked Sendable {
    public let infos: [ParameterInfo]
    public let values: FloatBuffer
    /// The gradient buffer, allocated on first use (from one thread): a model only sampled or served never pays
    /// for one.
    public var grads: FloatBuffer {
        if let g = gradBuffer { return g }
        let g = FloatBuffer(count: values.count)
        gradBuffer = g
        return g
    }
    private var gradBuffer: FloatBuffer?
    private let index: [String: Int]

    public init(_ specs: [(String, [Int])]) {
        var infos: [ParameterInfo] = []
        var offset = 0
        for (name, shape) in specs {
            infos.append(ParameterInfo(name: name, shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        self.infos = infos
        values = FloatBuffer(count: offset)
        index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
    }

    public var count: Int { values.count }

    public func info(_ name: String) -> ParameterInfo? { index[name].map { infos[$0] } }

    public func value(_ name: String) -> UnsafeMutablePointer<Float> { values.pointer + info(name)!.offset }
    public func grad(_ name: String) -> UnsafeMutablePointer<Float> { grads.pointer + info(name)!.offset }

    public func tensor(_ info: ParameterInfo, gradient: Bool = false) -> Tensor {
        let p = (gradient ? grads : values).pointer + info.offset
        return Tensor(floats: Array(UnsafeBufferPointer(start: p, count: info.count)), shape: info.shape)
    }

    /// Copies tensors in (F32, F16 or BF16), checking every parameter is present with its shape.
    public func load(_ tensors: [(name: String, tensor: Tensor)], source: String, allowMissing: Set<String> = []) throws {
        var byName: [String: Tensor] = [:]
        for (n, t) in tensors { byName[n] = t }
        for info in infos {
            guard let t = byName[info.name] else {
                if allowMissing.contains(info.name) { continue }
                throw LoomError("\(source): tensor '\(info.name)' is missing")
            }
            guard t.shape == info.shape else {
                throw LoomError("\(source): tensor '\(info.name)' has shape \(t.shape), the config says \(info.shape)")
            }
            guard [.f32, .f16, .bf16, .f64].contains(t.dtype) else {
                throw LoomError("\(source): tensor '\(info.name)' has dtype \(t.dtype.rawValue); expected a float type")
            }
            let f = t.floats()
            f.withUnsafeBufferPointer { values.pointer.advanced(by: info.offset).update(from: $0.baseAddress!, count: f.count) }
        }
    }
}
