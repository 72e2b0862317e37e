// Every merge method against the reference fixture: mergekit 0.1.5's outputs for tiny Llama models
// ($LOOM_SHARED/fixtures/merge, see its README), within mergekit's stated float32 error plus Loom's own rounding.

import Foundation
import LoomCore
import LoomTensor
import XCTest

@testable import LoomMerge

/// `LOOM_SHARED` or ../shared beside the project root; nil when absent.
func sharedDirectory() -> String? {
    if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = root.deletingLastPathComponent().appendingPathComponent("shared").path
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

func temporaryDirectory(_ label: String) -> String {
    let d = NSTemporaryDirectory() + "loom-merge-\(label)-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

final class MergeFixtureTests: XCTestCase {
    var fixture = ""
    var out = ""

    override func setUpWithError() throws {
        guard let shared = sharedDirectory(), FS.isDirectory(shared + "/fixtures/merge") else {
            throw XCTSkip("LOOM_SHARED/fixtures/merge not present: merge fixture tests skipped")
        }
        fixture = shared + "/fixtures/merge"
        out = temporaryDirectory("fixture")
    }

    override func tearDown() { if !out.isEmpty { FS.remove(out) } }

    /// Merges `yaml` (models relative to the fixture folder) and compares every tensor with `expected/NAME`.
    func check(_ expected: String, yaml: String, masks: (any DropMaskProvider)? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try MergeConfig.parse(yaml: yaml, file: "\(expected).yml")
        var options = MergeOptions()
        options.searchDirectories = [fixture]
        options.masks = masks
        let dir = out + "/" + expected
        let report = try Merger.merge(config, output: dir, options: options)
        let want = try SafeTensors.read(fixture + "/expected/\(expected).safetensors").tensors
        let got = try SafeTensorsFile(path: dir + "/model.safetensors")
        XCTAssertEqual(got.names.sorted(), want.map(\.name).sorted(), expected, file: file, line: line)
        XCTAssertEqual(report.tensors, 21, file: file, line: line)
        let models = try ["base", "ft_a", "ft_b"].map { try SafeTensorsFile(path: fixture + "/\($0)/model.safetensors") }
        var worst = (0.0, 0.0)
        for (name, t) in want {
            guard let e = got.entry(name) else { continue }
            XCTAssertEqual(e.shape, t.shape, "\(expected) \(name)", file: file, line: line)
            XCTAssertEqual(e.dtype, .f32, file: file, line: line)
            let a = try got.floats(name)
            let b = t.floats()
            let (base, fa, fb) = (try models[0].floats(name), try models[1].floats(name), try models[2].floats(name))
            for i in 0..<min(a.count, b.count) {
                // mergekit's float32 output is within 9e-8 of the float64 formulas (fixture README); Loom adds in
                // double and rounds the output once (u·|out|) and each delta θ − base once in float32 (u·|δ|, times
                // a weight·rescale ≤ 2).
                let deltas = abs(Double(fa[i]) - Double(base[i])) + abs(Double(fb[i]) - Double(base[i]))
                let bound = 9e-8 + 0x1p-24 * (Double(abs(b[i])) + 2 * deltas)
                let d = Double(abs(a[i] - b[i]))
                if d > bound { XCTFail("\(expected) \(name)[\(i)]: \(a[i]) against \(b[i]), bound \(bound)", file: file, line: line) }
                if d / bound > worst.1 { worst = (d, d / bound) }
            }
        }
        print("merge fixture \(expected): largest difference/bound \(worst.1) (difference \(worst.0))")
        // The output is a Hugging Face directory: config.json from the base (or first) model.
        XCTAssertEqual(
            try FS.readText(dir + "/config.json"),
            try FS.readText(fixture + "/\(config.baseModel ?? config.models[0].name)/config.json"), file: file, line: line)
    }

    func fixtureConfig(_ name: String) throws -> String { try FS.readText(fixture + "/configs/\(name).yml") }

    func testLinear() throws { try check("linear", yaml: try fixtureConfig("linear")) }

    func testSlerp() throws {
        try check("slerp", yaml: try fixtureConfig("slerp"))
        // The README: the 5 RMSNorm weights take the lerp branch, the 16 matrices the slerp branch.
        let config = try MergeConfig.parse(yaml: try fixtureConfig("slerp"), file: "slerp.yml")
        var options = MergeOptions()
        options.searchDirectories = [fixture]
        XCTAssertEqual(try Merger.merge(config, output: out + "/slerp2", options: options).sphericalTensors, 16)
    }

    func testTaskArithmetic() throws { try check("task_arithmetic", yaml: try fixtureConfig("task_arithmetic")) }

    func testTies() throws { try check("ties", yaml: try fixtureConfig("ties")) }

    func testDareLinearWithTheFixtureMasks() throws {
        try check("dare_linear", yaml: try fixtureConfig("dare_linear"), masks: try SafeTensorsDropMask(path: fixture + "/dare_masks.safetensors"))
    }

    /// The DARE paper's rescale (÷ density) instead of mergekit's L1-norm matching: `rescale: paper`.
    func testDareLinearPaperRescale() throws {
        let yaml = try fixtureConfig("dare_linear") + "\nparameters:\n  rescale: paper\n"
        try check("dare_linear_paper", yaml: yaml, masks: try SafeTensorsDropMask(path: fixture + "/dare_masks.safetensors"))
    }

    /// dare_ties has no expected file; with density 1 it is TIES without trimming, with the fixture masks its
    /// drop step is the same one dare_linear uses (so the two agree when the signs never conflict: checked on
    /// a tensor-by-tensor formula instead).
    func testDareTiesMatchesItsFormulaOnTheFixtureModels() throws {
        let yaml = """
            merge_method: dare_ties
            base_model: base
            models:
              - model: ft_a
                parameters: {weight: 0.7, density: 0.5}
              - model: ft_b
                parameters: {weight: 0.3, density: 0.5}
            dtype: float32
            """
        let config = try MergeConfig.parse(yaml: yaml, file: "dare_ties.yml")
        var options = MergeOptions()
        options.searchDirectories = [fixture]
        let masks = try SafeTensorsDropMask(path: fixture + "/dare_masks.safetensors")
        options.masks = masks
        try Merger.merge(config, output: out + "/dare_ties", options: options)
        let got = try SafeTensorsFile(path: out + "/dare_ties/model.safetensors")
        let base = try SafeTensorsFile(path: fixture + "/base/model.safetensors")
        let a = try SafeTensorsFile(path: fixture + "/ft_a/model.safetensors")
        let b = try SafeTensorsFile(path: fixture + "/ft_b/model.safetensors")
        var worst = 0.0
        for name in base.names {
            let x = try base.floats(name).map(Double.init)
            // mergekit: drop with the mask, rescale by L1-norm matching, weight, elect the sign of the sum, keep the
            // agreeing entries; normalize defaults to false for dare_ties.
            var deltas: [[Double]] = []
            for (model, file, w) in [("ft_a", a, 0.7), ("ft_b", b, 0.3)] {
                let d = zip(try file.floats(name), x).map { Double($0) - $1 }
                let m = try masks.mask(model: model, modelIndex: 0, tensor: name, count: d.count, density: 0.5)
                let kept = zip(d, m).map { $1 == 0 ? 0 : $0 }
                let before = d.reduce(0) { $0 + abs($1) }, after = kept.reduce(0) { $0 + abs($1) }
                let s = before < 1e-7 || after < 1e-7 ? 1 : before / after
                deltas.append(kept.map { $0 * s * w })
            }
            let merged = try got.floats(name)
            for i in 0..<x.count {
                let sum = deltas[0][i] + deltas[1][i]
                let mixed = deltas.map { $0[i] }.filter { sum >= 0 ? $0 > 0 : $0 < 0 }.reduce(0, +)
                // Loom rounds the output once (u·|out|) and each delta once in float32 before weighting and
                // rescaling (u·|w·s·δ|, and the L1 rescale it feeds, ≤ u more): u·|out| + 2u·Σ|w·s·δ|.
                let bound = 0x1p-24 * (abs(x[i] + mixed) + 2 * (abs(deltas[0][i]) + abs(deltas[1][i])))
                XCTAssertEqual(Double(merged[i]), x[i] + mixed, accuracy: bound, "\(name)[\(i)]")
                if bound > 0 { worst = max(worst, abs(Double(merged[i]) - (x[i] + mixed)) / bound) }
            }
        }
        print("dare_ties against its formula: largest difference/bound \(worst)")
    }
}
