import CameoCore
public import MariaDB

/// `media_files.state` (SPEC §3). The SQL names the same values in its guarded UPDATEs.
public enum MediaState: String, Sendable {
    case pendingUpload = "pending_upload"
    case received, scanning, processing, ready, rejected, expired
}

/// `media_files.reject_reason`: SPEC §3's reasons, plus `bad_crop` for a client crop that does
/// not fit the image.
public enum RejectReason: String, Sendable {
    case tooLarge = "too_large"
    case badType = "bad_type"
    case badDimensions = "bad_dimensions"
    case pixelBomb = "pixel_bomb"
    case corrupt
    case badCrop = "bad_crop"
    case infected
    case scanFailed = "scan_failed"
}

/// A `media_files` row as the handlers use it.
public struct MediaRecord: Sendable {
    public let id: String
    public let userID: String
    public let state: MediaState
    public let rejectReason: String?
    public let declaredType: String
    public let declaredBytes: Int
    public let crop: (x: Int, y: Int, size: Int)?
    public let cdnURL: String?

    init(row: Row) {
        id = row.string("id") ?? ""
        userID = row.string("user_id") ?? ""
        // The column is an ENUM of exactly these values.
        state = row.string("state").flatMap(MediaState.init(rawValue:)) ?? .rejected
        rejectReason = row.string("reject_reason")
        declaredType = row.string("declared_type") ?? ""
        declaredBytes = row.int("declared_bytes") ?? 0
        if let x = row.int("crop_x"), let y = row.int("crop_y"), let size = row.int("crop_size") {
            crop = (x, y, size)
        } else {
            crop = nil
        }
        cdnURL = row.string("cdn_url")
    }
}

/// What became of a request to start an upload.
public enum UploadAdmission: Sendable, Equatable {
    case created
    case revoked
    case rateLimited(retryAfter: Int)
}

/// The user's current avatar (`user_avatars`).
public struct AvatarRecord: Sendable {
    public let userID: String
    public let mediaID: String
    public let version: String
    public let sizes: [Int]
}

/// All SQL Cameo runs, each a prepared statement with bound parameters. State changes are
/// guarded UPDATEs (`WHERE state = <expected>`), so a replayed request cannot move a row
/// backwards or publish twice: the affected-row count says whether this caller won.
public struct MediaRepository {
    let db: Connection

    public init(db: Connection) { self.db = db }

    static let mediaColumns =
        "id, user_id, state, reject_reason, declared_type, declared_bytes, crop_x, crop_y, crop_size, cdn_url"

    /// A new upload's row: `pending_upload` for a presigned PUT, `received` for a direct
    /// multipart upload whose bytes are already here.
    public struct NewUpload {
        public var id: String
        public var userID: String
        public var state: MediaState
        public var declaredType: String
        public var declaredBytes: Int
        public var expiresAt: Int
        public var crop: (x: Int, y: Int, size: Int)?
    }

    /// Creates the row of a new upload unless the token that asked (`jti`) is revoked or the
    /// user already started `perMinute` uploads in the last minute. Both checks ride in the
    /// INSERT, so an upload costs one round trip; only a refusal pays a second one to say why.
    /// Concurrent requests can overshoot the per-minute limit by the number in flight; the
    /// nginx per-IP limit bounds that.
    public func createUpload(_ upload: NewUpload, unlessRevoked jti: String?, perMinute limit: Int) throws -> UploadAdmission {
        let created = try db.execute(
            """
            INSERT INTO media_files (id, user_id, state, declared_type, declared_bytes, upload_expires_at, crop_x, crop_y, crop_size)
            SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? FROM DUAL
            WHERE NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?)
              AND (SELECT COUNT(*) FROM media_files WHERE user_id = ? AND created_at > NOW(3) - INTERVAL 60 SECOND) < ?
            """,
            [
                .text(upload.id), .text(upload.userID), .text(upload.state.rawValue), .text(upload.declaredType), .int(upload.declaredBytes),
                .int(upload.expiresAt), upload.crop.map { .int($0.x) } ?? .null, upload.crop.map { .int($0.y) } ?? .null,
                upload.crop.map { .int($0.size) } ?? .null, .optional(jti), .text(upload.userID), .int(limit),
            ])
        if created == 1 { return .created }
        if let jti, try isRevoked(jti: jti) { return .revoked }
        let oldest = try db.query(
            """
            SELECT GREATEST(1, 60 - TIMESTAMPDIFF(SECOND, MIN(created_at), NOW(3))) AS retry_after
            FROM media_files WHERE user_id = ? AND created_at > NOW(3) - INTERVAL 60 SECOND
            """,
            [.text(upload.userID)])
        return .rateLimited(retryAfter: oldest.first?.int("retry_after") ?? 60)
    }

