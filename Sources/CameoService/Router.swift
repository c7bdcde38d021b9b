public import CameoCore
import CameoMetrics
import CameoSystem
import MediaStore

/// One case per nginx location that passes to a worker (nginx/sites-available/cameo.conf.in).
/// The route is read from the location nginx matched (`DOCUMENT_URI`), so the site names no
/// route of its own and cannot disagree with this enum.
public enum Route: Equatable, Sendable {
    /// `POST /users/me/avatar/upload`
    case presign
    /// `auth_request` subrequest of `PUT /uploads/{id}`, before nginx reads the body.
    case verifyUpload(MediaID)
    /// `auth_request` subrequest of the multipart `POST /api/v1/profile/me/avatar`: the token,
    /// before nginx reads the body.
    case verifyToken
    /// `PUT /uploads/{id}`, once nginx has buffered the body.
    case upload(MediaID)
    /// `GET /media/{id}`
    case mediaStatus(MediaID)
    /// `GET|POST|DELETE /api/v1/profile/me/avatar` (nginx rewrites the POST to
    /// `profileUploadLocation`, which checks the token first)
    case profile
    /// `POST /media/virus-scan-callback`
    case scanCallback
    /// `GET /quarantine-download/{id}`
    case quarantineDownload(MediaID)
    /// `GET /health/avatar`: readiness (database, storage; the scanner reported)
    case health
    /// `GET /health/live`: liveness (a worker answers; nothing else is asked)
    case liveness
    /// `POST /tus/`: a resumable upload is created (nginx passes it on from `tusCreateLocation`
    /// once `verifyTus` allowed it and the first chunk, if any, is buffered).
    case tusCreate
    /// `auth_request` subrequest of a tus creation (nil) or PATCH, before nginx reads the body.
    case verifyTus(MediaID?)
    /// `HEAD|PATCH|DELETE /tus/{id}` (a PATCH arrives from `tusPatchLocation`).
    case tus(MediaID)

    /// The internal locations nginx's `auth_request` calls, and the one of the direct upload.
    public static let verifyUploadLocation = "/_cameo/verify-upload"
    public static let verifyTokenLocation = "/_cameo/verify-token"
    public static let profileUploadLocation = "/_cameo/profile-upload"
    public static let verifyTusLocation = "/_cameo/verify-tus"
    public static let tusCreateLocation = "/_cameo/tus-create"
    public static let tusPatchLocation = "/_cameo/tus-patch"

    /// The route of a request, or nil for a path no Cameo location passes on.
    public init?(_ request: HTTPRequest) {
        let uri = request.documentURI
        switch uri {
        case "/users/me/avatar/upload": self = .presign
        case "/api/v1/profile/me/avatar", Self.profileUploadLocation: self = .profile
        case Self.verifyTokenLocation: self = .verifyToken
        case "/media/virus-scan-callback": self = .scanCallback
        case "/health/avatar": self = .health
        case "/health/live": self = .liveness
        case "/tus/", Self.tusCreateLocation: self = .tusCreate
        case Self.verifyTusLocation:
            // A subrequest: the client's path says which upload, or a creation.
            if request.path == "/tus/" {
                self = .verifyTus(nil)
            } else {
                guard let id = Self.mediaID(in: request.path, after: "/tus/") else { return nil }
                self = .verifyTus(id)
            }
        case Self.tusPatchLocation:
            guard let id = Self.mediaID(in: request.path, after: "/tus/") else { return nil }
            self = .tus(id)
        case Self.verifyUploadLocation:
            // A subrequest: the upload's own path is the client's request URI.
            guard let id = Self.mediaID(in: request.path, after: "/uploads/") else { return nil }
            self = .verifyUpload(id)
        default:
            if let id = Self.mediaID(in: uri, after: "/uploads/") {
                self = .upload(id)
            } else if let id = Self.mediaID(in: uri, after: "/media/") {
                self = .mediaStatus(id)
            } else if let id = Self.mediaID(in: uri, after: "/tus/") {
                self = .tus(id)
            } else if let id = Self.mediaID(in: uri, after: "/quarantine-download/") {
                self = .quarantineDownload(id)
            } else {
                return nil
            }
        }
    }

    private static func mediaID(in path: String, after prefix: String) -> MediaID? {
        guard path.hasPrefix(prefix) else { return nil }
        return MediaID(path.dropFirst(prefix.count))
    }
}

/// Dispatches each request to its route's handler, maps every error to HTTP once, and writes
/// the request's log line.
public struct Router: Sendable {
    let presign: PresignHandler
    let verifyUpload: VerifyUploadHandler
    let upload: UploadHandler
    let mediaStatus: MediaStatusHandler
    let profile: ProfileHandler
    /// Only in external scanner mode; otherwise its routes answer 404.
    let externalScanner: (callback: ScanCallbackHandler, download: QuarantineDownloadHandler)?
    let tus: TusHandler
    let health: HealthHandler
    let clock: any TimeSource
    /// For the 413 of a quarantined file over the limit.
    let maxUploadBytes: Int
    /// Hears every answered request (`cameo_http_requests_total`).
    let metrics: any MetricsSink

