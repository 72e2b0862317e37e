import Foundation
import XCTest

@testable import LoomCore

/// `loom train` as a process: killed with SIGKILL after a checkpoint and run again, it finishes with the same
/// metrics and the same weights as an uninterrupted run (one thread, so bit-identical).
extension CLITests {
    func testTrainKilledWithSIGKILLResumesToTheSameModel() throws {
        writePubMed(dir + "/pubmed.xml", articles: 40)
        XCTAssertEqual(try loom(["ingest", "pubmed", dir + "/pubmed.xml", "-o", dir + "/docs", "-q"]).status, 0)
        let args = [
            "train", "cpt", dir + "/docs", "--steps", "40", "--batch-size", "2", "--seq-len", "128", "--checkpoint-every",
            "5", "--eval-every", "10", "--jobs", "1", "-q",
        ]
        XCTAssertEqual(try loom(args + ["-o", dir + "/a"]).status, 0)
        let killed = try runAndKill(args + ["-o", dir + "/b"]) {
            FileManager.default.fileExists(atPath: dir + "/b/checkpoints/step-000015/trainer_state.json")
        }
        XCTAssertTrue(killed, "training finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/b/model.safetensors"))
        let r = try loom(args.filter { $0 != "-q" } + ["-o", dir + "/b"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("resuming from"), "did not resume: \(r.stderr)")
        for f in ["metrics.jsonl", "model.safetensors", "config.json", "loss.svg"] {
            XCTAssertEqual(
                FileManager.default.contents(atPath: dir + "/b/" + f), FileManager.default.contents(atPath: dir + "/a/" + f), f)
        }
        // The help teaches.
        let help = try loom(["train", "sft", "--help"])
        XCTAssertTrue(help.stdout.contains("--lora-rank") && help.stdout.contains("--checkpoint-every"), help.stdout)
    }
}

extension CLITests {
    /// Every file of every step directory (manifests by their deterministic fields; the live checkpoints left out).
    func deepSnapshot(_ out: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        func walk(_ rel: String) throws {
            let path = rel.isEmpty ? out : out + "/" + rel
            for name in FS.list(path) where !name.hasPrefix(".") && name != "checkpoints" {
                let r = rel.isEmpty ? name : rel + "/" + name
                if FS.isDirectory(out + "/" + r) {
                    try walk(r)
                } else if name == Manifest.fileName {
                    files[r] = Data(try Manifest.read(directory: (out + "/" + r as NSString).deletingLastPathComponent).deterministicJSON.jsonString.utf8)
                } else {
                    files[r] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + r))
                }
            }
        }
        try walk("")
        return files
    }

    /// A documents-to-merged-model pipeline killed with SIGKILL at three points (while chunking, in the middle of
    /// pre-training after a checkpoint, in the middle of fine-tuning) and re-run each time ends with the same bytes
    /// as an uninterrupted run; run once more it does no work.
    func testPipelineKilledThreeTimesEndsIdentical() throws {
        writePubMed(dir + "/pubmed.xml", articles: 400)
        let yaml = """
            name: kill-train
            output: out
            steps:
              - ingest: { kind: pubmed, paths: [pubmed.xml], require_abstract: true }
              - chunk: { max_tokens: 40, overlap: 10 }
              - generate: { method: rc, seed: 1 }
              - train: { objective: cpt, input: "@chunk", preset: tiny, steps: 30, seq_len: 128, batch_size: 2, checkpoint_every: 5, eval_every: 10, jobs: 1 }
              - train: { objective: sft, input: "@generate", model: "@train", steps: 30, seq_len: 128, batch_size: 2, checkpoint_every: 5, eval_every: 10, jobs: 1 }
              - merge: { merge_method: linear, models: [{ model: "@4", parameters: { weight: 0.5 } }, { model: "@5", parameters: { weight: 0.5 } }] }
            """
        FileManager.default.createFile(atPath: dir + "/pipeline.yaml", contents: Data(yaml.utf8))
        let args = ["run", dir + "/pipeline.yaml", "--shard-records", "200", "-q"]
        let out = dir + "/out"
        let first = try loom(args)
        XCTAssertEqual(first.status, 0, first.stderr)
        let reference = try deepSnapshot(out)
        XCTAssertNotNil(reference["06-merge/model.safetensors"] ?? reference["06-merge/model/model.safetensors"], "\(reference.keys.sorted())")
        try FileManager.default.removeItem(atPath: out)

        var killed: [Bool] = []
        for (what, ready) in [
            ("chunk", { FS.exists(out + "/02-chunk/part-00000.jsonl") && !FS.exists(out + "/02-chunk/manifest.json") }),
            ("cpt", { FS.exists(out + "/04-train/checkpoints/step-000010/trainer_state.json") }),
            ("sft", { FS.exists(out + "/05-train/checkpoints/step-000015/trainer_state.json") }),
        ] as [(String, () -> Bool)] {
            killed.append(try runAndKill(args, when: ready))
            let r = try loom(args)
            XCTAssertEqual(r.status, 0, "after the kill during \(what): \(r.stderr)")
            let now = try deepSnapshot(out)
            let differing = Set(now.keys).union(reference.keys).filter { now[$0] != reference[$0] }.sorted()
            XCTAssertEqual(differing, [], "after the kill during \(what)")
            for k in differing.filter({ $0.hasSuffix(".json") }) {
                print(k, String(decoding: now[k] ?? Data(), as: UTF8.self), String(decoding: reference[k] ?? Data(), as: UTF8.self))
            }
            // The next kill lands in a later step: remove that step's output and what follows it.
            let redo = ["chunk": ["04-train", "05-train", "06-merge"], "cpt": ["05-train", "06-merge"], "sft": []][what]!
            for s in redo { try FileManager.default.removeItem(atPath: out + "/" + s) }
        }
        print("killed during chunk, cpt, sft: \(killed)")
        XCTAssertEqual(killed.filter { $0 }.count, 3, "a run finished before it could be killed: \(killed)")
        let again = try loom(["run", dir + "/pipeline.yaml"])
        XCTAssertEqual(again.status, 0)
        XCTAssertEqual(again.stderr.components(separatedBy: "up to date").count - 1, 6, again.stderr)
    }
}
