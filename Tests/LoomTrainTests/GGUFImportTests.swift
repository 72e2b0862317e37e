// GGUF to a Hugging Face directory ($LOOM_SHARED/fixtures/gguf and gemma3-tiny; the real Gemma 3 270M Q4_K_M file
// and the directory transformers made from it under $LOOM_MODELS, see GGUFTests.swift's realGemmaModels()): the
// config, the tensors and the tokenizer must be what transformers reads from the same file.

import Foundation
import LoomCore
import LoomTensor
import LoomTokenizer
import XCTest

@testable import LoomTrain

/// `$LOOM_MODELS` (default: .build/models, where `make test` puts them), holding gemma-3-270m-q4_k_m.gguf and gemma-3-270m-hf/
/// as $LOOM_SHARED/models/gemma-3-270m.sh makes them.
func realGemmaModels() throws -> (gguf: String, hf: String) {
    let models = ProcessInfo.processInfo.environment["LOOM_MODELS"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/models").path
    let gguf = models + "/gemma-3-270m-q4_k_m.gguf", hf = models + "/gemma-3-270m-hf"
    guard FileManager.default.fileExists(atPath: gguf), FileManager.default.fileExists(atPath: hf + "/tokenizer.json") else {
        throw XCTSkip("\(gguf) or \(hf) not present (make test makes them with $LOOM_SHARED/models/gemma-3-270m.sh; LOOM_MODELS names their folder)")
    }
    return (gguf, hf)
}

func ggufFixture(_ name: String) throws -> String {
    guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present: GGUF import tests skipped") }
    let p = shared + "/fixtures/gguf/" + name
    guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("\(p) not present") }
    return p
}

