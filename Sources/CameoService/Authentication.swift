import CameoCore

extension Application {
    /// Authenticates a request by `Authorization: Bearer` or, failing that, the `access_token`
    /// cookie. Cookie requests must come from an allowed Origin, since browsers attach cookies
    /// to cross-site requests too. Revoked `jti`s are refused, unless the caller checks
    /// revocation itself inside its own statement (`checkRevocation: false`).
    func authenticate(_ request: HTTPRequest, checkRevocation: Bool = true) throws -> TokenClaims {
        let token: String
        if let header = request.headers["authorization"] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw AppError.invalidToken }
            token = parts[1].trimmingWhitespace()
        } else if let cookie = request.cookie("access_token"), !cookie.isEmpty {
            let origin = request.headers["origin"]
            let safeMethod = request.method == "GET" || request.method == "HEAD"
            if let origin {
                guard config.auth.allowedOrigins.contains(origin) else { throw AppError.badOrigin }
            } else if !safeMethod {
                throw AppError.badOrigin
            }
            token = cookie
        } else {
            throw AppError.missingToken
        }
        let claims = try jwt.verify(token, now: Self.now())
        if checkRevocation, let jti = claims.tokenID, try repository.isRevoked(jti: jti) { throw AppError.tokenRevoked }
        return claims
    }
}
