// cameo-metrics: the host's one metrics collector. Workers are recycled processes and a scrape
// would reach one of them at random, so none keeps a count: every worker and `cameoctl` command
// sends its events as datagrams to this process (metrics.events_socket), which sums them and
// answers nginx's `/metrics` location over FastCGI, on the socket it gets on fd 0 (systemd's
// cameo-metrics.socket, or spawn-fcgi in the dev stack), as the pools do.
//
// One thread: poll(2) on both sockets. An event is a few dozen bytes and a scrape a few
// kilobytes, so neither waits long for the other.
import CameoCore
import CameoMetrics
import CameoSystem
import FastCGI
import MetricsCollector

let start = ProgramStart(name: "cameo-metrics")
let config = start.config()
guard let eventsPath = config.metrics.eventsSocket else {
    // Not a failure: the unit ends cleanly instead of showing failed at every boot.
    SystemProcess.writeError("cameo-metrics: metrics.enabled is false: nothing to collect")
    SystemProcess.exit(0)
}

let events: DatagramSocket
let server: FastCGIServer
do {
    // 0660: the workers and cameoctl run as this process's user (or its group).
    events = try DatagramSocket.bind(path: eventsPath, mode: 0o660)
    server = try FastCGIServer()
} catch {
    start.fail("cannot start: \(error)", code: 70)
}
FastCGIServer.installGracefulStop()
let gate = FrontGate(config.front)
let collector = MetricsCollector()
SystemProcess.writeError("level=info msg=\"collecting\" events=\(eventsPath) pid=\(SystemProcess.id)")

let fastCGIListener: Int32 = 0
// One byte more than a datagram may have: a longer one arrives cut, and is refused as such.
var buffer = [UInt8](repeating: 0, count: MetricDatagram.maxBytes + 1)
while !FastCGIServer.stopRequested {
    let ready = Poll.readable([events.fd, fastCGIListener], timeoutMilliseconds: -1)
    if ready[0] {
        // Drain what waits, then look at the scrape socket again.
        for _ in 0..<1024 {
            guard let count = events.receive(into: &buffer) else { break }
            collector.receive(buffer[0..<count])
        }
    }
    guard ready[1] else { continue }
    let accepted = server.acceptNext { fcgi in
        guard gate.admits(fcgi.parameters) else { return }  // not from our nginx site: no answer
        let method = fcgi.parameters["REQUEST_METHOD"] ?? ""
        do {
            if method == "GET" || method == "HEAD" {
                let body = collector.exposition()
                try fcgi.respond(
                    status: 200, reason: "OK", headers: [("Content-Type", MetricsCollector.contentType), ("Cache-Control", "no-store")],
                    body: method == "GET" ? body : [])
            } else {
                try fcgi.respond(
                    status: 405, reason: "Method Not Allowed",
                    headers: [("Content-Type", "application/json"), ("Allow", "GET, HEAD"), ("X-Cameo-Error-Code", AppError.methodNotAllowed.code.rawValue)],
                    body: Array(AppError.methodNotAllowed.body(requestID: fcgi.parameters["CAMEO_REQUEST_ID"]).serialized().utf8))
            }
        } catch {
            // nginx hung up; nothing more to tell it.
        }
    }
    // The listening socket failed (closed under it): exit non-zero, so systemd starts it again.
    guard accepted || FastCGIServer.stopRequested else { start.fail("the scrape socket failed", code: 1) }
}
SystemProcess.exit(0)
