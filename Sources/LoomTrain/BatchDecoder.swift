// Batched decoding (continuous batching): concurrent generations share one forward pass per step. Each sequence has
// its own KV cache (grown on demand, doubling, never the model's whole context up front) and its own position; a
// pass is a list of segments, one per active sequence — a chunk of its prompt (prefill) or the one token it sampled
// last (decode) — whose rows go through every product together:
//   per layer, for all rows r of all segments (sequence s_r at position p_r):
//     x = rmsnorm(h)·w1; q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ as one [rows, ·] GEMM each (OpenBLAS sgemm, the weights read
//     once for the whole batch instead of once per sequence); RoPE at each row's own position; k, v copied into each
//     sequence's cache; attention per (segment, head) against that sequence's cache, exactly as InferenceSession
//     does for one sequence; o_proj and the MLP again as [rows, ·] GEMMs
//   logits of each segment's last row (prompt finished, or decoding) = lm_head(rmsnorm(h)·wf) as one [segments, V]
//   GEMM — on a 262k vocabulary this product is most of a decode step, which is what batching shares.
// InferenceSession (Generation.swift) stays the single-sequence reference: BatchDecoderTests checks that the batched
// logits equal it within rounding and that greedy decoding gives the same tokens.
//
// The scheduler: `generate` is called from any number of threads; each call queues a request and waits. Requests
// join the batch and leave it at step boundaries (at most `maxBatch` at once; the rest wait their turn in order).
// No thread of its own: one waiting caller at a time drives the passes, and when its own request ends it hands the
// driving to another waiting caller. Sampling, constraints, stop strings and `onText` stay per request, with the
// same rules as InferenceSession.generate; `onText` runs on the driving thread between passes.

import CTensorKernels
import Foundation
import LoomCore
import LoomTensor

/// One sequence's keys and values per layer, `capacity` positions each, grown by doubling as the sequence grows.
final class SequenceCache {
    let layers: Int, width: Int, limit: Int
    private(set) var capacity = 0
    private(set) var k: [UnsafeMutablePointer<Float>] = [], v: [UnsafeMutablePointer<Float>] = []
    /// Positions filled.
    var length = 0

    init(layers: Int, width: Int, limit: Int) {
        self.layers = layers
        self.width = width
        self.limit = limit
    }

    /// Makes room for `n` positions (at least), keeping what is cached.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        var c = max(16, capacity)
        while c < n { c *= 2 }
        c = min(max(c, n), max(limit, n))
        func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
            (0..<layers).map { l in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: c * width)
                if capacity > 0 {
                    p.update(from: old[l], count: length * width)
                    old[l].deallocate()
                }
                return p
            }
        }
        k = grow(k)
        v = grow(v)
        capacity = c
    }

    deinit {
        for p in k { p.deallocate() }
        for p in v { p.deallocate() }
    }
}

/// The forward pass over segments of several sequences at once (see the file header).
public final class BatchForward {
    let model: LlamaModel
    let layers: [InferenceSession.Layer]
    let embed, finalNorm, head: UnsafeMutablePointer<Float>
    /// Scratch, grown on demand: per row, and the attention scores.
    private var rowCapacity = 0, scoreCapacity = 0, logitCapacity = 0
    private var x, xn, rstd, q, atty, gate, up, act, sub, qpre, kpre, knew, vnew, scores, lastRows, logits: UnsafeMutablePointer<Float>?

    struct Segment {
        let cache: SequenceCache
        let tokens: [Int32]
        /// Whether the logits after the segment's last token are wanted.
        let wantLogits: Bool
    }

