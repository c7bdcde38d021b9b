public import CameoCore
public import CameoMetrics
public import CameoService
public import CameoSystem
import CameoCrypto
import Foundation
public import MediaStore

/// A whole service in process: the real router, handlers and pipeline over a store (in memory
/// unless given), a scripted scanner, a manual clock and a media root in a temporary folder.
/// Requests are built as nginx would send them, bodies buffered to a file in `incoming/`.
public final class ServiceHarness {
    public let clock: ManualClock
    public let store: any MediaStore
    public let scanner: ScriptedScanner
    public let root: MediaRoot
    public let config: Config
    public let service: Service
    public static let secret = "3b8e51f0c9a2d74e6f1b08c5a93d27e4b6f0d95c1e7a2b48f3c60e9d1a7b5f24"
    public static let callbackSecret = "e71c0a9d4f2b86e35c1d09a7f4b2e863d5c1f08b3e9a26d7c4f1b05e8a3d9c62"

    /// `settings` override config keys (`scanner.mode`, `scanner.max_attempts`, ...).
    public init(
        settings: [String: String] = [:], store: (any MediaStore)? = nil, scanner: ScriptedScanner = ScriptedScanner(),
        clock: ManualClock = ManualClock(), mediaRoot: String? = nil, hooks: PipelineHooks = PipelineHooks(),
        metrics: any MetricsSink = NoMetrics()
    ) throws {
        self.clock = clock
        self.scanner = scanner
        let path = mediaRoot ?? "/tmp/cameo-harness-\(MediaID.random())"
        root = MediaRoot(path)
        for folder in [path, root.quarantine, root.incoming, root.published] { try FileSystem.makeDirectory(folder, mode: 0o700) }
        var values = [
            "public_base_url": "http://127.0.0.1:8080", "media_root": path, "auth.algorithms": "HS256", "auth.hs256_secret": Self.secret,
            "presign.keys": "k1:a4f09e2c7b1d58e36f0a2c9d4b7e1f85c3a6e0d92b7f14c58a3e6d0b9f2c71", "nginx.fastcgi_secret": "9c4e1b7a2f0d83e56b1c94a7e2d05f3b8a6c1e9d47b20f5a3c8e61d9b4f07a2e", "scanner.callback_secret": Self.callbackSecret,
            "scanner.external_url": "http://127.0.0.1:9/scan",
        ]
        values.merge(settings) { _, new in new }
        config = try Config(values: values, environment: [:])
        self.store = store ?? InMemoryMediaStore(clock: clock)
        service = try Service(config: config, store: self.store, clock: clock, scanner: scanner, hooks: hooks, metrics: metrics)
        ownsRoot = mediaRoot == nil
    }

    private let ownsRoot: Bool

    deinit { if ownsRoot { Self.removeTree(root.path) } }

    static func removeTree(_ path: String) {
        for entry in Directory.entries(of: path) {
            if entry.kind == .directory { removeTree(entry.path) } else { FileSystem.remove(entry.path) }
        }
        FileSystem.removeDirectory(path)
    }

    // MARK: Requests

    public func token(_ user: String, ttl: Int = 600, jti: String? = nil) -> String {
        JWTMinter.hs256(secret: Self.secret, userID: user, ttlSeconds: ttl, now: clock.epochSeconds, issuer: nil, audience: nil, tokenID: jti).token
    }

    public func send(
        _ method: String, _ uri: String, headers: [String: String] = [:], body: RequestBody = .none, documentURI: String? = nil,
        age: Double? = nil
    ) -> HTTPResponse {
        let (path, query) = uri.firstIndex(of: "?").map { (String(uri[..<$0]), String(uri[uri.index(after: $0)...])) } ?? (uri, "")
        var all = ["host": "127.0.0.1:8080"]
        all.merge(headers) { _, new in new }
        return service.router.respond(
            to: HTTPRequest(
                method: method, documentURI: documentURI ?? path, path: path, rawQuery: query, headers: all, requestID: "test", body: body, age: age))
    }

