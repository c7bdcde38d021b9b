import CameoCore

extension Application {
    /// `GET /media/{id}`: the upload's state for its owner (403 for anyone else).
    func mediaStatus(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "GET", "HEAD")
        let claims = try authenticate(request)
        let id = String(request.path.dropFirst("/media/".count))
        guard request.path.hasPrefix("/media/"), id.utf8.count == 32, let media = try repository.media(id: id) else {
            throw AppError.notFound
        }
        guard media.userID == claims.userID else { throw AppError.forbidden }
        var members: [(String, JSONValue)] = [("media_id", .string(media.id)), ("state", .string(media.state))]
        if let reason = media.rejectReason { members.append(("reject_reason", .string(reason))) }
        if media.state == "ready", let url = media.cdnURL {
            members.append(("avatar_url", .string(url)))
            if let avatar = try repository.avatar(userID: media.userID), avatar.mediaID == media.id {
                members.append(("variants", variantURLs(userID: media.userID, sizes: avatar.sizes, version: avatar.version)))
            }
        }
        return .json(200, .object(members))
    }

    /// `/api/v1/profile/me/avatar`: GET the current avatar, DELETE it.
    func profile(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "GET", "HEAD", "DELETE")
        let claims = try authenticate(request)
        guard let avatar = try repository.avatar(userID: claims.userID) else { throw AppError.noAvatar }
        if request.method == "DELETE" {
            guard try repository.deleteAvatar(userID: claims.userID) else { throw AppError.noAvatar }
            storage.removeAvatar(userID: claims.userID, sizes: avatar.sizes)
            return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
        }
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

    /// `GET /health/avatar`: 200 when MariaDB answers and the media folders are writable, else
    /// 503 with the failing component named.
    func health(_ request: HTTPRequest) -> HTTPResponse {
        let database = db.ping()
        let storageOK = storage.isWritable(storage.quarantineDirectory) && storage.isWritable(storage.publishedDirectory)
        let healthy = database && storageOK
        let status: (Bool) -> JSONValue = { .string($0 ? "up" : "down") }
        return .json(
            healthy ? 200 : 503,
            .object([
                ("status", .string(healthy ? "ok" : "unavailable")),
                ("components", .object([("database", status(database)), ("storage", status(storageOK))])),
            ]),
            headers: healthy ? [] : [("Retry-After", "5")])
    }
}
