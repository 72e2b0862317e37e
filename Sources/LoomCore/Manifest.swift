// manifest.json: what a stage directory holds and what made it. Written last, atomically; its presence with
// status "complete" and a matching fingerprint is what lets a re-run skip the stage.

import Foundation

public let loomVersion = "0.1.0"

public struct ManifestInput: Equatable, Sendable {
    public var path: String
    public var kind: String  // "file" or "stage"
    public var fingerprint: String

    var json: JSONValue { ["path": .string(path), "kind": .string(kind), "fingerprint": .string(fingerprint)] }
}

public struct Manifest: Sendable {
    public var stage: String
    public var toolVersion = loomVersion
    public var config: JSONValue
    public var configHash: String
    public var inputs: [ManifestInput]
    /// Hash of stage name, tool version, config hash and the inputs' fingerprints: equal fingerprints mean the
    /// stage would produce the same output, so downstream stages key on it.
    public var fingerprint: String
    public var status: String  // "complete" or "failed"
    public var errors: [String] = []
    public var counts: JSONObject = JSONObject()
    public var shards: [ShardInfo] = []
    public var rejects = 0
    public var startedAt = ""
    public var finishedAt = ""
    public var seconds = 0.0
    /// The process's peak resident memory (VmHWM) when the stage finished, in MB.
    public var peakMemoryMB = 0.0

    public var records: Int { shards.reduce(0) { $0 + $1.records } }

    public static let fileName = "manifest.json"

    /// The fields that do not depend on when the stage ran (everything but the times): two runs of the same
    /// stage on the same inputs have equal `deterministicJSON`.
    public var deterministicJSON: JSONValue {
        var o = JSONObject()
        o.append("stage", .string(stage))
        o.append("tool_version", .string(toolVersion))
        o.append("status", .string(status))
        o.append("fingerprint", .string(fingerprint))
        o.append("config_hash", .string(configHash))
        o.append("config", config)
        o.append("inputs", .array(inputs.map(\.json)))
        o.append("records", .int(records))
        o.append("rejects", .int(rejects))
        o.append("counts", .object(counts))
        o.append("shards", .array(shards.map(\.json)))
        o.append("errors", .array(errors.map { .string($0) }))
        return .object(o)
    }

    public var json: JSONValue {
        guard case .object(var o) = deterministicJSON else { return deterministicJSON }
        o.append("started_at", .string(startedAt))
        o.append("finished_at", .string(finishedAt))
        o.append("seconds", .double((seconds * 1000).rounded() / 1000))
        o.append("peak_memory_mb", .double((peakMemoryMB * 10).rounded() / 10))
        return .object(o)
    }

    public func write(directory: String) throws {
        try FS.writeAtomically(json.prettyString + "\n", to: FS.join(directory, Manifest.fileName))
    }

    public static func read(directory: String) throws -> Manifest {
        let path = FS.join(directory, fileName)
        guard FS.exists(path) else {
            throw LoomError("\(directory) has no \(fileName): it is not a finished Loom stage directory (run the stage that makes it first)")
        }
        let text = try FS.readText(path)
        let v: JSONValue
        do { v = try JSONValue.parse(text) } catch { throw LoomError("\(path): \(error)") }
        guard let stage = v["stage"]?.stringValue, let fp = v["fingerprint"]?.stringValue,
            let status = v["status"]?.stringValue
        else { throw LoomError("\(path): not a Loom manifest (missing stage, fingerprint or status)") }
        var m = Manifest(
            stage: stage, config: v["config"] ?? .null, configHash: v["config_hash"]?.stringValue ?? "",
            inputs: [], fingerprint: fp, status: status)
        m.toolVersion = v["tool_version"]?.stringValue ?? ""
        m.inputs = (v["inputs"]?.arrayValue ?? []).compactMap {
            guard let p = $0["path"]?.stringValue, let k = $0["kind"]?.stringValue,
                let f = $0["fingerprint"]?.stringValue
            else { return nil }
            return ManifestInput(path: p, kind: k, fingerprint: f)
        }
        m.errors = (v["errors"]?.arrayValue ?? []).compactMap(\.stringValue)
        m.counts = v["counts"]?.objectValue ?? JSONObject()
        m.shards = (v["shards"]?.arrayValue ?? []).compactMap(ShardInfo.init(json:))
        m.rejects = v["rejects"]?.intValue ?? 0
        m.startedAt = v["started_at"]?.stringValue ?? ""
        m.finishedAt = v["finished_at"]?.stringValue ?? ""
        m.seconds = v["seconds"]?.doubleValue ?? 0
        m.peakMemoryMB = v["peak_memory_mb"]?.doubleValue ?? 0
        return m
    }
}

extension JSONValue {
    /// Indented JSON for files people read (manifests): small arrays of scalars stay on one line.
    public var prettyString: String {
        var out = ""
        pretty(into: &out, indent: 0)
        return out
    }

    private func pretty(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch self {
        case .array(let a) where !a.isEmpty && a.contains(where: { $0.isContainer }):
            out += "[\n"
            for (i, v) in a.enumerated() {
                out += pad
                v.pretty(into: &out, indent: indent + 1)
                out += i + 1 < a.count ? ",\n" : "\n"
            }
            out += closePad + "]"
        case .object(let o) where o.count > 0:
            out += "{\n"
            for (i, p) in o.pairs.enumerated() {
                out += pad + JSONValue.string(p.key).jsonString + ": "
                p.value.pretty(into: &out, indent: indent + 1)
                out += i + 1 < o.count ? ",\n" : "\n"
            }
            out += closePad + "}"
        default:
            out += jsonString
        }
    }

    var isContainer: Bool {
        switch self {
        case .array, .object: return true
        default: return false
        }
    }
}
