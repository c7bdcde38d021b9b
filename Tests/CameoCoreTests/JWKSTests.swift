import CameoCrypto
import CameoSystem
import FoundationEssentials
import Testing
@testable import CameoCore

/// Keys by id: a JWKS document's members become the same keys OpenSSL reads from PEM, a
/// token's `kid` picks among them, and a worker follows the file when it is replaced.
@Suite struct JWKSTests {
    /// RS256Tests' key as a JWK: its modulus and exponent, base64url.
    static let modulus = "xFKnIvIziw-uVFX_fT0UFpOqqJLVWGCJK5iX-gjqCBoLUe7I1PgNRJbEiLXxUc2hkDxuqm7BZlNK3u-poDupLezN5wtByoU5ZIBJIgB5e1HUjgboaLbjsBLr4vej_bfVl7U--z_5jivchwIZeS3glitK8GzBGj1zIq7HJGMR2zF56z-woeEZgq-kcKNNDeVXa4sFEbeVhjriGPTQh2rl_7DroUs3sNeygMGZ_xEo3kHRzcco35lMj0AFHRCC5OZqFDLG6gXj-QI7notG4AeW2uzYf40wENNJvusIZsbCfL8DcusfUG4duwUuOB32t6SbG5Cwuck_v0nFlW6_Px2xOw"

    static func document(kid: String, extra: String = "") -> String {
        #"{"keys":[\#(extra){"kty":"RSA","kid":"\#(kid)","use":"sig","alg":"RS256","n":"\#(modulus)","e":"AQAB"}]}"#
    }

    @Test func anRSAMemberIsTheSameKeyAsItsPEM() throws {
        let set = try JWKS(json: Array(Self.document(kid: "k1").utf8))
        let pemBody = RS256Tests.publicKey.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let pemDER = try #require(Data(base64Encoded: pemBody).map(Array.init))
        #expect(set.keys.map(\.id) == ["k1"] && set.keys[0].algorithm == .rs256)
        #expect(set.keys[0].subjectPublicKeyInfo == pemDER)
    }

    @Test func derIntegersAndLengthsAreMinimal() {
        #expect(DER.integer([0x00, 0x00, 0x7F]) == [0x02, 0x01, 0x7F])
        #expect(DER.integer([0x80]) == [0x02, 0x02, 0x00, 0x80])
        #expect(DER.integer([]) == [0x02, 0x01, 0x00])
        #expect(DER.length(0x7F) == [0x7F] && DER.length(0x80) == [0x81, 0x80] && DER.length(0x1234) == [0x82, 0x12, 0x34])
    }

    @Test func membersNotForSigningOrNotUnderstoodAreSkippedAndAnEmptySetRefused() throws {
        let others = #"{"kty":"RSA","kid":"enc","use":"enc","n":"\#(Self.modulus)","e":"AQAB"},{"kty":"oct","kid":"s","k":"c2VjcmV0"},"#
            + #"{"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},{"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},"#
        let set = try JWKS(json: Array(Self.document(kid: "k1", extra: others).utf8))
        #expect(set.keys.map(\.id) == ["k1"])
        #expect(throws: JWKS.Invalid.self) { try JWKS(json: Array(#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.utf8)) }
        #expect(throws: JWKS.Invalid.self) { try JWKS(json: Array("not json".utf8)) }
        #expect(throws: JWKS.Invalid.self) { try JWKS(json: [UInt8](repeating: 0x20, count: JWKS.maxBytes + 1)) }
    }

    func settings(jwksFile: String) -> Config.AuthSettings {
        var settings = Config.AuthSettings(
            algorithms: [.rs256], hs256Secret: nil, publicKeyPEM: nil, issuer: nil, audience: nil, leewaySeconds: 0, requireTokenID: false, maxLifetimeSeconds: 1 << 40, allowedOrigins: [])
        settings.jwksFile = jwksFile
        return settings
    }

    /// A P-256 key as a JWK, and tokens its private half signed (made once with PyJWT), one
    /// naming it `k1`, one `k2`.
    static func ecMember(kid: String) -> String {
        #"{"kty":"EC","kid":"\#(kid)","crv":"P-256","x":"aMzVLSio66PTQJ7q6DYYr3U5gVkeHk9rYIBB94exSEU","y":"rZ71nzklmLGSN9jy4h6XLCrVlDu7SjfWcSg7goL0834"}"#
    }
    static let tokenK1 = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJlYy11c2VyIiwiZXhwIjo0MTAyNDQ0ODAwfQ.pcl_5lvm_nIyDGIMPJVsIOt_QPPa3XRoM7xtaMCUSPHM26hzkQjKCOFLA6zdrC-xD5P51o1FIUFVdVsV3g1oYg"
    static let tokenK2 = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsyIiwidHlwIjoiSldUIn0.eyJzdWIiOiJlYy11c2VyIiwiZXhwIjo0MTAyNDQ0ODAwfQ.jhKBUvLDQYAxLkAPk3Fl_sKFrK51MrSN7h0b5jhdr9L0Z3A-NlTRdm4n23asJ8Q_IhPErKDFS843rCvCaxX4Pg"

