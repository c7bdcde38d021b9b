import CameoCrypto

/// AWS Signature Version 4 query-string presigning, the scheme S3 uses, so any SigV4
/// implementation (botocore, for one) computes the same signature for the same inputs.
///
/// Cameo signs `PUT` on the exact path, the `host` and `content-type` headers, and its own
/// `X-Cameo-Max-Bytes` query parameter, which bounds the body length; the payload is
/// `UNSIGNED-PAYLOAD` because nginx has not read the body when the signature is checked.
public struct SigV4Presigner: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let service = "s3"
    public static let maxBytesParameter = "X-Cameo-Max-Bytes"
    static let signedHeaders = "content-type;host"

    private let keys: [String: String]
    private let activeKeyID: String
    private let region: String

    public init(keys: [String: String], activeKeyID: String, region: String) {
        self.keys = keys
        self.activeKeyID = activeKeyID
        self.region = region
    }

    public init(settings: Config.PresignSettings) {
        self.init(keys: settings.keys, activeKeyID: settings.activeKeyID, region: settings.region)
    }

    /// What a presigned request is about: everything the signature covers.
    public struct Scope: Sendable, Equatable {
        public var method: String
        public var host: String
        public var path: String
        public var contentType: String
        public var maxBytes: Int
        public init(method: String, host: String, path: String, contentType: String, maxBytes: Int) {
            self.method = method
            self.host = host
            self.path = path
            self.contentType = contentType
            self.maxBytes = maxBytes
        }
    }

    /// The query string (without `?`) that presigns `scope` for `expires` seconds from `now`.
    public func presignedQuery(for scope: Scope, now: Int, expires: Int) -> String {
        let timestamp = UTCTimestamp(epochSeconds: now)
        var parameters = authParameters(keyID: activeKeyID, timestamp: timestamp, expires: expires)
        parameters.append((Self.maxBytesParameter, String(scope.maxBytes)))
        let signature = sign(scope: scope, parameters: parameters, keyID: activeKeyID, timestamp: timestamp)
        return Self.canonicalQuery(parameters) + "&X-Amz-Signature=" + signature
    }

    /// Why a presigned request was refused.
    public enum Rejection: Error, Sendable, Equatable {
        /// Missing or malformed parameters, unknown key, or a signature that does not match.
        case badSignature
        /// The signature is right but the URL's lifetime is over.
        case expired
    }

    /// The verified parameters of a presigned request.
    public struct Verified: Sendable, Equatable {
        public let maxBytes: Int
        public let expiresAt: Int
    }

    /// Checks a presigned request: parameters, signature (constant-time), then expiry. The
    /// signature is checked before the expiry so a forged URL never learns more than "bad".
    public func verify(
        method: String, host: String, path: String, contentType: String, query: [(String, String)], now: Int, maxLifetime: Int
    ) -> Result<Verified, Rejection> {
        var values: [String: String] = [:]
        for (name, value) in query {
            // A repeated parameter is ambiguous: refuse it instead of guessing which one counts.
            guard values.updateValue(value, forKey: name) == nil else { return .failure(.badSignature) }
        }
        guard values["X-Amz-Algorithm"] == Self.algorithm, values["X-Amz-SignedHeaders"] == Self.signedHeaders,
            let credential = values["X-Amz-Credential"], let date = values["X-Amz-Date"],
            let expiresText = values["X-Amz-Expires"], let expires = Int(expiresText), expires > 0, expires <= maxLifetime,
            let maxBytesText = values[Self.maxBytesParameter], let maxBytes = Int(maxBytesText), maxBytes > 0,
            let signature = values["X-Amz-Signature"], let timestamp = UTCTimestamp(amzDate: date)
        else { return .failure(.badSignature) }

        let credentialParts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard credentialParts.count == 5, let secret = keys[credentialParts[0]],
            credentialParts[1] == timestamp.date, credentialParts[2] == region, credentialParts[3] == Self.service,
            credentialParts[4] == "aws4_request"
        else { return .failure(.badSignature) }

        let parameters = query.filter { $0.0 != "X-Amz-Signature" }
        let scope = Scope(method: method, host: host, path: path, contentType: contentType, maxBytes: maxBytes)
        let expected = computeSignature(scope: scope, parameters: parameters, secret: secret, keyID: credentialParts[0], timestamp: timestamp)
        guard Digest.constantTimeEquals(Array(expected.utf8), Array(signature.utf8)) else { return .failure(.badSignature) }

        let expiresAt = timestamp.epochSeconds + expires
        // A date far in the future would stretch the URL's life past the configured lifetime.
        guard timestamp.epochSeconds <= now + 60 else { return .failure(.badSignature) }
        guard now < expiresAt else { return .failure(.expired) }
        return .success(Verified(maxBytes: maxBytes, expiresAt: expiresAt))
    }

    // MARK: - The SigV4 algorithm

    private func authParameters(keyID: String, timestamp: UTCTimestamp, expires: Int) -> [(String, String)] {
        [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(keyID)/\(credentialScope(timestamp))"),
            ("X-Amz-Date", timestamp.amzDate),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", Self.signedHeaders),
        ]
    }

    private func credentialScope(_ timestamp: UTCTimestamp) -> String {
        "\(timestamp.date)/\(region)/\(Self.service)/aws4_request"
    }

    private func sign(scope: Scope, parameters: [(String, String)], keyID: String, timestamp: UTCTimestamp) -> String {
        computeSignature(scope: scope, parameters: parameters, secret: keys[keyID]!, keyID: keyID, timestamp: timestamp)
    }

    private func computeSignature(scope: Scope, parameters: [(String, String)], secret: String, keyID: String, timestamp: UTCTimestamp) -> String {
        Self.signature(
            method: scope.method, path: scope.path, query: parameters,
            headers: [("content-type", scope.contentType), ("host", scope.host)], payloadHash: "UNSIGNED-PAYLOAD",
            secret: secret, region: region, service: Self.service, timestamp: timestamp)
    }

    /// The SigV4 signature (lower-case hex) of a request, in general form: any method, query
    /// and signed headers. `headers` are (lower-case name, value) pairs, all of them signed.
    static func signature(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String,
        secret: String, region: String, service: String, timestamp: UTCTimestamp
    ) -> String {
        let sortedHeaders = headers.sorted { $0.0 < $1.0 }
        let canonicalRequest = [
            method,
            uriEncode(path, encodeSlash: false),
            canonicalQuery(query),
            sortedHeaders.map { "\($0.0):\($0.1.trimmingWhitespace())\n" }.joined(),
            sortedHeaders.map(\.0).joined(separator: ";"),
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(timestamp.date)/\(region)/\(service)/aws4_request"
        let stringToSign = [algorithm, timestamp.amzDate, scope, Digest.sha256(canonicalRequest).hexString].joined(separator: "\n")
        var key = Digest.hmacSHA256(key: Array("AWS4\(secret)".utf8), timestamp.date)
        for part in [region, service, "aws4_request"] { key = Digest.hmacSHA256(key: key, part) }
        return Digest.hmacSHA256(key: key, stringToSign).hexString
    }

    /// Parameters sorted by encoded name, then value, each `name=value` URI-encoded.
    static func canonicalQuery(_ parameters: [(String, String)]) -> String {
        parameters.map { (uriEncode($0.0, encodeSlash: true), uriEncode($0.1, encodeSlash: true)) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// RFC 3986 encoding as SigV4 specifies: unreserved characters stay, all else is `%XX`.
    static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 16)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
