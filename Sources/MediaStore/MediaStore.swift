public import CameoCore

/// The store failed (unreachable, or a statement it could not run): the request gets 503. The
/// description is for the log only.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything Cameo keeps about uploads, avatars, revoked tokens and per-user limits: the one
/// seam between the service and its database. `MariaDBMediaStore` is the production one; the
/// tests run the same contract suite against it and an in-memory one.
///
/// Every state change is guarded: it happens only if the record is still in the state the
/// caller saw (`from`), and says whether it did. Publishing and deleting an avatar are
/// versioned updates of the user's pointer that stay correct on a multi-primary cluster
/// (Galera): no named locks, and a transaction that loses a conflict runs again whole.
public protocol MediaStore: Sendable {
    // MARK: Uploads

    /// Creates the row of a new upload (`pending_upload`, or `receiving` when resumable) unless the token that asked (`jti`)
    /// is revoked or the user started `perMinute` uploads in the last minute.
    func createUpload(_ upload: NewUpload, unlessRevoked jti: String?, perMinute limit: Int) throws(StoreError) -> UploadAdmission

    func media(id: MediaID) throws(StoreError) -> MediaRecord?

    /// Applies `change` if the record is still in `from` (which the transition must allow);
    /// false when it was not: someone else moved it first.
    func apply(_ change: MediaChange, to id: MediaID, from: MediaState) throws(StoreError) -> Bool

    /// `append` (or, with the last byte, `claim`): a resumable upload's offset moves from
    /// `offset` to `offset + count`, if the record is still `receiving` at exactly `offset` and
    /// its `Upload-Expires` is after `now`; false otherwise (another append won, it expired or
    /// was terminated). When the new offset is the declared length, the record becomes
    /// `received` with its bytes counted, in the same statement.
    func recordAppend(id: MediaID, at offset: Int, count: Int, now: Int) throws(StoreError) -> Bool

    /// `expire`: resumable uploads still `receiving` whose `Upload-Expires` is at or before
    /// `now`; returns their ids (their partial files are the caller's to remove).
    func expirePartials(now: Int, limit: Int) throws(StoreError) -> [MediaID]

    /// `deferScan`: counts a scan attempt that gave no verdict and schedules the next one
    /// `baseSeconds × 2^(attempts-1)` after `now`. Returns the attempts so far, nil when the
    /// upload was no longer `scanning`.
    func deferScan(id: MediaID, now: Int, baseSeconds: Int) throws(StoreError) -> Int?

    /// Uploads in `scanning` whose retry is due at `now`, oldest first.
    func dueScans(now: Int, limit: Int) throws(StoreError) -> [MediaRecord]

    /// `leaseScan`: takes the retry due at `dueAt` until `until`; false when another retrier
    /// took it first.
    func leaseScan(id: MediaID, dueAt: Int, until: Int) throws(StoreError) -> Bool

    /// `publish`: the record goes `processing → ready` and becomes its user's avatar, and the
    /// `avatar_uploaded` event is recorded, all or nothing.
    func publish(_ publication: Publication) throws(StoreError) -> PublishOutcome

    // MARK: Avatars

    /// The user's current avatar, nil when there is none.
    func avatar(userID: String) throws(StoreError) -> AvatarPointer?

    /// Clears the user's avatar pointer; returns what it pointed at (nil: there was none).
    func deleteAvatar(userID: String) throws(StoreError) -> AvatarPointer?

    /// `unpublish`: if `mediaID` is still the user's avatar, the pointer is cleared and the
    /// record becomes `rejected (infected)` with `signature`, together; false otherwise.
    func unpublish(userID: String, mediaID: MediaID, signature: String) throws(StoreError) -> Bool

    /// Current avatars published at or after `since` (epoch seconds), oldest first.
    func avatars(publishedSince since: Int) throws(StoreError) -> [AvatarPointer]

    // MARK: Tokens and limits

    func isRevoked(jti: String) throws(StoreError) -> Bool
    func revoke(jti: String, expiresAt: Int) throws(StoreError)

    /// Records a scanner callback that was acted on, by its signature: true the first time.
    /// The record is kept until `expiresAt`, when the callback's timestamp is too old anyway.
    func firstUse(ofCallback signature: String, expiresAt: Int) throws(StoreError) -> Bool
    /// Whether a callback with this signature was acted on (a replay).
    func hasSeenCallback(_ signature: String) throws(StoreError) -> Bool

    /// Counts one `action` against the user's per-minute budget: nil when allowed, else the
    /// seconds until the oldest counted hit leaves the window.
    func countHit(userID: String, action: String, perMinute limit: Int, now: Int) throws(StoreError) -> Int?

    // MARK: Maintenance

    /// `expire`: `pending_upload` rows created before `cutoff` (epoch seconds); returns how many.
    func expireUnused(createdBefore cutoff: Int) throws(StoreError) -> Int

    /// `reject (scan_failed)`: unfinished uploads no step touched since `cutoff`; returns how many.
    func rejectStale(untouchedSince cutoff: Int) throws(StoreError) -> Int

    /// Uploads in `scanning` with no retry scheduled and untouched since `cutoff`: announced to
    /// an external scanner that never answered, or left by a step that failed, oldest first.
    func unanswered(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> [MediaRecord]

    /// Forgets revocations of tokens that expired before `now`, callbacks past their window,
    /// and rate-limit hits older than an hour.
    func purgeBookkeeping(now: Int) throws(StoreError)

    // MARK: Retention and erasure

    /// Every row about `userID` (uploads, the avatar pointer, analytics events, rate-limit hits)
    /// in one transaction, for an erasure request; returns the uploads' ids, whose quarantine
    /// files are the caller's to remove.
    func eraseUser(_ userID: String) throws(StoreError) -> [MediaID]

    /// Deletes at most `limit` finished uploads (`ready`, `rejected`, `expired`) untouched since
    /// `cutoff` (epoch seconds), never one that is a user's current avatar; returns how many.
    func pruneFinished(untouchedSince cutoff: Int, limit: Int) throws(StoreError) -> Int

    /// Deletes at most `limit` analytics events recorded before `cutoff`; returns how many.
    func pruneAnalytics(before cutoff: Int, limit: Int) throws(StoreError) -> Int

    /// True when the store answers (for `/health/avatar`).
    func isReachable() -> Bool
}
