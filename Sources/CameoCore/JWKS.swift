import CameoCrypto
import FoundationEssentials

/// A JSON Web Key Set (RFC 7517) as identity providers publish them for their token signing
/// keys: the RSA and P-256 public keys it holds, each with its `kid`, as the DER
/// SubjectPublicKeyInfo OpenSSL reads. Keys for other uses (`use` other than `sig`), other
/// types or curves, symmetric members and members OpenSSL does not accept as a key are
/// skipped, never fatal: a provider may publish encryption keys beside its signing keys.
public struct JWKS: Sendable {
    public struct Key: Sendable {
        public let id: String?
        public let algorithm: JWTAlgorithm
        /// DER `SubjectPublicKeyInfo`, as built from the member.
        public let subjectPublicKeyInfo: [UInt8]
        /// The same, as OpenSSL read it: parsed once, here.
        let publicKey: PublicKey
    }

    public let keys: [Key]

    /// Why a document is not a usable key set.
    public struct Invalid: Error, Sendable, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// The largest document accepted, and the most keys read from one.
    public static let maxBytes = 256 * 1024
    public static let maxKeys = 64

    private struct Document: Decodable { let keys: [JWK] }
    private struct JWK: Decodable {
        let kty: String
        let kid: String?
        let use: String?
        let alg: String?
        let n: String?
        let e: String?
        let crv: String?
        let x: String?
        let y: String?
    }

    /// Parses a key set; it must hold at least one usable signing key.
    public init(json: [UInt8]) throws(Invalid) {
        guard json.count <= Self.maxBytes else { throw Invalid(description: "is larger than \(Self.maxBytes) bytes") }
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(json)) else {
            throw Invalid(description: "is not a JWKS document ({\"keys\": [...]})")
        }
        var keys: [Key] = []
        for jwk in document.keys.prefix(Self.maxKeys) {
            if let key = Self.key(jwk) { keys.append(key) }
        }
        guard !keys.isEmpty else { throw Invalid(description: "holds no RSA or P-256 signing key") }
        self.keys = keys
    }

    /// The member as a key, or nil when it is not one Cameo verifies with; a member OpenSSL
    /// refuses (a modulus that is no RSA key, a point off the curve) is skipped the same way.
    private static func key(_ jwk: JWK) -> Key? {
        if let use = jwk.use, use != "sig" { return nil }
        if let kid = jwk.kid, kid.isEmpty || kid.utf8.count > 256 { return nil }
        guard let (algorithm, der) = publicKeyInfo(jwk), let publicKey = try? PublicKey(der: der) else { return nil }
        return Key(id: jwk.kid, algorithm: algorithm, subjectPublicKeyInfo: der, publicKey: publicKey)
    }

    private static func publicKeyInfo(_ jwk: JWK) -> (JWTAlgorithm, [UInt8])? {
        switch jwk.kty {
        case "RSA":
            guard jwk.alg == nil || jwk.alg == "RS256", let n = jwk.n.flatMap(Base64URL.decode), let e = jwk.e.flatMap(Base64URL.decode),
                (256...1024).contains(n.count), (1...8).contains(e.count)
            else { return nil }
            return (.rs256, DER.rsaPublicKey(modulus: n, exponent: e))
        case "EC":
            guard jwk.alg == nil || jwk.alg == "ES256", jwk.crv == "P-256", let x = jwk.x.flatMap(Base64URL.decode),
                let y = jwk.y.flatMap(Base64URL.decode), x.count == 32, y.count == 32
            else { return nil }
            return (.es256, DER.p256PublicKey(x: x, y: y))
        default:
            return nil
        }
    }
}

/// The few DER shapes a public key needs (X.690), written rather than parsed: OpenSSL parses
/// the result, so a mistake here is a key that does not load, never a key that verifies wrongly.
enum DER {
    static func rsaPublicKey(modulus: [UInt8], exponent: [UInt8]) -> [UInt8] {
        let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
        let algorithm = sequence(rsaEncryption + [0x05, 0x00])
        return sequence(algorithm + bitString(sequence(integer(modulus) + integer(exponent))))
    }

    static func p256PublicKey(x: [UInt8], y: [UInt8]) -> [UInt8] {
        let ecPublicKey: [UInt8] = [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]
        let prime256v1: [UInt8] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        return sequence(sequence(ecPublicKey + prime256v1) + bitString([0x04] + x + y))
    }

    static func sequence(_ content: [UInt8]) -> [UInt8] { [0x30] + length(content.count) + content }

    static func bitString(_ content: [UInt8]) -> [UInt8] { [0x03] + length(content.count + 1) + [0x00] + content }

    /// A non-negative INTEGER from big-endian bytes: minimal, with a zero byte where the top
    /// bit would make it negative.
    static func integer(_ bigEndian: [UInt8]) -> [UInt8] {
        var bytes = Array(bigEndian.drop { $0 == 0 })
        if bytes.isEmpty { bytes = [0] }
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return [0x02] + length(bytes.count) + bytes
    }

    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var rest = count
        while rest > 0 {
            bytes.insert(UInt8(rest & 0xFF), at: 0)
            rest >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }
}