    @Test func aTokenIsVerifiedWithTheKeysOfItsKidAndTheFileIsFollowedWhenReplaced() throws {
        let folder = "/tmp/cameo-jwks-\(MediaID.random().rawValue)"
        try FileSystem.makeDirectory(folder, mode: 0o700)
        let path = folder + "/jwks.json"
        defer {
            _ = FileSystem.remove(path)
            _ = FileSystem.removeDirectory(folder)
        }
        let replace = { (text: String) throws in
            try FileSystem.writeNew(Array(text.utf8), to: path + ".new")
            try FileSystem.rename(path + ".new", to: path)
        }
        try replace(Self.document(kid: "rsa", extra: Self.ecMember(kid: "k1") + ","))
        var settings = settings(jwksFile: path)
        settings.algorithms = [.rs256, .es256]
        let verifier = try JWTVerifier(settings: settings)
        let now = 1_700_000_000
        #expect(try verifier.verify(Self.tokenK1, now: now).userID == "ec-user")
        #expect(try verifier.verify(RS256Tests.token, now: now).userID == "rsa-user")     // no kid: each RS256 key is tried
        // Signed by the same key, but naming a kid the set does not have: nothing is tried.
        #expect(throws: AppError.invalidToken) { try verifier.verify(Self.tokenK2, now: now) }
        // The provider renames its key k2. Within a second the worker reads the new file...
        try replace(#"{"keys":[\#(Self.ecMember(kid: "k2"))]}"#)
        #expect(try verifier.verify(Self.tokenK2, now: now + 1).userID == "ec-user")
        #expect(throws: AppError.invalidToken) { try verifier.verify(Self.tokenK1, now: now + 1) }
        // ...and a file that stops parsing leaves the keys it had (and is refused at a start).
        try replace("{")
        #expect(try verifier.verify(Self.tokenK2, now: now + 2).userID == "ec-user")
        #expect(throws: ConfigError.self) { try JWTVerifier(settings: settings) }
    }

    /// Signing keys decide who is signed in: fetched over https, or plain http to this host
    /// only, the host compared whole.
    @Test func theKeyURLIsHTTPSOrThisHost() {
        for safe in ["https://login.example.com/.well-known/jwks.json", "http://127.0.0.1:8081/jwks", "http://localhost/jwks", "http://[::1]:9/k"] {
            #expect(Config.isSafeKeySource(safe), "\(safe)")
        }
        for unsafe in [
            "http://login.example.com/jwks", "http://localhost.evil.example/jwks", "http://127.0.0.1.nip.io/jwks", "http://127.0.0.1@evil.example/",
            "http://[::1].evil/", "http://127.0.0.1:80x/", "ftp://127.0.0.1/", "https://",
        ] {
            #expect(!Config.isSafeKeySource(unsafe), "\(unsafe)")
        }
    }

    @Test func hs256KeysRotateByKid() throws {
        let old = String(repeating: "o", count: 40), new = String(repeating: "n", count: 40)
        var settings = Config.AuthSettings(
            algorithms: [.hs256], hs256Secret: nil, publicKeyPEM: nil, issuer: nil, audience: nil, leewaySeconds: 0, requireTokenID: false, maxLifetimeSeconds: 1 << 40, allowedOrigins: [])
        settings.hs256Keys = [(id: "new", secret: new), (id: "old", secret: old)]
        let verifier = try JWTVerifier(settings: settings)
        let mint = { (secret: String, kid: String?) in
            JWTMinter.hs256(secret: secret, keyID: kid, userID: "u", ttlSeconds: 60, now: 100, issuer: nil, audience: nil).token
        }
        _ = try verifier.verify(mint(new, "new"), now: 110)
        _ = try verifier.verify(mint(old, "old"), now: 110)      // the overlap: old tokens still pass
        _ = try verifier.verify(mint(old, nil), now: 110)        // no kid: each key is tried
        #expect(throws: AppError.invalidToken) { try verifier.verify(mint(old, "new"), now: 110) }
        #expect(throws: AppError.invalidToken) { try verifier.verify(mint(new, "retired"), now: 110) }
    }
}
