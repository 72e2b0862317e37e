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
