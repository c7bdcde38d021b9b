public import CameoCore
public import MariaDB
public import MediaStore

extension ConnectOptions {
    /// The connection the configuration names: its unix socket when set (MariaDB then listens
    /// on no TCP port), else host and port.
    public init(_ settings: Config.DatabaseSettings) {
        self.init(
            unixSocket: settings.socket, host: settings.host, port: UInt32(settings.port), user: settings.user,
            password: settings.password, database: settings.name)
    }
}

/// The `MediaStore` on MariaDB (and on a MariaDB Galera cluster). Every statement is prepared
/// and binds its values, states and reasons included: no SQL text is built from data.
///
/// One instance per worker process, over that process's one connection; not shared between
/// threads.
public final class MariaDBMediaStore: MediaStore, @unchecked Sendable {
    // @unchecked: a worker is single-threaded and owns its connection (see Connection).
    private let db: Connection

    public init(connection: Connection) { db = connection }

    public convenience init(_ settings: Config.DatabaseSettings) { self.init(connection: Connection(options: ConnectOptions(settings))) }

    static let mediaColumns =
        "id, user_id, state, reject_reason, declared_type, declared_bytes, crop_x, crop_y, crop_size, cdn_url, scan_attempts, next_scan_at, upload_offset, upload_expires_at"
    static let pointerColumns = "user_id, media_id, version, sizes"

    // MARK: Uploads

    public func createUpload(_ upload: NewUpload, unlessRevoked jti: String?, perMinute limit: Int) throws(StoreError) -> UploadAdmission {
        try storing {
            // Every refusal rides in the INSERT (a revoked token, the per-minute limit, a resumable
            // upload's open partials), so an upload costs one round trip; only a refusal pays
            // more to say why. Concurrent requests can overshoot the per-minute
            // limit by the number in flight; nginx's per-IP limit bounds that.
            let created = try db.execute(
                """
                INSERT INTO media_files (id, user_id, state, declared_type, declared_bytes, upload_offset, upload_expires_at, crop_x, crop_y, crop_size)
                SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM DUAL
                WHERE NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?)
                  AND (SELECT COUNT(*) FROM media_files WHERE user_id = ? AND created_at > NOW(3) - INTERVAL 60 SECOND) < ?
                  AND (? OR (SELECT COUNT(*) FROM media_files WHERE user_id = ? AND state = ? AND upload_expires_at > UNIX_TIMESTAMP()) < ?)
                """,
                [
                    .text(upload.id.rawValue), .text(upload.userID), .state(upload.resumable ? .receiving : .pendingUpload), .text(upload.declaredType),
                    .int(upload.declaredBytes), upload.resumable ? .int(0) : .null, .int(upload.expiresAt), .optionalInt(upload.crop?.x), .optionalInt(upload.crop?.y),
                    .optionalInt(upload.crop?.size), .optional(jti), .text(upload.userID), .int(limit),
                    .int(upload.resumable ? 0 : 1), .text(upload.userID), .state(.receiving), .int(min(upload.maxOpenPartials, 1 << 30)),
                ])
            if created == 1 { return .created }
            if let jti, try isRevokedRow(jti: jti) { return .revoked }
            let window = try db.query(
                """
                SELECT COUNT(*) AS recent, GREATEST(1, 60 - TIMESTAMPDIFF(SECOND, MIN(created_at), NOW(3))) AS retry_after
                FROM media_files WHERE user_id = ? AND created_at > NOW(3) - INTERVAL 60 SECOND
                """,
                [.text(upload.userID)])
            if upload.resumable, (window.first?.int("recent") ?? 0) < limit {
                // Within the per-minute limit, so the open partial uploads refused it.
                let open = try db.query(
                    "SELECT GREATEST(1, MIN(upload_expires_at) - UNIX_TIMESTAMP()) AS retry_after FROM media_files WHERE user_id = ? AND state = ? AND upload_expires_at > UNIX_TIMESTAMP()",
                    [.text(upload.userID), .state(.receiving)])
                return .tooManyPartials(retryAfter: open.first?.int("retry_after") ?? 60)
            }
            return .rateLimited(retryAfter: window.first?.int("retry_after") ?? 60)
        }
    }

