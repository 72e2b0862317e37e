// Inline SVG charts: line charts (loss curves), horizontal bar charts (time per stage, task mix) and histograms.
// Plain SVG with text labels and a <title> per mark, so the page needs no script and reads the same printed.

import Foundation

struct Series {
    var name: String
    var points: [(x: Double, y: Double)]
    var color: String
    /// Draw a dot at each point (sparse series such as evaluation loss) instead of only a line.
    var dots = false
    var dashed = false
}

enum Chart {
    static let palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"]

    static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// Round tick values covering lo...hi, about `count` of them.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(max(1, count))
        let mag = pow(10, floor(log10(raw)))
        let units = [1.0, 2, 2.5, 5, 10].first { $0 * mag >= raw } ?? 10
        let step = units * mag
        // Each tick as k × units ÷ 10^n (not by repeated addition), so 0.6 prints as 0.6.
        let inv = mag < 1 ? (1 / mag).rounded() : 1
        let value = { (k: Double) in mag < 1 ? k * units / inv : k * units * mag }
        var k = (lo / step).rounded(.up)
        var out: [Double] = []
        while value(k) <= hi + step * 1e-9 {
            out.append(k == 0 ? 0 : value(k))
            k += 1
        }
        return out
    }

    /// Extends lo...hi to round values (so the axis starts and ends on a tick).
    static func niceRange(_ lo: Double, _ hi: Double) -> (Double, Double) {
        if !(hi > lo) { return (lo - 1, lo + 1) }
        let raw = (hi - lo) / 5
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        return ((lo / step).rounded(.down) * step, (hi / step).rounded(.up) * step)
    }

    static func f(_ x: Double) -> String { Num.trim(Num.fixed(x, 1)) }

    /// A line chart of one or more series over a shared x axis.
    static func line(
        _ series: [Series], title: String, xLabel: String, yLabel: String, width: Int = 1080, height: Int = 300,
        yFromZero: Bool = false, integerX: Bool = true
    ) -> String {
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard !all.isEmpty else { return HTML.absent("\(title): no points to draw.") }
        let (ml, mr, mt, mb) = (64.0, 16.0, 30.0, 44.0)
        let w = Double(width), h = Double(height)
        var (x0, x1) = (all.map(\.x).min()!, all.map(\.x).max()!)
        if x1 <= x0 { (x0, x1) = (x0 - 1, x1 + 1) }
        var (y0, y1) = niceRange(
            yFromZero ? min(0, all.map(\.y).min()!) : all.map(\.y).min()!, all.map(\.y).max()!)
        if y1 <= y0 { (y0, y1) = (y0 - 1, y1 + 1) }
        let px = { (x: Double) in ml + (x - x0) / (x1 - x0) * (w - ml - mr) }
        let py = { (y: Double) in h - mb - (y - y0) / (y1 - y0) * (h - mt - mb) }
        var s = svgOpen(width, height, title)
        s += "<text class=\"ct\" x=\"\(f(ml))\" y=\"18\">\(HTML.esc(title))</text>"
        for t in ticks(y0, y1) {
            s += "<line class=\"grid\" x1=\"\(f(ml))\" x2=\"\(f(w - mr))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\"/>"
            s += "<text class=\"tick\" x=\"\(f(ml - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Num.short(t))</text>"
        }
        for t in ticks(x0, x1, count: 8) where !integerX || t == t.rounded() {
            s += "<line class=\"axis\" x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(h - mb))\" y2=\"\(f(h - mb + 4))\"/>"
            s += "<text class=\"tick\" x=\"\(f(px(t)))\" y=\"\(f(h - mb + 16))\" text-anchor=\"middle\">\(Num.short(t))</text>"
        }
        s += "<line class=\"axis\" x1=\"\(f(ml))\" x2=\"\(f(w - mr))\" y1=\"\(f(h - mb))\" y2=\"\(f(h - mb))\"/>"
        s += "<line class=\"axis\" x1=\"\(f(ml))\" x2=\"\(f(ml))\" y1=\"\(f(mt))\" y2=\"\(f(h - mb))\"/>"
        s += "<text class=\"al\" x=\"\(f((ml + w - mr) / 2))\" y=\"\(f(h - 6))\" text-anchor=\"middle\">\(HTML.esc(xLabel))</text>"
        s += "<text class=\"al\" transform=\"translate(14 \(f((mt + h - mb) / 2))) rotate(-90)\" text-anchor=\"middle\">\(HTML.esc(yLabel))</text>"
        for se in series {
            let pts = se.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !pts.isEmpty else { continue }
            let path = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            if pts.count > 1 {
                s += "<polyline class=\"series\" points=\"\(path)\" stroke=\"\(se.color)\"\(se.dashed ? " stroke-dasharray=\"5 4\"" : "")/>"
            }
            if se.dots || pts.count == 1 {
                for p in pts {
                    s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(se.color)\"><title>\(HTML.esc(se.name)) at \(Num.short(p.x)): \(Num.short(p.y))</title></circle>"
                }
            }
        }
        // Legend, top right.
        var lx = w - mr
        for se in series.reversed() {
            let tw = Double(se.name.count) * 6.6 + 22
            lx -= tw
            s += "<rect x=\"\(f(lx))\" y=\"10\" width=\"12\" height=\"4\" fill=\"\(se.color)\"/>"
            s += "<text class=\"lg\" x=\"\(f(lx + 16))\" y=\"16\">\(HTML.esc(se.name))</text>"
        }
        return s + "</svg>\n"
    }

    /// Horizontal bars, one per label, with the value printed at the end of each bar.
    static func bars(
        _ items: [(label: String, value: Double, text: String)], title: String, width: Int = 760, color: String = palette[0]
    ) -> String {
        guard !items.isEmpty else { return HTML.absent("\(title): nothing to draw.") }
        let rowH = 22.0
        let labelW = min(300.0, Double(items.map(\.label.count).max() ?? 10) * 6.8 + 12)
        let h = 34 + rowH * Double(items.count) + 8
        let w = Double(width)
        let maxV = max(items.map(\.value).max() ?? 1, 1e-12)
        let barMax = w - labelW - 90
        var s = svgOpen(width, Int(h), title)
        s += "<text class=\"ct\" x=\"4\" y=\"18\">\(HTML.esc(title))</text>"
        for (i, it) in items.enumerated() {
            let y = 30 + rowH * Double(i)
            let bw = max(it.value > 0 ? 1.5 : 0, it.value / maxV * barMax)
            s += "<text class=\"bl\" x=\"\(f(labelW - 8))\" y=\"\(f(y + 15))\" text-anchor=\"end\">\(HTML.esc(HTML.clip(it.label, 44)))</text>"
            s += "<rect x=\"\(f(labelW))\" y=\"\(f(y + 3))\" width=\"\(f(bw))\" height=\"\(f(rowH - 6))\" fill=\"\(color)\"><title>\(HTML.esc(it.label)): \(HTML.esc(it.text))</title></rect>"
            s += "<text class=\"bv\" x=\"\(f(labelW + bw + 6))\" y=\"\(f(y + 15))\">\(HTML.esc(it.text))</text>"
        }
        return s + "</svg>\n"
    }

    /// A histogram of `values` in about `bins` equal-width bins with round edges.
    static func histogram(_ values: [Double], title: String, xLabel: String, bins: Int = 20, width: Int = 760, height: Int = 220, color: String = palette[0]) -> String {
        guard let lo0 = values.min(), let hi0 = values.max() else { return HTML.absent("\(title): no values.") }
        // Bin width: a round number so edges read well (…, 50, 100, 200, 250, 500, …).
        let span = max(hi0 - min(0, lo0), 1)
        let raw = span / Double(bins)
        let mag = pow(10, floor(log10(raw)))
        let step = max(1, [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag)
        let lo = (min(0, lo0) / step).rounded(.down) * step
        // The largest value closes the last bin (a similarity of exactly 100% is in 90–100, not in a bin of its own).
        let n = max(1, Int(((hi0 - lo) / step).rounded(.up)))
        var counts = [Int](repeating: 0, count: n)
        for v in values { counts[min(n - 1, max(0, Int((v - lo) / step)))] += 1 }
        let (ml, mr, mt, mb) = (52.0, 26.0, 30.0, 42.0)
        let w = Double(width), h = Double(height)
        let maxC = Double(counts.max() ?? 1)
        let (_, yTop) = niceRange(0, maxC)
        let bw = (w - ml - mr) / Double(n)
        let py = { (c: Double) in h - mb - c / yTop * (h - mt - mb) }
        var s = svgOpen(width, height, title)
        s += "<text class=\"ct\" x=\"\(f(ml))\" y=\"18\">\(HTML.esc(title))</text>"
        for t in ticks(0, yTop, count: 4) where t == t.rounded() {
            s += "<line class=\"grid\" x1=\"\(f(ml))\" x2=\"\(f(w - mr))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\"/>"
            s += "<text class=\"tick\" x=\"\(f(ml - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Num.short(t))</text>"
        }
        for (i, c) in counts.enumerated() {
            let x = ml + Double(i) * bw
            let a = lo + Double(i) * step
            if c > 0 {
                s += "<rect x=\"\(f(x + 1))\" y=\"\(f(py(Double(c))))\" width=\"\(f(max(1, bw - 2)))\" height=\"\(f(h - mb - py(Double(c))))\" fill=\"\(color)\"><title>\(Num.short(a))–\(Num.short(a + step)): \(c)</title></rect>"
            }
        }
        let labelEvery = max(1, Int((Double(n) / 10).rounded(.up)))
        for i in stride(from: 0, through: n, by: labelEvery) {
            let x = ml + Double(i) * bw
            s += "<line class=\"axis\" x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(h - mb))\" y2=\"\(f(h - mb + 4))\"/>"
            s += "<text class=\"tick\" x=\"\(f(x))\" y=\"\(f(h - mb + 16))\" text-anchor=\"middle\">\(Num.short(lo + Double(i) * step))</text>"
        }
        s += "<line class=\"axis\" x1=\"\(f(ml))\" x2=\"\(f(w - mr))\" y1=\"\(f(h - mb))\" y2=\"\(f(h - mb))\"/>"
        s += "<text class=\"al\" x=\"\(f((ml + w - mr) / 2))\" y=\"\(f(h - 6))\" text-anchor=\"middle\">\(HTML.esc(xLabel))</text>"
        return s + "</svg>\n"
    }

    static func svgOpen(_ width: Int, _ height: Int, _ title: String) -> String {
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(HTML.esc(title))\">"
    }
}
