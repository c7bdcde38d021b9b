public import CameoCore
public import CameoSystem
public import MediaStore
import Synchronization

/// A `MediaStore` in memory, for tests: the same contract as `MariaDBMediaStore` (the shared
/// suite in Tests/MediaStoreTests runs against both), with time from a `TimeSource` so tests
/// can move it. Thread-safe: every call holds one lock.
public final class InMemoryMediaStore: MediaStore {
    struct Row {
        var record: MediaRecord
        var createdAt: Int
        var updatedAt: Int
        var isVirusScanned = false
        var scanSignature: String?
        var publication: Publication?
    }

    struct State {
        var rows: [MediaID: Row] = [:]
        var pointers: [String: (pointer: AvatarPointer, publishedAt: Int)] = [:]
        var revoked: [String: Int] = [:]
        var callbacks: [String: Int] = [:]
        var hits: [(userID: String, action: String, at: Int)] = []
        var events: [(id: MediaID, userID: String, at: Int)] = []
        var reachable = true
        var failing: MediaTransition?
        var goesDownAt: MediaTransition?
    }

    private let state = Mutex(State())
    private let clock: any TimeSource

    public init(clock: any TimeSource = SystemClock()) { self.clock = clock }

    /// Makes every call fail as an unreachable database would (and `isReachable` false).
    public func setReachable(_ reachable: Bool) { state.withLock { $0.reachable = reachable } }

    /// The database goes away when `transition` is next attempted: that call and every one
    /// after fail until `setReachable(true)`.
    public func goDown(atNext transition: MediaTransition) { state.withLock { $0.goesDownAt = transition } }

    private static func failIfTold(_ transition: MediaTransition, _ state: inout State) throws(StoreError) {
        if state.goesDownAt == transition {
            state.goesDownAt = nil
            state.reachable = false
        } else if state.failing != transition {
            return
        }
        throw StoreError("in-memory store told to fail \(transition)")
    }

    /// Makes every `apply` of `transition` fail as a database error would (nil: none).
    public func fail(_ transition: MediaTransition?) { state.withLock { $0.failing = transition } }

    /// `avatar_uploaded` events recorded, in order.
    public var events: [MediaID] { state.withLock { $0.events.map(\.id) } }

    /// Whether a scanner said clean or infected for the upload, and the signature it named.
    public func scanFacts(_ id: MediaID) -> (scanned: Bool, signature: String?)? {
        state.withLock { state in state.rows[id].map { ($0.isVirusScanned, $0.scanSignature) } }
    }

    /// Moves an upload's creation time (to make it look old to the sweeper).
    public func backdate(_ id: MediaID, by seconds: Int) {
        state.withLock {
            $0.rows[id]?.createdAt -= seconds
            $0.rows[id]?.updatedAt -= seconds
        }
    }

    private func locked<T>(_ body: (inout State) throws(StoreError) -> T) throws(StoreError) -> T {
        try state.withLock { (state: inout State) throws(StoreError) -> T in
            guard state.reachable else { throw StoreError("in-memory store set unreachable") }
            return try body(&state)
        }
    }

    public func createUpload(_ upload: NewUpload, unlessRevoked jti: String?, perMinute limit: Int) throws(StoreError) -> UploadAdmission {
        let now = clock.epochSeconds
        return try locked { state in
            if let jti, state.revoked[jti] != nil { return .revoked }
            let recent = state.rows.values.filter { $0.record.userID == upload.userID && $0.createdAt > now - 60 }
            if recent.count >= limit { return .rateLimited(retryAfter: max(1, 60 - (now - recent.map(\.createdAt).min()!))) }
            let open = state.rows.values.map(\.record).filter { $0.userID == upload.userID && $0.state == .receiving && $0.expiresAt > now }
            if upload.resumable, open.count >= upload.maxOpenPartials { return .tooManyPartials(retryAfter: max(1, open.map(\.expiresAt).min()! - now)) }
            state.rows[upload.id] = Row(
                record: MediaRecord(
                    id: upload.id, userID: upload.userID, state: upload.resumable ? .receiving : .pendingUpload, declaredType: upload.declaredType,
                    declaredBytes: upload.declaredBytes, crop: upload.crop, uploadOffset: upload.resumable ? 0 : nil, expiresAt: upload.expiresAt),
                createdAt: now, updatedAt: now)
            return .created
        }
    }

    public func media(id: MediaID) throws(StoreError) -> MediaRecord? { try locked { $0.rows[id]?.record } }

