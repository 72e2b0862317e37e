import CLoomKernels
import Foundation
import XCTest

@testable import LoomCore
@testable import LoomDedup

final class NormalizationTests: XCTestCase {
    func normalized(_ s: String, _ configure: (inout Normalization) -> Void = { _ in }) -> String {
        var n = Normalization()
        configure(&n)
        var out: [UInt8] = []
        var text = s
        text.withUTF8 { Normalizer(n).normalize($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    func testDefaults() {
        XCTAssertEqual(normalized("  The  Cells,\twere\nGrown. "), "the cells, were grown.")
        // NFKC: ligature, full-width letters, superscript; case folding beyond lower-casing.
        XCTAssertEqual(normalized("ﬁne ＡＢＣ x² Straße ΣΟΦΟΣ"), "fine abc x2 strasse σοφοσ")
        XCTAssertEqual(normalized("보험  약관\u{00A0}제1조"), "보험 약관 제1조")
    }

    func testSwitches() {
        XCTAssertEqual(normalized("Cells, (IL-6) grew.") { $0.stripPunctuation = true }, "cells il 6 grew")
        XCTAssertEqual(normalized("Ｃells") { $0.nfkc = false }, "ｃells")
        XCTAssertEqual(normalized("Cells") { $0.casefold = false }, "Cells")
        // Whitespace kept as is: tokens are exactly what text.split(" ") gives.
        XCTAssertEqual(normalized(" a  b\tc ") { $0.collapseWhitespace = false }, " a  b\tc ")
        XCTAssertEqual(normalized("   \t ") , "")
    }
}

final class ShingleTests: XCTestCase {
    func shingles(_ text: String, kind: ShingleKind = .word, n: Int = 5) -> [UInt64] {
        var units: [UInt64] = []
        var out: [UInt64] = []
        var t = text
        t.withUTF8 { Shingler(kind: kind, n: n).shingles($0, units: &units, into: &out) }
        return out
    }

    func testWordShingles() {
        XCTAssertEqual(shingles("a b c d e f g").count, 3)
        XCTAssertEqual(shingles("a b c d e a b c d e").count, 6)
        XCTAssertEqual(Set(shingles("a b c d e a b c d e")).count, 5)  // the repeated 5-gram hashes equally
        XCTAssertEqual(shingles("only three words").count, 1)  // shorter than n: one shingle
        XCTAssertEqual(shingles("").count, 0)
        // Order matters inside a shingle, and the same words in another order give other hashes.
        XCTAssertNotEqual(Set(shingles("a b c d e")), Set(shingles("e d c b a")))
        XCTAssertEqual(Set(shingles("x a b c d e y")).intersection(Set(shingles("z a b c d e w"))).count, 1)
    }

    func testCharShinglesCountScalars() {
        XCTAssertEqual(shingles("보험약관입니다", kind: .char, n: 3).count, 5)
        XCTAssertEqual(shingles("ab", kind: .char, n: 3).count, 1)
    }

    func testExactJaccardMatchesTheCorpusDefinition() {
        var rng = TestRNG(seed: 7)
        let vocab = vocabulary(500, rng: &rng)
        for _ in 0..<30 {
            let a = randomText(words: 40 + rng.below(60), vocab: vocab, rng: &rng)
            let b = editSpan(a, count: 1 + rng.below(12), vocab: vocab, rng: &rng)
            let x = shingles(a.joined(separator: " "))
            let y = shingles(b.joined(separator: " "))
            let j = x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { Clustering.jaccard(xp, $0) } }
            XCTAssertEqual(j, referenceJaccard(a.joined(separator: " "), b.joined(separator: " ")), accuracy: 1e-12)
        }
    }
}

final class MinHashTests: XCTestCase {
    func testKernelMatchesReference() {
        var rng = TestRNG(seed: 3)
        let keys = (0..<1000).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
        for perms in [1, 7, 64, 100, 128, 200] {
            let h = MinHasher(numPerm: perms, seed: 42)
            // Running minima already set (a signature updated key batch by key batch), some below the keys' values.
            let start = (0..<perms).map { _ in UInt32(truncatingIfNeeded: rng.next()) | 0x0100_0000 }
            var slow = start
            keys.withUnsafeBufferPointer { k in
                h.a.withUnsafeBufferPointer { a in
                    h.b.withUnsafeBufferPointer { b in
                        loom_minhash_update_reference(k.baseAddress, k.count, a.baseAddress, b.baseAddress, &slow, perms)
                    }
                }
            }
            // Integer arithmetic: every path equals the reference exactly.
            for path in 0...loom_cpu_path() {
                _ = loom_set_kernel_path(path)
                var fast = start
                keys.withUnsafeBufferPointer { k in
                    h.a.withUnsafeBufferPointer { a in
                        h.b.withUnsafeBufferPointer { b in
                            loom_minhash_update(k.baseAddress, k.count, a.baseAddress, b.baseAddress, &fast, perms)
                        }
                    }
                }
                XCTAssertEqual(fast, slow, "\(perms) permutations, path \(String(cString: loom_path_name(path))) (\(MinHasher.kernelVariant))")
            }
            _ = loom_set_kernel_path(-1)
        }
    }

    func testEstimateTracksJaccard() {
        // Sets with Jaccard 0.5 and 0.8: the 256-slot estimate is within 4 standard deviations.
        let h = MinHasher(numPerm: 256, seed: 9)
        for (common, own) in [(100, 50), (400, 50)] {
            let x = (0..<(common + own)).map { Hash.fmix(UInt64($0)) }
            let y = (0..<common).map { Hash.fmix(UInt64($0)) } + (0..<own).map { Hash.fmix(UInt64(10_000 + $0)) }
            let truth = Double(common) / Double(common + 2 * own)
            var sx = [UInt32](repeating: 0, count: 256)
            var sy = [UInt32](repeating: 0, count: 256)
            var keys: [UInt32] = []
            x.withUnsafeBufferPointer { h.signature($0, keys: &keys, into: &sx) }
            y.withUnsafeBufferPointer { h.signature($0, keys: &keys, into: &sy) }
            let e = MinHasher.estimate(sx, sy, numPerm: 256)
            XCTAssertEqual(e, truth, accuracy: 4 * (truth * (1 - truth) / 256).squareRoot())
        }
    }

    func testOptimalBandsAndRows() {
        // What datasketch 2.0.0's MinHashLSH(threshold=t, num_perm=128) picks (b, r), checked with datasketch.
        for (t, b, r) in [(0.5, 25, 5), (0.7, 14, 9), (0.8, 9, 13), (0.9, 5, 25)] {
            XCTAssertEqual(
                LSHParameters.optimal(threshold: t, numPerm: 128, fpWeight: 0.5, fnWeight: 0.5),
                LSHParameters(bands: b, rows: r), "threshold \(t)")
        }
        // With exact verification false negatives weigh 0.95: b=16, r=8, which catches 95% of pairs at 0.8.
        let p = DedupConfig().lsh
        XCTAssertEqual(p, LSHParameters(bands: 16, rows: 8))
        XCTAssertGreaterThan(p.candidateProbability(0.8), 0.94)
        XCTAssertLessThan(p.candidateProbability(0.3), 0.002)
    }
}

final class DedupStageTests: XCTestCase {
    func run(_ c: DedupConfig, _ paths: [String], _ out: String, jobs: Int = 2, force: Bool = true) throws -> Manifest {
        try StageRunner.run(
            DedupStage(config: c, paths: paths, jobs: jobs), directory: out,
            options: RunOptions(force: force, quiet: true)
        ).manifest
    }

    func testRemovesNearDuplicatesAndReportsThem() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = TestRNG(seed: 11)
        let vocab = vocabulary(2000, rng: &rng)
        let a = randomText(words: 100, vocab: vocab, rng: &rng)
        let b = randomText(words: 100, vocab: vocab, rng: &rng)
        let aNear = editSpan(a, count: 3, vocab: vocab, rng: &rng)  // J about 0.85
        let aFar = editSpan(a, count: 30, vocab: vocab, rng: &rng)  // J well under 0.8
        let lines = [
            record(1, a.joined(separator: " ")),
            record(2, b.joined(separator: " ")),
            record(3, aNear.joined(separator: " ")),
            record(4, aFar.joined(separator: " ")),
            record(5, a.joined(separator: " ").uppercased()),  // equal after case folding
        ]
        try write(lines, to: dir + "/in.jsonl")
        let m = try run(DedupConfig(), [dir + "/in.jsonl"], dir + "/out")
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(try keptLines(dir + "/out"), [lines[0], lines[1], lines[3]])
        XCTAssertEqual(m.counts["removed_duplicates"]?.intValue, 2)
        let dups = try readJSONLines(dir + "/out/duplicates.jsonl")
        XCTAssertEqual(dups.count, 1)
        XCTAssertEqual(dups[0]["kept"], .int(1))
        let removed = dups[0]["removed"]?.arrayValue ?? []
        XCTAssertEqual(removed.map { $0["id"] }, [.int(3), .int(5)])
        let expected = referenceJaccard(a.joined(separator: " "), aNear.joined(separator: " "))
        XCTAssertEqual(removed[0]["jaccard"]?.doubleValue ?? 0, expected, accuracy: 1e-6)
        XCTAssertEqual(removed[1]["jaccard"]?.doubleValue, 1)
        XCTAssertNotNil(removed[0]["similarity"]?.doubleValue)
        let pairs = try readJSONLines(dir + "/out/pairs.jsonl")
        XCTAssertEqual(pairs.map { [$0["a"]!, $0["b"]!] }, [[.int(1), .int(3)], [.int(1), .int(5)], [.int(3), .int(5)]])
    }

    func testBadLinesAreRejectedWithPositionAndTheRunGoesOn() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = [
            record(1, "one two three four five six"),
            "{\"id\": 2, \"text\": \"unterminated",
            "",
            "{\"id\": 3}",
            "{\"id\": 4, \"text\": 17}",
            "[1, 2]",
            record(5, "   "),
            record(6, "one two three four five six"),
            "{\"text\": \"no id here at all\"}",
        ]
        try write(lines, to: dir + "/in.jsonl")
        let m = try run(DedupConfig(), [dir + "/in.jsonl"], dir + "/out")
        XCTAssertEqual(m.status, "complete")
        let rejects = try readJSONLines(dir + "/out/rejects.jsonl")
        XCTAssertEqual(rejects.map { $0["line"]?.intValue }, [2, 4, 5, 6])
        XCTAssertTrue(rejects.allSatisfy { $0["source"]?.stringValue == dir + "/in.jsonl" })
        XCTAssertTrue(rejects[0]["reason"]?.stringValue?.contains("not a JSON record") ?? false)
        XCTAssertEqual(rejects[0]["column"]?.intValue, 32)  // one past the last character
        XCTAssertEqual(
            rejects[1]["reason"]?.stringValue, "record has no 'text' field (nor messages, prompt/chosen/rejected or instruction)")
        XCTAssertEqual(rejects[2]["reason"]?.stringValue, "'text' is not a string")
        // The empty text is kept by default; the duplicate of record 1 is removed; a record without id is
        // reported by file and line.
        XCTAssertEqual(try keptLines(dir + "/out"), [lines[0], lines[6], lines[8]])
        XCTAssertEqual(m.counts["empty_texts"]?.intValue, 1)
        XCTAssertEqual(m.counts["blank_lines"]?.intValue, 1)
        var c = DedupConfig()
        c.empty = .drop
        let m2 = try run(c, [dir + "/in.jsonl"], dir + "/out2")
        XCTAssertEqual(try keptLines(dir + "/out2"), [lines[0], lines[8]])
        XCTAssertEqual(m2.counts["empty_dropped"]?.intValue, 1)
        // Ids fall back to FILE:LINE.
        c = DedupConfig()
        try write([lines[8], lines[8]], to: dir + "/noid.jsonl")
        _ = try run(c, [dir + "/noid.jsonl"], dir + "/out3")
        let d = try readJSONLines(dir + "/out3/duplicates.jsonl")
        XCTAssertEqual(d.first?["kept"]?.stringValue, dir + "/noid.jsonl:1")
        XCTAssertEqual(d.first?["removed"]?.arrayValue?.first?["id"]?.stringValue, dir + "/noid.jsonl:2")
    }

