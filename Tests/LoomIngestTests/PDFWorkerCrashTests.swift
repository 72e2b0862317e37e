// A PDF that crashes poppler or tesseract costs one reject line, not the run: `loom ingest pdf` reads pages in
// worker processes (the `loom` binary re-executing itself as `_pdf-worker`), and a worker that dies is replaced.
// The crash is made by the test seam LOOM_TEST_PDF_CRASH=NAME:PAGE[:SIGNAL] (the worker kills itself with the
// signal, default action, when asked for that page), which is what a segfault or an abort inside the C library
// does to the process. Checked: exit status 0, one reject line naming the file, the page and the signal, and every
// other file's document byte for byte the line a run without the fault writes.

import Foundation
import LoomCore
import XCTest

final class PDFWorkerCrashTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-pdf-crash-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir + "/pdfs", withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var loom: String {
        if let b = ProcessInfo.processInfo.environment["LOOM_BIN"] { return b }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("loom").path
    }

    func ingest(_ out: String, jobs: Int, crash: String?) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loom)
        p.arguments = ["ingest", "pdf", dir + "/pdfs", "-o", dir + "/" + out, "--jobs", String(jobs), "--ocr", "never"]
        var env = ProcessInfo.processInfo.environment
        env["LOOM_TEST_PDF_CRASH"] = crash
        p.environment = env
        let errFile = dir + "/" + out + ".err"
        FileManager.default.createFile(atPath: errFile, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: errFile)
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? FS.readText(errFile)) ?? "")
    }

    func lines(_ path: String) throws -> [String] {
        try FS.readText(path).split(separator: "\n").map(String.init)
    }

    func testCrashedWorkerCostsOneRejectLine() throws {
        guard FileManager.default.isExecutableFile(atPath: loom) else { throw XCTSkip("\(loom) not built") }
        for (name, n) in [("alpha", 3), ("bravo", 4), ("charlie", 2), ("delta", 3)] {
            PDFDraw.textPDF(
                dir + "/pdfs/\(name).pdf",
                pages: (1...n).map { ["\(name) page \($0): the insured must report a loss within thirty days.", "Line two of page \($0)."] },
                header: "\(name) terms")
        }
        let ref = try ingest("ref", jobs: 2, crash: nil)
        XCTAssertEqual(ref.status, 0, ref.stderr)
        let reference = try lines(dir + "/ref/part-00000.jsonl")
        XCTAssertEqual(reference.count, 4)

        for (crash, file, page, signal, jobs) in [
            ("bravo.pdf:3", "bravo.pdf", 3, "SIGSEGV", 2), ("alpha.pdf:1:SIGABRT", "alpha.pdf", 1, "SIGABRT", 1),
            ("delta.pdf:3:SIGBUS", "delta.pdf", 3, "SIGBUS", 2),
        ] {
            let out = "out-" + file
            let r = try ingest(out, jobs: jobs, crash: crash)
            XCTAssertEqual(r.status, 0, r.stderr)
            let rejects = try lines(dir + "/\(out)/rejects.jsonl").map { try JSONValue.parse($0) }
            XCTAssertEqual(rejects.count, 1, "\(rejects)")
            let reject = try XCTUnwrap(rejects.first)
            XCTAssertEqual(reject["source"]?.stringValue, dir + "/pdfs/" + file)
            XCTAssertEqual(reject["page"]?.intValue, page)
            let reason = reject["reason"]?.stringValue ?? ""
            XCTAssertTrue(reason.contains(signal) && reason.contains("page \(page)"), reason)
            XCTAssertTrue(r.stderr.contains("rejected") && r.stderr.contains(signal), r.stderr)
            // The other files' documents: the very lines of the run without the fault.
            let kept = try lines(dir + "/\(out)/part-00000.jsonl")
            XCTAssertEqual(kept, reference.filter { !$0.contains("/pdfs/" + file) })
            let m = try Manifest.read(directory: dir + "/" + out)
            XCTAssertEqual(m.counts["crashed_files"]?.intValue, 1)
            XCTAssertEqual(m.counts["worker_restarts"]?.intValue, 1)
            XCTAssertEqual(m.counts["documents"]?.intValue, 3)
        }
    }
}
