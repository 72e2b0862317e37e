import XCTest
@testable import LoomTrain
