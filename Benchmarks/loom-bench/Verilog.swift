// loom-bench verilog: Loom's Verilog preprocessor + parser against pyverilog 1.3.0 (one reused VerilogParser) and
// pyslang (SyntaxTree.fromText), on the same files in the same run (Benchmarks/peers/verilog_bench.py).
// Each side times parsing from text already in memory, best and median of N passes over all files; the files
// compared are those all three parse without errors.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif
import LoomCore
import LoomVerilog

/// CPU seconds this thread has run (not the time it waited for a core).
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func verilogBench(_ dir: String, runs: Int) {
    let files = ((FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? [])
        .filter { $0.hasSuffix(".v") }.sorted().map { dir + "/" + $0 }
    guard !files.isEmpty else {
        print("no .v files under \(dir)")
        exit(2)
    }
    let script = benchDir + "/peers/verilog_bench.py"
    let (checkJSON, _) = runCapture(["python3", script, "check"] + files)
    guard let check = try? JSONValue.parse(checkJSON) else {
        print("peer check failed (pip install pyverilog==1.3.0 pyslang): \(checkJSON.prefix(300))")
        exit(1)
    }
    let texts = files.map { [UInt8](FileManager.default.contents(atPath: $0) ?? Data()) }
    var loomOK: [Bool] = []
    for (f, t) in zip(files, texts) {
        loomOK.append(VerilogParser.parse(t, name: f, directory: (f as NSString).deletingLastPathComponent).ok)
    }
    let pyverilogOK = files.map { check[$0]?["pyverilog"]?.boolValue ?? false }
    let pyslangOK = files.map { check[$0]?["pyslang"]?.boolValue ?? false }
    let common = files.indices.filter { loomOK[$0] && pyverilogOK[$0] && pyslangOK[$0] }
    print("files: \(files.count) under \(dir); without errors: loom \(loomOK.filter { $0 }.count), pyverilog \(pyverilogOK.filter { $0 }.count), pyslang \(pyslangOK.filter { $0 }.count); all three: \(common.count)")
    for i in files.indices where loomOK[i] != pyslangOK[i] || loomOK[i] != pyverilogOK[i] {
        print("  \(files[i]): loom \(loomOK[i]), pyverilog \(pyverilogOK[i]), pyslang \(pyslangOK[i])")
    }
    let subset = common.map { files[$0] }
    let subsetTexts = common.map { texts[$0] }
    let bytes = subsetTexts.reduce(0) { $0 + $1.count }

    let (timeJSON, _) = runCapture(["python3", script, "time", "--runs", String(runs)] + subset)
    guard let peer = try? JSONValue.parse(timeJSON) else {
        print("peer timing failed: \(timeJSON.prefix(300))")
        exit(1)
    }
    // One warm-up pass, then at least 20 timed passes (a pass takes milliseconds, so the median is stable on a
    // shared machine).
    var loomTimes: [Double] = []
    var loomCPU: [Double] = []
    var items = 0
    for pass in 0...max(runs, 20) {
        let t = Date()
        let c = threadCPUSeconds()
        for (f, x) in zip(subset, subsetTexts) {
            items += VerilogParser.parse(x, name: f, directory: (f as NSString).deletingLastPathComponent).source.items.count
        }
        if pass > 0 {
            loomTimes.append(Date().timeIntervalSince(t))
            loomCPU.append(threadCPUSeconds() - c)
        }
    }
    print("loom: \(loomTimes.count) timed passes after one warm-up; peers: --runs \(runs) (pyverilog with preprocessing: up to 3)")
    print("same \(subset.count) files, \(bytes) bytes, text in memory; best and median of the passes")
    print("")
    print("| parser | CPU ms best | CPU ms median | wall ms best | wall ms median | MB/s (CPU best) | files/s (CPU best) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    func row(_ name: String, _ cb: Double?, _ cm: Double?, _ best: Double, _ med: Double) {
        let c1 = cb.map { f($0 * 1000, 1) } ?? "-", c2 = cm.map { f($0 * 1000, 1) } ?? "-"
        let rate = cb ?? best
        print("| \(name) | \(c1) | \(c2) | \(f(best * 1000, 1)) | \(f(med * 1000, 1)) | \(f(Double(bytes) / rate / 1e6, 2)) | \(Int(Double(subset.count) / rate)) |")
    }
    let lb = loomTimes.min()!, lm = median(loomTimes)
    let lcb = loomCPU.min()!, lcm = median(loomCPU)
    row("loom (LoomVerilog preprocessor + parser)", lcb, lcm, lb, lm)
    var ratios: [(String, Double, Double, Double, Double)] = []
    for (key, label) in [
        ("pyslang", "pyslang SyntaxTree.fromText"), ("pyverilog", "pyverilog 1.3.0, one reused VerilogParser (text preprocessed beforehand)"),
        ("pyverilog_pp", "pyverilog 1.3.0, reused parser + its iverilog -E preprocessing per file (wall only)"),
    ] {
        guard let b = peer[key]?["best"]?.doubleValue, let m = peer[key]?["median"]?.doubleValue else { continue }
        let cb = key == "pyverilog_pp" ? nil : peer[key]?["cpu_best"]?.doubleValue
        let cm = key == "pyverilog_pp" ? nil : peer[key]?["cpu_median"]?.doubleValue
        row(label, cb, cm, b, m)
        ratios.append((key, cb.map { $0 / lcb } ?? .nan, cm.map { $0 / lcm } ?? .nan, b / lb, m / lm))
    }
    print("")
    for (k, cb, cm, b, m) in ratios {
        let cpu = cb.isNaN ? "" : "CPU \(f(cb))x (best), \(f(cm))x (median); "
        print("loom vs \(k): \(cpu)wall \(f(b))x (best), \(f(m))x (median)")
    }
    _ = items
}
