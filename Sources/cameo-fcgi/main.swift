// cameo-fcgi: one FastCGI worker process. The pool (spawn-fcgi + multiwatch, or systemd)
// hands it the listening socket on fd 0, restarts it when it exits, and the worker exits on
// its own after `worker.max_requests` requests so no leak or fragmentation outlives it.
import CameoCore
import CameoService
import FastCGI
import MariaDB
import CameoSystem

func fail(_ message: String, code: Int32) -> Never {
    SystemProcess.writeError("cameo-fcgi: \(message)")
    // The supervisor restarts exited workers at once; pausing keeps a worker that cannot
    // start from spinning a core.
    SystemProcess.sleep(seconds: 1)
    SystemProcess.exit(code)
}

let config: Config
do {
    config = try Config.load(environment: SystemProcess.environment)
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
FastCGIServer.installGracefulStop()

var served = 0
while served < config.maxRequestsPerWorker && !FastCGIServer.stopRequested {
    let accepted = server.acceptNext { fcgi in
        // The body stream can only be read while the FastCGI request is open, so routes that
        // take a small body over the stream (JSON) get it read here, up front; nginx hands
        // uploads over as a file instead.
        let parameters = fcgi.parameters
        let streamsBody = (parameters["REQUEST_BODY_FILE"] ?? "").isEmpty
            && ["POST", "PUT"].contains(parameters["REQUEST_METHOD"] ?? "")
        var body: Result<[UInt8], FastCGIError> = .success([])
        if streamsBody {
            do throws(FastCGIError) {
                body = .success(try fcgi.readBody(limit: config.limits.maxUploadBytes))
            } catch {
                body = .failure(error)
            }
        }
        let received = body
        let request = HTTPRequest(cgi: parameters) { limit in
            let bytes = try received.get()
            guard bytes.count <= limit else { throw AppError.tooLarge(limit: limit) }
            return bytes
        }
        let response = application.handle(request)
        do {
            try fcgi.respond(status: response.status, reason: response.reason, headers: response.headers, body: response.body)
        } catch {
            // nginx hung up; nothing more to tell it.
        }
    }
    guard accepted else { break }
    served += 1
}
SystemProcess.exit(0)
