import CameoCore
import CameoCrypto
import CameoSystem
import FoundationEssentials
import MediaStore

/// Resumable uploads: tus 1.0.0 with creation, creation-with-upload, expiration, checksum and
/// termination (SPEC §2). nginx answers discovery (`OPTIONS /tus/`) itself, checks every
/// creation and PATCH here (`verify`) before it reads a byte of the body, then buffers the
/// body (each chunk at most `limits.max_upload_bytes`) and passes it on: a PATCH cut mid-body
/// never reaches a worker, so resuming is per chunk.
///
/// A partial upload is a `media_files` row in state `receiving` with an offset, and its bytes
/// in `quarantine/{id}` (`PartialUploads`). Its last byte moves it to `received`, and the same
/// request runs the upload pipeline, as a PUT's body would.
struct TusHandler: Sendable {
    static let version = NginxConfig.tusVersion
    /// The only body type a chunk may have.
    static let chunkType = "application/offset+octet-stream"
    /// The pre-check's hint to nginx: the pool that should receive the body. The chunk that
    /// completes an upload goes to the image pool, since its request renders the avatar.
    static let poolHeader = "X-Cameo-Pool"

    let authenticator: Authenticator
    let admitter: UploadAdmitter
    let store: any MediaStore
    let pipeline: UploadPipeline
    let partials: PartialUploads
    let policy: UploadPolicy
    /// `tus.lifetime_seconds`: `Upload-Expires` is this long after creation.
    let lifetimeSeconds: Int
    /// `tus.partial_uploads_per_user`.
    let partialUploadsPerUser: Int
    let clock: any TimeSource

    // MARK: Requests

    /// nginx's `auth_request` for `POST /tus/` (`mediaID` nil) and `PATCH /tus/{id}`: every
    /// refusal the headers can decide, before the body is read. 204 names the pool for the body.
    func verify(_ request: HTTPRequest, mediaID: MediaID?) throws -> HTTPResponse {
        try Self.requireVersion(request)
        let claims = try authenticator.authenticate(request)
        let chunkLength = try Self.declaredChunkLength(request)
        _ = try Self.checksum(request)
        let (offset, length): (Int, Int)
        if let mediaID {
            let media = try partial(mediaID, of: claims)
            let clientOffset = try Self.clientOffset(request)
            guard clientOffset == media.offset else { throw AppError.offsetMismatch(expected: media.offset) }
            (offset, length) = (media.offset, media.record.declaredBytes)
        } else {
            (offset, length) = (0, try creation(request).length)
        }
        if let chunkLength, chunkLength > length - offset { throw AppError.tooLarge(limit: length - offset) }
        // A chunked body's length is known only once nginx has it: heavy, in case it completes.
        let completes = chunkLength.map { $0 > 0 && offset + $0 == length } ?? true
        return HTTPResponse(status: 204, headers: [(Self.poolHeader, completes ? "heavy" : "fast")])
    }

    /// `POST /tus/`: creates the upload (counted against the per-user limit like a presign);
    /// a body is its first chunk.
    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try request.require("POST")
        try Self.requireVersion(request)
        // Revocation and the per-user limit are checked by the INSERT (`admit`).
        let claims = try authenticator.authenticate(request, checkRevocation: false)
        let creation = try creation(request)
        _ = try Self.declaredChunkLength(request)
        let chunk = try request.smallBody(limit: creation.length)
        if !chunk.isEmpty { try Self.verify(chunk, against: Self.checksum(request)) }

