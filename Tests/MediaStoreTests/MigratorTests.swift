import CameoCore
import CameoSystem
import Dispatch
import Foundation
import MariaDB
import MediaStore
import Synchronization
import Testing
@testable import MariaDBStore

@Suite(.serialized) struct MigratorTests {
    @Test func splitsStatementsAtLineEndSemicolons() {
        let text = """
            -- a comment; with a semicolon
            CREATE TABLE a (
                x INT -- trailing; comment
            );

            INSERT INTO a VALUES (1);
            """
        let statements = Migrator.statements(in: text)
        #expect(statements.count == 2)
        #expect(statements[0].hasPrefix("CREATE TABLE a ("))
        #expect(statements[1] == "INSERT INTO a VALUES (1)")
    }

    /// A folder of migrations that each create a table of their own (named `prefix_N`) and take
    /// a moment, so two runs at once overlap; without a lock the second would fail on the table
    /// the first created.
    static func migrations(count: Int) throws -> (folder: String, prefix: String) {
        let prefix = "mig_\(MediaID.random().rawValue.prefix(10))"
        let folder = "/tmp/cameo-\(prefix)"
        try FileSystem.makeDirectory(folder, mode: 0o700)
        for n in 1...count {
            let sql = "CREATE TABLE \(prefix)_\(n) (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB;\nDO SLEEP(0.2);\n"
            try FileSystem.writeNew(Array(sql.utf8), to: "\(folder)/9\(n)00_\(prefix).sql")
        }
        return (folder, prefix)
    }

    @Test func aHeldLockStopsASecondRunAndAnExpiredOneIsTakenOver() throws {
        guard MariaDBScratch.socket != nil else { return }
        let db = MariaDBScratch.connection(to: MariaDBScratch.sweeps)
        let (folder, prefix) = try Self.migrations(count: 2)
        let migrator = Migrator(db: db, directory: folder)
        #expect(try migrator.status().pending.count == 2)
        try db.execute("DELETE FROM schema_migration_lock")
        try db.execute("INSERT INTO schema_migration_lock (id, holder, expires_at) VALUES (1, 'other-host:4242', UTC_TIMESTAMP(3) + INTERVAL 60 SECOND)")
        #expect(try migrator.status().lockHolder?.holder == "other-host:4242")
        do {
            _ = try migrator.migrate(holder: "this-host:1", waitSeconds: 0)
            Issue.record("migrated while another host held the lock")
        } catch let error as MigrationError {
            #expect(error.description.contains("other-host:4242"))
        }
        #expect(try migrator.status().pending.count == 2)  // nothing ran
        // Its holder died: once the expiry passed, the lock is free.
        try db.execute("UPDATE schema_migration_lock SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND")
        #expect(try migrator.migrate(holder: "this-host:1", waitSeconds: 0).count == 2)
        let after = try migrator.status()
        #expect(after.pending.isEmpty && after.applied.map(\.version) == ["9100_\(prefix).sql", "9200_\(prefix).sql"])
        #expect(after.lockHolder == nil)
        #expect(try db.query("SELECT COUNT(*) AS n FROM schema_migration_lock").first?.int("n") == 0)
    }

    @Test func aRunThatLostTheLockStopsBeforeItsNextStatement() throws {
        guard MariaDBScratch.socket != nil else { return }
        let db = MariaDBScratch.connection(to: MariaDBScratch.sweeps)
        let prefix = "mig_\(MediaID.random().rawValue.prefix(10))"
        let folder = "/tmp/cameo-\(prefix)"
        try FileSystem.makeDirectory(folder, mode: 0o700)
        // The first statement hands the lock to someone else, as an expiry during a long
        // statement would; the second must not run.
        let sql = "UPDATE schema_migration_lock SET holder = 'thief:1' WHERE id = 1;\nCREATE TABLE \(prefix) (id INT PRIMARY KEY);\n"
        try FileSystem.writeNew(Array(sql.utf8), to: "\(folder)/9000_\(prefix).sql")
        try db.execute("DELETE FROM schema_migration_lock")
        do {
            _ = try Migrator(db: db, directory: folder).migrate(holder: "this-host:2")
            Issue.record("went on after losing the lock")
        } catch let error as MigrationError {
            #expect(error.description.contains("lost the migration lock"))
        }
        #expect(try db.query("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_NAME = ?", [.text(prefix)]).first?.int("n") == 0)
        try db.execute("DELETE FROM schema_migration_lock")
    }

    /// Two hosts of a rolling upgrade, each on its own Galera node, migrate at once: each file
    /// is applied once, by one of them, and neither fails.
    @Test func twoHostsMigratingAtOnceOnTwoGaleraNodesApplyEachFileOnce() throws {
        guard GaleraTests.sockets.count == 2 else { return }
        precondition(GaleraTests.migrated)
        let (folder, prefix) = try Self.migrations(count: 3)
        let results = Mutex<[Int: Result<[String], any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: 2) { node in
            let migrator = Migrator(db: GaleraTests.connection(node: node), directory: folder)
            let result = Result { try migrator.migrate(holder: "host\(node):\(node)", waitSeconds: 30) }
            results.withLock { $0[node] = result }
        }
        let applied = try results.withLock { all in try (0..<2).map { try all[$0]!.get() } }
        #expect(applied.flatMap { $0 }.sorted() == (1...3).map { "9\($0)00_\(prefix).sql" })
        let check = GaleraTests.connection(node: 1)
        let recorded = try check.query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version LIKE ?", [.text("%\(prefix)%")])
        #expect(recorded.first?.int("n") == 3)
        for n in 1...3 { _ = try check.query("SELECT COUNT(*) FROM \(prefix)_\(n)") }
    }
}
