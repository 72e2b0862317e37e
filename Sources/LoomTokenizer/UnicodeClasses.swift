// Character classes the pre-tokeniser patterns use, over Unicode scalars: \p{L} (general categories Lu Ll Lt Lm Lo),
// \p{N} (Nd Nl No) and \s (White_Space: what Oniguruma, the engine Hugging Face tokenizers uses, calls \s), read
// from Swift's Unicode tables. The Basic Multilingual Plane is looked up in a table built once; other planes ask
// the Unicode properties directly.

let classLetter: UInt8 = 1
let classNumber: UInt8 = 2
let classSpace: UInt8 = 4

@inline(__always) func computeClass(_ v: UInt32) -> UInt8 {
    guard let s = Unicode.Scalar(v) else { return 0 }
    let p = s.properties
    if p.isWhitespace { return classSpace }
    switch p.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return classLetter
    case .decimalNumber, .letterNumber, .otherNumber: return classNumber
    default: return 0
    }
}

/// Classes of the 65,536 BMP code points (surrogates: 0).
nonisolated(unsafe) let bmpClasses: UnsafeMutablePointer<UInt8> = {
    let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x10000)
    for v in 0..<UInt32(0x10000) { t[Int(v)] = computeClass(v) }
    return t
}()

@inline(__always) func scalarClass(_ v: UInt32, _ bmp: UnsafeMutablePointer<UInt8>) -> UInt8 {
    v < 0x10000 ? bmp[Int(v)] : computeClass(v)
}

/// Decodes the scalar starting at `i` (the bytes are valid UTF-8: they come from a Swift String).
@inline(__always) func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3) }
    return (
        (b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6 | UInt32(p[i + 3] & 0x3F), 4
    )
}
