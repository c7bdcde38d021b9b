import CameoCrypto
import CameoSystem
import FoundationEssentials
import Synchronization

/// The claims Cameo uses from a verified token.
public struct TokenClaims: Sendable, Equatable {
    /// The user id (`sub`); it names the user's media folder, so it is checked to be a safe
    /// path component.
    public let userID: String
    public let tokenID: String?
    public let expiresAt: Int
}

/// The JWT signature algorithms Cameo can verify.
public enum JWTAlgorithm: String, Sendable, CaseIterable {
    case hs256 = "HS256"
    case rs256 = "RS256"
    case es256 = "ES256"
}

/// Verifies JWTs issued by the host application's login: HS256 with a shared secret, RS256 or
/// ES256 with its public key, each only when `auth.algorithms` lists it. `alg: none` and any
/// algorithm not listed are refused.
///
/// Keys carry ids so they rotate with overlap: a token's `kid` picks the keys of that id (a key
/// without an id, such as a single PEM key or `auth.hs256_secret`, stands for any); a token
/// without `kid` is tried against each key of its algorithm.
public struct JWTVerifier: Sendable {
    private let algorithms: Set<JWTAlgorithm>
    private let secrets: [(id: String?, bytes: [UInt8])]
    private let publicKeys: PublicKeySource
    private let issuer: String?
    private let audience: String?
    private let leeway: Int
    private let requireTokenID: Bool
    private let maxLifetime: Int

    /// The longest `jti` accepted: what a revocation can hold.
    public static let maxTokenIDLength = 128

    public init(settings: Config.AuthSettings) throws {
        algorithms = settings.algorithms
        secrets = (settings.hs256Secret.map { [(id: nil, bytes: Array($0.utf8))] } ?? [])
            + settings.hs256Keys.map { (id: $0.id, bytes: Array($0.secret.utf8)) }
        if let pem = settings.publicKeyPEM {
            publicKeys = .fixed([(id: nil, key: try PublicKey(pem: pem))])
        } else if let path = settings.publicKeyFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(key: "auth.public_key_file", problem: "cannot read \(path)")
            }
            publicKeys = .fixed([(id: nil, key: try PublicKey(pem: String(decoding: data, as: UTF8.self)))])
        } else if let path = settings.jwksFile {
            publicKeys = .jwks(try JWKSFile(path: path))
        } else {
            publicKeys = .fixed([])
        }
        issuer = settings.issuer
        audience = settings.audience
        leeway = settings.leewaySeconds
        requireTokenID = settings.requireTokenID
        maxLifetime = settings.maxLifetimeSeconds
    }

    private struct Header: Decodable {
        let alg: String
        let kid: String?
    }

    private struct Claims: Decodable {
        let sub: String?
        let exp: Double?
        let nbf: Double?
        let iss: String?
        let jti: String?
        let aud: Audience?
    }

    /// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
    private enum Audience: Decodable {
        case one(String)
        case many([String])
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let one = try? container.decode(String.self) { self = .one(one) } else { self = .many(try container.decode([String].self)) }
        }
        func contains(_ value: String) -> Bool {
            switch self {
            case .one(let one): return one == value
            case .many(let many): return many.contains(value)
            }
        }
    }

    /// Checks signature, `exp` (required), `nbf`, `iss` and `aud`, and returns the claims.
    /// Revocation (`jti`) is the caller's check, since it needs the database.
    public func verify(_ token: String, now: Int) throws(AppError) -> TokenClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]), let claimBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { throw .invalidToken }
        let decoder = JSONDecoder()
        guard let header = try? decoder.decode(Header.self, from: Data(headerBytes)),
            let claims = try? decoder.decode(Claims.self, from: Data(claimBytes))
        else { throw .invalidToken }

        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard verifySignature(algorithm: header.alg, keyID: header.kid, signature: signature, signingInput: signingInput, now: now) else {
            throw .invalidToken
        }

        // Bounded so the conversion to Int below cannot trap on a signed but absurd value.
        guard let exp = claims.exp, exp.isFinite, abs(exp) < 1e12 else { throw .invalidToken }
        if Double(now - leeway) >= exp { throw .tokenExpired }
        // A token that stays valid longer than the policy allows is refused outright: it could
        // outlive any revocation bookkeeping, and no login should mint one.
        if exp - Double(now) > Double(maxLifetime + leeway) { throw .invalidToken }
        if let jti = claims.jti {
            guard !jti.isEmpty, jti.utf8.count <= Self.maxTokenIDLength else { throw .invalidToken }
        } else if requireTokenID {
            throw .invalidToken
        }
        if let nbf = claims.nbf, Double(now + leeway) < nbf { throw .tokenNotYetValid }
        if let issuer, claims.iss != issuer { throw .invalidToken }
        if let audience, claims.aud?.contains(audience) != true { throw .invalidToken }
        guard let sub = claims.sub, Self.isSafeUserID(sub) else { throw .invalidToken }
        return TokenClaims(userID: sub, tokenID: claims.jti, expiresAt: Int(exp))
    }

    private func verifySignature(algorithm name: String, keyID: String?, signature: [UInt8], signingInput: [UInt8], now: Int) -> Bool {
        guard let algorithm = JWTAlgorithm(rawValue: name), algorithms.contains(algorithm) else { return false }
        let picked = { (id: String?) in keyID == nil || id == nil || id == keyID }
        switch algorithm {
        case .hs256:
            return secrets.contains { picked($0.id) && Digest.constantTimeEquals(Digest.hmacSHA256(key: $0.bytes, signingInput), signature) }
        case .rs256:
            return publicKeys.keys(now: now).contains { picked($0.id) && $0.key.verifyRS256(signature: signature, message: signingInput) }
        case .es256:
            return publicKeys.keys(now: now).contains { picked($0.id) && $0.key.verifyES256(signature: signature, message: signingInput) }
        }
    }

    /// User ids become folder names under `profile-media/`: 1-64 of `[A-Za-z0-9_-]`.
    public static func isSafeUserID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }
}

