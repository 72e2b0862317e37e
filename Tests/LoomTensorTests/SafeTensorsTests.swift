import Foundation
import LoomCore
import XCTest

@testable import LoomTensor

final class SafeTensorsTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-tensor-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripAndDtypes() throws {
        let a = Tensor(floats: [1, -2.5, 3, 0.125, 5, 6], shape: [2, 3])
        let ids = Tensor(int64s: [1, 2, 3, -4], shape: [4])
        let half = Tensor(shape: [2], dtype: .bf16, bytes: [0x80, 0x3F, 0x00, 0xC0])  // 1.0, -2.0
        let f16 = Tensor(shape: [1], dtype: .f16, bytes: [0x00, 0x3C])  // 1.0
        let scalar = Tensor(floats: [7], shape: [])
        try SafeTensors.write([("b", ids), ("a", a), ("h", half), ("s", scalar), ("g", f16)], metadata: [("format", "pt")], to: dir + "/t.safetensors")
        let (back, meta) = try SafeTensors.read(dir + "/t.safetensors")
        XCTAssertEqual(back.map(\.name), ["a", "b", "g", "h", "s"])
        XCTAssertEqual(meta.first?.1, "pt")
        XCTAssertEqual(back[0].tensor, a)
        XCTAssertEqual(back[0].tensor.floats(), [1, -2.5, 3, 0.125, 5, 6])
        XCTAssertEqual(back[1].tensor.int64s(), [1, 2, 3, -4])
        XCTAssertEqual(back[2].tensor.floats(), [1])
        XCTAssertEqual(back[3].tensor.floats(), [1, -2])
        XCTAssertEqual(back[4].tensor.shape, [])
        XCTAssertEqual(back[4].tensor.floats(), [7])
        let size = try XCTUnwrap(FS.size(dir + "/t.safetensors"))
        let headerLength = try Data(contentsOf: URL(fileURLWithPath: dir + "/t.safetensors")).prefix(8)
            .withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(size, 8 + headerLength + 24 + 32 + 4 + 2 + 4)
    }

    func testBadFilesAreClearErrors() throws {
        try SafeTensors.write([("a", Tensor(floats: [1, 2], shape: [2]))], to: dir + "/ok.safetensors")
        let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/ok.safetensors"))
        let cases: [(String, Data)] = [
            ("short", Data([1, 2, 3])),
            ("truncated", good.prefix(good.count - 3)),
            ("not-json", Data([8, 0, 0, 0, 0, 0, 0, 0]) + Data("not json".utf8)),
            ("huge", Data([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]) + Data(count: 16)),
        ]
        for (name, bytes) in cases {
            try bytes.write(to: URL(fileURLWithPath: dir + "/\(name).safetensors"))
            XCTAssertThrowsError(try SafeTensors.read(dir + "/\(name).safetensors"), name) {
                XCTAssertTrue("\($0)".contains("\(name).safetensors"), "\($0)")
            }
        }
    }

    /// The reference model written by Hugging Face: 21 tensors, 156,480 parameters; written back byte for byte.
    func testReadsAndRewritesTheReferenceModelByteForByte() throws {
        let shared = ProcessInfo.processInfo.environment["LOOM_SHARED"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared").path
        let path = shared + "/fixtures/llama-tiny/model.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not present") }
        let (tensors, meta) = try SafeTensors.read(path)
        XCTAssertEqual(tensors.count, 21)
        XCTAssertEqual(tensors.reduce(0) { $0 + $1.tensor.count }, 156_480)
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.tensor) })
        XCTAssertEqual(byName["model.layers.0.self_attn.k_proj.weight"]?.shape, [32, 64])
        XCTAssertEqual(byName["model.layers.1.mlp.down_proj.weight"]?.shape, [64, 172])
        let norm = try XCTUnwrap(byName["model.norm.weight"]).floats()
        // Not rounding: the weights are 1 + 0.1·N(0,1) (fixture README), so the mean of 64 has sd 0.0125; 0.05 = 4 sd
        // (the file is fixed, so this is a check that the right tensor was read, not a random test).
        XCTAssertEqual(norm.reduce(0, +) / Float(norm.count), 1, accuracy: 0.05)
        try SafeTensors.write(tensors, metadata: meta, to: dir + "/copy.safetensors")
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dir + "/copy.safetensors")), try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
