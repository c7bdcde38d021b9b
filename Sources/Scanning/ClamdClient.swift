#if canImport(Glibc)
import Glibc
#endif

/// What clamd said about a stream.
public enum ScanVerdict: Sendable, Equatable {
    case clean
    /// Detected, with the signature name clamd reported.
    case infected(signature: String)
}

/// Why there is no verdict. Every case means "try again later": the upload stays unpublished.
public enum ScannerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The socket could not be opened or connected (clamd down).
    case unreachable(errno: Int32)
    /// clamd did not answer within the timeout.
    case timeout
    /// The reply was not one of the forms clamd sends (`stream: OK`, `stream: NAME FOUND`).
    case malformedReply(String)
    /// clamd reported an error, such as `INSTREAM size limit exceeded`.
    case scannerError(String)

    public var description: String {
        switch self {
        case .unreachable(let code): "clamd unreachable: \(String(cString: strerror(code)))"
        case .timeout: "clamd timed out"
        case .malformedReply(let reply): "clamd sent an unexpected reply: \(reply.prefix(80))"
        case .scannerError(let message): "clamd error: \(message.prefix(80))"
        }
    }
}

/// A client for clamd's INSTREAM command over its unix socket.
///
/// Protocol (clamd(8)): `zINSTREAM\0`, then chunks each prefixed by a 4-byte big-endian
/// length, then a zero-length chunk; the reply is one NUL-terminated line. The stream is
/// bounded by clamd's StreamMaxLength; a longer stream gets `INSTREAM size limit exceeded`,
/// which counts as an error, never as clean.
public struct ClamdClient: Sendable {
    public let socketPath: String
    public let timeoutSeconds: Int
    static let chunkSize = 64 * 1024

    public init(socketPath: String, timeoutSeconds: Int) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    /// Scans `bytes` and returns clamd's verdict.
    public func scan(_ bytes: [UInt8]) throws(ScannerError) -> ScanVerdict {
        let socket = try connect()
        defer { close(socket) }
        try send(Array("zINSTREAM\0".utf8), on: socket)
        var offset = 0
        while offset < bytes.count {
            let count = min(Self.chunkSize, bytes.count - offset)
            try send(Self.lengthPrefix(count) + bytes[offset..<(offset + count)], on: socket)
            offset += count
        }
        try send(Self.lengthPrefix(0), on: socket)
        return try Self.parse(reply: receiveLine(on: socket))
    }

    /// True when clamd answers `PING` with `PONG`.
    public func ping() -> Bool {
        guard let socket = try? connect() else { return false }
        defer { close(socket) }
        guard (try? send(Array("zPING\0".utf8), on: socket)) != nil else { return false }
        return (try? receiveLine(on: socket)) == "PONG"
    }

    /// Parses one reply line of INSTREAM.
    static func parse(reply: String) throws(ScannerError) -> ScanVerdict {
        if reply == "stream: OK" { return .clean }
        if reply.hasPrefix("stream: "), reply.hasSuffix(" FOUND") {
            let name = reply.dropFirst("stream: ".count).dropLast(" FOUND".count)
            guard !name.isEmpty, !name.contains("\n") else { throw .malformedReply(reply) }
            return .infected(signature: String(name))
        }
        if reply.hasSuffix(" ERROR") { throw .scannerError(String(reply.dropLast(" ERROR".count))) }
        throw .malformedReply(reply)
    }

    static func lengthPrefix(_ count: Int) -> [UInt8] {
        let value = UInt32(count)
        return [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    // MARK: - Socket plumbing

    private func connect() throws(ScannerError) -> Int32 {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable(errno: errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else {
            close(fd)
            throw .unreachable(errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
            raw[path.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw .unreachable(errno: code)
        }
        return fd
    }

    private func send(_ bytes: [UInt8], on fd: Int32) throws(ScannerError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN || errno == EWOULDBLOCK ? .timeout : .unreachable(errno: errno)
            }
            offset += sent
        }
    }

    /// Reads up to the terminating NUL (or end of stream), at most 4 KB.
    private func receiveLine(on fd: Int32) throws(ScannerError) -> String {
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while reply.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN || errno == EWOULDBLOCK ? .timeout : .unreachable(errno: errno)
            }
            if count == 0 { break }
            reply += buffer[0..<count]
            if let end = reply.firstIndex(of: 0) { return String(decoding: reply[..<end], as: UTF8.self) }
        }
        guard !reply.isEmpty else { throw .malformedReply("") }
        return String(decoding: reply, as: UTF8.self).trimmingCharacters()
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" || last == "\0" { text = text.dropLast() }
        return String(text)
    }
}
