import CameoMetrics
import CameoSystem
import Glibc
import MetricsCollector
import Testing

@Suite struct MetricDatagramTests {
    @Test func everyEventSurvivesTheWire() {
        let events: [MetricEvent] = [
            .workerStarted(socket: "/run/cameo/heavy.sock"), .request(route: "upload", status: 201, seconds: 0.123456),
            .scan(verdict: "infected", seconds: 1.5), .processing(seconds: 0.25), .finished(state: "rejected", reason: "pixel_bomb", count: 3),
            .finished(state: "ready", reason: nil, count: 1),
        ]
        for event in events {
            let datagram = MetricDatagram(pool: "heavy", pid: 4242, event: event)
            #expect(MetricDatagram(decoding: datagram.encoded) == datagram)
        }
    }

    @Test func malformedOrForeignDatagramsAreRefused() {
        let refused = [
            "", "cameo1", "cameo2 fast 1 busy", "cameo1 Fast 1 busy", "cameo1 fast 0 busy", "cameo1 fast -3 busy", "cameo1 fast 1 nap",
            "cameo1 fast 1 busy", "cameo1 fast 1 request upload 999 10", "cameo1 fast 1 request Up-load 201 10",
            "cameo1 fast 1 request upload 201 -5", "cameo1 fast 1 request upload 201 1e6", "cameo1 fast 1 finished ready - 0",
            "cameo1 fast 1 start relative.sock", "cameo1 fast 1 scan clean", "cameo1 \(String(repeating: "a", count: 33)) 1 busy",
            "cameo1 fast 1 finished rejected bad\"type 1",
        ]
        for text in refused { #expect(MetricDatagram(decoding: Array(text.utf8)) == nil, "\(text)") }
        #expect(MetricDatagram(decoding: [0xFF, 0xFE]) == nil)
        #expect(MetricDatagram(decoding: [UInt8](repeating: 0x61, count: MetricDatagram.maxBytes + 1)) == nil)
    }

    @Test func aPoolIsNamedAfterItsSocket() {
        #expect(DatagramMetricsSink.poolName(ofSocket: "/run/cameo/heavy.sock") == "heavy")
        #expect(DatagramMetricsSink.poolName(ofSocket: "/tmp/x/fast.sock") == "fast")
    }
}

@Suite struct MetricsCollectorTests {
    func text(_ collector: MetricsCollector) -> String { String(decoding: collector.exposition(), as: UTF8.self) }

    func send(_ collector: MetricsCollector, _ pool: String, _ pid: Int, _ event: MetricEvent) {
        collector.receive(MetricDatagram(pool: pool, pid: pid, event: event).encoded)
    }

    @Test func countsSumOverWorkersAndProcesses() {
        let collector = MetricsCollector(listenerUse: { _ in nil })
        for pid in [100, 101, 102] {  // three recycled workers of one pool, each counting from zero
            send(collector, "heavy", pid, .request(route: "upload", status: 201, seconds: 0.2))
            send(collector, "heavy", pid, .finished(state: "ready", reason: nil, count: 1))
        }
        send(collector, "heavy", 103, .finished(state: "rejected", reason: "bad_type", count: 1))
        send(collector, "ctl", 900, .finished(state: "expired", reason: nil, count: 4))
        collector.receive(Array("cameo1 heavy 1 nonsense".utf8))
        let out = text(collector)
        #expect(out.contains(#"cameo_http_requests_total{pool="heavy",route="upload",status="201"} 3"#))
        #expect(out.contains(#"cameo_uploads_total{state="ready"} 3"#))
        #expect(out.contains(#"cameo_uploads_total{state="rejected"} 1"#))
        #expect(out.contains(#"cameo_upload_rejections_total{reason="bad_type"} 1"#))
        #expect(out.contains(#"cameo_uploads_total{state="expired"} 4"#))
        #expect(out.contains("cameo_metrics_malformed_events_total 1"))
        // 0.2 s falls in the 0.25 bucket, not in the 0.1 one.
        #expect(out.contains(#"cameo_http_request_duration_seconds_bucket{pool="heavy",route="upload",le="0.1"} 0"#))
        #expect(out.contains(#"cameo_http_request_duration_seconds_bucket{pool="heavy",route="upload",le="0.25"} 3"#))
        #expect(out.contains(#"cameo_http_request_duration_seconds_count{pool="heavy",route="upload"} 3"#))
    }

