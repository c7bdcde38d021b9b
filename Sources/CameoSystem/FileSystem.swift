internal import Glibc
internal import SystemPackage

/// The file operations Cameo needs, by path. Reads and writes go through swift-system's
/// `FileDescriptor` (which retries `EINTR`); what it lacks (rename, link, symlink, stat by
/// path, access) is wrapped here, each function naming the C call it makes.
public enum FileSystem {
    /// Reads a whole file, refusing one larger than `limit` bytes (`EFBIG`).
    public static func read(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let fd = try open(path, .readOnly)
        defer { try? fd.close() }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw SystemError(operation: "fstat", path: path, errno: .last) }
        let size = Int(info.st_size)
        guard size <= limit else { throw SystemError(operation: "read (over \(limit) bytes)", path: path, errno: .fileTooLarge) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count: Int
            do {
                count = try bytes.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset...])) }
            } catch {
                throw SystemError(operation: "read", path: path, errno: error as? Errno ?? .ioError)
            }
            // The file shrank under us: report it rather than return zeros.
            guard count > 0 else { throw SystemError(operation: "read (file shrank)", path: path, errno: .ioError) }
            offset += count
        }
        return bytes
    }

    /// Creates `path` (it must not exist: `O_EXCL`) and writes `bytes`; a partly written file
    /// is removed again. With `durable`, the data is on disk (`fsync`) before this returns.
    public static func writeNew(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600, durable: Bool = false) throws(SystemError) {
        let fd = try open(path, .writeOnly, options: [.create, .exclusiveCreate], permissions: FilePermissions(rawValue: CModeT(mode)))
        var failure: SystemError?
        do {
            try fd.writeAll(bytes)
            if durable, fsync(fd.rawValue) != 0 { failure = SystemError(operation: "fsync", path: path, errno: .last) }
        } catch {
            failure = SystemError(operation: "write", path: path, errno: error as? Errno ?? .ioError)
        }
        try? fd.close()
        if let failure {
            unlink(path)
            throw failure
        }
    }

    /// Creates `path` (`O_EXCL`) for writing in pieces; see `NewFile`.
    public static func create(_ path: String, mode: UInt32 = 0o600) throws(SystemError) -> NewFile {
        NewFile(path: path, descriptor: try open(path, .writeOnly, options: [.create, .exclusiveCreate], permissions: FilePermissions(rawValue: CModeT(mode))))
    }

    /// Atomically gives `source` the name `target`, replacing what was there (`rename(2)`).
    public static func rename(_ source: String, to target: String) throws(SystemError) {
        guard Glibc.rename(source, target) == 0 else { throw SystemError(operation: "rename", path: "\(source) -> \(target)", errno: .last) }
    }

    /// Makes `newName` a second name of `existing` (`link(2)`): atomic, and it never replaces
    /// a file, so an existing `newName` fails with `EEXIST`.
    public static func link(_ existing: String, as newName: String) throws(SystemError) {
        guard Glibc.link(existing, newName) == 0 else { throw SystemError(operation: "link", path: "\(existing) -> \(newName)", errno: .last) }
    }

    /// Creates a symbolic link at `path` whose content is `target` (`symlink(2)`).
    public static func symlink(_ target: String, at path: String) throws(SystemError) {
        guard Glibc.symlink(target, path) == 0 else { throw SystemError(operation: "symlink", path: path, errno: .last) }
    }

    /// The content of the symbolic link at `path` (`readlink(2)`), nil when there is none.
    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes a file or symbolic link (`unlink(2)`); true when there was one.
    @discardableResult
    public static func remove(_ path: String) -> Bool { unlink(path) == 0 }

    /// Creates a directory (`mkdir(2)`); an existing one is fine.
    public static func makeDirectory(_ path: String, mode: UInt32 = 0o755) throws(SystemError) {
        if mkdir(path, mode_t(mode)) != 0 && Errno.last != .fileExists {
            throw SystemError(operation: "mkdir", path: path, errno: .last)
        }
    }

    /// Removes an empty directory (`rmdir(2)`); true when it is gone now.
    @discardableResult
    public static func removeDirectory(_ path: String) -> Bool { rmdir(path) == 0 }

    /// Size of the file at `path` in bytes (`stat(2)`, following links).
    public static func size(_ path: String) throws(SystemError) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemError(operation: "stat", path: path, errno: .last) }
        return Int(info.st_size)
    }

    /// What tells one version of a file from the next (`stat(2)`): a file replaced by rename
    /// has a new inode, one rewritten in place a new size or modification time. Nil when the
    /// file cannot be reached.
    public struct Identity: Equatable, Sendable {
        let inode: UInt64
        let size: Int64
        let modifiedSeconds: Int
        let modifiedNanoseconds: Int
    }

    public static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(
            inode: UInt64(info.st_ino), size: Int64(info.st_size), modifiedSeconds: Int(info.st_mtim.tv_sec),
            modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
    }

    /// Sets the modification time of `path` to now (`utimensat(2)`).
    public static func touch(_ path: String) throws(SystemError) {
        guard utimensat(AT_FDCWD, path, nil, 0) == 0 else { throw SystemError(operation: "utimensat", path: path, errno: .last) }
    }

    /// True when `path` exists (following links: a dangling link does not count).
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// True when `path` is a directory this process may create and remove files in.
    public static func isWritableDirectory(_ path: String) -> Bool { access(path, W_OK | X_OK) == 0 }

    private static func open(
        _ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [], permissions: FilePermissions? = nil
    ) throws(SystemError) -> FileDescriptor {
        do {
            return try FileDescriptor.open(FilePath(path), mode, options: options.union(.closeOnExec), permissions: permissions)
        } catch {
            throw SystemError(operation: "open", path: path, errno: error as? Errno ?? .ioError)
        }
    }
}

