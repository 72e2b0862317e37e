// PyTorch's checkpoint format (`torch.save`, the zip format since 1.6; what `pytorch_model.bin` is): a zip archive
// whose entries are stored uncompressed — `NAME/data.pkl` (a pickle of the state dict) and `NAME/data/KEY` (the raw
// little-endian bytes of each storage). The pickle refers to storages by persistent id
// ('storage', torch.FloatStorage, KEY, location, numel) and rebuilds each tensor with
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...). This reader runs just enough of the pickle
// machine for state dicts of plain tensors; anything else (arbitrary classes) is refused with the reason. It never
// imports or calls anything the pickle names: a name is only looked up in the table of tensor rebuilders.

import Foundation
import LoomCore
import LoomTensor

public enum TorchCheckpoint {
    /// The tensors of a state dict saved by torch.save (zip format), in the pickle's order.
    public static func read(_ path: String) throws -> [(name: String, tensor: Tensor)] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw LoomError("cannot read \(path): \(error.localizedDescription)")
        }
        return try read(data: data, path: path)
    }

    /// The tensors of a torch.save archive's bytes; `path` names the file in errors.
    public static func read(data: Data, path: String) throws -> [(name: String, tensor: Tensor)] {
        let zip = try ZipDirectory(data, path: path)
        guard let pkl = zip.entries.keys.sorted().first(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }) else {
            if data.count >= 2 && data[0] == 0x80 {
                throw LoomError("\(path): a PyTorch file in the legacy (pre-1.6, non-zip) format; re-save it with torch.save or convert it to safetensors")
            }
            throw LoomError("\(path): a zip archive without data.pkl: not a PyTorch checkpoint")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        if let bo = zip.entries[prefix + "byteorder"], String(decoding: try zip.bytes(bo), as: UTF8.self) != "little" {
            throw LoomError("\(path): big-endian checkpoint; only little-endian is supported")
        }
        var machine = Unpickler(bytes: try zip.bytes(zip.entries[pkl]!), source: path + ":" + pkl)
        let root = try machine.run()
        guard case .dict(let d) = root else { throw LoomError("\(path): the pickle is not a state dict (got \(root.kind))") }
        var out: [(String, Tensor)] = []
        var storages: [String: [UInt8]] = [:]
        for (k, v) in d.items {
            guard case .string(let name) = k else { continue }
            guard case .tensor(let t) = v else { continue }
            guard let dtype = storageTypes[t.storageType] else {
                throw LoomError("\(path): tensor '\(name)' has an unsupported storage type \(t.storageType)")
            }
            if storages[t.key] == nil {
                guard let e = zip.entries[prefix + "data/" + t.key] else {
                    throw LoomError("\(path): tensor '\(name)' refers to storage \(t.key), which is not in the archive")
                }
                storages[t.key] = try zip.bytes(e)
            }
            let bytes = storages[t.key]!
            out.append((name, try strided(bytes, dtype: dtype, offset: t.offset, size: t.size, stride: t.stride, name: name, path: path)))
        }
        return out
    }

    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    /// The elements of a strided view copied out in row-major order.
    static func strided(_ storage: [UInt8], dtype: DType, offset: Int, size: [Int], stride: [Int], name: String, path: String) throws -> Tensor {
        let es = dtype.size
        guard size.count == stride.count, offset >= 0, size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }),
            let count = size.checkedProduct
        else {
            throw LoomError("\(path): tensor '\(name)' has an invalid size \(size) / stride \(stride)")
        }
        if count == 0 { return Tensor(shape: size, dtype: dtype, bytes: []) }
        // The last element's index, in elements: each term is at most storage.count, or the tensor is refused.
        let elements = storage.count / es
        var last = offset < elements ? offset : elements
        for (n, s) in zip(size, stride) where n > 1 && s > 0 && last < elements {
            guard s <= elements, n - 1 <= elements / s else { last = elements; break }
            last += (n - 1) * s
        }
        guard last < elements else {
            throw LoomError("\(path): tensor '\(name)' reaches past its storage (\(storage.count) bytes)")
        }
        // A view can hold more elements than its storage only by repeating them (a stride of 0: `expand`).
        guard count <= elements else {
            throw LoomError("\(path): tensor '\(name)' has \(count) elements over a storage of \(elements) (an expanded view: save it with .contiguous())")
        }
        // Contiguous: one slice.
        var expect = 1
        var contiguous = true
        for i in stride.indices.reversed() where size[i] != 1 {
            if stride[i] != expect { contiguous = false }
            expect *= size[i]
        }
        if contiguous { return Tensor(shape: size, dtype: dtype, bytes: Array(storage[(offset * es)..<((offset + count) * es)])) }
        var out = [UInt8](repeating: 0, count: count * es)
        var index = [Int](repeating: 0, count: size.count)
        for n in 0..<count {
            var src = offset
            for (i, s) in stride.enumerated() { src += index[i] * s }
            for b in 0..<es { out[n * es + b] = storage[src * es + b] }
            var d = size.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < size[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return Tensor(shape: size, dtype: dtype, bytes: out)
    }
}