    func testSFTAndPreferenceRecordsAreComparedByTheirTurns() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func sft(_ id: Int, _ q: String, _ a: String) -> String {
            JSONValue.object(JSONObject([
                ("id", .int(id)),
                ("messages", .array([["role": "user", "content": .string(q)], ["role": "assistant", "content": .string(a)]])),
            ])).jsonString
        }
        func pref(_ id: Int, _ p: String, _ c: String, _ r: String) -> String {
            JSONValue.object(JSONObject([("id", .int(id)), ("prompt", .string(p)), ("chosen", .string(c)), ("rejected", .string(r))])).jsonString
        }
        let q = "Which enzyme converts angiotensin I to angiotensin II in the pulmonary circulation of adults?"
        let a = "Angiotensin-converting enzyme, bound to the surface of the lung's endothelial cells, does."
        let lines = [
            sft(1, q, a),
            sft(2, q.uppercased(), a),  // the same conversation after case folding
            sft(3, q, "Renin, which the kidney releases when perfusion falls, cleaves angiotensinogen instead."),
            pref(4, q, a, "Renin does, since the kidney releases it whenever renal perfusion pressure falls below normal."),
            pref(5, q, a, "Renin does, since the kidney releases it whenever renal perfusion pressure falls below normal."),
            #"{"id": 6, "messages": [{"role": "user", "content": [{"type": "text", "text": "\#(q)"}]}, {"role": "assistant", "content": "\#(a)"}]}"#,
            #"{"id": 7, "meta": {}}"#,
        ]
        try write(lines, to: dir + "/in.jsonl")
        for method in ["exact", "minhash"] {
            var c = DedupConfig()
            c.method = method
            let m = try run(c, [dir + "/in.jsonl"], dir + "/" + method)
            XCTAssertEqual(m.status, "complete")
            // 2 and 6 (content given as parts) repeat 1; 5 repeats 4; 7 has no text of any shape.
            XCTAssertEqual(try keptLines(dir + "/" + method), [lines[0], lines[2], lines[3]], method)
            let rejects = try readJSONLines(dir + "/" + method + "/rejects.jsonl")
            XCTAssertEqual(rejects.map { $0["line"]?.intValue }, [7], method)
        }
        // An explicit --text-field is strict: records without that field are rejected, not read another way.
        var c = DedupConfig()
        c.textField = "abstract"
        _ = try run(c, [dir + "/in.jsonl"], dir + "/strict")
        XCTAssertEqual(try readJSONLines(dir + "/strict/rejects.jsonl").first?["reason"]?.stringValue, "record has no 'abstract' field")
    }

    func testKeepLongestAndExactMode() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = (1...40).map { "w\($0)" }.joined(separator: " ")
        let lines = [
            record(1, base), record(2, base + " extra"), record(3, "  " + base.uppercased() + "  "),
            record(4, "unrelated text of its own here"),
        ]
        try write(lines, to: dir + "/in.jsonl")
        var c = DedupConfig()
        c.keep = .longest
        _ = try run(c, [dir + "/in.jsonl"], dir + "/longest")
        XCTAssertEqual(try keptLines(dir + "/longest"), [lines[1], lines[3]])
        c = DedupConfig()
        c.method = "exact"
        let m = try run(c, [dir + "/in.jsonl"], dir + "/exact")
        XCTAssertEqual(try keptLines(dir + "/exact"), [lines[0], lines[1], lines[3]])
        XCTAssertEqual(m.stage, "dedup-exact")
        let d = try readJSONLines(dir + "/exact/duplicates.jsonl")
        XCTAssertEqual(d.map { $0["kept"] }, [.int(1)])
        XCTAssertEqual(d[0]["removed"]?.arrayValue?.map { $0["id"] }, [.int(3)])
        c.casefold = false
        _ = try run(c, [dir + "/in.jsonl"], dir + "/exact-case")
        XCTAssertEqual(try keptLines(dir + "/exact-case").count, 4)
    }

    func testDeterministicAcrossRunsAndJobCounts() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(nearDuplicateCorpus(originals: 300, dups: 120, seed: 5), to: dir + "/in.jsonl")
        var outputs: [[Data]] = []
        for (k, jobs) in [1, 2, 2].enumerated() {
            var c = DedupConfig()
            c.seed = 7
            let stage = try DedupStage(config: c, paths: [dir + "/in.jsonl"], jobs: jobs)
            var s = stage
            s.maxTaskBytes = 4096  // many ranges, so the workers interleave
            let out = dir + "/out\(k)"
            let m = try StageRunner.run(s, directory: out, options: RunOptions(force: true, quiet: true)).manifest
            XCTAssertGreaterThan(m.counts["removed_duplicates"]?.intValue ?? 0, 50)
            outputs.append(try ["part-00000.jsonl", "duplicates.jsonl", "pairs.jsonl"].map {
                try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0))
            })
            let manifest = try Manifest.read(directory: out)
            XCTAssertEqual(manifest.deterministicJSON, try Manifest.read(directory: dir + "/out0").deterministicJSON)
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[1], outputs[2])
    }

    func testKeptRunsRespectShardSizes() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = nearDuplicateCorpus(originals: 60, dups: 20, seed: 4)
        lines[10] = "not json"
        try (lines.joined(separator: "\n")).write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)  // no final newline
        _ = try run(DedupConfig(), [dir + "/in.jsonl"], dir + "/big")
        let stage = try DedupStage(config: DedupConfig(), paths: [dir + "/in.jsonl"], jobs: 2)
        let m = try StageRunner.run(stage, directory: dir + "/small", options: RunOptions(shardRecords: 7, force: true, quiet: true)).manifest
        XCTAssertTrue(m.shards.dropLast().allSatisfy { $0.records == 7 })
        XCTAssertEqual(try keptLines(dir + "/small"), try keptLines(dir + "/big"))
        XCTAssertEqual(try keptLines(dir + "/big").last, lines.last)
    }

    func testVeryLongDocumentsStayLinear() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = TestRNG(seed: 99)
        let vocab = vocabulary(5000, rng: &rng)
        let long = randomText(words: 200_000, vocab: vocab, rng: &rng)
        let near = editSpan(long, count: 2000, vocab: vocab, rng: &rng)
        try write([record(1, long.joined(separator: " ")), record(2, near.joined(separator: " "))], to: dir + "/in.jsonl")
        let m = try run(DedupConfig(), [dir + "/in.jsonl"], dir + "/out")
        XCTAssertEqual(m.counts["removed_duplicates"]?.intValue, 1)
    }

    func testSkipsWhenUpToDateAndStartsOverCleanly() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(nearDuplicateCorpus(originals: 50, dups: 10, seed: 1), to: dir + "/in.jsonl")
        let stage = try DedupStage(config: DedupConfig(), paths: [dir + "/in.jsonl"], jobs: 1)
        _ = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        let again = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        XCTAssertTrue(again.skipped)
        // A missing side file makes the stage run again; a stale one from an interrupted run is replaced.
        try FileManager.default.removeItem(atPath: dir + "/out/pairs.jsonl")
        try "stale".write(toFile: dir + "/out/duplicates.jsonl.tmp", atomically: true, encoding: .utf8)
        let third = try StageRunner.run(stage, directory: dir + "/out", options: RunOptions(quiet: true))
        XCTAssertFalse(third.skipped)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/pairs.jsonl"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/duplicates.jsonl.tmp"))
    }

    func testBadOptionsAreClearErrors() {
        var c = DedupConfig()
        c.bands = 20
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("both bands and rows")) }
        c.rows = 10
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("at most num_perm")) }
        c = DedupConfig()
        c.threshold = 1.5
        XCTAssertThrowsError(try c.validate())
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try? FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        for f in ["b.jsonl", "sub/a.jsonl", "rejects.jsonl", "notes.txt"] { FileManager.default.createFile(atPath: dir + "/" + f, contents: Data()) }
        XCTAssertEqual(try DedupInput.resolve([dir]).files, [dir + "/b.jsonl", dir + "/sub/a.jsonl"])
        XCTAssertThrowsError(try DedupInput.resolve(["/nonexistent/file.jsonl"])) {
            XCTAssertTrue("\($0)".contains("/nonexistent/file.jsonl"))
        }
    }
}

