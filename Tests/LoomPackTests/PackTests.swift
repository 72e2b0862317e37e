import Foundation
import LoomCore
import XCTest

@testable import LoomPack

final class PackerTests: XCTestCase {
    func check(_ r: PackResult, _ lengths: [Int], _ capacity: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.bins.flatMap { $0 }.sorted(), Array(lengths.indices), "every sample exactly once", file: file, line: line)
        for b in r.bins { XCTAssertLessThanOrEqual(b.map { lengths[$0] }.reduce(0, +), capacity, file: file, line: line) }
    }

    /// The best total a subset of `lengths` can reach within `capacity`, by brute force.
    func bestSubset(_ lengths: [Int], _ capacity: Int) -> Int {
        var best = 0
        for mask in 0..<(1 << lengths.count) {
            var s = 0
            for i in lengths.indices where mask >> i & 1 == 1 { s += lengths[i] }
            if s <= capacity { best = max(best, s) }
        }
        return best
    }

    func testEachWindowIsTheBestSubsetOfWhatIsLeft() {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<40 {
            let capacity = 50 + rng.below(60)
            let lengths = (0..<(6 + rng.below(8))).map { _ in 1 + rng.below(capacity) }
            let r = Packer.knapsack(lengths, capacity: capacity)
            check(r, lengths, capacity)
            let ffd = Packer.firstFitDecreasing(lengths, capacity: capacity)
            check(ffd, lengths, capacity)
            XCTAssertLessThanOrEqual(r.bins.count, ffd.bins.count)
            // Unless FFD won, window k holds the best subset of what windows 0..<k left.
            if r.bins.count < ffd.bins.count || r != ffd {
                var left = Array(lengths.indices)
                for b in r.bins {
                    XCTAssertEqual(b.map { lengths[$0] }.reduce(0, +), bestSubset(left.map { lengths[$0] }, capacity))
                    left.removeAll { b.contains($0) }
                }
            }
        }
    }

    func testFillsWindowsOnARealisticDistribution() {
        // Chunk-like lengths: mostly 150-700 tokens, some short tails.
        var rng = SplitMix64(seed: 9)
        let lengths = (0..<5000).map { _ in rng.below(10) == 0 ? 20 + rng.below(120) : 150 + rng.below(550) }
        let r = Packer.knapsack(lengths, capacity: 4096)
        let ffd = Packer.firstFitDecreasing(lengths, capacity: 4096)
        check(r, lengths, 4096)
        XCTAssertGreaterThanOrEqual(r.efficiency, 0.98)
        XCTAssertGreaterThanOrEqual(r.efficiency, ffd.efficiency)
    }
}


final class PackStageTests: XCTestCase {
    func testWindowsHoldWholeMembersAndOverlongSamplesAreSplitOrRejected() throws {
        let dir = NSTemporaryDirectory() + "loom-pack-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var records: [JSONValue] = (0..<30).map { i in
            ["id": .string("c\(i)"), "text": .string(Array(repeating: "word", count: 5 + i * 3).joined(separator: " "))]
        }
        records.append(["id": "long", "text": .string(Array(repeating: "w", count: 300).joined(separator: " "))])
        records.append(["id": "sft", "messages": [["role": "user", "content": "hi there"], ["role": "assistant", "content": "hello"]]])
        records.append(["id": "bad", "number": 3])
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records), directory: dir + "/in", options: opts)
        var c = PackConfig()
        c.contextTokens = 128
        c.tokensPerWord = 1
        let m = try StageRunner.run(PackStage(config: c, input: dir + "/in"), directory: dir + "/out", options: opts).manifest
        XCTAssertEqual(m.rejects, 1)
        XCTAssertEqual(m.counts["split_samples"]?.intValue, 1)
        let eff = try XCTUnwrap(m.counts["packing_efficiency"]?.doubleValue)
        XCTAssertGreaterThanOrEqual(eff, try XCTUnwrap(m.counts["ffd_efficiency"]?.doubleValue))
        let windows = try String(contentsOfFile: dir + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONValue.parse(String($0)) }
        var ids: [String] = []
        for w in windows {
            let members = w["members"]?.arrayValue ?? []
            XCTAssertLessThanOrEqual(w["tokens"]?.intValue ?? 999, 128)
            XCTAssertEqual(w["lengths"]?.arrayValue?.count, members.count)
            ids += members.compactMap { $0["id"]?.stringValue }
        }
        XCTAssertEqual(ids.sorted(), ((0..<30).map { "c\($0)" } + ["long#part0", "long#part1", "long#part2", "sft"]).sorted())
        // Rejecting instead of splitting.
        c.overlong = "reject"
        let r = try StageRunner.run(PackStage(config: c, input: dir + "/in"), directory: dir + "/rej", options: opts).manifest
        XCTAssertEqual(r.rejects, 2)
    }
}
