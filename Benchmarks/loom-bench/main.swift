// loom-bench: Loom's benchmarks against named peers, on the same input in the same run.
//
//   loom-bench pubmed FILE [--runs N]              PubMed ingest vs pubmed_parser.parse_medline_xml; libxml2's
//                                                  reader and SAX2 loops; --jobs 2 vs --jobs 1 on two files
//   loom-bench memory SAMPLE.xml [--gigabytes G]   peak memory ingesting a G GB file made by repeating SAMPLE's
//                                                  articles (and an eighth of it, to show memory is flat)
//   loom-bench dedup CORPUS.jsonl TRUTH.tsv [--runs N] [--peer-runs M]
//                                                  MinHash dedup vs rensa and datasketch: documents/s, peak memory,
//                                                  precision/recall of the reported pairs; --jobs 2 vs --jobs 1
//   loom-bench pdf DIR [--runs N]                  PDF text layers vs pdftotext (pages/s), --jobs 2 vs 1, and
//                                                  OCR vs the tesseract command on the same page images
//   loom-bench generate [--latency S]              loom generate qa requests/s at --concurrency 1, 4, 16 against a
//                                                  loopback server answering after S seconds (default 0.2)
//   loom-bench pack PUBMED.xml.gz [--samples N]    knapsack vs first-fit-decreasing on the chunk lengths of a PubMed
//                                                  file at 4,096 tokens, and N samples (1,000,000) drawn from them
//   loom-bench verilog DIR [--runs N]              Verilog parse MB/s and files/s vs pyverilog (one reused parser) and
//                                                  pyslang (SyntaxTree.fromText) on the .v files all three parse
//   loom-bench lora MODEL_DIR STAGE_DIR [--seq 1024] [--steps 4] [--runs N]
//                                                  LoRA SFT of a pretrained model vs transformers + PEFT on the same
//                                                  rows (tokens/s, peak memory); Benchmarks/peers/lora_sft_bench.py
//   loom-bench decode MODEL_DIR [--tokens 64] [--runs N]
//                                                  greedy decoding tokens/s vs transformers' generate, same prompt
//   loom-bench train [--runs N] [--hidden ...]   training tokens/s and peak memory vs PyTorch (transformers Llama,
//                                                  AdamW, fp32, same config and threads); MFU against measured sgemm
//   loom-bench dpo [--runs N] [--pairs N]          one DPO epoch over the same pairs vs PyTorch (chosen/rejected
//                                                  padded to the batch's longest, as TRL): pairs/s, padding, memory
//   loom-bench tokenizer CORPUS.jsonl [TOKENIZER.json ...] [--megabytes M] [--runs N]
//                                                  BPE encoding MB/s vs Hugging Face tokenizers, one thread each
//                                                  (encode per text and batch), on the texts of a corpus; default
//                                                  tokenizers: both in $LOOM_SHARED/fixtures/tokenizer
//   loom-bench minilm PUBMED.xml.gz [--model DIR] [--sentences N]
//                                                  MiniLM sentences/s vs sentence-transformers (PyTorch) on N
//                                                  abstract sentences (2,000), 1 and 2 threads; vector cosines
//   loom-bench neighbours PUBMED.xml.gz [--vectors N] [--embedder hashing|minilm|synthetic] [--ivf L:P[:f32],...] [--no-peer]
//                                                  IVF approximate neighbours vs exact search on N (100,000)
//                                                  vectors of abstract sentences, and faiss (IndexFlatIP,
//                                                  IndexIVFFlat) when importable: recall@10 and seconds
//   loom-bench batch MODEL [--requests 8] [--tokens 64] [--max-batch 8] [--threads 2] [--temperature T] [--runs N]
//                                                  batched decoding: tokens/s of N concurrent requests vs the same
//                                                  requests one at a time (DecodeBatcher vs InferenceSession)
//   loom-bench json FILE [--runs N]                JSONValue.parse vs Python json.loads on FILE (a tokenizer.json)
//   loom-bench dedup-memory [--documents N]        peak memory of 'loom dedup minhash' on N generated short
//                                                  documents (and N/4), to extrapolate to 10 million
//   loom-bench merge [--gigabytes G] [--runs N]    peak memory and time of 'loom merge' (every method) on two
//                                                  synthetic G GB Llama checkpoints, and of mergekit-yaml if present
//   loom-bench gguf FILE.gguf [--runs N]           GGUF import to float32 safetensors vs transformers'
//                                                  from_pretrained(gguf_file=...) and gguf-py's numpy dequantize,
//                                                  one thread and every core
//   loom-bench constrained MODEL [--threads T]     constrained decoding from a JSON schema (templates/qa, evol) on
//                                                  the model's vocabulary: mask and constraint time per token vs
//                                                  the model's decode time per token; fast mask = reference mask
//   loom-bench sample [--runs N] [--threads T] [--hidden ... as train] [--new N] [--prompt N]
//                                                  greedy generation tokens/s (KV cache) vs transformers' generate
//                                                  on the same random checkpoint; the generated ids compared
//
// Timings are wall-clock seconds of whole processes (the `loom` binary beside this one, `python3` for the peer),
// best and median of N interleaved runs; peak memory is the child's maxrss from wait4 (this process stays small,
// so Linux's carrying of the parent's peak into a spawned child's maxrss does not distort it). No timing is asserted.