    /// Counts one `action` against the user's per-minute budget in `rate_limit_hits`; returns
    /// nil when allowed, or the seconds until the oldest hit in the window expires.
    public func rateLimitHit(userID: String, action: String, perMinute limit: Int, now: Int) throws -> Int? {
        try db.transaction {
            try db.execute(
                "DELETE FROM rate_limit_hits WHERE user_id = ? AND action = ? AND hit_at <= ?",
                [.text(userID), .text(action), .int(now - 60)])
            // FOR UPDATE locks the user's window, so concurrent hits are counted one by one.
            let window = try db.query(
                "SELECT COUNT(*) AS hits, MIN(hit_at) AS oldest FROM rate_limit_hits WHERE user_id = ? AND action = ? FOR UPDATE",
                [.text(userID), .text(action)])
            if let hits = window.first?.int("hits"), hits >= limit {
                return max(1, (window.first?.int("oldest") ?? now) + 60 - now)
            }
            try db.execute(
                "INSERT INTO rate_limit_hits (user_id, action, hit_at) VALUES (?, ?, ?)", [.text(userID), .text(action), .int(now)])
            return nil
        }
    }

    public func media(id: String) throws -> MediaRecord? {
        try db.query("SELECT \(Self.mediaColumns) FROM media_files WHERE id = ?", [.text(id)]).first.map(MediaRecord.init)
    }

    /// Moves a row from `from` to `to` only if it is still in `from`; true when this call did it.
    @discardableResult
    public func transition(id: String, from: MediaState, to: MediaState) throws -> Bool {
        try db.execute(
            "UPDATE media_files SET state = ? WHERE id = ? AND state = ?", [.text(to.rawValue), .text(id), .text(from.rawValue)]) == 1
    }

    /// Claims a pending upload for the body that just arrived: the single-use check.
    public func claimUpload(id: String, bytes: Int) throws -> Bool {
        try db.execute(
            "UPDATE media_files SET state = 'received', bytes = ? WHERE id = ? AND state = 'pending_upload'",
            [.int(bytes), .text(id)]) == 1
    }

    // MARK: Scanning (SPEC §3): every step a guarded UPDATE from `scanning`.

    /// A clean verdict: `scanning → processing`, `is_virus_scanned` set. False if the row had
    /// already moved on (a late or replayed verdict).
    public func markClean(id: String, scanMS: Int? = nil) throws -> Bool {
        try db.execute(
            """
            UPDATE media_files SET state = 'processing', is_virus_scanned = TRUE, next_scan_at = NULL, scan_ms = ?
            WHERE id = ? AND state = 'scanning'
            """,
            [scanMS.map { .int($0) } ?? .null, .text(id)]) == 1
    }

    /// An infected verdict: `scanning → rejected (infected)`, the signature recorded.
    public func markInfected(id: String, signature: String) throws -> Bool {
        try db.execute(
            """
            UPDATE media_files SET state = 'rejected', reject_reason = 'infected', is_virus_scanned = TRUE,
                scan_signature = ?, next_scan_at = NULL
            WHERE id = ? AND state = 'scanning'
            """,
            [.text(String(signature.prefix(255))), .text(id)]) == 1
    }

    /// No verdict: counts the attempt and schedules the next one `base × 2^(attempts-1)`
    /// seconds from now. Returns the number of attempts so far.
    public func deferScan(id: String, now: Int, baseSeconds: Int) throws -> Int {
        // MariaDB evaluates SET left to right, so the backoff sees the new attempt count.
        try db.execute(
            """
            UPDATE media_files SET scan_attempts = scan_attempts + 1,
                next_scan_at = ? + ? * POW(2, LEAST(scan_attempts - 1, 16))
            WHERE id = ? AND state = 'scanning'
            """,
            [.int(now), .int(baseSeconds), .text(id)])
        return try db.query("SELECT scan_attempts FROM media_files WHERE id = ?", [.text(id)]).first?.int("scan_attempts") ?? 0
    }

