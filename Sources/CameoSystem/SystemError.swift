public import SystemPackage

/// A failed system call: what was attempted, on which path (or address), and the errno.
/// The description is for logs; clients never see it.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The operation, as the C function is called (`open`, `rename`, `connect`, ...).
    public let operation: String
    /// The path or address it was applied to.
    public let path: String
    /// The C error.
    public let errno: Errno

    public init(operation: String, path: String, errno: Errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(errno)" }

    /// The file or directory does not exist (`ENOENT`).
    public var isNotFound: Bool { errno == .noSuchFileOrDirectory }
    /// The name is taken (`EEXIST`).
    public var isAlreadyExisting: Bool { errno == .fileExists }
    /// A size limit was hit (`EFBIG`).
    public var isTooLarge: Bool { errno == .fileTooLarge }
    /// The peer did not answer in time (`EAGAIN` on a socket with a timeout, or `ETIMEDOUT`).
    public var isTimeout: Bool { errno == .resourceTemporarilyUnavailable || errno == .wouldBlock || errno == .timedOut }
}

internal import Glibc

extension Errno {
    /// The calling thread's `errno` right now (swift-system keeps its own accessor internal).
    static var last: Errno { Errno(rawValue: Glibc.errno) }
}
