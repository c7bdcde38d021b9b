import CameoCore
public import CameoSystem

/// The on-disk layout under the media root (SPEC §3):
/// `quarantine/` (0700, never served) and `profile-media/{user_id}/avatar.webp`,
/// `avatar-{size}.webp` (served by nginx). Every path is built here from validated ids; no
/// client-chosen name ever reaches the file system.
public struct MediaStorage: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var quarantineDirectory: String { root + "/quarantine" }
    public var publishedDirectory: String { root + "/profile-media" }
    public var incomingDirectory: String { root + "/incoming" }

    public func quarantinePath(mediaID: String) -> String { quarantineDirectory + "/" + mediaID }
    public func userDirectory(_ userID: String) -> String { publishedDirectory + "/" + userID }

    /// The published file name of a size: the largest is `avatar.webp`, the others `avatar-N.webp`.
    public static func fileName(size: Int, largest: Int) -> String { size == largest ? "avatar.webp" : "avatar-\(size).webp" }

    /// Moves nginx's buffered body file into quarantine. rename(2) keeps it atomic and free,
    /// and nginx's own clean-up of the temp name then finds nothing to delete.
    public func quarantine(bodyFile: String, mediaID: String) throws(SystemError) -> String {
        let target = quarantinePath(mediaID: mediaID)
        try FileSystem.rename(bodyFile, to: target)
        return target
    }

    /// Writes bytes to a new file (used when the body came over the FastCGI stream).
    public func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600) throws(SystemError) {
        try FileSystem.writeNew(bytes, to: path, mode: mode)
    }

    /// Reads a whole file, refusing more than `limit` bytes.
    public func read(_ path: String, limit: Int) throws(SystemError) -> [UInt8] { try FileSystem.read(path, limit: limit) }

    /// Size of a file in bytes.
    public func fileSize(_ path: String) throws(SystemError) -> Int { try FileSystem.size(path) }

    /// Removes a file; a file that is already gone is fine.
    public func remove(_ path: String) { FileSystem.remove(path) }

    /// Writes every rendition to a temporary name in the user's folder. Returns the
    /// (temporary, final) pairs for `commit`, or removes what it wrote and throws.
    public func stage(userID: String, mediaID: String, renditions: [Int: [UInt8]]) throws(SystemError) -> [(String, String)] {
        let directory = userDirectory(userID)
        try FileSystem.makeDirectory(directory, mode: 0o755)
        let largest = renditions.keys.max() ?? 0
        var staged: [(String, String)] = []
        for (size, bytes) in renditions.sorted(by: { $0.key > $1.key }) {
            let temporary = "\(directory)/.\(mediaID)-\(size).tmp"
            do {
                try write(bytes, to: temporary, mode: 0o644)
            } catch {
                discard(staged)
                throw error
            }
            staged.append((temporary, directory + "/" + Self.fileName(size: size, largest: largest)))
        }
        return staged
    }

    /// Renames staged files into place; each rename replaces the old file atomically.
    public func commit(_ staged: [(String, String)]) throws(SystemError) {
        for (temporary, final) in staged { try FileSystem.rename(temporary, to: final) }
    }

    /// Removes staged temporary files.
    public func discard(_ staged: [(String, String)]) {
        for (temporary, _) in staged { FileSystem.remove(temporary) }
    }

    /// Removes a user's published files.
    public func removeAvatar(userID: String, sizes: [Int]) {
        let directory = userDirectory(userID)
        let largest = sizes.max() ?? 0
        for size in sizes { FileSystem.remove(directory + "/" + Self.fileName(size: size, largest: largest)) }
        FileSystem.removeDirectory(directory)
    }

    /// True when a folder exists and this process may write in it.
    public func isWritable(_ path: String) -> Bool { FileSystem.isWritableDirectory(path) }

    /// Regular files directly in `directory` with their modification times (epoch seconds).
    /// Names starting with "." are included: staged renditions use them.
    public func files(in directory: String) -> [(path: String, modified: Int)] {
        Directory.entries(of: directory).filter { $0.kind == .file }.map { ($0.path, $0.modified) }
    }

    /// Sub-folders of `profile-media/` (one per user).
    public func userDirectories() -> [String] {
        Directory.entries(of: publishedDirectory).filter { $0.kind == .directory && !$0.name.hasPrefix(".") }.map(\.path)
    }
}
