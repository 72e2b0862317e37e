// EDA feedback: Yosys (`read_verilog`) and Icarus Verilog (`iverilog`) run on a piece of Verilog as time-limited
// subprocesses in a scratch directory; their verdict and diagnostic come back as a ToolVerdict. A missing tool is
// one clear error naming the Debian package.

import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#endif

public struct ToolVerdict: Sendable, Equatable {
    public var tool: String
    public var accepted: Bool
    /// What the tool printed (errors and warnings), with the scratch file's path replaced by the display name.
    public var message: String
    public var timedOut: Bool
}

public enum EDATool: String, Sendable, CaseIterable {
    case yosys, iverilog

    public var aptPackage: String { rawValue }

    /// The executable on PATH, or an error naming the package to install.
    public func locate() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let p = String(dir) + "/" + rawValue
            if access(p, X_OK) == 0 { return p }
        }
        throw LoomError(
            "\(rawValue) not found on PATH: install it with 'sudo apt-get install \(aptPackage)' (or make setup)")
    }
}

/// Runs the tools. Thread-safe: every call writes its own file in the scratch directory.
public final class EDARunner: @unchecked Sendable {
    public let scratch: String
    public let timeout: Double
    public let yosysPath: String?
    public let iverilogPath: String?
    private let lock = NSLock()
    private var counter = 0

    /// `tools` are the ones the caller will use: each must be installed.
    public init(scratch: String, timeout: Double = 20, tools: [EDATool] = EDATool.allCases) throws {
        self.scratch = scratch
        self.timeout = timeout
        try FS.makeDirectory(scratch)
        yosysPath = tools.contains(.yosys) ? try EDATool.yosys.locate() : nil
        iverilogPath = tools.contains(.iverilog) ? try EDATool.iverilog.locate() : nil
    }

    private func nextFile() -> (dir: String, file: String) {
        let n: Int = lock.withLock {
            counter += 1
            return counter
        }
        let dir = FS.join(scratch, "job-\(n)")
        return (dir, "design.v")
    }

    /// `yosys -q -p 'read_verilog [-I dir] design.v'`: parsing and AST checks, no hierarchy.
    public func yosys(_ text: String, name: String = "design.v", includeDirs: [String] = []) -> ToolVerdict {
        guard let exe = yosysPath else { return ToolVerdict(tool: "yosys", accepted: false, message: "yosys not enabled", timedOut: false) }
        let inc = includeDirs.map { " -I" + $0 }.joined()
        return run(tool: "yosys", exe: exe, text: text, name: name) { file in
            ["-q", "-p", "read_verilog\(inc) \(file)"]
        }
    }

    /// `iverilog -g2005 -t null [-I dir] [-y dir] design.v`: elaborates, so other modules come from `libraryDirs`.
    public func iverilog(_ text: String, name: String = "design.v", includeDirs: [String] = [], libraryDirs: [String] = [])
        -> ToolVerdict
    {
        guard let exe = iverilogPath else {
            return ToolVerdict(tool: "iverilog", accepted: false, message: "iverilog not enabled", timedOut: false)
        }
        return run(tool: "iverilog", exe: exe, text: text, name: name) { file in
            ["-g2005", "-t", "null", "-o", "/dev/null"] + includeDirs.flatMap { ["-I", $0] }
                + libraryDirs.flatMap { ["-y", $0] } + [file]
        }
    }

    /// The program `iverilog -g2005 -t vvp` compiles `text` to, with object addresses renumbered in order of
    /// appearance and source positions taken out: two sources that mean the same to Icarus give the same text.
    /// nil when iverilog rejects the source.
    public func iverilogProgram(_ text: String, includeDirs: [String] = [], libraryDirs: [String] = []) -> String? {
        guard let exe = iverilogPath else { return nil }
        let n: Int = lock.withLock {
            counter += 1
            return counter
        }
        let out = FS.join(scratch, "program-\(n).vvp")
        defer { FS.remove(out) }
        let v = run(tool: "iverilog", exe: exe, text: text, name: "design.v") { file in
            ["-g2005", "-t", "vvp", "-o", out] + includeDirs.flatMap { ["-I", $0] } + libraryDirs.flatMap { ["-y", $0] }
                + [file]
        }
        guard v.accepted, let program = try? String(contentsOfFile: out, encoding: .utf8) else { return nil }
        return EDARunner.normalizeProgram(program)
    }