    init(model: LlamaModel) {
        self.model = model
        let p = model.params
        model.refreshNormWeights()
        layers = model.layers.map { o in
            let P = p.values.pointer
            func opt(_ off: Int) -> UnsafeMutablePointer<Float>? { off < 0 ? nil : P + off }
            func norm(_ off: Int) -> UnsafeMutablePointer<Float>? { off < 0 ? nil : model.normWeight(off) }
            return InferenceSession.Layer(
                ln1: model.normWeight(o.ln1), q: P + o.q, k: P + o.k, v: P + o.v, o: P + o.o, ln2: model.normWeight(o.ln2),
                gate: P + o.gate, up: P + o.up, down: P + o.down, bq: opt(o.bq), bk: opt(o.bk), bv: opt(o.bv),
                qNorm: norm(o.qNorm), kNorm: norm(o.kNorm), postAttn: norm(o.postAttn), postFfw: norm(o.postFfw))
        }
        embed = p.values.pointer + model.embedOffset
        finalNorm = model.normWeight(model.normOffset)
        head = p.values.pointer + model.headOffset
    }

    deinit {
        for b in [x, xn, rstd, q, atty, gate, up, act, sub, qpre, kpre, knew, vnew, scores, lastRows, logits] { b?.deallocate() }
    }

    func newCache() -> SequenceCache {
        let c = model.config
        return SequenceCache(layers: c.numLayers, width: c.numKVHeads * c.headDim, limit: c.maxPositions)
    }

    private static func realloc(_ p: inout UnsafeMutablePointer<Float>?, _ n: Int) {
        p?.deallocate()
        p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
    }

    private func reserveRows(_ n: Int) {
        guard n > rowCapacity else { return }
        let c = model.config
        let D = c.hiddenSize, I = c.intermediateSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim
        let r = max(n, 2 * rowCapacity)
        Self.realloc(&x, r * D); Self.realloc(&xn, r * D); Self.realloc(&rstd, r * max(1, c.numHeads, c.numKVHeads))
        Self.realloc(&q, r * qd); Self.realloc(&atty, r * qd); Self.realloc(&sub, r * D)
        Self.realloc(&qpre, r * qd); Self.realloc(&kpre, r * kvd); Self.realloc(&knew, r * kvd); Self.realloc(&vnew, r * kvd)
        Self.realloc(&gate, r * I); Self.realloc(&up, r * I); Self.realloc(&act, r * I)
        rowCapacity = r
    }

