/// What a worker or a `cameoctl` command tells the collector (`cameo-metrics`), one datagram per
/// event. Workers are recycled processes and a scrape would reach one of them at random, so no
/// count lives in a worker: each event goes to the one collector of the host, which sums them.
///
/// Every label is drawn from a fixed set (routes, states, reject reasons, verdicts, pool names
/// of a few plain characters), so no request can mint a new time series.
public enum MetricEvent: Equatable, Sendable {
    /// A worker started, accepting on the pool socket at `socket`.
    case workerStarted(socket: String)
    /// A worker answered a request: its route (`Route.metricName`), status and duration.
    case request(route: String, status: Int, seconds: Double)
    /// A scan gave a verdict (`clean`, `infected`) or none (`error`), after `seconds`.
    case scan(verdict: String, seconds: Double)
    /// Decoding, resampling, encoding and publishing one upload took `seconds`.
    case processing(seconds: Double)
    /// `count` uploads reached a final state (`ready`, `rejected`, `expired`); a rejection
    /// carries its reason (`media_files.reject_reason`).
    case finished(state: String, reason: String?, count: Int)
}

/// One event with where it came from: the pool (or `ctl` for a `cameoctl` command) and the
/// process id (for the log of a collector that has to drop something).
public struct MetricDatagram: Equatable, Sendable {
    public var pool: String
    public var pid: Int
    public var event: MetricEvent

    public init(pool: String, pid: Int, event: MetricEvent) {
        self.pool = pool
        self.pid = pid
        self.event = event
    }

    /// Format version, the first word of every datagram: a collector skips what it cannot read.
    static let version = "cameo1"
    /// Longest datagram a sender writes or a reader takes.
    public static let maxBytes = 512

    /// A pool name the collector accepts as a label: what `deploy/systemd` and the dev stack
    /// name their pools (`fast`, `heavy`), and `ctl`.
    public static func isPoolName(_ name: some StringProtocol) -> Bool {
        (1...32).contains(name.count) && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
    }

    /// The label a label set accepts: lower-case letters, digits and `_`.
    static func isWord(_ text: some StringProtocol) -> Bool {
        (1...40).contains(text.count) && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    /// Space-separated words: `cameo1 POOL PID KIND ARGS...`.
    public var encoded: [UInt8] {
        let head = "\(Self.version) \(pool) \(pid) "
        let tail: String
        switch event {
        case .workerStarted(let socket): tail = "start \(socket)"
        case .request(let route, let status, let seconds): tail = "request \(route) \(status) \(Self.micros(seconds))"
        case .scan(let verdict, let seconds): tail = "scan \(verdict) \(Self.micros(seconds))"
        case .processing(let seconds): tail = "processing \(Self.micros(seconds))"
        case .finished(let state, let reason, let count): tail = "finished \(state) \(reason ?? "-") \(count)"
        }
        return Array((head + tail).utf8)
    }

    /// Parses a datagram; nil for anything malformed, of another version, or with a label
    /// outside its set.
    public init?(decoding bytes: some Collection<UInt8>) {
        guard bytes.count <= Self.maxBytes, let text = String(validating: bytes, as: UTF8.self) else { return nil }
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count >= 4, words[0] == Self.version, Self.isPoolName(words[1]), let pid = Int(words[2]), pid > 0 else { return nil }
        let arguments = Array(words.dropFirst(4))
        let event: MetricEvent
        switch (words[3], arguments.count) {
        case ("start", 1):
            // A path without spaces (it is one word), absolute, and short enough for a socket.
            guard arguments[0].hasPrefix("/"), arguments[0].utf8.count < 108 else { return nil }
            event = .workerStarted(socket: String(arguments[0]))
        case ("request", 3):
            guard Self.isWord(arguments[0]), let status = Int(arguments[1]), (100...599).contains(status),
                let seconds = Self.seconds(arguments[2])
            else { return nil }
            event = .request(route: String(arguments[0]), status: status, seconds: seconds)
        case ("scan", 2):
            guard Self.isWord(arguments[0]), let seconds = Self.seconds(arguments[1]) else { return nil }
            event = .scan(verdict: String(arguments[0]), seconds: seconds)
        case ("processing", 1):
            guard let seconds = Self.seconds(arguments[0]) else { return nil }
            event = .processing(seconds: seconds)
        case ("finished", 3):
            guard Self.isWord(arguments[0]), arguments[1] == "-" || Self.isWord(arguments[1]), let count = Int(arguments[2]),
                (1...1_000_000).contains(count)
            else { return nil }
            event = .finished(state: String(arguments[0]), reason: arguments[1] == "-" ? nil : String(arguments[1]), count: count)
        default: return nil
        }
        self.init(pool: String(words[1]), pid: pid, event: event)
    }

    /// Durations travel as whole microseconds: exact in text, and no locale or exponent.
    private static func micros(_ seconds: Double) -> Int { Int((max(0, seconds) * 1_000_000).rounded()) }

    private static func seconds(_ word: Substring) -> Double? {
        guard let micros = Int(word), micros >= 0, micros < 86_400_000_000 else { return nil }
        return Double(micros) / 1_000_000
    }
}
