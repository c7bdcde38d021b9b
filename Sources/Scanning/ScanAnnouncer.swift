import CameoSystem

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
    static func parse(_ url: String) -> (host: String, port: Int, path: String)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if let colon = authority.lastIndex(of: ":") {
            guard let port = UInt16(authority[authority.index(after: colon)...]) else { return nil }
            return (String(authority[..<colon]), Int(port), path)
        }
        return (String(authority), 80, path)
    }

    /// POSTs `body` as `application/json`; returns the status code, throwing when there is none.
    public func post(json body: String) throws(ScannerError) -> Int {
        guard let target = Self.parse(url) else { throw .malformedReply("scanner.external_url is not an http:// URL") }
        let payload = Array(body.utf8)
        let head = "POST \(target.path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(payload.count)\r\nConnection: close\r\nUser-Agent: cameo\r\n\r\n"
        var reply: [UInt8] = []
        do {
            let socket = try StreamSocket.connect(host: target.host, port: target.port, timeoutSeconds: timeoutSeconds)
            try socket.send(Array(head.utf8) + payload)
            // Only the status line matters.
            while !reply.contains(0x0A) && reply.count < 4096 {
                let chunk = try socket.receive(maxBytes: 512)
                if chunk.isEmpty { break }
                reply += chunk
            }
        } catch {
            throw ScannerError(error)
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