    @Test func aFloodOfNewLabelsStopsAtTheSeriesCapAndKnownSeriesGoOnCounting() {
        let collector = MetricsCollector(listenerUse: { _ in nil })
        send(collector, "fast", 1, .request(route: "presign", status: 201, seconds: 0.01))
        for n in 0..<(MetricsCollector.maxSeries + 50) {
            send(collector, "fast", 1, .finished(state: "ready", reason: "r\(n)", count: 1))
        }
        send(collector, "fast", 1, .request(route: "presign", status: 201, seconds: 0.01))
        let out = text(collector)
        #expect(out.contains(#"cameo_http_requests_total{pool="fast",route="presign",status="201"} 2"#))
        let dropped = out.split(separator: "\n").first { $0.hasPrefix("cameo_metrics_dropped_events_total ") }
        #expect(dropped.flatMap { Double($0.split(separator: " ")[1]) }.map { $0 >= 50 } == true)
    }

    @Test func busyWorkersAndTheQueueAreReadFromThePoolsSocketWhenScraped() {
        var asked: [String] = []
        let collector = MetricsCollector(listenerUse: { asked.append($0); return .init(queued: 7, backlog: 1024, connected: 2) })
        send(collector, "heavy", 5, .workerStarted(socket: "/run/cameo/heavy.sock"))
        let out = text(collector)
        #expect(asked == ["/run/cameo/heavy.sock"])
        #expect(out.contains(#"cameo_pool_queue_depth{pool="heavy"} 7"#))
        #expect(out.contains(#"cameo_pool_queue_limit{pool="heavy"} 1024"#))
        #expect(out.contains(#"cameo_pool_busy_workers{pool="heavy"} 2"#))
        #expect(out.contains(#"cameo_worker_starts_total{pool="heavy"} 1"#))
    }
}

@Suite struct SocketTests {
    func temporaryPath(_ name: String) -> String { "/tmp/cameo-metrics-test-\(getpid())-\(name)" }

    @Test func datagramsReachTheBoundSocketAndAFullQueueCostsTheSenderAtMostItsTimeout() throws {
        let path = temporaryPath("events.sock")
        let sender = try DatagramSocket.sender(timeoutMilliseconds: 50)
        let clock = SystemClock()
        var started = clock.monotonicMilliseconds
        #expect(!sender.send([1, 2, 3], to: path))  // nobody bound: dropped at once
        #expect(clock.monotonicMilliseconds - started < 40)
        let receiver = try DatagramSocket.bind(path: path, mode: 0o600)
        #expect(sender.send(Array("hello".utf8), to: path))
        #expect(Poll.readable([receiver.fd], timeoutMilliseconds: 1000) == [true])
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(receiver.receive(into: &buffer).map { Array(buffer[0..<$0]) } == Array("hello".utf8))
        #expect(receiver.receive(into: &buffer) == nil)
        // Nobody reads: the queue fills (net.unix.max_dgram_qlen), then a send waits its
        // timeout and gives up instead of blocking the worker.
        var sent = 0
        while sent < 100_000 {
            started = clock.monotonicMilliseconds
            guard sender.send([UInt8](repeating: 7, count: 256), to: path) else { break }
            sent += 1
        }
        let waited = clock.monotonicMilliseconds - started
        #expect(sent > 0 && sent < 100_000)
        #expect(waited >= 40 && waited < 1000, "waited \(waited) ms")
    }

    @Test func theAcceptQueueOfAListeningSocketIsWhatWaits() throws {
        let path = temporaryPath("pool.sock")
        unlink(path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        #expect(listen(listener, 16) == 0)
        #expect(SocketInspection.boundPath(fd: listener) == path)
        #expect(SocketInspection.listenerUse(path: path) == .init(queued: 0, backlog: 16, connected: 0))
        let clients = try (0..<3).map { _ in try StreamSocket.connect(unixPath: path, timeoutSeconds: 1) }
        #expect(SocketInspection.listenerUse(path: path) == .init(queued: 3, backlog: 16, connected: 0))
        // A worker takes one: it is busy, two still wait.
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        #expect(SocketInspection.listenerUse(path: path) == .init(queued: 2, backlog: 16, connected: 1))
        close(accepted)
        #expect(SocketInspection.listenerUse(path: path)?.connected == 0)
        #expect(SocketInspection.listenerUse(path: temporaryPath("nobody.sock")) == nil)
        _ = clients
    }
}