    public func media(id: MediaID) throws(StoreError) -> MediaRecord? {
        try storing { try db.query("SELECT \(Self.mediaColumns) FROM media_files WHERE id = ?", [.text(id.rawValue)]).first.flatMap(Self.record) }
    }

    public func apply(_ change: MediaChange, to id: MediaID, from: MediaState) throws(StoreError) -> Bool {
        precondition(change.transition.allows(from: from), "\(change.transition) does not start from \(from)")
        let to = change.transition.to
        return try storing {
            let guardValues: [DatabaseValue] = [.text(id.rawValue), .state(from)]
            switch change {
            case .claim(let bytes):
                return try db.execute("UPDATE media_files SET state = ?, \(Self.recordState), bytes = ? WHERE id = ? AND state = ?", [.state(to), .int(bytes)] + guardValues) == 1
            case .startScan, .terminate:
                return try db.execute("UPDATE media_files SET state = ?, \(Self.recordState) WHERE id = ? AND state = ?", [.state(to)] + guardValues) == 1
            case .awaitVerdict:
                return try db.execute("UPDATE media_files SET next_scan_at = NULL WHERE id = ? AND state = ?", guardValues) == 1
            case .clean(let milliseconds):
                return try db.execute(
                    "UPDATE media_files SET state = ?, \(Self.recordState), is_virus_scanned = TRUE, next_scan_at = NULL, scan_ms = ? WHERE id = ? AND state = ?",
                    [.state(to), .optionalInt(milliseconds)] + guardValues) == 1
            case .infected(let signature):
                return try db.execute(
                    """
                    UPDATE media_files SET state = ?, \(Self.recordState), reject_reason = ?, is_virus_scanned = TRUE, scan_signature = ?, next_scan_at = NULL
                    WHERE id = ? AND state = ?
                    """,
                    [.state(to), .reason(.infected), .text(String(signature.prefix(255)))] + guardValues) == 1
            case .reject(let reason):
                return try db.execute(
                    "UPDATE media_files SET state = ?, \(Self.recordState), reject_reason = ?, next_scan_at = NULL WHERE id = ? AND state = ?",
                    [.state(to), .reason(reason)] + guardValues) == 1
            }
        }
    }

    public func recordAppend(id: MediaID, at offset: Int, count: Int, now: Int) throws(StoreError) -> Bool {
        try storing {
            // One statement, so the offset and (with the last byte) the claim are one change. The
            // guard pins the old offset, so every clause reads the completion from the bound
            // values (`? + ? = declared_bytes`), whatever order the server assigns in.
            let completes = "? + ? = declared_bytes"
            let completion: [DatabaseValue] = [.int(offset), .int(count)]
            return try db.execute(
                """
                UPDATE media_files
                SET state_history = IF(\(completes), \(Self.history(adding: "?")), state_history),
                    bytes = IF(\(completes), declared_bytes, bytes),
                    state = IF(\(completes), ?, state),
                    upload_offset = ? + ?
                WHERE id = ? AND state = ? AND upload_offset = ? AND ? + ? <= declared_bytes AND upload_expires_at > ?
                """,
                completion + [.state(MediaTransition.claim.to)] + completion + completion + [.state(MediaTransition.claim.to)] + completion
                    + [.text(id.rawValue), .state(MediaTransition.append.from[0]), .int(offset)] + completion + [.int(now)]) == 1
        }
    }

    public func expirePartials(now: Int, limit: Int) throws(StoreError) -> [MediaID] {
        try storing {
            let due = try db.query(
                "SELECT id FROM media_files WHERE state = ? AND upload_expires_at <= ? ORDER BY upload_expires_at LIMIT ?",
                [.state(.receiving), .int(now), .int(limit)]
            ).compactMap { $0.string("id").flatMap(MediaID.init) }
            // Each guarded on its own: a last append that commits first keeps its upload.
            return try due.filter { id in
                try db.execute(
                    "UPDATE media_files SET state = ?, \(Self.recordState) WHERE id = ? AND state = ? AND upload_expires_at <= ?",
                    [.state(MediaTransition.expire.to), .text(id.rawValue), .state(.receiving), .int(now)]) == 1
            }
        }
    }

