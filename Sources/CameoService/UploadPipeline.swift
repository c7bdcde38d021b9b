public import CameoCore
import CameoCrypto
import CameoMetrics
public import CameoSystem
public import Imaging
public import MediaStore
import Scanning

/// The limits every way of uploading shares (SPEC §5).
public struct UploadPolicy: Sendable {
    public var maxUploadBytes: Int
    public var maxSide: Int
    public var allowedTypes: [String]
    public var rejectAnimated: Bool
    /// Scan attempts without a verdict before an upload is rejected as `scan_failed`.
    public var maxScanAttempts: Int
    /// Backoff before retry n is base × 2^(n-1) seconds.
    public var scanRetryBaseSeconds: Int

    /// JSON bodies (presign, scanner callbacks) are at most this long; nginx enforces it too.
    public static let jsonBodyBytes = NginxConfig.jsonBodyBytes

    public init(_ config: Config) {
        maxUploadBytes = config.limits.maxUploadBytes
        maxSide = config.limits.maxSide
        allowedTypes = config.limits.allowedTypes
        rejectAnimated = config.limits.rejectAnimated
        maxScanAttempts = config.scanner.maxAttempts
        scanRetryBaseSeconds = config.scanner.retryBaseSeconds
    }

    /// The shape of a client crop; whether it fits the image is checked once it is decoded.
    func validate(_ crop: CropBody?) throws(AppError) -> Crop? {
        guard let crop else { return nil }
        guard crop.x >= 0, crop.y >= 0, crop.size >= 1, crop.x <= maxSide, crop.y <= maxSide, crop.size <= maxSide else {
            throw .badCrop("crop needs whole numbers x ≥ 0, y ≥ 0 and 1 ≤ size ≤ \(maxSide).")
        }
        return Crop(x: crop.x, y: crop.y, size: crop.size)
    }
}

/// How an upload's bytes arrived.
public enum IncomingBody: Sendable, Equatable {
    /// nginx buffered the body to this file on the media file system: renamed into quarantine.
    case file(path: String)
    /// The bytes themselves (a multipart part): written to quarantine.
    case bytes([UInt8])
}

/// An external scanner's verdict, from its callback.
public enum ExternalVerdict: Sendable, Equatable {
    case clean
    case infected(signature: String)
    /// It could not decide: retried like a scanner that was down.
    case error
}

/// What moves an upload on.
public enum PipelineInput: Sendable, Equatable {
    /// Its body arrived (PUT, multipart): claims a `pending_upload`, at most `maxBytes` long.
    case body(IncomingBody, maxBytes: Int)
    /// A resumable upload's last chunk was appended: its bytes are in quarantine already and
    /// the append that completed it moved it to `received` (so this caller owns it).
    case completed
    /// A scan retry is due and this caller leased it (the retrier).
    case retry
    /// The external scanner's verdict.
    case verdict(ExternalVerdict)
}

/// Where an upload stands after `advance`.
public enum PipelineOutcome: Sendable, Equatable {
    case published(PublishedAvatar)
    /// Waiting for a verdict: a retry or the external scanner's callback moves it on.
    case scanning
    case rejected(AppError)
}

/// Test seams of the pipeline: the race tests pause publishers here.
public struct PipelineHooks: Sendable {
    /// Runs when the version's files are written, just before the publishing transaction.
    public var beforePublish: (@Sendable (MediaID) -> Void)?
    /// Runs after a publish committed and before the files are pointed at it.
    public var afterPublishCommit: (@Sendable (MediaID) -> Void)?

    public init(beforePublish: (@Sendable (MediaID) -> Void)? = nil, afterPublishCommit: (@Sendable (MediaID) -> Void)? = nil) {
        self.beforePublish = beforePublish
        self.afterPublishCommit = afterPublishCommit
    }
}

