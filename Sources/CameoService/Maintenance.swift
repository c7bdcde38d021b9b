public import CameoCore
public import CameoMetrics
public import CameoSystem
import Imaging
public import MediaStore
import Scanning

/// `cameoctl sweep` (hourly): removes what uploads left behind (SPEC §3) and the versions no
/// avatar points at any more. Needs the store and the media folders only: an unreadable token
/// key or a scanner that is down does not stop it.
public struct Sweeper: Sendable {
    let store: any MediaStore
    let root: MediaRoot
    let files: AvatarFiles
    /// Leftovers older than this are abandoned (`purge.abandoned_after_seconds`).
    let abandonedAfterSeconds: Int
    /// An upload waiting this long in `scanning` with no retry due has no verdict coming
    /// (`scanner.verdict_timeout_seconds`).
    let verdictTimeoutSeconds: Int
    let clock: any TimeSource

    public init(store: any MediaStore, config: Config, clock: any TimeSource = SystemClock()) {
        self.store = store
        root = MediaRoot(config.mediaRoot)
        files = AvatarFiles(root: root, store: store)
        abandonedAfterSeconds = config.abandonedAfterSeconds
        verdictTimeoutSeconds = config.scanner.verdictTimeoutSeconds
        self.clock = clock
    }

    public struct Report: Sendable {
        /// Upload URLs never used, and resumable uploads past their `Upload-Expires`.
        public var expiredUploads = 0
        public var abandonedUploads = 0
        public var removedFiles: [String] = []
        /// Users whose folder could not be brought in line with the store this time.
        public var unsettled: [String] = []
    }

    /// Quarantine files, nginx body files and hidden staging files older than the cutoff go;
    /// their uploads become `rejected (scan_failed)`, and `pending_upload` rows as old become
    /// `expired`. Every user folder is settled against the store: stable names repaired, and
    /// versions no pointer names removed once their files are older than the cutoff.
    public func sweep() throws -> Report {
        let now = clock.epochSeconds
        let cutoff = now - abandonedAfterSeconds
        var report = Report()
        report.expiredUploads = try store.expireUnused(createdBefore: cutoff)
        // Resumable uploads past their Upload-Expires: the row first (an append racing it
        // loses its guarded update), then the bytes.
        while true {
            let expired = try store.expirePartials(now: now, limit: 1000)
            for id in expired {
                FileSystem.remove(root.quarantined(id))
                report.removedFiles.append(root.quarantined(id))
            }
            report.expiredUploads += expired.count
            if expired.count < 1000 { break }
        }
        report.abandonedUploads += try store.rejectStale(untouchedSince: cutoff)
        // Announced to the external scanner and never answered, or left in `scanning` by a
        // step that failed with the database: past the deadline, `scan_failed`, bytes gone.
        for media in try store.unanswered(untouchedSince: now - verdictTimeoutSeconds, limit: 1000)
        where try store.apply(.reject(.scanFailed), to: media.id, from: .scanning) {
            FileSystem.remove(root.quarantined(media.id))
            report.abandonedUploads += 1
        }
        try store.purgeBookkeeping(now: now)
        for entry in Directory.entries(of: root.quarantine) where entry.kind == .file && entry.modified < cutoff {
            let media = try MediaID(entry.name).flatMap { id throws(StoreError) in try store.media(id: id) }
            // A resumable upload still within its lifetime (tus.lifetime_seconds may be longer
            // than the purge threshold) keeps its bytes, however long since its last chunk.
            if let media, media.state == .receiving && !media.isExpiredPartial(at: now) { continue }
            FileSystem.remove(entry.path)
            report.removedFiles.append(entry.path)
            if let media, MediaTransition.reject.allows(from: media.state), try store.apply(.reject(.scanFailed), to: media.id, from: media.state) {
                report.abandonedUploads += 1
            }
        }
        for entry in Directory.entries(of: root.incoming) where entry.modified < cutoff {
            FileSystem.remove(entry.path)
            report.removedFiles.append(entry.path)
        }
        for userID in files.userIDs() {
            for path in files.leftovers(userID: userID, olderThan: cutoff) {
                FileSystem.remove(path)
                report.removedFiles.append(path)
            }
            do {
                try files.settle(userID: userID, prune: .olderThan(cutoff))
            } catch {
                // One folder that cannot be settled now must not stop the others; next hour again.
                report.unsettled.append(userID)
                Log.message("sweep: avatar files of \(userID) not settled: \(error)")
            }
        }
        return report
    }
}

/// `cameoctl rescan`: scans the published avatars again after a signature update and takes
/// down any the scanner now detects (pointer and files go; the record becomes
/// `rejected (infected)` with the signature).
public struct Rescanner: Sendable {
    let store: any MediaStore
    let files: AvatarFiles
    let scanner: any VirusScanner
    let maxBytes: Int

    public init(store: any MediaStore, config: Config, scanner: (any VirusScanner)? = nil) {
        self.store = store
        files = AvatarFiles(root: MediaRoot(config.mediaRoot), store: store)
        self.scanner = scanner ?? configuredScanner(config, clock: SystemClock()).0
        maxBytes = config.limits.maxUploadBytes
    }

    public struct Report: Sendable {
        public var scanned = 0
        public var unpublished: [(userID: String, mediaID: String, signature: String)] = []
        public var unscannable: [String] = []
    }

