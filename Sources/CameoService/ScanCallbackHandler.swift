import CameoCore
import CameoSystem
import FoundationEssentials
import MediaStore

/// `POST /media/virus-scan-callback`: an external scanner's verdict, authenticated by
/// `X-Cameo-Timestamp` and `X-Cameo-Signature` (hex HMAC-SHA256 of `"{timestamp}.{body}"` with
/// `scanner.callback_secret`, or any of `scanner.callback_keys`, compared in constant time).
/// Each signed callback is accepted once (`replayed_callback` after), and its guarded steps
/// make a late verdict change nothing.
struct ScanCallbackHandler: Sendable {
    let links: QuarantineLinks
    let store: any MediaStore
    let pipeline: UploadPipeline
    let clock: any TimeSource

    /// Callbacks older (or newer) than this are refused as replays.
    static let maxSkewSeconds = 300

    private struct Body: Decodable {
        let media_id: String
        let result: String
        let signature: String?
    }

    func handle(_ request: HTTPRequest) throws -> HTTPResponse {
        try request.require("POST")
        let body = try request.smallBody(limit: UploadPolicy.jsonBodyBytes)
        guard let timestamp = request.headers["x-cameo-timestamp"], let sent = Int(timestamp), let signature = request.headers["x-cameo-signature"],
            links.verifyCallback(timestamp: timestamp, body: body, signature: signature)
        else { throw AppError.badSignature(.callback) }
        guard abs(clock.epochSeconds - sent) <= Self.maxSkewSeconds else { throw AppError.staleTimestamp(maxSkewSeconds: Self.maxSkewSeconds) }
        // Past the window the timestamp refuses it; inside, the store remembers each callback
        // that was acted on (an `error` verdict replayed would count attempts and re-queue the
        // scan). Recorded only once decided: a callback that failed on our side (the database,
        // the disk) must be taken when the scanner sends it again. Kept for twice the window,
        // so a node whose clock runs ahead does not forget it early.
        let nonce = signature.lowercased()
        guard try !store.hasSeenCallback(nonce) else { throw AppError.replayedCallback }
        let response = try decide(body: body)
        _ = try store.firstUse(ofCallback: nonce, expiresAt: sent + 2 * Self.maxSkewSeconds)
        return response
    }

    private func decide(body: [UInt8]) throws -> HTTPResponse {
        guard let decoded = try? JSONDecoder().decode(Body.self, from: Data(body)) else {
            throw AppError.invalidJSON(expected: #"{"media_id", "result", "signature"?}"#)
        }
        let verdict: ExternalVerdict
        switch decoded.result {
        case "clean": verdict = .clean
        case "infected": verdict = .infected(signature: decoded.signature ?? "unnamed")
        case "error": verdict = .error
        default: throw AppError.badResult
        }
        guard let id = MediaID(decoded.media_id), let media = try store.media(id: id) else { throw AppError.notFound }

        let outcome = try pipeline.advance(media, with: .verdict(verdict))
        // A clean verdict answers like the upload would have: published, or why not. The
        // scanner's own verdicts (infected, error) are acknowledged with the state they led to.
        if verdict == .clean { return try outcome.response(for: id) }
        let state: MediaState = outcome == .scanning ? .scanning : .rejected
        return .json(200, .object([("media_id", .string(id.rawValue)), ("state", .string(state.rawValue))]))
    }
}

/// `GET /quarantine-download/{id}?expires&signature`: the external scanner fetches the
/// quarantined bytes. The worker checks the link and the state, then sends the file itself.
struct QuarantineDownloadHandler: Sendable {
    let links: QuarantineLinks
    let store: any MediaStore
    let root: MediaRoot
    /// The largest quarantined file there can be (`limits.max_upload_bytes`).
    let maxBytes: Int
    let clock: any TimeSource

    func handle(_ request: HTTPRequest, mediaID: MediaID) throws -> HTTPResponse {
        try request.require("GET")
        let query = Dictionary(request.queryItems, uniquingKeysWith: { first, _ in first })
        guard let expires = query["expires"].flatMap({ Int($0) }), let signature = query["signature"],
            links.verify(mediaID: mediaID, expires: expires, signature: signature, now: clock.epochSeconds)
        else { throw AppError.badSignature(.downloadLink) }
        guard let media = try store.media(id: mediaID), media.state == .scanning else { throw AppError.notFound }
        // The worker sends the bytes itself: quarantine/ is the workers' user's alone, never
        // readable by nginx (SPEC §1), so nginx cannot serve it by X-Accel-Redirect.
        let path = root.quarantined(media.id)
        guard FileSystem.exists(path) else { throw AppError.notFound }
        let bytes = try FileSystem.read(path, limit: maxBytes)
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")], body: bytes)
    }
}
