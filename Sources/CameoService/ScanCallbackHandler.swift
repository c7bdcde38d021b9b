import CameoCore
import FoundationEssentials
import Scanning

extension Application {
    private struct CallbackBody: Decodable {
        let media_id: String
        let result: String
        let signature: String?
    }

    /// Callbacks older (or newer) than this are refused as replays.
    static let callbackMaxSkew = 300

    /// `POST /media/virus-scan-callback`: an external scanner's verdict. Authenticated by
    /// `X-Cameo-Timestamp` and `X-Cameo-Signature` (hex HMAC-SHA256 of `"{timestamp}.{body}"`
    /// with `scanner.callback_secret`, compared in constant time). A clean verdict processes
    /// and publishes the upload here; every transition is guarded, so a replayed or late
    /// callback changes nothing.
    func scanCallback(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "POST")
        guard let links else { throw AppError.notFound }
        let body = try request.readBody(16 * 1024)
        guard let timestamp = request.headers["x-cameo-timestamp"], let sent = Int(timestamp),
            let signature = request.headers["x-cameo-signature"]
        else { throw AppError.badSignature(.callback) }
        guard links.verifyCallback(timestamp: timestamp, body: body, signature: signature) else { throw AppError.badSignature(.callback) }
        guard abs(Self.now() - sent) <= Self.callbackMaxSkew else { throw AppError.staleTimestamp(maxSkewSeconds: Self.callbackMaxSkew) }
        guard let verdict = try? JSONDecoder().decode(CallbackBody.self, from: Data(body)) else {
            throw AppError.invalidJSON(expected: #"{"media_id", "result", "signature"?}"#)
        }
        guard Self.isMediaID(verdict.media_id), let media = try repository.media(id: verdict.media_id) else { throw AppError.notFound }
        guard media.state == .scanning else { throw AppError.alreadyDecided }

        let path = storage.quarantinePath(mediaID: media.id)
        switch verdict.result {
        case "clean":
            guard try repository.markClean(id: media.id) else { throw AppError.alreadyDecided }
            defer { storage.remove(path) }
            return try failingUpload(media.id) { () throws in
                let data = try storage.read(path, limit: config.limits.maxUploadBytes)
                return try process(media: media, data: data, bytes: data.count)
            }
        case "infected":
            guard try repository.markInfected(id: media.id, signature: verdict.signature ?? "unnamed") else { throw AppError.alreadyDecided }
            storage.remove(path)
            return .json(200, .object([("media_id", .string(media.id)), ("state", .string("rejected"))]))
        case "error":
            // The scanner could not decide: retry like a scanner that was down.
            let attempts = try repository.deferScan(id: media.id, now: Self.now(), baseSeconds: config.scanner.retryBaseSeconds)
            if attempts >= config.scanner.maxAttempts {
                try repository.rejectScanning(id: media.id, reason: .scanFailed)
                storage.remove(path)
                return .json(200, .object([("media_id", .string(media.id)), ("state", .string("rejected"))]))
            }
            return .json(200, .object([("media_id", .string(media.id)), ("state", .string("scanning"))]))
        default:
            throw AppError.badResult
        }
    }

    /// `GET /quarantine-download/{id}?expires&signature`: the external scanner fetches the
    /// quarantined bytes. The worker checks the link and the state; nginx sends the file
    /// (`X-Accel-Redirect` to an internal location), so the worker never streams it.
    func quarantineDownload(_ request: HTTPRequest) throws -> HTTPResponse {
        try require(request, "GET")
        guard let links else { throw AppError.notFound }
        let mediaID = String(request.path.dropFirst("/quarantine-download/".count))
        let query = Dictionary(request.queryItems, uniquingKeysWith: { first, _ in first })
        guard Self.isMediaID(mediaID), let expires = query["expires"].flatMap({ Int($0) }), let signature = query["signature"],
            links.verify(mediaID: mediaID, expires: expires, signature: signature, now: Self.now())
        else { throw AppError.badSignature(.downloadLink) }
        guard let media = try repository.media(id: mediaID), media.state == .scanning else { throw AppError.notFound }
        return HTTPResponse(
            status: 200,
            headers: [("X-Accel-Redirect", "/_cameo/quarantine/\(media.id)"), ("Content-Type", "application/octet-stream"),
                      ("Cache-Control", "no-store")])
    }
}