    public func deferScan(id: MediaID, now: Int, baseSeconds: Int) throws(StoreError) -> Int? {
        try storing {
            // MariaDB evaluates SET left to right, so the backoff sees the new attempt count.
            let moved = try db.execute(
                """
                UPDATE media_files SET scan_attempts = scan_attempts + 1, next_scan_at = ? + ? * POW(2, LEAST(scan_attempts - 1, 16))
                WHERE id = ? AND state = ?
                """,
                [.int(now), .int(baseSeconds), .text(id.rawValue), .state(MediaTransition.deferScan.from[0])])
            guard moved == 1 else { return nil }
            return try db.query("SELECT scan_attempts FROM media_files WHERE id = ?", [.text(id.rawValue)]).first?.int("scan_attempts")
        }
    }

    public func dueScans(now: Int, limit: Int) throws(StoreError) -> [MediaRecord] {
        try storing {
            try db.query(
                "SELECT \(Self.mediaColumns) FROM media_files WHERE state = ? AND next_scan_at <= ? ORDER BY next_scan_at LIMIT ?",
                [.state(.scanning), .int(now), .int(limit)]
            ).compactMap(Self.record)
        }
    }

    public func leaseScan(id: MediaID, dueAt: Int, until: Int) throws(StoreError) -> Bool {
        try storing {
            try db.execute(
                "UPDATE media_files SET next_scan_at = ? WHERE id = ? AND state = ? AND next_scan_at = ?",
                [.int(until), .text(id.rawValue), .state(MediaTransition.leaseScan.from[0]), .int(dueAt)]) == 1
        }
    }

