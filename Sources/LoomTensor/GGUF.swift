// GGUF, llama.cpp's model file (ggml/docs/gguf.md), read beside safetensors: a header (magic "GGUF", version,
// tensor count, metadata count), the metadata as typed key/value pairs, one info per tensor (name, dimensions fastest
// first, ggml type, offset into the data section), then the data section at the header's end rounded up to
// `general.alignment` (default 32). Versions 2 and 3 (64-bit counts, little-endian) are read; the file is
// memory-mapped and a tensor's bytes are read in place when asked for.
//
// A GGUF file is untrusted input. Every count, length, offset and size is checked against the bytes left in the file
// before it is used, with arithmetic that cannot overflow, so a bad file gives a LoomError naming the file, the field
// and the byte offset where the problem is, never a crash or an allocation larger than a small multiple of the file.

import CTensorKernels
import Dispatch
import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// ggml's tensor types (ggml.h `enum ggml_type`) with their block sizes (values per block) and type sizes (bytes per
/// block). The reader knows every type's size, so it can check and describe any file; `canDequantize` says which it
/// turns into float32.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// The name llama.cpp and gguf-py print ("Q4_K", "F16").
    public var name: String { "\(self)".uppercased() }

    /// Looks a type up by its name, case-insensitively ("q8_0", "F16").
    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }

    /// (values per block, bytes per block): gguf-py's GGML_QUANT_SIZES.
    public var blockSize: Int { Self.sizes(self).0 }
    public var typeSize: Int { Self.sizes(self).1 }

    private static func sizes(_ t: GGMLType) -> (Int, Int) {
        let qk = 256
        switch t {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 40)
        case .q2_K: return (qk, 4 + qk / 16 + qk / 4)
        case .q3_K: return (qk, 2 + qk / 4 + qk / 8 + 12)
        case .q4_K: return (qk, 4 + qk / 2 + 12)
        case .q5_K: return (qk, 4 + qk / 2 + qk / 8 + 12)
        case .q6_K: return (qk, 2 + qk / 2 + qk / 4 + qk / 16)
        case .q8_K: return (qk, 4 + qk + qk / 8)
        case .iq2_xxs: return (qk, 2 + qk / 4)
        case .iq2_xs: return (qk, 2 + qk / 4 + qk / 32)
        case .iq3_xxs: return (qk, 2 + qk / 4 + qk / 8)
        case .iq1_s: return (qk, 2 + qk / 8 + qk / 16)
        case .iq4_nl: return (32, 18)
        case .iq3_s: return (qk, 2 + qk / 4 + qk / 8 + qk / 32 + 4)
        case .iq2_s: return (qk, 2 + qk / 4 + qk / 16)
        case .iq4_xs: return (qk, 4 + qk / 2 + qk / 64)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64, .f64: return (1, 8)
        case .iq1_m: return (qk, qk / 8 + qk / 16 + qk / 32)
        case .tq1_0: return (qk, 2 + 4 * 13)
        case .tq2_0: return (qk, 2 + 64)
        case .mxfp4: return (32, 17)
        }
    }

    /// The types the reader dequantizes to float32: everything llama.cpp's Q4_K_M, Q5_K_M, Q6_K and Q8_0 files hold.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }
}

/// The type of a metadata value (gguf.md `gguf_metadata_value_type`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8
    case array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The name gguf-py prints ("UINT32", "ARRAY").
    public var name: String { "\(self)".uppercased() }

    /// The fewest bytes one value of this type takes in a file (a string: its 8-byte length; an array: its type and
    /// 8-byte count), which bounds how many a count can honestly claim.
    var minimumBytes: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// A metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float)
    case bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array(GGUFArray)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// Any integer value as Int (nil for other types, or a UInt64 beyond Int.max).
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Any number as Double.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: GGUFArray? { if case .array(let a) = self { return a } else { return nil } }
}

