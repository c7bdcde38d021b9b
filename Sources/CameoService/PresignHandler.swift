import CameoCore
import CameoCrypto
import FoundationEssentials

extension Application {
    private struct PresignBody: Decodable {
        let content_type: String?
        let content_length: Int?
        let crop: CropBody?
    }

    /// The shape of a client crop; whether it fits the image is checked once it is decoded.
    func validate(_ crop: CropBody?) throws(AppError) {
        guard let crop else { return }
        let maxSide = config.limits.maxSide
        guard crop.x >= 0, crop.y >= 0, crop.size >= 1, crop.x <= maxSide, crop.y <= maxSide, crop.size <= maxSide else {
            throw .badCrop("crop needs whole numbers x ≥ 0, y ≥ 0 and 1 ≤ size ≤ \(maxSide).")
        }
    }

    /// Creates the upload's row, or refuses: revoked token (401) or too many uploads (429).
    func admit(_ upload: MediaRepository.NewUpload, claims: TokenClaims) throws {
        let limit = config.rateLimits.uploadsPerMinute
        switch try repository.createUpload(upload, unlessRevoked: claims.tokenID, perMinute: limit) {
        case .created: return
        case .revoked: throw AppError.tokenRevoked
        case .rateLimited(let retryAfter): throw AppError.rateLimited(retryAfter: retryAfter, limit: limit)
        }
    }

    struct CropBody: Decodable {
        let x: Int
        let y: Int
        let size: Int
    }

    /// `POST /users/me/avatar/upload`: checks the declared type and length up front, creates the
    /// `media_files` row and returns a SigV4-presigned PUT URL (SPEC §2).
    func presign(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "POST")
        // Revocation and the per-user upload limit are checked by the INSERT (`admit`).
        let claims = try authenticate(request, checkRevocation: false)
        let bodyBytes = try request.readBody(16 * 1024)
        guard let body = try? JSONDecoder().decode(PresignBody.self, from: Data(bodyBytes)) else {
            throw AppError.invalidJSON(expected: #"{"content_type", "content_length", "crop"?}"#)
        }
        guard let contentType = body.content_type else { throw AppError.missingField("content_type") }
        guard config.limits.allowedTypes.contains(contentType) else { throw AppError.badType(allowed: config.limits.allowedTypes) }
        guard let length = body.content_length, length > 0 else {
            throw AppError.badContentLength
        }
        guard length <= config.limits.maxUploadBytes else { throw AppError.tooLarge(limit: config.limits.maxUploadBytes) }
        try validate(body.crop)

        let mediaID = Digest.randomBytes(16).hexString
        let now = Self.now()
        let expiresAt = now + config.presign.ttlSeconds
        try admit(
            MediaRepository.NewUpload(
                id: mediaID, userID: claims.userID, state: .pendingUpload, declaredType: contentType, declaredBytes: length,
                expiresAt: expiresAt, crop: body.crop.map { ($0.x, $0.y, $0.size) }),
            claims: claims)
        let path = "/uploads/\(mediaID)"
        let query = presigner.presignedQuery(
            for: .init(method: "PUT", host: publicHost, path: path, contentType: contentType, maxBytes: length),
            now: now, expires: config.presign.ttlSeconds)
        return .json(
            201,
            .object([
                ("media_id", .string(mediaID)),
                ("upload_url", .string("\(config.publicBaseURL)\(path)?\(query)")),
                ("method", .string("PUT")),
                ("headers", .object([("Content-Type", .string(contentType))])),
                ("expires_at", .string(iso8601UTC(epochSeconds: expiresAt))),
                ("max_bytes", .int(length)),
            ]))
    }
}