/// The central directory of a zip archive (stored entries only; zip64 sizes and offsets understood).
struct ZipDirectory {
    struct Entry { var offset: Int; var size: Int; var method: Int; var name: String }
    let data: Data
    let path: String
    var entries: [String: Entry] = [:]

    init(_ data: Data, path: String) throws {
        self.data = data
        self.path = path
        func bad(_ why: String) -> LoomError { LoomError("\(path): not a readable zip archive: \(why)") }
        let n = data.count
        guard n >= 22 else { throw bad("shorter than a zip end record") }
        var eocd = -1
        var p = n - 22
        while p >= max(0, n - 22 - 65535) {
            if u32(p) == 0x0605_4b50 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record") }
        // Every offset and size read from the file is checked against the file's size by subtraction, so a value
        // near Int.max cannot overflow; 64-bit fields above Int.max read as negative and are refused.
        var total = Int(u16(eocd + 10))
        var cdOffset = Int(u32(eocd + 16))
        if (total == 0xFFFF || cdOffset == 0xFFFF_FFFF), eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = int64(eocd - 20 + 8)
            guard z >= 0, z <= n - 56, u32(z) == 0x0606_4b50 else { throw bad("broken zip64 end record") }
            total = int64(z + 32)
            cdOffset = int64(z + 48)
        }
        var q = cdOffset
        for i in 0..<max(0, total) {
            guard q >= 0, q <= n - 46, u32(q) == 0x0201_4b50 else { throw bad("central directory entry \(i) at byte \(q) is broken") }
            let method = Int(u16(q + 10))
            var csize = Int(u32(q + 20))
            var usize = Int(u32(q + 24))
            let nameLen = Int(u16(q + 28)), extraLen = Int(u16(q + 30)), commentLen = Int(u16(q + 32))
            var local = Int(u32(q + 42))
            guard q + 46 + nameLen + extraLen <= n else { throw bad("central directory entry \(i) runs past the end") }
            let name = String(decoding: data[(q + 46)..<(q + 46 + nameLen)], as: UTF8.self)
            // Zip64 extra field: the 8-byte values of the fields that are 0xFFFFFFFF, in this order.
            var e = q + 46 + nameLen
            let end = e + extraLen
            while e + 4 <= end {
                let id = u16(e), len = Int(u16(e + 2))
                if id == 1 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF, f + 8 <= min(e + 4 + len, end) { usize = int64(f); f += 8 }
                    if csize == 0xFFFF_FFFF, f + 8 <= min(e + 4 + len, end) { csize = int64(f); f += 8 }
                    if local == 0xFFFF_FFFF, f + 8 <= min(e + 4 + len, end) { local = int64(f) }
                }
                e += 4 + len
            }
            guard local >= 0, local <= n - 30, u32(local) == 0x0403_4b50 else { throw bad("entry '\(name)' has no local header at byte \(local)") }
            let start = local + 30 + Int(u16(local + 26)) + Int(u16(local + 28))
            guard csize >= 0, usize >= 0, start <= n, csize <= n - start else { throw bad("entry '\(name)' runs past the end of the file") }
            // A stored entry's bytes are its data: both sizes must agree, or the reader would run past the entry.
            guard method != 0 || usize == csize else {
                throw bad("stored entry '\(name)' has \(csize) bytes but says it holds \(usize)")
            }
            entries[name] = Entry(offset: start, size: method == 0 ? usize : csize, method: method, name: name)
            q += 46 + nameLen + extraLen + commentLen
        }
    }

    func bytes(_ e: Entry) throws -> [UInt8] {
        guard e.method == 0 else {
            throw LoomError("\(path): entry '\(e.name)' is compressed (method \(e.method)); torch.save stores entries uncompressed")
        }
        return Array(data[e.offset..<(e.offset + e.size)])
    }

    func u16(_ p: Int) -> UInt16 { UInt16(data[p]) | UInt16(data[p + 1]) << 8 }
    func u32(_ p: Int) -> UInt32 { UInt32(u16(p)) | UInt32(u16(p + 2)) << 16 }
    func u64(_ p: Int) -> UInt64 { UInt64(u32(p)) | UInt64(u32(p + 4)) << 32 }
    /// A 64-bit field as an Int; one above Int.max reads as negative (refused where it is used).
    func int64(_ p: Int) -> Int { Int(truncatingIfNeeded: u64(p)) }
}

