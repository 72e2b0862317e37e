import ArgumentParser
import Foundation
import LoomCore
import LoomTensor
import LoomTrain

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Open llama.cpp's GGUF model files and write models llama.cpp and Ollama can serve.",
        discussion: """
            A GGUF file (llama.cpp, Ollama, LM Studio, the PyPI model wheels)
            becomes a Hugging Face directory Loom trains, samples and serves
            from; a Hugging Face directory (Loom's training output included)
            becomes one GGUF file for llama-server or Ollama. Gemma 3, Llama
            and Qwen 2 are read; Llama and Gemma 3 (and Qwen 2) are written.

            Examples:
              loom model info gemma-3-270m-q4_k_m.gguf
              loom model import gemma-3-270m-q4_k_m.gguf -o models/gemma-3-270m
              loom model export out/train -o model-f16.gguf --type f16
            """,
        subcommands: [ModelImport.self, ModelInfo.self, ModelExport.self])
}

/// Runs body, turning a LoomError into one line on stderr and exit code 1.
private func reporting(_ body: () throws -> Void) throws {
    do { try body() } catch let e as LoomError {
        Log.error(e.message)
        throw ExitCode(1)
    }
}

struct ModelImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Write a Hugging Face directory (config.json, model.safetensors, tokenizer.json) from a GGUF file.",
        discussion: """
            Every tensor is dequantized to float32 (F32, F16, BF16, Q8_0,
            Q4_0, Q4_1, Q5_0, Q5_1, Q2_K to Q6_K) and stored under
            transformers' name; what llama.cpp's converter changed is undone
            (Gemma norms stored + 1, Llama's q/k rows permuted for its
            rotary). The tokenizer is rebuilt from tokenizer.ggml.* the way
            transformers does it, so the ids match transformers'; the chat
            template, when the file has one, goes to tokenizer_config.json.
            The result equals transformers' from_pretrained(dir,
            gguf_file=...) bit for bit, and opens there and in every Loom
            command that takes a model.

            Examples:
              loom model import gemma-3-270m-q4_k_m.gguf -o models/gemma-3-270m
              loom train sft data/ --model models/gemma-3-270m -o out/sft
            """)

    @Argument(help: "The GGUF file.")
    var file: String

    @Option(name: [.short, .customLong("output")], help: "The directory to write (created if missing).")
    var output: String

    @Option(help: "Threads for dequantization (default: every core).")
    var threads: Int?

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    func run() throws {
        try reporting {
            let start = Date()
            let g = try GGUFFile(path: file)
            let s = try GGUFImport.write(g, to: output, threads: threads ?? GGUF.defaultThreads)
            if !quiet {
                let c = s.config
                print(
                    "wrote \(output): \(c.family.rawValue), \(s.tensors) tensors, \(grouped(s.parameters)) parameters (float32)"
                        + (s.tokenizer ? ", tokenizer.json" : ", no tokenizer in the file")
                        + (s.chatTemplate ? ", chat template" : "")
                        + String(format: " in %.1f s", Date().timeIntervalSince(start)))
            }
        }
    }
}

struct ModelExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one GGUF file (for llama.cpp and Ollama) from a Hugging Face model directory.",
        discussion: """
            The file is laid out as llama.cpp's convert_hf_to_gguf.py writes
            it: the architecture's keys, the tensors under llama.cpp's names,
            the tokenizer (tokens, scores, token types, merges, special ids)
            and the chat template in the metadata. --type sets the 2-D
            weights' type: f32 (exact: 'loom model import' gives the same
            model back bit for bit), f16, or q8_0 (8 bits, a scale per 32
            values; a row that is not a multiple of 32 is written f16); norms
            and biases stay f32. Llama and Gemma 3 (and Qwen 2) models.

            Examples:
              loom model export out/train -o model.gguf --type q8_0
              llama-server -m model.gguf
              printf 'FROM ./model.gguf\\n' > Modelfile && ollama create mymodel -f Modelfile
            """)

    @Argument(help: "The Hugging Face model directory (config.json, model.safetensors, tokenizer.json), or a .gguf file.")
    var directory: String

    @Option(name: [.short, .customLong("output")], help: "The GGUF file to write.")
    var output: String

    @Option(help: "Type of the 2-D weights: f32, f16 or q8_0.")
    var type = "f16"

    @Option(help: "general.name in the file (default: the directory's name).")
    var name: String?

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    func run() throws {
        try reporting {
            guard let t = GGMLType(name: type), [.f32, .f16, .q8_0].contains(t) else {
                throw LoomError("--type \(type): use f32, f16 or q8_0")
            }
            let start = Date()
            // A .gguf input (re-quantising a file, say) goes through the import cache like every model argument.
            let s = try GGUFExport.write(directory: try GGUFImport.modelDirectory(directory), to: output, type: t, name: name)
            if !quiet {
                let types = s.types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                print(
                    "wrote \(output): \(s.tensors) tensors (\(types)), \(grouped(s.bytes)) bytes"
                        + (s.tokenizer ? ", tokenizer" : ", no tokenizer.json in the directory")
                        + (s.chatTemplate ? ", chat template" : "") + String(format: " in %.1f s", Date().timeIntervalSince(start)))
            }
        }
    }
}

