public import CameoCore
public import CameoMetrics
public import MediaStore

/// The store, reporting every upload that reaches a final state to the metrics collector:
/// published (`ready`, with its processing time), rejected (with its reason) or expired.
/// Every final transition of every process (workers, the retrier, the sweeper, operator
/// commands) passes through the store, so wrapping it counts them all in one place.
public struct MeteredStore: MediaStore {
    let base: any MediaStore
    let metrics: any MetricsSink

    public init(_ base: any MediaStore, metrics: any MetricsSink) {
        self.base = base
        self.metrics = metrics
    }

    public func apply(_ change: MediaChange, to id: MediaID, from: MediaState) throws(StoreError) -> Bool {
        let applied = try base.apply(change, to: id, from: from)
        guard applied else { return false }
        switch change {
        case .reject(let reason): finished(.rejected, reason: reason)
        case .infected: finished(.rejected, reason: .infected)
        case .terminate: finished(.expired)
        case .claim, .startScan, .awaitVerdict, .clean: break
        }
        return true
    }

    public func publish(_ publication: Publication) throws(StoreError) -> PublishOutcome {
        let outcome = try base.publish(publication)
        if case .published = outcome {
            metrics.record(.processing(seconds: Double(publication.processingMilliseconds) / 1000))
            finished(.ready)
        }
        return outcome
    }

    public func expireUnused(createdBefore cutoff: Int) throws(StoreError) -> Int {
        let expired = try base.expireUnused(createdBefore: cutoff)
        finished(.expired, count: expired)
        return expired
    }

    public func expirePartials(now: Int, limit: Int) throws(StoreError) -> [MediaID] {
        let expired = try base.expirePartials(now: now, limit: limit)
        finished(.expired, count: expired.count)
        return expired
    }

    public func rejectStale(untouchedSince cutoff: Int) throws(StoreError) -> Int {
        let rejected = try base.rejectStale(untouchedSince: cutoff)
        finished(.rejected, reason: .scanFailed, count: rejected)
        return rejected
    }

    private func finished(_ state: MediaState, reason: RejectReason? = nil, count: Int = 1) {
        guard count > 0 else { return }
        metrics.record(.finished(state: state.rawValue, reason: reason?.rawValue, count: count))
    }

    // MARK: Passed through unchanged

    public func createUpload(_ upload: NewUpload, unlessRevoked jti: String?, perMinute limit: Int) throws(StoreError) -> UploadAdmission {
        try base.createUpload(upload, unlessRevoked: jti, perMinute: limit)
    }
    public func media(id: MediaID) throws(StoreError) -> MediaRecord? { try base.media(id: id) }
    public func recordAppend(id: MediaID, at offset: Int, count: Int, now: Int) throws(StoreError) -> Bool {
        try base.recordAppend(id: id, at: offset, count: count, now: now)
    }
    public func deferScan(id: MediaID, now: Int, baseSeconds: Int) throws(StoreError) -> Int? {
        try base.deferScan(id: id, now: now, baseSeconds: baseSeconds)
    }
    public func dueScans(now: Int, limit: Int) throws(StoreError) -> [MediaRecord] { try base.dueScans(now: now, limit: limit) }
    public func leaseScan(id: MediaID, dueAt: Int, until: Int) throws(StoreError) -> Bool { try base.leaseScan(id: id, dueAt: dueAt, until: until) }
    public func avatar(userID: String) throws(StoreError) -> AvatarPointer? { try base.avatar(userID: userID) }
    public func deleteAvatar(userID: String) throws(StoreError) -> AvatarPointer? { try base.deleteAvatar(userID: userID) }
    public func unpublish(userID: String, mediaID: MediaID, signature: String) throws(StoreError) -> Bool {
        try base.unpublish(userID: userID, mediaID: mediaID, signature: signature)
    }
    public func avatars(publishedSince since: Int) throws(StoreError) -> [AvatarPointer] { try base.avatars(publishedSince: since) }
    public func isRevoked(jti: String) throws(StoreError) -> Bool { try base.isRevoked(jti: jti) }
    public func revoke(jti: String, expiresAt: Int) throws(StoreError) { try base.revoke(jti: jti, expiresAt: expiresAt) }
    public func firstUse(ofCallback signature: String, expiresAt: Int) throws(StoreError) -> Bool {
        try base.firstUse(ofCallback: signature, expiresAt: expiresAt)
    }
    public func hasSeenCallback(_ signature: String) throws(StoreError) -> Bool { try base.hasSeenCallback(signature) }
    public func countHit(userID: String, action: String, perMinute limit: Int, now: Int) throws(StoreError) -> Int? {
        try base.countHit(userID: userID, action: action, perMinute: limit, now: now)
    }
    public func unanswered(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> [MediaRecord] {
        try base.unanswered(untouchedSince: cutoff, limit: limit)
    }
    public func purgeBookkeeping(now: Int) throws(StoreError) { try base.purgeBookkeeping(now: now) }
    public func eraseUser(_ userID: String) throws(StoreError) -> [MediaID] { try base.eraseUser(userID) }
    public func pruneFinished(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> Int {
        try base.pruneFinished(untouchedSince: cutoff, limit: limit)
    }
    public func pruneAnalytics(before cutoff: Int, limit: Int) throws(StoreError) -> Int { try base.pruneAnalytics(before: cutoff, limit: limit) }
    public func isReachable() -> Bool { base.isReachable() }
}
