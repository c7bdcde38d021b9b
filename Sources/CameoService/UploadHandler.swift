import CameoCore
import CameoCrypto
import Imaging
import Scanning
import CameoSystem

extension Application {
    /// A media id as Cameo makes them: exactly 32 lower-case hex digits (128 random bits).
    static func isMediaID(_ id: String) -> Bool {
        id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The media id in `/uploads/{id}`: exactly 32 lower-case hex digits, or nil.
    static func uploadMediaID(path: String) -> String? {
        guard path.hasPrefix("/uploads/") else { return nil }
        let id = String(path.dropFirst("/uploads/".count))
        return isMediaID(id) ? id : nil
    }

    /// Checks a presigned PUT: signature, expiry, state and declared length. Shared by the
    /// `auth_request` check and the upload itself.
    private func checkPresigned(_ request: HTTPRequest) throws(AppError) -> (mediaID: String, maxBytes: Int) {
        guard let mediaID = Self.uploadMediaID(path: request.path) else { throw .badSignature(.uploadURL) }
        let verdict = presigner.verify(
            method: request.method, host: request.headers["host"] ?? "", path: request.path,
            contentType: request.headers["content-type"] ?? "", query: request.queryItems, now: Self.now(),
            maxLifetime: config.presign.ttlSeconds)
        switch verdict {
        case .failure(.badSignature): throw .badSignature(.uploadURL)
        case .failure(.expired): throw .urlExpired
        case .success(let verified):
            if let declared = request.headers["content-length"].flatMap({ Int($0) }), declared > verified.maxBytes {
                throw .tooLarge(limit: verified.maxBytes)
            }
            return (mediaID, verified.maxBytes)
        }
    }

    /// nginx's `auth_request` for `PUT /uploads/{id}`, run before the body is read. 204 lets
    /// nginx read the body. auth_request passes on only 401 and 403, so a refusal is a 403
    /// whose `X-Cameo-Error-Status` and `X-Cameo-Error-Body` carry the client's real answer,
    /// which nginx returns without reading the body (see nginx/sites-available/cameo.conf).
    func verifyUpload(_ request: HTTPRequest) -> HTTPResponse {
        let refusal: AppError
        do {
            let (mediaID, _) = try checkPresigned(request)
            guard let media = try repository.media(id: mediaID) else { throw AppError.badSignature(.uploadURL) }
            guard media.state == .pendingUpload else { throw AppError.urlUsed }
            return HTTPResponse(status: 204)
        } catch let error as AppError {
            refusal = error
        } catch {
            refusal = classify(error)
        }
        return HTTPResponse(
            status: 403,
            headers: [
                ("X-Cameo-Error-Status", String(refusal.status)),
                ("X-Cameo-Error-Body", refusal.body(requestID: request.requestID).serialized()),
            ])
    }

    /// `PUT /uploads/{id}`: the body nginx buffered is moved into quarantine, checked,
    /// rendered and published (SPEC §2, §3).
    func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "PUT")
        let (mediaID, maxBytes) = try checkPresigned(request)
        guard let media = try repository.media(id: mediaID) else { throw AppError.badSignature(.uploadURL) }

