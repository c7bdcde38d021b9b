/// An error a client may see: HTTP status, a stable machine code, a human message and, where a
/// limit was hit, the limit. Every failure in a handler ends as one of these; anything else is
/// logged and answered as a generic 500 that carries only the request id.
public struct AppError: Error, Sendable, Equatable {
    public let status: Int
    public let code: String
    public let message: String
    /// Extra members of the error object, such as `"limit": 5242880`.
    public let details: [String: JSONValue]
    /// Seconds for the `Retry-After` header on 429 and 503.
    public let retryAfter: Int?

    public init(status: Int, code: String, message: String, details: [String: JSONValue] = [:], retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retryAfter = retryAfter
    }

    /// The JSON body: `{"error": {"code", "message", ...details}}`.
    public func body(requestID: String?) -> JSONValue {
        var members: [(String, JSONValue)] = [("code", .string(code)), ("message", .string(message))]
        for key in details.keys.sorted() { members.append((key, details[key]!)) }
        if status >= 500, let requestID { members.append(("request_id", .string(requestID))) }
        return .object([("error", .object(members))])
    }
}

// The catalogue of errors, one place for every status and code the API answers with.
extension AppError {
    public static func badRequest(_ message: String, code: String = "bad_request") -> AppError {
        AppError(status: 400, code: code, message: message)
    }
    public static let missingToken = AppError(status: 401, code: "missing_token", message: "A bearer token or access_token cookie is required.")
    public static let invalidToken = AppError(status: 401, code: "invalid_token", message: "The token is not valid.")
    public static let tokenExpired = AppError(status: 401, code: "token_expired", message: "The token has expired.")
    public static let tokenNotYetValid = AppError(status: 401, code: "token_not_yet_valid", message: "The token is not valid yet.")
    public static let tokenRevoked = AppError(status: 401, code: "token_revoked", message: "The token has been revoked.")
    public static let badOrigin = AppError(status: 403, code: "bad_origin", message: "Cookie authentication needs an allowed Origin.")
    public static let badSignature = AppError(status: 403, code: "bad_signature", message: "The upload URL's signature is not valid.")
    public static let urlExpired = AppError(status: 403, code: "url_expired", message: "The upload URL has expired; request a new one.")
    public static let forbidden = AppError(status: 403, code: "forbidden", message: "This media belongs to another user.")
    public static let notFound = AppError(status: 404, code: "not_found", message: "Not found.")
    public static let noAvatar = AppError(status: 404, code: "no_avatar", message: "This user has no avatar.")
    public static let methodNotAllowed = AppError(status: 405, code: "method_not_allowed", message: "Method not allowed on this route.")
    public static let urlUsed = AppError(status: 409, code: "url_used", message: "This upload URL has already been used.")
    public static func tooLarge(limit: Int) -> AppError {
        AppError(status: 413, code: "too_large", message: "The upload is larger than \(limit) bytes.", details: ["limit": .int(limit)])
    }
    public static func badType(allowed: [String]) -> AppError {
        AppError(
            status: 415, code: "bad_type", message: "Only \(allowed.joined(separator: ", ")) images are accepted.",
            details: ["allowed": .array(allowed.map { .string($0) })])
    }
    public static func badDimensions(width: Int, height: Int, limit: Int) -> AppError {
        AppError(
            status: 422, code: "bad_dimensions", message: "The image is \(width)×\(height); at most \(limit) px per side is accepted.",
            details: ["limit": .int(limit), "width": .int(width), "height": .int(height)])
    }
    public static func pixelBomb(pixels: Int, limit: Int) -> AppError {
        AppError(
            status: 422, code: "pixel_bomb", message: "The image has \(pixels) pixels; at most \(limit) are accepted.",
            details: ["limit": .int(limit), "pixels": .int(pixels)])
    }
    public static let animated = AppError(
        status: 415, code: "bad_type", message: "Animated images are not accepted; upload a still image.")
    public static let corrupt = AppError(status: 422, code: "corrupt", message: "The image is damaged or truncated and cannot be decoded.")
    public static let badCallbackSignature = AppError(
        status: 403, code: "bad_signature", message: "The callback's signature is not valid.")
    public static let staleCallback = AppError(
        status: 403, code: "stale_timestamp", message: "The callback's timestamp is more than 5 minutes off.")
    public static let alreadyDecided = AppError(
        status: 409, code: "already_decided", message: "This upload already has a verdict.")
    public static let infected = AppError(
        status: 422, code: "infected", message: "The virus scanner rejected this file.")
    public static let scanFailed = AppError(
        status: 422, code: "scan_failed", message: "The file could not be scanned for viruses; upload it again later.")
    public static func badCrop(_ message: String) -> AppError { AppError(status: 422, code: "bad_crop", message: message) }
    public static func rateLimited(retryAfter: Int, limit: Int) -> AppError {
        AppError(
            status: 429, code: "rate_limited", message: "Too many requests; try again in \(retryAfter) s.",
            details: ["limit": .int(limit)], retryAfter: retryAfter)
    }
    public static func unavailable(_ component: String) -> AppError {
        AppError(status: 503, code: "unavailable", message: "A dependency (\(component)) is unavailable; try again shortly.", retryAfter: 5)
    }
    public static let internalError = AppError(status: 500, code: "internal", message: "Internal error.")
}
