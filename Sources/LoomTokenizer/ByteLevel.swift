// The byte-level alphabet of GPT-2 (Hugging Face `ByteLevel`): every byte is shown as one printable character, so a
// byte-level vocabulary is a set of ordinary strings. Printable Latin-1 bytes stand for themselves; the 68 others
// (controls, space, 0x7F-0xA0, 0xAD) take the code points 256, 257, ... in byte order ("Ġ" is the space).

public enum ByteLevel {
    /// The character standing for each byte.
    public static let byteToScalar: [Unicode.Scalar] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if printable[b] {
                out[b] = Unicode.Scalar(UInt32(b))!
            } else {
                out[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return out
    }()

    /// The byte each alphabet character stands for (indexed by code point, < 324); -1 for other characters.
    public static let scalarToByte: [Int16] = {
        var out = [Int16](repeating: -1, count: 324)
        for (b, s) in byteToScalar.enumerated() { out[Int(s.value)] = Int16(b) }
        return out
    }()

    /// The 256 alphabet characters as one-character strings, in byte order.
    public static let alphabet: [String] = byteToScalar.map { String($0) }

    /// The byte-level form of some bytes: one alphabet character per byte.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// The bytes a byte-level string stands for, or nil when it holds a character outside the alphabet.
    public static func decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            guard u.value < 324, scalarToByte[Int(u.value)] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[Int(u.value)]))
        }
        return out
    }
}
