// The loss curve as a small self-contained SVG (training loss per step, evaluation loss where measured), written
// beside metrics.jsonl so a person sees how training went without plotting anything.

import Foundation

public enum LossCurve {
    public static func svg(_ metrics: [StepMetrics], title: String, width: Double = 640, height: Double = 360) -> String {
        let left = 60.0, right = 20.0, top = 36.0, bottom = 44.0
        let pw = width - left - right, ph = height - top - bottom
        let train = metrics.map { ($0.step, $0.loss) }
        let eval = metrics.compactMap { m in m.evalLoss.map { (m.step, $0) } }
        let values = train.map(\.1) + eval.map(\.1)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        out += "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(Int(left))\" y=\"20\" font-size=\"14\">\(escape(title))</text>\n"
        guard let lo0 = values.min(), let hi0 = values.max(), let last = metrics.last?.step, last > 0 else {
            return out + "<text x=\"\(Int(left))\" y=\"\(Int(top + 20))\">no steps yet</text>\n</svg>\n"
        }
        let first = metrics.first!.step
        let span = max(hi0 - lo0, 1e-6)
        let lo = lo0 - 0.05 * span, hi = hi0 + 0.05 * span
        func x(_ s: Int) -> Double { left + (last == first ? pw / 2 : Double(s - first) / Double(last - first) * pw) }
        func y(_ v: Double) -> Double { top + (hi - v) / (hi - lo) * ph }
        func n(_ v: Double) -> String { String(format: "%.1f", v) }
        out += "<g stroke=\"#ccc\">\n"
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            out += "<line x1=\"\(n(left))\" y1=\"\(n(y(v)))\" x2=\"\(n(left + pw))\" y2=\"\(n(y(v)))\"/>\n"
        }
        out += "</g>\n<g fill=\"#333\">\n"
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            out += "<text x=\"\(n(left - 6))\" y=\"\(n(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
        }
        for i in 0...4 {
            let s = first + (last - first) * i / 4
            out += "<text x=\"\(n(x(s)))\" y=\"\(n(top + ph + 16))\" text-anchor=\"middle\">\(s)</text>\n"
        }
        out += "<text x=\"\(n(left + pw / 2))\" y=\"\(n(height - 8))\" text-anchor=\"middle\">step</text>\n"
        out += "<text x=\"14\" y=\"\(n(top + ph / 2))\" transform=\"rotate(-90 14 \(n(top + ph / 2)))\" text-anchor=\"middle\">loss</text>\n"
        out += "</g>\n"
        out += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(pw))\" height=\"\(n(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        func line(_ pts: [(Int, Double)], _ color: String, _ label: String, _ row: Int) {
            guard !pts.isEmpty else { return }
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\""
            out += pts.map { "\(n(x($0.0))),\(n(y($0.1)))" }.joined(separator: " ") + "\"/>\n"
            if pts.count == 1 { out += "<circle cx=\"\(n(x(pts[0].0)))\" cy=\"\(n(y(pts[0].1)))\" r=\"3\" fill=\"\(color)\"/>\n" }
            let ly = top + 14 + Double(row) * 16
            out += "<line x1=\"\(n(left + pw - 120))\" y1=\"\(n(ly - 4))\" x2=\"\(n(left + pw - 100))\" y2=\"\(n(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(n(left + pw - 94))\" y=\"\(n(ly))\">\(label)</text>\n"
        }
        line(train, "#1f77b4", "train loss", 0)
        line(eval, "#d62728", "eval loss", 1)
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
