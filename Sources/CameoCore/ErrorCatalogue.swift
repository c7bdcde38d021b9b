/// Every error code Cameo (the workers or nginx) can answer with: one case each, with its HTTP
/// status. Clients match on the code; it never changes once shipped. The README's error table
/// is checked against this enum by a test, and nginx's own JSON error bodies are rendered from
/// it (`cameoctl render-nginx`), so no code is spelled anywhere else.
public enum ErrorCode: String, CaseIterable, Sendable {
    case invalidJSON = "invalid_json"
    case missingField = "missing_field"
    case badContentLength = "bad_content_length"
    case missingFile = "missing_file"
    case badResult = "bad_result"
    case unexpectedBody = "unexpected_body"
    case badUploadLength = "bad_upload_length"
    case badUploadOffset = "bad_upload_offset"
    case badMetadata = "bad_metadata"
    case badChecksum = "bad_checksum"
    case missingToken = "missing_token"
    case invalidToken = "invalid_token"
    case tokenExpired = "token_expired"
    case tokenNotYetValid = "token_not_yet_valid"
    case tokenRevoked = "token_revoked"
    case badOrigin = "bad_origin"
    case badSignature = "bad_signature"
    case urlExpired = "url_expired"
    case staleTimestamp = "stale_timestamp"
    case forbidden
    case notFound = "not_found"
    case noAvatar = "no_avatar"
    case methodNotAllowed = "method_not_allowed"
    case urlUsed = "url_used"
    case alreadyDecided = "already_decided"
    case replayedCallback = "replayed_callback"
    case offsetMismatch = "offset_mismatch"
    case uploadExpired = "upload_expired"
    case unsupportedVersion = "unsupported_version"
    case tooLarge = "too_large"
    case badType = "bad_type"
    case badContentType = "bad_content_type"
    case badDimensions = "bad_dimensions"
    case pixelBomb = "pixel_bomb"
    case corrupt
    case badCrop = "bad_crop"
    case infected
    case scanFailed = "scan_failed"
    case checksumMismatch = "checksum_mismatch"
    case rateLimited = "rate_limited"
    case tooManyConnections = "too_many_connections"
    case tooManyPartialUploads = "too_many_partial_uploads"
    case internalError = "internal"
    case unavailable

    /// The HTTP status this code is answered with (SPEC §2).
    public var status: Int {
        switch self {
        case .invalidJSON, .missingField, .badContentLength, .missingFile, .badResult, .unexpectedBody, .badUploadLength, .badUploadOffset,
            .badMetadata, .badChecksum:
            400
        case .missingToken, .invalidToken, .tokenExpired, .tokenNotYetValid, .tokenRevoked: 401
        case .badOrigin, .badSignature, .urlExpired, .staleTimestamp, .forbidden: 403
        case .notFound, .noAvatar: 404
        case .methodNotAllowed: 405
        case .urlUsed, .alreadyDecided, .replayedCallback, .offsetMismatch: 409
        case .uploadExpired: 410
        case .unsupportedVersion: 412
        case .tooLarge: 413
        case .badType, .badContentType: 415
        case .badDimensions, .pixelBomb, .corrupt, .badCrop, .infected, .scanFailed: 422
        // tus's own status for a chunk whose Upload-Checksum does not match.
        case .checksumMismatch: 460
        case .rateLimited, .tooManyConnections, .tooManyPartialUploads: 429
        case .internalError: 500
        case .unavailable: 503
        }
    }
}

/// An error a client may see: a code from the catalogue, a human message and, where a limit
/// was hit, the limit. Every failure in a handler ends as one of these; anything else is
/// logged and answered as a generic 500 that carries only the request id. Only the
/// constructors below make one, so every message lives in this file.
public struct AppError: Error, Sendable, Equatable {
    public let code: ErrorCode
    public let message: String
    /// Extra members of the error object, such as `"limit": 5242880`.
    public let details: [String: JSONValue]
    /// Seconds for the `Retry-After` header on 429 and 503.
    public let retryAfter: Int?

    public var status: Int { code.status }

    private init(_ code: ErrorCode, _ message: String, details: [String: JSONValue] = [:], retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.retryAfter = retryAfter
    }

