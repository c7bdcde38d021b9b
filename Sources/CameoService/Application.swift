public import CameoCore
import FastCGI
import Imaging
import Scanning
public import MariaDB
import CameoSystem

/// Everything a worker process holds for its lifetime: config, one database connection, the
/// verifiers. Built once at start; handlers get it by reference.
public final class Application {
    let config: Config
    let db: Connection
    let repository: MediaRepository
    let storage: MediaStorage
    let jwt: JWTVerifier
    let presigner: SigV4Presigner
    let renderer: AvatarRenderer
    let scanner: any VirusScanner
    /// Download links and callback signatures of the external scanner mode.
    let links: QuarantineLinks?
    /// The host clients use, e.g. `127.0.0.1:8080`: the `host` that upload URLs are signed for.
    let publicHost: String

    public init(config: Config) throws {
        self.config = config
        db = Connection(
            options: ConnectOptions(
                unixSocket: config.database.socket, host: config.database.host, port: UInt32(config.database.port),
                user: config.database.user, password: config.database.password, database: config.database.name))
        repository = MediaRepository(db: db)
        storage = MediaStorage(root: config.mediaRoot)
        jwt = try JWTVerifier(settings: config.auth)
        presigner = SigV4Presigner(settings: config.presign)
        renderer = AvatarRenderer(
            limits: ImageLimits(maxSide: config.limits.maxSide, maxPixels: config.limits.maxPixels),
            sizes: config.output.sizes, quality: Float(config.output.webpQuality))
        // The callback and download routes exist only in external mode (404 otherwise), so a
        // leftover secret cannot mark a clamd-mode upload clean.
        links = config.scanner.mode == .external ? config.scanner.callbackSecret.map { QuarantineLinks(secret: Array($0.utf8)) } : nil
        switch config.scanner.mode {
        case .clamd:
            scanner = ClamdClient(socketPath: config.scanner.clamdSocket, timeoutSeconds: config.scanner.timeoutSeconds)
        case .external:
            // Config validation guarantees the URL and the secret in external mode.
            scanner = ExternalScanner(
                announcer: ScanAnnouncer(url: config.scanner.externalURL ?? "", timeoutSeconds: config.scanner.timeoutSeconds),
                links: links ?? QuarantineLinks(secret: []), publicBaseURL: config.publicBaseURL)
        }
        let afterScheme = config.publicBaseURL.split(separator: "://", maxSplits: 1).last.map(String.init) ?? ""
        publicHost = String(afterScheme.split(separator: "/", maxSplits: 1).first ?? "")
    }

    /// Handles one request: dispatch on the route nginx named, map every error once.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let started = Self.monotonicMilliseconds()
        var response: HTTPResponse
        var logError: String? = nil
        do {
            response = try dispatch(request)
        } catch let error as AppError {
            response = .error(error, requestID: request.requestID)
        } catch {
            // Internal detail goes to the log only; the client gets the request id.
            logError = String(describing: error)
            response = .error(classify(error), requestID: request.requestID)
        }
        Log.request(request, status: response.status, milliseconds: Self.monotonicMilliseconds() - started, error: logError)
        return response
    }

    private func dispatch(_ request: HTTPRequest) throws -> HTTPResponse {
        switch request.route {
        case "presign": return try presign(request)
        case "verify_upload": return verifyUpload(request)
        case "upload": return try upload(request)
        case "media_status": return try mediaStatus(request)
        case "profile": return try profile(request)
        case "health": return health(request)
        case "scan_callback": return try scanCallback(request)
        case "quarantine_download": return try quarantineDownload(request)
        default: throw AppError.notFound
        }
    }

    /// Dependency failures become 503 with `Retry-After`; anything else is a 500.
    func classify(_ error: any Error) -> AppError {
        switch error {
        case is DatabaseError: return .unavailable("database")
        case let error as SystemError where error.isTooLarge: return .tooLarge(limit: config.limits.maxUploadBytes)
        case is SystemError: return .unavailable("storage")
        case FastCGIError.bodyTooLarge(let limit): return .tooLarge(limit: limit)
        default: return .internalError
        }
    }

    static func now() -> Int { SystemClock().epochSeconds }

    static func monotonicMilliseconds() -> Int { SystemClock().monotonicMilliseconds }

    /// Requires `method`, else 405.
    func require(_ request: HTTPRequest, _ methods: String...) throws(AppError) {
        guard methods.contains(request.method) else { throw .methodNotAllowed }
    }

    /// The versioned public URL of a user's avatar file.
    func avatarURL(userID: String, fileName: String, version: String) -> String {
        "\(config.cdnBaseURL)/profile-media/\(userID)/\(fileName)?v=\(version)"
    }

    /// `{"512": url, "256": url, ...}` for the sizes on disk.
    func variantURLs(userID: String, sizes: [Int], version: String) -> JSONValue {
        let largest = sizes.max() ?? 0
        return .object(
            sizes.sorted(by: >).map {
                (String($0), .string(avatarURL(userID: userID, fileName: MediaStorage.fileName(size: $0, largest: largest), version: version)))
            })
    }
}

/// One structured line per request on standard error (journald keeps it), keyed by nginx's
/// request id. Secrets, tokens and query strings (which carry signatures) are never logged.
enum Log {
    static func request(_ request: HTTPRequest, status: Int, milliseconds: Int, error: String?) {
        var line = "level=\(status >= 500 ? "error" : "info") request_id=\(request.requestID) route=\(request.route)"
        line += " method=\(request.method) path=\(request.path) status=\(status) ms=\(milliseconds) pid=\(SystemProcess.id)"
        if let error { line += " error=\(quoted(error))" }
        write(line)
    }

    static func message(_ text: String) { write("level=info msg=\(quoted(text)) pid=\(SystemProcess.id)") }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: " ") + "\""
    }

    static func write(_ line: String) { SystemProcess.writeError(line) }
}
