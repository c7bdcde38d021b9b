import CameoCore
import Scanning

/// What `cameoctl sweep` did.
public struct SweepReport: Sendable {
    public var expiredUploads = 0
    public var removedFiles: [String] = []
    public var abandonedUploads = 0
}

/// What `cameoctl rescan` did.
public struct RescanReport: Sendable {
    public var scanned = 0
    public var unpublished: [(userID: String, mediaID: String, signature: String)] = []
    public var unscannable: [String] = []
}

extension Application {
    /// Removes what uploads left behind (SPEC §3): quarantine files, nginx body files and
    /// staged renditions older than `purge.abandoned_after_seconds`; their uploads become
    /// `rejected (scan_failed)`, and `pending_upload` rows as old become `expired`.
    public func sweep(now: Int) throws -> SweepReport {
        let cutoff = now - config.abandonedAfterSeconds
        var report = SweepReport()
        report.expiredUploads = try repository.expireUnused(olderThanSeconds: config.abandonedAfterSeconds)
        report.abandonedUploads += try repository.rejectStale(olderThanSeconds: config.abandonedAfterSeconds)
        try repository.purgeExpiredBookkeeping(now: now)
        for (path, modified) in storage.files(in: storage.quarantineDirectory) where modified < cutoff {
            storage.remove(path)
            report.removedFiles.append(path)
            let mediaID = String(path.split(separator: "/").last ?? "")
            if try repository.rejectIfUnfinished(id: mediaID, reason: .scanFailed) { report.abandonedUploads += 1 }
        }
        var leftovers = storage.files(in: storage.incomingDirectory)
        for directory in storage.userDirectories() {
            leftovers += storage.files(in: directory).filter { $0.path.hasSuffix(".tmp") }
        }
        for (path, modified) in leftovers where modified < cutoff {
            storage.remove(path)
            report.removedFiles.append(path)
        }
        return report
    }

    /// Scans the published avatars changed since `since` (epoch seconds) again, after a
    /// signature update, and unpublishes any the scanner now detects: files and pointer go,
    /// the media row becomes `rejected (infected)` with the signature.
    public func rescan(since: Int) throws -> RescanReport {
        var report = RescanReport()
        for avatar in try repository.avatars(updatedSince: since) {
            let largest = avatar.sizes.max() ?? 0
            var detected: String? = nil
            for size in avatar.sizes {
                let path = storage.userDirectory(avatar.userID) + "/" + MediaStorage.fileName(size: size, largest: largest)
                guard let bytes = try? storage.read(path, limit: config.limits.maxUploadBytes) else { continue }
                do {
                    if case .infected(let signature) = try scanner.scan(bytes, mediaID: avatar.mediaID) { detected = signature }
                } catch {
                    report.unscannable.append(avatar.mediaID)
                }
                if detected != nil { break }
            }
            report.scanned += 1
            guard let signature = detected else { continue }
            try repository.withAvatarLock(userID: avatar.userID) {
                if try repository.unpublish(userID: avatar.userID, mediaID: avatar.mediaID, signature: signature) {
                    storage.removeAvatar(userID: avatar.userID, sizes: avatar.sizes)
                    report.unpublished.append((avatar.userID, avatar.mediaID, signature))
                }
            }
        }
        return report
    }
}
