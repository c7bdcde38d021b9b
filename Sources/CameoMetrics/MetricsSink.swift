public import CameoSystem

/// Where a process reports its events. Reporting never fails and never waits: a collector that
/// is down, slow or absent costs a dropped datagram, never a request.
public protocol MetricsSink: Sendable {
    func record(_ event: MetricEvent)
}

/// Reports nothing: metrics are off (`metrics.events_socket` is empty), or in unit tests.
public struct NoMetrics: MetricsSink {
    public init() {}
    public func record(_ event: MetricEvent) {}
}

/// Sends each event as one datagram to the collector's socket.
public final class DatagramMetricsSink: MetricsSink, @unchecked Sendable {
    // @unchecked: the socket is only written with sendto(2), which the kernel serialises;
    // nothing else of it changes after init.
    private let socket: DatagramSocket
    private let path: String
    private let pool: String
    private let pid: Int

    /// `pool` labels every event (see `MetricDatagram.isPoolName`; anything else becomes
    /// `other`).
    public init(path: String, pool: String) throws(SystemError) {
        socket = try DatagramSocket.sender()
        self.path = path
        self.pool = MetricDatagram.isPoolName(pool) ? pool : "other"
        pid = SystemProcess.id
    }

    public func record(_ event: MetricEvent) {
        socket.send(MetricDatagram(pool: pool, pid: pid, event: event).encoded, to: path)
    }

    /// The pool of a worker: the name of the socket it accepts on, without `.sock`
    /// (`/run/cameo/heavy.sock` → `heavy`).
    public static func poolName(ofSocket path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? ""
        return file.hasSuffix(".sock") ? String(file.dropLast(5)) : file
    }
}
