/// Errors from libfcgi streams.
public enum FastCGIError: Error, Sendable {
    /// `FCGX_Init` or `FCGX_InitRequest` failed.
    case initialization(code: Int32)
    /// A read or write on the request's streams failed: libfcgi's error code, an errno (> 0)
    /// or an `FCGX_*` protocol error (< 0).
    case stream(code: Int32)
    /// The request body is longer than the reader was allowed to take.
    case bodyTooLarge(limit: Int)
}

/// Why reading a body into a sink stopped: the stream, or the sink itself (say, a full disk).
public enum BodyReadError<SinkFailure: Error>: Error {
    case stream(FastCGIError)
    case sink(SinkFailure)
}
