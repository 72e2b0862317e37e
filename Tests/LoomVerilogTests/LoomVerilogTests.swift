import XCTest
@testable import LoomVerilog
