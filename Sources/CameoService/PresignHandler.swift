import CameoCore
import CameoSystem
import FoundationEssentials
import MediaStore

/// `POST /users/me/avatar/upload`: checks the declared type and length up front, creates the
/// upload's row and returns a SigV4-presigned PUT URL (SPEC §2).
struct PresignHandler: Sendable {
    let authenticator: Authenticator
    let admitter: UploadAdmitter
    let presigner: SigV4Presigner
    let policy: UploadPolicy
    let ttlSeconds: Int
    /// Where clients reach nginx, e.g. `http://127.0.0.1:8080`.
    let publicBaseURL: String
    /// The `host` upload URLs are signed for: the authority of `publicBaseURL`.
    let publicHost: String
    let clock: any TimeSource

    init(
        authenticator: Authenticator, admitter: UploadAdmitter, presigner: SigV4Presigner, policy: UploadPolicy, ttlSeconds: Int,
        publicBaseURL: String, clock: any TimeSource
    ) {
        self.authenticator = authenticator
        self.admitter = admitter
        self.presigner = presigner
        self.policy = policy
        self.ttlSeconds = ttlSeconds
        self.publicBaseURL = publicBaseURL
        let afterScheme = publicBaseURL.split(separator: "://", maxSplits: 1).last.map(String.init) ?? ""
        publicHost = String(afterScheme.split(separator: "/", maxSplits: 1).first ?? "")
        self.clock = clock
    }

    private struct Body: Decodable {
        let content_type: String?
        let content_length: Int?
        let crop: CropBody?
    }

    func handle(_ request: HTTPRequest) throws -> HTTPResponse {
        try request.require("POST")
        // Revocation and the per-user upload limit are checked by the INSERT (`admit`).
        let claims = try authenticator.authenticate(request, checkRevocation: false)
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(request.smallBody(limit: UploadPolicy.jsonBodyBytes))) else {
            throw AppError.invalidJSON(expected: #"{"content_type", "content_length", "crop"?}"#)
        }
        guard let contentType = body.content_type else { throw AppError.missingField("content_type") }
        guard policy.allowedTypes.contains(contentType) else { throw AppError.badType(allowed: policy.allowedTypes) }
        guard let length = body.content_length, length > 0 else { throw AppError.badContentLength }
        guard length <= policy.maxUploadBytes else { throw AppError.tooLarge(limit: policy.maxUploadBytes) }
        let crop = try policy.validate(body.crop)

        let mediaID = MediaID.random()
        let now = clock.epochSeconds
        let expiresAt = now + ttlSeconds
        try admitter.admit(
            NewUpload(id: mediaID, userID: claims.userID, declaredType: contentType, declaredBytes: length, expiresAt: expiresAt, crop: crop),
            claims: claims)
        let path = "/uploads/\(mediaID)"
        let query = presigner.presignedQuery(
            for: .init(method: "PUT", host: publicHost, path: path, contentType: contentType, maxBytes: length), now: now, expires: ttlSeconds)
        return .json(
            201,
            .object([
                ("media_id", .string(mediaID.rawValue)),
                ("upload_url", .string("\(publicBaseURL)\(path)?\(query)")),
                ("method", .string("PUT")),
                ("headers", .object([("Content-Type", .string(contentType))])),
                ("expires_at", .string(iso8601UTC(epochSeconds: expiresAt))),
                ("max_bytes", .int(length)),
            ]))
    }
}

/// The crop members of a presign body or of a multipart `crop` part.
struct CropBody: Decodable {
    let x: Int
    let y: Int
    let size: Int
}

/// Creates an upload's row, or refuses: revoked token (401) or too many uploads (429). Presign,
/// the multipart upload (and tus creation) all start here, so they share one per-user limit.
struct UploadAdmitter: Sendable {
    let store: any MediaStore
    let perMinute: Int

    func admit(_ upload: NewUpload, claims: TokenClaims) throws {
        switch try store.createUpload(upload, unlessRevoked: claims.tokenID, perMinute: perMinute) {
        case .created: return
        case .revoked: throw AppError.tokenRevoked
        case .rateLimited(let retryAfter): throw AppError.rateLimited(retryAfter: retryAfter, limit: perMinute)
        case .tooManyPartials(let retryAfter): throw AppError.tooManyPartialUploads(retryAfter: retryAfter, limit: upload.maxOpenPartials)
        }
    }
}
