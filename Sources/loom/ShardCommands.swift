// Commands for running stages as shards under a distributed engine (Spark, Slurm array jobs, Kubernetes indexed
// jobs): `loom merge-manifests`, and the pieces of sharded MinHash dedup that an engine's shuffle drives
// (`loom dedup band-keys`, `loom dedup verify-pairs`; `loom dedup apply --removed`).

import ArgumentParser
import Foundation
import LoomCore
import LoomDedup
import LoomPack

struct MergeManifestsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-manifests",
        abstract: "Check that all N shards of a stage are present and finished; optionally join them into one directory.",
        discussion: """
            Every shard directory must hold a complete manifest of the same
            stage, run with the same options and --shard i/N for each i in
            0..N-1 exactly once. A missing, failed or mismatched shard is an
            error naming it, and the exit status is 1: run it before the next
            stage. With -o, the records are joined into one stage directory in
            shard order (part files hard-linked, rejects concatenated, counts
            summed): the same records one unsharded run writes, and, when the
            shards read the same inputs, the same fingerprint, so the next
            stage reads it as it would read one run's output.

            Example (4 shards of ingest, then chunk the whole):
              for i in 0 1 2 3; do
                loom ingest pubmed baseline/ --shard $i/4 -o out/ingest-$i
              done
              loom merge-manifests out/ingest-0 out/ingest-1 out/ingest-2 out/ingest-3 -o out/ingest
              loom chunk out/ingest -o out/chunks
            """)

    @Argument(help: "The shards' output directories (any order).")
    var shards: [String]

    @Option(name: [.short, .customLong("output")], help: "Write the joined stage directory here (default: only check).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    func run() throws {
        Log.quiet = quiet
        do {
            let set = try ShardSet(directories: shards)
            if let output {
                try set.write(to: output, sideFiles: ["vectors.bin": joinVectors])
                Log.info("merge-manifests: \(set.members.count) shards of \(set.stage), \(set.records) records -> \(output)")
                if !quiet { print(output) }
            } else if !quiet {
                print("\(set.stage): all \(set.members.count) shards complete, \(set.records) records")
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

/// embed's vectors.bin of each shard, rows in shard order, into one file.
func joinVectors(_ shards: [String], _ output: String) throws {
    var all: [Float] = []
    var dim = 0
    var header: (count: Int, dim: Int, embedder: String, model: String?)?
    for s in shards {
        let h = try VectorFile.header(s)
        if let header, header.dim != h.dim || header.embedder != h.embedder || header.model != h.model {
            throw LoomError("merge-manifests: \(s) holds \(h.embedder) vectors of \(h.dim) dimensions, the first shard \(header.embedder) of \(header.dim)")
        }
        header = header ?? h
        let (v, d) = try VectorFile.read(s)
        all += v
        dim = d
    }
    guard let header else { return }
    try VectorFile.write(all, dim: dim, embedder: header.embedder, model: header.model, to: output)
}

struct DedupBandKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "band-keys",
        abstract: "Print one signatures shard's LSH band keys as 'band key doc' lines (for an outside shuffle).",
        discussion: """
            doc is the document's number inside the shard; add the document
            counts of the shards before it (their manifests' counts.documents)
            for the global numbering verify-pairs reads. Records whose
            normalised text is empty are left out: they never join a cluster.

            Example:
              loom dedup band-keys sig/3 > keys-3.txt
            """)

    @Argument(help: "A minhash-signatures output directory.")
    var signatures: String

    func run() throws {
        do {
            try BandKeyDump.write(signatures: signatures) { b in
                var done = 0
                while done < b.count {
                    let n = Foundation.write(1, b.baseAddress! + done, b.count - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { throw LoomError("band-keys: cannot write to standard output") }
                    done += n
                }
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}

struct DedupVerifyPairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-pairs",
        abstract: "Confirm candidate pairs read from standard input; print those at or above the threshold.",
        discussion: """
            Each input line is 'a b': two documents in the global numbering
            (shards in order, documents in order inside each). Each pair is
            checked as the shards were configured (exact Jaccard of the
            shingle sets, or the MinHash estimate, against --threshold given to
            minhash-signatures) and printed back as 'a b similarity' when
            confirmed. Used by integrations/spark through RDD.pipe.

            Example:
              printf '0 17\\n5 90\\n' | loom dedup verify-pairs sig/0 sig/1 sig/2 sig/3
            """)

    @Argument(help: "The minhash-signatures output directories of all shards.")
    var signatures: [String]

    func run() throws {
        do {
            let v = try PairVerifier(signatures: signatures)
            var out: [UInt8] = []
            func flush() {
                out.withUnsafeBufferPointer { b in
                    var done = 0
                    while done < b.count {
                        let n = Foundation.write(1, b.baseAddress! + done, b.count - done)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { return }
                        done += n
                    }
                }
                out.removeAll(keepingCapacity: true)
            }
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                if f.isEmpty { continue }
                guard f.count >= 2, let a = Int(f[0]), let b = Int(f[1]) else {
                    throw LoomError("verify-pairs: standard input line \(lineNumber): expected 'a b', found '\(line.prefix(80))'")
                }
                if let s = try v.confirm(a, b) {
                    out.append(contentsOf: "\(a) \(b) \(s)\n".utf8)
                    if out.count > 60_000 { flush() }
                }
            }
            flush()
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
    }
}
