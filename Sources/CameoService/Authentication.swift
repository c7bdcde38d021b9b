import CameoCore
import CameoSystem
import MediaStore

/// Who is asking: verifies the token of a request (bearer header, else the `access_token`
/// cookie) and checks its revocation.
struct Authenticator: Sendable {
    let verifier: JWTVerifier
    /// Origins allowed to send cookie-authenticated requests.
    let allowedOrigins: [String]
    let store: any MediaStore
    let clock: any TimeSource

    /// The verified claims. Cookie requests must come from an allowed Origin, since browsers
    /// attach cookies to cross-site requests too. A revoked `jti` is refused, unless the
    /// caller checks revocation inside its own statement (`checkRevocation: false`).
    func authenticate(_ request: HTTPRequest, checkRevocation: Bool = true) throws -> TokenClaims {
        let token: String
        if let header = request.headers["authorization"] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw AppError.invalidToken }
            token = parts[1].trimmingWhitespace()
        } else if let cookie = request.cookie("access_token"), !cookie.isEmpty {
            let safeMethod = request.method == "GET" || request.method == "HEAD"
            if let origin = request.headers["origin"] {
                guard allowedOrigins.contains(origin) else { throw AppError.badOrigin }
            } else if !safeMethod {
                throw AppError.badOrigin
            }
            token = cookie
        } else {
            throw AppError.missingToken
        }
        let claims = try verifier.verify(token, now: clock.epochSeconds)
        if checkRevocation, let jti = claims.tokenID, try store.isRevoked(jti: jti) { throw AppError.tokenRevoked }
        return claims
    }
}