    /// Runs the segments (each sequence at most once) and returns, per segment that wants them, a pointer to its
    /// logits (valid until the next call). Every token must be in the vocabulary and every cache must have room
    /// below the model's context (the caller checks).
    func forward(_ segments: [Segment]) -> [UnsafePointer<Float>?] {
        let c = model.config
        let n = segments.reduce(0) { $0 + $1.tokens.count }
        precondition(n > 0)
        reserveRows(n)
        let D = c.hiddenSize, I = c.intermediateSize, H = c.numHeads, G = c.numKVHeads, hd = c.headDim
        let qd = H * hd, kvd = G * hd, per = H / G
        let eps = Float(c.rmsNormEps), scale = c.attentionScale, gemma = c.gemmaNorms, es = c.embeddingScale
        let x = x!, xn = xn!, q = q!, atty = atty!, gate = gate!, up = up!, act = act!, sub = sub!
        let qpre = qpre!, kpre = kpre!, knew = knew!, vnew = vnew!
        // Rows: where each segment starts, and each row's position.
        var starts: [Int] = [], positions: [Int32] = []
        var scoreOffsets: [Int] = [], scoreTotal = 0
        for s in segments {
            starts.append(positions.count)
            let p0 = s.cache.length
            s.cache.reserve(p0 + s.tokens.count)
            for j in 0..<s.tokens.count { positions.append(Int32(p0 + j)) }
            scoreOffsets.append(scoreTotal)
            scoreTotal += H * s.tokens.count * (p0 + s.tokens.count)
        }
        if scoreTotal > scoreCapacity {
            let cap = max(scoreTotal, 2 * scoreCapacity)
            Self.realloc(&scores, cap)
            scoreCapacity = cap
        }
        let sp = scores!
        var row = 0
        for s in segments {
            for t in s.tokens {
                let dst = x + row * D, src = embed + Int(t) * D
                if es == 1 { dst.update(from: src, count: D) } else { for i in 0..<D { dst[i] = src[i] * es } }
                row += 1
            }
        }
        // (segment, head) pairs for the attention.
        let work = segments.indices.flatMap { s in (0..<H).map { (s, $0) } }
        for (l, w) in layers.enumerated() {
            rmsnorm(xn, x, w.ln1, n, D, eps)
            let qOut = gemma ? qpre : q, kOut = gemma ? kpre : knew
            product(xn, w.q, qOut, rows: n, n: qd, k: D)
            product(xn, w.k, kOut, rows: n, n: kvd, k: D)
            product(xn, w.v, vnew, rows: n, n: kvd, k: D)
            if let bq = w.bq, let bk = w.bk, let bv = w.bv {
                tk_add_bias(qOut, bq, n, qd)
                tk_add_bias(kOut, bk, n, kvd)
                tk_add_bias(vnew, bv, n, kvd)
            }
            if let qn = w.qNorm, let kn = w.kNorm {
                rmsnorm(q, qpre, qn, n * H, hd, eps)
                rmsnorm(knew, kpre, kn, n * G, hd, eps)
            }
            let table = model.layerRope[l]
            rope(q, positions, n, H, table: table)
            rope(knew, positions, n, G, table: table)
            for (i, s) in segments.enumerated() {
                let p0 = s.cache.length, m = s.tokens.count
                (s.cache.k[l] + p0 * kvd).update(from: knew + starts[i] * kvd, count: m * kvd)
                (s.cache.v[l] + p0 * kvd).update(from: vnew + starts[i] * kvd, count: m * kvd)
            }
            // Per (segment, head): the products and softmax of InferenceSession.step on that sequence's cache.
            let window = c.isSliding(l) ? c.slidingWindow! : Int.max
            Compute.parallel(work.count) { r in
                for wi in r {
                    let (si, h) = work[wi]
                    let seg = segments[si]
                    let p0 = seg.cache.length, m = seg.tokens.count, L = p0 + m
                    let kc = seg.cache.k[l], vc = seg.cache.v[l]
                    let g = h / per
                    let s = sp + scoreOffsets[si] + h * m * L
                    let qrow = q + starts[si] * qd, yrow = atty + starts[si] * qd
                    Matmul.gemm(qrow + h * hd, lda: qd, kc + g * hd, ldb: kvd, s, ldc: L, m: m, n: L, k: hd, transposeB: true)
                    for j in 0..<m {
                        let t = p0 + j
                        maskedSoftmax(s + j * L, from: window == Int.max ? 0 : max(0, t - window + 1), to: t + 1, count: L, scale: scale)
                    }
                    Matmul.gemm(s, lda: L, vc + g * hd, ldb: kvd, yrow + h * hd, ldc: qd, m: m, n: hd, k: L)
                }
            }
            if let pa = w.postAttn {
                product(atty, w.o, sub, rows: n, n: D, k: qd)
                addNormed(sub, pa, n, D, eps)
            } else {
                product(atty, w.o, x, rows: n, n: D, k: qd, accumulate: true)
            }
            rmsnorm(xn, x, w.ln2, n, D, eps)
            product(xn, w.gate, gate, rows: n, n: I, k: D)
            product(xn, w.up, up, rows: n, n: I, k: D)
            Compute.parallel(n * I, grain: 4096) { r in
                if gemma {
                    tk_geglu_forward(act + r.lowerBound, gate + r.lowerBound, up + r.lowerBound, r.count)
                } else {
                    tk_swiglu_forward(act + r.lowerBound, gate + r.lowerBound, up + r.lowerBound, r.count)
                }
            }
            if let pf = w.postFfw {
                product(act, w.down, sub, rows: n, n: D, k: I)
                addNormed(sub, pf, n, D, eps)
            } else {
                product(act, w.down, x, rows: n, n: D, k: I, accumulate: true)
            }
        }
        for s in segments { s.cache.length += s.tokens.count }
        // The head on the last row of each segment that wants logits, all in one product.
        let wanted = segments.indices.filter { segments[$0].wantLogits }
        guard !wanted.isEmpty else { return segments.map { _ in nil } }
        let V = c.vocabSize, r = wanted.count
        if r > logitCapacity {
            let cap = max(r, 2 * logitCapacity)
            Self.realloc(&logits, cap * V)
            Self.realloc(&lastRows, cap * D)
            logitCapacity = cap
        }
        let lr = lastRows!, lg = logits!
        for (j, si) in wanted.enumerated() {
            (lr + j * D).update(from: x + (starts[si] + segments[si].tokens.count - 1) * D, count: D)
        }
        tk_rmsnorm_forward(xn, rstd!, lr, finalNorm, Int(r), D, eps)
        product(xn, head, lg, rows: r, n: V, k: D)
        if let cap = c.finalLogitSoftcap {
            let fc = Float(cap)
            Compute.parallel(r * V, grain: 1 << 14) { rg in
                for i in rg { lg[i] = fc * tanhf(lg[i] / fc) }
            }
        }
        var out = [UnsafePointer<Float>?](repeating: nil, count: segments.count)
        for (j, si) in wanted.enumerated() { out[si] = UnsafePointer(lg + j * V) }
        return out
    }

