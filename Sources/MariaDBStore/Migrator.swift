import CameoCore
public import MariaDB
import FoundationEssentials

/// Applies the plain SQL files of `sql/` in name order, each once, recording them in
/// `schema_migrations`. Statements are split at `;` ending a line and each runs as a prepared
/// statement (MariaDB prepares DDL too), so migrations go through the same path as all SQL.
public struct Migrator {
    let db: Connection
    let directory: String

    public init(db: Connection, directory: String) {
        self.db = db
        self.directory = directory
    }

    /// The migration files, sorted by name.
    public func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
    }

    /// Applies what is missing; returns the names applied now.
    public func migrate() throws -> [String] {
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version VARCHAR(255) NOT NULL PRIMARY KEY,
                applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
            ) ENGINE=InnoDB
            """)
        let applied = Set(try db.query("SELECT version FROM schema_migrations").compactMap { $0.string("version") })
        var done: [String] = []
        for file in try files() where !applied.contains(file) {
            guard let data = FileManager.default.contents(atPath: directory + "/" + file) else {
                throw MigrationError(file: file, message: "cannot read")
            }
            for statement in Self.statements(in: String(decoding: data, as: UTF8.self)) {
                do {
                    try db.execute(statement)
                } catch {
                    throw MigrationError(file: file, message: "\(error)")
                }
            }
            try db.execute("INSERT INTO schema_migrations (version) VALUES (?)", [.text(file)])
            done.append(file)
        }
        return done
    }

    /// Splits a file into statements: `--` comment lines dropped, a `;` at a line's end closes one.
    static func statements(in text: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingWhitespace()
            if trimmed.hasPrefix("--") || trimmed.isEmpty { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                var statement = current.joined(separator: "\n").trimmingWhitespace()
                statement.removeLast()
                statements.append(statement)
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingWhitespace()
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }
}

/// A migration that failed, naming the file.
public struct MigrationError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public var description: String { "migration \(file): \(message)" }
}
