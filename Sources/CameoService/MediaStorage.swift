import CameoCore
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the media folders. The message is for the log, never for the client.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: Int32
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// The on-disk layout under the media root (SPEC §3):
/// `quarantine/` (0700, never served) and `profile-media/{user_id}/avatar.webp`,
/// `avatar-{size}.webp` (served by nginx). Every path is built here from validated ids; no
/// client-chosen name ever reaches the file system.
public struct MediaStorage: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var quarantineDirectory: String { root + "/quarantine" }
    public var publishedDirectory: String { root + "/profile-media" }

    public func quarantinePath(mediaID: String) -> String { quarantineDirectory + "/" + mediaID }
    public func userDirectory(_ userID: String) -> String { publishedDirectory + "/" + userID }

    /// The published file name of a size: the largest is `avatar.webp`, the others `avatar-N.webp`.
    public static func fileName(size: Int, largest: Int) -> String { size == largest ? "avatar.webp" : "avatar-\(size).webp" }

    /// Moves nginx's buffered body file into quarantine. rename(2) keeps it atomic and free,
    /// and nginx's own clean-up of the temp name then finds nothing to delete.
    public func quarantine(bodyFile: String, mediaID: String) throws(StorageError) -> String {
        let target = quarantinePath(mediaID: mediaID)
        guard rename(bodyFile, target) == 0 else { throw StorageError(operation: "rename", path: bodyFile, errno: errno) }
        return target
    }

    /// Writes bytes to a new file (used when the body came over the FastCGI stream).
    public func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600) throws(StorageError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw StorageError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = StorageError(operation: "write", path: path, errno: errno)
                unlink(path)
                throw error
            }
            offset += written
        }
    }

    /// Reads a whole file, refusing more than `limit` bytes.
    public func read(_ path: String, limit: Int) throws(StorageError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StorageError(operation: "stat", path: path, errno: errno) }
        let size = Int(info.st_size)
        guard size <= limit else { throw StorageError(operation: "read (over limit)", path: path, errno: EFBIG) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + offset, size - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw StorageError(operation: "read", path: path, errno: count < 0 ? errno : EIO) }
            offset += count
        }
        return bytes
    }

    /// Size of a file in bytes.
    public func fileSize(_ path: String) throws(StorageError) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw StorageError(operation: "stat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    /// Removes a file; a file that is already gone is fine.
    public func remove(_ path: String) {
        unlink(path)
    }

    /// Writes every rendition to a temporary name in the user's folder. Returns the
    /// (temporary, final) pairs for `commit`, or removes what it wrote and throws.
    public func stage(userID: String, mediaID: String, renditions: [Int: [UInt8]]) throws(StorageError) -> [(String, String)] {
        let directory = userDirectory(userID)
        try makeDirectory(directory, mode: 0o755)
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
    public func commit(_ staged: [(String, String)]) throws(StorageError) {
        for (temporary, final) in staged {
            guard rename(temporary, final) == 0 else { throw StorageError(operation: "rename", path: final, errno: errno) }
        }
    }

    /// Removes staged temporary files.
    public func discard(_ staged: [(String, String)]) {
        for (temporary, _) in staged { unlink(temporary) }
    }

    /// Removes a user's published files.
    public func removeAvatar(userID: String, sizes: [Int]) {
        let directory = userDirectory(userID)
        let largest = sizes.max() ?? 0
        for size in sizes { unlink(directory + "/" + Self.fileName(size: size, largest: largest)) }
        rmdir(directory)
    }

    /// True when a folder exists and this process may write in it.
    public func isWritable(_ path: String) -> Bool { access(path, W_OK | X_OK) == 0 }

    private func makeDirectory(_ path: String, mode: mode_t) throws(StorageError) {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw StorageError(operation: "mkdir", path: path, errno: errno) }
    }
}

extension MediaStorage {
    /// Names in `directory`, without "." and "..".
    private func names(in directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Regular files directly in `directory` with their modification times (epoch seconds).
    /// Names starting with "." are included: staged renditions use them.
    public func files(in directory: String) -> [(path: String, modified: Int)] {
        names(in: directory).compactMap { name in
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return (path, Int(info.st_mtim.tv_sec))
        }
    }

    /// Sub-folders of `profile-media/` (one per user).
    public func userDirectories() -> [String] {
        names(in: publishedDirectory).filter { !$0.hasPrefix(".") }.map { publishedDirectory + "/" + $0 }
    }

    public var incomingDirectory: String { root + "/incoming" }
}
