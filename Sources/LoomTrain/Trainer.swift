// The training loop: micro-batches with gradient accumulation, clipping, AdamW with warmup + cosine, periodic
// evaluation (loss and perplexity on a held-out split), checkpoints every N steps with everything needed to resume
// exactly (weights, optimiser moments, step, data position), metrics.jsonl and a loss curve.
//
// Data order is a function of (seed, epoch, cursor): epoch e visits the training rows in a permutation drawn from
// SplitMix64(seed ^ e). A checkpoint records the epoch and cursor, so a resumed run sees the same batches as an
// uninterrupted one and, with one thread, computes bit-identical losses.

import Foundation
import LoomCore
import LoomTensor

public struct TrainSettings: Equatable, Sendable {
    public var steps = 200
    public var batchSize = 8
    public var gradAccum = 1
    public var lr = 1e-3
    public var warmup = 20
    public var minLRRatio = 0.1
    public var gradClip = 1.0
    public var adam = AdamWSettings()
    public var evalEvery = 50
    public var checkpointEvery = 100
    public var keepCheckpoints = 2
    public var logEvery = 10
    public var seed: UInt64 = 1
    public init() {}
}

public struct TrainPosition: Equatable, Sendable {
    public var epoch = 0
    public var cursor = 0
}

/// One line of metrics.jsonl.
public struct StepMetrics: Equatable, Sendable {
    public var step: Int
    public var loss: Double
    public var lr: Double
    public var gradNorm: Double
    public var tokens: Int
    public var evalLoss: Double?
    /// Whether the evaluation loss is a token cross-entropy (so exp of it is a perplexity); false for DPO/ORPO.
    public var perplexity = true
    /// An objective's own metrics (DPO reward margins, ORPO odds ratio, ...), written after the standard ones in
    /// key order.
    public var extra: [String: Double] = [:]

    static let standardKeys: Set<String> = ["step", "loss", "lr", "grad_norm", "tokens", "eval_loss", "eval_perplexity"]

    public var json: JSONValue {
        var o = JSONObject()
        o.append("step", .int(step))
        o.append("loss", .double(loss))
        o.append("lr", .double(lr))
        o.append("grad_norm", .double(gradNorm))
        o.append("tokens", .int(tokens))
        if let e = evalLoss {
            o.append("eval_loss", .double(e))
            if perplexity { o.append("eval_perplexity", .double(exp(e))) }
        }
        for k in extra.keys.sorted() { o.append(k, .double(extra[k]!)) }
        return .object(o)
    }

    public init(step: Int, loss: Double, lr: Double, gradNorm: Double, tokens: Int, evalLoss: Double? = nil) {
        self.step = step
        self.loss = loss
        self.lr = lr
        self.gradNorm = gradNorm
        self.tokens = tokens
        self.evalLoss = evalLoss
    }

    public init?(_ j: JSONValue) {
        guard let s = j["step"]?.intValue, let l = j["loss"]?.doubleValue else { return nil }
        self.init(
            step: s, loss: l, lr: j["lr"]?.doubleValue ?? 0, gradNorm: j["grad_norm"]?.doubleValue ?? 0,
            tokens: j["tokens"]?.intValue ?? 0, evalLoss: j["eval_loss"]?.doubleValue)
        perplexity = evalLoss == nil || j["eval_perplexity"] != nil
        if let o = j.objectValue {
            for k in o.keys where !StepMetrics.standardKeys.contains(k) {
                if let v = o[k]?.doubleValue { extra[k] = v }
            }
        }
    }
}

/// What an objective other than token cross-entropy (DPO, ORPO) reports for a step or an evaluation.
public struct ObjectiveResult: Sendable {
    /// The objective's loss (the mean the gradient is of).
    public var loss: Double
    /// Its own metrics, by name.
    public var metrics: [String: Double]
    /// Tokens in the batches it ran (padding included), for tokens/s.
    public var tokens: Int
    public init(loss: Double, metrics: [String: Double], tokens: Int) {
        self.loss = loss
        self.metrics = metrics
        self.tokens = tokens
    }
}

