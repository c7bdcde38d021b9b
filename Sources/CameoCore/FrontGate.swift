import CameoCrypto

/// Admits only requests that came through Cameo's nginx site. The worker sockets must be open
/// to nginx's user, and so to every other process running as that user (a php-fpm pool, another
/// site's code); nginx sends `CAMEO_FRONT_SECRET` (`nginx.fastcgi_secret`, from an include only
/// root reads) with every request, and a request without it gets nothing at all from a worker:
/// not a status, not a byte.
public struct FrontGate: Sendable {
    public static let parameter = "CAMEO_FRONT_SECRET"
    private let expectedDigests: [[UInt8]]

    /// `previous` is also admitted while a rotation runs (`nginx.fastcgi_previous_secret`):
    /// the workers accept both before nginx switches to the new secret.
    init(secret: String, previous: String? = nil) {
        expectedDigests = ([secret] + (previous.map { [$0] } ?? [])).map { Digest.sha256(Array($0.utf8)) }
    }

    public init(_ front: Config.FrontSettings) {
        self.init(secret: front.fastCGISecret, previous: front.previousFastCGISecret)
    }

    /// Compared as SHA-256 digests in constant time, each of them, so neither the secret's
    /// bytes nor its length, nor which one matched, leak through timing.
    public func admits(_ parameters: [String: String]) -> Bool {
        guard let sent = parameters[Self.parameter] else { return false }
        let digest = Digest.sha256(Array(sent.utf8))
        return expectedDigests.reduce(false) { admitted, expected in Digest.constantTimeEquals(digest, expected) || admitted }
    }
}