struct ModelInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a GGUF file's or a model directory's architecture, sizes, tensor types and metadata.",
        discussion: """
            For a GGUF file: version, alignment, the model config its metadata
            describes, the parameter count, how many tensors of each type
            (Q4_K, Q6_K, ...), and every metadata key (arrays summarised by
            type, length and first values). For a Hugging Face directory: the
            config, the parameter count and the tensors' dtypes.

            Examples:
              loom model info gemma-3-270m-q4_k_m.gguf
              loom model info models/gemma-3-270m
            """)

    @Argument(help: "A GGUF file or a Hugging Face model directory.")
    var path: String

    func run() throws {
        try reporting {
            if FS.isDirectory(path) { try directoryInfo() } else { try ggufInfo() }
        }
    }

    func describe(_ c: LlamaConfig) -> String {
        var s = "\(c.family.rawValue): \(c.numLayers) layers, hidden \(c.hiddenSize), MLP \(c.intermediateSize), "
        s += "\(c.numHeads) heads (\(c.numKVHeads) KV) of \(c.headDim), vocabulary \(c.vocabSize), context \(c.maxPositions), "
        s += "rope θ \(c.ropeTheta)"
        if let w = c.slidingWindow {
            let full = c.slidingLayers.enumerated().filter { !$0.element }.map { String($0.offset) }.joined(separator: ",")
            s += ", sliding window \(w) (full layers \(full), local θ \(c.localRopeTheta ?? 0))"
        }
        s += c.tieWordEmbeddings ? ", tied embeddings" : ""
        return s
    }

    func ggufInfo() throws {
        let g = try GGUFFile(path: path)
        print("\(path): GGUF v\(g.version), \(grouped(g.fileSize)) bytes, alignment \(g.alignment), data at byte \(grouped(g.dataOffset))")
        print("architecture: \(g.architecture ?? "none")  name: \(g["general.name"]?.stringValue ?? "-")")
        if let c = try? GGUFImport.config(g) { print("config: " + describe(c)) }
        let params = g.tensors.reduce(0) { $0 + $1.count }
        print("tensors: \(g.tensors.count), \(grouped(params)) parameters")
        var types: [String: (Int, Int)] = [:]
        for t in g.tensors { types[t.type.name, default: (0, 0)].0 += 1; types[t.type.name, default: (0, 0)].1 += t.byteCount }
        for (name, (n, bytes)) in types.sorted(by: { $0.value.1 > $1.value.1 }) {
            print("  \(name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(String(n).leftPad(4)) tensors  \(grouped(bytes).leftPad(13)) bytes")
        }
        print("metadata (\(g.metadata.count) keys):")
        for (k, v) in g.metadata { print("  \(k) = \(summary(v))") }
    }

    func summary(_ v: GGUFValue) -> String {
        switch v {
        case .string(let s): return s.count > 120 ? "\"\(s.prefix(100).debugDescription.dropFirst().dropLast())…\" (\(s.count) characters)" : s.debugDescription
        case .array(let a):
            let head = (0..<min(a.count, 6)).map { summary(a[$0]) }.joined(separator: ", ")
            return "[\(a.elementType.name) × \(grouped(a.count))] \(head)\(a.count > 6 ? ", …" : "")"
        case .float32(let f): return "\(f)"
        case .float64(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        default: return v.intValue.map { "\($0)" } ?? "\(v)"
        }
    }

    func directoryInfo() throws {
        let c = try LlamaConfig.load(path)
        print("\(path): Hugging Face model directory")
        print("config: " + describe(c))
        var dtypes: [String: Int] = [:]
        var params = 0, count = 0
        for f in FS.list(path).filter({ $0.hasSuffix(".safetensors") }).sorted() {
            let file = try SafeTensorsFile(path: FS.join(path, f))
            for e in file.entries {
                dtypes[e.dtype.rawValue, default: 0] += 1
                params += e.count
                count += 1
            }
        }
        print("tensors: \(count), \(grouped(params)) parameters (" + dtypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")")
        for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"] where FS.exists(FS.join(path, f)) {
            print("  \(f)")
        }
    }
}

/// 1234567 → "1,234,567".
func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
