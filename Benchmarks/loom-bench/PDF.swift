// loom-bench pdf: `loom ingest pdf` against pdftotext (text layers) and the tesseract command (OCR) on the same
// files in the same run.

import Foundation

func pdf(_ dir: String, runs: Int) {
    let all = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter {
        $0.hasSuffix(".pdf")
    }.sorted().map { dir + "/" + $0 }
    let text = all.filter { !$0.contains("/scanned/") }
    let scanned = all.filter { $0.contains("/scanned/") }
    let tmp = NSTemporaryDirectory() + "loom-bench-pdf-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let pages = text.map { pageCount($0) }.reduce(0, +)
    print("text PDFs: \(text.count) files, \(pages) pages; scanned: \(scanned.count) files")
    print("runs: \(runs) interleaved; wall-clock of whole processes (pdftotext: one process per file, summed)")

    // Text layers: loom --jobs 1, loom --jobs 2, pdftotext per file.
    var loom1: [Measurement] = []
    var loom2: [Measurement] = []
    var peer: [Measurement] = []
    for _ in 0..<runs {
        loom1.append(measure([loom, "ingest", "pdf"] + text + ["-o", tmp + "/j1", "--jobs", "1", "--force", "-q"]))
        loom2.append(measure([loom, "ingest", "pdf"] + text + ["-o", tmp + "/j2", "--jobs", "2", "--force", "-q"]))
        var sum = Measurement(wall: 0, cpu: 0, maxRSSMB: 0, status: 0)
        for f in text {
            let m = measure(["pdftotext", "-enc", "UTF-8", f, tmp + "/out.txt"])
            sum.wall += m.wall
            sum.cpu += m.cpu
            sum.maxRSSMB = max(sum.maxRSSMB, m.maxRSSMB)
            if m.status != 0 { sum.status = m.status }
        }
        peer.append(sum)
    }
    for (name, ms) in [("loom", loom1), ("loom", loom2), ("pdftotext", peer)] where ms.contains(where: { $0.status != 0 }) {
        print("\(name) failed")
        exit(1)
    }
    print("")
    print("| tool | best s | median s | pages/s (best) | CPU s (median) | peak MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, ms) in [("loom ingest pdf --jobs 1", loom1), ("loom ingest pdf --jobs 2", loom2), ("pdftotext (poppler-utils)", peer)] {
        let w = ms.map(\.wall)
        print("| \(name) | \(f(w.min()!)) | \(f(median(w))) | \(Int(Double(pages) / w.min()!)) | \(f(median(ms.map(\.cpu)))) | \(Int(ms.map(\.maxRSSMB).max()!)) |")
    }
    let b = [loom1, loom2, peer].map { $0.map(\.wall).min()! }
    let m = [loom1, loom2, peer].map { median($0.map(\.wall)) }
    let pairs = zip(loom1, peer).map { $1.wall / $0.wall }
    print("")
    print("loom --jobs 1 vs pdftotext pages/s: \(f(b[2] / b[0]))x (best), \(f(m[2] / m[0]))x (median), pairs: \(pairs.map { f($0) }.joined(separator: " "))")
    let jobPairs = zip(loom1, loom2).map { $0.wall / $1.wall }
    print("loom --jobs 2 vs --jobs 1: \(f(b[0] / b[1]))x (best), \(f(m[0] / m[1]))x (median), pairs: \(jobPairs.map { f($0) }.joined(separator: " "))")

    // OCR: loom --ocr always on the scanned PDFs vs the tesseract command on the page images loom rendered.
    guard !scanned.isEmpty else { return }
    let images = tmp + "/images"
    _ = measure([loom, "ingest", "pdf"] + scanned + ["-o", tmp + "/img", "--ocr", "always", "--languages", "eng", "--ocr-images", images, "--force", "-q"])
    let pgms = ((try? FileManager.default.contentsOfDirectory(atPath: images)) ?? []).sorted().map { images + "/" + $0 }
    var ocrLoom: [Measurement] = []
    var ocrCLI: [Measurement] = []
    for _ in 0..<max(1, runs / 2) {
        ocrLoom.append(measure([loom, "ingest", "pdf"] + scanned + ["-o", tmp + "/ocr", "--ocr", "always", "--languages", "eng", "--jobs", "1", "--force", "-q"]))
        var sum = Measurement(wall: 0, cpu: 0, maxRSSMB: 0, status: 0)
        for img in pgms {
            let m = measureWithEnv(["tesseract", img, tmp + "/cli", "-l", "eng", "--dpi", "300"], env: ["OMP_THREAD_LIMIT=1"])
            sum.wall += m.wall
            sum.cpu += m.cpu
            sum.maxRSSMB = max(sum.maxRSSMB, m.maxRSSMB)
        }
        ocrCLI.append(sum)
    }
    print("")
    print("OCR, \(pgms.count) pages at 300 dpi, eng, one job, OMP_THREAD_LIMIT=1 for both:")
    print("| tool | best s | median s | pages/s (best) | CPU s (median) |")
    print("| --- | --- | --- | --- | --- |")
    for (name, ms) in [("loom ingest pdf --ocr always --jobs 1", ocrLoom), ("tesseract command (per page image)", ocrCLI)] {
        let w = ms.map(\.wall)
        print("| \(name) | \(f(w.min()!)) | \(f(median(w))) | \(f(Double(pgms.count) / w.min()!, 2)) | \(f(median(ms.map(\.cpu)))) |")
    }
    print("loom OCR vs tesseract command pages/s: \(f(ocrCLI.map(\.wall).min()! / ocrLoom.map(\.wall).min()!))x (best)")
}

func pageCount(_ path: String) -> Int {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["pdfinfo", path]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try? p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Pages:") {
        return Int(line.split(separator: " ").last ?? "") ?? 0
    }
    return 0
}

/// `measure` with extra environment variables for the child.
func measureWithEnv(_ argv: [String], env: [String]) -> Measurement {
    measure(["env"] + env + argv)
}