        let mediaID = MediaID.random()
        let expiresAt = clock.epochSeconds + lifetimeSeconds
        try admitter.admit(
            NewUpload(
                id: mediaID, userID: claims.userID, declaredType: creation.type, declaredBytes: creation.length, expiresAt: expiresAt,
                crop: creation.crop, resumable: true, maxOpenPartials: partialUploadsPerUser),
            claims: claims)
        try partials.create(mediaID)
        // Relative (SPEC §2): clients resolve it against the URL they posted to, whatever host
        // name or origin that was.
        var response = HTTPResponse(status: 201, headers: [("Location", "/tus/\(mediaID)"), ("Upload-Expires", httpDate(epochSeconds: expiresAt))])
        response.logFields = [("media", mediaID.rawValue), ("appended", String(chunk.count))]
        guard !chunk.isEmpty else { return response }
        return try appendAndAnswer(chunk, to: mediaID, at: 0, owner: claims.userID, success: response)
    }

    /// `HEAD`, `PATCH` and `DELETE /tus/{id}`.
    func handle(_ request: HTTPRequest, mediaID: MediaID) throws -> HTTPResponse {
        try request.require("HEAD", "PATCH", "DELETE")
        try Self.requireVersion(request)
        // A PATCH's revocation was checked by nginx's pre-check of this very request, moments
        // ago; its token is verified again here, its jti not looked up twice.
        let claims = try authenticator.authenticate(request, checkRevocation: request.method != "PATCH")
        switch request.method {
        case "HEAD": return try status(mediaID, of: claims)
        case "PATCH": return try append(request, mediaID: mediaID, of: claims)
        default: return try terminate(mediaID, of: claims)
        }
    }

    /// HEAD: the durable offset. A finished upload reports its whole length, so a client that
    /// lost the last answer stops sending; `GET /media/{id}` says how it ended.
    private func status(_ mediaID: MediaID, of claims: TokenClaims) throws -> HTTPResponse {
        let media = try resumable(mediaID, of: claims)
        var headers = [("Upload-Length", String(media.declaredBytes)), ("Cache-Control", "no-store")]
        switch media.state {
        case .expired: throw AppError.uploadExpired
        case .receiving:
            guard !media.isExpiredPartial(at: clock.epochSeconds) else { throw AppError.uploadExpired }
            headers += [("Upload-Offset", String(media.uploadOffset ?? 0)), ("Upload-Expires", httpDate(epochSeconds: media.expiresAt))]
        default:
            headers.append(("Upload-Offset", String(media.declaredBytes)))
        }
        return HTTPResponse(status: 200, headers: headers)
    }

    /// PATCH: one chunk, at the offset the server has.
    private func append(_ request: HTTPRequest, mediaID: MediaID, of claims: TokenClaims) throws -> HTTPResponse {
        guard Self.isChunk(request) else { throw AppError.badContentType }
        let offset = try Self.clientOffset(request)
        // Read into memory by the worker (`Router.intake`), at most a whole upload; the record,
        // its owner and the rest of its length are checked once its file is locked.
        let chunk = try request.smallBody(limit: policy.maxUploadBytes)
        try Self.verify(chunk, against: Self.checksum(request))
        var response = HTTPResponse(status: 204)
        response.logFields = [("media", mediaID.rawValue), ("appended", String(chunk.count))]
        return try appendAndAnswer(chunk, to: mediaID, at: offset, owner: claims.userID, success: response)
    }

    /// DELETE (termination): the partial upload and its bytes go. The row stays, `expired`, so
    /// creating and terminating uploads cannot dodge the per-user limit.
    private func terminate(_ mediaID: MediaID, of claims: TokenClaims) throws -> HTTPResponse {
        var state = try resumable(mediaID, of: claims).state
        if state == .receiving {
            if try store.apply(.terminate, to: mediaID, from: .receiving) {
                partials.remove(mediaID)
                return HTTPResponse(status: 204)
            }
            // Completed, expired or terminated in the meantime.
            state = try store.media(id: mediaID)?.state ?? .expired
        }
        // Gone already (410), or complete and the pipeline's (409; `DELETE
        // /api/v1/profile/me/avatar` removes a published avatar).
        throw state == .expired ? AppError.uploadExpired : AppError.alreadyDecided
    }

    // MARK: Appending and completing

    /// Appends a verified chunk and answers with `success` plus the new offset; the chunk that
    /// completes the upload runs the pipeline first, and a refusal of the image is the answer.
    private func appendAndAnswer(_ chunk: [UInt8], to mediaID: MediaID, at offset: Int, owner: String, success: HTTPResponse) throws
        -> HTTPResponse
    {
        let appended = try partials.append(chunk, to: mediaID, at: offset, owner: owner)
        var response = success
        response.headers.append(("Upload-Offset", String(appended.offset)))
        guard let completed = appended.completed else { return response }
        switch try pipeline.advance(completed, with: .completed) {
        case .published: response.headers.append(("Cameo-Media-State", MediaState.ready.rawValue))
        case .scanning: response.headers.append(("Cameo-Media-State", MediaState.scanning.rawValue))
        case .rejected(let error):
            var refused = HTTPResponse.error(error, requestID: nil)
            refused.headers += [("Upload-Offset", String(appended.offset)), ("Cameo-Media-State", MediaState.rejected.rawValue)]
            if let location = success.header("Location") { refused.headers.append(("Location", location)) }
            refused.logFields = success.logFields + [("code", error.code.rawValue)]
            return refused
        }
        return response
    }

    // MARK: Records

    /// The caller's resumable upload, whatever its state: 404 for an unknown id or an upload
    /// that is not resumable (a presigned one), 403 for another user's.
    private func resumable(_ mediaID: MediaID, of claims: TokenClaims) throws -> MediaRecord {
        try Self.resumable(store.media(id: mediaID), owner: claims.userID)
    }

    static func resumable(_ media: MediaRecord?, owner: String) throws(AppError) -> MediaRecord {
        guard let media, media.uploadOffset != nil else { throw .notFound }
        guard media.userID == owner else { throw .forbidden }
        return media
    }

    /// The owner's upload while it still takes bytes, and its offset: 410 once expired or
    /// terminated, 409 once complete (its offset is its length).
    private func partial(_ mediaID: MediaID, of claims: TokenClaims) throws -> (record: MediaRecord, offset: Int) {
        try Self.partial(store.media(id: mediaID), owner: claims.userID, now: clock.epochSeconds)
    }

    static func partial(_ media: MediaRecord?, owner: String, now: Int) throws(AppError) -> (record: MediaRecord, offset: Int) {
        let media = try resumable(media, owner: owner)
        switch media.state {
        case .receiving:
            guard !media.isExpiredPartial(at: now) else { throw .uploadExpired }
            return (media, media.uploadOffset ?? 0)
        case .expired: throw .uploadExpired
        default: throw .offsetMismatch(expected: media.declaredBytes)
        }
    }

    // MARK: Headers

    /// What a creation declares: `Upload-Length` and `Upload-Metadata`.
    struct Creation {
        var length: Int
        var type: String
        var crop: Crop?
    }

    func creation(_ request: HTTPRequest) throws(AppError) -> Creation {
        guard request.headers["upload-defer-length"] == nil, let text = request.headers["upload-length"], let length = Self.number(text),
            length > 0
        else { throw .badUploadLength }
        guard length <= policy.maxUploadBytes else { throw .tooLarge(limit: policy.maxUploadBytes) }
        let metadata = try Self.metadata(request.headers["upload-metadata"] ?? "")
        guard let typeBytes = metadata["filetype"], let type = typeBytes.flatMap({ String(validating: $0, as: UTF8.self) }) else {
            throw .badMetadata("filetype is required (the image's MIME type, base64).")
        }
        guard policy.allowedTypes.contains(type) else { throw .badType(allowed: policy.allowedTypes) }
        var crop: Crop? = nil
        if let cropBytes = metadata["crop"] {
            guard let json = cropBytes, let body = try? JSONDecoder().decode(CropBody.self, from: Data(json)) else {
                throw .badMetadata(#"crop must be base64 of {"x", "y", "size"}."#)
            }
            crop = try policy.validate(body)
        }
        return Creation(length: length, type: type, crop: crop)
    }

    /// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
    /// Keys are unique; values are decoded, not interpreted. Keys Cameo does not use
    /// (`filename`, and whatever a client adds) are accepted and ignored.
    static func metadata(_ header: String) throws(AppError) -> [String: [UInt8]?] {
        // Room for a type, a long file name and a crop; nginx's header limits bound it anyway.
        guard header.utf8.count <= maxMetadataBytes else { throw .badMetadata("at most \(maxMetadataBytes) bytes.") }
        var pairs: [String: [UInt8]?] = [:]
        for item in header.split(separator: ",") {
            let parts = item.trimmingWhitespace().split(separator: " ", omittingEmptySubsequences: true)
            guard let key = parts.first, parts.count <= 2, pairs[String(key)] == nil else {
                throw .badMetadata("expected comma-separated `key base64value` pairs, each key once.")
            }
            if parts.count == 2 {
                // The key is not echoed: the message travels to nginx in a header of bounded size.
                guard let value = Data(base64Encoded: String(parts[1])) else { throw .badMetadata("a value is not base64.") }
                pairs[String(key)] = Array(value)
            } else {
                pairs[String(key)] = .some(nil)
            }
        }
        return pairs
    }

    static let maxMetadataBytes = 2048

    static func requireVersion(_ request: HTTPRequest) throws(AppError) {
        guard request.headers["tus-resumable"] == version else { throw .unsupportedVersion }
    }

    static func isChunk(_ request: HTTPRequest) -> Bool {
        let type = request.headers["content-type"].map { $0.split(separator: ";")[0].trimmingWhitespace().lowercased() }
        return type == chunkType
    }

    static func clientOffset(_ request: HTTPRequest) throws(AppError) -> Int {
        guard let text = request.headers["upload-offset"], let offset = number(text) else { throw .badUploadOffset }
        return offset
    }

    /// The body's declared length: nil when it comes chunked (`Transfer-Encoding`, no
    /// `Content-Length`). A PATCH, and a creation that has a body, must send a chunk.
    static func declaredChunkLength(_ request: HTTPRequest) throws(AppError) -> Int? {
        let length = request.headers["transfer-encoding"] != nil ? nil : request.headers["content-length"].flatMap(number) ?? 0
        if request.method == "PATCH" || length != 0 {
            guard isChunk(request) else { throw .badContentType }
        }
        return length
    }

    /// A checksum a chunk must match.
    enum Checksum: Equatable {
        case sha1([UInt8])
        case sha256([UInt8])
    }

    /// `Upload-Checksum: sha1|sha256 <base64 digest>`, nil when absent.
    static func checksum(_ request: HTTPRequest) throws(AppError) -> Checksum? {
        guard let header = request.headers["upload-checksum"] else { return nil }
        let parts = header.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, let digest = Data(base64Encoded: String(parts[1])).map(Array.init) else { throw .badChecksum }
        switch (parts[0].lowercased(), digest.count) {
        case ("sha1", 20): return .sha1(digest)
        case ("sha256", 32): return .sha256(digest)
        default: throw .badChecksum
        }
    }

    /// 460 when `chunk` does not match: it is discarded before anything is written.
    static func verify(_ chunk: [UInt8], against checksum: Checksum?) throws(AppError) {
        switch checksum {
        case nil: return
        case .sha1(let expected): guard Digest.constantTimeEquals(Digest.sha1(chunk), expected) else { throw .checksumMismatch }
        case .sha256(let expected): guard Digest.constantTimeEquals(Digest.sha256(chunk), expected) else { throw .checksumMismatch }
        }
    }

    /// A byte count as tus headers carry it: decimal digits only (no sign, no spaces).
    static func number(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 15, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(text)
    }
}