/// A metadata array: its elements stored by type, so a long array costs about what it takes in the file.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16]), uint32([UInt32]), int32([Int32])
    case float32([Float]), bool([Bool]), string([String]), uint64([UInt64]), int64([Int64]), float64([Double])
    case array([GGUFArray])

    public var elementType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    public var count: Int {
        switch self {
        case .uint8(let a): return a.count
        case .int8(let a): return a.count
        case .uint16(let a): return a.count
        case .int16(let a): return a.count
        case .uint32(let a): return a.count
        case .int32(let a): return a.count
        case .float32(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        case .uint64(let a): return a.count
        case .int64(let a): return a.count
        case .float64(let a): return a.count
        case .array(let a): return a.count
        }
    }

    /// Element i as a value.
    public subscript(i: Int) -> GGUFValue {
        switch self {
        case .uint8(let a): return .uint8(a[i])
        case .int8(let a): return .int8(a[i])
        case .uint16(let a): return .uint16(a[i])
        case .int16(let a): return .int16(a[i])
        case .uint32(let a): return .uint32(a[i])
        case .int32(let a): return .int32(a[i])
        case .float32(let a): return .float32(a[i])
        case .bool(let a): return .bool(a[i])
        case .string(let a): return .string(a[i])
        case .uint64(let a): return .uint64(a[i])
        case .int64(let a): return .int64(a[i])
        case .float64(let a): return .float64(a[i])
        case .array(let a): return .array(a[i])
        }
    }

    public var strings: [String]? { if case .string(let a) = self { return a } else { return nil } }

    /// Numeric elements as Float (nil for strings, bools and nested arrays).
    public var floats: [Float]? {
        switch self {
        case .float32(let a): return a
        case .float64(let a): return a.map { Float($0) }
        case .string, .bool, .array: return nil
        default: return (0..<count).compactMap { self[$0].doubleValue.map { Float($0) } }
        }
    }

    /// Integer elements as Int (nil for other element types or a value beyond Int).
    public var ints: [Int]? {
        switch self {
        case .int32(let a): return a.map(Int.init)
        case .uint32(let a): return a.map(Int.init)
        case .string, .bool, .array, .float32, .float64: return nil
        default:
            let v = (0..<count).compactMap { self[$0].intValue }
            return v.count == count ? v : nil
        }
    }

    public var bools: [Bool]? { if case .bool(let a) = self { return a } else { return nil } }
}

/// One tensor's entry in the header.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Dimensions as the file lists them, fastest-varying first: ne [640, 1024] is a PyTorch [1024, 640] weight.
    public let ne: [Int]
    /// Byte offset relative to the data section.
    public let offset: Int
    public let byteCount: Int
    /// Bytes per row (ne0 / block size × type size).
    public let rowBytes: Int
    /// Where the tensor's info starts in the file (for messages).
    public let infoOffset: Int

    /// The PyTorch shape (`ne` reversed).
    public var shape: [Int] { ne.reversed() }
    public var count: Int { ne.reduce(1, *) }
    /// Values per row (ne0), and rows (the product of the other dimensions).
    public var rowLength: Int { ne.first ?? 1 }
    public var rows: Int { rowLength == 0 ? 0 : count / rowLength }
}

