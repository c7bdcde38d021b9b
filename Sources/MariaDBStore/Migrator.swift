import CameoCore
public import MariaDB
import FoundationEssentials

/// Applies the plain SQL files of `sql/` in name order, each once, recording them in
/// `schema_migrations`. Statements are split at `;` ending a line and each runs as a prepared
/// statement (MariaDB prepares DDL too), so migrations go through the same path as all SQL.
///
/// Every host of a rolling upgrade may run `cameoctl migrate` at once, on any node of a Galera
/// cluster, so the files are applied under a lock that holds across hosts: one row of
/// `schema_migration_lock`, taken by an INSERT that only one writer can win (a duplicate key on
/// one server; a certification conflict between Galera nodes). MariaDB's named locks would not
/// do: they are local to the node that took them. A migrator that died leaves the row; it
/// counts as free once its expiry passes, and a live one pushes the expiry on before every
/// statement (and stops if the lock is no longer its own).
public struct Migrator {
    let db: Connection
    let directory: String

    /// How long a taken lock counts as held without a sign of life from its holder.
    public static let lockSeconds = 600

    public init(db: Connection, directory: String) {
        self.db = db
        self.directory = directory
    }

    /// The migration files, sorted by name.
    public func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
    }

    /// What `migrate --status` shows: each file, applied (with when) or not; versions the
    /// database has that no file here names (a newer release applied them); who holds the lock.
    public struct Status: Sendable {
        public var applied: [(version: String, at: String)] = []
        public var pending: [String] = []
        public var unknown: [String] = []
        public var lockHolder: (holder: String, until: String)? = nil
    }

    public func status() throws -> Status {
        try createBookkeeping()
        let rows = try db.query("SELECT version, DATE_FORMAT(applied_at, '%Y-%m-%d %H:%i:%s') AS at FROM schema_migrations ORDER BY version")
        let applied = Dictionary(rows.compactMap { row in row.string("version").map { ($0, row.string("at") ?? "") } }, uniquingKeysWith: { a, _ in a })
        let files = try files()
        var status = Status()
        status.applied = files.compactMap { file in applied[file].map { (file, $0) } }
        status.pending = files.filter { applied[$0] == nil }
        status.unknown = applied.keys.filter { !files.contains($0) }.sorted()
        status.lockHolder = try currentHolder()
        return status
    }

    /// Applies what is missing, holding the migration lock; returns the names applied now.
    /// `holder` names this run in the lock (host and pid); `waitSeconds` is how long to wait
    /// for another run's lock before giving up.
    public func migrate(holder: String = "cameoctl", waitSeconds: Int = 0) throws -> [String] {
        try createBookkeeping()
        try acquireLock(holder: holder, waitSeconds: waitSeconds)
        defer { _ = try? db.execute("DELETE FROM schema_migration_lock WHERE id = 1 AND holder = ?", [.text(holder)]) }
        // Read after the lock is ours: what another run applied meanwhile is not applied again.
        let applied = Set(try db.query("SELECT version FROM schema_migrations").compactMap { $0.string("version") })
        var done: [String] = []
        for file in try files() where !applied.contains(file) {
            guard let data = FileManager.default.contents(atPath: directory + "/" + file) else {
                throw MigrationError(file: file, message: "cannot read")
            }
            for statement in Self.statements(in: String(decoding: data, as: UTF8.self)) {
                try keepLock(holder: holder, file: file)
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

    private func createBookkeeping() throws {
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version VARCHAR(255) NOT NULL PRIMARY KEY,
                applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
            ) ENGINE=InnoDB
            """)
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migration_lock (
                id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
                holder VARCHAR(255) NOT NULL,
                expires_at DATETIME(3) NOT NULL
            ) ENGINE=InnoDB
            """)
    }

    private func acquireLock(holder: String, waitSeconds: Int) throws {
        // Tries every half second (the server's own sleep: no clock of ours to trust across hosts).
        var triesLeft = waitSeconds * 2
        while true {
            // A lock whose holder went quiet past its expiry is free.
            try db.execute("DELETE FROM schema_migration_lock WHERE id = 1 AND expires_at < UTC_TIMESTAMP(3)")
            do {
                try db.execute(
                    "INSERT INTO schema_migration_lock (id, holder, expires_at) VALUES (1, ?, UTC_TIMESTAMP(3) + INTERVAL ? SECOND)",
                    [.text(holder), .int(Int64(Self.lockSeconds))])
                return
            } catch {
                // Held (here, or won by another Galera node at commit); anything else is a failure.
                guard error.isDuplicateKey || error.isRolledBack else { throw error }
            }
            guard triesLeft > 0 else {
                let held = try currentHolder()
                throw MigrationError(
                    file: "-", message: "another migration holds the lock (\(held?.holder ?? "?"), until \(held?.until ?? "?") UTC); try again, or pass --wait SECONDS")
            }
            triesLeft -= 1
            try db.execute("DO SLEEP(0.5)")
        }
    }

    /// Pushes the lock's expiry on before each statement; a lock that is no longer ours (it
    /// expired during a statement that ran longer than `lockSeconds`, and another run took it)
    /// stops this run before it runs anything more.
    private func keepLock(holder: String, file: String) throws {
        try db.execute(
            "UPDATE schema_migration_lock SET expires_at = UTC_TIMESTAMP(3) + INTERVAL ? SECOND WHERE id = 1 AND holder = ?",
            [.int(Int64(Self.lockSeconds)), .text(holder)])
        // Asked, not taken from the UPDATE's count: MariaDB does not count a row it left as it was.
        let ours = try db.query("SELECT holder FROM schema_migration_lock WHERE id = 1 AND holder = ?", [.text(holder)])
        guard ours.count == 1 else { throw MigrationError(file: file, message: "lost the migration lock to another run; nothing more was applied") }
    }

    private func currentHolder() throws -> (holder: String, until: String)? {
        let rows = try db.query(
            "SELECT holder, DATE_FORMAT(expires_at, '%Y-%m-%d %H:%i:%s') AS until FROM schema_migration_lock WHERE id = 1 AND expires_at >= UTC_TIMESTAMP(3)")
        return rows.first.map { ($0.string("holder") ?? "?", $0.string("until") ?? "?") }
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
