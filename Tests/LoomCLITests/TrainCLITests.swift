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
