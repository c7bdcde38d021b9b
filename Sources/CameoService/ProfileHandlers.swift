import CameoCore
import CameoCrypto
import FoundationEssentials
import Imaging
import CameoSystem

extension Application {
    /// `GET /media/{id}`: the upload's state for its owner (403 for anyone else).
    func mediaStatus(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "GET", "HEAD")
        let claims = try authenticate(request)
        let id = String(request.path.dropFirst("/media/".count))
        guard request.path.hasPrefix("/media/"), Self.isMediaID(id), let media = try repository.media(id: id) else {
            throw AppError.notFound
        }
        guard media.userID == claims.userID else { throw AppError.forbidden }
        var members: [(String, JSONValue)] = [("media_id", .string(media.id)), ("state", .string(media.state.rawValue))]
        if let reason = media.rejectReason { members.append(("reject_reason", .string(reason))) }
        if media.state == .ready, let url = media.cdnURL {
            members.append(("avatar_url", .string(url)))
            if let avatar = try repository.avatar(userID: media.userID), avatar.mediaID == media.id {
                members.append(("variants", variantURLs(userID: media.userID, sizes: avatar.sizes, version: avatar.version)))
            }
        }
        return .json(200, .object(members))
    }

    /// `/api/v1/profile/me/avatar`: GET the current avatar, POST a new one (multipart, field
    /// `file`, answered when published), DELETE it.
    func profile(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "GET", "HEAD", "POST", "DELETE")
        let claims = try authenticate(request, checkRevocation: request.method != "POST")
        if request.method == "POST" { return try directUpload(request, claims: claims) }
        if request.method == "DELETE" {
            let limit = config.rateLimits.deletesPerMinute
            if let retryAfter = try repository.rateLimitHit(userID: claims.userID, action: "delete", perMinute: limit, now: Self.now()) {
                throw AppError.rateLimited(retryAfter: retryAfter, limit: limit)
            }
            try repository.withAvatarLock(userID: claims.userID) {
                guard let avatar = try repository.avatar(userID: claims.userID),
                    try repository.deleteAvatar(userID: claims.userID)
                else { throw AppError.noAvatar }
                storage.removeAvatar(userID: claims.userID, sizes: avatar.sizes)
            }
            return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
        }
        guard let avatar = try repository.avatar(userID: claims.userID) else { throw AppError.noAvatar }
        return .json(
            200,
            .object([
                ("user_id", .string(avatar.userID)),
                ("media_id", .string(avatar.mediaID)),
                ("avatar_url", .string(avatarURL(userID: avatar.userID, fileName: "avatar.webp", version: avatar.version))),
                ("variants", variantURLs(userID: avatar.userID, sizes: avatar.sizes, version: avatar.version)),
                ("version", .string(avatar.version)),
            ]))
    }

    /// `POST /api/v1/profile/me/avatar`: the same pipeline as a presigned PUT, in one request.
    /// nginx has buffered the multipart body to a file (5 MB cap); the `file` part goes to
    /// quarantine and on through `process`.
    private func directUpload(_ request: HTTPRequest, claims: TokenClaims) throws -> HTTPResponse {
        guard let bodyFile = request.bodyFile else {
            throw AppError.missingFile
        }
        defer { storage.remove(bodyFile) }
        let limit = config.limits.maxUploadBytes
        // The whole form may exceed the file limit by its headers and boundaries.
        let form = try storage.read(bodyFile, limit: limit + 64 * 1024)
        let file: [UInt8]
        do {
            file = try MultipartForm.field("file", in: form, contentType: request.headers["content-type"] ?? "")
        } catch {
            throw AppError.missingFile
        }
        guard !file.isEmpty else { throw AppError.emptyFile }
        guard file.count <= limit else { throw AppError.tooLarge(limit: limit) }

        // An optional `crop` part holds the same JSON as the presign body's crop.
        var crop: CropBody? = nil
        if let cropJSON = try? MultipartForm.field("crop", in: form, contentType: request.headers["content-type"] ?? "") {
            guard let decoded = try? JSONDecoder().decode(CropBody.self, from: Data(cropJSON)) else {
                throw AppError.badCrop("crop must be JSON {\"x\", \"y\", \"size\"} in whole pixels.")
            }
            crop = decoded
        }
        try validate(crop)

        let mediaID = Digest.randomBytes(16).hexString
        let declared = ImageFormat.sniff(file)?.mimeType ?? "application/octet-stream"
        try admit(
            MediaRepository.NewUpload(
                id: mediaID, userID: claims.userID, state: .received, declaredType: declared, declaredBytes: file.count,
                expiresAt: Self.now(), crop: crop.map { ($0.x, $0.y, $0.size) }),
            claims: claims)
        let quarantined = storage.quarantinePath(mediaID: mediaID)
        try failingUpload(mediaID) { () throws(SystemError) in try storage.write(file, to: quarantined) }
        guard let media = try repository.media(id: mediaID) else { throw AppError.notFound }
        return try ingest(media: media, quarantined: quarantined)
    }

    /// `GET /health/avatar`: 200 when MariaDB answers, the media folders are writable and
    /// the scanner answers, else 503 with the failing component named. (Uploads still queue
    /// while the scanner is down, but none can be published.)
    func health(_ request: HTTPRequest) -> HTTPResponse {
        let database = db.ping()
        let storageOK = storage.isWritable(storage.quarantineDirectory) && storage.isWritable(storage.publishedDirectory)
        let scannerStatus = scanner.healthStatus()
        let healthy = database && storageOK && scannerStatus != "down"
        let status: (Bool) -> JSONValue = { .string($0 ? "up" : "down") }
        return .json(
            healthy ? 200 : 503,
            .object([
                ("status", .string(healthy ? "ok" : "unavailable")),
                ("components", .object([("database", status(database)), ("storage", status(storageOK)), ("scanner", .string(scannerStatus))])),
            ]),
            headers: healthy ? [] : [("Retry-After", "5")])
    }
}
