import CameoCrypto
import FoundationEssentials

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
public struct JWTVerifier: Sendable {
    private let algorithms: Set<JWTAlgorithm>
    private let hs256Secret: [UInt8]?
    private let publicKey: PublicKey?
    private let issuer: String?
    private let audience: String?
    private let leeway: Int

    public init(settings: Config.AuthSettings) throws {
        algorithms = settings.algorithms
        hs256Secret = settings.hs256Secret.map { Array($0.utf8) }
        var pem = settings.publicKeyPEM
        if pem == nil, let path = settings.publicKeyFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(key: "auth.public_key_file", problem: "cannot read \(path)")
            }
            pem = String(decoding: data, as: UTF8.self)
        }
        publicKey = try pem.map { try PublicKey(pem: $0) }
        issuer = settings.issuer
        audience = settings.audience
        leeway = settings.leewaySeconds
    }

    private struct Header: Decodable { let alg: String }

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
        guard verifySignature(algorithm: header.alg, signature: signature, signingInput: signingInput) else { throw .invalidToken }

        // Bounded so the conversion to Int below cannot trap on a signed but absurd value.
        guard let exp = claims.exp, exp.isFinite, abs(exp) < 1e12 else { throw .invalidToken }
        if Double(now - leeway) >= exp { throw .tokenExpired }
        if let nbf = claims.nbf, Double(now + leeway) < nbf { throw .tokenNotYetValid }
        if let issuer, claims.iss != issuer { throw .invalidToken }
        if let audience, claims.aud?.contains(audience) != true { throw .invalidToken }
        guard let sub = claims.sub, Self.isSafeUserID(sub) else { throw .invalidToken }
        return TokenClaims(userID: sub, tokenID: claims.jti, expiresAt: Int(exp))
    }

    private func verifySignature(algorithm name: String, signature: [UInt8], signingInput: [UInt8]) -> Bool {
        guard let algorithm = JWTAlgorithm(rawValue: name), algorithms.contains(algorithm) else { return false }
        switch algorithm {
        case .hs256:
            guard let hs256Secret else { return false }
            return Digest.constantTimeEquals(Digest.hmacSHA256(key: hs256Secret, signingInput), signature)
        case .rs256:
            return publicKey?.verifyRS256(signature: signature, message: signingInput) ?? false
        case .es256:
            return publicKey?.verifyES256(signature: signature, message: signingInput) ?? false
        }
    }

    /// User ids become folder names under `profile-media/`: 1-64 of `[A-Za-z0-9_-]`.
    public static func isSafeUserID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }
}

/// Mints HS256 tokens for development and tests (`cameoctl token`).
public enum JWTMinter {
    public static func hs256(
        secret: String, userID: String, ttlSeconds: Int, now: Int, issuer: String?, audience: String?, tokenID: String? = nil
    ) -> (token: String, jti: String) {
        let jti = tokenID ?? Digest.randomBytes(16).hexString
        var claims: [(String, JSONValue)] = [
            ("sub", .string(userID)), ("iat", .int(now)), ("exp", .int(now + ttlSeconds)), ("jti", .string(jti)),
        ]
        if let issuer { claims.append(("iss", .string(issuer))) }
        if let audience { claims.append(("aud", .string(audience))) }
        let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Array(JSONValue.object(claims).serialized().utf8))
        let signature = Digest.hmacSHA256(key: Array(secret.utf8), "\(header).\(payload)")
        return ("\(header).\(payload).\(Base64URL.encode(signature))", jti)
    }
}