/// A file being written in pieces: created new, appended to, then closed. Closed with an error,
/// abandoned, or dropped unfinished (a thrown error on the way), it is removed, so no
/// half-written file stays behind under its name.
public final class NewFile {
    public let path: String
    private let descriptor: FileDescriptor
    private var open = true

    fileprivate init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    public func append(_ bytes: ArraySlice<UInt8>) throws(SystemError) {
        do {
            try descriptor.writeAll(bytes)
        } catch {
            throw SystemError(operation: "write", path: path, errno: error as? Errno ?? .ioError)
        }
    }

    /// Closes the file, which stays; with `durable`, its data is on disk (`fsync`) first.
    public func close(durable: Bool = false) throws(SystemError) {
        guard open else { return }
        open = false
        var failure: SystemError?
        if durable, fsync(descriptor.rawValue) != 0 { failure = SystemError(operation: "fsync", path: path, errno: .last) }
        do { try descriptor.close() } catch { failure = failure ?? SystemError(operation: "close", path: path, errno: error as? Errno ?? .ioError) }
        if let failure {
            unlink(path)
            throw failure
        }
    }

    /// Closes and removes the file.
    public func abandon() {
        if open { try? descriptor.close() }
        open = false
        unlink(path)
    }

    deinit {
        if open { abandon() }
    }
}

extension FileSystem {
    /// Opens an existing file for writing in place and takes an exclusive `flock(2)` on it,
    /// waiting while another process holds one. The kernel drops the lock when the file is
    /// closed or its process dies, so a killed writer never leaves it held.
    public static func openLocked(_ path: String) throws(SystemError) -> LockedFile {
        let fd = try open(path, .writeOnly)
        while flock(fd.rawValue, LOCK_EX) != 0 {
            guard Errno.last == .interrupted else {
                let failure = SystemError(operation: "flock", path: path, errno: .last)
                try? fd.close()
                throw failure
            }
        }
        return LockedFile(path: path, descriptor: fd)
    }

    /// Makes the names in a directory durable (`fsync(2)` on the directory): a file created
    /// in it then survives a crash under its name, not just its data.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, .readOnly, options: [.directory])
        defer { try? fd.close() }
        guard fsync(fd.rawValue) == 0 else { throw SystemError(operation: "fsync", path: path, errno: .last) }
    }
}

/// A file held under an exclusive lock (`FileSystem.openLocked`) and written at offsets: a
/// partial upload that grows one chunk at a time. The lock goes with the descriptor, when
/// this is closed or dropped.
public final class LockedFile {
    public let path: String
    private let descriptor: FileDescriptor
    private var open = true

    fileprivate init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    /// The file's size now (`fstat(2)`).
    public func size() throws(SystemError) -> Int {
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { throw SystemError(operation: "fstat", path: path, errno: .last) }
        return Int(info.st_size)
    }

    /// Cuts the file to `size` bytes (`ftruncate(2)`).
    public func truncate(to size: Int) throws(SystemError) {
        guard ftruncate(descriptor.rawValue, off_t(size)) == 0 else { throw SystemError(operation: "ftruncate", path: path, errno: .last) }
    }

    /// Writes all of `bytes` starting at `offset` (`pwrite(2)`, repeated until done).
    public func write(_ bytes: [UInt8], at offset: Int) throws(SystemError) {
        do {
            _ = try descriptor.writeAll(toAbsoluteOffset: Int64(offset), bytes)
        } catch {
            throw SystemError(operation: "pwrite", path: path, errno: error as? Errno ?? .ioError)
        }
    }

    /// Puts the file's data on disk (`fdatasync(2)`) before this returns.
    public func syncData() throws(SystemError) {
        guard fdatasync(descriptor.rawValue) == 0 else { throw SystemError(operation: "fdatasync", path: path, errno: .last) }
    }

    /// Closes the file, which releases the lock.
    public func close() {
        guard open else { return }
        open = false
        try? descriptor.close()
    }

    deinit { close() }
}
