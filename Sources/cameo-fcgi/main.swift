// cameo-fcgi: one FastCGI worker process. The pool (deploy/cameo-pool: spawn-fcgi + multiwatch)
// hands it the listening socket on fd 0, restarts it when it exits, and the worker exits on
// its own after `worker.max_requests` requests so no leak or fragmentation outlives it.
//
// This file is the composition root: it reads the config, opens the MariaDB store, builds the
// service, and feeds it one request at a time.
import CameoCore
import CameoService
import CameoSystem
import FastCGI
import MariaDB
import MariaDBStore

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
let service: Service
let server: FastCGIServer
do {
    service = try Service(config: config, store: MariaDBMediaStore(config.database))
    server = try FastCGIServer()
} catch let error as ConfigError {
    fail(error.description, code: 78)  // the token key named in the config cannot be read
} catch {
    fail("cannot start: \(error)", code: 70)
}
FastCGIServer.installGracefulStop()

var served = 0
while served < config.maxRequestsPerWorker && !FastCGIServer.stopRequested {
    let accepted = server.acceptNext { fcgi in
        // The body stream can only be read while the FastCGI request is open, so a small body
        // (JSON) is read here, up front; nginx hands uploads over as a file instead.
        let parameters = fcgi.parameters
        let body: RequestBody
        if let file = parameters["REQUEST_BODY_FILE"], !file.isEmpty {
            body = .file(path: file)
        } else if ["POST", "PUT"].contains(parameters["REQUEST_METHOD"] ?? "") {
            do throws(FastCGIError) {
                body = .bytes(try fcgi.readBody(limit: config.limits.maxUploadBytes))
            } catch {
                if case .bodyTooLarge(let limit) = error { body = .unreadable(.tooLarge(limit: limit)) } else { body = .unreadable(.internalError) }
            }
        } else {
            body = .none
        }
        let response = service.router.respond(to: HTTPRequest(cgi: parameters, body: body))
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
