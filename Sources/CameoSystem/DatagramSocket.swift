internal import CSockDiag
internal import Glibc
internal import SystemPackage

/// A unix datagram socket: bound, it receives whole messages; unbound, it sends them to a
/// bound one. Sends and receives never block, so a reporter never waits on its reader. Owns its
/// file descriptor and closes it on `deinit`.
public final class DatagramSocket {
    /// For `Poll`.
    public let fd: Int32
    private let boundPath: String?

    private init(fd: Int32, boundPath: String?) {
        self.fd = fd
        self.boundPath = boundPath
    }

    deinit {
        close(fd)
        if let boundPath { unlink(boundPath) }
    }

    /// An unbound socket for `send(_:to:)`.
    public static func sender() throws(SystemError) -> DatagramSocket {
        DatagramSocket(fd: try makeSocket(path: "datagram"), boundPath: nil)
    }

    /// Binds `path` (a stale socket file left by an earlier process is replaced) with `mode`.
    /// The file is removed when the socket is released.
    public static func bind(path: String, mode: UInt32) throws(SystemError) -> DatagramSocket {
        let fd = try makeSocket(path: path)
        unlink(path)
        let status = try withUnixAddress(path, operation: "bind") { Glibc.bind(fd, $0, $1) }
        guard status == 0, chmod(path, mode_t(mode)) == 0 else {
            let error = SystemError(operation: status == 0 ? "chmod" : "bind", path: path, errno: .last)
            close(fd)
            throw error
        }
        return DatagramSocket(fd: fd, boundPath: path)
    }

    /// Sends one message to the socket bound at `path`. False when it could not go: nobody is
    /// bound there, or the reader's queue is full; the message is then dropped.
    @discardableResult
    public func send(_ bytes: [UInt8], to path: String) -> Bool {
        let sent = try? withUnixAddress(path, operation: "sendto") { address, length in
            bytes.withUnsafeBytes { Glibc.sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), address, length) }
        }
        return sent == bytes.count
    }

    /// The next waiting message (at most `maxBytes`; a longer one is cut), or nil if none waits.
    public func receive(maxBytes: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 && Errno.last == .interrupted { continue }
            return count < 0 ? nil : Array(buffer[0..<count])
        }
    }

    private static func makeSocket(path: String) throws(SystemError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(operation: "socket", path: path, errno: .last) }
        return fd
    }
}

/// Calls `body` with a `sockaddr_un` for `path`; a path too long for one is an error.
func withUnixAddress<Result>(
    _ path: String, operation: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
) throws(SystemError) -> Result {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        throw SystemError(operation: operation, path: path, errno: .fileNameTooLong)
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// What the kernel says about sockets this process did not open itself.
public enum SocketInspection {
    /// The path a unix socket on `fd` is bound to (`getsockname`): a pool's listening socket,
    /// handed over on fd 0. Nil for anything else.
    public static func boundPath(fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let path = withUnsafeBytes(of: &address.sun_path) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return path.hasPrefix("/") ? path : nil
    }

    /// Connections waiting to be accepted on the listening unix socket at `path`, and the most
    /// that may wait (its backlog). Nil when no socket listens there, or the kernel would not say.
    public static func acceptQueue(path: String) -> (queued: Int, backlog: Int)? {
        var queued: UInt32 = 0
        var backlog: UInt32 = 0
        guard cameo_unix_accept_queue(path, &queued, &backlog) == 0 else { return nil }
        return (Int(queued), Int(backlog))
    }
}

/// Waiting on several descriptors at once (`poll(2)`).
public enum Poll {
    /// Which of `fds` can be read without blocking, waiting up to `timeoutMilliseconds`
    /// (-1: without end). An interrupted wait returns with none ready.
    public static func readable(_ fds: [Int32], timeoutMilliseconds: Int32) -> [Bool] {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let count = entries.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        guard count > 0 else { return fds.map { _ in false } }
        return entries.map { $0.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 }
    }
}

extension SystemProcess {
    /// Whether a process with this id exists (`kill(pid, 0)`): one that belongs to another
    /// user, or to another user namespace, still exists.
    public static func exists(_ pid: Int) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid_t(pid), 0) == 0 || Errno.last != .noSuchProcess
    }
}