/// The public keys tokens are verified with: fixed (a PEM key), or a JWKS file that the
/// identity provider's keys are refreshed into (`cameo-jwks-refresh.timer`). The file is
/// looked at again at most once a second and re-read when it changed, so a worker follows a
/// rotation without a restart; a file that no longer parses leaves the keys it had.
enum PublicKeySource: Sendable {
    case fixed([(id: String?, key: PublicKey)])
    case jwks(JWKSFile)

    func keys(now: Int) -> [(id: String?, key: PublicKey)] {
        switch self {
        case .fixed(let keys): return keys
        case .jwks(let file): return file.keys(now: now)
        }
    }
}

final class JWKSFile: Sendable {
    private struct State {
        var keys: [(id: String?, key: PublicKey)]
        var identity: FileSystem.Identity?
        var checkedAt: Int
    }

    let path: String
    private let state: Mutex<State>

    init(path: String) throws(ConfigError) {
        self.path = path
        let identity = FileSystem.identity(path)
        state = Mutex(State(keys: try Self.load(path), identity: identity, checkedAt: 0))
    }

    func keys(now: Int) -> [(id: String?, key: PublicKey)] {
        state.withLock { state in
            guard now != state.checkedAt else { return state.keys }
            state.checkedAt = now
            let identity = FileSystem.identity(path)
            guard identity != state.identity else { return state.keys }
            state.identity = identity
            switch Result(catching: { () throws(ConfigError) in try Self.load(path) }) {
            case .success(let keys): state.keys = keys
            case .failure(let error):
                SystemProcess.writeError("level=warn msg=\"kept the previous keys: auth.jwks_file \(error.problem)\" pid=\(SystemProcess.id)")
            }
            return state.keys
        }
    }

    private static func load(_ path: String) throws(ConfigError) -> [(id: String?, key: PublicKey)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(key: "auth.jwks_file", problem: "cannot read \(path)")
        }
        do {
            return try JWKS(json: Array(data)).keys.map { (id: $0.id, key: $0.publicKey) }
        } catch {
            throw ConfigError(key: "auth.jwks_file", problem: "\(path) \(error.description)")
        }
    }
}

/// Mints HS256 tokens for development and tests (`cameoctl token`).
public enum JWTMinter {
    public static func hs256(
        secret: String, keyID: String? = nil, userID: String, ttlSeconds: Int, now: Int, issuer: String?, audience: String?,
        tokenID: String? = nil
    ) -> (token: String, jti: String) {
        let jti = tokenID ?? Digest.randomBytes(16).hexString
        var claims: [(String, JSONValue)] = [
            ("sub", .string(userID)), ("iat", .int(now)), ("exp", .int(now + ttlSeconds)), ("jti", .string(jti)),
        ]
        if let issuer { claims.append(("iss", .string(issuer))) }
        if let audience { claims.append(("aud", .string(audience))) }
        var headerMembers: [(String, JSONValue)] = [("alg", .string("HS256")), ("typ", .string("JWT"))]
        if let keyID { headerMembers.append(("kid", .string(keyID))) }
        let header = Base64URL.encode(Array(JSONValue.object(headerMembers).serialized().utf8))
        let payload = Base64URL.encode(Array(JSONValue.object(claims).serialized().utf8))
        let signature = Digest.hmacSHA256(key: Array(secret.utf8), "\(header).\(payload)")
        return ("\(header).\(payload).\(Base64URL.encode(signature))", jti)
    }
}