    public func presign(_ user: String, type: String = "image/png", length: Int, crop: [String: Int]? = nil, token: String? = nil) -> HTTPResponse {
        var object: [(String, JSONValue)] = [("content_type", .string(type)), ("content_length", .int(length))]
        if let crop { object.append(("crop", .object(crop.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }))) }
        return send(
            "POST", "/users/me/avatar/upload", headers: ["authorization": "Bearer \(token ?? self.token(user))"],
            body: .bytes(Array(JSONValue.object(object).serialized().utf8)))
    }

    /// A presigned URL's path and query, from a presign response.
    public func uploadURI(_ presigned: HTTPResponse) throws -> String {
        let url = try Self.json(presigned)["upload_url"] as? String ?? ""
        return String(url.dropFirst(config.publicBaseURL.count))
    }

    /// The `auth_request` check nginx makes before reading the body.
    public func verify(_ uri: String, type: String = "image/png", length: Int) -> HTTPResponse {
        send("PUT", uri, headers: ["content-type": type, "content-length": String(length)], documentURI: Route.verifyUploadLocation)
    }

    /// A PUT whose body nginx buffered to a file in `incoming/`.
    /// Without `declaringLength` it arrives as nginx passes a chunked body: no Content-Length.
    /// `age`: how long ago the request started, as nginx tells the worker.
    public func put(_ uri: String, _ bytes: [UInt8], type: String = "image/png", declaringLength: Bool = true, age: Double? = nil) throws
        -> HTTPResponse
    {
        let file = root.incoming + "/\(MediaID.random())"
        try FileSystem.writeNew(bytes, to: file)
        var headers = ["content-type": type]
        if declaringLength { headers["content-length"] = String(bytes.count) }
        return send("PUT", uri, headers: headers, body: .file(path: file), age: age)
    }

    /// Presign and PUT in one go.
    public func upload(_ user: String, _ bytes: [UInt8], type: String = "image/png", crop: [String: Int]? = nil) throws -> (MediaID, HTTPResponse) {
        let presigned = presign(user, type: type, length: bytes.count, crop: crop)
        guard presigned.status == 201 else { return (MediaID.random(), presigned) }
        let id = MediaID(try Self.json(presigned)["media_id"] as? String ?? "")!
        return (id, try put(try uploadURI(presigned), bytes, type: type))
    }

    public func status(_ user: String, _ id: MediaID) -> HTTPResponse {
        send("GET", "/media/\(id)", headers: ["authorization": "Bearer \(token(user))"])
    }

    public func profile(_ method: String, _ user: String) -> HTTPResponse {
        send(method, "/api/v1/profile/me/avatar", headers: ["authorization": "Bearer \(token(user))"])
    }

    /// A multipart POST of `file` (and `crop`), buffered to a file as nginx does.
    public func postAvatar(_ user: String, _ bytes: [UInt8], crop: String? = nil) throws -> HTTPResponse {
        let boundary = "harness\(MediaID.random())"
        var form = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n".utf8) + bytes
        if let crop { form += Array("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"crop\"\r\n\r\n\(crop)".utf8) }
        form += Array("\r\n--\(boundary)--\r\n".utf8)
        let file = root.incoming + "/\(MediaID.random())"
        try FileSystem.writeNew(form, to: file)
        return send(
            "POST", "/api/v1/profile/me/avatar",
            headers: ["authorization": "Bearer \(token(user))", "content-type": "multipart/form-data; boundary=\(boundary)"], body: .file(path: file))
    }

    /// An external scanner's callback, signed with the configured secret unless told otherwise.
    public func callback(_ id: MediaID, result: String, signature: String? = nil, secret: String = callbackSecret, skew: Int = 0) -> HTTPResponse {
        var members: [(String, JSONValue)] = [("media_id", .string(id.rawValue)), ("result", .string(result))]
        if let signature { members.append(("signature", .string(signature))) }
        let body = Array(JSONValue.object(members).serialized().utf8)
        let timestamp = String(clock.epochSeconds + skew)
        let mac = Digest.hmacSHA256(key: Array(secret.utf8), Array("\(timestamp).".utf8) + body).hexString
        return send(
            "POST", "/media/virus-scan-callback", headers: ["x-cameo-timestamp": timestamp, "x-cameo-signature": mac], body: .bytes(body))
    }

    // MARK: Looking

    public static func json(_ response: HTTPResponse) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    /// The error code of a JSON error response.
    public static func code(_ response: HTTPResponse) -> String? {
        ((try? json(response))?["error"] as? [String: Any])?["code"] as? String
    }

    /// Names in a folder under the media root (`quarantine`, `profile-media/alice`, ...).
    public func names(in folder: String) -> [String] { Directory.entries(of: root.path + "/" + folder).map(\.name).sorted() }
}