    public func apply(_ change: MediaChange, to id: MediaID, from: MediaState) throws(StoreError) -> Bool {
        precondition(change.transition.allows(from: from), "\(change.transition) does not start from \(from)")
        let now = clock.epochSeconds
        return try locked { (state: inout State) throws(StoreError) -> Bool in
            try Self.failIfTold(change.transition, &state)
            guard var row = state.rows[id], row.record.state == from else { return false }
            row.record.state = change.transition.to
            row.updatedAt = now
            switch change {
            case .claim, .startScan, .terminate: break
            case .awaitVerdict: row.record.nextScanAt = nil
            case .clean:
                row.isVirusScanned = true
                row.record.nextScanAt = nil
            case .infected(let signature):
                row.isVirusScanned = true
                row.scanSignature = String(signature.prefix(255))
                row.record.rejectReason = .infected
                row.record.nextScanAt = nil
            case .reject(let reason):
                row.record.rejectReason = reason
                row.record.nextScanAt = nil
            }
            state.rows[id] = row
            return true
        }
    }

    public func recordAppend(id: MediaID, at offset: Int, count: Int, now: Int) throws(StoreError) -> Bool {
        try locked { (state: inout State) throws(StoreError) -> Bool in
            try Self.failIfTold(.append, &state)
            guard var row = state.rows[id], row.record.state == .receiving, row.record.uploadOffset == offset,
                offset + count <= row.record.declaredBytes, row.record.expiresAt > now
            else { return false }
            row.record.uploadOffset = offset + count
            if offset + count == row.record.declaredBytes { row.record.state = .received }
            row.updatedAt = clock.epochSeconds
            state.rows[id] = row
            return true
        }
    }

    public func expirePartials(now: Int, limit: Int) throws(StoreError) -> [MediaID] {
        try locked { state in
            let due = state.rows.values.map(\.record).filter { $0.isExpiredPartial(at: now) }.sorted { $0.expiresAt < $1.expiresAt }.prefix(limit)
            for record in due {
                state.rows[record.id]?.record.state = .expired
                state.rows[record.id]?.updatedAt = clock.epochSeconds
            }
            return due.map(\.id)
        }
    }

    public func deferScan(id: MediaID, now: Int, baseSeconds: Int) throws(StoreError) -> Int? {
        try locked { (state: inout State) throws(StoreError) -> Int? in
            try Self.failIfTold(.deferScan, &state)
            guard var row = state.rows[id], row.record.state == .scanning else { return nil }
            row.record.scanAttempts += 1
            row.record.nextScanAt = now + baseSeconds * (1 << min(row.record.scanAttempts - 1, 16))
            row.updatedAt = clock.epochSeconds
            state.rows[id] = row
            return row.record.scanAttempts
        }
    }

    public func dueScans(now: Int, limit: Int) throws(StoreError) -> [MediaRecord] {
        try locked { state in
            Array(
                state.rows.values.map(\.record).filter { $0.state == .scanning && ($0.nextScanAt.map { $0 <= now } ?? false) }
                    .sorted { $0.nextScanAt! < $1.nextScanAt! }.prefix(limit))
        }
    }

    public func leaseScan(id: MediaID, dueAt: Int, until: Int) throws(StoreError) -> Bool {
        try locked { state in
            guard let row = state.rows[id], row.record.state == .scanning, row.record.nextScanAt == dueAt else { return false }
            state.rows[id]?.record.nextScanAt = until
            return true
        }
    }

    public func publish(_ publication: Publication) throws(StoreError) -> PublishOutcome {
        let now = clock.epochSeconds
        return try locked { state in
            let id = publication.pointer.mediaID
            guard var row = state.rows[id], row.record.state == .processing else { return .notProcessing }
            let replaced = state.pointers[publication.pointer.userID]?.pointer
            row.record.state = .ready
            row.record.cdnURL = publication.cdnURL
            row.publication = publication
            row.updatedAt = now
            state.rows[id] = row
            state.pointers[publication.pointer.userID] = (publication.pointer, now)
            if !state.events.contains(where: { $0.id == id }) { state.events.append((id, publication.pointer.userID, now)) }
            return .published(replacing: replaced)
        }
    }

    public func avatar(userID: String) throws(StoreError) -> AvatarPointer? { try locked { $0.pointers[userID]?.pointer } }

    public func deleteAvatar(userID: String) throws(StoreError) -> AvatarPointer? {
        try locked { state in state.pointers.removeValue(forKey: userID)?.pointer }
    }

