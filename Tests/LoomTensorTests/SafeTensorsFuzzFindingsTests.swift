// Headers the safetensors reader trapped on (found while writing loom-fuzz-safetensors, Fuzz/safetensors), each now
// a LoomError naming the file and the tensor, from both readers (SafeTensors.read and SafeTensorsFile share the
// header parser).

import Foundation
import LoomCore
import XCTest

@testable import LoomTensor

final class SafeTensorsFuzzFindingsTests: XCTestCase {
    func file(_ header: String, body: Int = 0) -> Data {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return Data(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: body))
    }

    func assertRefused(_ data: Data, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertThrowsError(try SafeTensors.read(bytes: data, source: "x.safetensors"), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
        }
        let path = NSTemporaryDirectory() + "loom-st-fuzz-" + UUID().uuidString.prefix(8) + ".safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
        }
    }

    // A shape whose element count (or byte count) does not fit an Int overflowed `shape.reduce(1, *) * dtype.size`.
    func testShapeWhoseSizeOverflows() throws {
        try assertRefused(
            file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#),
            "not a valid safetensors file: tensor 'a' has 0 bytes for shape [4294967296, 4294967296] of F32")
        try assertRefused(
            file(#"{"b":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#),
            "tensor 'b' has 0 bytes for shape [2305843009213693952] of F64")
    }

    // An end offset near Int.max overflowed `body + end`.
    func testOffsetNearIntMax() throws {
        try assertRefused(
            file(#"{"c":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}"#, body: 8),
            "tensor 'c' points outside the file")
    }
}
