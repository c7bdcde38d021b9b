import CameoCrypto

/// A media id as Cameo makes them: 128 random bits as exactly 32 lower-case hex digits.
/// It names the quarantine file and appears in URLs, so nothing else ever passes for one.
public struct MediaID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Validates `text`; nil unless it is exactly 32 of `0-9a-f`.
    public init?(_ text: some StringProtocol) {
        guard text.utf8.count == 32, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        rawValue = String(text)
    }

    /// A new random id (OpenSSL's CSPRNG).
    public static func random() -> MediaID { MediaID(Digest.randomBytes(16).hexString)! }

    public var description: String { rawValue }
}
