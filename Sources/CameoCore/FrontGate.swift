import CameoCrypto

/// Admits only requests that came through Cameo's nginx site. The worker sockets must be open
/// to nginx's user, and so to every other process running as that user (a php-fpm pool, another
/// site's code); nginx sends `CAMEO_FRONT_SECRET` (`nginx.fastcgi_secret`, from an include only
/// root reads) with every request, and a request without it gets nothing at all from a worker:
/// not a status, not a byte.
public struct FrontGate: Sendable {
    public static let parameter = "CAMEO_FRONT_SECRET"
    private let expectedDigest: [UInt8]

    public init(secret: String) {
        expectedDigest = Digest.sha256(Array(secret.utf8))
    }

    /// Compared as SHA-256 digests in constant time, so neither the secret's bytes nor its
    /// length leak through timing.
    public func admits(_ parameters: [String: String]) -> Bool {
        guard let sent = parameters[Self.parameter] else { return false }
        return Digest.constantTimeEquals(Digest.sha256(Array(sent.utf8)), expectedDigest)
    }
}
