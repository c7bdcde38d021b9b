import Testing
@testable import CameoCore

@Suite struct SigV4PresignerTests {
    let signer = SigV4Presigner(keys: ["k1": String(repeating: "s", count: 40), "k0": String(repeating: "o", count: 40)], activeKeyID: "k1", region: "cameo")
    let scope = SigV4Presigner.Scope(method: "PUT", host: "127.0.0.1:8080", path: "/uploads/0123456789abcdef0123456789abcdef", contentType: "image/jpeg", maxBytes: 1000)

    /// The example of AWS's "Authenticating Requests: Using Query Parameters (AWS Signature
    /// Version 4)" page for S3: a presigned GET of /test.txt, published with its signature.
    @Test func matchesAWSPublishedPresignExample() throws {
        let timestamp = try #require(UTCTimestamp(amzDate: "20130524T000000Z"))
        let query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
            ("X-Amz-Date", "20130524T000000Z"), ("X-Amz-Expires", "86400"), ("X-Amz-SignedHeaders", "host"),
        ]
        let signature = SigV4Presigner.signature(
            method: "GET", path: "/test.txt", query: query, headers: [("host", "examplebucket.s3.amazonaws.com")],
            payloadHash: "UNSIGNED-PAYLOAD", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "s3",
            timestamp: timestamp)
        #expect(signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    func items(_ query: String) -> [(String, String)] {
        query.split(separator: "&").map {
            let parts = $0.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]).replacing("%2F", with: "/").replacing("%3B", with: ";"))
        }
    }

    func verify(_ query: String, scope: SigV4Presigner.Scope? = nil, now: Int) -> Result<SigV4Presigner.Verified, SigV4Presigner.Rejection> {
        let s = scope ?? self.scope
        return signer.verify(method: s.method, host: s.host, path: s.path, contentType: s.contentType, query: items(query), now: now, maxLifetime: 300)
    }

    @Test func acceptsItsOwnURLWithinLifetime() {
        let query = signer.presignedQuery(for: scope, now: 1_700_000_000, expires: 300)
        #expect(verify(query, now: 1_700_000_299) == .success(.init(maxBytes: 1000, expiresAt: 1_700_000_300)))
    }

    @Test func refusesExpiredURL() {
        let query = signer.presignedQuery(for: scope, now: 1_700_000_000, expires: 300)
        #expect(verify(query, now: 1_700_000_300) == .failure(.expired))
    }

    @Test func refusesEveryChangeToTheSignedScope() {
        let query = signer.presignedQuery(for: scope, now: 1_700_000_000, expires: 300)
        var other = scope
        other.path = "/uploads/ffffffffffffffffffffffffffffffff"
        #expect(verify(query, scope: other, now: 1_700_000_001) == .failure(.badSignature))
        other = scope
        other.contentType = "image/png"
        #expect(verify(query, scope: other, now: 1_700_000_001) == .failure(.badSignature))
        other = scope
        other.host = "evil.example"
        #expect(verify(query, scope: other, now: 1_700_000_001) == .failure(.badSignature))
        other = scope
        other.method = "POST"
        #expect(verify(query, scope: other, now: 1_700_000_001) == .failure(.badSignature))
        // A raised length bound invalidates the signature.
        let raised = query.replacing("X-Cameo-Max-Bytes=1000", with: "X-Cameo-Max-Bytes=9000")
        #expect(verify(raised, now: 1_700_000_001) == .failure(.badSignature))
        // A longer lifetime too.
        let longer = query.replacing("X-Amz-Expires=300", with: "X-Amz-Expires=299")
        #expect(verify(longer, now: 1_700_000_001) == .failure(.badSignature))
    }

    @Test func tamperedSignatureIsRefused() {
        let query = signer.presignedQuery(for: scope, now: 1_700_000_000, expires: 300)
        let last = query.last!
        let tampered = String(query.dropLast()) + (last == "0" ? "1" : "0")
        #expect(verify(tampered, now: 1_700_000_001) == .failure(.badSignature))
    }

    @Test func urlSignedWithPreviousKeyStillVerifies() {
        let old = SigV4Presigner(keys: ["k0": String(repeating: "o", count: 40)], activeKeyID: "k0", region: "cameo")
        let query = old.presignedQuery(for: scope, now: 1_700_000_000, expires: 300)
        #expect(query.contains("X-Amz-Credential=k0%2F"))
        #expect(verify(query, now: 1_700_000_010) == .success(.init(maxBytes: 1000, expiresAt: 1_700_000_300)))
        let unknown = SigV4Presigner(keys: ["k9": String(repeating: "o", count: 40)], activeKeyID: "k9", region: "cameo")
        #expect(verify(unknown.presignedQuery(for: scope, now: 1_700_000_000, expires: 300), now: 1_700_000_010) == .failure(.badSignature))
    }

    @Test func repeatedParameterIsRefused() {
        let query = signer.presignedQuery(for: scope, now: 1_700_000_000, expires: 300) + "&X-Cameo-Max-Bytes=1000"
        #expect(verify(query, now: 1_700_000_001) == .failure(.badSignature))
    }

    @Test func timestampsRoundTrip() throws {
        for seconds in [0, 951_782_400 /* 2000-02-29 */, 1_700_000_000, 4_102_444_799] {
            let text = UTCTimestamp(epochSeconds: seconds).amzDate
            #expect(try #require(UTCTimestamp(amzDate: text)).epochSeconds == seconds)
        }
        #expect(UTCTimestamp(epochSeconds: 951_782_400).amzDate == "20000229T000000Z")
        #expect(UTCTimestamp(amzDate: "20230230T000000Z") == nil)
    }
}

@Suite struct EncodingTests {
    @Test func base64URLRoundTripsAndRejectsJunk() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.encode(Array("any carnal pleas".utf8)) == "YW55IGNhcm5hbCBwbGVhcw")
        #expect(Base64URL.decode("a+b/") == nil)
        #expect(Base64URL.decode("YQ==") == nil)
        #expect(Base64URL.decode("YR") == nil)  // non-zero leftover bits
        #expect(Base64URL.decode("Y") == nil)
    }

    @Test func jsonEscapesControlQuotesAndMarkup() {
        let value = JSONValue.object([("a\"b", .string("<x>\n\u{1}é")), ("n", .array([.int(-3), .bool(true), .null]))])
        #expect(value.serialized() == #"{"a\"b":"\u003cx>\n\u0001é","n":[-3,true,null]}"#)
    }

    @Test func iso8601Formatting() {
        #expect(iso8601UTC(epochSeconds: 1_700_000_000) == "2023-11-14T22:13:20Z")
    }
}
