import CameoCrypto
import CameoSystem

/// What a secret in the configuration must be: long, not a placeholder, and random enough.
/// The start (worker and `cameoctl check-config`) refuses anything else, naming the key and
/// never the value; `cameoctl generate-secret` makes one that passes.
public enum SecretPolicy {
    /// Shortest accepted secret, in bytes.
    public static let minimumBytes = 32
    /// Least estimated entropy, bits: 32 random bytes in hex carry 256.
    public static let minimumBits = 128.0

    /// Words that mark a value copied from an example rather than generated.
    static let placeholderMarks = ["change-me", "changeme", "change_me", "replace", "example", "placeholder", "your-secret", "secret-here", "random-bytes"]

    /// A fresh secret: 32 bytes from OpenSSL's CSPRNG, as hex.
    public static func generate() -> String { Digest.randomBytes(32).hexString }

    /// Refuses `value` for `key` unless it is a usable secret. `subject` names the secret
    /// when the key holds several ("the secret of key `k1`").
    public static func check(_ value: String, key: String, subject: String = "the value") throws(ConfigError) {
        let fix = "; generate one with `cameoctl generate-secret`"
        guard value.utf8.count >= minimumBytes else {
            throw ConfigError(key: key, problem: "\(subject) is shorter than \(minimumBytes) bytes" + fix)
        }
        if isPlaceholder(value) { throw ConfigError(key: key, problem: "\(subject) is a placeholder" + fix) }
        let bits = estimatedBits(value)
        guard bits >= minimumBits else {
            throw ConfigError(key: key, problem: "\(subject) is not random enough (about \(Int(bits)) bits, at least \(Int(minimumBits)))" + fix)
        }
    }

    /// True for text copied from an example (`CHANGE-ME...`).
    public static func isPlaceholder(_ value: String) -> Bool {
        let lowered = value.lowercased()
        return placeholderMarks.contains { lowered.contains($0) }
    }

    /// The bytes' Shannon entropy times their count: a generous upper bound for text a person
    /// typed (it cannot see patterns), and about right for generated strings.
    static func estimatedBits(_ value: String) -> Double {
        var counts: [UInt8: Int] = [:]
        for byte in value.utf8 { counts[byte, default: 0] += 1 }
        let total = Double(value.utf8.count)
        let perByte = counts.values.reduce(0.0) { sum, count in
            let p = Double(count) / total
            return sum - p * SystemMath.log2(p)
        }
        return perByte * total
    }
}