    public func unpublish(userID: String, mediaID: MediaID, signature: String) throws(StoreError) -> Bool {
        try locked { state in
            guard state.pointers[userID]?.pointer.mediaID == mediaID else { return false }
            state.pointers[userID] = nil
            if state.rows[mediaID]?.record.state == .ready {
                state.rows[mediaID]?.record.state = .rejected
                state.rows[mediaID]?.record.rejectReason = .infected
                state.rows[mediaID]?.scanSignature = String(signature.prefix(255))
            }
            return true
        }
    }

    public func avatars(publishedSince since: Int) throws(StoreError) -> [AvatarPointer] {
        try locked { state in state.pointers.values.filter { $0.publishedAt >= since }.sorted { $0.publishedAt < $1.publishedAt }.map(\.pointer) }
    }

    public func isRevoked(jti: String) throws(StoreError) -> Bool { try locked { $0.revoked[jti] != nil } }

    public func firstUse(ofCallback signature: String, expiresAt: Int) throws(StoreError) -> Bool {
        try locked { state in
            guard state.callbacks[signature] == nil else { return false }
            state.callbacks[signature] = expiresAt
            return true
        }
    }

    public func hasSeenCallback(_ signature: String) throws(StoreError) -> Bool { try locked { $0.callbacks[signature] != nil } }

    public func unanswered(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> [MediaRecord] {
        try locked { state in
            Array(
                state.rows.values.filter { $0.record.state == .scanning && $0.record.nextScanAt == nil && $0.updatedAt < cutoff }
                    .sorted { $0.updatedAt < $1.updatedAt }.map(\.record).prefix(limit))
        }
    }

    public func revoke(jti: String, expiresAt: Int) throws(StoreError) { try locked { $0.revoked[jti] = expiresAt } }

    public func countHit(userID: String, action: String, perMinute limit: Int, now: Int) throws(StoreError) -> Int? {
        try locked { state in
            state.hits.removeAll { $0.userID == userID && $0.action == action && $0.at <= now - 60 }
            let window = state.hits.filter { $0.userID == userID && $0.action == action }
            if window.count >= limit { return max(1, window.map(\.at).min()! + 60 - now) }
            state.hits.append((userID, action, now))
            return nil
        }
    }

    public func expireUnused(createdBefore cutoff: Int) throws(StoreError) -> Int {
        try locked { state in
            var count = 0
            for (id, row) in state.rows where row.record.state == .pendingUpload && row.createdAt < cutoff {
                state.rows[id]?.record.state = .expired
                count += 1
            }
            return count
        }
    }

    public func rejectStale(untouchedSince cutoff: Int) throws(StoreError) -> Int {
        try locked { state in
            var count = 0
            for (id, row) in state.rows where MediaTransition.reject.allows(from: row.record.state) && row.updatedAt < cutoff {
                state.rows[id]?.record.state = .rejected
                state.rows[id]?.record.rejectReason = .scanFailed
                state.rows[id]?.record.nextScanAt = nil
                count += 1
            }
            return count
        }
    }

    public func purgeBookkeeping(now: Int) throws(StoreError) {
        try locked { state in
            state.revoked = state.revoked.filter { $0.value >= now }
            state.callbacks = state.callbacks.filter { $0.value >= now }
            state.hits.removeAll { $0.at < now - 3600 }
        }
    }

    public func eraseUser(_ userID: String) throws(StoreError) -> [MediaID] {
        try locked { state in
            let ids = state.rows.filter { $0.value.record.userID == userID }.map(\.key)
            for id in ids { state.rows[id] = nil }
            state.pointers[userID] = nil
            state.events.removeAll { $0.userID == userID }
            state.hits.removeAll { $0.userID == userID }
            return ids
        }
    }

    public func pruneFinished(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> Int {
        try locked { state in
            let current = Set(state.pointers.values.map(\.pointer.mediaID))
            let doomed = state.rows.filter { $0.value.record.state.isFinal && $0.value.updatedAt < cutoff && !current.contains($0.key) }.prefix(limit)
            for (id, _) in doomed { state.rows[id] = nil }
            return doomed.count
        }
    }

    public func pruneAnalytics(before cutoff: Int, limit: Int) throws(StoreError) -> Int {
        try locked { state in
            let doomed = state.events.enumerated().filter { $0.element.at < cutoff }.prefix(limit).map(\.offset)
            for offset in doomed.reversed() { state.events.remove(at: offset) }
            return doomed.count
        }
    }

    public func isReachable() -> Bool { state.withLock { $0.reachable } }
}