    /// Rows up to which a product streams the weights (tk_gemm_nt_rows) instead of calling sgemm: OpenBLAS packs the
    /// whole weight matrix on every call, which for a few rows costs more than the products (perf: 45-55% of a
    /// decode step on Gemma 3 270M in sgemm_incopy). 0 turns it off (benchmarks compare).
    nonisolated(unsafe) public static var streamRows = 16

    /// c[rows x n] = a[rows x k] · wᵀ (w is [n x k]), or c += it: the weights split by output columns across threads.
    func product(
        _ a: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, rows: Int, n: Int, k: Int,
        accumulate: Bool = false
    ) {
        guard rows <= Self.streamRows else {
            Matmul.parallelGemm(a, w, c, m: rows, n: n, k: k, transposeB: true, beta: accumulate ? 1 : 0)
            return
        }
        Compute.parallel(n, grain: 64) { r in
            tk_gemm_nt_rows(a, k, w + r.lowerBound * k, k, c + r.lowerBound, n, rows, r.count, k, accumulate ? 1 : 0)
        }
    }

    func rmsnorm(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafeMutablePointer<Float>, _ weight: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int, _ eps: Float) {
        let rs = rstd!
        Compute.parallel(N, grain: 64) { r in
            tk_rmsnorm_forward(out + r.lowerBound * D, rs + r.lowerBound, inp + r.lowerBound * D, weight, r.count, D, eps)
        }
    }

    /// x += norm(y) (Gemma's norms of the attention and MLP outputs).
    func addNormed(_ y: UnsafeMutablePointer<Float>, _ weight: UnsafeMutablePointer<Float>, _ N: Int, _ D: Int, _ eps: Float) {
        rmsnorm(xn!, y, weight, N, D, eps)
        tk_add(x!, xn!, N * D)
    }

    func rope(_ v: UnsafeMutablePointer<Float>, _ positions: [Int32], _ N: Int, _ heads: Int, table: Int) {
        let hd = model.config.headDim
        positions.withUnsafeBufferPointer { pos in
            model.ropeTables[table].cos.withUnsafeBufferPointer { ct in
                model.ropeTables[table].sin.withUnsafeBufferPointer { st in
                    tk_rope_forward(v, pos.baseAddress!, ct.baseAddress!, st.baseAddress!, N, heads, hd)
                }
            }
        }
    }
}

