// Document vectors without a model: TF-IDF over hashed word and character n-grams (signed feature hashing into
// `dim` dimensions), L2-normalised, so a dot product is a cosine similarity. The vectors file is a small JSON
// header and the raw float32 rows.

import Foundation
import LoomCore
import LoomTensor

public struct HashingEmbedder: Sendable {
    public var dim = 512
    /// Word n-gram orders and character n-gram orders (over the lower-cased text).
    public var wordOrders = [1, 2]
    public var charOrders = [4]

    public init(dim: Int = 512) { self.dim = dim }

    /// Feature buckets and signs with counts for one text.
    func features(_ text: String) -> [Int: Float] {
        var counts: [Int: Float] = [:]
        let lower = text.lowercased()
        let words = lower.split(whereSeparator: { !($0.isLetter || $0.isNumber) }).map(String.init)
        func add(_ s: String, _ salt: UInt64) {
            var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ salt
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            h ^= h >> 33
            h &*= 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 33
            let bucket = Int(h % UInt64(dim))
            counts[bucket, default: 0] += (h >> 63) == 0 ? 1 : -1
        }
        for n in wordOrders where words.count >= n {
            for i in 0...(words.count - n) { add(words[i..<(i + n)].joined(separator: " "), UInt64(n)) }
        }
        let chars = Array(words.joined(separator: " "))
        for n in charOrders where chars.count >= n {
            for i in 0...(chars.count - n) { add(String(chars[i..<(i + n)]), 100 + UInt64(n)) }
        }
        return counts
    }

    /// Vectors for all texts (rows of `dim`), TF-IDF weighted with document frequencies over these texts.
    public func embed(_ texts: [String], jobs: Int = 1) -> [Float] {
        embed(texts, idf: nil, jobs: jobs)
    }

    /// IDF weights from the document frequencies of `texts`.
    public func fitIDF(_ texts: [String], jobs: Int = 1) -> [Float] {
        idf((try? parallelMap(texts, jobs: jobs) { features($0) }) ?? [])
    }

    func idf(_ feats: [[Int: Float]]) -> [Float] {
        var df = [Int](repeating: 0, count: dim)
        for f in feats { for k in f.keys { df[k] += 1 } }
        let n = Float(max(1, feats.count))
        return df.map { log((1 + n) / (1 + Float($0))) + 1 }
    }

    /// Vectors with the given IDF weights (fitted on other texts), or with weights from these texts when nil.
    public func embed(_ texts: [String], idf given: [Float]?, jobs: Int = 1) -> [Float] {
        let feats = (try? parallelMap(texts, jobs: jobs) { features($0) }) ?? []
        let idf = given ?? idf(feats)
        var out = [Float](repeating: 0, count: texts.count * dim)
        for (i, f) in feats.enumerated() {
            var norm: Float = 0
            // In bucket order: a dictionary's order changes with the process's hash seed, and so would the sums.
            for k in f.keys.sorted() {
                let c = f[k]!
                let v = (c < 0 ? -1 : 1) * log(1 + abs(c)) * idf[k]
                out[i * dim + k] = v
                norm += v * v
            }
            if norm > 0 {
                let s = 1 / norm.squareRoot()
                for k in f.keys { out[i * dim + k] *= s }
            }
        }
        return out
    }
}

/// Exact k-nearest neighbours by cosine from blocks of the similarity matrix computed with OpenBLAS sgemm (it
/// replaced the C dot-product kernel loom_dot_block: docs/benchmarks.md).
public enum Neighbours {
    /// For each row, up to `k` other rows with their similarity, most similar first (ties: lower index first).
    /// The matrix is symmetric, so only its upper triangle is computed: tiles of 256 rows by up to 4,096 columns
    /// at or right of the rows' block, each entry offered to both rows of the pair (TopK). Row blocks are dealt
    /// to the workers round-robin; the merged result does not depend on the number of workers.
    public static func exact(_ v: [Float], dim: Int, k: Int, jobs: Int = 1) -> [[(index: Int, similarity: Float)]] {
        let n = v.count / dim
        guard n > 1 else { return Array(repeating: [], count: n) }
        let kk = min(k, n - 1)
        let block = 256, width = 4096
        let blocks = (n + block - 1) / block
        let workers = max(1, min(jobs, blocks))
        Matmul.setThreads(1)
        let partial = (try? parallelMap(Array(0..<workers), jobs: workers) { w -> TopK in
            var top = TopK(n: n, k: kk)
            var sims = [Float](repeating: 0, count: block * width)
            // Largest rows of the triangle first, dealt so each worker gets a similar share.
            for b in stride(from: w, to: blocks, by: workers) {
                let r0 = b * block, rows = min(block, n - r0)
                let rowIds = (r0..<(r0 + rows)).map(Int32.init)
                var c0 = r0
                while c0 < n {
                    let cols = min(width, n - c0)
                    v.withUnsafeBufferPointer { p in
                        sims.withUnsafeMutableBufferPointer { o in
                            Matmul.gemm(
                                p.baseAddress! + r0 * dim, p.baseAddress! + c0 * dim, o.baseAddress!, m: rows, n: cols, k: dim,
                                transposeB: true)
                        }
                    }
                    top.offerBlock(sims: sims, rows: rowIds[...], columns: (c0..<(c0 + cols)).map(Int32.init), symmetric: true)
                    c0 += cols
                }
            }
            return top
        }) ?? []
        return TopK.lists(merging: partial, n: n, k: kk)
    }