/// An objective that is not token cross-entropy over `Row` targets: it builds its own batches from the step's
/// rows, and for each micro-batch runs forward, writes d(loss)/d(logits) and runs backward (the trainer has zeroed
/// the gradients; it clips and steps afterwards).
public protocol RowObjective: AnyObject {
    /// One optimiser step's micro-batches: accumulate the gradient of the step's mean loss.
    func accumulate(model: LlamaModel, microBatches: [[Row]]) -> ObjectiveResult
    /// The loss over held-out rows, forward only (nil without any usable row).
    func evaluate(model: LlamaModel, rows: [Row], batchSize: Int) -> ObjectiveResult?
}

public final class Trainer {
    public let model: LlamaModel
    public let data: DatasetBuilder
    public let train: [Row]
    public let eval: [Row]
    public let settings: TrainSettings
    public let optimizer: AdamW
    /// Where checkpoints and the live metrics go.
    public let checkpointDirectory: String
    /// Identifies the run (config and inputs): a checkpoint of another run is never resumed.
    public let fingerprint: String
    public private(set) var step = 0
    public private(set) var position = TrainPosition()
    public private(set) var history: [StepMetrics] = []
    private var order: [Int] = []
    private var orderEpoch = -1
    /// Set by tests to stop after a step as if the process were killed (no final save).
    public var stopAfterStep: Int?
    /// An objective replacing token cross-entropy (DPO, ORPO); nil: cross-entropy on the rows' targets.
    public var objective: RowObjective?

    public init(
        model: LlamaModel, data: DatasetBuilder, train: [Row], eval: [Row], settings: TrainSettings,
        checkpointDirectory: String, fingerprint: String
    ) throws {
        guard !train.isEmpty else { throw LoomError("no training rows: the input has no usable records") }
        self.model = model
        self.data = data
        self.train = train
        self.eval = eval
        self.settings = settings
        self.checkpointDirectory = checkpointDirectory
        self.fingerprint = fingerprint
        optimizer = AdamW(count: (model.lora?.params ?? model.params).count, settings: settings.adam)
    }

    /// The parameters being optimised: the LoRA adapters when the model has them, else the whole model.
    public var trainable: ParameterStore { model.lora?.params ?? model.params }

    /// Zeroes gradients and draws this step's LoRA dropout masks.
    func beginStep() {
        if model.trainBase { model.params.grads.zero() }
        if let l = model.lora {
            l.params.grads.zero()
            l.training = true
            l.dropoutSeed = settings.seed ^ (UInt64(step + 1) &* 0x9E37_79B9_7F4A_7C15)
        }
    }

    var metricsPath: String { FS.join(checkpointDirectory, "metrics.jsonl") }

    // MARK: - Data order

    func nextRows(_ n: Int) -> [Row] {
        var out: [Row] = []
        while out.count < n {
            if orderEpoch != position.epoch {
                var idx = Array(0..<train.count)
                var rng = SplitMix64(seed: settings.seed ^ UInt64(position.epoch &* 0x9E37_79B9))
                for i in stride(from: idx.count - 1, to: 0, by: -1) {
                    idx.swapAt(i, Int(rng.next() % UInt64(i + 1)))
                }
                order = idx
                orderEpoch = position.epoch
            }
            out.append(train[order[position.cursor]])
            position.cursor += 1
            if position.cursor == train.count {
                position.cursor = 0
                position.epoch += 1
            }
        }
        return out
    }

    // MARK: - Steps

