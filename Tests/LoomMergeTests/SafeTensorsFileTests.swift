// The lazy safetensors reader and the streaming writer (Sources/LoomTensor/SafeTensorsFile.swift).

import Foundation
import LoomCore
import LoomTensor
import XCTest

final class SafeTensorsFileTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("st") }
    override func tearDown() { FS.remove(dir) }

    func sample() -> [(name: String, tensor: Tensor)] {
        let bf16: [UInt16] = [0x3F80, 0xC000, 0x0000, 0x3E80]  // 1, -2, 0, 0.25
        return [
            ("z.weight", Tensor(floats: [1, -2.5, 3.25, 0, 1e-8, -7], shape: [2, 3])),
            ("a.ids", Tensor(int64s: [5, -1, 9], shape: [3])),
            ("m.bf16", Tensor(shape: [2, 2], dtype: .bf16, bytes: bf16.withUnsafeBytes { Array($0) })),
            ("mask", Tensor(shape: [4], dtype: .u8, bytes: [1, 0, 0, 1])),
            ("scalar", Tensor(floats: [42], shape: [])),
        ]
    }

    /// Header first, tensors one at a time: the same bytes as SafeTensors.write.
    func testStreamingWriterMatchesWholeFileWriter() throws {
        let ts = sample()
        try SafeTensors.write(ts, metadata: [("format", "pt")], to: dir + "/whole.safetensors")
        let w = try SafeTensorsWriter(
            path: dir + "/stream.safetensors", tensors: ts.map { .init(name: $0.name, dtype: $0.tensor.dtype, shape: $0.tensor.shape) },
            metadata: [("format", "pt")])
        XCTAssertEqual(w.order.map(\.name), ts.map(\.name).sorted())
        for spec in w.order {
            let t = ts.first { $0.name == spec.name }!.tensor
            if spec.name == "z.weight" {
                // In parts.
                try w.beginPart(spec.name)
                try t.bytes.withUnsafeBytes { b in
                    try w.writePart(UnsafeRawBufferPointer(rebasing: b[0..<10]))
                    try w.writePart(UnsafeRawBufferPointer(rebasing: b[10...]))
                }
            } else {
                try w.append(spec.name, tensor: t)
            }
        }
        XCTAssertFalse(FS.exists(dir + "/stream.safetensors"))  // only the .tmp until finished
        try w.finish()
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/whole.safetensors"))
        XCTAssertEqual(a, try Data(contentsOf: URL(fileURLWithPath: dir + "/stream.safetensors")))
        XCTAssertEqual(SafeTensorsWriter.fileSize(w.order, metadata: [("format", "pt")]), a.count)
    }

    func testLazyReaderReadsEachTensor() throws {
        let ts = sample()
        try SafeTensors.write(ts, metadata: [("format", "pt")], to: dir + "/x.safetensors")
        let f = try SafeTensorsFile(path: dir + "/x.safetensors")
        XCTAssertEqual(f.names, ts.map(\.name).sorted())
        XCTAssertEqual(f.metadata.first?.1, "pt")
        for (name, t) in ts { XCTAssertEqual(try f.tensor(name), t, name) }
        XCTAssertEqual(try f.floats("m.bf16"), [1, -2, 0, 0.25])
        XCTAssertEqual(try f.floats("z.weight"), [1, -2.5, 3.25, 0, 1e-8, -7])
        XCTAssertEqual(f.entry("scalar")?.shape, [])
        XCTAssertThrowsError(try f.floats("a.ids")) { XCTAssertTrue("\($0)".contains("not a float tensor"), "\($0)") }
        XCTAssertThrowsError(try f.tensor("nope")) { XCTAssertTrue("\($0)".contains("no tensor named 'nope'"), "\($0)") }
    }

    func testWriterRefusesWrongOrderAndSizes() throws {
        let w = try SafeTensorsWriter(
            path: dir + "/o.safetensors",
            tensors: [.init(name: "b", dtype: .f32, shape: [2]), .init(name: "a", dtype: .f32, shape: [1])])
        XCTAssertThrowsError(try w.append("b", tensor: Tensor(floats: [1, 2], shape: [2]))) {
            XCTAssertTrue("\($0)".contains("expected 'a'"), "\($0)")
        }
        XCTAssertThrowsError(try w.append("a", tensor: Tensor(floats: [1, 2], shape: [2])))
        try w.append("a", tensor: Tensor(floats: [1], shape: [1]))
        XCTAssertThrowsError(try w.finish()) { XCTAssertTrue("\($0)".contains("1 tensors not written"), "\($0)") }
        try w.append("b", tensor: Tensor(floats: [1, 2], shape: [2]))
        try w.finish()
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/o.safetensors").floats("b"), [1, 2])
        XCTAssertThrowsError(try SafeTensorsWriter(path: dir + "/d.safetensors", tensors: [.init(name: "a", dtype: .f32, shape: [1]), .init(name: "a", dtype: .f32, shape: [1])]))
    }

    /// Truncated and garbled files: an error naming the file, never a crash.
    func testBadFiles() throws {
        try SafeTensors.write(sample(), to: dir + "/good.safetensors")
        let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/good.safetensors"))
        try good.prefix(good.count - 3).write(to: URL(fileURLWithPath: dir + "/cut.safetensors"))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/tiny.safetensors"))
        var junk = Data(count: 16)
        junk[0] = 8
        try junk.write(to: URL(fileURLWithPath: dir + "/junk.safetensors"))
        for name in ["cut", "tiny", "junk"] {
            XCTAssertThrowsError(try SafeTensorsFile(path: dir + "/\(name).safetensors"), name) {
                XCTAssertTrue("\($0)".contains("\(name).safetensors"), "\($0)")
            }
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: dir + "/absent.safetensors"))
    }
}
