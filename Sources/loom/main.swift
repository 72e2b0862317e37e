import Foundation
import LoomIngest

// Tesseract's OpenMP threads nearly double OCR's CPU cost when pages already run in parallel
// (../shared/NATIVE.md), and libgomp reads OMP_THREAD_LIMIT only when it loads, before main. So a command that can
// OCR re-executes itself once with OMP_THREAD_LIMIT=1 unless the caller set it.
let arguments = CommandLine.arguments
let mayOCR = (arguments.count > 2 && arguments[1] == "ingest" && arguments[2] == "pdf") || arguments.dropFirst().first == "run"
if mayOCR, ProcessInfo.processInfo.environment["OMP_THREAD_LIMIT"] == nil {
    setenv("OMP_THREAD_LIMIT", "1", 1)
    let argv = arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", argv)
    // exec failed: carry on with the default thread limit.
}

registerTextBackends()
// PDF pages are read in worker processes of this same executable (a crash in poppler or tesseract costs one file,
// not the run): Sources/LoomIngest/PDFWorkerProcess.swift. LOOM_PDF_WORKERS=threads reads them on threads of this
// process instead (a little faster on text PDFs; a crash in the C libraries then ends the run).
if ProcessInfo.processInfo.environment["LOOM_PDF_WORKERS"] != "threads" {
    PDFWorkers.executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
}
Loom.main()
