// Tensors and the safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// (`__metadata__` first, then each tensor's dtype, shape and byte range, names sorted), padded with spaces to a
// multiple of 8, then the raw little-endian data. Files Loom writes open in PyTorch/transformers, and the same
// tensors written back give the same bytes as `safetensors` itself.

import Foundation
import LoomCore

public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i64 = "I64", i32 = "I32", u8 = "U8", bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .u8, .bool: return 1
        }
    }
}

public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var dtype: DType
    /// Raw little-endian element bytes.
    public var bytes: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    public init(shape: [Int], dtype: DType, bytes: [UInt8]) {
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    public init(floats: [Float], shape: [Int]) {
        precondition(floats.count == shape.reduce(1, *), "shape does not match the element count")
        self.init(shape: shape, dtype: .f32, bytes: floats.withUnsafeBytes { Array($0) })
    }

    public init(int64s: [Int64], shape: [Int]) {
        precondition(int64s.count == shape.reduce(1, *), "shape does not match the element count")
        self.init(shape: shape, dtype: .i64, bytes: int64s.withUnsafeBytes { Array($0) })
    }

    /// The elements as Float (F32 as is; F16, BF16, F64 and integer types converted).
    public func floats() -> [Float] {
        bytes.withUnsafeBytes { raw -> [Float] in
            (0..<count).map { i in
                switch dtype {
                case .f32: return raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                case .f64: return Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                case .bf16:
                    let b = UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    return Float(bitPattern: b << 16)
                case .f16: return Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case .i64: return Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                case .i32: return Float(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                case .u8, .bool: return Float(raw[i])
                }
            }
        }
    }

    /// The elements of an I64 or I32 tensor.
    public func int64s() -> [Int64] {
        bytes.withUnsafeBytes { raw in
            (0..<count).map { i in
                dtype == .i32
                    ? Int64(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                    : raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)
            }
        }
    }
}

public enum SafeTensors {
    /// Reads every tensor of a file, in the file's order, and its `__metadata__`.
    public static func read(_ path: String) throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [(String, String)]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw LoomError("cannot read \(path): \(error.localizedDescription)")
        }
        return try read(bytes: data, source: path)
    }

    /// Every tensor of a safetensors file's bytes, and its metadata; `source` names the file in errors.
    public static func read(bytes data: Data, source: String) throws
        -> (tensors: [(name: String, tensor: Tensor)], metadata: [(String, String)])
    {
        let n = try headerLength(data.prefix(8), fileSize: data.count, source: source)
        let body = 8 + n
        let (entries, metadata) = try parseHeader(data[8..<body], dataSize: data.count - body, source: source)
        let tensors = entries.map {
            (name: $0.name, tensor: Tensor(shape: $0.shape, dtype: $0.dtype, bytes: Array(data[(body + $0.start)..<(body + $0.end)])))
        }
        return (tensors, metadata)
    }

    /// The header's length from a file's first 8 bytes, checked against the file's size.
    public static func headerLength(_ first: some Collection<UInt8>, fileSize: Int, source: String) throws -> Int {
        guard first.count >= 8, fileSize >= 8 else { throw bad(source, "shorter than its 8-byte header length") }
        let n = first.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard n >= 2, n <= 100_000_000, 8 + Int(n) <= fileSize else { throw bad(source, "header length \(n) does not fit the file") }
        return Int(n)
    }

    /// The tensors (in the header's order) and `__metadata__` of a header's JSON bytes; `dataSize` is the number of
    /// bytes after the header, which every tensor must lie inside.
    public static func parseHeader(_ bytes: some Collection<UInt8>, dataSize: Int, source: String) throws
        -> (entries: [SafeTensorsEntry], metadata: [(String, String)])
    {
        let header: JSONValue
        do {
            header = try JSONValue.parse(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces))
        } catch { throw bad(source, "header is not JSON (\(error))") }
        guard let object = header.objectValue else { throw bad(source, "header is not an object") }
        var metadata: [(String, String)] = []
        var entries: [SafeTensorsEntry] = []
        for (name, v) in object {
            if name == "__metadata__" {
                for (k, m) in v.objectValue ?? JSONObject() { metadata.append((k, m.stringValue ?? m.jsonString)) }
                continue
            }
            guard let d = v["dtype"]?.stringValue, let dtype = DType(rawValue: d) else {
                throw bad(source, "tensor '\(name)' has an unknown dtype \(v["dtype"]?.jsonString ?? "none")")
            }
            guard let shape = v["shape"]?.arrayValue?.compactMap(\.intValue), shape.allSatisfy({ $0 >= 0 }),
                let offs = v["data_offsets"]?.arrayValue?.compactMap(\.intValue), offs.count == 2
            else { throw bad(source, "tensor '\(name)' has no valid shape or data_offsets") }
            let (start, end) = (offs[0], offs[1])
            guard start >= 0, start <= end, end <= dataSize else {
                throw bad(source, "tensor '\(name)' points outside the file (bytes \(start)..<\(end))")
            }
            guard let bytes = (shape + [dtype.size]).checkedProduct, end - start == bytes else {
                throw bad(source, "tensor '\(name)' has \(end - start) bytes for shape \(shape) of \(d)")
            }
            entries.append(SafeTensorsEntry(name: name, dtype: dtype, shape: shape, start: start, end: end))
        }
        return (entries, metadata)
    }

    static func bad(_ source: String, _ why: String) -> LoomError { LoomError("\(source): not a valid safetensors file: \(why)") }

    /// Writes tensors (sorted by name, as safetensors does) with optional metadata.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [(String, String)] = [], to path: String) throws {
        let sorted = tensors.sorted { $0.name < $1.name }
        var header = JSONObject()
        if !metadata.isEmpty { header.append("__metadata__", .object(JSONObject(metadata.map { ($0.0, .string($0.1)) }))) }
        var offset = 0
        for (name, t) in sorted {
            var e = JSONObject()
            e.append("dtype", .string(t.dtype.rawValue))
            e.append("shape", .array(t.shape.map { .int($0) }))
            e.append("data_offsets", [.int(offset), .int(offset + t.bytes.count)])
            header.append(name, .object(e))
            offset += t.bytes.count
        }
        var h = Array(JSONValue.object(header).jsonString.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        let f = try BufferedFile(creating: path + ".tmp", capacity: 4 << 20)
        try f.write(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) })
        try f.write(h)
        for (_, t) in sorted { try t.bytes.withUnsafeBufferPointer { try f.write($0) } }
        try f.close()
        try FS.rename(path + ".tmp", path)
    }
}

extension Array where Element == Int {
    /// The product of the elements (a shape's element count), nil when it does not fit an Int.
    public var checkedProduct: Int? {
        var p = 1
        for x in self {
            let (r, o) = p.multipliedReportingOverflow(by: x)
            if o { return nil }
            p = r
        }
        return p
    }
}
