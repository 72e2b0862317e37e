// The shared Verilog corpus's MANIFEST.tsv (../shared/corpora/README.md, section verilog): which tools accept each
// file alone and with the other directories of its group. Used by the corpus test and loom-bench.

import Foundation
import LoomCore

public struct VerilogCorpusEntry: Sendable {
    /// As written in the manifest (relative to the `verilog/` folder).
    public var path: String
    public var absolutePath: String
    public var bytes: Int
    public var iverilogOK: Bool
    public var yosysOK: Bool
    public var iverilogContextOK: Bool
    public var yosysContextOK: Bool
    /// `dev/serv`, `dev/pyverilog`, ...
    public var group: String
    /// Every directory of the group holding a .v file (the `-I`/`-y` directories of the `_ctx_` columns).
    public var contextDirectories: [String]
}

public enum VerilogCorpus {
    /// Reads `root/MANIFEST.tsv` (root is e.g. `$LOOM_SHARED/corpora/verilog/dev`).
    public static func load(root: String) throws -> [VerilogCorpusEntry] {
        let text = try FS.readText(FS.join(root, "MANIFEST.tsv"))
        let verilogDir = (root as NSString).deletingLastPathComponent
        var rows: [VerilogCorpusEntry] = []
        for line in text.split(separator: "\n").dropFirst() {
            let c = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard c.count >= 6 else { continue }
            let parts = c[0].split(separator: "/")
            let group = parts.prefix(2).joined(separator: "/")
            rows.append(
                VerilogCorpusEntry(
                    path: c[0], absolutePath: FS.join(verilogDir, c[0]), bytes: Int(c[1]) ?? 0, iverilogOK: c[2] == "1",
                    yosysOK: c[3] == "1", iverilogContextOK: c[4] == "1", yosysContextOK: c[5] == "1", group: group,
                    contextDirectories: []))
        }
        var dirs: [String: Set<String>] = [:]
        for r in rows { dirs[r.group, default: []].insert((r.absolutePath as NSString).deletingLastPathComponent) }
        for i in rows.indices { rows[i].contextDirectories = dirs[rows[i].group, default: []].sorted() }
        return rows
    }
}
