public import CameoMetrics
public import CameoSystem
import Prometheus

/// The host's one collector of Cameo's metrics: it sums the events every worker and `cameoctl`
/// command sends (`MetricEvent`) and renders them in Prometheus' text format with
/// swift-prometheus. It lives as long as the host runs `cameo-metrics`, so counts outlive the
/// recycled workers; if it restarts, its counters restart from zero, which Prometheus' `rate()`
/// and `increase()` take as a counter reset.
///
/// Gauges are read when scraped: busy workers from the `busy` events of processes still alive,
/// queue depths from the kernel's accept queue of each pool's socket.
public final class MetricsCollector {
    private let registry = PrometheusCollectorRegistry()
    /// Pool → the pids that sent `busy` and no `request` since.
    private var busy: [String: Set<Int>] = [:]
    /// Pool → its listening socket, as its workers announced it.
    private var poolSockets: [String: String] = [:]
    private let queueDepth: (String) -> (queued: Int, backlog: Int)?
    private let isAlive: (Int) -> Bool
    private let malformed: Counter

    /// Seconds: from a health check to a scan or an image step that hit its timeout.
    static let durationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// `queueDepth` and `isAlive` ask the kernel; tests pass their own.
    public init(
        queueDepth: @escaping (String) -> (queued: Int, backlog: Int)? = SocketInspection.acceptQueue(path:),
        isAlive: @escaping (Int) -> Bool = SystemProcess.exists
    ) {
        self.queueDepth = queueDepth
        self.isAlive = isAlive
        malformed = registry.makeCounter(
            descriptor: Self.name("metrics_malformed_events", unit: "total", help: "Datagrams the collector could not read and dropped."))
    }

    /// Applies one datagram as received; malformed ones are counted and dropped.
    public func receive(_ bytes: [UInt8]) {
        guard let datagram = MetricDatagram(decoding: bytes) else {
            malformed.increment()
            return
        }
        apply(datagram)
    }

    public func apply(_ datagram: MetricDatagram) {
        let pool = datagram.pool
        switch datagram.event {
        case .workerStarted(let socket):
            poolSockets[pool] = socket
            busy[pool, default: []].remove(datagram.pid)  // a reused pid is a new, idle worker
            counter("worker_starts", help: "Worker processes started (each recycle is one).", [("pool", pool)]).increment()
        case .busy:
            busy[pool, default: []].insert(datagram.pid)
        case .request(let route, let status, let seconds):
            busy[pool, default: []].remove(datagram.pid)
            counter("http_requests", help: "Requests a worker answered, by pool, route and status.", [("pool", pool), ("route", route), ("status", String(status))])
                .increment()
            histogram("http_request_duration", help: "Time a worker spent on a request, by pool and route.", [("pool", pool), ("route", route)])
                .record(seconds)
        case .scan(let verdict, let seconds):
            histogram("scan_duration", help: "Time to a scan's verdict (error: none was had), by verdict.", [("verdict", verdict)]).record(seconds)
        case .processing(let seconds):
            histogram("processing_duration", help: "Time to decode, resample, encode and publish one upload.", []).record(seconds)
        case .finished(let state, let reason, let count):
            counter("uploads", help: "Uploads that reached a final state: ready, rejected or expired.", [("state", state)])
                .increment(by: Int64(count))
            if let reason {
                counter("upload_rejections", help: "Rejected uploads, by reject reason (the error code the client saw).", [("reason", reason)])
                    .increment(by: Int64(count))
            }
        }
    }

    /// The exposition (text format 0.0.4), gauges read now.
    public func exposition() -> [UInt8] {
        for pool in Set(busy.keys).union(poolSockets.keys).sorted() {
            let alive = busy[pool, default: []].filter(isAlive)
            busy[pool] = alive
            gauge("pool_busy_workers", help: "Workers of the pool inside a request now.", pool).set(to: Double(alive.count))
            if let socket = poolSockets[pool], let queue = queueDepth(socket) {
                gauge("pool_queue_depth", help: "Connections waiting for a worker of the pool (its socket's accept queue).", pool)
                    .set(to: Double(queue.queued))
                gauge("pool_queue_limit", help: "How many may wait there (the socket's backlog).", pool).set(to: Double(queue.backlog))
            }
        }
        return registry.emitToBuffer()
    }

    /// Prometheus' content type for this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "cameo", metricName: metric, unitName: unit, helpText: help)
    }

    private func counter(_ metric: String, help: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: Self.name(metric, unit: "total", help: help), labels: labels)
    }

    private func histogram(_ metric: String, help: String, _ labels: [(String, String)]) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: Self.name(metric, unit: "seconds", help: help), labels: labels, buckets: Self.durationBuckets)
    }

    private func gauge(_ metric: String, help: String, _ pool: String) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "cameo", metricName: metric, unitName: "", helpText: help), labels: [("pool", pool)])
    }
}