/// Generations that decode together (see the file header). Thread-safe: call `generate` from as many threads as
/// there are concurrent requests.
public final class DecodeBatcher: @unchecked Sendable {
    public let model: LlamaModel
    /// Prompt tokens a sequence runs per pass while it prefills (as InferenceSession's chunk).
    public let prefillChunk: Int
    let engine: BatchForward
    let cond = NSCondition()
    private var pending: [Request] = []
    private var active: [Request] = []
    private var driving = false
    private var _maxBatch: Int
    /// Passes run and sequences in them (for tests and benchmarks: how much batching happened).
    public private(set) var passes = 0, batchedRows = 0, largestBatch = 0

    /// Requests queued and not yet in the batch.
    public var waitingCount: Int { cond.withLock { pending.count } }

    /// Most sequences decoding at once; further requests wait in order.
    public var maxBatch: Int {
        get { cond.withLock { _maxBatch } }
        set { cond.withLock { _maxBatch = max(1, newValue) } }
    }

    public init(model: LlamaModel, maxBatch: Int = 8, prefillChunk: Int = 64) {
        self.model = model
        _maxBatch = max(1, maxBatch)
        self.prefillChunk = max(1, prefillChunk)
        engine = BatchForward(model: model)
    }

    final class Request {
        let prompt: [Int32]
        let options: SamplingOptions
        let constraint: TokenConstraint?
        let decode: ([Int32]) -> String
        let onText: ((String) -> Bool)?
        var cache: SequenceCache?
        var fed = 0
        var sampler: Sampler
        var next: Int32?
        var out: [Int32] = [], textIds: [Int32] = []
        var text = "", emitted = 0, finish = "length"
        var done = false
        var result: Result<GenerationResult, Error>?

        init(prompt: [Int32], options: SamplingOptions, constraint: TokenConstraint?, decode: @escaping ([Int32]) -> String, onText: ((String) -> Bool)?) {
            self.prompt = prompt
            self.options = options
            self.constraint = constraint
            self.decode = decode
            self.onText = onText
            sampler = Sampler(options)
        }

        /// InferenceSession.generate's flush: text that can no longer be part of a stop string or an unfinished
        /// UTF-8 character goes to onText.
        func flush(final: Bool) -> Bool {
            guard let onText else { return true }
            let ready = streamableLength(text, stop: options.stop, final: final)
            guard ready > emitted else { return true }
            let start = text.index(text.startIndex, offsetBy: emitted)
            let end = text.index(text.startIndex, offsetBy: ready)
            emitted = ready
            return onText(String(text[start..<end]))
        }

        func finish(_ reason: String) {
            finish = reason
            _ = flush(final: true)
            result = .success(GenerationResult(tokens: out, text: text, finishReason: finish, promptTokens: prompt.count))
            done = true
            cache = nil
        }

        func fail(_ e: Error) {
            result = .failure(e)
            done = true
            cache = nil
        }

        /// The logits after the sequence's last token, with the constraint applied: nil when the request ended here
        /// (InferenceSession's generate loop, up to sampling).
        func prepare(_ logitsPointer: UnsafePointer<Float>, vocabSize V: Int) -> [Float]? {
            if let constraint, constraint.mustStop {
                finish("stop")
                return nil
            }
            var logits = Array(UnsafeBufferPointer(start: logitsPointer, count: V))
            if let constraint {
                let ok = logits.withUnsafeMutableBufferPointer {
                    applyConstraint(constraint, to: $0.baseAddress!, vocabSize: $0.count, stopTokens: options.stopTokens)
                }
                guard ok else {
                    fail(LoomError("generation: the constraint allows no token after \(out.count) tokens"))
                    return nil
                }
            }
            return logits
        }