final class GGUFImportTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-ggufimport-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The tiny files' config is gemma3-tiny's (sliding pattern and local base from the two extra keys), and the
    /// real file's is the one transformers made (pattern and local base from llama.cpp's rule).
    func testConfigFromMetadata() throws {
        let tinyDir = try XCTUnwrap(sharedDirectory()) + "/fixtures/gemma3-tiny"
        let want = try LlamaConfig.load(tinyDir)
        for type in ["f32", "f16", "q8_0"] {
            let c = try GGUFImport.config(try GGUFFile(path: try ggufFixture("gemma3-tiny-\(type).gguf")))
            XCTAssertEqual(c, want, type)
            XCTAssertEqual(c.slidingLayers, [true, true, true, false])
        }
        let (gguf, hf) = try realGemmaModels()
        let real = try GGUFImport.config(try GGUFFile(path: gguf))
        // transformers writes GGUF's float32 epsilon as the double 9.999999974752427e-07; Loom writes the shortest
        // decimal of the same float32 (1e-06), which is what the original config said. Equal as float32.
        var hfConfig = try LlamaConfig.load(hf)
        XCTAssertEqual(Float(hfConfig.rmsNormEps), Float(real.rmsNormEps))
        hfConfig.rmsNormEps = real.rmsNormEps
        XCTAssertEqual(real, hfConfig)
        XCTAssertEqual(real.slidingLayers.enumerated().filter { !$0.element }.map(\.offset), [5, 11, 17])
        XCTAssertEqual(real.localRopeTheta, 10_000)
        XCTAssertEqual(real.queryPreAttnScalar, 256)
    }

    /// gemma3-tiny-f32.gguf's tensors are gemma3-tiny's: every weight bit for bit; every norm exactly
    /// fl(fl(w + 1) − 1), the float32 round trip of convert_hf_to_gguf's + 1 and the import's − 1.
    func testTinyTensorsEqualSafetensors() throws {
        let g = try GGUFFile(path: try ggufFixture("gemma3-tiny-f32.gguf"))
        let want = try tensors(try XCTUnwrap(sharedDirectory()) + "/fixtures/gemma3-tiny/model.safetensors")
        let got = try GGUFImport.tensors(g)
        XCTAssertEqual(Set(got.map(\.name)), Set(want.keys).subtracting(["lm_head.weight"]))
        var norms = 0
        for (name, t) in got {
            let w = try XCTUnwrap(want[name], name)
            XCTAssertEqual(t.shape, w.shape, name)
            let expected = name.hasSuffix("norm.weight") ? w.floats().map { ($0 + 1) - 1 } : w.floats()
            if name.hasSuffix("norm.weight") { norms += 1 }
            XCTAssertEqual(t.floats().map(\.bitPattern), expected.map(\.bitPattern), name)
        }
        XCTAssertEqual(norms, 4 * 6 + 1)
    }

    /// Importing the real Q4_K_M file gives the tensors transformers dequantized from it, bit for bit (tied: the
    /// HF file keeps the pair as lm_head.weight), so Loom's logits from either are the same; the written directory
    /// loads as a model.
    func testRealImportEqualsTransformersBitwise() throws {
        let (gguf, hf) = try realGemmaModels()
        let out = dir + "/gemma"
        let summary = try GGUFImport.write(try GGUFFile(path: gguf), to: out)
        XCTAssertEqual(summary.tensors, 236)
        XCTAssertTrue(summary.tokenizer)
        XCTAssertFalse(summary.chatTemplate)
        let mine = try SafeTensorsFile(path: out + "/model.safetensors")
        let theirs = try SafeTensorsFile(path: hf + "/model.safetensors")
        XCTAssertEqual(mine.entries.count, 236)
        for e in mine.entries {
            let name = e.name == "model.embed_tokens.weight" && theirs.entry(e.name) == nil ? "lm_head.weight" : e.name
            let t = try XCTUnwrap(theirs.entry(name), name)
            XCTAssertEqual(e.shape, t.shape, name)
            let a = try mine.floats(e.name), b = try theirs.floats(name)
            XCTAssertTrue(a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }, name)
        }
        let model = try LlamaModel.load(directory: out)
        XCTAssertEqual(model.config.numLayers, 18)
        XCTAssertEqual(model.config.family, .gemma3)
    }

    /// The tokenizer built from the real GGUF encodes like transformers' tokenizer.json of the same model (both read
    /// by LoomTokenizer) and like transformers itself (the fixture's input_ids), with and without BOS, Korean and
    /// emoji included.
    func testTokenizerFromRealGGUFMatchesHuggingFace() throws {
        let (gguf, hf) = try realGemmaModels()
        let built = try XCTUnwrap(try GGUFTokenizer.build(try GGUFFile(path: gguf)))
        var bytes: [UInt8] = []
        PrettyJSON.write(built.tokenizer, to: &bytes, indent: 0)
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        // Byte for byte the file transformers saves for the model it loads from the same GGUF.
        XCTAssertTrue(bytes == Array(try Data(contentsOf: URL(fileURLWithPath: hf + "/tokenizer.json"))), "tokenizer.json differs from transformers'")
        try FS.writeAtomically(JSONValue.object(built.config).jsonString, to: dir + "/tokenizer_config.json")
        let mine = try Tokenizer.load(dir + "/tokenizer.json")
        let theirs = try Tokenizer.load(hf + "/tokenizer.json")
        XCTAssertEqual(mine.vocabSize, 262_144)
        XCTAssertEqual(mine.model.merged.count, theirs.model.merged.count)
        XCTAssertEqual(mine.bosId, 2)
        XCTAssertEqual(mine.eosId, 1)
        let prompts = try JSONValue.parse(try FS.readText(try XCTUnwrap(sharedDirectory()) + "/fixtures/gemma3-270m/prompts.json"))
        var texts: [String] = []
        for p in prompts["prompts"]?.arrayValue ?? [] {
            let text = try XCTUnwrap(p["text"]?.stringValue)
            texts.append(text)
            let ids = try XCTUnwrap(p["input_ids"]?.arrayValue?.compactMap(\.intValue)).map(Int32.init)
            XCTAssertEqual(mine.encode(text, addSpecialTokens: true), ids, p["name"]?.stringValue ?? "")
        }
        XCTAssertEqual(texts.count, 6)
        texts += [
            "보험 약관 제3조 (보상하는 손해)", "emoji 🙂 ok 👩‍👩‍👧 🦀", "naïve café ∑ 日本語", "  two leading spaces", "tabs\tand\nnewlines\n\n\n",
            "<start_of_turn>user\nhi<end_of_turn>", "x", "", "trailing   ", "\u{1F600}\u{1F600}", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ĳ ﬁ",
        ]
        for t in texts {
            XCTAssertEqual(mine.encode(t), theirs.encode(t), t)
            XCTAssertEqual(mine.encode(t, addSpecialTokens: true), theirs.encode(t, addSpecialTokens: true), t)
            XCTAssertEqual(mine.decode(mine.encode(t)), t, t)
        }
    }
}

