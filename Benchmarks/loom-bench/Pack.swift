// loom-bench pack: knapsack packing vs first-fit-decreasing on the chunk lengths of a real PubMed file, and the
// time to pack a million samples drawn from that distribution.

import Foundation
import LoomCore
import LoomPack

func pack(_ pubmed: String, samples: Int, context: Int) {
    let tmp = NSTemporaryDirectory() + "loom-bench-pack-\(getpid())"
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    // The chunked corpus, made by loom itself (default chunking: at most 512 word tokens, 64 overlap).
    for argv in [
        [loom, "ingest", "pubmed", pubmed, "-o", tmp + "/docs", "--require-abstract", "-q"],
        [loom, "chunk", tmp + "/docs", "-o", tmp + "/chunks", "-q"],
    ] where measure(argv).status != 0 {
        print("failed: \(argv.joined(separator: " "))")
        exit(1)
    }
    let config = PackConfig()
    var lengths: [Int] = []
    do {
        try StageReader(directory: tmp + "/chunks").forEachRecord({ r, _, _ in
            if let t = r["text"]?.stringValue { lengths.append(min(context, config.tokens(t))) }
        }, bad: { _, _, _ in })
    } catch {
        print("cannot read the chunks: \(error)")
        exit(1)
    }
    let sorted = lengths.sorted()
    print("chunks of \(pubmed): \(lengths.count); token estimate (words x 1.3) median \(sorted[sorted.count / 2]), p90 \(sorted[sorted.count * 9 / 10]), max \(sorted.last!)")
    print("context: \(context) tokens; one thread")
    print("")
    print("| input | samples | packer | windows | efficiency | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    func run(_ name: String, _ ls: [Int]) {
        var t = Date()
        let k = Packer.knapsack(ls, capacity: context)
        let kt = Date().timeIntervalSince(t)
        t = Date()
        let ffd = Packer.firstFitDecreasing(ls, capacity: context)
        let ft = Date().timeIntervalSince(t)
        print("| \(name) | \(ls.count) | knapsack | \(k.bins.count) | \(f4(k.efficiency)) | \(f(kt)) |")
        print("| \(name) | \(ls.count) | first-fit decreasing | \(ffd.bins.count) | \(f4(ffd.efficiency)) | \(f(ft)) |")
    }
    run("all chunks", lengths)
    var rng = SplitMix64(seed: 1)
    run("drawn from the chunks", (0..<samples).map { _ in lengths[rng.below(lengths.count)] })
}

func f4(_ x: Double) -> String { String(format: "%.4f", x) }
