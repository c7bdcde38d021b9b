public import CameoSystem

/// What clamd said about a stream.
public enum ScanVerdict: Sendable, Equatable {
    case clean
    /// Detected, with the signature name clamd reported.
    case infected(signature: String)
}

/// Why there is no verdict. Every case means "try again later": the upload stays unpublished.
public enum ScannerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The socket could not be opened or connected (clamd down).
    case unreachable(SystemError)
    /// clamd did not answer within the timeout.
    case timeout
    /// The reply was not one of the forms clamd sends (`stream: OK`, `stream: NAME FOUND`).
    case malformedReply(String)
    /// clamd reported an error, such as `INSTREAM size limit exceeded`.
    case scannerError(String)

    public var description: String {
        switch self {
        case .unreachable(let error): "scanner unreachable: \(error)"
        case .timeout: "scanner timed out"
        case .malformedReply(let reply): "scanner sent an unexpected reply: \(reply.prefix(80))"
        case .scannerError(let message): "scanner error: \(message.prefix(80))"
        }
    }

    /// A socket failure, told apart from a timeout.
    init(_ error: SystemError) { self = error.isTimeout ? .timeout : .unreachable(error) }
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
        do {
            let socket = try StreamSocket.connect(unixPath: socketPath, timeoutSeconds: timeoutSeconds)
            try socket.send(Array("zINSTREAM\0".utf8))
            var offset = 0
            while offset < bytes.count {
                let count = min(Self.chunkSize, bytes.count - offset)
                try socket.send(Self.lengthPrefix(count) + bytes[offset..<(offset + count)])
                offset += count
            }
            try socket.send(Self.lengthPrefix(0))
            return try Self.parse(reply: Self.receiveLine(on: socket))
        } catch let error as SystemError {
            throw ScannerError(error)
        } catch let error as ScannerError {
            throw error
        } catch {
            throw .scannerError("\(error)")
        }
    }

    /// True when clamd answers `PING` with `PONG`.
    public func ping() -> Bool {
        guard let socket = try? StreamSocket.connect(unixPath: socketPath, timeoutSeconds: timeoutSeconds),
            (try? socket.send(Array("zPING\0".utf8))) != nil
        else { return false }
        return (try? Self.receiveLine(on: socket)) == "PONG"
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

    /// Reads up to the terminating NUL (or end of stream), at most 4 KB.
    private static func receiveLine(on socket: StreamSocket) throws -> String {
        var reply: [UInt8] = []
        while reply.count < 4096 {
            let chunk = try socket.receive(maxBytes: 1024)
            if chunk.isEmpty { break }
            reply += chunk
            if let end = reply.firstIndex(of: 0) { return String(decoding: reply[..<end], as: UTF8.self) }
        }
        guard !reply.isEmpty else { throw ScannerError.malformedReply("") }
        var text = Substring(String(decoding: reply, as: UTF8.self))
        while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}