    static func normalizeProgram(_ program: String) -> String {
        var ids: [Substring: Int] = [:]
        var lines: [String] = []
        guard let address = try? NSRegularExpression(pattern: "0x[0-9a-f]+") else { return program }
        let patterns: [(String, String)] = [
            ("%file_line \\d+ \\d+ \\d+;", "%file_line;"),
            ("%vpi_call \\d+ \\d+", "%vpi_call"),
            ("%vpi_func(/\\w+)? \\d+ \\d+", "%vpi_func$1"),
            ("(\\.scope [^;]*?\"[^\"]*\" \"[^\"]*\") \\d+ \\d+(, \\d+ \\d+ \\d+)?", "$1"),
            ("(\\.param/\\w+ \"[^\"]*\") \\d+ \\d+ \\d+,", "$1,"),
        ]
        let positions = patterns.compactMap { p, t in (try? NSRegularExpression(pattern: p)).map { ($0, t) } }
        for raw in program.split(separator: "\n", omittingEmptySubsequences: false) {
            if raw.hasPrefix(":file_names") || raw.hasPrefix("    \"") { continue }
            // Addresses, renumbered in order of first appearance.
            var line = ""
            let ns = String(raw)
            var last = ns.startIndex
            for m in address.matches(in: ns, range: NSRange(ns.startIndex..., in: ns)) {
                guard let r = Swift.Range(m.range, in: ns) else { continue }
                line += ns[last..<r.lowerBound]
                let key = ns[r]
                let id = ids[key] ?? ids.count
                ids[key] = id
                line += "A\(id)"
                last = r.upperBound
            }
            line += ns[last...]
            for (re, tmpl) in positions {
                line = re.stringByReplacingMatches(in: line, range: NSRange(line.startIndex..., in: line), withTemplate: tmpl)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    private func run(tool: String, exe: String, text: String, name: String, args: (String) -> [String]) -> ToolVerdict {
        let (dir, file) = nextFile()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            try FS.makeDirectory(dir)
            try text.write(toFile: FS.join(dir, file), atomically: false, encoding: .utf8)
        } catch {
            return ToolVerdict(tool: tool, accepted: false, message: "cannot write scratch file: \(error)", timedOut: false)
        }
        let outPath = FS.join(dir, "out.txt")
        let (status, timedOut, err) = EDARunner.spawn(exe: exe, args: args(FS.join(dir, file)), directory: dir, output: outPath, timeout: timeout)
        if let err { return ToolVerdict(tool: tool, accepted: false, message: err, timedOut: false) }
        let raw = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        var msg = raw.replacingOccurrences(of: FS.join(dir, file), with: name).replacingOccurrences(of: file, with: name)
        msg = EDARunner.trim(msg)
        if timedOut { msg = "\(tool) did not finish within \(timeout) s" + (msg.isEmpty ? "" : "\n" + msg) }
        return ToolVerdict(tool: tool, accepted: !timedOut && status == 0, message: msg, timedOut: timedOut)
    }

    /// Runs `exe` in its own process group with stdout and stderr to `output` (`directory` is the scratch folder). On timeout the whole
    /// group is killed (iverilog runs its preprocessor and compiler as children). Returns the exit status.
    static func spawn(exe: String, args: [String], directory: String, output: String, timeout: Double) -> (
        Int32, Bool, String?
    ) {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&fa, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &fa, &attr, argv, environ)
        if rc != 0 { return (-1, false, "cannot run \(exe): \(String(cString: strerror(rc)))") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var sleep: UInt32 = 200
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return (-1, false, "waitpid failed: \(errnoText())") }
            if Date() >= deadline {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return (-1, true, nil)
            }
            usleep(sleep)
            sleep = min(sleep * 2, 5_000)
        }
        // WIFEXITED / WEXITSTATUS
        if status & 0x7F == 0 { return ((status >> 8) & 0xFF, false, nil) }
        return (128 + (status & 0x7F), false, nil)
    }

    /// At most 12 lines and 1,500 characters of a tool's output, without its "I give up." trailer.
    static func trim(_ s: String) -> String {
        let lines = s.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            .filter { $0 != "I give up." && !$0.hasPrefix("End of script") }
        var out = lines.prefix(12).joined(separator: "\n")
        if out.count > 1500 { out = String(out.prefix(1500)) }
        return out
    }
}