import CLibXML2
import CZlib
import CLoomKernels
import LoomTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct Measurement {
    var wall: Double
    var cpu: Double
    var maxRSSMB: Double
    var status: Int32
}

/// Runs a command, waits with wait4, and returns wall time, CPU time and peak memory of the child.
func measure(_ argv: [String], quietOutput: Bool = true) -> Measurement {
    var pid: pid_t = 0
    var fa: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    if quietOutput { posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) }
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for a in cargs { free(a) } }
    let start = Date()
    let rc = posix_spawnp(&pid, argv[0], &fa, nil, cargs, environ)
    posix_spawn_file_actions_destroy(&fa)
    guard rc == 0 else {
        print("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        exit(2)
    }
    var status: Int32 = 0
    var ru = rusage()
    _ = wait4(pid, &status, 0, &ru)
    let wall = Date().timeIntervalSince(start)
    let cpu = Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec)
        + Double(ru.ru_stime.tv_usec) / 1e6
    return Measurement(wall: wall, cpu: cpu, maxRSSMB: Double(ru.ru_maxrss) / 1024, status: (status >> 8) & 0xFF)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

let here = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
let loom = here.appendingPathComponent("loom").path
let benchDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path

func uncompressedSize(_ path: String) -> Int {
    guard let g = gzopen(path, "rb") else { return 0 }
    defer { gzclose(g) }
    var total = 0
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buf.withUnsafeMutableBytes { gzread(g, $0.baseAddress, UInt32($0.count)) }
        if n <= 0 { break }
        total += Int(n)
    }
    return total
}

func cpuSeconds() -> Double {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec)
        + Double(ru.ru_stime.tv_usec) / 1e6
}

/// libxml2's two streaming interfaces with no work in the callbacks: the floor each puts under an ingest.
func libxmlLoops(_ path: String) -> (reader: Double, sax: Double) {
    xmlInitParser()
    loom_xml_install_deny_loader()
    var t = cpuSeconds()
    if let r = xmlReaderForFile(path, nil, Int32(XML_PARSE_NONET.rawValue)) {
        while xmlTextReaderRead(r) == 1 {}
        xmlFreeTextReader(r)
    }
    let reader = cpuSeconds() - t
    var sax = xmlSAXHandler()
    sax.initialized = XML_SAX2_MAGIC
    sax.startElementNs = { _, _, _, _, _, _, _, _, _ in }
    sax.endElementNs = { _, _, _, _ in }
    sax.characters = { _, _, _ in }
    sax.serror = { _, _ in }
    // SAX2 push parser fed from zlib, as the reader gets its bytes (the deny-all entity loader Loom installs
    // also refuses xmlSAXUserParseFile's own file load, so bytes are pushed).
    t = cpuSeconds()
    if let g = gzopen(path, "rb"), let ctxt = xmlCreatePushParserCtxt(&sax, nil, nil, 0, path) {
        xmlCtxtUseOptions(ctxt, Int32(XML_PARSE_NONET.rawValue))
        var buf = [CChar](repeating: 0, count: 256 << 10)
        while true {
            let n = buf.withUnsafeMutableBytes { gzread(g, $0.baseAddress, UInt32($0.count)) }
            if n <= 0 { break }
            _ = xmlParseChunk(ctxt, buf, n, 0)
        }
        _ = xmlParseChunk(ctxt, nil, 0, 1)
        if ctxt.pointee.wellFormed == 0 { print("(the SAX2 loop met a well-formedness error)") }
        xmlFreeParserCtxt(ctxt)
        gzclose(g)
    }
    return (reader, cpuSeconds() - t)
}

