// A small parallel map over DispatchQueue.concurrentPerform: `jobs` threads take items in order from a shared
// counter; results come back in input order, so callers stay deterministic whatever the thread count.

import Dispatch
import Foundation

/// Maps `items` with up to `jobs` threads, results in input order. The first error thrown stops the others from
/// taking new items and is rethrown.
public func parallelMap<T, R>(_ items: [T], jobs: Int, _ body: (T) throws -> R) throws -> [R] {
    if jobs <= 1 || items.count <= 1 { return try items.map(body) }
    let state = ParallelMapState<T, R>(items)
    try withoutActuallyEscaping(body) { body in
        let work = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: min(jobs, items.count)) { _ in state.work(work.value) }
        if let e = state.error { throw e }
    }
    return state.results.map { $0! }
}

/// Hands a value to concurrently running code whose safety the caller guarantees.
struct UncheckedSendable<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}

final class ParallelMapState<T, R>: @unchecked Sendable {
    let items: [T]
    var results: [R?]
    var error: Error?
    private var next = 0
    private let lock = NSLock()

    init(_ items: [T]) {
        self.items = items
        results = [R?](repeating: nil, count: items.count)
    }

    func work(_ body: (T) throws -> R) {
        while true {
            let i: Int? = lock.withLock {
                guard error == nil, next < items.count else { return nil }
                defer { next += 1 }
                return next
            }
            guard let i else { return }
            do {
                let r = try body(items[i])
                lock.withLock { results[i] = r }
            } catch {
                lock.withLock { if self.error == nil { self.error = error } }
                return
            }
        }
    }
}

/// Produces results for `items` on `jobs` worker threads while the calling thread consumes them in input order as
/// soon as each is ready, so in-order work (appending to one output) overlaps the parallel work. Workers stay at
/// most `window` items ahead of the consumer, which bounds memory. The first error (from either side) stops both
/// and is rethrown.
public func orderedParallelForEach<T, R>(
    _ items: [T], jobs: Int, window: Int, produce: (T) throws -> R, consume: (Int, R) throws -> Void
) throws {
    if jobs <= 1 || items.count <= 1 {
        for (i, x) in items.enumerated() { try consume(i, try produce(x)) }
        return
    }
    let state = OrderedState<R>(count: items.count, window: max(1, window))
    let group = DispatchGroup()
    try withoutActuallyEscaping(produce) { produce in
        let work = UncheckedSendable((items, produce))
        // One serial queue per worker, not the global concurrent queue: Dispatch runs about one block per core on
        // that one, which serialises workers that spend their time waiting (a network request); serial queues get
        // threads of their own. (Detached Threads would outlive `withoutActuallyEscaping`'s check by a moment.)
        for k in 0..<min(jobs, items.count) {
            DispatchQueue(label: "loom.worker.\(k)").async(group: group) {
                let (items, produce) = work.value
                while let i = state.take() {
                    do {
                        state.put(i, try produce(items[i]))
                    } catch {
                        state.fail(error)
                        return
                    }
                }
            }
        }
        defer { group.wait() }
        for i in 0..<items.count {
            guard let r = state.wait(for: i) else { break }
            do {
                try consume(i, r)
            } catch {
                state.fail(error)
                break
            }
        }
    }
    if let e = state.error { throw e }
}

final class OrderedState<R>: @unchecked Sendable {
    private let cond = NSCondition()
    private var results: [R?]
    private var next = 0
    private var consumed = 0
    private let window: Int
    private(set) var error: Error?

    init(count: Int, window: Int) {
        results = [R?](repeating: nil, count: count)
        self.window = window
    }

    /// The next index to produce, waiting while it is too far ahead; nil when done or failed.
    func take() -> Int? {
        cond.lock()
        defer { cond.unlock() }
        while error == nil && next < results.count && next >= consumed + window { cond.wait() }
        guard error == nil, next < results.count else { return nil }
        next += 1
        return next - 1
    }

    func put(_ i: Int, _ r: R) {
        cond.lock()
        results[i] = r
        cond.broadcast()
        cond.unlock()
    }

    func fail(_ e: Error) {
        cond.lock()
        if error == nil { error = e }
        cond.broadcast()
        cond.unlock()
    }

    /// Waits for result i and hands it over (the slot is cleared); nil if a worker failed.
    func wait(for i: Int) -> R? {
        cond.lock()
        defer { cond.unlock() }
        while error == nil && results[i] == nil { cond.wait() }
        guard error == nil, let r = results[i] else { return nil }
        results[i] = nil
        consumed = i + 1
        cond.broadcast()
        return r
    }
}