/// A GGUF file, parsed and memory-mapped. Tensor bytes are read from the mapping on request; the mapping lives as
/// long as this object.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: Int
    public let alignment: Int
    /// Byte offset of the data section in the file.
    public let dataOffset: Int
    public let fileSize: Int
    /// Key/value pairs in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]
    private let storage: GGUFStorage

    /// Opens and parses a file (memory-mapped).
    public convenience init(path: String) throws {
        try self.init(storage: try GGUFStorage(mapping: path), name: path)
    }

    /// Parses a file already in memory (the fuzzer's entry point); `name` stands for the path in messages.
    public convenience init(bytes: [UInt8], name: String) throws {
        try self.init(storage: GGUFStorage(copying: bytes), name: name)
    }

    private init(storage: GGUFStorage, name: String) throws {
        self.storage = storage
        path = name
        fileSize = storage.bytes.count
        var c = GGUFCursor(bytes: storage.bytes, path: name)
        guard fileSize >= 4 else { throw c.failure("magic", at: 0, "the file has \(fileSize) bytes, fewer than the 4-byte magic") }
        let magic = Array(storage.bytes[0..<4])
        guard magic == Array("GGUF".utf8) else {
            throw c.failure("magic", at: 0, "expected \"GGUF\", found \(magic.map { String(format: "%02x", $0) }.joined(separator: " "))")
        }
        c.position = 4
        let v = try c.u32("version")
        switch v {
        case 2, 3: break
        case 1: throw c.failure("version", at: 4, "GGUF version 1 (32-bit counts) is not supported; convert the model again with a current llama.cpp")
        case 0x0200_0000, 0x0300_0000: throw c.failure("version", at: 4, "a big-endian GGUF file; only little-endian files are supported")
        default: throw c.failure("version", at: 4, "unknown GGUF version \(v) (2 and 3 are supported)")
        }
        version = Int(v)
        let tensorCount = try c.count("tensor_count", minimumBytes: 24)  // name length, n_dims, type, offset at least
        let kvCount = try c.count("metadata_kv_count", minimumBytes: 13)  // key length, type, one byte of value

        var kv: [(key: String, value: GGUFValue)] = []
        var keys: [String: Int] = [:]
        kv.reserveCapacity(kvCount)
        var align = 32
        for i in 0..<kvCount {
            let at = c.position
            let key = try c.string("key of metadata pair \(i)")
            guard keys[key] == nil else { throw c.failure("metadata key '\(key)'", at: at, "the key appears twice") }
            let typeAt = c.position
            let value = try c.value("metadata '\(key)'", depth: 0)
            if key == "general.alignment" {
                guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                    throw c.failure("metadata 'general.alignment'", at: typeAt, "must be a UINT32 power of two, found \(value)")
                }
                align = Int(a)
            }
            keys[key] = kv.count
            kv.append((key, value))
        }
        metadata = kv
        keyIndex = keys
        alignment = align

        var infos: [GGUFTensorInfo] = []
        var names: [String: Int] = [:]
        infos.reserveCapacity(tensorCount)
        var raw: [(name: String, type: GGMLType, ne: [Int], offset: Int, at: Int)] = []
        for i in 0..<tensorCount {
            let at = c.position
            let name = try c.string("name of tensor \(i)")
            guard names[name] == nil else { throw c.failure("tensor '\(name)'", at: at, "the name appears twice") }
            names[name] = i
            let dimsAt = c.position
            let nDims = try c.u32("tensor '\(name)' n_dimensions")
            guard nDims <= 4 else { throw c.failure("tensor '\(name)' n_dimensions", at: dimsAt, "\(nDims) dimensions (ggml has at most 4)") }
            var ne: [Int] = []
            for d in 0..<Int(nDims) {
                let neAt = c.position
                let n = try c.u64("tensor '\(name)' dimension \(d)")
                guard n <= UInt64(Int64.max) else { throw c.failure("tensor '\(name)' dimension \(d)", at: neAt, "\(n) is too large") }
                ne.append(Int(n))
            }
            let typeAt = c.position
            let typeID = try c.u32("tensor '\(name)' type")
            guard let type = GGMLType(rawValue: typeID) else {
                throw c.failure("tensor '\(name)' type", at: typeAt, "unknown ggml type \(typeID)")
            }
            let offsetAt = c.position
            let off = try c.u64("tensor '\(name)' offset")
            guard off <= UInt64(Int64.max) else { throw c.failure("tensor '\(name)' offset", at: offsetAt, "\(off) is too large") }
            raw.append((name, type, ne, Int(off), at))
        }
        let headerEnd = c.position
        let (padded, o) = headerEnd.addingReportingOverflow((align - headerEnd % align) % align)
        guard !o, padded <= fileSize || tensorCount == 0 else {
            throw c.failure("data section", at: headerEnd, "starts at byte \(padded), past the end of the file (\(fileSize) bytes)")
        }
        dataOffset = min(padded, fileSize)
        let dataSize = fileSize - dataOffset
        for r in raw {
            let field = "tensor '\(r.name)'"
            // Element count, then bytes, each multiplication checked.
            var count = 1
            for n in r.ne {
                let (p, over) = count.multipliedReportingOverflow(by: n)
                guard !over else { throw c.failure(field, at: r.at, "dimensions \(r.ne) overflow the element count") }
                count = p
            }
            let ne0 = r.ne.first ?? 1
            guard ne0 % r.type.blockSize == 0 else {
                throw c.failure(field, at: r.at, "row length \(ne0) is not a multiple of \(r.type.name)'s block size \(r.type.blockSize)")
            }
            let (bytes, over) = (count / r.type.blockSize).multipliedReportingOverflow(by: r.type.typeSize)
            let (rowBytes, overRow) = (ne0 / r.type.blockSize).multipliedReportingOverflow(by: r.type.typeSize)
            guard !over, !overRow else { throw c.failure(field, at: r.at, "its size overflows") }
            guard r.offset % align == 0 else {
                throw c.failure(field + " offset", at: r.at, "offset \(r.offset) is not a multiple of the alignment \(align)")
            }
            guard r.offset <= dataSize, bytes <= dataSize - r.offset else {
                throw c.failure(
                    field + " offset", at: r.at,
                    "bytes \(r.offset)..<\(r.offset &+ bytes) of the data section lie outside it (\(dataSize) bytes: truncated file?)")
            }
            infos.append(
                GGUFTensorInfo(name: r.name, type: r.type, ne: r.ne, offset: r.offset, byteCount: bytes, rowBytes: rowBytes, infoOffset: r.at))
        }
        tensors = infos
        tensorIndex = names
    }

    // MARK: metadata

    /// The value of a key, or nil.
    public subscript(key: String) -> GGUFValue? { keyIndex[key].map { metadata[$0].value } }

    /// `general.architecture` ("gemma3", "llama", "qwen2").
    public var architecture: String? { self["general.architecture"]?.stringValue }

    // MARK: tensors

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    func require(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensor(name) else { throw LoomError("\(path): no tensor named '\(name)'") }
        return t
    }

    /// Calls body with a tensor's bytes in the mapping (valid only during the call).
    public func withBytes<R>(_ t: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage.bytes[(dataOffset + t.offset)..<(dataOffset + t.offset + t.byteCount)]))
    }

    /// A tensor dequantized to float32, in PyTorch order (row-major over `shape`).
    public func floats(_ name: String, threads: Int = GGUF.defaultThreads) throws -> [Float] {
        let t = try require(name)
        var out = [Float](repeating: 0, count: t.count)
        try out.withUnsafeMutableBufferPointer { try dequantize(t, rows: 0..<t.rows, into: $0, threads: threads) }
        return out
    }

    /// Dequantizes rows `rows` of a tensor into `out` (exactly rows.count × rowLength floats).
    public func dequantize(_ t: GGUFTensorInfo, rows: Range<Int>, into out: UnsafeMutableBufferPointer<Float>, threads: Int = GGUF.defaultThreads) throws {
        guard rows.lowerBound >= 0, rows.upperBound <= t.rows else {
            throw LoomError("\(path): rows \(rows) of tensor '\(t.name)' (it has \(t.rows))")
        }
        try withBytes(t) { all in
            let part = UnsafeRawBufferPointer(rebasing: all[(rows.lowerBound * t.rowBytes)..<(rows.upperBound * t.rowBytes)])
            do { try GGUF.dequantize(t.type, part, into: out, threads: threads) } catch let e as LoomError {
                throw LoomError("\(path): tensor '\(t.name)': \(e.message)")
            }
        }
    }
}

