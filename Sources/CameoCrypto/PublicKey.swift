internal import COpenSSL

/// Errors from public-key operations, with OpenSSL's drained error stack.
public enum CryptoError: Error, Equatable, Sendable {
    /// The PEM text did not hold a public key OpenSSL could read.
    case invalidPublicKey(openSSL: [UInt])
    /// The key is not of the kind the algorithm needs (RSA for RS256, P-256 for ES256).
    case wrongKeyType
}

/// A public key for verifying JWT signatures (RS256 or ES256). Owns an `EVP_PKEY`.
public final class PublicKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never mutated after init; OpenSSL allows concurrent verifies.
    private let key: OpaquePointer

    /// The key's algorithm family.
    public enum Kind: Sendable { case rsa, ecP256 }

    /// What kind of key this is.
    public let kind: Kind

    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM (`PEM_read_bio_PUBKEY`).
    public init(pem: String) throws(CryptoError) {
        let bytes = Array(pem.utf8)
        // A memory BIO reads the caller's buffer in place, so it lives only inside the closure.
        let parsed = bytes.withUnsafeBytes { buffer -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        (key, kind) = try Self.adopt(parsed)
    }

    /// Reads a DER `SubjectPublicKeyInfo` (`d2i_PUBKEY`), as a JWK's members make one.
    public init(der: [UInt8]) throws(CryptoError) {
        let parsed = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PUBKEY(nil, &cursor, Int(buffer.count))
        }
        (key, kind) = try Self.adopt(parsed)
    }

    /// Takes ownership of a parsed key of a kind Cameo verifies with; frees any other.
    private static func adopt(_ parsed: OpaquePointer?) throws(CryptoError) -> (OpaquePointer, Kind) {
        guard let key = parsed else { throw .invalidPublicKey(openSSL: drainErrors()) }
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA: return (key, .rsa)
        case EVP_PKEY_EC: return (key, .ecP256)
        default:
            EVP_PKEY_free(key)
            throw .wrongKeyType
        }
    }

    deinit { EVP_PKEY_free(key) }

    /// Verifies an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `message`.
    public func verifyRS256(signature: [UInt8], message: [UInt8]) -> Bool {
        guard kind == .rsa else { return false }
        return verify(derSignature: signature, message: message)
    }

    /// Verifies an ES256 signature in JOSE form (raw 32-byte r followed by 32-byte s).
    public func verifyES256(signature: [UInt8], message: [UInt8]) -> Bool {
        guard kind == .ecP256, signature.count == 64, let der = Self.derFromRawECDSA(signature) else { return false }
        return verify(derSignature: der, message: message)
    }

    private func verify(derSignature: [UInt8], message: [UInt8]) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            _ = Self.drainErrors()
            return false
        }
        let result = derSignature.withUnsafeBytes { sig in
            message.withUnsafeBytes { msg in
                EVP_DigestVerify(
                    context, sig.baseAddress?.assumingMemoryBound(to: UInt8.self), sig.count,
                    msg.baseAddress?.assumingMemoryBound(to: UInt8.self), msg.count)
            }
        }
        // A failed verify leaves entries on OpenSSL's per-thread queue; clear them so they are
        // not blamed on a later, unrelated call.
        _ = Self.drainErrors()
        return result == 1
    }

    /// JOSE carries ECDSA signatures as r‖s; OpenSSL verifies DER `ECDSA-Sig-Value`.
    private static func derFromRawECDSA(_ raw: [UInt8]) -> [UInt8]? {
        guard let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let r = raw[0..<32].withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, 32, nil) }
        let s = raw[32..<64].withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, 32, nil) }
        // ECDSA_SIG_set0 takes ownership only when it succeeds.
        guard let r, let s, ECDSA_SIG_set0(sig, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_ECDSA_SIG(sig, &cursor)
        }
        return der
    }

    /// Empties OpenSSL's thread-local error queue, returning the codes (newest last).
    static func drainErrors() -> [UInt] {
        var codes: [UInt] = []
        while case let code = ERR_get_error(), code != 0 { codes.append(code) }
        return codes
    }
}
