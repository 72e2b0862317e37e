// The inputs loom-fuzz-torch (Fuzz/torch) crashed the PyTorch checkpoint reader with, each now a LoomError naming
// the file and what is wrong. The archives are built here byte by byte (a stored zip as torch.save writes it).

import Foundation
import LoomTensor
import XCTest

@testable import LoomPack

final class TorchFuzzFindingsTests: XCTestCase {
    /// A zip of stored entries; `claimed` overrides an entry's uncompressed size in the central directory.
    func zip(_ entries: [(String, [UInt8])], claimed: [String: UInt32] = [:]) -> Data {
        func le(_ v: UInt32, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
        var out: [UInt8] = []
        var central: [UInt8] = []
        for (name, data) in entries {
            let offset = UInt32(out.count), size = UInt32(data.count), n = Array(name.utf8)
            out += le(0x0403_4b50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4) + le(size, 4) + le(size, 4)
            out += le(UInt32(n.count), 2) + le(0, 2) + n + data
            central += le(0x0201_4b50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4) + le(size, 4)
            central += le(claimed[name] ?? size, 4) + le(UInt32(n.count), 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2)
            central += le(0, 4) + le(offset, 4) + n
        }
        let cd = UInt32(out.count)
        out += central
        out += le(0x0605_4b50, 4) + le(0, 2) + le(0, 2) + le(UInt32(entries.count), 2) + le(UInt32(entries.count), 2)
        out += le(UInt32(central.count), 4) + le(cd, 4) + le(0, 2)
        return Data(out)
    }

    func assertRefused(_ data: Data, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TorchCheckpoint.read(data: data, path: "fuzz.bin"), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
        }
    }

    // The first finding: a stored entry whose central directory says 65,002 bytes where 2 are stored (the sizes were
    // checked with the compressed one, read with the uncompressed one: a read past the end of the file).
    func testStoredEntryWhoseSizesDisagree() {
        let data = zip([("archive/data.pkl", [0x80, 0x02]), ("archive/byteorder", Array("little".utf8))], claimed: ["archive/data.pkl": 0xFDEA])
        assertRefused(data, "fuzz.bin: not a readable zip archive: stored entry 'archive/data.pkl' has 2 bytes but says it holds 65002")
    }

    // Read while writing the target: a 64-bit length near Int.max (BINUNICODE8) overflowed `pos + n`.
    func testPickleLengthNearIntMax() {
        let pickle: [UInt8] = [0x80, 0x02, 0x8D, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E]
        assertRefused(zip([("archive/data.pkl", pickle)]), "fuzz.bin:archive/data.pkl: byte 11: the pickle ends early")
    }

    // Read while writing the target: sizes whose product overflows, strides that reach past Int.max, and a stride-0
    // view with far more elements than its storage (an allocation of size x 4 bytes) trapped or ran out of memory.
    func testStridedViewsThatOverflowOrExpand() {
        let storage = [UInt8](repeating: 0, count: 16)
        func strided(_ size: [Int], _ stride: [Int], offset: Int = 0) throws -> Tensor {
            try TorchCheckpoint.strided(storage, dtype: .f32, offset: offset, size: size, stride: stride, name: "w", path: "fuzz.bin")
        }
        XCTAssertThrowsError(try strided([1 << 40, 1 << 40], [1, 1])) { XCTAssertTrue("\($0)".contains("tensor 'w' has an invalid size"), "\($0)") }
        XCTAssertThrowsError(try strided([2, 2], [Int.max, 1])) { XCTAssertTrue("\($0)".contains("reaches past its storage"), "\($0)") }
        XCTAssertThrowsError(try strided([2], [1], offset: Int.max)) { XCTAssertTrue("\($0)".contains("reaches past its storage"), "\($0)") }
        XCTAssertThrowsError(try strided([1 << 50], [0])) { XCTAssertTrue("\($0)".contains("an expanded view"), "\($0)") }
        XCTAssertEqual(try strided([2, 2], [1, 2]).bytes.count, 16)
    }

    // Read while writing the target: a zip64 end record pointing at a central directory above Int.max trapped in
    // Int(UInt64).
    func testZip64OffsetAboveIntMax() {
        var bytes = [UInt8](zip([("a", [1])]))
        let eocd = bytes.count - 22
        // total 0xFFFF -> look for the zip64 locator; put one (and a zip64 record) before the end record.
        var z64: [UInt8] = [0x50, 0x4b, 0x06, 0x06] + [UInt8](repeating: 0, count: 52)
        for i in 0..<8 { z64[48 + i] = 0xFF }  // central directory offset: 2^64 - 1
        for i in 0..<8 { z64[32 + i] = i == 0 ? 1 : 0 }
        let z = eocd
        var locator: [UInt8] = [0x50, 0x4b, 0x06, 0x07, 0, 0, 0, 0]
        locator += (0..<8).map { UInt8(truncatingIfNeeded: z >> (8 * $0)) } + [1, 0, 0, 0]
        var end = Array(bytes[eocd...])
        end[10] = 0xFF
        end[11] = 0xFF
        bytes = Array(bytes[..<eocd]) + z64 + locator + end
        assertRefused(Data(bytes), "not a readable zip archive: central directory entry 0 at byte -1 is broken")
    }
}