/// Dequantization of raw blocks, apart from any file.
public enum GGUF {
    /// Threads for dequantization when not told: the cores this process may use.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Turns raw blocks of `type` into float32 (the fast C path, split over `threads` threads in whole blocks).
    /// `raw` must hold whole blocks and `out` exactly their values.
    public static func dequantize(_ type: GGMLType, _ raw: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>, threads: Int = 1) throws {
        guard type.canDequantize else { throw LoomError("dequantizing \(type.name) is not supported") }
        let blocks = raw.count / type.typeSize
        guard raw.count % type.typeSize == 0, blocks * type.blockSize == out.count else {
            throw LoomError("\(raw.count) bytes of \(type.name) are not \(out.count) values")
        }
        guard blocks > 0, let src = raw.baseAddress?.assumingMemoryBound(to: UInt8.self), let dst = out.baseAddress else { return }
        // At least 64K values a part: below that the threads cost more than they save.
        let parts = max(1, min(threads, out.count / 65536))
        if parts == 1 {
            _ = gd_dequantize(Int32(type.rawValue), src, dst, blocks)
            return
        }
        let s = UncheckedPointers(src: src, dst: dst)
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = blocks * p / parts, hi = blocks * (p + 1) / parts
            _ = gd_dequantize(Int32(type.rawValue), s.src + lo * type.typeSize, s.dst + lo * type.blockSize, hi - lo)
        }
    }

    private struct UncheckedPointers: @unchecked Sendable {
        let src: UnsafePointer<UInt8>
        let dst: UnsafeMutablePointer<Float>
    }
}

/// The file's bytes: a read-only private mapping, or a copy in memory.
final class GGUFStorage: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    init(mapping path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LoomError("cannot open \(path): \(errnoText())") }
        defer { _ = close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoomError("cannot stat \(path): \(errnoText())") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw LoomError("cannot map \(path): \(errnoText())")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        mapped = true
    }

    init(copying array: [UInt8]) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(array.count, 1), alignment: 64)
        array.withUnsafeBytes { if let b = $0.baseAddress { p.baseAddress!.copyMemory(from: b, byteCount: array.count) } }
        bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[0..<array.count])
        mapped = false
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) } else { base.deallocate() }
    }
}

