public import CameoCore
public import CameoSystem

/// How a route's body reaches its handler. nginx buffers every body whole before a worker
/// sees the request, then sends it on the FastCGI stream; the worker reads it as the route
/// needs. (nginx's own buffer files are its user's, 0600: the worker, which runs as a user of
/// its own, could not take them over.)
public enum BodyIntake: Equatable, Sendable {
    /// The route takes no body; nginx refuses one before it reaches a worker.
    case none
    /// A small JSON body, read into memory.
    case inMemory(limit: Int)
    /// An upload, streamed into a file of the worker's own under `incoming/`, on the media
    /// root's file system, so the pipeline can rename it into quarantine.
    case spooled(limit: Int)
}

extension Router {
    /// What the worker should do with the body of `request` (built without one).
    public func intake(for request: HTTPRequest) -> BodyIntake {
        switch Route(request) {
        case .upload: return .spooled(limit: maxUploadBytes)
        // A tus chunk is written once, into the partial file: read into memory (bounded like
        // any upload), it skips a file of its own in incoming/ and a second read.
        case .tusCreate: return .inMemory(limit: maxUploadBytes)
        case .tus where request.method == "PATCH": return .inMemory(limit: maxUploadBytes)
        case .profile where request.documentURI == Route.profileUploadLocation:
            return .spooled(limit: maxUploadBytes + NginxConfig.multipartFramingBytes)
        case .presign, .scanCallback: return .inMemory(limit: NginxConfig.jsonBodyBytes)
        default: return .none
        }
    }
}

/// Receives upload bodies into `incoming/` under the media root, each under a random name of
/// its own, created 0600. A body that fails on the way leaves no file; a received one is the
/// request's to rename or remove (the worker removes what is left after the reply, and the
/// sweeper what a killed worker left).
public struct IncomingSpool: Sendable {
    let root: MediaRoot

    public init(root: MediaRoot) { self.root = root }

    /// Creates the file, lets `read` feed it, and returns its path once it is complete.
    public func receive(_ read: ((ArraySlice<UInt8>) throws -> Void) throws -> Void) throws -> String {
        let file = try FileSystem.create(root.incoming + "/" + MediaID.random().rawValue)
        do {
            try read { chunk in try file.append(chunk) }
            try file.close()
        } catch {
            file.abandon()
            throw error
        }
        return file.path
    }
}
