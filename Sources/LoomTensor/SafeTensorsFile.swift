// safetensors without loading a whole file: `SafeTensorsFile` parses only the header and reads one tensor at a time
// with pread (so memory stays near the size of the tensor asked for, and the page cache, not the process, holds the
// rest); `SafeTensorsWriter` writes the header first, from the names, dtypes and shapes given up front, then takes
// the tensors one at a time in the header's order. A file written this way has the same bytes as
// `SafeTensors.write` given the same tensors and metadata.

import Foundation
import LoomCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A tensor's header entry: where its bytes are in the file.
public struct SafeTensorsEntry: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range relative to the start of the data section.
    public var start: Int
    public var end: Int

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { end - start }
}

/// A safetensors file opened lazily: the header is parsed at once, tensor bytes are read on request.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    /// Entries in the header's order (safetensors writers sort them by name).
    public let entries: [SafeTensorsEntry]
    public let metadata: [(String, String)]
    private let index: [String: Int]
    private let dataOffset: Int
    private var fd: Int32

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw LoomError("cannot open \(path): \(errnoText())") }
        var failure: Error?
        var parsedEntries: [SafeTensorsEntry] = []
        var parsedMeta: [(String, String)] = []
        var body = 0
        do {
            let fileSize = FS.size(path) ?? 0
            var lenBytes = [UInt8](repeating: 0, count: 8)
            if fileSize >= 8 && !Self.preadAll(fd, &lenBytes, offset: 0) { throw SafeTensors.bad(path, "cannot read the header length") }
            let n = try SafeTensors.headerLength(lenBytes, fileSize: fileSize, source: path)
            var headerBytes = [UInt8](repeating: 0, count: n)
            guard Self.preadAll(fd, &headerBytes, offset: 8) else { throw SafeTensors.bad(path, "cannot read the header") }
            body = 8 + n
            (parsedEntries, parsedMeta) = try SafeTensors.parseHeader(headerBytes, dataSize: fileSize - body, source: path)
        } catch {
            failure = error
        }
        if let failure {
            _ = Glibc.close(fd)
            fd = -1
            throw failure
        }
        entries = parsedEntries
        metadata = parsedMeta
        dataOffset = body
        var idx: [String: Int] = [:]
        for (i, e) in parsedEntries.enumerated() { idx[e.name] = i }
        index = idx
    }

    deinit { if fd >= 0 { _ = Glibc.close(fd) } }

    public var names: [String] { entries.map(\.name) }

    public func entry(_ name: String) -> SafeTensorsEntry? { index[name].map { entries[$0] } }

    /// One tensor, read from the file now.
    public func tensor(_ name: String) throws -> Tensor {
        let e = try requireEntry(name)
        var bytes = [UInt8](repeating: 0, count: e.byteCount)
        try bytes.withUnsafeMutableBytes { try readRaw(e, into: $0) }
        return Tensor(shape: e.shape, dtype: e.dtype, bytes: bytes)
    }

    /// Reads a tensor's raw bytes into `buffer` (which must hold exactly its byte count).
    public func readRaw(_ name: String, into buffer: UnsafeMutableRawBufferPointer) throws {
        try readRaw(try requireEntry(name), into: buffer)
    }

    /// A float tensor (F32, F16, BF16, F64) as Float, converted in blocks so memory stays near the result's size.
    public func floats(_ name: String) throws -> [Float] {
        let e = try requireEntry(name)
        var out = [Float](repeating: 0, count: e.count)
        try out.withUnsafeMutableBufferPointer { try readFloats(e, into: $0) }
        return out
    }

    /// Reads a float tensor into `out` (exactly its element count), converting to Float.
    public func readFloats(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        try readFloats(try requireEntry(name), into: out)
    }

    private func requireEntry(_ name: String) throws -> SafeTensorsEntry {
        guard let e = entry(name) else { throw LoomError("\(path): no tensor named '\(name)'") }
        return e
    }

    private func readFloats(_ e: SafeTensorsEntry, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard out.count == e.count else {
            throw LoomError("\(path): tensor '\(e.name)' has \(e.count) elements, buffer has \(out.count)")
        }
        switch e.dtype {
        case .f32:
            try readRaw(e, into: UnsafeMutableRawBufferPointer(out))
        case .f16, .bf16, .f64:
            let size = e.dtype.size
            let blockElements = (1 << 20) / size
            var block = [UInt8](repeating: 0, count: blockElements * size)
            var done = 0
            while done < e.count {
                let n = min(blockElements, e.count - done)
                try block.withUnsafeMutableBytes { raw in
                    try pread(UnsafeMutableRawBufferPointer(rebasing: raw[0..<(n * size)]), at: dataOffset + e.start + done * size, tensor: e.name)
                    for i in 0..<n {
                        switch e.dtype {
                        case .bf16:
                            let b = UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                            out[done + i] = Float(bitPattern: b << 16)
                        case .f16:
                            out[done + i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                        default:
                            out[done + i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                        }
                    }
                }
                done += n
            }
        default:
            throw LoomError("\(path): tensor '\(e.name)' is \(e.dtype.rawValue), not a float tensor")
        }
    }

    private func readRaw(_ e: SafeTensorsEntry, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count == e.byteCount else {
            throw LoomError("\(path): tensor '\(e.name)' has \(e.byteCount) bytes, buffer has \(buffer.count)")
        }
        try pread(buffer, at: dataOffset + e.start, tensor: e.name)
    }

    private func pread(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int, tensor: String) throws {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, base + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw LoomError("cannot read tensor '\(tensor)' from \(path): \(errnoText())")
            }
            if n == 0 { throw LoomError("\(path): file ends inside tensor '\(tensor)' (truncated?)") }
            done += n
        }
    }

    private static func preadAll(_ fd: Int32, _ bytes: inout [UInt8], offset: Int) -> Bool {
        let count = bytes.count
        return bytes.withUnsafeMutableBytes { raw in
            var done = 0
            while done < count {
                let n = Glibc.pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
    }
}

/// Writes a safetensors file one tensor at a time: the header (names sorted, as `SafeTensors.write` does) goes out
/// first, then each tensor's bytes in that order. The file is written under `PATH.tmp` and renamed by `finish()`.
public final class SafeTensorsWriter {
    public struct Spec: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
        public var byteCount: Int { shape.reduce(1, *) * dtype.size }
    }

    public let path: String
    /// The tensors in the order they must be appended.
    public let order: [Spec]
    private var next = 0
    private var file: BufferedFile?

    /// The bytes a file with these tensors and metadata takes (header included).
    public static func fileSize(_ specs: [Spec], metadata: [(String, String)] = []) -> Int {
        8 + header(specs.sorted { $0.name < $1.name }, metadata: metadata).count + specs.reduce(0) { $0 + $1.byteCount }
    }

    /// The header (JSON padded with spaces to a multiple of 8 bytes) of a file with these tensors, sorted by name.
    public static func header(_ sorted: [Spec], metadata: [(String, String)]) -> [UInt8] {
        var header = JSONObject()
        if !metadata.isEmpty { header.append("__metadata__", .object(JSONObject(metadata.map { ($0.0, .string($0.1)) }))) }
        var offset = 0
        for s in sorted {
            var e = JSONObject()
            e.append("dtype", .string(s.dtype.rawValue))
            e.append("shape", .array(s.shape.map { .int($0) }))
            e.append("data_offsets", [.int(offset), .int(offset + s.byteCount)])
            header.append(s.name, .object(e))
            offset += s.byteCount
        }
        var h = Array(JSONValue.object(header).jsonString.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return h
    }

    public init(path: String, tensors: [Spec], metadata: [(String, String)] = []) throws {
        self.path = path
        let sorted = tensors.sorted { $0.name < $1.name }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
            throw LoomError("\(path): tensor '\(a.name)' given twice")
        }
        order = sorted
        let h = Self.header(sorted, metadata: metadata)
        let f = try BufferedFile(creating: path + ".tmp", capacity: 4 << 20)
        try f.write(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) })
        try f.write(h)
        file = f
    }

    /// The name the next `append` must carry, or nil when every tensor has been written.
    public var nextName: String? { next < order.count ? order[next].name : nil }

    /// Appends the next tensor's raw little-endian bytes (all of them, or several calls' worth via `appendPart`).
    public func append(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        try begin(name, count: bytes.count)
        try file!.write(bytes.bindMemory(to: UInt8.self))
        next += 1
    }

    public func append(_ name: String, tensor: Tensor) throws {
        if next < order.count, order[next].name == name,
            tensor.dtype != order[next].dtype || tensor.shape != order[next].shape
        {
            throw LoomError(
                "\(path): tensor '\(name)' is \(tensor.dtype.rawValue) \(tensor.shape), the header says \(order[next].dtype.rawValue) \(order[next].shape)")
        }
        try tensor.bytes.withUnsafeBytes { try append(name, bytes: $0) }
    }

    /// Streams one tensor in parts: `beginPart` then `writePart` until its byte count is reached.
    private var partRemaining = 0

    public func beginPart(_ name: String) throws {
        guard next < order.count else { throw LoomError("\(path): tensor '\(name)' is not in the header") }
        try begin(name, count: order[next].byteCount)
        partRemaining = order[next].byteCount
        if partRemaining == 0 { next += 1 }
    }

    public func writePart(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= partRemaining else {
            throw LoomError("\(path): more bytes than tensor '\(order[next].name)' holds")
        }
        try file!.write(bytes.bindMemory(to: UInt8.self))
        partRemaining -= bytes.count
        if partRemaining == 0 { next += 1 }
    }

    private func begin(_ name: String, count: Int) throws {
        guard file != nil else { throw LoomError("\(path): writer already finished") }
        guard partRemaining == 0 else { throw LoomError("\(path): tensor '\(order[next].name)' is not complete") }
        guard next < order.count else { throw LoomError("\(path): tensor '\(name)' is not in the header") }
        guard order[next].name == name else {
            throw LoomError("\(path): tensors must be appended in header order: expected '\(order[next].name)', got '\(name)'")
        }
        guard order[next].byteCount == count else {
            throw LoomError("\(path): tensor '\(name)' should have \(order[next].byteCount) bytes, got \(count)")
        }
    }

    /// Checks that every tensor was written, closes the file and gives it its name.
    public func finish() throws {
        guard let f = file else { return }
        guard next == order.count, partRemaining == 0 else {
            throw LoomError("\(path): \(order.count - next) tensors not written (next: '\(order[min(next, order.count - 1)].name)')")
        }
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
