// The shape every rule set shares: a list of measurements with their thresholds, checked in the published order.
// A record fails at the first check that does not hold (the reason datatrove reports); in score mode every
// measurement is written to `meta.quality` so a user can choose thresholds by looking at the data.

import LoomCore

/// One measurement of a record and the check made on it.
public struct Measure: Sendable, Equatable {
    public enum Bound: String, Sendable { case min, max }
    /// The check's name, e.g. "min_doc_words"; also the option that sets its threshold.
    public var check: String
    /// What was measured, e.g. "words" (the key under meta.quality.RULE).
    public var metric: String
    public var value: Double
    public var threshold: Double?
    public var bound: Bound
    /// Fails when below a min or above a max; a nil threshold never fails (the check is off).
    public var failed: Bool {
        guard let threshold else { return false }
        // NaN (a mean of nothing) fails no check, as numpy's nan compares false in datatrove.
        switch bound {
        case .min: return value < threshold
        case .max: return value > threshold
        }
    }

    public init(_ check: String, _ metric: String, _ value: Double, _ bound: Bound, _ threshold: Double?) {
        self.check = check
        self.metric = metric
        self.value = value
        self.threshold = threshold
        self.bound = bound
    }

    /// "words 12 < 50".
    public var summary: String {
        let op = bound == .min ? "<" : ">"
        return "\(metric) \(Measure.format(value)) \(op) \(threshold.map(Measure.format) ?? "-")"
    }

    static func format(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int(v)) }
        return String(format: "%.4g", v)
    }
}

/// What a rule set found in one record.
public struct RuleOutcome: Sendable {
    public enum Check: Sendable {
        case measure(Measure)
        /// A whole-record failure that is not a threshold (C4's "lorem ipsum", an empty text).
        case flag(String)
    }
    /// In the order the rule set checks them.
    public var checks: [Check] = []
    /// The text to keep when the rule set rewrites it (C4 removes lines); nil keeps the text as it is.
    public var text: String?

    public init() {}

    mutating func add(_ m: Measure) { checks.append(.measure(m)) }
    mutating func flag(_ check: String) { checks.append(.flag(check)) }

    public var measures: [Measure] {
        checks.compactMap { if case .measure(let m) = $0 { return m } else { return nil } }
    }

    /// The first check that fails, in order: its name and, for a threshold, the measure.
    public var failure: (check: String, measure: Measure?)? {
        for c in checks {
            switch c {
            case .flag(let name): return (name, nil)
            case .measure(let m) where m.failed: return (m.check, m)
            default: continue
            }
        }
        return nil
    }
}

public protocol RuleSet: Sendable {
    /// "gopher-quality", "c4", ...
    var name: String { get }
    /// The options with their values, for the manifest and `--list-rules`.
    var options: JSONObject { get }
    func evaluate(_ doc: FilterDocument) -> RuleOutcome
}

/// Reads a rule set's options from a JSON object, checking every key.
struct OptionReader {
    let rule: String
    let object: JSONObject
    var used = Set<String>()

    init(rule: String, _ value: JSONValue?) throws {
        self.rule = rule
        if let value, value != .null {
            guard let o = value.objectValue else {
                throw LoomError("filter: the options of \(rule) must be a mapping (e.g. \(rule): { ... })")
            }
            object = o
        } else {
            object = JSONObject()
        }
    }

    /// A number, or nil when given as null/false (the check off); `d` when absent.
    mutating func number(_ key: String, _ d: Double?) throws -> Double? {
        used.insert(key)
        guard let v = object[key] else { return d }
        switch v {
        case .null, .bool(false): return nil
        case .int(let i): return Double(i)
        case .double(let x): return x
        default: throw LoomError("filter: \(rule).\(key) must be a number or null (got \(v))")
        }
    }

    mutating func bool(_ key: String, _ d: Bool) throws -> Bool {
        used.insert(key)
        guard let v = object[key] else { return d }
        guard case .bool(let b) = v else { throw LoomError("filter: \(rule).\(key) must be true or false") }
        return b
    }

    mutating func string(_ key: String, _ d: String?) throws -> String? {
        used.insert(key)
        guard let v = object[key] else { return d }
        if v == .null { return nil }
        guard let s = v.stringValue else { throw LoomError("filter: \(rule).\(key) must be a string") }
        return s
    }

    mutating func strings(_ key: String, _ d: [String]) throws -> [String] {
        used.insert(key)
        guard let v = object[key] else { return d }
        guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
            throw LoomError("filter: \(rule).\(key) must be a list of strings")
        }
        return a.compactMap(\.stringValue)
    }

    /// Checks that every key given was one the rule set knows.
    func finish() throws {
        for k in object.keys where !used.contains(k) {
            throw LoomError(
                "filter: unknown option '\(k)' for \(rule) (available: \(used.sorted().joined(separator: ", ")))")
        }
    }
}

extension JSONObject {
    mutating func put(_ k: String, _ v: Double?) { self[k] = v.map { $0 == $0.rounded() && abs($0) < 1e15 ? .int(Int($0)) : .double($0) } ?? .null }
}
