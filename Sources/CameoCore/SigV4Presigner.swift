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

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// A UTC instant as SigV4 writes it (`20130524T000000Z`, date part `20130524`), converted
/// without a calendar library.
struct UTCTimestamp {
    let epochSeconds: Int

    init(epochSeconds: Int) { self.epochSeconds = epochSeconds }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    init?(amzDate: String) {
        let bytes = Array(amzDate.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8), let hour = number(9..<11),
            let minute = number(11..<13), let second = number(13..<15), (1...12).contains(month), (1...31).contains(day),
            hour < 24, minute < 60, second < 60
        else { return nil }
        epochSeconds = Self.daysFromCivil(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
        guard self.amzDate == amzDate else { return nil }
    }

    var amzDate: String {
        let (year, month, day) = Self.civilFromDays(epochSeconds.floorDiv(86_400))
        let seconds = epochSeconds - epochSeconds.floorDiv(86_400) * 86_400
        return "\(year)" + [month, day].map { String($0).leftPadded(to: 2) }.joined() + "T"
            + [seconds / 3600, seconds % 3600 / 60, seconds % 60].map { String($0).leftPadded(to: 2) }.joined() + "Z"
    }

    var date: String { String(amzDate.prefix(8)) }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDiv(400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = z.floorDiv(146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Int {
    func floorDiv(_ divisor: Int) -> Int { (self >= 0 ? self : self - divisor + 1) / divisor }
}

/// RFC 3339 / ISO 8601 UTC text (`2026-11-24T04:45:50Z`) without a calendar library.
public func iso8601UTC(epochSeconds: Int) -> String {
    let compact = UTCTimestamp(epochSeconds: epochSeconds).amzDate
    let c = Array(compact)
    return String(c[0..<4]) + "-" + String(c[4..<6]) + "-" + String(c[6..<8]) + "T" + String(c[9..<11]) + ":" + String(c[11..<13]) + ":"
        + String(c[13..<15]) + "Z"
}

/// Midnight UTC of a `YYYY-MM-DD` date as epoch seconds; nil when it is not a real date.
public func epochSeconds(isoDate: String) -> Int? {
    let compact = isoDate.split(separator: "-", omittingEmptySubsequences: false)
    guard compact.count == 3, compact[0].count == 4, compact[1].count == 2, compact[2].count == 2 else { return nil }
    return UTCTimestamp(amzDate: compact.joined() + "T000000Z")?.epochSeconds
}