    /// Avatars published since `since` (epoch seconds).
    public func rescan(since: Int) throws -> Report {
        var report = Report()
        for avatar in try store.avatars(publishedSince: since) {
            var detected: String? = nil
            for size in avatar.sizes {
                guard let bytes = try? files.read(avatar, size: size, limit: maxBytes) else { continue }
                do {
                    if case .infected(let signature) = try scanner.scan(bytes, mediaID: avatar.mediaID.rawValue) { detected = signature }
                } catch {
                    report.unscannable.append(avatar.mediaID.rawValue)
                }
                if detected != nil { break }
            }
            report.scanned += 1
            guard let signature = detected, try store.unpublish(userID: avatar.userID, mediaID: avatar.mediaID, signature: signature) else { continue }
            report.unpublished.append((avatar.userID, avatar.mediaID.rawValue, signature))
            do {
                try files.settle(userID: avatar.userID, prune: .all)
            } catch {
                // The pointer is gone; the next sweep removes the files of a user without one.
                Log.message("rescan: files of \(avatar.userID) not removed yet: \(error)")
            }
        }
        return report
    }
}

/// `cameoctl scan-retry` (the retrier service): uploads that met a scanner which was down
/// wait in `scanning`; this takes the ones whose retry is due back into the pipeline.
public struct ScanRetrier: Sendable {
    let store: any MediaStore
    let pipeline: UploadPipeline
    /// How long a lease holds: the scan timeout plus a margin; a retrier that dies releases
    /// its uploads then.
    let leaseSeconds: Int
    let clock: any TimeSource

    init(store: any MediaStore, pipeline: UploadPipeline, leaseSeconds: Int, clock: any TimeSource) {
        self.store = store
        self.pipeline = pipeline
        self.leaseSeconds = leaseSeconds
        self.clock = clock
    }

    /// The retrier of a configuration: the pipeline and the scanner, nothing of the HTTP side.
    public init(store: any MediaStore, config: Config, clock: any TimeSource = SystemClock(), metrics: any MetricsSink = NoMetrics()) {
        self.init(
            store: store, pipeline: UploadPipeline(config: config, store: store, clock: clock, metrics: metrics), leaseSeconds: config.scanner.timeoutSeconds + 60,
            clock: clock)
    }

    /// Runs the retries that are due; returns how many it tried.
    public func retryDue(limit: Int = 20) throws -> Int {
        let now = clock.epochSeconds
        var tried = 0
        for media in try store.dueScans(now: now, limit: limit) {
            guard let dueAt = media.nextScanAt, try store.leaseScan(id: media.id, dueAt: dueAt, until: now + leaseSeconds) else { continue }
            tried += 1
            do {
                _ = try pipeline.advance(media, with: .retry)
            } catch let error as AppError {
                Log.message("retried scan of \(media.id): \(error.code.rawValue)")
            } catch let error as SystemError where error.isNotFound {
                // The quarantined bytes are gone (swept); the pipeline rejected the upload.
                Log.message("retried scan of \(media.id): bytes gone")
            }
        }
        return tried
    }
}

/// `cameoctl takedown USER`: an operator removes a user's avatar (a complaint, a court order):
/// the pointer is cleared and every file of the user goes, as the user's own DELETE would,
/// and one log line says who was taken down and why. The upload records stay, for the audit.
public struct Takedown: Sendable {
    let store: any MediaStore
    let files: AvatarFiles

    public init(store: any MediaStore, config: Config) {
        self.store = store
        files = AvatarFiles(root: MediaRoot(config.mediaRoot), store: store)
    }

    /// The avatar that was taken down, or nil when the user had none.
    public func run(userID: String, reason: String) throws -> AvatarPointer? {
        guard let removed = try store.deleteAvatar(userID: userID) else { return nil }
        try files.settle(userID: userID, prune: .all)
        Log.message("takedown of \(userID): avatar \(removed.mediaID) version \(removed.version) removed by an operator: \(reason)")
        return removed
    }
}

/// `cameoctl erase USER`: everything Cameo holds about a user, for an erasure request. The
/// avatar goes as in a takedown (pointer, then files), then every row about the user, then the
/// quarantine files of their uploads and their folder. One log line says it happened; the
/// user id in it is what the request was about.
public struct Erasure: Sendable {
    let store: any MediaStore
    let files: AvatarFiles
    let root: MediaRoot

    public init(store: any MediaStore, config: Config) {
        self.store = store
        root = MediaRoot(config.mediaRoot)
        files = AvatarFiles(root: root, store: store)
    }

    public struct Report: Sendable {
        public var avatar: AvatarPointer?
        public var uploads = 0
    }

    public func run(userID: String) throws -> Report {
        var report = Report()
        report.avatar = try store.deleteAvatar(userID: userID)
        try files.settle(userID: userID, prune: .all)
        let uploads = try store.eraseUser(userID)
        report.uploads = uploads.count
        for id in uploads { FileSystem.remove(root.quarantined(id)) }
        _ = FileSystem.removeDirectory(root.userFolder(userID))
        Log.message("erased \(userID) on request: \(report.uploads) upload record(s) and the avatar files")
        return report
    }
}

/// `cameoctl prune`: retention. Finished uploads (except current avatars) older than
/// `retention.upload_days` and analytics events older than `retention.analytics_days` are
/// deleted, a thousand rows at a time.
public struct Pruner: Sendable {
    let store: any MediaStore
    let retention: Config.Retention
    let clock: any TimeSource

    public init(store: any MediaStore, config: Config, clock: any TimeSource = SystemClock()) {
        self.store = store
        retention = config.retention
        self.clock = clock
    }

    static let batch = 1000

    public func prune() throws -> (uploads: Int, analytics: Int) {
        let day = 86_400
        let now = clock.epochSeconds
        var uploads = 0
        var analytics = 0
        while case let pruned = try store.pruneFinished(untouchedSince: now - retention.uploadDays * day, limit: Self.batch), pruned > 0 {
            uploads += pruned
        }
        while case let pruned = try store.pruneAnalytics(before: now - retention.analyticsDays * day, limit: Self.batch), pruned > 0 {
            analytics += pruned
        }
        return (uploads, analytics)
    }
}