/// The one way an upload moves through the state machine (`MediaTransition`): every way an
/// upload arrives (presigned PUT, multipart POST, a scan retry, a scanner's callback) calls
/// `advance`, which takes the record on from the state it is in until it is published,
/// rejected, or waits for a verdict.
///
/// The pipeline owns the quarantined bytes from the claim on: every final outcome removes
/// them; only an upload waiting for a verdict keeps them. Each step is a guarded change in the
/// store; losing one means another caller owns the upload now, and this one touches nothing.
public struct UploadPipeline: Sendable {
    let store: any MediaStore
    let root: MediaRoot
    let files: AvatarFiles
    let layout: AvatarLayout
    let scanner: any VirusScanner
    let renderer: AvatarRenderer
    let policy: UploadPolicy
    let clock: any TimeSource
    let hooks: PipelineHooks
    /// Where scan durations are reported (the store reports final states).
    var metrics: any MetricsSink = NoMetrics()

    public func advance(_ record: MediaRecord, with input: PipelineInput) throws -> PipelineOutcome {
        switch (input, record.state) {
        case (.body, .pendingUpload), (.completed, .received), (.verdict, .scanning), (.retry, .scanning): break
        case (.body, _), (.completed, _): throw AppError.urlUsed
        case (.verdict, _), (.retry, _): throw AppError.alreadyDecided
        }
        var media = record
        // A retry holds its lease, and a completing append made its `claim`: the upload is this
        // call's. A body or a verdict makes it this call's with its first guarded step (the
        // claim, the verdict's change).
        var owned = input == .retry || input == .completed
        do {
            return try run(&media, input: input, owned: &owned)
        } catch let error as AppError where error == .urlUsed || error == .alreadyDecided {
            // Someone else moved the upload on; it is theirs now.
            throw error
        } catch {
            // An unexpected failure (disk, database) of a step this call owns: reject it from
            // where it is, so no row waits forever, and drop its bytes. Before this call owned
            // it (say, the claim itself failed), the bytes may be another request's: touch nothing.
            // If the rejection cannot be recorded either (the database is down), the bytes stay
            // with the row, instead of a row whose bytes are gone: the sweep settles both once
            // the database answers (a row left in `scanning` after the verdict deadline, one in
            // `received` or `processing` after purge.abandoned_after_seconds).
            guard owned else { throw error }
            let rejected = MediaTransition.reject.allows(from: media.state) ? (try? store.apply(.reject(.scanFailed), to: media.id, from: media.state)) : true
            if rejected == true { FileSystem.remove(root.quarantined(media.id)) }
            throw error
        }
    }

    private func run(_ media: inout MediaRecord, input: PipelineInput, owned: inout Bool) throws -> PipelineOutcome {
        var pending: PipelineInput? = input
        var bytes: [UInt8]? = nil
        while true {
            switch media.state {
            case .pendingUpload:
                guard case .body(let body, let maxBytes)? = pending else { throw AppError.urlUsed }
                pending = nil
                if let refused = try receive(body, maxBytes: maxBytes, &media, owned: &owned) { return refused }
            case .received:
                guard try store.apply(.startScan, to: media.id, from: .received) else { throw AppError.urlUsed }
                media.state = .scanning
                pending = nil  // a completed resumable upload is scanned like any received one
            case .scanning:
                let data = try bytes ?? quarantinedBytes(media.id)
                bytes = data
                if let stop = try scan(data, &media, input: pending, owned: &owned) { return stop }
                pending = nil
            case .processing:
                return try render(bytes ?? quarantinedBytes(media.id), &media)
            case .receiving:
                // A resumable upload is the pipeline's from its last byte on (`advance` refuses it before).
                throw AppError.urlUsed
            case .ready, .rejected, .expired:
                // Every step that ends here returns; a record read in a final state was decided.
                throw AppError.alreadyDecided
            }
        }
    }

    // MARK: Steps

