public import CameoCore

/// A client's crop, in oriented pixels (validated against the image once it is decoded).
public struct Crop: Sendable, Equatable {
    public var x: Int
    public var y: Int
    public var size: Int
    public init(x: Int, y: Int, size: Int) {
        self.x = x
        self.y = y
        self.size = size
    }
}

/// A `media_files` row as the service uses it.
public struct MediaRecord: Sendable, Equatable {
    public var id: MediaID
    public var userID: String
    public var state: MediaState
    public var rejectReason: RejectReason?
    public var declaredType: String
    public var declaredBytes: Int
    public var crop: Crop?
    /// The versioned avatar URL, once published.
    public var cdnURL: String?
    /// Scan attempts that gave no verdict.
    public var scanAttempts: Int
    /// When the next scan retry is due (epoch seconds); nil when none is.
    public var nextScanAt: Int?
    /// A resumable upload's bytes received so far (durable); nil for any other upload.
    public var uploadOffset: Int?
    /// When the upload URL dies, or a resumable upload's `Upload-Expires` (epoch seconds).
    public var expiresAt: Int

    public init(
        id: MediaID, userID: String, state: MediaState, rejectReason: RejectReason? = nil, declaredType: String, declaredBytes: Int,
        crop: Crop? = nil, cdnURL: String? = nil, scanAttempts: Int = 0, nextScanAt: Int? = nil, uploadOffset: Int? = nil, expiresAt: Int = 0
    ) {
        self.id = id
        self.userID = userID
        self.state = state
        self.rejectReason = rejectReason
        self.declaredType = declaredType
        self.declaredBytes = declaredBytes
        self.crop = crop
        self.cdnURL = cdnURL
        self.scanAttempts = scanAttempts
        self.nextScanAt = nextScanAt
        self.uploadOffset = uploadOffset
        self.expiresAt = expiresAt
    }

    /// A resumable upload still receiving bytes whose `Upload-Expires` has passed at `now`: gone
    /// for its client, though the sweeper may not have expired its row yet.
    public func isExpiredPartial(at now: Int) -> Bool { state == .receiving && expiresAt <= now }
}

/// The row a new upload starts as: `pending_upload` (a presigned URL) or, resumable,
/// `receiving` at offset 0 (tus).
public struct NewUpload: Sendable {
    public var id: MediaID
    public var userID: String
    public var declaredType: String
    public var declaredBytes: Int
    /// When the upload URL dies (epoch seconds).
    public var expiresAt: Int
    public var crop: Crop?
    /// A tus upload: its bytes come in chunks, from offset 0.
    public var resumable: Bool
    /// A resumable upload is refused while its user has this many others still `receiving`
    /// (their bytes wait on disk until they complete or expire).
    public var maxOpenPartials: Int

    public init(
        id: MediaID, userID: String, declaredType: String, declaredBytes: Int, expiresAt: Int, crop: Crop?, resumable: Bool = false,
        maxOpenPartials: Int = .max
    ) {
        self.resumable = resumable
        self.maxOpenPartials = maxOpenPartials
        self.id = id
        self.userID = userID
        self.declaredType = declaredType
        self.declaredBytes = declaredBytes
        self.expiresAt = expiresAt
        self.crop = crop
    }
}

/// What became of a request to start an upload.
public enum UploadAdmission: Sendable, Equatable {
    case created
    case revoked
    case rateLimited(retryAfter: Int)
    /// A resumable upload refused: its user has `maxOpenPartials` others still receiving;
    /// the first of them expires in `retryAfter` seconds (or is finished or terminated sooner).
    case tooManyPartials(retryAfter: Int)
}

/// A user's current avatar (`user_avatars`): which upload, which version of the files.
public struct AvatarPointer: Sendable, Equatable {
    public var userID: String
    public var mediaID: MediaID
    /// Content hash prefix: the `?v=` of the URLs and the name of the version's files.
    public var version: String
    /// The sizes rendered, largest first.
    public var sizes: [Int]

    public init(userID: String, mediaID: MediaID, version: String, sizes: [Int]) {
        self.userID = userID
        self.mediaID = mediaID
        self.version = version
        self.sizes = sizes.sorted(by: >)
    }
}

/// What the pipeline learnt about an upload's bytes, stored with the publish.
public struct SourceFacts: Sendable, Equatable {
    public var mime: String
    public var width: Int
    public var height: Int
    public var bytes: Int
    public var sha256: String

    public init(mime: String, width: Int, height: Int, bytes: Int, sha256: String) {
        self.mime = mime
        self.width = width
        self.height = height
        self.bytes = bytes
        self.sha256 = sha256
    }
}

/// A finished upload about to become its user's avatar.
public struct Publication: Sendable, Equatable {
    public var pointer: AvatarPointer
    public var cdnURL: String
    public var source: SourceFacts
    public var processingMilliseconds: Int

    public init(pointer: AvatarPointer, cdnURL: String, source: SourceFacts, processingMilliseconds: Int) {
        self.pointer = pointer
        self.cdnURL = cdnURL
        self.source = source
        self.processingMilliseconds = processingMilliseconds
    }
}

/// What a publish did.
public enum PublishOutcome: Sendable, Equatable {
    /// The record is `ready` and the user's avatar; `replacing` is the avatar it replaced, as
    /// the transaction read it (nil: the user had none).
    case published(replacing: AvatarPointer?)
    /// Nothing changed: the record was no longer `processing`.
    case notProcessing
}

/// One step of the state machine applied to a record, with the facts it records.
public enum MediaChange: Sendable, Equatable {
    case claim(bytes: Int)
    case startScan
    case awaitVerdict
    case clean(scanMilliseconds: Int?)
    case infected(signature: String)
    case reject(RejectReason)
    /// A resumable upload's client terminated it (tus `DELETE`).
    case terminate

    /// The transition of the table this change is.
    public var transition: MediaTransition {
        switch self {
        case .terminate: .expire
        case .claim: .claim
        case .startScan: .startScan
        case .awaitVerdict: .awaitVerdict
        case .clean: .markClean
        case .infected: .markInfected
        case .reject: .reject
        }
    }
}
