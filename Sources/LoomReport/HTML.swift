// Small HTML helpers for the report: escaping (every string from a record, a manifest or a file name is untrusted
// and goes through `esc`), number formatting that does not depend on the locale, and table building.

import Foundation
import LoomCore

enum HTML {
    /// Escapes text for element content and attribute values. Control characters other than tab and newline (which
    /// HTML does not allow) and noncharacters become U+FFFD.
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n": out.unicodeScalars.append(u)
            case "\r": out += "\n"
            default:
                if u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0) || (u.value >= 0xFDD0 && u.value <= 0xFDEF)
                    || (u.value & 0xFFFE) == 0xFFFE
                {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }

    /// At most `n` characters of `s`, with an ellipsis when cut.
    static func clip(_ s: String, _ n: Int) -> String {
        guard s.count > n else { return s }
        return String(s.prefix(n)) + "…"
    }

    /// A table: header cells and rows of already-escaped HTML cells. `numeric` columns are right-aligned.
    static func table(_ header: [String], _ rows: [[String]], numeric: Set<Int> = [], cls: String = "") -> String {
        var s = "<table\(cls.isEmpty ? "" : " class=\"\(cls)\"")><thead><tr>"
        for (i, h) in header.enumerated() { s += "<th\(numeric.contains(i) ? " class=\"num\"" : "")>\(h)</th>" }
        s += "</tr></thead><tbody>"
        for r in rows {
            s += "<tr>"
            for (i, c) in r.enumerated() { s += "<td\(numeric.contains(i) ? " class=\"num\"" : "")>\(c)</td>" }
            s += "</tr>"
        }
        return s + "</tbody></table>\n"
    }

    static func p(_ text: String, cls: String = "") -> String {
        "<p\(cls.isEmpty ? "" : " class=\"\(cls)\"")>\(text)</p>\n"
    }

    /// A plain statement that a section has nothing to show, and why.
    static func absent(_ text: String) -> String { "<p class=\"absent\">\(esc(text))</p>\n" }

    static func code(_ s: String) -> String { "<code>\(esc(s))</code>" }
}

/// Locale-independent number formatting: the same value always prints the same way.
enum Num {
    static func int(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "–" : (x > 0 ? "∞" : "-∞") }
        return String(format: "%.\(digits)f", x)
    }

    /// A short form for chart labels and table cells: 3 significant digits, k/M suffixes for large values.
    static func short(_ x: Double) -> String {
        guard x.isFinite else { return fixed(x, 0) }
        let a = abs(x)
        if a >= 1e9 { return trim(fixed(x / 1e9, 2)) + "G" }
        if a >= 1e6 { return trim(fixed(x / 1e6, 2)) + "M" }
        if a >= 1e4 { return trim(fixed(x / 1e3, 1)) + "k" }
        if a >= 100 || x == x.rounded() { return fixed(x, 0) }
        if a >= 10 { return trim(fixed(x, 1)) }
        if a >= 1 { return trim(fixed(x, 2)) }
        if a >= 0.001 { return trim(fixed(x, 4)) }
        return String(format: "%.3g", x)
    }

    static func trim(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    static func percent(_ x: Double) -> String { fixed(x * 100, 1) + "%" }

    static func seconds(_ s: Double) -> String {
        if s < 1 { return fixed(s * 1000, 0) + " ms" }
        if s < 120 { return fixed(s, 1) + " s" }
        let m = Int(s) / 60
        if m < 120 { return "\(m) min \(Int(s) % 60) s" }
        return "\(m / 60) h \(m % 60) min"
    }

    static func bytes(_ n: Int) -> String {
        let x = Double(n)
        if x >= 1e9 { return fixed(x / 1e9, 2) + " GB" }
        if x >= 1e6 { return fixed(x / 1e6, 1) + " MB" }
        if x >= 1e3 { return fixed(x / 1e3, 1) + " kB" }
        return "\(n) B"
    }

}

extension JSONValue {
    /// A value as a person reads it in a table cell (not escaped).
    var display: String {
        switch self {
        case .null: return "–"
        case .bool(let b): return b ? "yes" : "no"
        case .int(let i): return Num.int(i)
        case .double(let d): return Num.short(d)
        case .string(let s): return s
        case .array(let a): return a.map(\.display).joined(separator: ", ")
        case .object: return jsonString
        }
    }
}