    /// `claim`: the single-use check, then the bytes go into quarantine.
    private func receive(_ body: IncomingBody, maxBytes: Int, _ media: inout MediaRecord, owned: inout Bool) throws -> PipelineOutcome? {
        let size: Int
        switch body {
        case .file(let path): size = try FileSystem.size(path)
        case .bytes(let bytes): size = bytes.count
        }
        guard try store.apply(.claim(bytes: size), to: media.id, from: .pendingUpload) else { throw AppError.urlUsed }
        media.state = .received
        owned = true
        let quarantined = root.quarantined(media.id)
        switch body {
        // rename(2): atomic and free, and nginx's own clean-up of its temp name then finds nothing.
        case .file(let path): try FileSystem.rename(path, to: quarantined)
        case .bytes(let bytes): try FileSystem.writeNew(bytes, to: quarantined)
        }
        guard size <= maxBytes else { return try reject(&media, .tooLarge, .tooLarge(limit: maxBytes)) }
        return nil
    }

    /// One scan attempt or a verdict: on to `processing` (nil), or where it stops.
    private func scan(_ data: [UInt8], _ media: inout MediaRecord, input: PipelineInput?, owned: inout Bool) throws -> PipelineOutcome? {
        let verdict: ScanVerdict?
        let started = clock.monotonicMilliseconds
        // A lost race means: the callback's verdict is late (409), or someone else scanned it.
        let lost = input.map { if case .verdict = $0 { AppError.alreadyDecided } else { AppError.urlUsed } } ?? .urlUsed
        switch input {
        case .verdict(.clean)?: verdict = .clean
        case .verdict(.infected(let signature))?: verdict = .infected(signature: signature)
        case .verdict(.error)?:
            owned = true
            return try deferScan(&media, lost: lost)
        default:
            do {
                verdict = try scanner.scan(data, mediaID: media.id.rawValue)
                let seconds = Double(clock.monotonicMilliseconds - started) / 1000
                switch verdict {
                case .clean?: metrics.record(.scan(verdict: "clean", seconds: seconds))
                case .infected?: metrics.record(.scan(verdict: "infected", seconds: seconds))
                case nil: break  // announced to the external scanner; its verdict comes later
                }
            } catch {
                metrics.record(.scan(verdict: "error", seconds: Double(clock.monotonicMilliseconds - started) / 1000))
                // Fail closed: no verdict means not published. The retrier tries again later.
                Log.message("scan of \(media.id) deferred: \(error)")
                return try deferScan(&media, lost: lost)
            }
        }
        switch verdict {
        case nil:
            // The external scanner has the bytes; no retry is due unless its callback says error.
            _ = try store.apply(.awaitVerdict, to: media.id, from: .scanning)
            return .scanning
        case .infected(let signature):
            guard try store.apply(.infected(signature: signature), to: media.id, from: .scanning) else { throw lost }
            owned = true
            media.state = .rejected
            FileSystem.remove(root.quarantined(media.id))
            return .rejected(.infected)
        case .clean:
            let milliseconds = input == nil || input == .retry ? clock.monotonicMilliseconds - started : nil
            guard try store.apply(.clean(scanMilliseconds: milliseconds), to: media.id, from: .scanning) else { throw lost }
            owned = true
            media.state = .processing
            return nil
        }
    }

    /// `deferScan`: no verdict this time; after the last attempt, `scan_failed`.
    private func deferScan(_ media: inout MediaRecord, lost: AppError) throws -> PipelineOutcome {
        guard let attempts = try store.deferScan(id: media.id, now: clock.epochSeconds, baseSeconds: policy.scanRetryBaseSeconds) else { throw lost }
        guard attempts >= policy.maxScanAttempts else { return .scanning }
        return try reject(&media, .scanFailed, .scanFailed)
    }

