internal import Glibc
internal import SystemPackage

/// A connected stream socket (unix or TCP) with send and receive timeouts. Owns its file
/// descriptor and closes it on `deinit`; not shared between threads.
public final class StreamSocket {
    private let fd: Int32
    /// The peer, for error messages.
    public let peer: String

    private init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close(fd) }

    /// Connects to a unix socket at `path` (`socket(AF_UNIX)`, `connect`).
    public static func connect(unixPath path: String, timeoutSeconds: Int) throws(SystemError) -> StreamSocket {
        let fd = try makeSocket(family: AF_UNIX, type: Int32(SOCK_STREAM.rawValue), protocol: 0, peer: path, timeoutSeconds: timeoutSeconds)
        let status: Int32
        do {
            status = try withUnixAddress(path, operation: "connect") { Glibc.connect(fd, $0, $1) }
        } catch {
            close(fd)
            throw error
        }
        guard status == 0 else {
            let error = SystemError(operation: "connect", path: path, errno: .last)
            close(fd)
            throw error
        }
        return StreamSocket(fd: fd, peer: path)
    }

    /// Connects over TCP to `host:port`, the first address `getaddrinfo` gives.
    public static func connect(host: String, port: Int, timeoutSeconds: Int) throws(SystemError) -> StreamSocket {
        let peer = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, String(port), &hints, &results) == 0, let first = results else {
            throw SystemError(operation: "getaddrinfo", path: peer, errno: .noRouteToHost)
        }
        defer { freeaddrinfo(results) }
        let fd = try makeSocket(
            family: first.pointee.ai_family, type: first.pointee.ai_socktype, protocol: first.pointee.ai_protocol, peer: peer,
            timeoutSeconds: timeoutSeconds)
        guard Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let error = SystemError(operation: "connect", path: peer, errno: .last)
            close(fd)
            throw error
        }
        return StreamSocket(fd: fd, peer: peer)
    }

    /// Sends every byte (`send(2)` with `MSG_NOSIGNAL`: a closed peer is an error, not SIGPIPE).
    public func send<Bytes: Collection>(_ bytes: Bytes) throws(SystemError) where Bytes.Element == UInt8 {
        let buffer = Array(bytes)
        var offset = 0
        while offset < buffer.count {
            let sent = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if Errno.last == .interrupted { continue }
                throw SystemError(operation: "send", path: peer, errno: .last)
            }
            offset += sent
        }
    }

    /// Receives up to `maxBytes` (`recv(2)`); empty at the end of the stream.
    public func receive(maxBytes: Int) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if Errno.last == .interrupted { continue }
                throw SystemError(operation: "recv", path: peer, errno: .last)
            }
            return Array(buffer[0..<count])
        }
    }

    private static func makeSocket(family: Int32, type: Int32, protocol: Int32, peer: String, timeoutSeconds: Int) throws(SystemError) -> Int32 {
        let fd = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), `protocol`)
        guard fd >= 0 else { throw SystemError(operation: "socket", path: peer, errno: .last) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }
}
