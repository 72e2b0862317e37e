// The generator's response cache: SQLite, keyed by a hash of backend, model, parameters and the rendered prompt.
// A re-run or a resumed run asks the server nothing it already has an answer for.

import CSQLite
import Foundation
import LoomCore

public final class ResponseCache: @unchecked Sendable {
    public let path: String
    private var db: OpaquePointer?
    private let lock = NSLock()

    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FS.makeDirectory(dir) }
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "code \(rc)"
            sqlite3_close(handle)
            throw LoomError("cannot open the response cache \(path): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(handle, 10_000)
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=NORMAL")
        try exec("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL)")
    }

    deinit { sqlite3_close(db) }

    private func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let m = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw LoomError("response cache \(path): \(m)")
        }
    }

    /// The key of a request: everything that changes the answer.
    public static func key(backend: String, model: String, parameters: JSONValue, messages: JSONValue) -> String {
        SHA256.hex([backend, model, parameters.jsonString, messages.jsonString].joined(separator: "\u{0}"))
    }

    public func get(_ key: String) -> String? {
        lock.withLock {
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(db, "SELECT response FROM responses WHERE key = ?", -1, &stmt, nil) == SQLITE_OK
            else { return nil }
            defer { sqlite3_finalize(stmt) }
            sqlite3_bind_text(stmt, 1, key, -1, loom_sqlite_transient())
            guard sqlite3_step(stmt) == SQLITE_ROW, let text = sqlite3_column_text(stmt, 0) else { return nil }
            return String(cString: text)
        }
    }

    public func put(_ key: String, _ response: String) throws {
        try lock.withLock {
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(
                db, "INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)", -1, &stmt, nil)
                == SQLITE_OK
            else { throw LoomError("response cache \(path): \(String(cString: sqlite3_errmsg(db)))") }
            defer { sqlite3_finalize(stmt) }
            sqlite3_bind_text(stmt, 1, key, -1, loom_sqlite_transient())
            sqlite3_bind_text(stmt, 2, response, -1, loom_sqlite_transient())
            sqlite3_bind_double(stmt, 3, Date().timeIntervalSince1970)
            guard sqlite3_step(stmt) == SQLITE_DONE else {
                throw LoomError("response cache \(path): \(String(cString: sqlite3_errmsg(db)))")
            }
        }
    }

    public var count: Int {
        lock.withLock {
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM responses", -1, &stmt, nil) == SQLITE_OK else { return 0 }
            defer { sqlite3_finalize(stmt) }
            return sqlite3_step(stmt) == SQLITE_ROW ? Int(sqlite3_column_int64(stmt, 0)) : 0
        }
    }
}
