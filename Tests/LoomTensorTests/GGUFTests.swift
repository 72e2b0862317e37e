// The GGUF reader against the `gguf` package (gguf-py 0.19): tensors cut from the real Gemma 3 270M Q4_K_M file and
// blocks quantised by gguf-py, with the values gguf-py dequantizes them to ($LOOM_SHARED/fixtures/gguf, described
// in its README), must come out bit-identical; the tiny files' metadata and tensor infos must equal gguf-py's dump
// (metadata.json); the fast C path must equal the plain reference on every type; and broken files (written here)
// must give errors that name the file, the field and the byte offset.

import CTensorKernels
import Foundation
import LoomCore
import XCTest

@testable import LoomTensor

func ggufFixtures() throws -> String {
    let shared: String? = {
        if let s = ProcessInfo.processInfo.environment["LOOM_SHARED"] { return FileManager.default.fileExists(atPath: s) ? s : nil }
        let p = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared").path
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }()
    guard let shared else { throw XCTSkip("LOOM_SHARED not present: GGUF fixture tests skipped") }
    let dir = shared + "/fixtures/gguf"
    guard FileManager.default.fileExists(atPath: dir + "/metadata.json") else { throw XCTSkip("\(dir) not present") }
    return dir
}

/// Bit patterns, so -0 and 0 differ and NaNs compare by payload.
private func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