        /// The sampled token: decide whether the request goes on (the rest of the loop).
        func advance(_ t: Int32, maxLength: Int) {
            out.append(t)
            if options.stopTokens.contains(t) { return finish("stop") }
            constraint?.accept(t)
            textIds.append(t)
            text = decode(textIds)
            if let cut = options.stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                text = String(text[..<cut])
                return finish("stop")
            }
            if !flush(final: false) { return finish("stop") }
            if out.count == options.maxTokens || (cache?.length ?? maxLength) >= maxLength { return finish("length") }
            next = t
        }
    }

    /// Generates from `prompt` as InferenceSession.generate does (same options, constraint, stop rules and
    /// streaming), decoding together with whatever other generations are running.
    public func generate(
        prompt: [Int32], options: SamplingOptions, constraint: TokenConstraint? = nil, decode: @escaping ([Int32]) -> String,
        onText: ((String) -> Bool)? = nil
    ) throws -> GenerationResult {
        try options.validate()
        let c = model.config
        guard !prompt.isEmpty else { throw LoomError("generation: the prompt has no tokens") }
        guard prompt.count < c.maxPositions else {
            throw LoomError("generation: the prompt has \(prompt.count) tokens; the model's context is \(c.maxPositions)")
        }
        for t in prompt where t < 0 || Int(t) >= c.vocabSize {
            throw LoomError("generation: token id \(t) is outside the model's vocabulary (\(c.vocabSize))")
        }
        let r = Request(prompt: prompt, options: options, constraint: constraint, decode: decode, onText: onText)
        cond.lock()
        pending.append(r)
        while !r.done {
            if !driving {
                driving = true
                cond.unlock()
                drive(until: r)
                cond.lock()
                driving = false
                cond.broadcast()
            } else {
                cond.wait()
            }
        }
        cond.unlock()
        return try r.result!.get()
    }

    /// Runs passes until `mine` is done (the caller then hands the driving on).
    private func drive(until mine: Request) {
        while true {
            cond.lock()
            while active.count < _maxBatch, !pending.isEmpty { active.append(pending.removeFirst()) }
            let batch = active
            cond.unlock()
            if batch.isEmpty { return }
            pass(batch)
            cond.lock()
            active.removeAll { $0.done }
            cond.broadcast()
            cond.unlock()
            if mine.done { return }
        }
    }

    /// One forward pass over every active sequence: a prompt chunk for those still prefilling, the last sampled
    /// token for the others; then each sequence with logits samples its next token.
    private func pass(_ batch: [Request]) {
        let c = model.config
        var segments: [BatchForward.Segment] = []
        var owners: [Request] = []
        for r in batch where !r.done {
            if r.cache == nil { r.cache = engine.newCache() }
            if r.fed < r.prompt.count {
                let end = min(r.prompt.count, r.fed + prefillChunk)
                segments.append(.init(cache: r.cache!, tokens: Array(r.prompt[r.fed..<end]), wantLogits: end == r.prompt.count))
                r.fed = end
            } else if let t = r.next {
                segments.append(.init(cache: r.cache!, tokens: [t], wantLogits: true))
                r.next = nil
            } else {
                continue
            }
            owners.append(r)
        }
        guard !segments.isEmpty else { return }
        let logits = engine.forward(segments)
        passes += 1
        batchedRows += segments.count
        largestBatch = max(largestBatch, segments.count)
        // Constraints in order on this thread (a constraint may share caches with others); the sampling itself —
        // with a temperature, a selection over the vocabulary — for all sequences at once across the threads (each
        // sampler is its request's own value); then stops, text and streaming in order.
        var ready: [(Request, [Float])] = []
        for (i, r) in owners.enumerated() {
            guard let lp = logits[i], let l = r.prepare(lp, vocabSize: c.vocabSize) else { continue }
            ready.append((r, l))
        }
        var tokens = [Int32](repeating: 0, count: ready.count)
        tokens.withUnsafeMutableBufferPointer { tb in
            let tp = tb.baseAddress!
            Compute.parallel(ready.count) { range in
                for j in range { tp[j] = ready[j].0.sampler.next(ready[j].1) }
            }
        }
        for (j, (r, _)) in ready.enumerated() { r.advance(tokens[j], maxLength: c.maxPositions) }
    }
}
