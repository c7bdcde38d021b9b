public import CameoCore

/// How a request's body reached the worker. nginx buffers every body before a worker sees
/// the request: uploads arrive as the file it wrote, small JSON bodies over the FastCGI stream.
public enum RequestBody: Sendable, Equatable {
    case none
    /// Read from the FastCGI stream (bounded by the worker).
    case bytes([UInt8])
    /// The file nginx buffered the body into (`REQUEST_BODY_FILE`), on the media file system.
    case file(path: String)
    /// The stream could not be read within its bound.
    case unreadable(AppError)
}

/// A request as the handlers see it: built from the FastCGI parameters nginx sent, with no
/// C types. Header names are lower-case.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The URI of the location nginx matched (`DOCUMENT_URI`): the route. For the auth_request
    /// subrequest it is that location's, while `path` stays the client's.
    public var documentURI: String
    /// The path of the client's request URI, without the query.
    public var path: String
    /// The raw query string, without `?`.
    public var rawQuery: String
    public var headers: [String: String]
    /// nginx's `$request_id`, echoed in logs and 5xx bodies.
    public var requestID: String
    public var body: RequestBody
    /// Seconds since nginx read the request's first byte (`CAMEO_REQUEST_AGE`, set by nginx on
    /// the upload location only); nil elsewhere.
    public var age: Double?

    public init(
        method: String, documentURI: String, path: String, rawQuery: String = "", headers: [String: String] = [:], requestID: String = "-",
        body: RequestBody = .none, age: Double? = nil
    ) {
        self.method = method
        self.documentURI = documentURI
        self.path = path
        self.rawQuery = rawQuery
        self.headers = headers
        self.requestID = requestID
        self.body = body
        self.age = age
    }

    /// Builds a request from CGI parameters (`REQUEST_METHOD`, `DOCUMENT_URI`, `REQUEST_URI`,
    /// `HTTP_*`, ...).
    public init(cgi parameters: [String: String], body: RequestBody) {
        var headers: [String: String] = [:]
        for (name, value) in parameters where name.hasPrefix("HTTP_") {
            headers[Self.headerName(cgi: name)] = value
        }
        if let type = parameters["CONTENT_TYPE"], !type.isEmpty { headers["content-type"] = type }
        if let length = parameters["CONTENT_LENGTH"], !length.isEmpty { headers["content-length"] = length }
        // nginx's `$http_host` (see nginx/snippets/cameo-fastcgi.conf): the Host header verbatim.
        if let host = parameters["CAMEO_HOST"], !host.isEmpty { headers["host"] = host }
        let (path, query) = Self.split(uri: parameters["REQUEST_URI"] ?? "/")
        self.init(
            method: parameters["REQUEST_METHOD"] ?? "GET", documentURI: parameters["DOCUMENT_URI"] ?? path, path: path, rawQuery: query,
            headers: headers, requestID: parameters["CAMEO_REQUEST_ID"] ?? "-", body: body,
            age: parameters["CAMEO_REQUEST_AGE"].flatMap(Double.init).flatMap { $0 >= 0 && $0.isFinite ? $0 : nil })
    }

    /// `HTTP_X_FORWARDED_FOR` → `x-forwarded-for`.
    static func headerName(cgi name: String) -> String {
        String(decoding: name.utf8.dropFirst(5).map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "_"): return UInt8(ascii: "-")
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte + 32
            default: return byte
            }
        }, as: UTF8.self)
    }

    static func split(uri: String) -> (String, String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }

    /// Requires one of `methods`, else 405.
    func require(_ methods: String...) throws(AppError) {
        guard methods.contains(method) else { throw .methodNotAllowed }
    }

    /// A body read from the stream, at most `limit` bytes (JSON, a tus chunk).
    func smallBody(limit: Int) throws(AppError) -> [UInt8] {
        switch body {
        case .none: return []
        case .bytes(let bytes):
            guard bytes.count <= limit else { throw .tooLarge(limit: limit) }
            return bytes
        case .unreadable(let error): throw error
        // A route read into memory (Router.intake) never has its body in a file.
        case .file: throw .tooLarge(limit: limit)
        }
    }

    /// The query parameters in order, percent-decoded (`+` is not a space in SigV4 URLs).
    public var queryItems: [(String, String)] {
        rawQuery.split(separator: "&").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.percentDecode(parts[0]), parts.count > 1 ? Self.percentDecode(parts[1]) : "")
        }
    }

    static func percentDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The value of one cookie, if sent.
    public func cookie(_ name: String) -> String? {
        guard let header = headers["cookie"] else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.trimmingWhitespace()
            if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
        }
        return nil
    }
}

/// A response: status, headers and body bytes.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Facts for the request's log line beyond route, status and code (`media=…`,
    /// `appended=…`): what the handler did, never what the client sent.
    public var logFields: [(String, String)] = []

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response (`application/json`, never cached).
    public static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")] + headers,
            body: Array(value.serialized().utf8))
    }

    /// The response for an `AppError`, with `Retry-After` where it applies.
    public static func error(_ error: AppError, requestID: String?) -> HTTPResponse {
        // For nginx's access log, which hides it from the client (the body names it already).
        var headers: [(String, String)] = [("X-Cameo-Error-Code", error.code.rawValue)]
        if let retryAfter = error.retryAfter { headers.append(("Retry-After", String(retryAfter))) }
        return .json(error.status, error.body(requestID: requestID), headers: headers)
    }

    /// The first value of a header (case-insensitive name).
    public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

    /// Standard reason phrases for the statuses Cameo answers with.
    public var reason: String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 410: "Gone"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 460: "Checksum Mismatch"
        case 503: "Service Unavailable"
        default: status < 500 ? "Client Error" : "Internal Server Error"
        }
    }
}