    /// One optimiser step over `batchSize * gradAccum` rows; returns its metrics.
    public func trainStep() -> StepMetrics {
        let s = settings
        let schedule = LRSchedule(peak: s.lr, warmup: s.warmup, total: s.steps, minRatio: s.minLRRatio)
        if let objective {
            let micro = (0..<s.gradAccum).map { _ in nextRows(s.batchSize) }
            beginStep()
            let r = objective.accumulate(model: model, microBatches: micro)
            let norm = Gradients.clip(trainable, maxNorm: s.gradClip)
            step += 1
            let lr = schedule.rate(step: step)
            optimizer.update(trainable, lr: Float(lr))
            var m = StepMetrics(step: step, loss: r.loss, lr: lr, gradNorm: norm, tokens: r.tokens)
            m.perplexity = false
            m.extra = r.metrics
            return m
        }
        let batches = (0..<s.gradAccum).map { _ in data.batch(nextRows(s.batchSize)) }
        let targets = batches.reduce(0) { $0 + $1.targetCount }
        beginStep()
        var lossSum = 0.0
        if targets > 0 {
            let stepSeed = model.lora?.dropoutSeed ?? 0
            for (i, b) in batches.enumerated() {
                model.lora?.dropoutSeed = stepSeed &+ UInt64(i)
                model.forward(b)
                lossSum += model.crossEntropy(targets: b.targets, scale: 1 / Float(targets))
                model.backward()
            }
        }
        let norm = Gradients.clip(trainable, maxNorm: s.gradClip)
        step += 1
        let lr = schedule.rate(step: step)
        optimizer.update(trainable, lr: Float(lr))
        return StepMetrics(
            step: step, loss: targets > 0 ? lossSum / Double(targets) : 0, lr: lr, gradNorm: norm,
            tokens: batches.reduce(0) { $0 + $1.tokens.count })
    }

    /// Mean loss over the evaluation rows (nil without any).
    public func evaluate() -> Double? {
        guard !eval.isEmpty else { return nil }
        model.lora?.training = false
        defer { model.lora?.training = true }
        if let objective { return objective.evaluate(model: model, rows: eval, batchSize: settings.batchSize)?.loss }
        var sum = 0.0, count = 0
        for i in stride(from: 0, to: eval.count, by: settings.batchSize) {
            let b = data.batch(Array(eval[i..<min(eval.count, i + settings.batchSize)]))
            guard b.targetCount > 0 else { continue }
            model.forward(b)
            sum += model.crossEntropy(targets: b.targets, scale: 0)
            count += b.targetCount
        }
        return count > 0 ? sum / Double(count) : nil
    }

    /// Trains to `settings.steps`, resuming from the newest matching checkpoint. `report` sees every step.
    public func run(report: (StepMetrics) -> Void = { _ in }) throws {
        try FS.makeDirectory(checkpointDirectory)
        try resume()
        let metrics = try BufferedFile(appendingTo: metricsPath)
        defer { try? metrics.close() }
        while step < settings.steps {
            var m = trainStep()
            if settings.evalEvery > 0, step % settings.evalEvery == 0 || step == settings.steps {
                if let objective {
                    if let r = objective.evaluate(model: model, rows: eval, batchSize: settings.batchSize) {
                        m.evalLoss = r.loss
                        for (k, v) in r.metrics { m.extra["eval_" + k] = v }
                    }
                } else {
                    m.evalLoss = evaluate()
                }
            }
            history.append(m)
            try metrics.write(m.json.jsonString + "\n")
            try metrics.flush()
            report(m)
            if settings.checkpointEvery > 0, step % settings.checkpointEvery == 0, step < settings.steps {
                try saveCheckpoint()
            }
            if let stop = stopAfterStep, step >= stop { return }
        }
    }

    // MARK: - Checkpoints

    func checkpointName(_ step: Int) -> String { "step-" + String(step).leftPadded(6) }