    /// The JSON body: `{"error": {"code", "message", ...details}}`, and the request id on 5xx.
    public func body(requestID: String?) -> JSONValue {
        var members: [(String, JSONValue)] = [("code", .string(code.rawValue)), ("message", .string(message))]
        for key in details.keys.sorted() { members.append((key, details[key]!)) }
        if status >= 500, let requestID { members.append(("request_id", .string(requestID))) }
        return .object([("error", .object(members))])
    }
}

// MARK: - The catalogue

extension AppError {
    /// A JSON body that does not parse or has the wrong shape; `expected` shows the shape.
    public static func invalidJSON(expected: String) -> AppError { AppError(.invalidJSON, "The body must be JSON: \(expected).") }
    public static func missingField(_ name: String) -> AppError { AppError(.missingField, "\(name) is required.") }
    public static let badContentLength = AppError(.badContentLength, "content_length must be a positive number of bytes.")
    public static let missingFile = AppError(.missingFile, "Send the image as multipart/form-data, field `file`.")
    public static let emptyFile = AppError(.missingFile, "The `file` part is empty.")
    public static let badResult = AppError(.badResult, "result must be clean, infected or error.")
    /// A body on a method that takes none (GET, HEAD, DELETE, OPTIONS); nginx answers it.
    public static let unexpectedBody = AppError(.unexpectedBody, "This method takes no request body.")

    public static let missingToken = AppError(.missingToken, "A bearer token or access_token cookie is required.")
    public static let invalidToken = AppError(.invalidToken, "The token is not valid.")
    public static let tokenExpired = AppError(.tokenExpired, "The token has expired.")
    public static let tokenNotYetValid = AppError(.tokenNotYetValid, "The token is not valid yet.")
    public static let tokenRevoked = AppError(.tokenRevoked, "The token has been revoked.")

    public static let badOrigin = AppError(.badOrigin, "Cookie authentication needs an allowed Origin.")
    /// A CORS preflight from an origin `auth.allowed_origins` does not list; nginx answers it.
    public static let originNotAllowed = AppError(.badOrigin, "This origin may not call the API (auth.allowed_origins).")
    /// What a signature was meant to prove: one code, a message that says which signature.
    public enum Signed: Sendable { case uploadURL, callback, downloadLink }
    public static func badSignature(_ what: Signed) -> AppError {
        switch what {
        case .uploadURL: AppError(.badSignature, "The upload URL's signature is not valid.")
        case .callback: AppError(.badSignature, "The callback's signature is not valid.")
        case .downloadLink: AppError(.badSignature, "The download link's signature is not valid.")
        }
    }
    public static let urlExpired = AppError(.urlExpired, "The upload URL has expired; request a new one.")
    public static func staleTimestamp(maxSkewSeconds: Int) -> AppError {
        AppError(.staleTimestamp, "The callback's timestamp is more than \(maxSkewSeconds / 60) minutes off.", details: ["limit": .int(maxSkewSeconds)])
    }
    public static let forbidden = AppError(.forbidden, "This media belongs to another user.")
    /// nginx refused a scrape of `/metrics` from an address `metrics.allow` does not list.
    public static let metricsForbidden = AppError(.forbidden, "Metrics are only served to the addresses in metrics.allow.")

    public static let notFound = AppError(.notFound, "Not found.")
    public static let noAvatar = AppError(.noAvatar, "This user has no avatar.")
    public static let methodNotAllowed = AppError(.methodNotAllowed, "Method not allowed on this route.")

    public static let urlUsed = AppError(.urlUsed, "This upload URL has already been used.")
    public static let alreadyDecided = AppError(.alreadyDecided, "This upload already has a verdict.")
    /// A scanner callback whose signature was seen before: each is accepted once.
    public static let replayedCallback = AppError(.replayedCallback, "This callback was already received.")

    public static func tooLarge(limit: Int) -> AppError {
        AppError(.tooLarge, "The upload is larger than \(limit) bytes.", details: ["limit": .int(limit)])
    }
    public static func badType(allowed: [String]) -> AppError {
        AppError(
            .badType, "Only \(allowed.joined(separator: ", ")) images are accepted.", details: ["allowed": .array(allowed.map { .string($0) })])
    }
    public static let animated = AppError(.badType, "Animated images are not accepted; upload a still image.")

