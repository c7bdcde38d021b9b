public import CameoCore
import CameoCrypto
public import CameoSystem
public import Scanning

/// Whatever decides that an upload is clean (SPEC §3). `scan` either gives a verdict now,
/// returns nil when the verdict will arrive later by callback (external scanner), or throws
/// when no verdict can be had now (scanner down, timed out, nonsense): the caller retries.
public protocol VirusScanner: Sendable {
    func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict?
    /// For `/health/avatar`: "up", "down", or "external" (not ours to probe).
    func healthStatus() -> String
}

extension ClamdClient: VirusScanner {
    public func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict? { try scan(bytes) }
    public func healthStatus() -> String { ping() ? "up" : "down" }
}

/// External scanning service mode: the upload is announced by an HTTP POST of
/// `{"media_id", "download_url", "callback_url"}`; the service fetches the quarantined bytes
/// from the short-lived signed `download_url` and later posts its verdict to `callback_url`,
/// signed with the shared secret (`/media/virus-scan-callback`).
struct ExternalScanner: VirusScanner {
    let announcer: ScanAnnouncer
    let links: QuarantineLinks
    let publicBaseURL: String
    let clock: any TimeSource
    /// Lifetime of a download link: long enough for a queue in front of the scanner.
    static let linkLifetime = 900

    func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict? {
        let expires = clock.epochSeconds + Self.linkLifetime
        let body = JSONValue.object([
            ("media_id", .string(mediaID)),
            ("download_url", .string(publicBaseURL + links.path(mediaID: mediaID, expires: expires))),
            ("callback_url", .string(publicBaseURL + "/media/virus-scan-callback")),
        ])
        let status = try announcer.post(json: body.serialized())
        guard (200..<300).contains(status) else { throw ScannerError.scannerError("external scanner answered HTTP \(status)") }
        return nil
    }

    func healthStatus() -> String { "external" }
}

/// Signed, expiring links to one quarantined upload, for the external scanner, and the HMAC
/// check of its callbacks. Both use the callback secrets: the first signs; during a rotation
/// (`scanner.callback_keys`) a link or callback signed with any of them verifies.
struct QuarantineLinks: Sendable {
    let secrets: [[UInt8]]

    func signature(mediaID: String, expires: Int, secret: [UInt8]? = nil) -> String {
        Digest.hmacSHA256(key: secret ?? secrets[0], "quarantine-download\n\(mediaID)\n\(expires)").hexString
    }

    func path(mediaID: String, expires: Int) -> String {
        "/quarantine-download/\(mediaID)?expires=\(expires)&signature=\(signature(mediaID: mediaID, expires: expires))"
    }

    func verify(mediaID: MediaID, expires: Int, signature: String, now: Int) -> Bool {
        let sent = Array(signature.utf8)
        let signed = secrets.contains { Digest.constantTimeEquals(Array(self.signature(mediaID: mediaID.rawValue, expires: expires, secret: $0).utf8), sent) }
        return signed && now < expires
    }

    /// Checks a callback's signature, hex HMAC-SHA256 of `"{timestamp}.{body}"`, in constant time.
    func verifyCallback(timestamp: String, body: [UInt8], signature: String) -> Bool {
        let sent = Array(signature.lowercased().utf8)
        return secrets.contains { Digest.constantTimeEquals(Array(Digest.hmacSHA256(key: $0, Array("\(timestamp).".utf8) + body).hexString.utf8), sent) }
    }
}

/// The scanner the configuration names, and (external mode only) its links: the callback and
/// download routes exist only then (404 otherwise), so a leftover secret cannot mark a
/// clamd-mode upload clean.
func configuredScanner(_ config: Config, clock: any TimeSource) -> (any VirusScanner, QuarantineLinks?) {
    switch config.scanner.mode {
    case .clamd:
        return (ClamdClient(socketPath: config.scanner.clamdSocket, timeoutSeconds: config.scanner.timeoutSeconds), nil)
    case .external:
        // Config validation guarantees the URL and the secret in external mode.
        let links = QuarantineLinks(secrets: config.scanner.callbackSecrets.map { Array($0.utf8) })
        let announcer = ScanAnnouncer(url: config.scanner.externalURL ?? "", timeoutSeconds: config.scanner.timeoutSeconds)
        return (ExternalScanner(announcer: announcer, links: links, publicBaseURL: config.publicBaseURL, clock: clock), links)
    }
}