    /// Checkpoint directories of this run, oldest first.
    public func checkpoints() -> [(step: Int, path: String)] {
        FS.list(checkpointDirectory).compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), !name.hasSuffix(".tmp"), let n = Int(name.dropFirst(5)) else { return nil }
            let p = FS.join(checkpointDirectory, name)
            return FS.exists(FS.join(p, "trainer_state.json")) ? (n, p) : nil
        }.sorted { $0.0 < $1.0 }
    }

    /// Writes weights (Hugging Face layout), optimiser moments and the trainer state into step-N, atomically.
    public func saveCheckpoint() throws {
        let final = FS.join(checkpointDirectory, checkpointName(step))
        let tmp = final + ".tmp"
        FS.remove(tmp)
        if let l = model.lora { try l.save(directory: tmp, baseModel: nil) } else { try model.save(directory: tmp) }
        let p = trainable
        var moments: [(name: String, tensor: Tensor)] = []
        for info in p.infos {
            let m = Array(UnsafeBufferPointer(start: optimizer.m.pointer + info.offset, count: info.count))
            let v = Array(UnsafeBufferPointer(start: optimizer.v.pointer + info.offset, count: info.count))
            moments.append(("exp_avg." + info.name, Tensor(floats: m, shape: info.shape)))
            moments.append(("exp_avg_sq." + info.name, Tensor(floats: v, shape: info.shape)))
        }
        try SafeTensors.write(moments, to: FS.join(tmp, "optimizer.safetensors"))
        var st = JSONObject()
        st.append("step", .int(step))
        st.append("optimizer_step", .int(optimizer.step))
        st.append("epoch", .int(position.epoch))
        st.append("cursor", .int(position.cursor))
        st.append("seed", .string(String(settings.seed)))
        st.append("fingerprint", .string(fingerprint))
        st.append("train_rows", .int(train.count))
        try FS.writeAtomically(JSONValue.object(st).jsonString + "\n", to: FS.join(tmp, "trainer_state.json"))
        FS.remove(final)
        try FS.rename(tmp, final)
        // Keep the newest few.
        let all = checkpoints()
        if settings.keepCheckpoints > 0, all.count > settings.keepCheckpoints {
            for c in all.prefix(all.count - settings.keepCheckpoints) { FS.remove(c.path) }
        }
    }

    /// Loads the newest checkpoint of this run (same fingerprint), trims metrics written after it, or starts fresh.
    func resume() throws {
        var resumed = false
        for c in checkpoints().reversed() {
            guard let st = try? JSONValue.parse(try FS.readText(FS.join(c.path, "trainer_state.json"))),
                st["fingerprint"]?.stringValue == fingerprint, let s = st["step"]?.intValue, s <= settings.steps
            else { continue }
            if let l = model.lora {
                l.params.values.copy(from: try LoRA.load(directory: c.path, model: model.config).params.values)
            } else {
                try model.params.load(try SafeTensors.read(FS.join(c.path, "model.safetensors")).tensors, source: c.path)
            }
            var byName: [String: Tensor] = [:]
            for (n, t) in try SafeTensors.read(FS.join(c.path, "optimizer.safetensors")).tensors { byName[n] = t }
            let p = trainable
            var m = [Float](repeating: 0, count: p.count), v = m
            for info in p.infos {
                guard let tm = byName["exp_avg." + info.name], let tv = byName["exp_avg_sq." + info.name] else {
                    throw LoomError("\(c.path): optimizer.safetensors lacks the moments of \(info.name)")
                }
                m.replaceSubrange(info.offset..<(info.offset + info.count), with: tm.floats())
                v.replaceSubrange(info.offset..<(info.offset + info.count), with: tv.floats())
            }
            optimizer.restore(step: st["optimizer_step"]?.intValue ?? s, m: m, v: v)
            step = s
            position = TrainPosition(epoch: st["epoch"]?.intValue ?? 0, cursor: st["cursor"]?.intValue ?? 0)
            orderEpoch = -1
            resumed = true
            Log.info("train: resuming from \(c.path) (step \(s))")
            break
        }
        // Metrics up to the resumed step stay; later lines (from the interrupted run) go.
        var kept: [StepMetrics] = []
        if resumed, let text = try? FS.readText(metricsPath) {
            for line in text.split(separator: "\n") {
                if let j = try? JSONValue.parse(String(line)), let m = StepMetrics(j), m.step <= step { kept.append(m) }
            }
        }
        if !resumed {
            for c in checkpoints() { FS.remove(c.path) }
        }
        history = kept
        try FS.writeAtomically(kept.map { $0.json.jsonString + "\n" }.joined(), to: metricsPath)
    }
}
