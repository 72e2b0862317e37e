// AdamW as torch.optim.AdamW (foreach=False): decoupled weight decay on matrices only (embeddings, projections,
// lm_head), none on the RMSNorm weights; bias-corrected moments. Plus global-norm gradient clipping and the
// warmup + cosine learning-rate schedule.

import CTensorKernels
import Foundation
import LoomTensor

public struct AdamWSettings: Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.1
    public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }
}

public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Updates taken so far (torch's `step`).
    public private(set) var step = 0

    public init(count: Int, settings: AdamWSettings = AdamWSettings()) {
        self.settings = settings
        m = FloatBuffer(count: count)
        v = FloatBuffer(count: count)
    }

    /// One update of every parameter with its gradient, at learning rate `lr`. `trainable` limits it to some
    /// parameters (LoRA trains adapters only); nil updates all.
    public func update(_ params: ParameterStore, lr: Float, trainable: [ParameterInfo]? = nil) {
        step += 1
        let s = settings
        let b1 = 1 - powf(s.beta1, Float(step)), b2 = 1 - powf(s.beta2, Float(step))
        let (p, g, mp, vp) = (params.values.pointer, params.grads.pointer, m.pointer, v.pointer)
        for info in trainable ?? params.infos {
            let wd = info.decays ? s.weightDecay : 0
            let o = info.offset
            Compute.parallel(info.count, grain: 1 << 14) { r in
                let i = o + r.lowerBound
                tk_adamw(p + i, g + i, mp + i, vp + i, r.count, lr, s.beta1, s.beta2, s.eps, wd, b1, b2)
            }
        }
    }

    /// Restores a saved optimiser state.
    public func restore(step: Int, m: [Float], v: [Float]) {
        precondition(m.count == self.m.count && v.count == self.v.count)
        self.step = step
        m.withUnsafeBufferPointer { self.m.pointer.update(from: $0.baseAddress!, count: $0.count) }
        v.withUnsafeBufferPointer { self.v.pointer.update(from: $0.baseAddress!, count: $0.count) }
    }
}

public enum Gradients {
    /// The global L2 norm of the gradients.
    public static func norm(_ params: ParameterStore) -> Double {
        tk_sum_squares(params.grads.pointer, params.count).squareRoot()
    }

    /// Scales the gradients so their global norm is at most `maxNorm` (torch's clip_grad_norm_); returns the norm
    /// before clipping.
    @discardableResult
    public static func clip(_ params: ParameterStore, maxNorm: Double) -> Double {
        let n = norm(params)
        if maxNorm > 0, n > maxNorm { tk_scale(params.grads.pointer, params.count, Float(maxNorm / (n + 1e-6))) }
        return n
    }
}

/// Linear warmup to the peak rate, then cosine decay to `minRatio` of it at the last step.
public struct LRSchedule: Equatable, Sendable {
    public var peak: Double
    public var warmup: Int
    public var total: Int
    public var minRatio: Double
    public init(peak: Double, warmup: Int, total: Int, minRatio: Double = 0.1) {
        self.peak = peak
        self.warmup = warmup
        self.total = total
        self.minRatio = minRatio
    }

    /// The rate for update number `step` (1-based).
    public func rate(step: Int) -> Double {
        if warmup > 0 && step <= warmup { return peak * Double(step) / Double(warmup) }
        let span = max(1, total - warmup)
        let progress = min(1, Double(step - warmup) / Double(span))
        return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + cos(.pi * progress)))
    }
}
