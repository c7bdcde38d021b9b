internal import CSockDiag
internal import Glibc
internal import SystemPackage

/// A unix datagram socket: bound, it receives whole messages; unbound, it sends them to a
/// bound one. Receiving never blocks. A send waits only while the reader's queue is full, and
/// at most the sender's timeout: the kernel queues only a few datagrams per reader
/// (`net.unix.max_dgram_qlen`, 10 by default), so a burst would otherwise drop some. Owns its
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

    /// An unbound socket for `send(_:to:)`, which waits at most `timeoutMilliseconds` for room.
    public static func sender(timeoutMilliseconds: Int = 50) throws(SystemError) -> DatagramSocket {
        let fd = try makeSocket(path: "datagram")
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return DatagramSocket(fd: fd, boundPath: nil)
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
    /// bound there (at once), or the reader's queue stayed full for the timeout; the message is
    /// then dropped.
    @discardableResult
    public func send(_ bytes: [UInt8], to path: String) -> Bool {
        let sent = try? withUnixAddress(path, operation: "sendto") { address, length in
            bytes.withUnsafeBytes { Glibc.sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, length) }
        }
        return sent == bytes.count
    }

    /// The next waiting message into `buffer` (a longer one is cut to its size); its length, or
    /// nil if none waits. The buffer is the caller's, reused from one message to the next.
    public func receive(into buffer: inout [UInt8]) -> Int? {
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 && Errno.last == .interrupted { continue }
            return count < 0 ? nil : count
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

    /// How the listening unix socket at `path` is used: connections waiting to be accepted, the
    /// most that may wait (its backlog), and accepted connections still open (each a worker of
    /// a pool inside a request). Nil when no socket listens there, or the kernel would not say.
    public static func listenerUse(path: String) -> ListenerUse? {
        var use = cameo_socket_use()
        guard cameo_unix_socket_use(path, &use) == 0 else { return nil }
        return ListenerUse(queued: Int(use.queued), backlog: Int(use.backlog), connected: Int(use.connected))
    }

    public struct ListenerUse: Equatable, Sendable {
        public var queued: Int
        public var backlog: Int
        public var connected: Int

        public init(queued: Int, backlog: Int, connected: Int) {
            self.queued = queued
            self.backlog = backlog
            self.connected = connected
        }
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
