import CameoCore
import CameoSystem
import FoundationEssentials
import Imaging
import MediaStore

/// `/api/v1/profile/me/avatar`: GET the current avatar, POST a new one (multipart, field
/// `file`, answered when published), DELETE it.
struct ProfileHandler: Sendable {
    let authenticator: Authenticator
    let admitter: UploadAdmitter
    let store: any MediaStore
    let pipeline: UploadPipeline
    let files: AvatarFiles
    let layout: AvatarLayout
    let policy: UploadPolicy
    let deletesPerMinute: Int
    let clock: any TimeSource

    func handle(_ request: HTTPRequest) throws -> HTTPResponse {
        try request.require("GET", "HEAD", "POST", "DELETE")
        // A POST checks revocation in the INSERT that admits the upload.
        let claims = try authenticator.authenticate(request, checkRevocation: request.method != "POST")
        switch request.method {
        case "POST": return try upload(request, claims: claims)
        case "DELETE": return try delete(userID: claims.userID)
        default: return try current(userID: claims.userID)
        }
    }

    private func current(userID: String) throws -> HTTPResponse {
        guard let pointer = try store.avatar(userID: userID) else { throw AppError.noAvatar }
        let avatar = PublishedAvatar(pointer, layout: layout)
        return .json(
            200,
            .object([
                ("user_id", .string(userID)), ("media_id", .string(pointer.mediaID.rawValue)), ("avatar_url", .string(avatar.url)),
                ("variants", avatar.variants), ("version", .string(pointer.version)),
            ]))
    }

    private func delete(userID: String) throws -> HTTPResponse {
        if let retryAfter = try store.countHit(userID: userID, action: "delete", perMinute: deletesPerMinute, now: clock.epochSeconds) {
            throw AppError.rateLimited(retryAfter: retryAfter, limit: deletesPerMinute)
        }
        guard try store.deleteAvatar(userID: userID) != nil else { throw AppError.noAvatar }
        do {
            try files.settle(userID: userID, prune: .all)
        } catch {
            // The avatar is deleted (committed); the next sweep removes the files of a user
            // without one, so the answer stays 204.
            Log.message("delete of \(userID): files not removed yet: \(error)")
        }
        return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
    }

    /// The same pipeline as a presigned PUT, in one request. nginx has buffered the multipart
    /// body to a file; its `file` part enters the pipeline.
    private func upload(_ request: HTTPRequest, claims: TokenClaims) throws -> HTTPResponse {
        guard case .file(let bodyFile) = request.body else { throw AppError.missingFile }
        defer { FileSystem.remove(bodyFile) }
        let limit = policy.maxUploadBytes
        // The whole form may exceed the file limit by its headers and boundaries.
        let form = try FileSystem.read(bodyFile, limit: limit + NginxConfig.multipartFramingBytes)
        let contentType = request.headers["content-type"] ?? ""
        guard let file = try? MultipartForm.field("file", in: form, contentType: contentType) else { throw AppError.missingFile }
        guard !file.isEmpty else { throw AppError.emptyFile }
        guard file.count <= limit else { throw AppError.tooLarge(limit: limit) }

        // An optional `crop` part holds the same JSON as the presign body's crop.
        var cropBody: CropBody? = nil
        if let json = try? MultipartForm.field("crop", in: form, contentType: contentType) {
            guard let decoded = try? JSONDecoder().decode(CropBody.self, from: Data(json)) else {
                throw AppError.badCrop("crop must be JSON {\"x\", \"y\", \"size\"} in whole pixels.")
            }
            cropBody = decoded
        }
        let upload = NewUpload(
            id: .random(), userID: claims.userID, declaredType: ImageFormat.sniff(file)?.mimeType ?? "application/octet-stream",
            declaredBytes: file.count, expiresAt: clock.epochSeconds, crop: try policy.validate(cropBody))
        try admitter.admit(upload, claims: claims)
        let media = MediaRecord(
            id: upload.id, userID: upload.userID, state: .pendingUpload, declaredType: upload.declaredType, declaredBytes: upload.declaredBytes,
            crop: upload.crop)
        return try pipeline.advance(media, with: .body(.bytes(file), maxBytes: limit)).response(for: media.id)
    }
}

/// `GET /media/{id}`: the upload's state, for its owner only.
struct MediaStatusHandler: Sendable {
    let authenticator: Authenticator
    let store: any MediaStore
    let layout: AvatarLayout

    func handle(_ request: HTTPRequest, mediaID: MediaID) throws -> HTTPResponse {
        try request.require("GET", "HEAD")
        let claims = try authenticator.authenticate(request)
        guard let media = try store.media(id: mediaID) else { throw AppError.notFound }
        guard media.userID == claims.userID else { throw AppError.forbidden }
        var members: [(String, JSONValue)] = [("media_id", .string(media.id.rawValue)), ("state", .string(media.state.rawValue))]
        if let reason = media.rejectReason { members.append(("reject_reason", .string(reason.rawValue))) }
        if media.state == .receiving, let offset = media.uploadOffset {
            // A resumable upload still arriving: how far it is (tus's HEAD says the same).
            members += [("upload_offset", .int(offset)), ("upload_length", .int(media.declaredBytes))]
        }
        if media.state == .ready, let url = media.cdnURL {
            members.append(("avatar_url", .string(url)))
            if let pointer = try store.avatar(userID: media.userID), pointer.mediaID == media.id {
                members.append(("variants", layout.variants(of: pointer)))
            }
        }
        return .json(200, .object(members))
    }
}

/// `GET /health/avatar`: 200 when the store answers, the media folders are writable and the
/// scanner answers, else 503 naming the failing component. (Uploads still queue while the
/// scanner is down, but none can be published.)
struct HealthHandler: Sendable {
    let store: any MediaStore
    let root: MediaRoot
    let scanner: any VirusScanner

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let database = store.isReachable()
        let storage = FileSystem.isWritableDirectory(root.quarantine) && FileSystem.isWritableDirectory(root.published)
        let scannerStatus = scanner.healthStatus()
        // Ready means this host can take requests: the database and the media tree. A scanner
        // that is down is reported (`degraded`) but does not make the host unready: uploads wait
        // for it and are scanned when it is back, and every host shares it, so failing on it
        // would take them all out of a load balancer at once.
        let healthy = database && storage
        let status: (Bool) -> JSONValue = { .string($0 ? "up" : "down") }
        return .json(
            healthy ? 200 : 503,
            .object([
                ("status", .string(healthy ? (scannerStatus == "down" ? "degraded" : "ok") : "unavailable")),
                ("components", .object([("database", status(database)), ("storage", status(storage)), ("scanner", .string(scannerStatus))])),
            ]),
            headers: healthy ? [] : [("Retry-After", "5")])
    }
}
