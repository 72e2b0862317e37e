import Foundation
import LoomCore

@testable import LoomDedup

/// A seeded generator so test corpora are the same on every run.
typealias TestRNG = SplitMix64

/// Made-up words (so no two texts share long runs by accident).
func vocabulary(_ n: Int, rng: inout TestRNG) -> [String] {
    let letters = Array("abcdefghijklmnopqrstuvwxyz")
    return (0..<n).map { _ in String((0..<(3 + rng.below(6))).map { _ in letters[rng.below(26)] }) }
}

func randomText(words: Int, vocab: [String], rng: inout TestRNG) -> [String] {
    (0..<words).map { _ in vocab[rng.below(vocab.count)] }
}

/// Replaces one contiguous run of `count` words, the way the project corpus makes its near-duplicates.
func editSpan(_ words: [String], count: Int, vocab: [String], rng: inout TestRNG) -> [String] {
    var w = words
    let start = rng.below(w.count - count)
    for i in start..<(start + count) { w[i] = vocab[rng.below(vocab.count)] }
    return w
}

/// Word-5-gram Jaccard with the corpus README's exact definition (split on " ", set semantics).
func referenceJaccard(_ a: String, _ b: String, n: Int = 5) -> Double {
    func shingles(_ t: String) -> Set<String> {
        let tokens = t.components(separatedBy: " ")
        if tokens.count < n { return [tokens.joined(separator: " ")] }
        return Set((0...(tokens.count - n)).map { tokens[$0..<($0 + n)].joined(separator: " ") })
    }
    let x = shingles(a)
    let y = shingles(b)
    return Double(x.intersection(y).count) / Double(x.union(y).count)
}

func temporaryDirectory(_ name: String) -> String {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let dir = NSTemporaryDirectory() + "loom-dedup-\(safe)-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func write(_ lines: [String], to path: String) throws {
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

func record(_ id: Int, _ text: String) -> String {
    JSONValue.object(JSONObject([("id", .int(id)), ("text", .string(text))])).jsonString
}

func readLines(_ path: String) throws -> [String] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true).map(
        String.init)
}

func readJSONLines(_ path: String) throws -> [JSONValue] { try readLines(path).map { try JSONValue.parse($0) } }

/// All kept records of a stage directory, shard by shard.
func keptLines(_ dir: String) throws -> [String] {
    try StageReader(directory: dir).shardPaths.flatMap { try readLines($0) }
}

func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] {
        return FileManager.default.fileExists(atPath: s) ? s : nil
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

/// A small corpus: `originals` random texts, `dups` of them copied with one edited span (some above, some below
/// the threshold), one exact copy, in a shuffled order. Returns the lines.
func nearDuplicateCorpus(originals: Int, dups: Int, seed: UInt64) -> [String] {
    var rng = TestRNG(seed: seed)
    let vocab = vocabulary(3000, rng: &rng)
    var texts: [String] = []
    for _ in 0..<originals { texts.append(randomText(words: 60 + rng.below(80), vocab: vocab, rng: &rng).joined(separator: " ")) }
    for k in 0..<dups {
        let src = texts[k % originals].components(separatedBy: " ")
        let edited = editSpan(src, count: max(1, src.count * (2 + rng.below(10)) / 100), vocab: vocab, rng: &rng)
        texts.append(edited.joined(separator: " "))
    }
    texts.append(texts[0])
    var order = Array(texts.indices)
    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
    return order.enumerated().map { record($0.offset, texts[$0.element]) }
}
