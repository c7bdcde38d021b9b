internal import CFastCGI
internal import CSignals
internal import CameoSystem

/// One accepted FastCGI request. Its parameters are copied into Swift strings on accept,
/// because libfcgi frees the `envp` array on the next `FCGX_Finish_r`.
public struct FastCGIRequest: ~Copyable {
    /// The CGI/FastCGI parameters nginx sent (`REQUEST_METHOD`, `HTTP_HOST`, ...).
    public let parameters: [String: String]
    fileprivate let raw: UnsafeMutablePointer<FCGX_Request>

    fileprivate init(raw: UnsafeMutablePointer<FCGX_Request>) {
        self.raw = raw
        parameters = raw.pointee.envp.map(SystemProcess.keyValues) ?? [:]
    }

    /// Reads the request body from FastCGI stdin, at most `limit` bytes (`FCGX_GetStr`).
    /// nginx already enforces the byte limit; this cap keeps a misconfigured proxy from making
    /// the worker buffer without bound.
    public func readBody(limit: Int) throws(FastCGIError) -> [UInt8] {
        var body: [UInt8] = []
        do throws(BodyReadError<Never>) {
            try readBody(limit: limit) { (chunk) throws(Never) in body.append(contentsOf: chunk) }
        } catch {
            switch error {
            case .stream(let failure): throw failure
            case .sink(let impossible): switch impossible {}
            }
        }
        return body
    }

    /// Reads the request body in chunks of at most 64 KiB and hands each to `sink`, so a
    /// large body passes through without being held whole. Over `limit` bytes it stops with
    /// `bodyTooLarge` (what `sink` got so far is the caller's to discard).
    public func readBody<Failure: Error>(limit: Int, into sink: (ArraySlice<UInt8>) throws(Failure) -> Void) throws(BodyReadError<Failure>) {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var total = 0
        while true {
            let count = chunk.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { FCGX_GetStr($0.baseAddress, Int32($0.count), raw.pointee.in) }
            }
            if count < 0 { throw .stream(.stream(code: FCGX_GetError(raw.pointee.in))) }
            if count == 0 {
                // 0 is both "end of body" and "the stream broke": only the error tells them apart.
                let error = FCGX_GetError(raw.pointee.in)
                if error != 0 { throw .stream(.stream(code: error)) }
                return
            }
            total += Int(count)
            guard total <= limit else { throw .stream(.bodyTooLarge(limit: limit)) }
            do throws(Failure) { try sink(chunk[0..<Int(count)]) } catch { throw .sink(error) }
        }
    }

    /// Writes the response: CGI `Status:` line, headers, blank line, body (`FCGX_PutStr`).
    public func respond(status: Int, reason: String, headers: [(String, String)], body: [UInt8]) throws(FastCGIError) {
        var head = "Status: \(status) \(reason)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        try write(Array(head.utf8))
        if !body.isEmpty { try write(body) }
    }

    private func write(_ bytes: [UInt8]) throws(FastCGIError) {
        let written = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { FCGX_PutStr($0.baseAddress, Int32($0.count), raw.pointee.out) }
        }
        if written != bytes.count { throw .stream(code: FCGX_GetError(raw.pointee.out)) }
    }
}

/// The accept loop of one worker process.
///
/// The listening socket is file descriptor 0, as spawn-fcgi and multiwatch hand it over (the
/// FastCGI convention), so the same binary runs under those tools and under systemd socket
/// activation with `StandardInput=socket`.
public final class FastCGIServer {
    private let request: UnsafeMutablePointer<FCGX_Request>

    /// Initialises libfcgi (`FCGX_Init`) and a request bound to the listening socket on fd 0.
    public init() throws(FastCGIError) {
        let status = FCGX_Init()
        guard status == 0 else { throw .initialization(code: status) }
        request = .allocate(capacity: 1)
        let initStatus = FCGX_InitRequest(request, 0, 0)
        guard initStatus == 0 else {
            request.deallocate()
            throw .initialization(code: initStatus)
        }
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// Waits for the next request (`FCGX_Accept_r`) and passes it to `handle`. Returns false
    /// when the socket is closed or accept failed.
    ///
    /// From accept until the reply is flushed the worker counts as busy: a stop signal then
    /// only sets `stopRequested`, so the request in flight completes.
    public func acceptNext(_ handle: (borrowing FastCGIRequest) -> Void) -> Bool {
        guard FCGX_Accept_r(request) >= 0 else { return false }
        cameo_set_busy(1)
        let accepted = FastCGIRequest(raw: request)
        handle(accepted)
        // Flush and close this request's streams now rather than at the next accept, so nginx
        // sees the end of the reply before this worker waits again (or exits).
        FCGX_Finish_r(request)
        cameo_set_busy(0)
        return true
    }

    /// Installs the graceful-stop handlers (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2): an idle
    /// worker exits at once, a busy one after its reply. (A signal in the instant between
    /// accept returning and the worker marking itself busy still ends it.)
    public static func installGracefulStop() { cameo_install_graceful_stop() }

    /// True once a stop signal arrived; the accept loop should end.
    public static var stopRequested: Bool { cameo_stop_requested() != 0 }
}