/// Reads the header's fields in order, each checked against the bytes left.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var position = 0
    /// Arrays inside arrays deeper than this are refused (the parser recurses once per level).
    static let maxDepth = 8

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - position }

    func failure(_ field: String, at offset: Int, _ why: String) -> LoomError {
        LoomError("\(path): not a valid GGUF file: \(field) at byte \(offset): \(why)")
    }

    private mutating func load<T: FixedWidthInteger>(_ field: String, _: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard remaining >= n else {
            throw failure(field, at: position, "the file ends after \(remaining) of its \(n) bytes (truncated?)")
        }
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        position += n
        return v
    }

    mutating func u8(_ field: String) throws -> UInt8 { try load(field, UInt8.self) }
    mutating func u32(_ field: String) throws -> UInt32 { try load(field, UInt32.self) }
    mutating func u64(_ field: String) throws -> UInt64 { try load(field, UInt64.self) }

    /// A 64-bit count of items each taking at least `minimumBytes`: refused when the bytes left cannot hold them.
    mutating func count(_ field: String, minimumBytes: Int) throws -> Int {
        let at = position
        let n = try u64(field)
        guard n <= UInt64(remaining / minimumBytes) else {
            throw failure(field, at: at, "\(n) items cannot fit in the \(remaining) bytes left (each takes at least \(minimumBytes))")
        }
        return Int(n)
    }

    mutating func string(_ field: String) throws -> String {
        let at = position
        let n = try u64(field + " length")
        guard n <= UInt64(remaining) else {
            throw failure(field, at: at, "string length \(n) runs past the end of the file (\(remaining) bytes left)")
        }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(n))]), as: UTF8.self)
        position += Int(n)
        return s
    }

    mutating func valueType(_ field: String) throws -> GGUFValueType {
        let at = position
        let t = try u32(field + " type")
        guard let type = GGUFValueType(rawValue: t) else { throw failure(field, at: at, "unknown value type \(t)") }
        return type
    }

    /// A typed value (its type first).
    mutating func value(_ field: String, depth: Int) throws -> GGUFValue {
        let type = try valueType(field)
        return try value(of: type, field, depth: depth)
    }

    mutating func value(of type: GGUFValueType, _ field: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(field, UInt8.self))
        case .int8: return .int8(try load(field, Int8.self))
        case .uint16: return .uint16(try load(field, UInt16.self))
        case .int16: return .int16(try load(field, Int16.self))
        case .uint32: return .uint32(try load(field, UInt32.self))
        case .int32: return .int32(try load(field, Int32.self))
        case .float32: return .float32(Float(bitPattern: try load(field, UInt32.self)))
        case .bool:
            let at = position
            let b = try load(field, UInt8.self)
            guard b <= 1 else { throw failure(field, at: at, "a BOOL must be 0 or 1, found \(b)") }
            return .bool(b == 1)
        case .string: return .string(try string(field))
        case .uint64: return .uint64(try load(field, UInt64.self))
        case .int64: return .int64(try load(field, Int64.self))
        case .float64: return .float64(Double(bitPattern: try load(field, UInt64.self)))
        case .array: return .array(try array(field, depth: depth))
        }
    }

    mutating func array(_ field: String, depth: Int) throws -> GGUFArray {
        let at = position
        guard depth < Self.maxDepth else { throw failure(field, at: at, "arrays nested more than \(Self.maxDepth) deep") }
        let elem = try valueType(field + " element")
        let n = try count(field + " count", minimumBytes: elem.minimumBytes)
        func many<T>(_ read: (inout GGUFCursor) throws -> T) throws -> [T] {
            var out: [T] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try read(&self)) }
            return out
        }
        switch elem {
        case .uint8: return .uint8(try many { try $0.load(field, UInt8.self) })
        case .int8: return .int8(try many { try $0.load(field, Int8.self) })
        case .uint16: return .uint16(try many { try $0.load(field, UInt16.self) })
        case .int16: return .int16(try many { try $0.load(field, Int16.self) })
        case .uint32: return .uint32(try many { try $0.load(field, UInt32.self) })
        case .int32: return .int32(try many { try $0.load(field, Int32.self) })
        case .float32: return .float32(try many { Float(bitPattern: try $0.load(field, UInt32.self)) })
        case .uint64: return .uint64(try many { try $0.load(field, UInt64.self) })
        case .int64: return .int64(try many { try $0.load(field, Int64.self) })
        case .float64: return .float64(try many { Double(bitPattern: try $0.load(field, UInt64.self)) })
        case .bool: return .bool(try many { c in try c.value(of: .bool, field, depth: depth).boolValue ?? false })
        case .string: return .string(try many { try $0.string(field) })
        case .array: return .array(try many { try $0.array(field, depth: depth + 1) })
        }
    }
}
