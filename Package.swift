// swift-tools-version:6.0
import Foundation
import PackageDescription

// Loom: one package, a library per stage (see ../shared/DESIGN.md, "Modules").
// Targets land with their issues; the arrows point one way: loom -> stage libraries -> LoomCore -> C targets.
let package = Package(
    name: "Loom",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "LoomCore", targets: ["LoomCore"]),
        .library(name: "LoomIngest", targets: ["LoomIngest"]),
        .library(name: "LoomDedup", targets: ["LoomDedup"]),
        .library(name: "LoomGenerate", targets: ["LoomGenerate"]),
        .library(name: "LoomPack", targets: ["LoomPack"]),
        .library(name: "LoomTensor", targets: ["LoomTensor"]),
        .library(name: "LoomTokenizer", targets: ["LoomTokenizer"]),
        .library(name: "LoomTrain", targets: ["LoomTrain"]),
        .library(name: "LoomGrammar", targets: ["LoomGrammar"]),
        .library(name: "LoomMerge", targets: ["LoomMerge"]),
        .library(name: "LoomVerilog", targets: ["LoomVerilog"]),
        .library(name: "LoomReport", targets: ["LoomReport"]),
        .library(name: "LoomEval", targets: ["LoomEval"]),
        .library(name: "LoomFilter", targets: ["LoomFilter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // `loom serve`'s HTTP server: no SwiftNIO, builds in seconds (../shared/NATIVE.md).
    ],
    targets: [
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CPoppler", pkgConfig: "poppler-glib", providers: [.apt(["libpoppler-glib-dev", "libcairo2-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CTesseract", providers: [.apt(["libtesseract-dev", "libleptonica-dev"])]),
        .target(name: "LoomCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "CLoomKernels"),
        // Blocking HTTP POST through libcurl's easy interface (the generator's openai backend; libcurl4-openssl-dev).
        .target(name: "CHTTP", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "LoomIngest", dependencies: ["LoomCore", "CLibXML2", "CZlib", "CPoppler", "CTesseract"]),
        .target(name: "LoomDedup", dependencies: ["LoomCore", "CLoomKernels"]),
        .target(
            name: "LoomGenerate",
            dependencies: [
                "LoomCore", "CSQLite", "CHTTP", .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Yams", package: "Yams"),
            ]),
        .executableTarget(
            name: "loom",
            dependencies: [
                "LoomCore", "LoomIngest", "LoomDedup", "LoomGenerate", "LoomPack", "LoomTensor", "LoomTokenizer",
                "LoomTrain", "LoomMerge", "LoomVerilog", "LoomServe", "LoomReport", "LoomEval", "LoomFilter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "LoomTestServer", dependencies: ["LoomCore"]),
        .target(name: "LoomPack", dependencies: ["LoomCore", "CLoomKernels", "LoomTensor", "LoomTokenizer"]),
        // The trainer's kernels: optimised even in debug builds, so the tests and the demo's training run at speed.
        .target(name: "CTensorKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "LoomTensor", dependencies: ["LoomCore", "COpenBLAS", "CTensorKernels"]),
        // The tokenizer is its own target (DESIGN.md puts it in LoomTrain) so LoomPack can count tokens with it
        // without importing the trainer.
        .target(name: "LoomTokenizer", dependencies: ["LoomCore"]),
        // JSON schemas to byte-level matchers and token masks (constrained decoding); knows no model or tokenizer.
        // Optimised even in debug builds: a mask runs over the whole vocabulary at every generated token, and the
        // tests check it against the reference mask (every token through the matcher) at every step.
        .target(name: "LoomGrammar", dependencies: ["LoomCore"], swiftSettings: [.unsafeFlags(["-O"])]),
        .target(
            name: "LoomTrain", dependencies: ["LoomCore", "LoomTensor", "LoomTokenizer", "LoomGrammar", "CTensorKernels"]),
        // The OpenAI-compatible server over a LoomTrain model (its own target keeps HTTP out of the trainer).
        .target(
            name: "LoomServe",
            dependencies: ["LoomCore", "LoomTrain"]),
        // Merging needs tensors only, not the model: its own target (DESIGN.md puts it in LoomTrain).
        .target(name: "LoomMerge", dependencies: ["LoomCore", "LoomTensor", .product(name: "Yams", package: "Yams")]),
        .target(
            name: "LoomVerilog",
            dependencies: [
                "LoomCore", .product(name: "Mustache", package: "swift-mustache"), .product(name: "Yams", package: "Yams"),
            ]),
        // `loom report`: the HTML page about a run, read from the stage directories alone.
        .target(name: "LoomReport", dependencies: ["LoomCore"]),
        // Splits by document, task builders and evaluation (perplexity, multiple choice, generation) of LoomTrain models.
        .target(
            name: "LoomEval",
            dependencies: [
                "LoomCore", "LoomTrain", "LoomTokenizer", "LoomTensor",
                // The task builders' phrasings (templates/tasks/*.yaml, Mustache).
                .product(name: "Mustache", package: "swift-mustache"), .product(name: "Yams", package: "Yams"),
            ]),
        // Quality filters (Gopher, C4, FineWeb, OCR signs, domain similarity through LoomCore's TextEmbedder).
        .target(name: "LoomFilter", dependencies: ["LoomCore"]),
        .executableTarget(
            name: "loom-bench",
            dependencies: [
                "CLibXML2", "CZlib", "CLoomKernels", "LoomTestServer", "LoomPack", "LoomCore", "LoomTensor", "LoomTokenizer",
                "LoomTrain", "LoomMerge", "LoomVerilog", "LoomGrammar",
            ],
            path: "Benchmarks/loom-bench"),
        .testTarget(name: "LoomCoreTests", dependencies: ["LoomCore"]),
        .testTarget(name: "LoomIngestTests", dependencies: ["LoomIngest", "LoomCore", "CPoppler"]),
        .testTarget(name: "LoomDedupTests", dependencies: ["LoomDedup", "LoomCore", "CLoomKernels"]),
        .testTarget(name: "LoomGenerateTests", dependencies: ["LoomGenerate", "LoomCore", "LoomTestServer"]),
        // Optimised even in debug builds, for the float64 MiniLM reference the MiniLM tolerances come from
        // (MiniLMBounds.swift): 5 s instead of 70.
        .testTarget(
            name: "LoomPackTests", dependencies: ["LoomPack", "LoomCore", "CLoomKernels", "COpenBLAS"], swiftSettings: [.unsafeFlags(["-O"])]),
        .testTarget(name: "LoomTensorTests", dependencies: ["LoomTensor", "LoomCore", "CTensorKernels"]),
        .testTarget(name: "LoomTokenizerTests", dependencies: ["LoomTokenizer", "LoomCore"]),
        // Optimised even in debug builds: the float64 reference model the tolerances come from (ErrorBounds.swift)
        // runs in seconds instead of minutes.
        .testTarget(
            name: "LoomTrainTests",
            dependencies: ["LoomTrain", "LoomTensor", "LoomTokenizer", "LoomCore", "LoomGrammar", "COpenBLAS"],
            swiftSettings: [.unsafeFlags(["-O"])]),
        .testTarget(name: "LoomGrammarTests", dependencies: ["LoomGrammar", "LoomCore"]),
        .testTarget(name: "LoomMergeTests", dependencies: ["LoomMerge", "LoomTensor", "LoomCore"]),
        .testTarget(name: "LoomVerilogTests", dependencies: ["LoomVerilog", "LoomCore"]),
        .testTarget(name: "LoomCLITests", dependencies: ["LoomCore"]),
        .testTarget(name: "LoomReportTests", dependencies: ["LoomReport", "LoomCore"]),
        .testTarget(
            name: "LoomEvalTests",
            dependencies: [
                "LoomEval", "LoomTrain", "LoomTensor", "LoomCore",
                // Real inputs for the split and task tests: PubMed ingest, chunks, reading-comprehension samples, dedup.
                "LoomIngest", "LoomGenerate", "LoomDedup",
            ]),
        .testTarget(
            name: "LoomFilterTests",
            // Real inputs: PubMed and PDF ingest, chunks, Verilog descriptions, the embedders of LoomPack.
            dependencies: ["LoomFilter", "LoomCore", "LoomIngest", "LoomPack", "LoomVerilog", "LoomReport"]),
        .testTarget(
            name: "LoomServeTests", dependencies: ["LoomServe", "LoomTrain", "LoomGenerate", "LoomTensor", "LoomCore"]),
    ]
)

// The libFuzzer target exists only when asked for (it has no main of its own): see Fuzz/README.md.
if ProcessInfo.processInfo.environment["LOOM_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(name: "loom-fuzz-pubmed", dependencies: ["LoomIngest"], path: "Fuzz/pubmed"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-verilog", dependencies: ["LoomVerilog"], path: "Fuzz/verilog"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-gguf", dependencies: ["LoomTensor"], path: "Fuzz/gguf"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-json", dependencies: ["LoomCore"], path: "Fuzz/json"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-filter", dependencies: ["LoomFilter"], path: "Fuzz/filter"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-pipeline", dependencies: ["LoomCore"], path: "Fuzz/pipeline"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-merge", dependencies: ["LoomMerge", "LoomTrain", "LoomCore"], path: "Fuzz/merge"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-tokenizer", dependencies: ["LoomTokenizer", "LoomCore"], path: "Fuzz/tokenizer"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-safetensors", dependencies: ["LoomTensor"], path: "Fuzz/safetensors"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-torch", dependencies: ["LoomPack", "LoomTensor"], path: "Fuzz/torch"))
    package.targets.append(
        .executableTarget(
            name: "loom-fuzz-templates",
            dependencies: ["LoomGenerate", "LoomTokenizer", "LoomCore", .product(name: "Mustache", package: "swift-mustache")],
            path: "Fuzz/templates"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-mutations", dependencies: ["LoomVerilog"], path: "Fuzz/mutations"))
    package.targets.append(
        .executableTarget(name: "loom-fuzz-http", dependencies: ["LoomServe"], path: "Fuzz/http"))
}
