import CameoCrypto
import CameoSystem
import Testing
@testable import CameoCore

@Suite struct JWTVerifierTests {
    static let secret = String(repeating: "k", count: 32)
    let verifier = try! JWTVerifier(
        settings: .init(algorithms: [.hs256], hs256Secret: secret, publicKeyPEM: nil, issuer: nil, audience: nil, leewaySeconds: 30, requireTokenID: false, maxLifetimeSeconds: 1 << 40, allowedOrigins: []))

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

    /// The token policy of the defaults: a `jti` is required (only then can the token be
    /// revoked) and at most 128 characters (what a revocation holds); no token may be valid for
    /// longer than a day from now.
    @Test func theTokenPolicyRequiresARevocableJTIAndBoundsTheLifetime() throws {
        let policy = try JWTVerifier(
            settings: .init(algorithms: [.hs256], hs256Secret: Self.secret, publicKeyPEM: nil, issuer: nil, audience: nil, leewaySeconds: 30, allowedOrigins: []))
        _ = try policy.verify(token(claims: #"{"sub":"a","exp":87000,"jti":"j1"}"#), now: 1000)
        #expect(throws: AppError.invalidToken) { try policy.verify(token(claims: #"{"sub":"a","exp":2000}"#), now: 1000) }
        _ = try policy.verify(token(claims: #"{"sub":"a","exp":2000,"jti":"\#(String(repeating: "j", count: 128))"}"#), now: 1000)
        #expect(throws: AppError.invalidToken) {
            try policy.verify(token(claims: #"{"sub":"a","exp":2000,"jti":"\#(String(repeating: "j", count: 129))"}"#), now: 1000)
        }
        #expect(throws: AppError.invalidToken) { try policy.verify(token(claims: #"{"sub":"a","exp":2000,"jti":""}"#), now: 1000) }
        #expect(throws: AppError.invalidToken) { try policy.verify(token(claims: #"{"sub":"a","exp":87431,"jti":"j1"}"#), now: 1000) }
    }

    @Test func checksIssuerAndAudienceWhenConfigured() throws {
        let strict = try JWTVerifier(
            settings: .init(
                algorithms: [.hs256], hs256Secret: Self.secret, publicKeyPEM: nil, issuer: "app", audience: "cameo", leewaySeconds: 0, requireTokenID: false, maxLifetimeSeconds: 1 << 40,
                allowedOrigins: []))
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
    static let hs256Secret = "9f2c41d07be85a36c1e4f08d7a2b95e35b0e7d19c4a6f2830de5b71a9c4f6e02"
    let base = [
        "auth.algorithms": "HS256",
        "auth.hs256_secret": Self.hs256Secret,
        "presign.keys": "a:5d1e9b72c04af83e6b2d07c95f1a84e27c3f0b9e1d64a58c2e9f7b031da6c845",
        "nginx.fastcgi_secret": "9c4e1b7a2f0d83e56b1c94a7e2d05f3b8a6c1e9d47b20f5a3c8e61d9b4f07a2e",
    ]

    @Test func defaultsFollowTheSpec() throws {
        let config = try Config(values: base, environment: [:])
        #expect(config.limits.maxUploadBytes == 5_242_880)
        #expect(config.limits.maxSide == 2048)
        #expect(config.presign.ttlSeconds == 300)
        #expect(config.output.sizes == [512, 256, 128, 64])
        #expect(config.presign.activeKeyID == "a")
    }

    @Test func frontSettingsHaveDefaultsAndBounds() throws {
        let config = try Config(values: base, environment: [:])
        #expect(config.front.exemptLoopback && config.front.bodyTimeoutSeconds == 60 && config.front.uploadBufferPath == "/var/lib/cameo/upload-buffer")
        let strict = try Config(values: base, environment: ["CAMEO_NGINX_EXEMPT_LOOPBACK": "false", "CAMEO_NGINX_BODY_TIMEOUT_SECONDS": "3"])
        #expect(!strict.front.exemptLoopback && strict.front.bodyTimeoutSeconds == 3)
        #expect(problem(["nginx.exempt_loopback": "maybe"])?.contains("nginx.exempt_loopback") == true)
        #expect(problem(["nginx.connections_per_ip": "0"])?.contains("nginx.connections_per_ip") == true)
        #expect(problem(["nginx.upload_buffer_path": "relative/dir"])?.contains("nginx.upload_buffer_path") == true)
    }

    /// The file as an editor on another system writes it: CRLF line ends and a byte order
    /// mark read like plain lines, and no error, whatever it is, shows a secret.
    @Test func crlfAndABOMReadLikePlainLinesAndNoErrorShowsASecret() throws {
        let lines = base.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
        let crlf = "\u{FEFF}# written on Windows\r\n" + lines.joined(separator: "\r\n") + "\r\npublic_base_url = https://avatars.example.com\r\n"
        let values = try Config.parse(text: crlf, source: "/etc/cameo/cameo.conf")
        #expect(values == base.merging(["public_base_url": "https://avatars.example.com"]) { $1 })
        #expect(try Config(values: values, environment: [:]).publicBaseURL == "https://avatars.example.com")
        // A bad value on one line of such a file names that key only.
        let broken = crlf.replacing("https://avatars.example.com", with: "avatars.example.com")
        do {
            _ = try Config(values: try Config.parse(text: broken, source: "f"), environment: [:])
            Issue.record("a bad URL was accepted")
        } catch {
            #expect(error.description.contains("public_base_url"))
            for secret in base.values { #expect(!error.description.contains(secret)) }
        }
    }

    @Test func typoKeysDuplicatesQuotesAndStrayLinesAreErrorsNamingTheLine() {
        func fileProblem(_ extra: String) -> String? {
            let text = base.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n" + extra
            do {
                let file = try Config.parse(bytes: Array(text.utf8), source: "/etc/cameo/cameo.conf")
                _ = try Config(values: file.values, environment: [:], source: file)
                return nil
            } catch { return error.description }
        }
        #expect(fileProblem("scanner.mod = external") == "config: /etc/cameo/cameo.conf:5: `scanner.mod` is not a Cameo setting; did you mean `scanner.mode`?")
        #expect(fileProblem("databse.password = x")?.contains("did you mean `database.password`?") == true)
        #expect(fileProblem("limits.max_side = 1024\nlimits.max_side = 512")?.contains("cameo.conf:6: `limits.max_side` is set again (first on line 5)") == true)
        #expect(fileProblem("limits.animated = \"reject\"")?.contains("in quotes") == true)
        #expect(fileProblem("just some words")?.contains("cameo.conf:5: expected `key = value`") == true)
        // The line names the problem, never the value: a quoted secret stays unshown.
        #expect(fileProblem("scanner.callback_secret = 'e71c0a9d4f2b86e35c1d09a7f4b2e863d5c1f08b3e'")?.contains("e71c0a9d") == false)
        // A comment is a whole line; a `#` inside a value is part of it (secrets may hold one).
        #expect(fileProblem("# a comment\n  # an indented one") == nil)
    }

    @Test func environmentVariablesInASettingsSectionMustBeSettings() throws {
        #expect(throws: ConfigError.self) { try Config(values: base, environment: ["CAMEO_SCANNER_MOD": "external"]) }
        do {
            _ = try Config(values: base, environment: ["CAMEO_LIMITS_MAX_SIDES": "10"])
        } catch {
            #expect(error.description == "config: environment CAMEO_LIMITS_MAX_SIDES: is not a Cameo setting; did you mean `limits.max_side`?")
        }
        // The tools' own variables are not in a settings section and are left alone.
        _ = try Config(values: base, environment: ["CAMEO_STATE_DIR": "/tmp/x", "CAMEO_PORT": "1", "CAMEO_POOL_FAST": "2", "CAMEO_CONFIG": "/c"])
    }

    /// Every setting this build reads is in the README's table and in the example config.
    @Test func everySettingIsDocumentedInTheReadmeAndTheExample() throws {
        let names = try Config(values: base, environment: [:]).settingNames
        let readme = String(decoding: try FileSystem.read(NginxConfigTests.repository + "/README.md", limit: 1 << 20), as: UTF8.self)
        let example = String(decoding: try FileSystem.read(NginxConfigTests.repository + "/deploy/cameo.conf.example", limit: 1 << 20), as: UTF8.self)
        let table = readme.split(separator: "\n").filter { $0.hasPrefix("| `") }.joined(separator: "\n")
        #expect(names.sorted().filter { !table.contains("`\($0)`") } == [], "missing from README's configuration table")
        #expect(names.sorted().filter { !example.contains("\n\($0) =") && !example.contains("\n# \($0) =") } == [], "missing from deploy/cameo.conf.example")
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
        #expect(problem(["presign.ttl_seconds": "4"])?.contains("presign.ttl_seconds") == true)
        #expect(problem(["auth.hs256_secret": "short"])?.contains("auth.hs256_secret") == true)
        #expect(problem(["public_base_url": "ftp://x"])?.contains("public_base_url") == true)
        #expect(problem(["presign.keys": "a:short"])?.contains("presign.keys") == true)
        // Secrets never appear in the message.
        #expect(problem(["presign.keys": "a:tooshortsecret"])?.contains("tooshortsecret") == false)
    }

    func problem(_ values: [String: String]) -> String? {
        do {
            _ = try Config(values: base.merging(values) { $1 }, environment: [:])
            return nil
        } catch { return error.description }
    }

    @Test func placeholdersAndLowEntropySecretsAreRefusedByName() {
        // What the example config used to ship, and other values no generator makes.
        let placeholder = "CHANGE-ME-TO-32-OR-MORE-RANDOM-BYTES"
        for bad in [placeholder, String(repeating: "k", count: 40), "abababababababababababababababab", "my-example-secret-for-the-cameo-app"] {
            let message = problem(["auth.hs256_secret": bad])
            #expect(message?.contains("auth.hs256_secret") == true, "\(bad) was accepted")
            #expect(message?.contains(bad) == false, "the message echoes the secret")
            #expect(problem(["presign.keys": "a:" + bad])?.contains("presign.keys") == true)
            #expect(problem(["scanner.callback_secret": bad])?.contains("scanner.callback_secret") == true)
            #expect(problem(["nginx.fastcgi_secret": bad])?.contains("nginx.fastcgi_secret") == true)
        }
        // Without the front secret no worker starts: its sockets would answer anyone.
        var withoutFrontSecret = base
        withoutFrontSecret["nginx.fastcgi_secret"] = nil
        #expect(throws: ConfigError.self) { try Config(values: withoutFrontSecret, environment: [:]) }
        #expect(problem(["database.password": "CHANGE-ME"])?.contains("database.password") == true)
        // What `cameoctl generate-secret` makes passes.
        #expect(problem(["auth.hs256_secret": Digest.randomBytes(32).hexString]) == nil)
    }

    @Test func algorithmsAreExplicitAndMatchTheirKeys() {
        #expect(problem(["auth.algorithms": ""])?.contains("auth.algorithms") == true)
        #expect(problem(["auth.algorithms": "none"])?.contains("auth.algorithms") == true)
        // A leftover secret does not keep HS256 on beside a public key.
        #expect(problem(["auth.algorithms": "RS256", "auth.public_key_file": "/etc/cameo/jwt.pem"])?.contains("auth.hs256_secret") == true)
        #expect(problem(["auth.algorithms": "HS256, RS256"])?.contains("auth.public_key_file") == true)
        var values = base
        values["auth.hs256_secret"] = nil
        values["auth.algorithms"] = "RS256"
        values["auth.public_key_file"] = "/etc/cameo/jwt.pem"
        #expect((try? Config(values: values, environment: [:]))?.auth.algorithms == [.rs256])
    }

    @Test func hs256IsRefusedWhenNotListedWhateverTheKeys() throws {
        let secret = Self.hs256Secret
        let onlyRS = try JWTVerifier(
            settings: .init(algorithms: [.rs256], hs256Secret: secret, publicKeyPEM: RS256Tests.publicKey, issuer: nil, audience: nil, leewaySeconds: 0, requireTokenID: false, maxLifetimeSeconds: 1 << 40,
                            allowedOrigins: []))
        let forged = JWTMinter.hs256(secret: secret, userID: "mallory", ttlSeconds: 60, now: 1000, issuer: nil, audience: nil).token
        #expect(throws: AppError.invalidToken) { try onlyRS.verify(forged, now: 1000) }
        #expect(try onlyRS.verify(RS256Tests.token, now: 1_700_000_000).userID == "rsa-user")
    }
}

/// RS256: a key pair and token made once with Python's cryptography and PyJWT (the host
/// application's side), verified here with OpenSSL.
@Suite struct RS256Tests {
    static let publicKey = """
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxFKnIvIziw+uVFX/fT0U
FpOqqJLVWGCJK5iX+gjqCBoLUe7I1PgNRJbEiLXxUc2hkDxuqm7BZlNK3u+poDup
LezN5wtByoU5ZIBJIgB5e1HUjgboaLbjsBLr4vej/bfVl7U++z/5jivchwIZeS3g
litK8GzBGj1zIq7HJGMR2zF56z+woeEZgq+kcKNNDeVXa4sFEbeVhjriGPTQh2rl
/7DroUs3sNeygMGZ/xEo3kHRzcco35lMj0AFHRCC5OZqFDLG6gXj+QI7notG4AeW
2uzYf40wENNJvusIZsbCfL8DcusfUG4duwUuOB32t6SbG5Cwuck/v0nFlW6/Px2x
OwIDAQAB
-----END PUBLIC KEY-----

"""
    static let token = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6NDEwMjQ0NDgwMCwianRpIjoicjEifQ.eyXhdoDgLenxn78-MODq9D5_unkuGARW3VJ5yoYBjpCBNluln968gBiJObq_emVzWKBxaPkpaXi1MDWkLGJpeleSYJpYQyKIGC-9Qsw8cmOnI4JOuCnilRjGHbkO_GbFORT4U6GRoVSrT0H85s6kAg1_2PEUaKq1QAIecODNwWKG0kF-C6IoksFZCrwrDQWbeXS6NHzuWGtRU4FvDDn5b14Q1ADZ5jBTYr7BLy0MhSfH_Yd6vj9Y4uw4HyBi96JZcLr0mCEuGrpMWnEfZF6ByFL9cbRhIauifgqAol3nuHqMUqWxos8J4v8sMdt9E9tJc7SHOG51DYeKj8ZrUXojuA"

    let verifier = try! JWTVerifier(
        settings: .init(algorithms: [.hs256, .rs256], hs256Secret: String(repeating: "h", count: 32), publicKeyPEM: publicKey, issuer: nil,
                        audience: nil, leewaySeconds: 0, requireTokenID: false, maxLifetimeSeconds: 1 << 40, allowedOrigins: []))

    @Test func verifiesTokenSignedByTheKeyHolder() throws {
        #expect(try verifier.verify(Self.token, now: 1_700_000_000) == TokenClaims(userID: "rsa-user", tokenID: "r1", expiresAt: 4_102_444_800))
    }

    @Test func refusesAlteredPayloadOrSignature() {
        let parts = Self.token.split(separator: ".").map(String.init)
        let otherClaims = Base64URL.encode(Array(#"{"sub":"admin","exp":4102444800}"#.utf8))
        #expect(throws: AppError.invalidToken) { try verifier.verify("\(parts[0]).\(otherClaims).\(parts[2])", now: 1) }
        var signature = Base64URL.decode(parts[2])!
        signature[10] ^= 1
        #expect(throws: AppError.invalidToken) { try verifier.verify("\(parts[0]).\(parts[1]).\(Base64URL.encode(signature))", now: 1) }
    }

    /// The classic key confusion: an HS256 token whose HMAC key is the public key's PEM text.
    @Test func refusesHS256SignedWithThePublicKey() {
        let header = Base64URL.encode(Array(#"{"alg":"HS256"}"#.utf8))
        let claims = Base64URL.encode(Array(#"{"sub":"admin","exp":4102444800}"#.utf8))
        let mac = Digest.hmacSHA256(key: Array(Self.publicKey.utf8), "\(header).\(claims)")
        #expect(throws: AppError.invalidToken) { try verifier.verify("\(header).\(claims).\(Base64URL.encode(mac))", now: 1) }
    }
}
