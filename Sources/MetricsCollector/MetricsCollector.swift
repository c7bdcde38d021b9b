public import CameoMetrics
public import CameoSystem
import Prometheus

/// The host's one collector of Cameo's metrics: it sums the events every worker and `cameoctl`
/// command sends (`MetricEvent`) and renders them in Prometheus' text format with
/// swift-prometheus. It lives as long as the host runs `cameo-metrics`, so counts outlive the
/// recycled workers; if it restarts, its counters restart from zero, which Prometheus' `rate()`
/// and `increase()` take as a counter reset.
///
/// Gauges are read from the kernel when scraped (sock_diag on each pool's socket): busy
/// workers are the accepted connections still open (nginx opens one per request), the queue
/// is what waits to be accepted. Nothing to leak when a worker dies inside a request.
public final class MetricsCollector {
    private let registry = PrometheusCollectorRegistry()
    /// Pool → its listening socket, as its workers announced it.
    private var poolSockets: [String: String] = [:]
    private let listenerUse: (String) -> SocketInspection.ListenerUse?
    private let malformed: Counter
    /// The series already made, by metric and label values: the registry validates names and
    /// labels on every lookup, which at two events per request is most of the collector's CPU.
    private var counters: [SeriesKey: Counter] = [:]
    private var histograms: [SeriesKey: ValueHistogram] = [:]

    /// At most this many series: labels come from fixed vocabularies in the workers, but any
    /// process of the workers' user can send a datagram, and none may grow this one's memory
    /// without bound. Events past it are counted in `cameo_metrics_dropped_events_total`.
    public static let maxSeries = 5000
    private let dropped: Counter

    private struct SeriesKey: Hashable {
        var metric: String
        var labels: [String]
    }

    /// Seconds: from a health check to a scan or an image step that hit its timeout.
    static let durationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// `listenerUse` asks the kernel; tests pass their own.
    public init(listenerUse: @escaping (String) -> SocketInspection.ListenerUse? = SocketInspection.listenerUse(path:)) {
        self.listenerUse = listenerUse
        malformed = registry.makeCounter(
            descriptor: Self.name("metrics_malformed_events", unit: "total", help: "Datagrams the collector could not read and dropped."))
        dropped = registry.makeCounter(
            descriptor: Self.name("metrics_dropped_events", unit: "total", help: "Events dropped because the collector holds its most series."))
    }

    /// Applies one datagram as received; malformed ones are counted and dropped.
    public func receive(_ bytes: some Collection<UInt8>) {
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
            // Each pool's socket is asked of the kernel at every scrape: a few pools, not a flood.
            if poolSockets[pool] != nil || poolSockets.count < 32 { poolSockets[pool] = socket }
            counter("worker_starts", help: "Worker processes started (each recycle is one).", [("pool", pool)])?.increment()
        case .request(let route, let status, let seconds):
            counter("http_requests", help: "Requests a worker answered, by pool, route and status.", [("pool", pool), ("route", route), ("status", String(status))])?.increment()
            histogram("http_request_duration", help: "Time a worker spent on a request, by pool and route.", [("pool", pool), ("route", route)])?.record(seconds)
        case .scan(let verdict, let seconds):
            histogram("scan_duration", help: "Time to a scan's verdict (error: none was had), by verdict.", [("verdict", verdict)])?.record(seconds)
        case .processing(let seconds):
            histogram("processing_duration", help: "Time to decode, resample, encode and publish one upload.", [])?.record(seconds)
        case .finished(let state, let reason, let count):
            counter("uploads", help: "Uploads that reached a final state: ready, rejected or expired.", [("state", state)])?.increment(by: Int64(count))
            if let reason {
                counter("upload_rejections", help: "Rejected uploads, by reject reason (the error code the client saw).", [("reason", reason)])?.increment(by: Int64(count))
            }
        }
    }

    /// The exposition (text format 0.0.4), gauges read now.
    public func exposition() -> [UInt8] {
        for (pool, socket) in poolSockets.sorted(by: { $0.key < $1.key }) {
            guard let use = listenerUse(socket) else { continue }
            gauge("pool_busy_workers", help: "Workers of the pool inside a request now (accepted connections open).", pool)
                .set(to: Double(use.connected))
            gauge("pool_queue_depth", help: "Connections waiting for a worker of the pool (its socket's accept queue).", pool)
                .set(to: Double(use.queued))
            gauge("pool_queue_limit", help: "How many may wait there (the socket's backlog).", pool).set(to: Double(use.backlog))
        }
        return registry.emitToBuffer()
    }

    /// Prometheus' content type for this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "cameo", metricName: metric, unitName: unit, helpText: help)
    }

    private func counter(_ metric: String, help: String, _ labels: [(String, String)]) -> Counter? {
        let key = SeriesKey(metric: metric, labels: labels.map(\.1))
        if let known = counters[key] { return known }
        guard hasRoom() else { return nil }
        let made = registry.makeCounter(descriptor: Self.name(metric, unit: "total", help: help), labels: labels)
        counters[key] = made
        return made
    }

    private func histogram(_ metric: String, help: String, _ labels: [(String, String)]) -> ValueHistogram? {
        let key = SeriesKey(metric: metric, labels: labels.map(\.1))
        if let known = histograms[key] { return known }
        guard hasRoom() else { return nil }
        let made = registry.makeValueHistogram(
            descriptor: Self.name(metric, unit: "seconds", help: help), labels: labels, buckets: Self.durationBuckets)
        histograms[key] = made
        return made
    }

    private func hasRoom() -> Bool {
        guard counters.count + histograms.count < Self.maxSeries else {
            dropped.increment()
            return false
        }
        return true
    }

    private func gauge(_ metric: String, help: String, _ pool: String) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "cameo", metricName: metric, unitName: "", helpText: help), labels: [("pool", pool)])
    }
}