    /// Validates, renders and publishes an upload the scanner called clean (`processing`).
    private func render(_ data: [UInt8], _ media: inout MediaRecord) throws -> PipelineOutcome {
        let started = clock.monotonicMilliseconds
        // Magic bytes decide the type (SPEC §3), and the configured list applies to them, not
        // to what the client declared.
        guard let format = ImageFormat.sniff(data), policy.allowedTypes.contains(format.mimeType) else {
            return try reject(&media, .badType, .badType(allowed: policy.allowedTypes))
        }
        if policy.rejectAnimated, (try? readHeader(data, limits: renderer.limits))?.isAnimated == true {
            return try reject(&media, .badType, .animated)
        }
        let renditions: AvatarRenditions
        do {
            renditions = try renderer.render(data, crop: media.crop.map { CropRect(x: $0.x, y: $0.y, size: $0.size) })
        } catch {
            return try reject(&media, RejectReason(error), refusal(for: error))
        }
        if let note = renditions.colourNote { Log.message("upload \(media.id): \(note)") }
        let own = AvatarFiles.OwnVersion(version: AvatarLayout.version(of: renditions.webp), renditions: renditions.webp)
        let pointer = AvatarPointer(userID: media.userID, mediaID: media.id, version: own.version, sizes: Array(renditions.webp.keys))
        // The version's files first, under names of their own: nothing points at them yet.
        try files.write(own, userID: media.userID)
        let publication = Publication(
            pointer: pointer, cdnURL: layout.url(of: pointer),
            source: SourceFacts(
                mime: renditions.format.mimeType, width: renditions.sourceWidth, height: renditions.sourceHeight, bytes: data.count,
                sha256: Digest.sha256(data).hexString),
            processingMilliseconds: clock.monotonicMilliseconds - started)
        hooks.beforePublish?(media.id)
        guard case .published(let replaced) = try store.publish(publication) else { throw AppError.urlUsed }
        media.state = .ready
        FileSystem.remove(root.quarantined(media.id))
        // The replaced version's files count as old only from now (the sweeper's grace
        // period, for pages that still show its URL).
        if let replaced, replaced.version != own.version { files.retire(replaced) }
        hooks.afterPublishCommit?(media.id)
        do {
            try files.settle(userID: media.userID, own: own)
        } catch {
            // The versioned URL works already; the sweeper points the stable names later.
            Log.message("publish of \(media.id): stable names not updated: \(error)")
        }
        return .published(PublishedAvatar(pointer, layout: layout))
    }

    // MARK: Outcomes

    /// `reject`: the upload is refused for `reason`, its bytes go; the client gets `error`.
    private func reject(_ media: inout MediaRecord, _ reason: RejectReason, _ error: AppError) throws -> PipelineOutcome {
        _ = try store.apply(.reject(reason), to: media.id, from: media.state)
        media.state = .rejected
        FileSystem.remove(root.quarantined(media.id))
        return .rejected(error)
    }

    private func quarantinedBytes(_ id: MediaID) throws(SystemError) -> [UInt8] {
        try FileSystem.read(root.quarantined(id), limit: policy.maxUploadBytes)
    }

    /// The one place imaging errors become API errors (and reasons: `RejectReason.init`).
    func refusal(for error: ImagingError) -> AppError {
        switch error {
        case .unsupportedFormat: return .badType(allowed: policy.allowedTypes)
        case .dimensionsTooLarge(let width, let height, let maxSide): return .badDimensions(width: width, height: height, limit: maxSide)
        case .pixelBomb(let pixels, let maxPixels): return .pixelBomb(pixels: pixels, limit: maxPixels)
        case .corrupt: return .corrupt
        case .badCrop(let message): return .badCrop(message)
        case .encodeFailed: return .internalError
        }
    }
}

extension RejectReason {
    /// Why an upload the renderer refused is rejected.
    init(_ error: ImagingError) {
        switch error {
        case .unsupportedFormat: self = .badType
        case .dimensionsTooLarge: self = .badDimensions
        case .pixelBomb: self = .pixelBomb
        case .corrupt, .encodeFailed: self = .corrupt
        case .badCrop: self = .badCrop
        }
    }
}
