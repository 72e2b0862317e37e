// loom-bench json FILE: LoomCore's JSONValue.parse against Python's json.loads on the same file (a tokenizer.json
// with a large vocabulary object is the case that matters), best and median of N runs, parse only (file in memory).

import Foundation
import LoomCore

func jsonBench(_ path: String, runs: Int) {
    guard let data = FileManager.default.contents(atPath: path) else {
        print("cannot read \(path)")
        exit(1)
    }
    var loom: [Double] = []
    var keys = 0
    for _ in 0..<runs {
        let t = Date()
        guard let v = try? data.withUnsafeBytes({ try JSONValue.parse(bytes: $0.bindMemory(to: UInt8.self)) }) else {
            print("\(path): not JSON")
            exit(1)
        }
        loom.append(Date().timeIntervalSince(t))
        keys = v["model"]?["vocab"]?.objectValue?.count ?? v.objectValue?.count ?? 0
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [
        "python3", "-c",
        "import json,sys,time\nd=open(sys.argv[1],'rb').read()\nts=[]\nfor _ in range(int(sys.argv[2])):\n t=time.perf_counter(); json.loads(d); ts.append(time.perf_counter()-t)\nprint(json.dumps(ts))",
        path, String(runs),
    ]
    let pipe = Pipe()
    p.standardOutput = pipe
    guard (try? p.run()) != nil else { return }
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let peer = (try? JSONValue.parse(out.trimmingCharacters(in: .whitespacesAndNewlines)))?.arrayValue?.compactMap(\.doubleValue) ?? []
    print("\(path): \(data.count) bytes, largest object \(keys) keys, \(runs) runs")
    print("")
    print("| parser | best s | median s |")
    print("| --- | --- | --- |")
    print("| Loom JSONValue.parse | \(f(loom.min()!, 4)) | \(f(median(loom), 4)) |")
    if let best = peer.min() {
        print("| Python json.loads | \(f(best, 4)) | \(f(median(peer), 4)) |")
        print("")
        print("Loom / Python speed: \(f(best / loom.min()!))x best, \(f(median(peer) / median(loom)))x median")
    }
}
