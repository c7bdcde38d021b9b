// cameo-fcgi: one FastCGI worker process. The pool (spawn-fcgi + multiwatch, or systemd)
// hands it the listening socket on fd 0, restarts it when it exits, and the worker exits on
// its own after `worker.max_requests` requests so no leak or fragmentation outlives it.
import CCameoShims
import CameoCore
import CameoService
import FastCGI
import MariaDB
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, code: Int32) -> Never {
    let bytes = Array("cameo-fcgi: \(message)\n".utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    // The supervisor restarts exited workers at once; pausing keeps a worker that cannot
    // start from spinning a core.
    sleep(1)
    exit(code)
}

let config: Config
do {
    config = try Config.load(environment: Config.processEnvironment())
} catch {
    fail(error.description, code: 78)  // EX_CONFIG: systemd and multiwatch should not spin on this
}

Connection.initializeLibrary()
let application: Application
let server: FastCGIServer
do {
    application = try Application(config: config)
    server = try FastCGIServer()
} catch {
    fail("cannot start: \(error)", code: 70)
}
cameo_install_graceful_stop()

var served = 0
while served < config.maxRequestsPerWorker && cameo_stop_requested() == 0 {
    let accepted = server.acceptNext { fcgi in
        cameo_set_busy(1)
        let request = HTTPRequest(cgi: fcgi.parameters, readBody: { _ in [] })
        // The body stream can only be read while the FastCGI request is open, so it is read
        // here, up front, for routes that take a small body over the stream (nginx hands
        // uploads over as a file instead).
        var body: [UInt8] = []
        var bodyError: (any Error)? = nil
        if request.bodyFile == nil, request.method == "POST" || request.method == "PUT" {
            do { body = try fcgi.readBody(limit: config.limits.maxUploadBytes) } catch { bodyError = error }
        }
        var withBody = request
        let captured = body
        let capturedError = bodyError
        withBody.readBody = { limit in
            if let capturedError { throw capturedError }
            guard captured.count <= limit else { throw AppError.tooLarge(limit: limit) }
            return captured
        }
        let response = application.handle(withBody)
        do {
            try fcgi.respond(status: response.status, reason: response.reason, headers: response.headers, body: response.body)
        } catch {
            // nginx hung up; nothing more to tell it.
        }
        cameo_set_busy(0)
    }
    guard accepted else { break }
    served += 1
}
exit(0)