func pubmed(_ file: String, runs: Int) {
    let tmp = NSTemporaryDirectory() + "loom-bench-" + UUID().uuidString.prefix(8)
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let mb = Double(uncompressedSize(file)) / 1e6
    let fileMB = Double((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) / 1e6
    print("# PubMed ingest benchmark\n")
    print("input: \(file) (\(f(fileMB, 1)) MB on disk, \(f(mb, 1)) MB of XML); \(runs) interleaved runs; best and median wall seconds\n")

    let loops = libxmlLoops(file)
    print("libxml2 alone, no work in callbacks (CPU seconds, one thread):")
    print("- xmlTextReader loop: \(f(loops.reader)) s (\(f(mb / loops.reader, 0)) MB/s)")
    print("- SAX2 push parser fed by gzread: \(f(loops.sax)) s (\(f(mb / loops.sax, 0)) MB/s)\n")

    let peer = benchDir + "/peers/pubmed_parser_bench.py"
    var ours: [Measurement] = []
    var theirs: [Measurement] = []
    var count = 0
    for _ in 0..<runs {
        ours.append(measure([loom, "ingest", "pubmed", file, "-o", tmp + "/out", "--jobs", "1", "--force", "-q"]))
        theirs.append(measure(["python3", peer, file, tmp + "/pp.count"]))
        count = Int((try? String(contentsOfFile: tmp + "/pp.count", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
    }
    if ours.contains(where: { $0.status != 0 }) || theirs.contains(where: { $0.status != 0 }) {
        print("a run failed (loom statuses \(ours.map(\.status)), peer statuses \(theirs.map(\.status)))")
    }
    let n = Double(count)
    func row(_ name: String, _ ms: [Measurement]) -> String {
        let best = ms.map(\.wall).min()!
        let med = median(ms.map(\.wall))
        return "| \(name) | \(f(best)) | \(f(med)) | \(f(n / best, 0)) | \(f(mb / best, 1)) | \(f(median(ms.map(\.cpu)))) | \(f(ms.map(\.maxRSSMB).max()!, 0)) |"
    }
    print("| tool (one job) | best s | median s | articles/s (best) | MB/s (best) | CPU s (median) | peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(row("loom ingest pubmed --jobs 1", ours))
    print(row("pubmed_parser 0.5.1 parse_medline_xml", theirs))
    let bestRatio = theirs.map(\.wall).min()! / ours.map(\.wall).min()!
    let medRatio = median(theirs.map(\.wall)) / median(ours.map(\.wall))
    // Each run of loom sits next to a run of the peer: the ratio within each pair cancels slow spells of the host.
    let pairRatios = zip(theirs, ours).map { $0.wall / $1.wall }
    print(
        "\nloom / pubmed_parser articles/s: \(f(bestRatio, 1))x (best), \(f(medRatio, 1))x (median), \(f(median(pairRatios), 1))x (median of the \(runs) run pairs; pairs \(pairRatios.map { f($0, 1) }.joined(separator: " "))); \(count) articles\n"
    )

    // Two files: --jobs 2 against --jobs 1.
    let a = tmp + "/a-" + (file as NSString).lastPathComponent
    let b = tmp + "/b-" + (file as NSString).lastPathComponent
    let absolute = URL(fileURLWithPath: file).standardizedFileURL.path
    try? FileManager.default.createSymbolicLink(atPath: a, withDestinationPath: absolute)
    try? FileManager.default.createSymbolicLink(atPath: b, withDestinationPath: absolute)
    var one: [Measurement] = []
    var two: [Measurement] = []
    for _ in 0..<runs {
        one.append(measure([loom, "ingest", "pubmed", a, b, "-o", tmp + "/j", "--jobs", "1", "--force", "-q"]))
        two.append(measure([loom, "ingest", "pubmed", a, b, "-o", tmp + "/j", "--jobs", "2", "--force", "-q"]))
    }
    print("| two files (\(f(2 * mb, 0)) MB of XML) | best s | median s | peak MB |")
    print("| --- | --- | --- | --- |")
    print("| loom --jobs 1 | \(f(one.map(\.wall).min()!)) | \(f(median(one.map(\.wall)))) | \(f(one.map(\.maxRSSMB).max()!, 0)) |")
    print("| loom --jobs 2 | \(f(two.map(\.wall).min()!)) | \(f(median(two.map(\.wall)))) | \(f(two.map(\.maxRSSMB).max()!, 0)) |")
    let jobPairs = zip(one, two).map { $0.wall / $1.wall }
    print(
        "\n--jobs 2 / --jobs 1 throughput: \(f(one.map(\.wall).min()! / two.map(\.wall).min()!))x (best), \(f(median(one.map(\.wall)) / median(two.map(\.wall))))x (median), \(f(median(jobPairs)))x (median of run pairs; pairs \(jobPairs.map { f($0) }.joined(separator: " ")))"
    )
}

/// Cuts the `<PubmedArticle>` elements out of a sample file.
func articles(of sample: String) -> [String] {
    guard let text = try? String(contentsOfFile: sample, encoding: .utf8) else { return [] }
    var out: [String] = []
    var rest = text[...]
    while let s = rest.range(of: "<PubmedArticle>"), let e = rest.range(of: "</PubmedArticle>", range: s.upperBound..<rest.endIndex) {
        out.append(String(rest[s.lowerBound..<e.upperBound]))
        rest = rest[e.upperBound...]
    }
    return out
}

func memory(_ sample: String, gigabytes: Double) {
    let arts = articles(of: sample)
    guard !arts.isEmpty else {
        print("no <PubmedArticle> in \(sample)")
        exit(2)
    }
    let tmp = NSTemporaryDirectory() + "loom-bench-mem-" + UUID().uuidString.prefix(8)
    try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    print("# PubMed ingest memory\n")
    print("input: the \(arts.count) articles of \(sample), repeated inside one PubmedArticleSet\n")
    print("| XML size | articles | wall s | peak MB | records written |")
    print("| --- | --- | --- | --- | --- |")
    for target in [gigabytes / 8, gigabytes] {
        let path = tmp + "/big.xml"
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let h = FileHandle(forWritingAtPath: path) else { exit(2) }
        h.write(Data("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PubmedArticleSet>\n".utf8))
        var size = 0
        var n = 0
        var block = ""
        let limit = Int(target * 1e9)
        while size < limit {
            for a in arts {
                block += a + "\n"
                n += 1
            }
            if block.utf8.count > 8 << 20 || size + block.utf8.count >= limit {
                h.write(Data(block.utf8))
                size += block.utf8.count
                block = ""
            }
        }
        h.write(Data("</PubmedArticleSet>\n".utf8))
        try? h.close()
        let m = measure([loom, "ingest", "pubmed", path, "-o", tmp + "/out", "--jobs", "1", "--force", "-q"])
        let manifest = (try? String(contentsOfFile: tmp + "/out/manifest.json", encoding: .utf8)) ?? ""
        let records = manifest.split(separator: "\n").first { $0.contains("\"records\"") }?
            .filter { $0.isNumber } ?? "?"
        print("| \(f(Double(size) / 1e9, 2)) GB | \(n) | \(f(m.wall, 1)) | \(f(m.maxRSSMB, 0)) | \(records) |")
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: tmp + "/out")
    }
}

nonisolated(unsafe) var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    let v = args[i + 1]
    args.removeSubrange(i...(i + 1))
    return v
}
let runs = option("--runs").flatMap(Int.init) ?? 7
let peerRuns = option("--peer-runs").flatMap(Int.init) ?? 3
let documents = option("--documents").flatMap(Int.init) ?? 1_000_000
let latency = option("--latency").flatMap(Double.init) ?? 0.2
let samples = option("--samples").flatMap(Int.init) ?? 1_000_000
let gigabytes = option("--gigabytes").flatMap(Double.init) ?? 1
let minilmModel = option("--model")
let sentenceCount = option("--sentences").flatMap(Int.init) ?? 2000
let vectorCount = option("--vectors").flatMap(Int.init) ?? 100_000
let neighbourEmbedder = option("--embedder") ?? "hashing"
let tokenizerMegabytes = option("--megabytes").flatMap(Double.init) ?? 0
let ivfOption = option("--ivf")
let reuseExact = args.contains("--reuse-exact")
args.removeAll { $0 == "--reuse-exact" }
let noPeer = args.contains("--no-peer")
args.removeAll { $0 == "--no-peer" }
// `constrained` and `batch` run in this process and need no `loom` binary.
guard args.first == "constrained" || args.first == "batch" || FileManager.default.isExecutableFile(atPath: loom) else {
    print("\(loom) not found: build with 'swift build -c release' first")
    exit(2)
}
// lora and decode share some option names with train: their own values, read first.
var loraShape = LoRABench()
var decodeTokens = 64
if ["lora", "lora-child", "decode", "decode-child"].contains(args.first ?? "") {
    if let v = option("--tokens").flatMap(Int.init) { decodeTokens = v }
    for (k, path) in [("--seq", \LoRABench.seq), ("--steps", \.steps), ("--warmup", \.warmup), ("--threads", \.threads), ("--rank", \.rank)] {
        if let v = option(k).flatMap(Int.init) { loraShape[keyPath: path] = v }
    }
}
var batchOptions = BatchBenchOptions()
if args.first == "batch" {
    if let v = option("--requests").flatMap(Int.init) { batchOptions.requests = v }
    if let v = option("--tokens").flatMap(Int.init) { batchOptions.tokens = v }
    if let v = option("--max-batch").flatMap(Int.init) { batchOptions.maxBatch = v }
    if let v = option("--threads").flatMap(Int.init) { batchOptions.threads = v }
    if let v = option("--temperature").flatMap(Double.init) { batchOptions.temperature = v }
    if let v = option("--top-k").flatMap(Int.init) { batchOptions.topK = v }
    if let v = option("--top-p").flatMap(Double.init) { batchOptions.topP = v }
    batchOptions.only = option("--only")
    batchOptions.streamRows = option("--stream-rows").flatMap(Int.init)
    batchOptions.runs = CommandLine.arguments.contains("--runs") ? runs : 2
}
var trainShape = TrainShape()
for (k, path) in [
    ("--hidden", \TrainShape.hidden), ("--intermediate", \.intermediate), ("--layers", \.layers), ("--heads", \.heads),
    ("--vocab", \.vocab), ("--seq", \.seq), ("--batch", \.batch), ("--threads", \.threads), ("--steps", \.steps),
    ("--warmup", \.warmup),
] {
    if let v = option(k).flatMap(Int.init) { trainShape[keyPath: path] = v }
}
// Which machine and paths every figure below comes from (docs/benchmarks.md names them for each figure).
if let first = args.first, !first.hasPrefix("-") {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
        .first { $0.hasPrefix("model name") }.map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    let path = String(cString: loom_path_name(loom_kernel_path())), best = String(cString: loom_path_name(loom_cpu_path()))
    print("machine: \(cpu); Loom kernels \(path) (this CPU runs up to \(best); LOOM_KERNELS sets it); OpenBLAS core \(Matmul.coreName)")
}
switch (args.first, args.count) {
case ("pubmed", 2): pubmed(args[1], runs: runs)
case ("gguf", 2): ggufBench(args[1], runs: runs)
case ("memory", 2): memory(args[1], gigabytes: gigabytes)
case ("dedup", 3): dedup(args[1], truth: args[2], runs: runs, peerRuns: peerRuns)
case ("dedup-memory", 1): dedupMemory(documents: documents)
case ("pdf", 2): pdf(args[1], runs: runs)
case ("generate", 1): generateConcurrency(latency: latency)
case ("pack", 2): pack(args[1], samples: samples, context: 4096)
case ("verilog", 2): verilogBench(args[1], runs: runs)
case ("minilm", 2): minilm(args[1], model: minilmModel, count: sentenceCount, runs: runs)
case ("neighbours", 2):
    neighboursBench(args[1], count: vectorCount, embedder: neighbourEmbedder, model: minilmModel, configs: ivfOption.map(ivfLayouts), reuseExact: reuseExact, peer: !noPeer)
case ("tokenizer", _) where args.count >= 2:
    let shared = ProcessInfo.processInfo.environment["LOOM_SHARED"] ?? benchDir + "/../../shared"
    let given = Array(args.dropFirst(2))
    let toks = given.isEmpty ? ["tokenizer.json", "tokenizer-llama3-split.json"].map { shared + "/fixtures/tokenizer/" + $0 } : given
    tokenizerBench(args[1], megabytes: tokenizerMegabytes, runs: runs, tokenizers: toks)
case ("train", 1): train(trainShape, runs: runs)
case ("train-child", 1): trainChild(trainShape)
case ("lora", 3): loraBench(model: args[1], stage: args[2], loraShape, runs: runs)
case ("lora-child", 3): loraChild(model: args[1], rows: args[2], loraShape)
case ("decode", 2): decodeBench(model: args[1], tokens: decodeTokens, threads: loraShape.threads, runs: runs)
case ("decode-child", 2): decodeChild(model: args[1], tokens: decodeTokens, threads: loraShape.threads)
case ("dpo", _): dpoBench(dpoShape(threads: trainShape.threads), model: trainShape, runs: runs)
case ("dpo-child", _) where args.count >= 2: dpoChild(args[1], shape: dpoShape(threads: trainShape.threads), model: trainShape)
case ("merge", 1): mergeBench(gigabytes: gigabytes, runs: runs)
case ("sample", 1): sampleBench()
case ("constrained", 2): constrainedBench(model: args[1], threads: loraShape.threads)
case ("batch", 2): batchBench(model: args[1], batchOptions)
case ("json", 2): jsonBench(args[1], runs: runs)
default:
    print(
        """
        usage: loom-bench pubmed FILE.xml[.gz] [--runs N]
               loom-bench memory SAMPLE.xml [--gigabytes G]
               loom-bench dedup CORPUS.jsonl TRUTH.tsv [--runs N] [--peer-runs M]
               loom-bench dedup-memory [--documents N]
               loom-bench pdf DIR [--runs N]
               loom-bench generate [--latency S]
               loom-bench pack PUBMED.xml.gz [--samples N]
               loom-bench verilog DIR [--runs N]
               loom-bench minilm PUBMED.xml.gz [--model DIR] [--sentences N] [--runs N]
               loom-bench neighbours PUBMED.xml.gz [--vectors N] [--embedder hashing|minilm|synthetic] [--model DIR]
                         [--ivf LISTS:PROBES[:one-sided],...] [--reuse-exact] [--no-peer]
               loom-bench train [--runs N] [--hidden 256 --intermediate 688 --layers 4 --heads 4 --vocab 8192
                                 --seq 256 --batch 8 --threads 2 --steps 5 --warmup 2]
               loom-bench dpo [--runs N] [--pairs 48 --pair-seq 320 --rows 2] [--hidden ... as train]
               loom-bench merge [--gigabytes G] [--runs N]
               loom-bench batch MODEL [--requests 8] [--tokens 64] [--max-batch 8] [--threads 2] [--temperature T]
               loom-bench json FILE [--runs N]
               loom-bench constrained MODEL(.gguf or directory) [--threads T]
        """)
    exit(2)
}
