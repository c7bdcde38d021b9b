internal import COpenSSL

/// Hashing, MACs and randomness through OpenSSL's libcrypto.
///
/// Everything here takes and returns plain byte arrays; the OpenSSL calls stay inside this
/// module so no other module imports `COpenSSL`.
public enum Digest {
    /// SHA-256 of `data` (`EVP_Digest` with `EVP_sha256`).
    public static func sha256(_ data: [UInt8]) -> [UInt8] { digest(data, EVP_sha256(), length: 32) }

    /// SHA-1 of `data` (`EVP_Digest` with `EVP_sha1`): only where a protocol names it (tus's
    /// `Upload-Checksum: sha1`, an integrity check of a chunk, not a signature).
    public static func sha1(_ data: [UInt8]) -> [UInt8] { digest(data, EVP_sha1(), length: 20) }

    private static func digest(_ data: [UInt8], _ algorithm: OpaquePointer?, length expected: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expected)
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &out, &length, algorithm, nil)
        }
        // EVP_Digest only fails on allocation failure inside OpenSSL; nothing sensible to recover.
        precondition(ok == 1 && Int(length) == expected, "EVP_Digest failed")
        return out
    }

    /// SHA-256 of a UTF-8 string.
    public static func sha256(_ text: String) -> [UInt8] { sha256(Array(text.utf8)) }

    /// HMAC-SHA256 of `data` under `key` (OpenSSL's one-shot `HMAC`).
    public static func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { keyBytes in
            data.withUnsafeBytes { input in
                HMAC(
                    EVP_sha256(), keyBytes.baseAddress, Int32(keyBytes.count),
                    input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count, &out, &length)
            }
        }
        precondition(result != nil && length == 32, "HMAC-SHA256 failed")
        return out
    }

    /// HMAC-SHA256 of a UTF-8 string.
    public static func hmacSHA256(key: [UInt8], _ text: String) -> [UInt8] { hmacSHA256(key: key, Array(text.utf8)) }

    /// Compares two byte strings in time that depends only on their lengths (`CRYPTO_memcmp`),
    /// so a forged signature cannot be found byte by byte through response timing.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, pa.count) == 0 }
        }
    }

    /// `count` bytes from OpenSSL's CSPRNG (`RAND_bytes`).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&out, Int32(count)) == 1, "RAND_bytes failed")
        return out
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hexadecimal, as SigV4 and content hashes use.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var chars = [UInt8]()
        chars.reserveCapacity(count * 2)
        for byte in self {
            chars.append(digits[Int(byte >> 4)])
            chars.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}