    public static func badDimensions(width: Int, height: Int, limit: Int) -> AppError {
        AppError(
            .badDimensions, "The image is \(width)×\(height); at most \(limit) px per side is accepted.",
            details: ["limit": .int(limit), "width": .int(width), "height": .int(height)])
    }
    public static func pixelBomb(pixels: Int, limit: Int) -> AppError {
        AppError(.pixelBomb, "The image has \(pixels) pixels; at most \(limit) are accepted.", details: ["limit": .int(limit), "pixels": .int(pixels)])
    }
    public static let corrupt = AppError(.corrupt, "The image is damaged or truncated and cannot be decoded.")
    /// A crop that does not fit; `reason` says how (from the image decoder or the shape check).
    public static func badCrop(_ reason: String) -> AppError { AppError(.badCrop, reason) }
    public static let infected = AppError(.infected, "The virus scanner rejected this file.")
    public static let scanFailed = AppError(.scanFailed, "The file could not be scanned for viruses; upload it again later.")

    public static func rateLimited(retryAfter: Int, limit: Int) -> AppError {
        AppError(.rateLimited, "Too many requests; try again in \(retryAfter) s.", details: ["limit": .int(limit)], retryAfter: retryAfter)
    }
    /// nginx's per-IP limit (`limit_req`), answered by nginx itself.
    /// nginx's `limit_conn` on the upload locations: one status and one answer for its three
    /// limits (a location has one `limit_conn_status`), so the message names all three.
    public static let tooManyConnections = AppError(
        .tooManyConnections,
        "An upload to this URL is already in progress, or too many uploads are open (from your address or in all); try again shortly.",
        retryAfter: 5)

    /// A tus creation while the user has `limit` partial uploads still receiving: their bytes
    /// wait on disk, so they are bounded per user (`tus.partial_uploads_per_user`).
    public static func tooManyPartialUploads(retryAfter: Int, limit: Int) -> AppError {
        AppError(
            .tooManyPartialUploads, "You have \(limit) unfinished resumable uploads; finish or terminate one first.", details: ["limit": .int(limit)],
            retryAfter: retryAfter)
    }

    public static let addressRateLimited = AppError(
        .rateLimited, "Too many requests from this address; try again in a second.", retryAfter: 1)

    // MARK: Resumable uploads (tus 1.0)

    public static let badUploadLength = AppError(
        .badUploadLength, "Upload-Length must be a positive number of bytes (deferred lengths are not supported).")
    public static let badUploadOffset = AppError(.badUploadOffset, "Upload-Offset must be a number of bytes.")
    /// `Upload-Metadata` that does not parse, or lacks `filetype`; `problem` says which.
    public static func badMetadata(_ problem: String) -> AppError { AppError(.badMetadata, "Upload-Metadata: \(problem)") }
    public static let badChecksum = AppError(
        .badChecksum, "Upload-Checksum must be `sha1 <base64>` or `sha256 <base64>`.", details: ["allowed": .array([.string("sha1"), .string("sha256")])])
    /// The client's offset is not the server's: it must ask (HEAD) and resume from there.
    public static func offsetMismatch(expected: Int) -> AppError {
        AppError(.offsetMismatch, "Upload-Offset must be \(expected), the bytes received so far.", details: ["offset": .int(expected)])
    }
    public static let uploadExpired = AppError(.uploadExpired, "This upload has expired or was terminated; start a new one.")
    public static let unsupportedVersion = AppError(.unsupportedVersion, "Tus-Resumable must be 1.0.0.", details: ["supported": .string("1.0.0")])
    public static let badContentType = AppError(.badContentType, "A chunk must be sent as application/offset+octet-stream.")
    public static let checksumMismatch = AppError(.checksumMismatch, "The chunk does not match its Upload-Checksum; it was discarded.")

    public static let internalError = AppError(.internalError, "Internal error.")
    /// A dependency of the worker is down: names which (database, storage, scanner).
    public static func unavailable(_ component: String) -> AppError {
        AppError(.unavailable, "A dependency (\(component)) is unavailable; try again shortly.", retryAfter: 5)
    }
    /// nginx could not reach a worker pool, or it was too slow.
    public static let serviceUnavailable = AppError(.unavailable, "The service is unavailable; try again shortly.", retryAfter: 5)
}