final class ShardedDedupTests: XCTestCase {
    /// Runs the three sharded steps over `n` shards and returns the kept lines in shard order.
    static func sharded(_ c: DedupConfig, _ paths: [String], n: Int, dir: String, jobs: Int = 2) throws -> [String] {
        let opts = RunOptions(force: true, quiet: true)
        var sigs: [String] = []
        for i in 0..<n {
            let out = dir + "/sig\(i)"
            _ = try StageRunner.run(
                SignaturesStage(config: c, paths: paths, shard: ShardSpec(index: i, count: n), jobs: jobs),
                directory: out, options: opts)
            sigs.append(out)
        }
        _ = try StageRunner.run(
            ClustersStage(signatures: sigs.reversed(), jobs: jobs), directory: dir + "/clusters", options: opts)
        var kept: [String] = []
        for i in 0..<n {
            _ = try StageRunner.run(
                ApplyStage(signatures: sigs[i], clusters: dir + "/clusters"), directory: dir + "/kept\(i)",
                options: opts)
            kept += try keptLines(dir + "/kept\(i)")
        }
        return kept
    }

    func testFourShardsKeepWhatOneProcessKeeps() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two files, so shard boundaries fall inside files and across them.
        let lines = nearDuplicateCorpus(originals: 400, dups: 200, seed: 21)
        try write(Array(lines[0..<250]), to: dir + "/a.jsonl")
        try write(Array(lines[250...]) + ["not json"], to: dir + "/b.jsonl")
        let paths = [dir + "/a.jsonl", dir + "/b.jsonl"]
        for keep in [KeepPolicy.first, .longest] {
            var c = DedupConfig()
            c.keep = keep
            _ = try StageRunner.run(
                DedupStage(config: c, paths: paths, jobs: 2), directory: dir + "/single",
                options: RunOptions(force: true, quiet: true))
            let single = try keptLines(dir + "/single")
            XCTAssertLessThan(single.count, lines.count - 100)
            let kept = try Self.sharded(c, paths, n: 4, dir: dir)
            XCTAssertEqual(kept, single, "keep \(keep)")
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: dir + "/clusters/duplicates.jsonl")),
                try Data(contentsOf: URL(fileURLWithPath: dir + "/single/duplicates.jsonl")))
        }
        // The reject is reported once, by the shard that holds the line, with its line number in its file.
        let rejects = (0..<4).flatMap { (try? readJSONLines(dir + "/sig\($0)/rejects.jsonl")) ?? [] }
        XCTAssertEqual(rejects.map { $0["line"]?.intValue }, [lines.count - 250 + 1])
    }

    func testShardingMistakesAreClearErrors() throws {
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(nearDuplicateCorpus(originals: 20, dups: 5, seed: 2), to: dir + "/in.jsonl")
        let opts = RunOptions(force: true, quiet: true)
        for i in [0, 2] {
            _ = try StageRunner.run(
                SignaturesStage(config: DedupConfig(), paths: [dir + "/in.jsonl"], shard: ShardSpec(index: i, count: 3), jobs: 1),
                directory: dir + "/sig\(i)", options: opts)
        }
        XCTAssertThrowsError(try ClustersStage(signatures: [dir + "/sig0", dir + "/sig2"], jobs: 1)) {
            XCTAssertTrue("\($0)".contains("need exactly shards"), "\($0)")
        }
        XCTAssertThrowsError(try ShardSpec(parsing: "4/4"))
        XCTAssertThrowsError(try ShardSpec(parsing: "x"))
    }
}