    /// The simple version the fast one is checked against: 256 rows against all rows in one sgemm, each row's top k
    /// selected from its full row.
    public static func exactReference(_ v: [Float], dim: Int, k: Int, jobs: Int = 1) -> [[(index: Int, similarity: Float)]] {
        let n = v.count / dim
        let block = 256
        let starts = Array(stride(from: 0, to: n, by: block))
        Matmul.setThreads(1)
        let parts = (try? parallelMap(starts, jobs: jobs) { start -> [[(index: Int, similarity: Float)]] in
            let rows = min(block, n - start)
            var out = [Float](repeating: 0, count: rows * n)
            v.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    Matmul.gemm(p.baseAddress! + start * dim, p.baseAddress!, o.baseAddress!, m: rows, n: n, k: dim, transposeB: true)
                }
            }
            return (0..<rows).map { r in
                var best: [(index: Int, similarity: Float)] = []
                let base = r * n
                for j in 0..<n where j != start + r {
                    let s = out[base + j]
                    if best.count < k {
                        best.append((j, s))
                        if best.count == k { best.sort { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.index < $1.index } }
                    } else if s > best[k - 1].similarity {
                        var p = k - 1
                        while p > 0 && best[p - 1].similarity < s { p -= 1 }
                        best.insert((j, s), at: p)
                        best.removeLast()
                    }
                }
                if best.count < k { best.sort { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.index < $1.index } }
                return best
            }
        }) ?? []
        return parts.flatMap { $0 }
    }
}

/// The clustering of arXiv 2401.07284: documents in order; an unassigned document starts a cluster and takes its
/// most similar unassigned neighbours while the similarity is at least `similarity`, the cluster's tokens stay
/// within `maxTokens` and it has at most `maxDocs` documents.
public enum SimilarityClustering {
    public static func clusters(
        neighbours: [[(index: Int, similarity: Float)]], tokens: [Int], similarity: Float, maxTokens: Int, maxDocs: Int
    ) -> [[Int]] {
        var assigned = [Bool](repeating: false, count: tokens.count)
        var out: [[Int]] = []
        for d in tokens.indices where !assigned[d] {
            assigned[d] = true
            var cluster = [d]
            var total = tokens[d]
            for nb in neighbours[d] where nb.similarity >= similarity && cluster.count < maxDocs {
                guard !assigned[nb.index], total + tokens[nb.index] <= maxTokens else { continue }
                assigned[nb.index] = true
                cluster.append(nb.index)
                total += tokens[nb.index]
            }
            out.append(cluster)
        }
        return out
    }
}

public enum VectorFile {
    static let magic = Array("LOOMVEC1".utf8)

    public static func write(_ v: [Float], dim: Int, embedder: String, model: String? = nil, to path: String) throws {
        let f = try BufferedFile(creating: path, capacity: 4 << 20)
        var fields: [(String, JSONValue)] = [("count", .int(v.count / max(1, dim))), ("dim", .int(dim)), ("embedder", .string(embedder))]
        if let m = model, embedder != "hashing" { fields.append(("model", .string(m))) }
        let header = JSONValue.object(JSONObject(fields)).jsonString
        try f.write(magic)
        try f.write(withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) })
        try f.write(header)
        try v.withUnsafeBytes { try f.write($0.bindMemory(to: UInt8.self)) }
        try f.close(sync: false)
    }

    /// The header alone: count, dim, embedder and (for a model) its directory.
    public static func header(_ path: String) throws -> (count: Int, dim: Int, embedder: String, model: String?) {
        guard let h = FileHandle(forReadingAtPath: path) else { throw LoomError("cannot read \(path)") }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 16)) ?? Data()
        guard head.count == 16, Array(head.prefix(8)) == magic else { throw LoomError("\(path): not a Loom vectors file") }
        let hlen = head.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian) }
        guard hlen > 0, hlen < 1 << 20, let body = try? h.read(upToCount: hlen), body.count == hlen,
            let j = try? JSONValue.parse(String(decoding: body, as: UTF8.self)), let n = j["count"]?.intValue, let d = j["dim"]?.intValue
        else { throw LoomError("\(path): truncated or invalid header") }
        return (n, d, j["embedder"]?.stringValue ?? "hashing", j["model"]?.stringValue)
    }

    public static func read(_ path: String) throws -> (vectors: [Float], dim: Int) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw LoomError("cannot read \(path): \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw in
            guard raw.count >= 16, Array(raw[0..<8]) == magic else { throw LoomError("\(path): not a Loom vectors file") }
            let hlen = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian)
            guard 16 + hlen <= raw.count else { throw LoomError("\(path): truncated header") }
            let header = try JSONValue.parse(bytes: UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[16..<(16 + hlen)]))
            guard let n = header["count"]?.intValue, let dim = header["dim"]?.intValue,
                16 + hlen + n * dim * 4 == raw.count
            else { throw LoomError("\(path): size does not match its header") }
            var v = [Float](repeating: 0, count: n * dim)
            v.withUnsafeMutableBytes { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(16 + hlen)...]))
            }
            return (v, dim)
        }
    }
}
