// Writes GGUF version 3 as gguf-py's GGUFWriter does: the header, the metadata in the order given, the tensor infos
// (offsets cumulative, each tensor padded to the alignment), zero padding to the alignment, then each tensor's
// bytes followed by zero padding to the alignment. The header goes out first, so tensors are appended one at a time
// in the order of the specs; the file is written under `PATH.tmp` and renamed by `finish()`.

import CTensorKernels
import LoomCore

public final class GGUFWriter {
    /// A tensor's entry: ggml type and dimensions fastest first (`ne`, the PyTorch shape reversed).
    public struct Spec: Sendable, Equatable {
        public var name: String
        public var type: GGMLType
        public var ne: [Int]
        public init(name: String, type: GGMLType, ne: [Int]) {
            self.name = name
            self.type = type
            self.ne = ne
        }
        public var byteCount: Int { ne.reduce(1, *) / type.blockSize * type.typeSize }
    }

    public let path: String
    public let specs: [Spec]
    public let alignment: Int
    private var next = 0
    private var file: BufferedFile?

    /// The header bytes (everything before the data section, padding included).
    public static func header(metadata: [(key: String, value: GGUFValue)], tensors: [Spec], alignment: Int = 32) -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        put(UInt32(3), &out)
        put(UInt64(tensors.count), &out)
        put(UInt64(metadata.count), &out)
        for (k, v) in metadata {
            putString(k, &out)
            put(v.type.rawValue, &out)
            putValue(v, &out)
        }
        var offset = 0
        for t in tensors {
            putString(t.name, &out)
            put(UInt32(t.ne.count), &out)
            for n in t.ne { put(UInt64(n), &out) }
            put(t.type.rawValue, &out)
            put(UInt64(offset), &out)
            offset += padded(t.byteCount, alignment)
        }
        out += [UInt8](repeating: 0, count: padded(out.count, alignment) - out.count)
        return out
    }

    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private static func putString(_ s: String, _ out: inout [UInt8]) {
        put(UInt64(s.utf8.count), &out)
        out += s.utf8
    }

    private static func putValue(_ v: GGUFValue, _ out: inout [UInt8]) {
        switch v {
        case .uint8(let x): put(x, &out)
        case .int8(let x): put(x, &out)
        case .uint16(let x): put(x, &out)
        case .int16(let x): put(x, &out)
        case .uint32(let x): put(x, &out)
        case .int32(let x): put(x, &out)
        case .float32(let x): put(x.bitPattern, &out)
        case .bool(let x): put(UInt8(x ? 1 : 0), &out)
        case .string(let s): putString(s, &out)
        case .uint64(let x): put(x, &out)
        case .int64(let x): put(x, &out)
        case .float64(let x): put(x.bitPattern, &out)
        case .array(let a): putArray(a, &out)
        }
    }

    private static func putArray(_ a: GGUFArray, _ out: inout [UInt8]) {
        put(a.elementType.rawValue, &out)
        put(UInt64(a.count), &out)
        for i in 0..<a.count {
            if case .array(let inner) = a { putArray(inner[i], &out) } else { putValue(a[i], &out) }
        }
    }

    /// Starts the file: checks the specs and writes the header.
    public init(path: String, metadata: [(key: String, value: GGUFValue)], tensors: [Spec], alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0 else { throw LoomError("\(path): alignment \(alignment) is not a power of two") }
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else { throw LoomError("\(path): tensor '\(t.name)' given twice") }
            guard t.ne.count <= 4, t.ne.allSatisfy({ $0 >= 0 }), (t.ne.first ?? 1) % t.type.blockSize == 0 else {
                throw LoomError("\(path): tensor '\(t.name)' cannot be \(t.type.name) with dimensions \(t.ne)")
            }
        }
        var meta = metadata
        if alignment != 32, !meta.contains(where: { $0.key == "general.alignment" }) {
            meta.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        }
        self.path = path
        specs = tensors
        self.alignment = alignment
        let f = try BufferedFile(creating: path + ".tmp", capacity: 4 << 20)
        try f.write(Self.header(metadata: meta, tensors: tensors, alignment: alignment))
        file = f
    }

    /// The name the next `append` must carry, or nil when every tensor has been written.
    public var nextName: String? { next < specs.count ? specs[next].name : nil }

    /// Appends the next tensor's bytes (in the spec's type) and the padding after them.
    public func append(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let f = file else { throw LoomError("\(path): writer already finished") }
        guard next < specs.count, specs[next].name == name else {
            throw LoomError("\(path): tensors must be appended in order: expected '\(nextName ?? "none")', got '\(name)'")
        }
        guard bytes.count == specs[next].byteCount else {
            throw LoomError("\(path): tensor '\(name)' should have \(specs[next].byteCount) bytes, got \(bytes.count)")
        }
        try f.write(bytes.bindMemory(to: UInt8.self))
        try f.write([UInt8](repeating: 0, count: Self.padded(bytes.count, alignment) - bytes.count))
        next += 1
    }

    /// Checks every tensor was written, closes the file and gives it its name.
    public func finish() throws {
        guard let f = file else { return }
        guard next == specs.count else { throw LoomError("\(path): \(specs.count - next) tensors not written (next: '\(nextName ?? "")')") }
        try f.close()
        file = nil
        try FS.rename(path + ".tmp", path)
    }

    /// Abandons the file (removes the temporary).
    public func abandon() {
        if let f = file { try? f.close(sync: false) }
        file = nil
        FS.remove(path + ".tmp")
    }
}

/// Float32 to the ggml types Loom writes.
public enum GGUFQuantize {
    /// The types `quantize` produces.
    public static let writable: [GGMLType] = [.f32, .f16, .bf16, .q8_0]

    /// Encodes float32 values (whole rows; for Q8_0 a multiple of 32) as `type`, the way gguf-py's `quantize` and
    /// ggml's reference quantisers do (F16: round to nearest even; BF16: round to nearest even, NaN kept quiet;
    /// Q8_0: d = max|x| / 127 as f16, q = round-half-away(x / d)).
    public static func quantize(_ values: UnsafeBufferPointer<Float>, as type: GGMLType) throws -> [UInt8] {
        let n = values.count
        switch type {
        case .f32:
            return Array(UnsafeRawBufferPointer(values))
        case .f16:
            var out = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<n {
                let h = gd_float_to_half(values[i])
                out[2 * i] = UInt8(h & 0xFF)
                out[2 * i + 1] = UInt8(h >> 8)
            }
            return out
        case .bf16:
            var out = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<n {
                var b = values[i].bitPattern
                if b & 0x7fff_ffff > 0x7f80_0000 {
                    b = (b & 0xffff_0000) | (64 << 16)  // NaN: quiet
                } else {
                    b = UInt32((UInt64(b) + UInt64(0x7fff + ((b >> 16) & 1))) >> 16) << 16
                }
                out[2 * i] = UInt8((b >> 16) & 0xFF)
                out[2 * i + 1] = UInt8(b >> 24)
            }
            return out
        case .q8_0:
            guard n % 32 == 0 else { throw LoomError("Q8_0 needs a multiple of 32 values, got \(n)") }
            var out = [UInt8](repeating: 0, count: n / 32 * 34)
            if n > 0 { out.withUnsafeMutableBufferPointer { gd_quantize_q8_0(values.baseAddress!, $0.baseAddress!, n / 32) } }
            return out
        default:
            throw LoomError("writing \(type.name) is not supported (f32, f16, bf16 and q8_0 are)")
        }
    }
}
