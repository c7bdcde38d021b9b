import CameoCrypto
import Testing
@testable import CameoCore

@Suite struct JWTVerifierTests {
    static let secret = String(repeating: "k", count: 32)
    let verifier = try! JWTVerifier(
        settings: .init(hs256Secret: secret, publicKeyPEM: nil, issuer: nil, audience: nil, leewaySeconds: 30, allowedOrigins: []))

    func token(header: String = #"{"alg":"HS256","typ":"JWT"}"#, claims: String, secret: String = secret) -> String {
        let head = Base64URL.encode(Array(header.utf8))
        let body = Base64URL.encode(Array(claims.utf8))
        return "\(head).\(body).\(Base64URL.encode(Digest.hmacSHA256(key: Array(secret.utf8), "\(head).\(body)")))"
    }

    @Test func acceptsMintedToken() throws {
        let minted = JWTMinter.hs256(secret: Self.secret, userID: "alice", ttlSeconds: 60, now: 1000, issuer: nil, audience: nil)
        let claims = try verifier.verify(minted.token, now: 1010)
        #expect(claims == TokenClaims(userID: "alice", tokenID: minted.jti, expiresAt: 1060))
    }

    @Test func refusesWrongSecretAndAlgNone() {
        let forged = token(claims: #"{"sub":"a","exp":9999999999}"#, secret: String(repeating: "x", count: 32))
        #expect(throws: AppError.invalidToken) { try verifier.verify(forged, now: 1) }
        let none = token(header: #"{"alg":"none"}"#, claims: #"{"sub":"a","exp":9999999999}"#)
        #expect(throws: AppError.invalidToken) { try verifier.verify(none, now: 1) }
        #expect(throws: AppError.invalidToken) { try verifier.verify("a.b", now: 1) }
    }

    @Test func enforcesExpiryAndNotBeforeWithLeeway() throws {
        let expiring = token(claims: #"{"sub":"a","exp":1000}"#)
        _ = try verifier.verify(expiring, now: 1029)
        #expect(throws: AppError.tokenExpired) { try verifier.verify(expiring, now: 1030) }
        let early = token(claims: #"{"sub":"a","exp":5000,"nbf":2000}"#)
        #expect(throws: AppError.tokenNotYetValid) { try verifier.verify(early, now: 1969) }
        _ = try verifier.verify(early, now: 1971)
        let noExpiry = token(claims: #"{"sub":"a"}"#)
        #expect(throws: AppError.invalidToken) { try verifier.verify(noExpiry, now: 1) }
    }

    @Test func checksIssuerAndAudienceWhenConfigured() throws {
        let strict = try JWTVerifier(
            settings: .init(hs256Secret: Self.secret, publicKeyPEM: nil, issuer: "app", audience: "cameo", leewaySeconds: 0, allowedOrigins: []))
        _ = try strict.verify(token(claims: #"{"sub":"a","exp":9000,"iss":"app","aud":["x","cameo"]}"#), now: 1)
        #expect(throws: AppError.invalidToken) { try strict.verify(token(claims: #"{"sub":"a","exp":9000,"iss":"other","aud":"cameo"}"#), now: 1) }
        #expect(throws: AppError.invalidToken) { try strict.verify(token(claims: #"{"sub":"a","exp":9000,"iss":"app","aud":"x"}"#), now: 1) }
    }

    @Test func refusesUserIDsThatAreNotSafePathComponents() {
        for sub in ["../etc", "a/b", "", String(repeating: "a", count: 65), "é"] {
            #expect(throws: AppError.invalidToken) { try verifier.verify(token(claims: #"{"sub":"\#(sub)","exp":9000}"#), now: 1) }
        }
    }
}

@Suite struct ConfigTests {
    let base = [
        "auth.hs256_secret": String(repeating: "k", count: 32),
        "presign.keys": "a:" + String(repeating: "s", count: 32),
    ]

    @Test func defaultsFollowTheSpec() throws {
        let config = try Config(values: base, environment: [:])
        #expect(config.limits.maxUploadBytes == 5_242_880)
        #expect(config.limits.maxSide == 2048)
        #expect(config.presign.ttlSeconds == 300)
        #expect(config.output.sizes == [512, 256, 128, 64])
        #expect(config.presign.activeKeyID == "a")
    }

    @Test func environmentOverridesTheFile() throws {
        let config = try Config(values: base, environment: ["CAMEO_LIMITS_MAX_SIDE": "1024"])
        #expect(config.limits.maxSide == 1024)
    }

    @Test func badValuesNameTheirKey() {
        func problem(_ values: [String: String]) -> String? {
            do {
                _ = try Config(values: base.merging(values) { $1 }, environment: [:])
                return nil
            } catch { return error.description }
        }
        #expect(problem(["limits.max_side": "big"])?.contains("limits.max_side (env CAMEO_LIMITS_MAX_SIDE)") == true)
        #expect(problem(["presign.ttl_seconds": "5"])?.contains("presign.ttl_seconds") == true)
        #expect(problem(["auth.hs256_secret": "short"])?.contains("auth.hs256_secret") == true)
        #expect(problem(["public_base_url": "ftp://x"])?.contains("public_base_url") == true)
        #expect(problem(["presign.keys": "a:short"])?.contains("presign.keys") == true)
        // Secrets never appear in the message.
        #expect(problem(["presign.keys": "a:tooshortsecret"])?.contains("tooshortsecret") == false)
    }
}