/// `loom model export`'s library: a model written as GGUF and read back is the same model, and gguf-py reads the
/// file Loom writes to the values Loom's reader gives.
final class GGUFExportTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-ggufexport-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// import(export(model, f32)) is the model: config equal, every tensor bit for bit. Llama's q/k permutation is
    /// undone exactly; Gemma's norms, which GGUF stores as fl(w + 1) (no float v has fl(v − 1) = w when w has bits
    /// below 2^-23), come back through the exact values the export keeps in `loom.norm_exact.*` metadata. A file
    /// whose norm tensor no longer matches those values (changed after export) falls back to fl(v − 1).
    func testExportF32ThenImportIsTheModel() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present") }
        for name in ["gemma3-tiny", "llama-tiny"] {
            let src = shared + "/fixtures/" + name
            let file = dir + "/\(name).gguf", back = dir + "/\(name)-back"
            let s = try GGUFExport.write(directory: src, to: file, type: .f32)
            XCTAssertEqual(s.types.keys.sorted(), ["F32"])
            try GGUFImport.write(try GGUFFile(path: file), to: back)
            var want = try LlamaConfig.load(src)
            let got = try LlamaConfig.load(back)
            want.rmsNormEps = Double(Float(want.rmsNormEps).description)!  // GGUF keeps the float32
            XCTAssertEqual(got, want, name)
            let original = try tensors(src + "/model.safetensors"), imported = try tensors(back + "/model.safetensors")
            XCTAssertEqual(Set(imported.keys), Set(original.keys).subtracting(want.tieWordEmbeddings ? ["lm_head.weight"] : []), name)
            for (n, t) in imported {
                let o = try XCTUnwrap(original[n]).floats()
                XCTAssertEqual(t.floats().map(\.bitPattern), o.map(\.bitPattern), "\(name) \(n)")
            }
            // Gemma: the file is the fixture's (convert_hf_to_gguf's layout): the same tensors, types and values.
            if name == "gemma3-tiny" {
                let mine = try GGUFFile(path: file), theirs = try GGUFFile(path: try ggufFixture("gemma3-tiny-f32.gguf"))
                // The fixture's random norms lose bits in w + 1, so the exact values are there and were needed.
                XCTAssertFalse(mine.metadata.filter { $0.key.hasPrefix(GGUFImport.exactNormKey) }.isEmpty)
                XCTAssertEqual(mine.tensors.map(\.name), theirs.tensors.map(\.name))
                for t in theirs.tensors { XCTAssertEqual(try mine.floats(t.name), try theirs.floats(t.name), t.name) }
                let keys = Set(theirs.metadata.map(\.key)).subtracting(mine.metadata.map(\.key))
                XCTAssertEqual(keys.filter { !$0.hasPrefix("tokenizer.") && $0 != "general.name" }, [], "keys the fixture has and the export lacks")
            }
        }
    }

    /// F16 and Q8_0 exports: 2-D weights in the type, norms F32, and values within the type's rounding (F16: a
    /// relative half-ulp, 2^-11; Q8_0: half a step, max|block| / 127 / 2), and the tiny Gemma Q8_0 export is
    /// byte-identical in its tensors to the fixture gguf-py wrote.
    func testExportF16AndQ8() throws {
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present") }
        let src = shared + "/fixtures/gemma3-tiny"
        for (type, fixture) in [(GGMLType.f16, "gemma3-tiny-f16.gguf"), (.q8_0, "gemma3-tiny-q8_0.gguf")] {
            let file = dir + "/t-\(type.name).gguf"
            try GGUFExport.write(directory: src, to: file, type: type)
            let mine = try GGUFFile(path: file), theirs = try GGUFFile(path: try ggufFixture(fixture))
            XCTAssertEqual(mine.tensors.map(\.name), theirs.tensors.map(\.name))
            for t in theirs.tensors {
                let m = try XCTUnwrap(mine.tensor(t.name))
                XCTAssertEqual(m.type, t.type, t.name)
                XCTAssertEqual(m.ne, t.ne, t.name)
                let a = mine.withBytes(m) { Array($0) }, b = theirs.withBytes(t) { Array($0) }
                XCTAssertEqual(a, b, "\(type.name) \(t.name): bytes differ from gguf-py's")
            }
        }
    }

    /// gguf-py reads Loom's exported file (a Llama with a tokenizer, Q8_0) to the same keys, tensors and values as
    /// Loom's reader; the values are bit-identical (both implement gguf-py's dequantization exactly).
    func testExportReadsBackWithGGUFPy() throws {
        guard pythonHas("gguf, safetensors, numpy") else {
            throw XCTSkip("python3 with gguf not installed: GGUF interop check skipped (make test makes .build/reference-venv and puts its bin/ first on PATH)")
        }
        guard let shared = sharedDirectory() else { throw XCTSkip("LOOM_SHARED not present") }
        let model = dir + "/llama"
        try FileManager.default.copyItem(atPath: shared + "/fixtures/llama-tiny", toPath: model)
        // A small byte-level tokenizer with a chat template, so the tokenizer keys are written too.
        let vocab = (0..<256).map { ByteLevel.alphabet[$0] }
        var v = JSONObject()
        for (i, t) in vocab.enumerated() { v.append(t, .int(i)) }
        for (i, t) in ["<s>", "</s>"].enumerated() { v.append(t, .int(256 + i)) }
        let tokenizer: JSONValue = [
            "version": "1.0", "truncation": nil, "padding": nil,
            "added_tokens": [
                ["id": 256, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
                ["id": 257, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
            ],
            "normalizer": nil, "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": nil, "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": .object(v), "merges": [],
            ],
        ]
        try FS.writeAtomically(tokenizer.jsonString, to: model + "/tokenizer.json")
        try FS.writeAtomically(#"{"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ messages }}"}"#, to: model + "/tokenizer_config.json")
        let file = dir + "/llama.gguf"
        let s = try GGUFExport.write(directory: model, to: file, type: .q8_0)
        XCTAssertTrue(s.tokenizer)
        XCTAssertTrue(s.chatTemplate)
        try runPythonChecked([interopScript.replacingOccurrences(of: "hf_interop.py", with: "gguf_read.py"), file, dir + "/py"])
        let py = try JSONValue.parse(try FS.readText(dir + "/py.json"))
        let g = try GGUFFile(path: file)
        XCTAssertEqual(py["data_offset"]?.intValue, g.dataOffset)
        XCTAssertEqual(py["kv"]?.arrayValue?.compactMap { $0["key"]?.stringValue }, g.metadata.map(\.key))
        for entry in py["kv"]?.arrayValue ?? [] {
            let key = entry["key"]?.stringValue ?? ""
            let value = try XCTUnwrap(g[key])
            XCTAssertEqual(entry["type"]?.stringValue, value.type.name, key)
            if let s = value.stringValue { XCTAssertEqual(entry["value"]?.stringValue, s, key) }
            if let i = value.intValue { XCTAssertEqual(entry["value"]?.intValue, i, key) }
            if let a = value.arrayValue { XCTAssertEqual(entry["count"]?.intValue, a.count, key) }
        }
        XCTAssertEqual(g["tokenizer.ggml.model"]?.stringValue, "gpt2")
        XCTAssertEqual(g["tokenizer.chat_template"]?.stringValue, "{{ messages }}")
        XCTAssertEqual(g["tokenizer.ggml.bos_token_id"]?.intValue, 256)
        let values = try tensors(dir + "/py.safetensors")
        XCTAssertEqual(Set(values.keys), Set(g.tensors.map(\.name)))
        for t in g.tensors {
            XCTAssertEqual(try XCTUnwrap(values[t.name]).floats().map(\.bitPattern), try g.floats(t.name).map(\.bitPattern), t.name)
        }
        XCTAssertEqual(py["tensors"]?.arrayValue?.compactMap { $0["type"]?.stringValue }, g.tensors.map(\.type.name))
    }
}

extension GGUFImportTests {
    /// A .gguf path resolves to a directory imported once (the second call reuses it) that loads as a model; any
    /// other path is returned as it is.
    func testModelDirectoryForGGUFPath() throws {
        let file = try ggufFixture("gemma3-tiny-f16.gguf")
        let first = try GGUFImport.modelDirectory(file, cache: dir + "/cache")
        XCTAssertTrue(first.hasPrefix(dir + "/cache/gemma3-tiny-f16-"))
        let stamp = try FileManager.default.attributesOfItem(atPath: first + "/model.safetensors")[.modificationDate] as? Date
        XCTAssertEqual(try GGUFImport.modelDirectory(file, cache: dir + "/cache"), first)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: first + "/model.safetensors")[.modificationDate] as? Date, stamp)
        let model = try LlamaModel.load(directory: first)
        XCTAssertEqual(model.config.family, .gemma3)
        XCTAssertEqual(try GGUFImport.modelDirectory(dir), dir)
    }
}
