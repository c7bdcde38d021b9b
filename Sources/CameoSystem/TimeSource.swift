internal import Glibc

/// Where the time comes from. Handlers and the pipeline take one, so tests can move time.
public protocol TimeSource: Sendable {
    /// Wall-clock time, epoch seconds.
    var epochSeconds: Int { get }
    /// A clock that never jumps, in milliseconds, for measuring durations.
    var monotonicMilliseconds: Int { get }
    /// The same clock in nanoseconds, for metrics of requests that take less than a millisecond.
    var monotonicNanoseconds: Int { get }
}

extension TimeSource {
    /// A clock that only counts milliseconds (a test's) has no finer reading.
    public var monotonicNanoseconds: Int { monotonicMilliseconds * 1_000_000 }
}

/// The system's clocks (`time(2)`, `clock_gettime(CLOCK_MONOTONIC)`).
public struct SystemClock: TimeSource {
    public init() {}

    public var epochSeconds: Int { Int(time(nil)) }

    public var monotonicMilliseconds: Int {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return spec.tv_sec * 1000 + spec.tv_nsec / 1_000_000
    }
}

extension SystemClock {
    public var monotonicNanoseconds: Int {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return spec.tv_sec * 1_000_000_000 + spec.tv_nsec
    }
}
