import XCTest
@testable import LoomMerge
