import XCTest
@testable import LoomTokenizer