    /// The external scanner took the upload: no retry is scheduled while its verdict is awaited.
    public func awaitCallback(id: String) throws {
        try db.execute("UPDATE media_files SET next_scan_at = NULL WHERE id = ? AND state = 'scanning'", [.text(id)])
    }

    /// Uploads waiting for a scan whose retry is due, oldest first.
    public func dueScans(now: Int, limit: Int) throws -> [(media: MediaRecord, nextScanAt: Int)] {
        try db.query(
            """
            SELECT \(Self.mediaColumns), next_scan_at FROM media_files
            WHERE state = 'scanning' AND next_scan_at <= ? ORDER BY next_scan_at LIMIT ?
            """,
            [.int(now), .int(limit)]
        ).map { (MediaRecord(row: $0), $0.int("next_scan_at") ?? 0) }
    }

    /// Takes a due retry for `leaseSeconds`, so two retriers never scan the same upload at once.
    public func leaseScan(id: String, dueAt: Int, until: Int) throws -> Bool {
        try db.execute(
            "UPDATE media_files SET next_scan_at = ? WHERE id = ? AND state = 'scanning' AND next_scan_at = ?",
            [.int(until), .text(id), .int(dueAt)]) == 1
    }

    // MARK: Maintenance

    /// `pending_upload` rows older than the cutoff become `expired`; returns how many.
    public func expireUnused(olderThanSeconds seconds: Int) throws -> Int {
        try db.execute(
            "UPDATE media_files SET state = 'expired' WHERE state = 'pending_upload' AND created_at < NOW(3) - INTERVAL ? SECOND",
            [.int(seconds)])
    }

    /// Rejects an upload that never finished; true if there was one.
    public func rejectIfUnfinished(id: String, reason: RejectReason) throws -> Bool {
        try db.execute(
            "UPDATE media_files SET state = 'rejected', reject_reason = ?, next_scan_at = NULL WHERE id = ? AND state IN ('received', 'scanning', 'processing')",
            [.text(reason.rawValue), .text(id)]) == 1
    }

    /// Rejects an upload still waiting for a verdict (never one already being processed).
    public func rejectScanning(id: String, reason: RejectReason) throws {
        try db.execute(
            "UPDATE media_files SET state = 'rejected', reject_reason = ?, next_scan_at = NULL WHERE id = ? AND state = 'scanning'",
            [.text(reason.rawValue), .text(id)])
    }

    /// Uploads stuck unfinished (no step touched them since the cutoff) become
    /// `rejected (scan_failed)`; returns how many.
    public func rejectStale(olderThanSeconds seconds: Int) throws -> Int {
        try db.execute(
            """
            UPDATE media_files SET state = 'rejected', reject_reason = 'scan_failed', next_scan_at = NULL
            WHERE state IN ('received', 'scanning', 'processing') AND updated_at < NOW(3) - INTERVAL ? SECOND
            """,
            [.int(seconds)])
    }

    /// Forgets revocations of tokens that have expired anyway, and rate-limit hits older than
    /// the window.
    public func purgeExpiredBookkeeping(now: Int) throws {
        try db.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", [.int(now)])
        try db.execute("DELETE FROM rate_limit_hits WHERE hit_at < ?", [.int(now - 3600)])
    }

    /// Current avatars changed at or after `since` (epoch seconds).
    public func avatars(updatedSince since: Int) throws -> [AvatarRecord] {
        try db.query(
            "SELECT user_id, media_id, version, sizes FROM user_avatars WHERE updated_at >= FROM_UNIXTIME(?) ORDER BY updated_at",
            [.int(since)]
        ).map {
            AvatarRecord(
                userID: $0.string("user_id") ?? "", mediaID: $0.string("media_id") ?? "", version: $0.string("version") ?? "",
                sizes: ($0.string("sizes") ?? "").split(separator: ",").compactMap { Int($0) })
        }
    }

    /// Takes a published avatar down after a rescan detected it, in one transaction; false if
    /// the user's avatar had changed meanwhile.
    public func unpublish(userID: String, mediaID: String, signature: String) throws -> Bool {
        try db.transaction {
            guard try db.execute("DELETE FROM user_avatars WHERE user_id = ? AND media_id = ?", [.text(userID), .text(mediaID)]) == 1 else {
                return false
            }
            try db.execute(
                "UPDATE media_files SET state = 'rejected', reject_reason = 'infected', scan_signature = ? WHERE id = ?",
                [.text(String(signature.prefix(255))), .text(mediaID)])
            return true
        }
    }

