// Where Loom's templates/ directory is: every prompt, phrasing and chat template lives there (DESIGN.md: code holds
// no prompt text).

import Foundation

public enum TemplateDirectory {
    /// `LOOM_TEMPLATES`, else the first `templates/` found walking up from the executable, else from the current
    /// directory.
    public static func locate() throws -> String {
        if let p = ProcessInfo.processInfo.environment["LOOM_TEMPLATES"] {
            guard FS.isDirectory(p) else { throw LoomError("LOOM_TEMPLATES=\(p) is not a directory") }
            return p
        }
        var starts = [FileManager.default.currentDirectoryPath]
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        starts.insert(exe, at: 0)
        for start in starts {
            var dir = URL(fileURLWithPath: start)
            for _ in 0..<8 {
                let candidate = dir.appendingPathComponent("templates").path
                if FS.isDirectory(candidate + "/rc") { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        throw LoomError("cannot find Loom's templates/ directory: set LOOM_TEMPLATES to it")
    }
}
