import Scanning

/// Whatever decides that an upload is clean (SPEC §3). `scan` either gives a verdict now,
/// returns nil when the verdict will arrive later by callback (external scanner), or throws
/// when no verdict can be had now (scanner down, timed out, nonsense): the caller retries.
protocol VirusScanner {
    func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict?
    /// For `/health/avatar`.
    func isAvailable() -> Bool
}

extension ClamdClient: VirusScanner {
    func scan(_ bytes: [UInt8], mediaID: String) throws -> ScanVerdict? { try scan(bytes) }
    func isAvailable() -> Bool { ping() }
}
