/// `media_files.state` (SPEC §3). The MariaDB column is an ENUM of exactly these raw values;
/// statements bind them as parameters, never as literals.
public enum MediaState: String, CaseIterable, Sendable {
    case pendingUpload = "pending_upload"
    case received, scanning, processing, ready, rejected, expired
    /// A resumable (tus) upload whose bytes are still arriving, a chunk at a time: it has an
    /// offset and an `Upload-Expires`, and leaves for `received` with its last byte.
    case receiving

    /// No transition leaves these except `unpublish` (a rescan taking a published avatar down).
    public var isFinal: Bool { self == .ready || self == .rejected || self == .expired }
}

/// `media_files.reject_reason`: SPEC §3's reasons, plus `bad_crop` for a client crop that does
/// not fit the image. Each is also the error code the client sees.
public enum RejectReason: String, CaseIterable, Sendable {
    case tooLarge = "too_large"
    case badType = "bad_type"
    case badDimensions = "bad_dimensions"
    case pixelBomb = "pixel_bomb"
    case corrupt
    case badCrop = "bad_crop"
    case infected
    case scanFailed = "scan_failed"
}

/// The state machine of an upload: every change of `media_files` a store makes is one of
/// these, and only from the states listed. `table` is the diagram (docs/ARCHITECTURE.md shows
/// it, and a test keeps the two equal).
public enum MediaTransition: String, CaseIterable, Sendable {
    /// A body arrived for the upload URL (the single-use check), or a resumable upload's
    /// last byte did.
    case claim
    /// A chunk of a resumable upload was appended: its offset moved on.
    case append
    /// The pipeline took the received bytes to the scanner.
    case startScan
    /// No verdict could be had (scanner down, slow, nonsense, or said error): retry later.
    case deferScan
    /// A retrier took a due retry for a while, so two never scan one upload at once.
    case leaseScan
    /// The external scanner has the bytes; its verdict comes by callback.
    case awaitVerdict
    /// The scanner said clean.
    case markClean
    /// The scanner found something.
    case markInfected
    /// Rendered, and the user's avatar pointer moved to it, in one transaction.
    case publish
    /// Refused (validation, scan failure, or an unexpected failure of its own step).
    case reject
    /// The upload URL was never used, a resumable upload passed its `Upload-Expires`, or its
    /// client terminated it.
    case expire
    /// A rescan after a signature update found a published avatar infected.
    case unpublish

    /// The states this transition may start from.
    public var from: [MediaState] { Self.table[self]!.from }
    /// The state it ends in.
    public var to: MediaState { Self.table[self]!.to }

    /// Transition → (from, to).
    public static let table: [MediaTransition: (from: [MediaState], to: MediaState)] = [
        .claim: ([.pendingUpload, .receiving], .received),
        .append: ([.receiving], .receiving),
        .startScan: ([.received], .scanning),
        .deferScan: ([.scanning], .scanning),
        .leaseScan: ([.scanning], .scanning),
        .awaitVerdict: ([.scanning], .scanning),
        .markClean: ([.scanning], .processing),
        .markInfected: ([.scanning], .rejected),
        .publish: ([.processing], .ready),
        .reject: ([.received, .scanning, .processing], .rejected),
        .expire: ([.pendingUpload, .receiving], .expired),
        .unpublish: ([.ready], .rejected),
    ]

    /// True when the machine allows this transition from `state`.
    public func allows(from state: MediaState) -> Bool { from.contains(state) }

    /// The table as Markdown, in declaration order.
    public static var markdownTable: String {
        var lines = ["| transition | from | to |", "|---|---|---|"]
        for transition in allCases {
            lines.append("| `\(transition.rawValue)` | \(transition.from.map { "`\($0.rawValue)`" }.joined(separator: ", ")) | `\(transition.to.rawValue)` |")
        }
        return lines.joined(separator: "\n")
    }
}