/// The bytes of resumable uploads while they arrive: `quarantine/{id}`, never served, and
/// where the pipeline finds an upload's bytes once it is complete (no copy, no rename).
///
/// The store's offset is the truth. A chunk is written at that offset and made durable
/// (`fdatasync`) before the offset moves (one guarded UPDATE), so the offset never counts a
/// byte that is not on disk. Bytes past the offset (a writer killed between its write and its
/// commit) are cut off by the next append. Appends to one upload hold an exclusive `flock`
/// on its file, so they never interleave, and the kernel releases it if a worker dies.
struct PartialUploads: Sendable {
    let root: MediaRoot
    let store: any MediaStore
    let clock: any TimeSource

    /// The empty file of a new upload, its name durable.
    func create(_ id: MediaID) throws {
        try FileSystem.writeNew([], to: root.quarantined(id))
        try FileSystem.syncDirectory(root.quarantine)
    }

    func remove(_ id: MediaID) { FileSystem.remove(root.quarantined(id)) }

    /// What an append did: the new offset, and the record when that completed the upload
    /// (now `received`, this caller's to take through the pipeline).
    struct Appended {
        var offset: Int
        var completed: MediaRecord?
    }

    /// Appends `chunk` at `offset` to `owner`'s upload. Its record is read once its file is
    /// locked: 404 or 403 for an upload that is not the owner's, 409 when `offset` is not its
    /// offset (another chunk won, or completed it), 410 when it expired or was terminated.
    func append(_ chunk: [UInt8], to id: MediaID, at offset: Int, owner: String) throws -> Appended {
        let file: LockedFile
        do {
            file = try FileSystem.openLocked(root.quarantined(id))
        } catch {
            guard error.isNotFound else { throw error }
            // Unknown, not the owner's, or gone with its row (terminated, swept): the record says
            // which. Still receiving, the file alone is gone (a restore from backup has no
            // quarantine): the upload cannot be finished, so it ends here rather than answer 503
            // until it expires.
            _ = try TusHandler.partial(store.media(id: id), owner: owner, now: clock.epochSeconds)
            if try store.apply(.terminate, to: id, from: .receiving) { Log.message("partial upload \(id) had no file; terminated") }
            throw AppError.uploadExpired
        }
        defer { file.close() }
        // Under the lock, the record as the last append left it.
        let (media, stored) = try TusHandler.partial(store.media(id: id), owner: owner, now: clock.epochSeconds)
        guard stored == offset else { throw AppError.offsetMismatch(expected: stored) }
        guard chunk.count <= media.declaredBytes - offset else { throw AppError.tooLarge(limit: media.declaredBytes - offset) }
        guard !chunk.isEmpty else { return Appended(offset: offset, completed: nil) }

        let size = try file.size()
        // Shorter than the offset means bytes the store counted are gone (the disk lost them):
        // the upload cannot be finished honestly. It ends here, and the client starts again.
        guard size >= offset else {
            if try store.apply(.terminate, to: id, from: .receiving) { remove(id) }
            throw PartialUploadLost(id: id, offset: offset, size: size)
        }
        if size > offset { try file.truncate(to: offset) }
        try file.write(chunk, at: offset)
        try file.syncData()
        guard try store.recordAppend(id: id, at: offset, count: chunk.count, now: clock.epochSeconds) else {
            try? file.truncate(to: offset)
            throw try store.media(id: id)?.state == .receiving ? AppError.offsetMismatch(expected: offset) : AppError.uploadExpired
        }
        let newOffset = offset + chunk.count
        guard newOffset == media.declaredBytes else { return Appended(offset: newOffset, completed: nil) }
        var completed = media
        completed.state = .received
        completed.uploadOffset = newOffset
        return Appended(offset: newOffset, completed: completed)
    }
}

/// A partial upload whose file is shorter than its durable offset: logged, answered as 500.
struct PartialUploadLost: Error, CustomStringConvertible {
    let id: MediaID
    let offset: Int
    let size: Int
    var description: String { "partial upload \(id) has \(size) bytes on disk but offset \(offset); it was terminated" }
}
