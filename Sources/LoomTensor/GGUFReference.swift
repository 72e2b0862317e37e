// The plain reference for GGUF dequantization: one value at a time, written from gguf-py's quants.py
// (`dequantize_blocks` of each class) and ggml-quants.c's `dequantize_row_*`, with no attempt at speed. The fast C
// path (CTensorKernels/dequant.c) is tested against it on every type, and both against the values the `gguf`
// package gives on tensors cut from a real file. Each value is computed in float32 in gguf-py's order: the scale
// product first (d·sc), then times the quant, then minus the min product (dmin·m), each rounded on its own.

enum GGUFReference {
    /// Dequantizes whole blocks of `type` (nil for a type the reference does not cover).
    static func dequantize(_ type: GGMLType, _ raw: [UInt8]) -> [Float]? {
        let bs = type.blockSize, ts = type.typeSize
        guard type.canDequantize, raw.count % ts == 0 else { return nil }
        var out = [Float](repeating: 0, count: raw.count / ts * bs)
        for k in 0..<(raw.count / ts) {
            let b = Array(raw[(k * ts)..<((k + 1) * ts)])
            for i in 0..<bs { out[k * bs + i] = value(type, b, i) }
        }
        return out
    }

    static func half(_ b: [UInt8], _ at: Int) -> Float { Float(Float16(bitPattern: UInt16(b[at]) | UInt16(b[at + 1]) << 8)) }

    /// Value i of one block.
    static func value(_ type: GGMLType, _ b: [UInt8], _ i: Int) -> Float {
        switch type {
        case .f32:
            return Float(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        case .f16: return half(b, 0)
        case .bf16: return Float(bitPattern: (UInt32(b[0]) | UInt32(b[1]) << 8) << 16)
        case .q8_0:
            // d f16, qs int8[32]: x · d
            return Float(Int8(bitPattern: b[2 + i])) * half(b, 0)
        case .q4_0:
            // d f16, qs u8[16]: low nibbles are values 0..15, high nibbles 16..31; d · (q − 8)
            let q = i < 16 ? b[2 + i] & 0xF : b[2 + i - 16] >> 4
            return half(b, 0) * Float(Int(q) - 8)
        case .q4_1:
            // d f16, m f16, qs u8[16]: d · q + m
            let q = i < 16 ? b[4 + i] & 0xF : b[4 + i - 16] >> 4
            return half(b, 0) * Float(q) + half(b, 2)
        case .q5_0, .q5_1:
            // d f16, [m f16,] qh u32, qs u8[16]: bit i of qh is the fifth bit of value i
            let base = type == .q5_0 ? 2 : 4
            let qh = UInt32(b[base]) | UInt32(b[base + 1]) << 8 | UInt32(b[base + 2]) << 16 | UInt32(b[base + 3]) << 24
            let low = i < 16 ? b[base + 4 + i] & 0xF : b[base + 4 + i - 16] >> 4
            let q = Int(low) | Int((qh >> UInt32(i)) & 1) << 4
            return type == .q5_0 ? half(b, 0) * Float(q - 16) : half(b, 0) * Float(q) + half(b, 2)
        case .q2_K:
            // scales u8[16], qs u8[64], d f16, dmin f16; value i = 128g + 32s + l
            let (g, s, l) = (i / 128, i % 128 / 32, i % 32)
            let q = (b[16 + 32 * g + l] >> UInt8(2 * s)) & 3
            let sc = b[i / 16]
            let dl = half(b, 80) * Float(sc & 0xF), ml = half(b, 82) * Float(sc >> 4)
            return dl * Float(q) - ml
        case .q3_K:
            // hmask u8[32], qs u8[64], scales u8[12], d f16
            let j = i / 16
            let lo = j < 8 ? b[96 + j] & 0xF : b[96 + j - 8] >> 4
            let hi = (b[96 + 8 + j % 4] >> UInt8(2 * (j / 4))) & 3
            let scale = Int(Int8(bitPattern: lo | hi << 4)) - 32
            let dl = half(b, 108) * Float(scale)
            let (g, s, l) = (i / 128, i % 128 / 32, i % 32)
            let low = Int((b[32 + 32 * g + l] >> UInt8(2 * s)) & 3)
            let high = Int((b[l] >> UInt8(i / 32)) & 1)
            return dl * Float(low - ((high ^ 1) << 2))
        case .q4_K, .q5_K:
            // d f16, dmin f16, scales u8[12], [qh u8[32],] qs u8[128]; value i = 64c + 32h + l in sub-block i / 32
            let s = Array(b[4..<16])
            let j = i / 32
            let sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4
            let m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4
            let (c, h, l) = (i / 64, i % 64 / 32, i % 32)
            let qsBase = type == .q4_K ? 16 : 48
            var q = Int((b[qsBase + 32 * c + l] >> UInt8(4 * h)) & 0xF)
            if type == .q5_K { q |= Int((b[16 + l] >> UInt8(j)) & 1) << 4 }
            return (half(b, 0) * Float(sc)) * Float(q) - half(b, 2) * Float(m)
        case .q6_K:
            // ql u8[128], qh u8[64], scales int8[16], d f16; value i = 128n + 32r + l
            let (n, r, l) = (i / 128, i % 128 / 32, i % 32)
            let qlByte = b[64 * n + l + (r & 1) * 32]
            let low = r < 2 ? qlByte & 0xF : qlByte >> 4
            let high = (b[128 + 32 * n + l] >> UInt8(2 * r)) & 3
            let q = Int(low | high << 4) - 32
            let sc = Int8(bitPattern: b[192 + i / 16])
            return (half(b, 208) * Float(sc)) * Float(q)
        default:
            return .nan
        }
    }
}