    /// Handles one request. Never throws: every failure becomes a JSON error response.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        let started = clock.monotonicNanoseconds
        let route = Route(request)
        // The auth_request checks answer in their own envelope, even for a path they cannot read.
        let isUploadCheck = [Route.verifyUploadLocation, Route.verifyTokenLocation, Route.verifyTusLocation].contains(request.documentURI)
        var response: HTTPResponse
        var logged: String? = nil
        var refusalCode: ErrorCode? = nil
        do {
            guard let route else {
                // A presigned URL's path that names no upload fails as its signature would; any
                // other path is simply not there.
                throw request.documentURI == Route.verifyUploadLocation ? AppError.badSignature(.uploadURL) : AppError.notFound
            }
            response = try dispatch(route, request)
        } catch {
            let refusal: AppError
            if let error = error as? AppError {
                refusal = error
            } else {
                // Internal detail goes to the log only; the client gets the request id.
                logged = String(describing: error)
                refusal = classify(error)
            }
            refusalCode = refusal.code
            response = .error(refusal, requestID: request.requestID)
            if isUploadCheck { response = VerifyUploadHandler.denial(refusal, requestID: request.requestID) }
        }
        if route?.isTus == true {
            // Every tus answer names the protocol version; a refused version says which one is spoken.
            response.headers.append(("Tus-Resumable", TusHandler.version))
            if refusalCode == .unsupportedVersion { response.headers.append(("Tus-Version", TusHandler.version)) }
        }
        let nanoseconds = clock.monotonicNanoseconds - started
        Log.request(
            request, route: route, status: response.status, milliseconds: nanoseconds / 1_000_000, code: refusalCode, error: logged,
            fields: response.logFields)
        metrics.record(.request(route: route?.metricName ?? "none", status: response.status, seconds: Double(nanoseconds) / 1e9))
        return response
    }

    private func dispatch(_ route: Route, _ request: HTTPRequest) throws -> HTTPResponse {
        switch route {
        case .presign: return try presign.handle(request)
        case .verifyUpload(let id): return try verifyUpload.handle(request, mediaID: id)
        case .verifyToken:
            _ = try profile.authenticator.authenticate(request)
            return HTTPResponse(status: 204)
        case .upload(let id): return try upload.handle(request, mediaID: id)
        case .mediaStatus(let id): return try mediaStatus.handle(request, mediaID: id)
        case .profile: return try profile.handle(request)
        case .scanCallback:
            guard let externalScanner else { throw AppError.notFound }
            return try externalScanner.callback.handle(request)
        case .quarantineDownload(let id):
            guard let externalScanner else { throw AppError.notFound }
            return try externalScanner.download.handle(request, mediaID: id)
        case .tusCreate: return try tus.create(request)
        case .verifyTus(let id): return try tus.verify(request, mediaID: id)
        case .tus(let id): return try tus.handle(request, mediaID: id)
        case .health: return health.handle(request)
        case .liveness: return .json(200, .object([("status", .string("alive"))]), headers: [("Cache-Control", "no-store")])
        }
    }

    /// Dependency failures become 503 with `Retry-After`; anything else is a 500.
    func classify(_ error: any Error) -> AppError {
        switch error {
        case is StoreError: return .unavailable("database")
        case let error as SystemError where error.isTooLarge: return .tooLarge(limit: maxUploadBytes)
        case is SystemError: return .unavailable("storage")
        default: return .internalError
        }
    }
}

/// One structured line per request on standard error (journald keeps it), keyed by nginx's
/// request id, with the error code of a refusal. Secrets, tokens and query strings (which
/// carry signatures) are never logged.
enum Log {
    static func request(
        _ request: HTTPRequest, route: Route?, status: Int, milliseconds: Int, code: ErrorCode?, error: String?, fields: [(String, String)] = []
    ) {
        var line = "level=\(status >= 500 ? "error" : "info") request_id=\(request.requestID) route=\(route?.metricName ?? "none")"
        line += " method=\(request.method) path=\(request.path) status=\(status) ms=\(milliseconds) pid=\(SystemProcess.id)"
        if let code { line += " code=\(code.rawValue)" }
        for (name, value) in fields { line += " \(name)=\(value)" }
        if let error { line += " error=\(quoted(error))" }
        SystemProcess.writeError(line)
    }

    static func message(_ text: String) { SystemProcess.writeError("level=info msg=\(quoted(text)) pid=\(SystemProcess.id)") }

    /// A value as one quoted token: quotes and backslashes escaped, and every control character
    /// (CR, LF, ESC, ...) a space, so nothing a client or a file chose can start a log line.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            default: out.unicodeScalars.append(scalar.properties.generalCategory == .control ? " " : scalar)
            }
        }
        return out + "\""
    }
}

extension Route {
    /// The route's name in log lines and metric labels.
    public var metricName: String {
        switch self {
        case .presign: "presign"
        case .verifyUpload: "verify_upload"
        case .verifyToken: "verify_token"
        case .upload: "upload"
        case .mediaStatus: "media_status"
        case .profile: "profile"
        case .scanCallback: "scan_callback"
        case .quarantineDownload: "quarantine_download"
        case .health: "health"
        case .liveness: "liveness"
        case .tusCreate: "tus_create"
        case .verifyTus: "verify_tus"
        case .tus: "tus"
        }
    }

    /// The tus routes, whose every answer carries `Tus-Resumable`.
    var isTus: Bool {
        switch self {
        case .tusCreate, .verifyTus, .tus: true
        default: false
        }
    }
}
