#if canImport(Glibc)
import Glibc
#endif

/// Hands an upload to an external scanning service: one HTTP/1.1 POST of a JSON body.
///
/// Plain `http://` only, as a deliberately small client: the service is expected on the same
/// host or network (put a TLS-terminating proxy in front for anything further away). Any
/// answer but 2xx, or no answer within the timeout, is an error the caller retries.
public struct ScanAnnouncer: Sendable {
    public let url: String
    public let timeoutSeconds: Int

    public init(url: String, timeoutSeconds: Int) {
        self.url = url
        self.timeoutSeconds = timeoutSeconds
    }

    /// Host, port and path of an `http://host[:port]/path` URL.
    static func parse(_ url: String) -> (host: String, port: UInt16, path: String)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if let colon = authority.lastIndex(of: ":") {
            guard let port = UInt16(authority[authority.index(after: colon)...]) else { return nil }
            return (String(authority[..<colon]), port, path)
        }
        return (String(authority), 80, path)
    }

    /// POSTs `body` as `application/json`; returns the status code, throwing when there is none.
    public func post(json body: String) throws(ScannerError) -> Int {
        guard let target = Self.parse(url) else { throw .malformedReply("scanner.external_url is not an http:// URL") }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(target.host, String(target.port), &hints, &results) == 0, let first = results else {
            throw .unreachable(errno: EHOSTUNREACH)
        }
        defer { freeaddrinfo(results) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), first.pointee.ai_protocol)
        guard fd >= 0 else { throw .unreachable(errno: errno) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { throw .unreachable(errno: errno) }

        let payload = Array(body.utf8)
        let request = Array(
            ("POST \(target.path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(payload.count)\r\nConnection: close\r\nUser-Agent: cameo\r\n\r\n").utf8) + payload
        var offset = 0
        while offset < request.count {
            let sent = request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, request.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timeout : .unreachable(errno: errno)
            }
            offset += sent
        }
        // Only the status line matters.
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !reply.contains(0x0A) && reply.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timeout : .unreachable(errno: errno)
            }
            if count == 0 { break }
            reply += buffer[0..<count]
        }
        return try Self.status(ofReply: reply)
    }

    /// The code of an `HTTP/1.x NNN reason` status line.
    static func status(ofReply reply: [UInt8]) throws(ScannerError) -> Int {
        let line = String(decoding: reply.prefix(while: { $0 != 0x0D && $0 != 0x0A }), as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]), (100...599).contains(code) else {
            throw .malformedReply(line)
        }
        return code
    }
}