    public func publish(_ publication: Publication) throws(StoreError) -> PublishOutcome {
        let pointer = publication.pointer
        return try storing {
            try db.transaction {
                let moved = try db.execute(
                    """
                    UPDATE media_files SET state = ?, \(Self.recordState), cdn_url = ?, processing_ms = ?, sniffed_type = ?, width = ?, height = ?, sha256 = ?
                    WHERE id = ? AND state = ?
                    """,
                    [
                        .state(MediaTransition.publish.to), .text(publication.cdnURL), .int(publication.processingMilliseconds),
                        .text(publication.source.mime), .int(publication.source.width), .int(publication.source.height),
                        .text(publication.source.sha256), .text(pointer.mediaID.rawValue), .state(MediaTransition.publish.from[0]),
                    ])
                guard moved == 1 else { return PublishOutcome.notProcessing }
                let current = try currentPointer(userID: pointer.userID)
                try movePointer(userID: pointer.userID, from: current, to: pointer)
                try db.execute(
                    """
                    INSERT IGNORE INTO analytics_events (event, user_id, media_id, bytes, mime, processing_time_ms)
                    VALUES ('avatar_uploaded', ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(pointer.userID), .text(pointer.mediaID.rawValue), .int(publication.source.bytes), .text(publication.source.mime),
                        .int(publication.processingMilliseconds),
                    ])
                return .published(replacing: current?.pointer)
            }
        }
    }

    // MARK: Avatars

    public func avatar(userID: String) throws(StoreError) -> AvatarPointer? {
        try storing { try currentPointer(userID: userID)?.pointer }
    }

    public func deleteAvatar(userID: String) throws(StoreError) -> AvatarPointer? {
        try storing {
            try db.transaction {
                guard let current = try currentPointer(userID: userID), let pointer = current.pointer else { return nil }
                try movePointer(userID: userID, from: current, to: nil)
                return pointer
            }
        }
    }

    public func unpublish(userID: String, mediaID: MediaID, signature: String) throws(StoreError) -> Bool {
        try storing {
            try db.transaction {
                // The generation read here guards the change: a publish in between makes it a
                // conflict, and the rerun finds another avatar and takes nothing down.
                guard let current = try currentPointer(userID: userID), current.pointer?.mediaID == mediaID else { return false }
                try movePointer(userID: userID, from: current, to: nil)
                try db.execute(
                    "UPDATE media_files SET state = ?, \(Self.recordState), reject_reason = ?, scan_signature = ? WHERE id = ? AND state = ?",
                    [
                        .state(MediaTransition.unpublish.to), .reason(.infected), .text(String(signature.prefix(255))), .text(mediaID.rawValue),
                        .state(MediaTransition.unpublish.from[0]),
                    ])
                return true
            }
        }
    }

    public func avatars(publishedSince since: Int) throws(StoreError) -> [AvatarPointer] {
        try storing {
            try db.query(
                "SELECT \(Self.pointerColumns) FROM user_avatars WHERE updated_at >= FROM_UNIXTIME(?) ORDER BY updated_at",
                [.int(since)]
            ).compactMap(Self.pointer)
        }
    }

    /// The pointer row and its generation.
    private func currentPointer(userID: String) throws -> (generation: Int, pointer: AvatarPointer?)? {
        guard let row = try db.query("SELECT \(Self.pointerColumns), generation FROM user_avatars WHERE user_id = ?", [.text(userID)]).first
        else { return nil }
        return (row.int("generation") ?? 0, Self.pointer(row))
    }

    /// Points the user's avatar at `target` (nil: none, the row goes) as a versioned update,
    /// inside the caller's transaction: `current` is the row as the caller read it, and it is
    /// changed or deleted only if it still has that generation and media id (a deleted and
    /// re-created row starts its generation again; a media id is published only once). Losing
    /// that race (a concurrent writer on this node), or a duplicate first row, throws
    /// `TransactionConflict` and the transaction runs again; on a Galera cluster the loser
    /// learns it at COMMIT (1213), with the same effect.
    private func movePointer(userID: String, from current: (generation: Int, pointer: AvatarPointer?)?, to target: AvatarPointer?) throws {
        guard let target else {
            guard let current else { return }
            let deleted = try db.execute(
                "DELETE FROM user_avatars WHERE user_id = ? AND generation = ? AND media_id = ?",
                [.text(userID), .int(current.generation), .optional(current.pointer?.mediaID.rawValue)])
            guard deleted == 1 else { throw TransactionConflict("avatar pointer of \(userID)") }
            return
        }
        let values: [DatabaseValue] = [.text(target.mediaID.rawValue), .text(target.version), .text(target.sizes.map(String.init).joined(separator: ","))]
        guard let current else {
            do throws(DatabaseError) {
                try db.execute("INSERT INTO user_avatars (user_id, media_id, version, sizes, generation) VALUES (?, ?, ?, ?, 1)", [.text(userID)] + values)
            } catch {
                // Another first publish of this user committed in between.
                guard error.isDuplicateKey else { throw error }
                throw TransactionConflict("first avatar of \(userID)")
            }
            return
        }
        let moved = try db.execute(
            "UPDATE user_avatars SET media_id = ?, version = ?, sizes = ?, generation = generation + 1 WHERE user_id = ? AND generation = ? AND media_id = ?",
            values + [.text(userID), .int(current.generation), .optional(current.pointer?.mediaID.rawValue)])
        guard moved == 1 else { throw TransactionConflict("avatar pointer of \(userID)") }
    }

    // MARK: Tokens and limits

    public func isRevoked(jti: String) throws(StoreError) -> Bool { try storing { try isRevokedRow(jti: jti) } }

    private func isRevokedRow(jti: String) throws -> Bool {
        try !db.query("SELECT 1 AS revoked FROM revoked_tokens WHERE jti = ?", [.text(jti)]).isEmpty
    }

    public func revoke(jti: String, expiresAt: Int) throws(StoreError) {
        try storing {
            try db.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)",
                [.text(jti), .int(expiresAt)])
        }
    }

    public func firstUse(ofCallback signature: String, expiresAt: Int) throws(StoreError) -> Bool {
        try storing {
            try db.execute("INSERT IGNORE INTO callback_replays (signature, expires_at) VALUES (?, ?)", [.text(signature), .int(expiresAt)]) == 1
        }
    }

    public func hasSeenCallback(_ signature: String) throws(StoreError) -> Bool {
        try storing { try !db.query("SELECT 1 AS seen FROM callback_replays WHERE signature = ?", [.text(signature)]).isEmpty }
    }

    public func countHit(userID: String, action: String, perMinute limit: Int, now: Int) throws(StoreError) -> Int? {
        try storing {
            try db.transaction {
                try db.execute(
                    "DELETE FROM rate_limit_hits WHERE user_id = ? AND action = ? AND hit_at <= ?", [.text(userID), .text(action), .int(now - 60)])
                // FOR UPDATE counts concurrent hits one by one on one server; across Galera nodes
                // it does not block, so the limit may overshoot by the nodes' concurrency.
                let window = try db.query(
                    "SELECT COUNT(*) AS hits, MIN(hit_at) AS oldest FROM rate_limit_hits WHERE user_id = ? AND action = ? FOR UPDATE",
                    [.text(userID), .text(action)])
                if let hits = window.first?.int("hits"), hits >= limit {
                    return max(1, (window.first?.int("oldest") ?? now) + 60 - now)
                }
                try db.execute("INSERT INTO rate_limit_hits (user_id, action, hit_at) VALUES (?, ?, ?)", [.text(userID), .text(action), .int(now)])
                return nil
            }
        }
    }

    // MARK: Maintenance

    public func expireUnused(createdBefore cutoff: Int) throws(StoreError) -> Int {
        try storing {
            try db.execute(
                "UPDATE media_files SET state = ?, \(Self.recordState) WHERE state = ? AND created_at < FROM_UNIXTIME(?)",
                [.state(MediaTransition.expire.to), .state(MediaTransition.expire.from[0]), .int(cutoff)])
        }
    }

    public func rejectStale(untouchedSince cutoff: Int) throws(StoreError) -> Int {
        let from = MediaTransition.reject.from
        return try storing {
            try db.execute(
                """
                UPDATE media_files SET state = ?, \(Self.recordState), reject_reason = ?, next_scan_at = NULL
                WHERE state IN (\(Array(repeating: "?", count: from.count).joined(separator: ", "))) AND updated_at < FROM_UNIXTIME(?)
                """,
                [.state(MediaTransition.reject.to), .reason(.scanFailed)] + from.map { .state($0) } + [.int(cutoff)])
        }
    }

    public func unanswered(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> [MediaRecord] {
        try storing {
            try db.query(
                """
                SELECT \(Self.mediaColumns) FROM media_files
                WHERE state = ? AND next_scan_at IS NULL AND updated_at < FROM_UNIXTIME(?) ORDER BY updated_at LIMIT ?
                """,
                [.state(.scanning), .int(cutoff), .int(limit)]
            ).compactMap(Self.record)
        }
    }

    /// Appended to every SET that changes `state` (sql/0006): MariaDB assigns left to right, so
    /// `state` here is the new one.
    static let recordState = "state_history = \(history(adding: "state"))"

    /// `state_history` with `state@now` appended, `state` a SQL expression (the column, or a
    /// placeholder).
    static func history(adding state: String) -> String {
        "LEFT(CONCAT_WS(' ', state_history, CONCAT(\(state), '@', DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%dT%H:%i:%sZ'))), 1024)"
    }

    // MARK: Operators (cameoctl), beyond the pipeline's contract

    /// Every column an operator asks about, in this order, for `show-media` and `stuck`.
    public static let operatorColumns = [
        "id", "user_id", "state", "state_history", "reject_reason", "declared_type", "declared_bytes", "sniffed_type", "bytes", "width", "height", "sha256",
        "is_virus_scanned", "scan_signature", "upload_offset", "scan_attempts", "next_scan_at", "scan_ms", "processing_ms", "crop_x", "crop_y", "crop_size",
        "cdn_url", "upload_expires_at", "created_at", "updated_at",
    ]

    private static let operatorSelect = operatorColumns.map { "CAST(\($0) AS CHAR) AS \($0)" }.joined(separator: ", ")

    private static func operatorRow(_ row: Row) -> [(column: String, value: String?)] {
        operatorColumns.map { (column: $0, value: row.string($0)) }
    }

    /// One upload's every column (NULL as nil), or nil when there is none.
    public func operatorView(id: MediaID) throws(StoreError) -> [(column: String, value: String?)]? {
        try storing {
            try db.query("SELECT \(Self.operatorSelect) FROM media_files WHERE id = ?", [.text(id.rawValue)]).first.map(Self.operatorRow)
        }
    }

    /// Uploads in a state that is not final, untouched since `cutoff` (epoch seconds), oldest
    /// first: what `cameoctl stuck` lists.
    public func unfinished(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> [[(column: String, value: String?)]] {
        let open = MediaState.allCases.filter { !$0.isFinal }
        return try storing {
            try db.query(
                """
                SELECT \(Self.operatorSelect) FROM media_files
                WHERE state IN (\(Array(repeating: "?", count: open.count).joined(separator: ", "))) AND updated_at < FROM_UNIXTIME(?)
                ORDER BY updated_at LIMIT ?
                """,
                open.map { .state($0) } + [.int(cutoff), .int(limit)]
            ).map(Self.operatorRow)
        }
    }

    public func purgeBookkeeping(now: Int) throws(StoreError) {
        try storing {
            try db.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", [.int(now)])
            try db.execute("DELETE FROM callback_replays WHERE expires_at < ?", [.int(now)])
            try db.execute("DELETE FROM rate_limit_hits WHERE hit_at < ?", [.int(now - 3600)])
        }
    }

    // MARK: Retention and erasure

    public func eraseUser(_ userID: String) throws(StoreError) -> [MediaID] {
        try storing {
            try db.transaction {
                let ids = try db.query("SELECT id FROM media_files WHERE user_id = ?", [.text(userID)]).compactMap { $0.string("id").flatMap(MediaID.init) }
                for table in ["analytics_events", "rate_limit_hits", "user_avatars", "media_files"] {
                    // The table names are ours; the user id is bound.
                    try db.execute("DELETE FROM \(table) WHERE user_id = ?", [.text(userID)])
                }
                return ids
            }
        }
    }

    public func pruneFinished(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> Int {
        let finished = MediaState.allCases.filter(\.isFinal)
        return try storing {
            // In batches (`limit`): one small write set at a time replicates well on Galera.
            try db.execute(
                """
                DELETE FROM media_files
                WHERE state IN (\(Array(repeating: "?", count: finished.count).joined(separator: ", "))) AND updated_at < FROM_UNIXTIME(?)
                  AND id NOT IN (SELECT media_id FROM user_avatars)
                LIMIT ?
                """,
                finished.map { .state($0) } + [.int(cutoff), .int(limit)])
        }
    }

    public func pruneAnalytics(before cutoff: Int, limit: Int) throws(StoreError) -> Int {
        try storing { try db.execute("DELETE FROM analytics_events WHERE created_at < FROM_UNIXTIME(?) LIMIT ?", [.int(cutoff), .int(limit)]) }
    }

    public func isReachable() -> Bool { db.ping() }

    // MARK: Rows

    /// Runs database work and reports any failure as the store's error (the log keeps the
    /// server's text; the client gets a 503).
    private func storing<T>(_ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch {
            throw StoreError("\(error)")
        }
    }

    static func record(_ row: Row) -> MediaRecord? {
        guard let id = row.string("id").flatMap(MediaID.init), let state = row.string("state").flatMap(MediaState.init(rawValue:)) else {
            return nil
        }
        var crop: Crop? = nil
        if let x = row.int("crop_x"), let y = row.int("crop_y"), let size = row.int("crop_size") { crop = Crop(x: x, y: y, size: size) }
        return MediaRecord(
            id: id, userID: row.string("user_id") ?? "", state: state, rejectReason: row.string("reject_reason").flatMap(RejectReason.init(rawValue:)),
            declaredType: row.string("declared_type") ?? "", declaredBytes: row.int("declared_bytes") ?? 0, crop: crop,
            cdnURL: row.string("cdn_url"), scanAttempts: row.int("scan_attempts") ?? 0, nextScanAt: row.int("next_scan_at"),
            uploadOffset: row.int("upload_offset"), expiresAt: row.int("upload_expires_at") ?? 0)
    }

    static func pointer(_ row: Row) -> AvatarPointer? {
        guard let mediaID = row.string("media_id").flatMap(MediaID.init), let version = row.string("version") else { return nil }
        return AvatarPointer(
            userID: row.string("user_id") ?? "", mediaID: mediaID, version: version,
            sizes: (row.string("sizes") ?? "").split(separator: ",").compactMap { Int($0) })
    }
}

extension DatabaseValue {
    static func state(_ state: MediaState) -> DatabaseValue { .text(state.rawValue) }
    static func reason(_ reason: RejectReason) -> DatabaseValue { .text(reason.rawValue) }
    static func optionalInt(_ value: Int?) -> DatabaseValue { value.map { .int($0) } ?? .null }
}