final class DedupCorpusTests: XCTestCase {
    /// The issue's bar: on neardup-20k with default options, the reported pairs reach precision >= 0.97 and
    /// recall >= 0.95 against the corpus's exact word-5-gram ground truth.
    func testPrecisionAndRecallOnNearDup20k() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: dedup corpus test skipped") }
        let corpus = shared + "/corpora/dedup/neardup-20k.jsonl"
        guard FileManager.default.fileExists(atPath: corpus) else { throw XCTSkip("\(corpus) missing") }
        let dir = temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try StageRunner.run(
            DedupStage(config: DedupConfig(), paths: [corpus], jobs: 2), directory: dir + "/out",
            options: RunOptions(force: true, quiet: true)
        ).manifest
        XCTAssertEqual(m.counts["documents"]?.intValue, 20000)
        var truth = Set<[Int]>()
        for line in try readLines(shared + "/corpora/dedup/neardup-20k.truth.tsv").dropFirst() {
            let f = line.split(separator: "\t").compactMap { Int($0) }
            truth.insert([min(f[0], f[1]), max(f[0], f[1])])
        }
        XCTAssertEqual(truth.count, 1444)
        let reported = Set(try readJSONLines(dir + "/out/pairs.jsonl").map { p -> [Int] in
            let a = p["a"]!.intValue!, b = p["b"]!.intValue!
            return [min(a, b), max(a, b)]
        })
        let tp = Double(reported.intersection(truth).count)
        let precision = tp / Double(reported.count)
        let recall = tp / Double(truth.count)
        print("neardup-20k: \(reported.count) pairs, precision \(precision), recall \(recall)")
        XCTAssertGreaterThanOrEqual(precision, 0.97)
        XCTAssertGreaterThanOrEqual(recall, 0.95)
    }
}
