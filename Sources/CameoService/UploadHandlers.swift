import CameoCore
import CameoSystem
import MediaStore

/// The check of a presigned PUT: signature, expiry and declared length. nginx runs it twice:
/// once as `auth_request` before reading the body, once with the buffered body.
struct PresignedURLCheck: Sendable {
    let presigner: SigV4Presigner
    /// The longest lifetime a URL may claim (`presign.ttl_seconds`).
    let maxLifetime: Int
    let clock: any TimeSource

    /// The signed byte bound, or the refusal. Expiry is judged when the request started (its
    /// `age`, from nginx): a body still arriving when the URL expires is not refused for it.
    func verify(_ request: HTTPRequest, path: String) throws(AppError) -> Int {
        let started = clock.epochSeconds - Int(request.age ?? 0)
        let verdict = presigner.verify(
            method: request.method, host: request.headers["host"] ?? "", path: path,
            contentType: request.headers["content-type"] ?? "", query: request.queryItems, now: started, maxLifetime: maxLifetime)
        switch verdict {
        case .failure(.badSignature): throw .badSignature(.uploadURL)
        case .failure(.expired): throw .urlExpired
        case .success(let verified):
            if let declared = request.headers["content-length"].flatMap({ Int($0) }), declared > verified.maxBytes {
                throw .tooLarge(limit: verified.maxBytes)
            }
            return verified.maxBytes
        }
    }
}

/// nginx's `auth_request` for `PUT /uploads/{id}`, run before the body is read: 204 lets nginx
/// read the body.
struct VerifyUploadHandler: Sendable {
    let check: PresignedURLCheck
    let store: any MediaStore

    func handle(_ request: HTTPRequest, mediaID: MediaID) throws -> HTTPResponse {
        _ = try check.verify(request, path: request.path)
        guard let media = try store.media(id: mediaID) else { throw AppError.badSignature(.uploadURL) }
        guard media.state == .pendingUpload else { throw AppError.urlUsed }
        return HTTPResponse(status: 204)
    }

    /// auth_request passes on only 401 and 403, so a refusal is a 403 whose
    /// `X-Cameo-Error-Status` and `X-Cameo-Error-Body` carry the client's real answer, which
    /// nginx returns without reading the body (`@cameo_upload_denied`).
    static func denial(_ refusal: AppError, requestID: String) -> HTTPResponse {
        HTTPResponse(
            status: 403,
            headers: [
                ("X-Cameo-Error-Status", String(refusal.status)), ("X-Cameo-Error-Body", refusal.body(requestID: requestID).serialized()),
                ("X-Cameo-Error-Code", refusal.code.rawValue),
            ])
    }
}

/// `PUT /uploads/{id}`: the body nginx buffered enters the upload pipeline, which scans,
/// renders and publishes it (SPEC §2, §3).
struct UploadHandler: Sendable {
    let check: PresignedURLCheck
    let store: any MediaStore
    let pipeline: UploadPipeline

    func handle(_ request: HTTPRequest, mediaID: MediaID) throws -> HTTPResponse {
        try request.require("PUT")
        let maxBytes = try check.verify(request, path: request.path)
        guard let media = try store.media(id: mediaID) else { throw AppError.badSignature(.uploadURL) }
        let body: IncomingBody
        switch request.body {
        case .file(let path): body = .file(path: path)
        case .bytes(let bytes): body = .bytes(bytes)
        case .unreadable(let error): throw error
        case .none: body = .bytes([])
        }
        return try pipeline.advance(media, with: .body(body, maxBytes: maxBytes)).response(for: media.id)
    }
}

extension PipelineOutcome {
    /// The answer to the request that brought the upload's body: 200 when published, 202
    /// while a verdict is awaited; a refusal is the error itself.
    func response(for mediaID: MediaID) throws(AppError) -> HTTPResponse {
        switch self {
        case .published(let avatar): return .json(200, avatar.json)
        case .scanning: return .json(202, .object([("media_id", .string(mediaID.rawValue)), ("state", .string(MediaState.scanning.rawValue))]))
        case .rejected(let error): throw error
        }
    }
}