    /// Marks an upload rejected, from whichever non-final state it is in.
    public func reject(id: String, reason: RejectReason) throws {
        try db.execute(
            "UPDATE media_files SET state = 'rejected', reject_reason = ? WHERE id = ? AND state IN ('pending_upload', 'received', 'scanning', 'processing')",
            [.text(reason.rawValue), .text(id)])
    }

    /// Publishes in one transaction: the media row becomes `ready`, the user's avatar pointer
    /// moves to it and the `avatar_uploaded` event is recorded. Returns false (and changes
    /// nothing) if the row was no longer `processing`.
    /// What the pipeline learnt about the upload itself, stored with the publish.
    public struct SourceFacts {
        public var mime: String
        public var width: Int
        public var height: Int
        public var bytes: Int
        public var sha256: String
    }

    public func publish(
        media: MediaRecord, version: String, sizes: [Int], cdnURL: String, source: SourceFacts, processingMS: Int
    ) throws -> Bool {
        try db.transaction {
            let moved = try db.execute(
                """
                UPDATE media_files SET state = 'ready', cdn_url = ?, processing_ms = ?,
                    sniffed_type = ?, width = ?, height = ?, sha256 = ?
                WHERE id = ? AND state = 'processing'
                """,
                [
                    .text(cdnURL), .int(processingMS), .text(source.mime), .int(source.width), .int(source.height),
                    .text(source.sha256), .text(media.id),
                ])
            guard moved == 1 else { return false }
            try db.execute(
                """
                INSERT INTO user_avatars (user_id, media_id, version, sizes) VALUES (?, ?, ?, ?)
                ON DUPLICATE KEY UPDATE media_id = VALUES(media_id), version = VALUES(version), sizes = VALUES(sizes)
                """,
                [.text(media.userID), .text(media.id), .text(version), .text(sizes.map(String.init).joined(separator: ","))])
            try db.execute(
                """
                INSERT IGNORE INTO analytics_events (event, user_id, media_id, bytes, mime, processing_time_ms)
                VALUES ('avatar_uploaded', ?, ?, ?, ?, ?)
                """,
                [.text(media.userID), .text(media.id), .int(source.bytes), .text(source.mime), .int(processingMS)])
            return true
        }
    }

    /// Runs `body` holding the user's avatar lock (a MariaDB named lock, released when `body`
    /// ends or the connection drops). Waits up to 10 s, then reports the database as busy.
    public func withAvatarLock<T>(userID: String, _ body: () throws -> T) throws -> T {
        // Named locks are at most 64 characters; a shared prefix of two ids only serialises them.
        let name = "cameo.avatar." + String(userID.prefix(51))
        guard try db.query("SELECT GET_LOCK(?, 10) AS acquired", [.text(name)]).first?.int("acquired") == 1 else {
            throw DatabaseError.server(code: 0, sqlState: "HY000", message: "avatar lock of \(userID) not acquired in 10 s")
        }
        defer { _ = try? db.query("SELECT RELEASE_LOCK(?) AS released", [.text(name)]) }
        return try body()
    }

    public func avatar(userID: String) throws -> AvatarRecord? {
        guard let row = try db.query("SELECT user_id, media_id, version, sizes FROM user_avatars WHERE user_id = ?", [.text(userID)]).first
        else { return nil }
        return AvatarRecord(
            userID: row.string("user_id") ?? userID, mediaID: row.string("media_id") ?? "", version: row.string("version") ?? "",
            sizes: (row.string("sizes") ?? "").split(separator: ",").compactMap { Int($0) })
    }

    /// Removes the avatar pointer; true when there was one.
    public func deleteAvatar(userID: String) throws -> Bool {
        try db.execute("DELETE FROM user_avatars WHERE user_id = ?", [.text(userID)]) == 1
    }

    public func isRevoked(jti: String) throws -> Bool {
        try !db.query("SELECT 1 AS revoked FROM revoked_tokens WHERE jti = ?", [.text(jti)]).isEmpty
    }

    public func revoke(jti: String, expiresAt: Int) throws {
        try db.execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)",
            [.text(jti), .int(expiresAt)])
    }
}