        let received: String
        let bytes: Int
        if let bodyFile = request.bodyFile {
            bytes = try storage.fileSize(bodyFile)
            guard try repository.claimUpload(id: mediaID, bytes: bytes) else { throw AppError.urlUsed }
            received = try failingUpload(mediaID) { () throws(SystemError) in try storage.quarantine(bodyFile: bodyFile, mediaID: mediaID) }
        } else {
            let body = try request.readBody(config.limits.maxUploadBytes)
            bytes = body.count
            guard try repository.claimUpload(id: mediaID, bytes: bytes) else { throw AppError.urlUsed }
            received = storage.quarantinePath(mediaID: mediaID)
            try failingUpload(mediaID) { () throws(SystemError) in try storage.write(body, to: received) }
        }
        guard bytes <= maxBytes else {
            storage.remove(received)
            try repository.reject(id: mediaID, reason: .tooLarge)
            throw AppError.tooLarge(limit: maxBytes)
        }
        return try ingest(media: media, quarantined: received)
    }

    /// Runs a step of an upload this caller owns; if it fails unexpectedly (disk, database),
    /// the upload is rejected (`scan_failed`, from whichever unfinished state it is in) so no
    /// row waits forever. Errors that mean "someone else owns it now" leave it alone.
    func failingUpload<T, E: Error>(_ mediaID: String, _ step: () throws(E) -> T) throws -> T {
        do {
            return try step()
        } catch let error as AppError where error == .urlUsed || error == .alreadyDecided {
            throw error
        } catch {
            _ = try? repository.rejectIfUnfinished(id: mediaID, reason: .scanFailed)
            throw error
        }
    }

    /// Takes a `received` upload through the scanner and, once clean, rendering and
    /// publishing. Owns the quarantine file: every final outcome removes it; only an upload
    /// still waiting for a verdict keeps it (and answers 202 `scanning`).
    func ingest(media: MediaRecord, quarantined path: String) throws -> HTTPResponse {
        guard try repository.transition(id: media.id, from: .received, to: .scanning) else {
            storage.remove(path)
            throw AppError.urlUsed
        }
        return try scanAndPublish(media: media, quarantined: path)
    }

    /// One scan attempt for an upload in `scanning`, then the rest of the pipeline.
    func scanAndPublish(media: MediaRecord, quarantined path: String) throws -> HTTPResponse {
        try failingUpload(media.id) { () throws in try scanAndPublishOwned(media: media, quarantined: path) }
    }

    private func scanAndPublishOwned(media: MediaRecord, quarantined path: String) throws -> HTTPResponse {
        var keepFile = false
        defer { if !keepFile { storage.remove(path) } }
        let data = try storage.read(path, limit: config.limits.maxUploadBytes)
        let verdict: ScanVerdict?
        let scanStarted = Self.monotonicMilliseconds()
        do {
            verdict = try scanner.scan(data, mediaID: media.id)
        } catch {
            // Fail closed: no verdict means not published. The retrier tries again later.
            Log.message("scan of \(media.id) deferred: \(error)")
            let attempts = try repository.deferScan(id: media.id, now: Self.now(), baseSeconds: config.scanner.retryBaseSeconds)
            guard attempts >= config.scanner.maxAttempts else {
                keepFile = true
                return .json(202, .object([("media_id", .string(media.id)), ("state", .string("scanning"))]))
            }
            try repository.reject(id: media.id, reason: .scanFailed)
            throw AppError.scanFailed
        }
        switch verdict {
        case nil:
            // An external scanner has the file and will call back (`/media/virus-scan-callback`);
            // no retry is due unless the callback reports an error.
            try repository.awaitCallback(id: media.id)
            keepFile = true
            return .json(202, .object([("media_id", .string(media.id)), ("state", .string("scanning"))]))
        case .infected(let signature):
            _ = try repository.markInfected(id: media.id, signature: signature)
            throw AppError.infected
        case .clean:
            guard try repository.markClean(id: media.id, scanMS: Self.monotonicMilliseconds() - scanStarted) else { throw AppError.urlUsed }
            return try process(media: media, data: data, bytes: data.count)
        }
    }

    /// Runs the scans whose retry is due (the retrier calls this in a loop). Returns how many
    /// uploads it tried.
    public func retryDueScans(limit: Int = 20) throws -> Int {
        let now = Self.now()
        var tried = 0
        for (media, dueAt) in try repository.dueScans(now: now, limit: limit) {
            // Hold it for the scan timeout plus margin; a retrier that dies releases it then.
            guard try repository.leaseScan(id: media.id, dueAt: dueAt, until: now + config.scanner.timeoutSeconds + 60) else { continue }
            tried += 1
            let path = storage.quarantinePath(mediaID: media.id)
            do {
                _ = try scanAndPublish(media: media, quarantined: path)
            } catch let error as AppError {
                Log.message("retried scan of \(media.id): \(error.code)")
            } catch let error as SystemError where error.isNotFound {
                // The quarantined bytes are gone (swept): nothing can ever be published.
                try repository.reject(id: media.id, reason: .scanFailed)
            }
        }
        return tried
    }

    /// Validates, renders and publishes an upload the scanner called clean (`processing`).
    func process(media: MediaRecord, data: [UInt8], bytes: Int) throws -> HTTPResponse {
        let started = Self.monotonicMilliseconds()
        // Magic bytes decide the type (SPEC §3), and the configured list applies to them, not
        // to what the client declared.
        guard let format = ImageFormat.sniff(data), config.limits.allowedTypes.contains(format.mimeType) else {
            try repository.reject(id: media.id, reason: .badType)
            throw AppError.badType(allowed: config.limits.allowedTypes)
        }
        if config.limits.rejectAnimated, (try? readHeader(data, limits: renderer.limits))?.isAnimated == true {
            try repository.reject(id: media.id, reason: .badType)
            throw AppError.animated
        }
        let renditions: AvatarRenditions
        do {
            renditions = try renderer.render(data, crop: media.crop.map { CropRect(x: $0.x, y: $0.y, size: $0.size) })
        } catch {
            try repository.reject(id: media.id, reason: RejectReason(error))
            throw map(error)
        }
        let source = MediaRepository.SourceFacts(
            mime: renditions.format.mimeType, width: renditions.sourceWidth, height: renditions.sourceHeight, bytes: bytes,
            sha256: Digest.sha256(data).hexString)

        let largest = renditions.webp.keys.max() ?? 0
        let version = String(Digest.sha256(renditions.webp[largest] ?? []).hexString.prefix(16))
        let staged = try storage.stage(userID: media.userID, mediaID: media.id, renditions: renditions.webp)
        let url = avatarURL(userID: media.userID, fileName: "avatar.webp", version: version)
        let sizes = renditions.webp.keys.sorted(by: >)
        // One publish, delete or unpublish per user at a time: the pointer's commit and the
        // renames happen in the same order for everyone, so the files on disk are always the
        // version the pointer names (two uploads racing cannot end with A's files under B's URL).
        do {
            try repository.withAvatarLock(userID: media.userID) {
                let published = try repository.publish(
                    media: media, version: version, sizes: sizes, cdnURL: url, source: source,
                    processingMS: Self.monotonicMilliseconds() - started)
                guard published else { throw AppError.urlUsed }
                // Renames within one folder do not fail short of the disk vanishing; the old
                // files stay until each rename replaces them.
                try storage.commit(staged)
            }
        } catch {
            storage.discard(staged)
            throw error
        }
        return .json(
            200,
            .object([
                ("media_id", .string(media.id)), ("state", .string("ready")), ("avatar_url", .string(url)),
                ("variants", variantURLs(userID: media.userID, sizes: sizes, version: version)),
            ]))
    }

    /// The one place imaging errors become API errors (reasons: `RejectReason.init`).
    func map(_ error: ImagingError) -> AppError {
        switch error {
        case .unsupportedFormat: return .badType(allowed: config.limits.allowedTypes)
        case .dimensionsTooLarge(let width, let height, let maxSide): return .badDimensions(width: width, height: height, limit: maxSide)
        case .pixelBomb(let pixels, let maxPixels): return .pixelBomb(pixels: pixels, limit: maxPixels)
        case .corrupt: return .corrupt
        case .badCrop(let message): return .badCrop(message)
        case .encodeFailed: return .internalError
        }
    }
}

extension RejectReason {
    /// Why an upload the pipeline refused is rejected.
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
