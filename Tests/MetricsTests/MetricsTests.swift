import CameoMetrics
import CameoSystem
import Glibc
import MetricsCollector
import Testing

@Suite struct MetricDatagramTests {
    @Test func everyEventSurvivesTheWire() {
        let events: [MetricEvent] = [
            .workerStarted(socket: "/run/cameo/heavy.sock"), .busy, .request(route: "upload", status: 201, seconds: 0.123456),
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
            "cameo1 fast 1 busy extra", "cameo1 fast 1 request upload 999 10", "cameo1 fast 1 request Up-load 201 10",
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
        let collector = MetricsCollector(queueDepth: { _ in nil }, isAlive: { _ in true })
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

    @Test func busyWorkersAreThoseInARequestAndStillAlive() {
        var alive: Set<Int> = [1, 2, 3]
        let collector = MetricsCollector(queueDepth: { _ in nil }, isAlive: { alive.contains($0) })
        for pid in [1, 2, 3] { send(collector, "fast", pid, .busy) }
        send(collector, "fast", 2, .request(route: "presign", status: 200, seconds: 0.01))
        #expect(text(collector).contains(#"cameo_pool_busy_workers{pool="fast"} 2"#))
        alive.remove(3)  // killed inside its request: it never says so
        #expect(text(collector).contains(#"cameo_pool_busy_workers{pool="fast"} 1"#))
    }

    @Test func queueDepthIsReadFromThePoolsSocketWhenScraped() {
        var asked: [String] = []
        let collector = MetricsCollector(queueDepth: { asked.append($0); return (queued: 7, backlog: 1024) }, isAlive: { _ in true })
        send(collector, "heavy", 5, .workerStarted(socket: "/run/cameo/heavy.sock"))
        let out = text(collector)
        #expect(asked == ["/run/cameo/heavy.sock"])
        #expect(out.contains(#"cameo_pool_queue_depth{pool="heavy"} 7"#))
        #expect(out.contains(#"cameo_pool_queue_limit{pool="heavy"} 1024"#))
        #expect(out.contains(#"cameo_worker_starts_total{pool="heavy"} 1"#))
    }
}

@Suite struct SocketTests {
    func temporaryPath(_ name: String) -> String { "/tmp/cameo-metrics-test-\(getpid())-\(name)" }

    @Test func datagramsReachTheBoundSocketAndNeverBlockTheSender() throws {
        let path = temporaryPath("events.sock")
        let sender = try DatagramSocket.sender()
        #expect(!sender.send([1, 2, 3], to: path))  // nobody bound: dropped, no error, no wait
        let receiver = try DatagramSocket.bind(path: path, mode: 0o600)
        #expect(sender.send(Array("hello".utf8), to: path))
        #expect(Poll.readable([receiver.fd], timeoutMilliseconds: 1000) == [true])
        #expect(receiver.receive(maxBytes: 64) == Array("hello".utf8))
        #expect(receiver.receive(maxBytes: 64) == nil)
        // A full queue drops the message instead of blocking the worker.
        var sent = 0
        while sender.send([UInt8](repeating: 7, count: 256), to: path), sent < 100_000 { sent += 1 }
        #expect(sent > 0 && sent < 100_000)
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
        #expect(SocketInspection.acceptQueue(path: path).map { [$0.queued, $0.backlog] } == [0, 16])
        let clients = try (0..<3).map { _ in try StreamSocket.connect(unixPath: path, timeoutSeconds: 1) }
        #expect(SocketInspection.acceptQueue(path: path)?.queued == 3)
        #expect(SocketInspection.acceptQueue(path: temporaryPath("nobody.sock")) == nil)
        _ = clients
    }

    @Test func aProcessThatExitedDoesNotExist() {
        #expect(SystemProcess.exists(SystemProcess.id))
        #expect(SystemProcess.exists(1))
        #expect(!SystemProcess.exists(0))
        #expect(!SystemProcess.exists(4_194_303))  // above pid_max's ceiling on Linux
    }
}
