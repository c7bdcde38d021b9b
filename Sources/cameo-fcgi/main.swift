// cameo-fcgi: one FastCGI worker process. The pool (deploy/cameo-pool: spawn-fcgi + multiwatch)
// hands it the listening socket on fd 0, restarts it when it exits, and the worker exits on
// its own after `worker.max_requests` requests so no leak or fragmentation outlives it.
//
// This file is the composition root: it reads the config, opens the MariaDB store, builds the
// service, and feeds it one request at a time.
import CameoCore
import CameoMetrics
import CameoService
import CameoSystem
import FastCGI
import MariaDB
import MariaDBStore

/// `--stop-pool-on-config-error` (the systemd unit passes it): a worker started by multiwatch
/// after the config was broken (edited without a reload, a key file gone) would otherwise fail
/// and be respawned forever while systemd shows the pool running. Instead it stops the whole
/// pool, and the unit's restart runs `check-config`, which fails the unit after three tries.
let stopsPoolOnConfigError = CommandLine.arguments.dropFirst().contains("--stop-pool-on-config-error")

let start = ProgramStart(name: "cameo-fcgi") {
    guard stopsPoolOnConfigError else { return }
    SystemProcess.writeError("cameo-fcgi: stopping the pool: its workers cannot start with this configuration")
    SystemProcess.terminateParent()
}
let config = start.config()

// The pool is the name of the socket this worker accepts on (`/run/cameo/heavy.sock` → heavy).
let poolSocket = SocketInspection.boundPath(fd: 0)
let metrics: any MetricsSink = config.metrics.eventsSocket.flatMap { path in
    try? DatagramMetricsSink(path: path, pool: poolSocket.map(DatagramMetricsSink.poolName) ?? "other")
} ?? NoMetrics()
if let poolSocket { metrics.record(.workerStarted(socket: poolSocket)) }

Connection.initializeLibrary()
let service: Service
let server: FastCGIServer
do {
    service = try Service(config: config, store: MariaDBMediaStore(config.database), metrics: metrics)
    server = try FastCGIServer()
} catch let error as ConfigError {
    start.fail(error.description, code: ConfigError.exitStatus)  // the token key named in the config cannot be read
} catch {
    start.fail("cannot start: \(error)", code: 70)
}
FastCGIServer.installGracefulStop()

var served = 0
while served < config.maxRequestsPerWorker && !FastCGIServer.stopRequested {
    let accepted = server.acceptNext { fcgi in
        // Not from our nginx site (another process of nginx's user on the socket): no answer.
        guard service.gate.admits(fcgi.parameters) else {
            SystemProcess.writeError("level=warn msg=\"refused a request without nginx's FastCGI secret\" pid=\(SystemProcess.id)")
            return
        }
        // The body stream can only be read while the FastCGI request is open, so it is read
        // here, up front, as the route needs it: an upload into a file, JSON into memory.
        var request = HTTPRequest(cgi: fcgi.parameters, body: .none)
        var received: String? = nil
        switch service.router.intake(for: request) {
        case .none: break
        case .inMemory(let limit):
            do throws(FastCGIError) {
                request.body = .bytes(try fcgi.readBody(limit: limit))
            } catch {
                request.body = .unreadable(error.refusal)
            }
        case .spooled(let limit):
            do {
                let path = try service.spool.receive { append in try fcgi.readBody(limit: limit, into: append) }
                received = path
                request.body = .file(path: path)
            } catch BodyReadError<any Error>.stream(let failure) {
                request.body = .unreadable(failure.refusal)
            } catch {
                request.body = .unreadable(.unavailable("storage"))  // incoming/ could not be written
            }
        }
        let response = service.router.respond(to: request)
        do {
            try fcgi.respond(status: response.status, reason: response.reason, headers: response.headers, body: response.body)
        } catch {
            // nginx hung up; nothing more to tell it.
        }
        // The pipeline renamed the body into quarantine, or it was refused: nothing to keep.
        if let received { FileSystem.remove(received) }
    }
    guard accepted else { break }
    served += 1
}
SystemProcess.exit(0)

extension FastCGIError {
    /// A body the worker could not take: over its bound, or cut (nginx went away).
    var refusal: AppError {
        if case .bodyTooLarge(let limit) = self { return .tooLarge(limit: limit) }
        return .internalError
    }
}
