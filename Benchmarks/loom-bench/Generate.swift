// loom-bench generate: requests/s of `loom generate qa` at --concurrency 1 and 16 against a loopback
// OpenAI-compatible server that answers after a fixed latency (the in-process LoomTestServer).

import Foundation
import LoomTestServer

func generateConcurrency(latency: Double) {
    let server = ChatTestServer(latency: latency, answer: { _ in "[{\"question\": \"Q?\", \"answer\": \"A.\"}]" })
    do { try server.start() } catch {
        print("cannot start the test server: \(error)")
        exit(2)
    }
    defer { server.stop() }
    let tmp = NSTemporaryDirectory() + "loom-bench-generate-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    print("server: 127.0.0.1, \(Int(latency * 1000)) ms per answer; loom generate qa --no-cache; whole processes")
    print("")
    print("| concurrency | requests | wall s | requests/s |")
    print("| --- | --- | --- | --- |")
    var rates: [Int: Double] = [:]
    for (concurrency, n) in [(1, 30), (4, 80), (16, 320)] {
        // The input: n distinct chunks, as a stage directory (exact dedup keeps them all).
        let jsonl = tmp + "/chunks-\(n).jsonl"
        let lines = (0..<n).map { "{\"id\":\"c\($0)\",\"text\":\"Chunk number \($0) about protein folding.\"}" }
        FileManager.default.createFile(atPath: jsonl, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        _ = measure([loom, "dedup", "exact", jsonl, "-o", tmp + "/in-\(n)", "-q", "--force"])
        let before = server.requests
        let m = measure([
            loom, "generate", "qa", tmp + "/in-\(n)", "-o", tmp + "/qa-\(concurrency)", "--base-url", server.baseURL,
            "--no-cache", "--concurrency", "\(concurrency)", "--force", "-q",
        ])
        let sent = server.requests - before
        if m.status != 0 || sent != n {
            print("loom generate qa failed (status \(m.status), \(sent) of \(n) requests)")
            exit(1)
        }
        rates[concurrency] = Double(n) / m.wall
        print("| \(concurrency) | \(n) | \(f(m.wall)) | \(f(Double(n) / m.wall, 1)) |")
    }
    print("")
    print("--concurrency 16 vs 1: \(f(rates[16]! / rates[1]!, 1))x requests/s (ideal 16x at this latency)")
}