/// A reference to a tensor in the archive.
struct TorchTensorRef {
    var storageType: String
    var key: String
    var offset: Int
    var size: [Int]
    var stride: [Int]
}

final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var items: [(PickleValue, PickleValue)] = [] }

indirect enum PickleValue {
    case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
    case tuple([PickleValue]), list(PickleList), dict(PickleDict)
    case global(String), storage(type: String, key: String), tensor(TorchTensorRef)
    /// The result of calling something this reader does not model (kept so the pickle can go on).
    case opaque(String)
    case mark

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let g): return g
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .opaque(let o): return o
        case .mark: return "mark"
        }
    }
}

/// Just enough of Python's pickle machine (protocols 2 to 5) for torch state dicts.
struct Unpickler {
    let bytes: [UInt8]
    let source: String
    var pos = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    func bad(_ why: String) -> LoomError { LoomError("\(source): byte \(pos): \(why)") }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw bad("the pickle ends early") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func uint(_ n: Int) throws -> Int {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return Int(truncatingIfNeeded: v)
    }

    mutating func line() throws -> String {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw bad("unterminated line") }
        defer { pos = nl + 1 }
        return String(decoding: bytes[pos..<nl], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw bad("pop from an empty stack") }
        return v
    }

    mutating func popToMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw bad("no mark on the stack") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    mutating func run() throws -> PickleValue {
        while true {
            let op = try take(1).first!
            switch op {
            case 0x80: _ = try take(1)  // PROTO
            case 0x95: _ = try take(8)  // FRAME
            case 0x2E: return try pop()  // STOP
            case 0x28: marks.append(stack.count)  // MARK
            case 0x7D: stack.append(.dict(PickleDict()))  // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))  // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x74: stack.append(.tuple(try popToMark()))  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x6C:  // LIST
                let l = PickleList()
                l.items = try popToMark()
                stack.append(.list(l))
            case 0x64:  // DICT
                let items = try popToMark()
                let d = PickleDict()
                for i in stride(from: 0, to: items.count - 1, by: 2) { d.items.append((items[i], items[i + 1])) }
                stack.append(.dict(d))
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x4B: stack.append(.int(try uint(1)))  // BININT1
            case 0x4D: stack.append(.int(try uint(2)))  // BININT2
            case 0x8A:  // LONG1
                let n = try uint(1)
                let b = Array(try take(n))
                guard n <= 8 else { throw bad("integer of \(n) bytes") }
                var v: UInt64 = 0
                for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= UInt64.max << (8 * UInt64(n)) }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:  // BINFLOAT (big-endian)
                var v: UInt64 = 0
                for x in try take(8) { v = v << 8 | UInt64(x) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x58: stack.append(.string(String(decoding: try take(try uint(4)), as: UTF8.self)))  // BINUNICODE
            case 0x8C: stack.append(.string(String(decoding: try take(try uint(1)), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(String(decoding: try take(try uint(8)), as: UTF8.self)))  // BINUNICODE8
            case 0x54: stack.append(.string(String(decoding: try take(try uint(4)), as: UTF8.self)))  // BINSTRING
            case 0x55: stack.append(.string(String(decoding: try take(try uint(1)), as: UTF8.self)))  // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try take(try uint(4)))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(try uint(1)))))  // SHORT_BINBYTES
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module + "." + name))
            case 0x93:  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw bad("STACK_GLOBAL without two strings")
                }
                stack.append(.global(module + "." + name))
            case 0x71: memo[try uint(1)] = stack.last  // BINPUT
            case 0x72: memo[try uint(4)] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let i = try uint(op == 0x68 ? 1 : 4)
                guard let v = memo[i] else { throw bad("memo \(i) was never stored") }
                stack.append(v)
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32:  // DUP
                guard let v = stack.last else { throw bad("DUP on an empty stack") }
                stack.append(v)
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = stack.last else { throw bad("SETITEM on a \(stack.last?.kind ?? "nothing")") }
                d.items.append((k, v))
            case 0x75:  // SETITEMS
                let items = try popToMark()
                guard case .dict(let d) = stack.last else { throw bad("SETITEMS on a \(stack.last?.kind ?? "nothing")") }
                for i in stride(from: 0, to: items.count - 1, by: 2) { d.items.append((items[i], items[i + 1])) }
            case 0x61:  // APPEND
                let v = try pop()
                if case .list(let l) = stack.last { l.items.append(v) }
            case 0x65:  // APPENDS
                let items = try popToMark()
                if case .list(let l) = stack.last { l.items.append(contentsOf: items) }
            case 0x62: _ = try pop()  // BUILD: object state (e.g. a state dict's _metadata) is not needed
            case 0x51:  // BINPERSID
                let pid = try pop()
                guard case .tuple(let t) = pid, t.count >= 3, case .string("storage") = t[0], case .global(let type) = t[1] else {
                    throw bad("unsupported persistent id \(pid.kind)")
                }
                let key: String
                switch t[2] {
                case .string(let s): key = s
                case .int(let i): key = String(i)
                default: throw bad("storage key is a \(t[2].kind)")
                }
                stack.append(.storage(type: String(type.split(separator: ".").last ?? ""), key: key))
            case 0x52, 0x81:  // REDUCE, NEWOBJ
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            default:
                throw bad(String(format: "unsupported pickle opcode 0x%02x", op))
            }
        }
    }

    func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let name) = callable else { return .opaque("call") }
        let a: [PickleValue]
        if case .tuple(let t) = args { a = t } else { a = [] }
        switch name {
        case "collections.OrderedDict", "builtins.dict":
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4, case .storage(let type, let key) = a[0], case .int(let offset) = a[1],
                case .tuple(let size) = a[2], case .tuple(let stride) = a[3]
            else { throw bad("\(name) with unexpected arguments") }
            func ints(_ v: [PickleValue]) throws -> [Int] {
                try v.map { guard case .int(let i) = $0 else { throw bad("\(name): a size or stride is a \($0.kind)") }; return i }
            }
            return .tensor(TorchTensorRef(storageType: type, key: key, offset: offset, size: try ints(size), stride: try ints(stride)))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = a.first else { throw bad("\(name) without arguments") }
            return first
        default:
            return .opaque(name)
        }
    }
}