final class GGUFTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "loom-gguf-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func fast(_ type: GGMLType, _ raw: [UInt8], threads: Int = 1) throws -> [Float] {
        var out = [Float](repeating: 0, count: raw.count / type.typeSize * type.blockSize)
        try raw.withUnsafeBytes { r in try out.withUnsafeMutableBufferPointer { try GGUF.dequantize(type, r, into: $0, threads: threads) } }
        return out
    }

    // MARK: dequantization

    /// Every cut of the real file (F32, Q8_0, Q5_0, Q4_K, Q6_K) and every gguf-py-quantised block (Q8_0, Q5_0, Q4_0):
    /// the fast path, threaded or not, and the reference give exactly the stored `.dequant` values (bit-identical).
    func testFixtureCutsDequantizeBitIdentically() throws {
        let fx = try ggufFixtures()
        let meta = try JSONValue.parse(try FS.readText(fx + "/metadata.json"))
        var checked: [String] = []
        for file in ["tensors.safetensors", "quantize.safetensors"] {
            let t = Dictionary(uniqueKeysWithValues: try SafeTensors.read(fx + "/" + file).tensors.map { ($0.name, $0.tensor) })
            for key in t.keys.filter({ $0.hasSuffix(".raw") }).sorted() {
                let typeName = String(key.dropLast(4))
                let type = try XCTUnwrap(GGMLType(name: typeName), typeName)
                let raw = try XCTUnwrap(t[key]).bytes
                let want = try XCTUnwrap(t[typeName + ".dequant"]).floats()
                XCTAssertEqual(bits(try fast(type, raw)), bits(want), "\(file) \(typeName) fast path")
                // Small cuts stay under the parallel split's grain; repeat the rows so four threads each get a part.
                let big = Array([[UInt8]](repeating: raw, count: 300).joined())
                let wantBig = Array([[Float]](repeating: want, count: 300).joined())
                XCTAssertEqual(bits(try fast(type, big, threads: 4)), bits(wantBig), "\(file) \(typeName) 4 threads")
                XCTAssertEqual(bits(try XCTUnwrap(GGUFReference.dequantize(type, raw))), bits(want), "\(file) \(typeName) reference")
                checked.append("\(file):\(typeName)")
            }
        }
        XCTAssertEqual(checked.count, 8, "\(checked)")
        // The cuts are what metadata.json says they are (type ids and bytes per row).
        for cut in meta["cuts"]?.arrayValue ?? [] {
            let type = try XCTUnwrap(GGMLType(name: cut["type"]?.stringValue ?? ""))
            XCTAssertEqual(Int(type.rawValue), cut["type_id"]?.intValue)
            XCTAssertEqual((cut["ne"]?.arrayValue?.first?.intValue).map { $0 / type.blockSize * type.typeSize }, cut["bytes_per_row"]?.intValue)
        }
    }

    /// Q8_0 written by Loom is byte-identical to gguf-py's quantize (a port of ggml's quantize_row_q8_0_ref).
    func testQ8QuantizeMatchesGGUFPy() throws {
        let fx = try ggufFixtures()
        let t = Dictionary(uniqueKeysWithValues: try SafeTensors.read(fx + "/quantize.safetensors").tensors.map { ($0.name, $0.tensor) })
        let input = try XCTUnwrap(t["input"]).floats()
        let q = try input.withUnsafeBufferPointer { try GGUFQuantize.quantize($0, as: .q8_0) }
        XCTAssertEqual(q, try XCTUnwrap(t["Q8_0.raw"]).bytes)
    }

    /// The fast path equals the reference on random blocks of every type it dequantizes (scales kept finite, so
    /// bit patterns compare).
    func testFastPathEqualsReferenceOnEveryType() throws {
        var rng = SplitMix64(seed: 21)
        for type in GGMLType.allCases where type.canDequantize {
            var raw = (0..<(type.typeSize * 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if type == .f32 || type == .f16 || type == .bf16 {
                // Finite values only: exponent fields cleared of all-ones.
                let step = type.typeSize
                for i in stride(from: step - 1, to: raw.count, by: step) { raw[i] &= 0x3F }
            } else {
                // Every f16 field of a block: exponent kept below all-ones.
                for k in 0..<40 { for at in halfOffsets(type) { raw[k * type.typeSize + at + 1] &= 0x3F } }
            }
            let want = try XCTUnwrap(GGUFReference.dequantize(type, raw))
            XCTAssertEqual(bits(try fast(type, raw)), bits(want), type.name)
            XCTAssertFalse(want.contains { !$0.isFinite }, type.name)
        }
    }

    private func halfOffsets(_ t: GGMLType) -> [Int] {
        switch t {
        case .q8_0, .q4_0, .q5_0: return [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q2_K: return [80, 82]
        case .q3_K: return [108]
        case .q6_K: return [208]
        default: return []
        }
    }

    /// The C half conversions against Swift's Float16: every half to float exactly; floats to half rounded to
    /// nearest even (ties, subnormals, overflow to infinity included).
    func testHalfConversions() {
        for h in 0...UInt16.max {
            let want = Float(Float16(bitPattern: h))
            let got = gd_half_to_float(h)
            if want.isNaN { XCTAssertTrue(got.isNaN) } else { XCTAssertEqual(got.bitPattern, want.bitPattern, "half \(h)") }
        }
        var rng = SplitMix64(seed: 7)
        var samples: [Float] = [0, -0, 65504, 65519.99, 65520, 1e-8, 2.98e-8, 2.9802322e-08, 5.9604645e-08, 6.1e-5, .infinity, -.infinity]
        for _ in 0..<200_000 { samples.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xC7FF_FFFF)) }
        for h in 0...UInt16.max where Float16(bitPattern: h).isFinite {  // exact halves and the midpoints above them
            let f = Float(Float16(bitPattern: h))
            samples.append(f)
            samples.append(Float(bitPattern: f.bitPattern + 0x1000))
        }
        for f in samples where f.isFinite || f.isInfinite {
            XCTAssertEqual(gd_float_to_half(f), Float16(f).bitPattern, "\(f) (\(String(f.bitPattern, radix: 16)))")
        }
    }

    // MARK: files

    /// Each tiny file's header, metadata and tensor infos equal gguf-py's view (metadata.json).
    func testTinyFilesMatchMetadataDump() throws {
        let fx = try ggufFixtures()
        let meta = try JSONValue.parse(try FS.readText(fx + "/metadata.json"))
        for name in ["gemma3-tiny-f32.gguf", "gemma3-tiny-f16.gguf", "gemma3-tiny-q8_0.gguf"] {
            let m = try XCTUnwrap(meta[name])
            let g = try GGUFFile(path: fx + "/" + name)
            XCTAssertEqual(g.fileSize, m["size"]?.intValue)
            XCTAssertEqual(g.alignment, m["alignment"]?.intValue)
            XCTAssertEqual(g.dataOffset, m["data_offset"]?.intValue)
            try checkMetadata(g, m, name)
        }
    }

    func checkMetadata(_ g: GGUFFile, _ m: JSONValue, _ name: String) throws {
        let kv = m["kv"]?.arrayValue ?? []
        let header = kv.filter { $0["header"]?.boolValue == true }
        XCTAssertEqual(header.first { $0["key"]?.stringValue == "GGUF.version" }?["value"]?.intValue, g.version)
        XCTAssertEqual(header.first { $0["key"]?.stringValue == "GGUF.tensor_count" }?["value"]?.intValue, g.tensors.count)
        let pairs = kv.filter { $0["header"]?.boolValue != true }
        XCTAssertEqual(pairs.compactMap { $0["key"]?.stringValue }, g.metadata.map(\.key), name)
        for (p, (key, value)) in zip(pairs, g.metadata) {
            XCTAssertEqual(p["type"]?.stringValue, value.type.name, "\(name) \(key)")
            if let a = value.arrayValue {
                XCTAssertEqual(p["elem_type"]?.stringValue, a.elementType.name, "\(name) \(key)")
                XCTAssertEqual(p["count"]?.intValue, a.count, "\(name) \(key)")
                let head = p["values_head"]?.arrayValue ?? []
                XCTAssertEqual(head.count, min(8, a.count))
                for (i, h) in head.enumerated() { XCTAssertTrue(same(a[i], h), "\(name) \(key)[\(i)]: \(a[i]) vs \(h)") }
            } else {
                XCTAssertTrue(same(value, try XCTUnwrap(p["value"])), "\(name) \(key): \(value) vs \(p["value"]!)")
            }
        }
        let infos = m["tensors"]?.arrayValue ?? []
        XCTAssertEqual(infos.count, g.tensors.count)
        for (j, t) in zip(infos, g.tensors) {
            XCTAssertEqual(j["name"]?.stringValue, t.name)
            XCTAssertEqual(j["type"]?.stringValue, t.type.name, t.name)
            XCTAssertEqual(j["ne"]?.arrayValue?.compactMap(\.intValue), t.ne, t.name)
            XCTAssertEqual(j["offset_in_data"]?.intValue, t.offset, t.name)
            XCTAssertEqual(j["n_bytes"]?.intValue, t.byteCount, t.name)
        }
    }

    /// A metadata value equals its JSON dump (FLOAT32 dumped as the double of the float).
    func same(_ v: GGUFValue, _ j: JSONValue) -> Bool {
        switch v {
        case .string(let s): return j.stringValue == s
        case .bool(let b): return j.boolValue == b
        case .float32(let f): return j.doubleValue == Double(f)
        case .float64(let d): return j.doubleValue == d
        default: return v.intValue != nil && j.intValue == v.intValue
        }
    }

    /// The real Gemma 3 270M file, when present: header, metadata and infos equal the dump, and the cut rows of each
    /// type read through the file equal the stored `.dequant`.
    func testRealFileMatchesDumpAndCuts() throws {
        let fx = try ggufFixtures()
        let path = try realGemmaGGUF()
        let meta = try JSONValue.parse(try FS.readText(fx + "/metadata.json"))
        let g = try GGUFFile(path: path)
        let m = try XCTUnwrap(meta["real"])
        XCTAssertEqual(g.fileSize, m["size"]?.intValue)
        XCTAssertEqual(g.dataOffset, m["data_offset"]?.intValue)
        try checkMetadata(g, m, "real")
        var types: [String: Int] = [:]
        for t in g.tensors { types[t.type.name, default: 0] += 1 }
        XCTAssertEqual(types, ["F32": 109, "Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9])
        let cuts = Dictionary(uniqueKeysWithValues: try SafeTensors.read(fx + "/tensors.safetensors").tensors.map { ($0.name, $0.tensor) })
        for cut in meta["cuts"]?.arrayValue ?? [] {
            let t = try XCTUnwrap(g.tensor(cut["tensor"]?.stringValue ?? ""))
            let rows = try XCTUnwrap(cut["rows"]?.arrayValue?.compactMap(\.intValue))
            let n = t.ne.count == 1 ? t.count : (rows[1] - rows[0]) * t.rowLength
            var out = [Float](repeating: 0, count: n)
            try out.withUnsafeMutableBufferPointer { try g.dequantize(t, rows: rows[0]..<(t.ne.count == 1 ? 1 : rows[1]), into: $0) }
            XCTAssertEqual(bits(out), bits(try XCTUnwrap(cuts[t.type.name + ".dequant"]).floats()), t.name)
        }
    }

    // MARK: writing and reading back

    /// Every value type, arrays of each and nested arrays, written and read back equal; alignment 64 honoured.
    func testEveryValueTypeRoundTrips() throws {
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")), ("u8", .uint8(200)), ("i8", .int8(-100)), ("u16", .uint16(60000)),
            ("i16", .int16(-30000)), ("u32", .uint32(4_000_000_000)), ("i32", .int32(-2_000_000_000)), ("f32", .float32(1.5)),
            ("b", .bool(true)), ("s", .string("héllo ▁ 🦀")), ("u64", .uint64(UInt64.max)), ("i64", .int64(Int64.min)),
            ("f64", .float64(-0.1)), ("au8", .array(.uint8([1, 2]))), ("ai8", .array(.int8([-1]))), ("au16", .array(.uint16([7]))),
            ("ai16", .array(.int16([-7]))), ("au32", .array(.uint32([1, 2, 3]))), ("ai32", .array(.int32([-3, 4]))),
            ("af32", .array(.float32([0.25, -1e30]))), ("ab", .array(.bool([true, false]))), ("as", .array(.string(["a", "", "ü"]))),
            ("au64", .array(.uint64([9]))), ("ai64", .array(.int64([-9]))), ("af64", .array(.float64([3.25]))),
            ("empty", .array(.string([]))),
            ("nested", .array(.array([.int32([1, 2]), .string(["x"]), .array([.bool([false])])]))),
        ]
        let values: [Float] = (0..<64).map { Float($0) - 20.5 }
        let specs = [GGUFWriter.Spec(name: "a", type: .f32, ne: [8, 8]), GGUFWriter.Spec(name: "b", type: .q8_0, ne: [32, 2]),
                     GGUFWriter.Spec(name: "c", type: .f16, ne: [3])]
        let w = try GGUFWriter(path: dir + "/all.gguf", metadata: metadata, tensors: specs, alignment: 64)
        try values.withUnsafeBufferPointer { v in
            try w.append("a", bytes: UnsafeRawBufferPointer(v))
            try GGUFQuantize.quantize(v, as: .q8_0).withUnsafeBytes { try w.append("b", bytes: $0) }
            try GGUFQuantize.quantize(UnsafeBufferPointer(rebasing: v[0..<3]), as: .f16).withUnsafeBytes { try w.append("c", bytes: $0) }
        }
        try w.finish()
        let g = try GGUFFile(path: dir + "/all.gguf")
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.alignment, 64)
        XCTAssertEqual(g.dataOffset % 64, 0)
        XCTAssertEqual(g.metadata.first?.key, "general.alignment")
        XCTAssertEqual(Array(g.metadata.dropFirst().map(\.key)), metadata.map(\.key))
        for (k, v) in metadata { XCTAssertEqual(g[k], v, k) }
        XCTAssertEqual(g.tensors.map(\.offset), [0, 256, 384])  // 256 B; 68 B padded to 128; 6 B
        XCTAssertEqual(try g.floats("a"), values)
        XCTAssertEqual(try g.floats("c"), [-20.5, -19.5, -18.5])
        // Q8_0 of these values: within d/2 of each (d = max|x| / 127 per block).
        let b = try g.floats("b")
        for blk in 0..<2 {
            let d = values[(32 * blk)..<(32 * blk + 32)].map(abs).max()! / 127
            for i in (32 * blk)..<(32 * blk + 32) { XCTAssertLessThanOrEqual(abs(b[i] - values[i]), d / 2 * 1.001) }
        }
    }

    // MARK: bad files

    /// A small valid file to break: two tensors, a string array.
    func validFile() throws -> [UInt8] {
        let specs = [GGUFWriter.Spec(name: "w", type: .f32, ne: [4, 2]), GGUFWriter.Spec(name: "v", type: .q8_0, ne: [32])]
        let w = try GGUFWriter(path: dir + "/ok.gguf", metadata: [("general.architecture", .string("llama")), ("t", .array(.string(["a", "bc"])))], tensors: specs)
        try [Float](repeating: 1, count: 8).withUnsafeBytes { try w.append("w", bytes: $0) }
        try [UInt8](repeating: 0, count: 34).withUnsafeBytes { try w.append("v", bytes: $0) }
        try w.finish()
        return Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/ok.gguf")))
    }

    func expectError(_ bytes: [UInt8], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        let path = dir + "/bad-\(UUID().uuidString.prefix(6)).gguf"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        do {
            _ = try GGUFFile(path: path)
            XCTFail("no error for \(fragments)", file: file, line: line)
        } catch {
            let m = "\(error)"
            XCTAssertTrue(m.hasPrefix(path + ": not a valid GGUF file"), m, file: file, line: line)
            for f in fragments { XCTAssertTrue(m.contains(f), "'\(f)' not in: \(m)", file: file, line: line) }
        }
        // The in-memory entry point (the fuzzer's) agrees.
        XCTAssertThrowsError(try GGUFFile(bytes: bytes, name: "mem"), file: file, line: line)
    }

    func put64(_ v: UInt64, _ b: inout [UInt8], at: Int) { for i in 0..<8 { b[at + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) } }
    func put32(_ v: UInt32, _ b: inout [UInt8], at: Int) { for i in 0..<4 { b[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) } }

    func testBadFilesGiveClearErrors() throws {
        let ok = try validFile()
        XCTAssertNoThrow(try GGUFFile(bytes: ok, name: "ok"))
        XCTAssertNoThrow(try GGUFFile(bytes: Array(ok.dropLast(30)), name: "no final padding"))
        // Layout of the header: magic 0, version 4, tensor_count 8, kv_count 16, first key length 24.
        var b = ok
        b[0] = UInt8(ascii: "X")
        expectError(b, ["magic at byte 0", "expected \"GGUF\""])
        expectError([], ["magic at byte 0", "0 bytes"])
        b = ok
        put32(1, &b, at: 4)
        expectError(b, ["version at byte 4", "version 1"])
        put32(0x0300_0000, &b, at: 4)
        expectError(b, ["big-endian"])
        b = ok
        put64(1 << 40, &b, at: 8)
        expectError(b, ["tensor_count at byte 8", "cannot fit"])
        b = ok
        put64(UInt64.max, &b, at: 16)
        expectError(b, ["metadata_kv_count at byte 16", "cannot fit"])
        b = ok
        put64(UInt64.max - 3, &b, at: 24)
        expectError(b, ["key of metadata pair 0 at byte 24", "string length"])
        // The string array's count (after key "t", type ARRAY, element type STRING).
        let arrayCountAt = try XCTUnwrap(find(Array("t".utf8) + [9, 0, 0, 0, 8, 0, 0, 0], in: ok)) + 9
        b = ok
        put64(1 << 62, &b, at: arrayCountAt)
        expectError(b, ["metadata 't' count at byte \(arrayCountAt)", "cannot fit"])
        // Unknown value type.
        b = ok
        put32(99, &b, at: arrayCountAt - 8)
        expectError(b, ["unknown value type 99"])
        // Tensor "v": a misaligned offset, then one past the end of the data section.
        let vInfo = try XCTUnwrap(find([1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "v")], in: ok))
        let vOffsetAt = vInfo + 9 + 4 + 8 + 4
        b = ok
        put64(33, &b, at: vOffsetAt)
        expectError(b, ["tensor 'v' offset at byte \(vInfo)", "not a multiple of the alignment 32"])
        put64(1 << 20, &b, at: vOffsetAt)
        expectError(b, ["tensor 'v' offset", "outside"])
        // A tensor type ggml does not have, too many dimensions, and a row that is not whole blocks.
        b = ok
        put32(77, &b, at: vOffsetAt - 4)
        expectError(b, ["tensor 'v' type", "unknown ggml type 77"])
        b = ok
        put32(9, &b, at: vInfo + 9)
        expectError(b, ["tensor 'v' n_dimensions", "9 dimensions"])
        b = ok
        put64(31, &b, at: vInfo + 13)
        expectError(b, ["tensor 'v'", "not a multiple of Q8_0's block size 32"])
        // Dimensions whose product overflows.
        let wInfo = try XCTUnwrap(find([1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "w")], in: ok))
        b = ok
        put64(1 << 40, &b, at: wInfo + 13)
        put64(1 << 40, &b, at: wInfo + 21)
        expectError(b, ["tensor 'w'", "overflow"])
        // No elements (a zero dimension) but a row too long to count in bytes (found by the fuzzer).
        b = ok
        put64(0x7f68_4a1d_f769_0000, &b, at: wInfo + 13)
        put64(0, &b, at: wInfo + 21)
        expectError(b, ["tensor 'w'", "overflow"])
        // Truncated: every cut inside the header or the data is an error (the file ends with v's 34 bytes and 30 of
        // padding, so a cut in the padding is not).
        for n in [3, 10, 20, 30, vInfo + 5, vOffsetAt + 2, ok.count - 40, ok.count - 31] {
            expectError(Array(ok[0..<n]), ["at byte"])
        }
        // Arrays nested deeper than 8 levels.
        var deep: GGUFArray = .int32([1])
        for _ in 0..<10 { deep = .array([deep]) }
        let header = GGUFWriter.header(metadata: [("deep", .array(deep))], tensors: [])
        expectError(header, ["metadata 'deep'", "nested more than 8 deep"])
        // A bad alignment value.
        let badAlign = GGUFWriter.header(metadata: [("general.alignment", .uint32(48))], tensors: [])
        expectError(badAlign, ["general.alignment", "power of two"])
    }

    func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        return (0...(hay.count - needle.count)).first { Array(hay[$0..<($0 + needle.count)]) == needle }
    }
}

/// The real Gemma 3 270M Q4_K_M file: `$LOOM_MODELS/gemma-3-270m-q4_k_m.gguf` (LOOM_MODELS defaults to
/// .build/models, where `make test` puts what `$LOOM_SHARED/models/gemma-3-270m.sh` makes).
func realGemmaGGUF() throws -> String {
    let models = ProcessInfo.processInfo.environment["LOOM_MODELS"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/models").path
    let path = models + "/gemma-3-270m-q4_k_m.gguf"
    guard FileManager.default.fileExists(atPath: path) else {
        throw XCTSkip("\(path) not present (make test makes it with $LOOM_SHARED/models/gemma-3-270m.sh; LOOM_MODELS names its folder)")
    }
    return path
}
