// The pipeline step `- report: {}`: the report on every earlier step, written as the side file `report.html` of
// the step's own directory. Its inputs are those steps' directories, so it is skipped while none of them changes
// and written again when one does.

import Foundation
import LoomCore

public struct ReportStage: Stage {
    public static let stageName = "report"
    /// The pipeline output directory (shown in the page) and the earlier steps' directories, in order.
    public let root: String
    public let directories: [String]
    public let options: ReportOptions

    public init(root: String, directories: [String], options: ReportOptions = ReportOptions()) {
        self.root = root
        self.directories = directories
        self.options = options
    }

    public var name: String { Self.stageName }
    public var config: JSONValue { options.json }
    public var inputs: [StageInput] { directories.map { .stage($0) } }
    public var sideFiles: [String] { ["report.html"] }

    public func run(_ ctx: StageContext) throws {
        let html = try Report.render(directories: directories, root: root, options: options)
        try FS.writeAtomically(html, to: ctx.sideFilePath("report.html"))
        ctx.setCount("stages", directories.count)
        ctx.setCount("bytes", html.utf8.count)
        ctx.setValue("report", .string(FS.join(ctx.directory, "report.html")))
    }
}
