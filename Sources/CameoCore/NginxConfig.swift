/// The nginx side of the contract, rendered rather than restated by hand: the site from its
/// template (nginx/sites-available/cameo.conf.in) and the snippets that carry Cameo's limits
/// and its JSON error bodies, from the error catalogue and the configuration that runs. One
/// command writes them all (`cameoctl render-nginx`), for the dev stack, the `nginx -t` test and
/// an install alike; the copies shipped in nginx/generated/ are the render of the defaults, and a
/// test fails when they differ.
public enum NginxConfig {
    /// The generated includes, by file name. None holds a secret: the FastCGI secret has its
    /// own include (`secretSnippet`), written readable by root only.
    /// `runDirectory` is where the sockets are (`render-nginx --run-directory`) and `generated`
    /// the folder these go to (`--output`): the metrics server needs the collector's socket and
    /// the secret's include.
    /// `allowedOrigins` (`auth.allowed_origins`) are the browser origins served CORS.
    public static func snippets(
        limits: Config.Limits, front: Config.FrontSettings, metrics: Config.MetricsSettings, allowedOrigins: [String] = [],
        runDirectory: String = "/run/cameo", generated: String = "/etc/cameo/nginx"
    ) -> [(name: String, text: String)] {
        [
            ("cameo-http.conf", http(front: front) + cors(allowedOrigins: allowedOrigins)),
            ("cameo-server.conf", server(front: front)),
            ("cameo-errors.conf", errors(limits: limits, front: front, generated: generated)),
            ("cameo-headers.conf", headers),
            ("cameo-upload-body.conf", header + "client_max_body_size \(limits.maxUploadBytes);   # limits.max_upload_bytes\n"),
            (
                "cameo-form-body.conf",
                header + "client_max_body_size \(limits.maxUploadBytes + multipartFramingBytes);   "
                    + "# limits.max_upload_bytes + \(multipartFramingBytes) for the multipart framing\n"
            ),
            ("cameo-upload-limits.conf", uploadLimits(front: front)),
            ("cameo-quiet-errors.conf", quietErrors(front: front)),
            ("cameo-body-errors.conf", bodyErrors(front: front)),
            ("cameo-tus.conf", tusDiscovery(limits: limits, generated: generated)),
            ("cameo-metrics-server.conf", metricsServer(metrics, front: front, runDirectory: runDirectory, generated: generated)),
        ]
    }

    /// The include that sends the FastCGI secret with every request, or nil when the
    /// configuration has none (the shipped defaults). nginx reads it as root, before it drops
    /// to its worker user; the file must be readable by root only.
    public static let secretSnippetName = "cameo-fastcgi-secret.conf"

    public static func secretSnippet(front: Config.FrontSettings) -> String? {
        guard !front.fastCGISecret.isEmpty else { return nil }
        precondition(front.fastCGISecret.allSatisfy { $0.isLetter || $0.isNumber || "-_+/=".contains($0) }, "the secret must not need nginx quoting")
        return header + "# Readable by root only: proves to the workers that a request came through this site.\n"
            + "fastcgi_param CAMEO_FRONT_SECRET \"\(front.fastCGISecret)\";\n"
    }

    /// http level: the per-IP key, the zones, the access log format.
    static func http(front: Config.FrontSettings) -> String {
        let loopback = front.exemptLoopback
            ? "    127.0.0.0/8  1;    # nginx.exempt_loopback = true: local checks and load tests\n    ::1          1;\n"
            : "    # nginx.exempt_loopback = false: loopback counts like any address\n"
        return header + """
            # Included at http level, by Cameo's site file.

            # The per-IP key; an empty key is not limited. geo takes its values literally, so it
            # only marks the exempt addresses and the map supplies the address itself.
            geo $cameo_limit_exempt {
                default      0;
            \(loopback)}
            map $cameo_limit_exempt $cameo_limit_key {
                1        "";
                default  $binary_remote_addr;
            }
            limit_req_zone $cameo_limit_key zone=cameo_api:10m rate=30r/s;
            limit_req_zone $cameo_limit_key zone=cameo_upload:10m rate=10r/s;
            limit_req_zone $cameo_limit_key zone=cameo_health:1m rate=5r/s;
            # Resumable uploads send many small requests: a 5 MB photo in 256 KB chunks is a
            # creation, a HEAD and 20 PATCHes within a few seconds.
            limit_req_zone $cameo_limit_key zone=cameo_tus:10m rate=30r/s;
            # Chunks of one resumable upload at once, keyed by its id (the capture of the site's
            # /tus/{id} location; unset, so not limited, everywhere else).
            limit_conn_zone $cameo_tus_id zone=cameo_tus_upload:1m;
            limit_conn_zone $cameo_limit_key zone=cameo_connections:10m;

            # The site's access log: the path as sent without its query (a presigned URL's query
            # is its signature, a download link's too), the request id the workers log, and the
            # error code of a refusal, whether nginx answered it ($cameo_refusal), the upload
            # check did ($cameo_denial_code) or a worker did (X-Cameo-Error-Code). No Referer: a
            # page's address may carry its own secrets.
            map $request_uri $cameo_logged_path {
                "~^(?<cameo_path_only>[^?]*)"  $cameo_path_only;
            }
            map "$cameo_refusal:$cameo_denial_code:$upstream_http_x_cameo_error_code" $cameo_error_code {
                "~^:*(?<cameo_first_code>[a-z_]+)"  $cameo_first_code;
                default                             "-";
            }
            log_format cameo_access '$remote_addr [$time_local] "$request_method $cameo_logged_path $server_protocol" '
                                    '$status $body_bytes_sent $request_length $request_time "$http_user_agent" '
                                    'request_id=$request_id error=$cameo_error_code';

            # One body at a time per upload URL, keyed by the upload's id in the path (a client can
            # reorder the query, never the path). Empty, so not limited, for the direct upload.
            map $uri $cameo_upload_slot {
                "~^/uploads/(?<cameo_slot_id>[0-9a-f]{32})$"  $cameo_slot_id;
                default                                       "";
            }
            limit_conn_zone $cameo_upload_slot zone=cameo_upload_url:1m;
            # All upload bodies at once, from everyone: bounds the upload buffer (nginx.concurrent_uploads).
            map $uri $cameo_all_uploads {
                default "uploads";
            }
            limit_conn_zone $cameo_all_uploads zone=cameo_uploads:32k;

            """
    }

    /// http level: which origins get CORS answers (SPEC §2: the allowed origins only), and how a
    /// preflight is told from tus discovery. The security-headers snippet adds the headers to
    /// every answer, empty (so absent) for any other origin.
    static func cors(allowedOrigins: [String]) -> String {
        precondition(allowedOrigins.allSatisfy { !$0.contains("\"") && !$0.contains(" ") }, "origins are validated by Config")
        return """

            # Cross-origin browsers (auth.allowed_origins): a host application's page on another
            # origin may call the API; its Origin is echoed back, any other gets no CORS header and
            # the browser keeps the answer from its page. Bearer tokens need no credentials mode;
            # the access_token cookie does, and is checked against the same list by the workers.
            map $http_origin $cameo_cors_origin {
                default  "";
            \(allowedOrigins.map { "    \"\($0)\"  $http_origin;\n" }.joined())}
            map $cameo_cors_origin $cameo_cors_credentials {
                ""       "";
                default  "true";
            }
            # What a script on an allowed origin may read of an answer: tus's headers, Location,
            # Retry-After, and Cameo's own.
            map $cameo_cors_origin $cameo_cors_expose {
                ""       "";
                default  "Location, Retry-After, X-Request-Id, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Cameo-Media-State";
            }
            # A CORS preflight is an OPTIONS naming the method it asks for; tus discovery
            # (OPTIONS /tus/) names none.
            map "$request_method:$http_access_control_request_method" $cameo_preflight {
                "~^OPTIONS:."  1;
                default        0;
            }

            """
    }

    /// server level: the timeouts and the per-IP connection limit.
    static func server(front: Config.FrontSettings) -> String {
        header + """
            # Included in Cameo's server block.

            access_log \(front.logDirectory)/cameo-access.log cameo_access;   # nginx.log_directory
            error_log \(front.logDirectory)/cameo-error.log warn;
            # A request nginx refuses before the server's first `set` (a stalled head, an
            # oversized cookie) still logs its line; the warning about the variable it lacks
            # would carry the request line, query included, into the error log.
            uninitialized_variable_warn off;

            # Per read, not per request: a phone that stalls longer than this between two packets
            # has lost its link (nginx.body_timeout_seconds, nginx.header_timeout_seconds).
            client_header_timeout \(front.headerTimeoutSeconds)s;
            client_body_timeout \(front.bodyTimeoutSeconds)s;
            send_timeout \(front.bodyTimeoutSeconds)s;
            # An idle keep-alive connection is let go after 30 s (nginx's default is 75 s): it
            # counts against nginx.connections_per_ip only while a request runs, but holds a
            # worker connection all the time. A timed-out client gets a reset, not a FIN wait.
            keepalive_timeout 30s;
            reset_timedout_connection on;
            # Open connections per address (nginx.connections_per_ip); 429 in the API's JSON.
            limit_conn cameo_connections \(front.connectionsPerIP);
            limit_conn_status 429;
            limit_conn_log_level warn;
            limit_req_log_level warn;

            """
    }

    /// The connection limits of a location that receives an upload body. A location has one
    /// `limit_conn_status` for all its limits, and its `limit_req` answers 429 too, so these
    /// answer 409 inside nginx and `@cameo_too_many_connections` turns that into the client's
    /// 429 with Retry-After (a worker's own 409, `url_used`, is not intercepted: nginx's
    /// error_page sees upstream answers only with fastcgi_intercept_errors, which is off).
    static func uploadLimits(front: Config.FrontSettings) -> String {
        header + """
            # Included in each location that receives an upload body. Checked before the token or
            # URL, and so before a byte of the body is read.
            limit_conn cameo_connections \(front.connectionsPerIP);    # nginx.connections_per_ip
            limit_conn cameo_upload_url 1;
            limit_conn cameo_uploads \(front.concurrentUploads);      # nginx.concurrent_uploads
            limit_conn_status 409;
            error_page 409 = @cameo_too_many_connections;

            """
    }

    /// The error log of a location whose query is a live credential. nginx appends the request
    /// line, query included, to every error line, and writes some before anything can burn the
    /// URL (a body over the cap, a wrong method, a connection limit, the body's temp file), so
    /// these locations write none below `emerg`. Their refusals are in the access log, with
    /// the error code; a pool that is down shows in the other locations' lines too.
    static func quietErrors(front: Config.FrontSettings) -> String {
        header + """
            # Included in the locations whose query is a live upload URL or download link.
            error_log \(front.logDirectory)/cameo-error.log emerg;

            """
    }

    /// The headers of every API answer, nginx's own included: the security snippet and CORS for
    /// the allowed origins. Generated (not a snippet of its own) so that it and the maps it
    /// reads (`cors(allowedOrigins:)`) always come from one render: an upgrade whose render
    /// failed keeps the old pair. Published avatars and the upload page include only the
    /// snippet: an image needs no CORS, and a `Vary: Origin` would split its cache.
    static let headers = header + """
        # Included in Cameo's server block and nginx's own answers: every API answer's headers.
        include snippets/cameo-security-headers.conf;
        # CORS for the allowed origins only (auth.allowed_origins, the maps of cameo-http.conf):
        # an empty value adds no header, so another origin's page cannot read the answer.
        add_header Access-Control-Allow-Origin $cameo_cors_origin always;
        add_header Access-Control-Allow-Credentials $cameo_cors_credentials always;
        add_header Access-Control-Expose-Headers $cameo_cors_expose always;
        add_header Vary Origin always;

        """

    /// The error log of a location that buffers upload bodies in files: nginx warns about every
    /// body larger than its memory buffer, which for tus chunks is nearly every request.
    static func bodyErrors(front: Config.FrontSettings) -> String {
        header + """
            # Included in the upload locations whose URLs carry no credential: errors, not warnings.
            error_log \(front.logDirectory)/cameo-error.log error;

            """
    }

    /// tus discovery (`OPTIONS /tus/` without `Access-Control-Request-Method`), answered by
    /// nginx alone: the version, the extensions, the largest upload and the checksums.
    static func tusDiscovery(limits: Config.Limits, generated: String) -> String {
        header + """
            # Included in Cameo's server block: what `OPTIONS /tus/` answers (SPEC §2).
            location = /_cameo/tus-discovery {
                internal;
                include \(generated)/cameo-headers.conf;
                add_header Tus-Resumable \(tusVersion) always;
                add_header Tus-Version \(tusVersion) always;
                add_header Tus-Extension creation,creation-with-upload,expiration,checksum,termination always;
                add_header Tus-Max-Size \(limits.maxUploadBytes) always;      # limits.max_upload_bytes
                add_header Tus-Checksum-Algorithm sha1,sha256 always;
                add_header Cache-Control "public, max-age=3600" always;
                return 204;
            }

            """
    }

    /// The metrics server: its own `listen` (`metrics.listen`, loopback by default), never the
    /// public site's, so a proxy in front of the site (whose requests all come from loopback)
    /// cannot reach it; the addresses of `metrics.allow` may scrape, anyone else gets 403
    /// `forbidden`. Empty when metrics are off.
    static func metricsServer(_ metrics: Config.MetricsSettings, front: Config.FrontSettings, runDirectory: String, generated: String) -> String {
        guard metrics.eventsSocket != nil else { return header + "# metrics.enabled = false: no metrics server.\n" }
        return header + """
            # Included at http level, by Cameo's site file: Prometheus metrics from the host's one
            # collector (cameo-metrics, on its own socket: a scrape never waits for a worker).
            server {
                listen \(metrics.listen);      # metrics.listen
                server_name _;
                access_log off;
                error_log \(front.logDirectory)/cameo-error.log warn;
                uninitialized_variable_warn off;
                default_type application/json;

                location = /metrics {
                    # metrics.allow
            \(metrics.allow.map { "        allow \($0);\n" }.joined())        deny all;
                    error_page 403 = @cameo_forbidden;
                    error_page 502 503 504 = @cameo_metrics_down;
                    include fastcgi_params;
                    fastcgi_param CAMEO_REQUEST_ID $request_id;
                    include \(generated)/\(secretSnippetName);
                    fastcgi_connect_timeout 5s;
                    fastcgi_read_timeout 10s;
                    fastcgi_pass unix:\(runDirectory)/metrics.sock;
                }
                location / {
                    return 404 '\(json(.notFound))';
                }
                location @cameo_forbidden {
                    return 403 '\(json(.metricsForbidden))';
                }
                # The collector is down (cameo-metrics.service).
                location @cameo_metrics_down {
                    return 503 '\(json(.unavailable("metrics collector")))';
                }
            }

            """
    }

    /// How much a multipart form may exceed its file's limit for headers and boundaries (the
    /// worker allows the same).
    public static let multipartFramingBytes = 64 * 1024

    /// JSON bodies (presign, scanner callbacks) are at most this long.
    public static let jsonBodyBytes = 16 * 1024

    /// The host of a base URL (`https://avatars.example.com:8443/` → `avatars.example.com`),
    /// as nginx's `server_name` wants it.
    public static func serverName(of baseURL: String) -> String {
        let authority = baseURL.split(separator: "://", maxSplits: 1).last.map { $0.prefix { $0 != "/" } } ?? ""
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") { return String(authority[...end]) }
        return String(authority.prefix { $0 != ":" })
    }

    /// Where the site's paths point. `generated` is the folder the snippets above are in.
    public struct SitePaths: Sendable {
        /// The `listen` addresses, one directive each (IPv4 and IPv6 by default).
        public var listen: [String]
        /// `server_name`: the host of `public_base_url`, so the site answers for its own name
        /// beside Debian's default site (and any other) on the same port.
        public var serverName: String
        public var mediaRoot: String
        public var runDirectory: String
        public var wwwRoot: String
        public var generated: String
        /// nginx's buffer folder for upload bodies (`nginx.upload_buffer_path`).
        public var uploadBuffer: String

        public init(
            listen: [String], serverName: String, mediaRoot: String, runDirectory: String, wwwRoot: String, generated: String, uploadBuffer: String
        ) {
            self.listen = listen
            self.serverName = serverName
            self.mediaRoot = mediaRoot
            self.runDirectory = runDirectory
            self.wwwRoot = wwwRoot
            self.generated = generated
            self.uploadBuffer = uploadBuffer
        }

        var placeholders: [(String, String)] {
            [
                // The template's `listen @LISTEN@;` line becomes one line per address.
                ("@LISTEN@", listen.joined(separator: ";\n    listen ")), ("@SERVER_NAME@", serverName), ("@MEDIA_ROOT@", mediaRoot), ("@RUN_DIR@", runDirectory), ("@WWW_ROOT@", wwwRoot),
                ("@GENERATED@", generated), ("@UPLOAD_BUFFER@", uploadBuffer),
            ]
        }
    }

    public struct TemplateError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The site from its template: every placeholder must be used, and none may be left.
    public static func site(template: String, paths: SitePaths) throws(TemplateError) -> String {
        var text = template
        for (placeholder, value) in paths.placeholders {
            guard text.contains(placeholder) else { throw TemplateError(description: "the template has no \(placeholder)") }
            text = text.replacing(placeholder, with: value)
        }
        if let left = text.firstRange(of: /@[A-Z_]+@/) { throw TemplateError(description: "unknown placeholder \(text[left]) in the template") }
        return text
    }

    static let header = "# Generated by `cameoctl render-nginx` from Cameo's configuration and error catalogue; do not edit.\n"

    /// A named location that answers an `auth_request` refusal without reading the body: one
    /// `return` per status of the error catalogue (`return` takes no variable status). A tus
    /// one adds `Tus-Resumable` to every answer and `Tus-Version` to 412.
    static func denied(_ name: String, refusal: String, generated: String, tus: Bool = false) -> String {
        let tusHeader = tus ? "    add_header Tus-Resumable \(tusVersion) always;\n" : ""
        var out = """
            location \(name) {
            \(refusal)
            \(tusHeader)    # No verdict at all: the 403 came from limit_except (a method the location does not take).
                if ($cameo_denial_status = "") {
                    set $cameo_refusal \(ErrorCode.methodNotAllowed.rawValue);
                    return 405 '\(json(.methodNotAllowed))';
                }

            """
        let statuses = Set(ErrorCode.allCases.map(\.status)).subtracting([403]).sorted()
        for status in statuses {
            // An `if` with an add_header of its own inherits none: it repeats the location's.
            var own: [String] = []
            if status == 503 { own.append("add_header Retry-After \(AppError.unavailable("").retryAfter ?? 5) always;") }
            if tus && status == ErrorCode.unsupportedVersion.status { own.append("add_header Tus-Version \(tusVersion) always;") }
            if own.isEmpty {
                out += "    if ($cameo_denial_status = \(status)) { return \(status) $cameo_denial_body; }\n"
                continue
            }
            if tus { own.insert("add_header Tus-Resumable \(tusVersion) always;", at: 0) }
            out += "    if ($cameo_denial_status = \(status)) {\n        include \(generated)/cameo-headers.conf;\n"
            out += own.map { "        \($0)\n" }.joined() + "        return \(status) $cameo_denial_body;\n    }\n"
        }
        return out + "    return 403 $cameo_denial_body;\n}\n"
    }

    /// The tus protocol version Cameo speaks (SPEC §2).
    public static let tusVersion = "1.0.0"

    /// The named locations nginx answers from by itself, in the API's JSON, and the body limit
    /// of the JSON routes. Included once, in the server.
    static func errors(limits: Config.Limits, front: Config.FrontSettings, generated: String) -> String {
        // In every named location: a request sent here may still hold a live upload URL (a
        // refusal of a body, a connection limit), and nginx logs with the named location's
        // settings from here on; and the body it refused is drained for at most a few seconds,
        // so a refused client cannot keep an upload slot while it trickles bytes.
        let refusal = """
                include \(generated)/cameo-headers.conf;
                error_log \(front.logDirectory)/cameo-error.log emerg;
                lingering_time 5s;
                lingering_timeout 2s;
                types { }                       # the type is JSON whatever the path's extension
                default_type application/json;
            """
        var out = header + """
            # Included in Cameo's server block: nginx's own answers, in the API's JSON (SPEC §2).

            client_max_body_size \(jsonBodyBytes);   # JSON bodies; the upload locations raise it

            # auth_request passes on only 401 and 403, so the worker refuses an upload URL with 403
            # and names the real answer in X-Cameo-Error-Status and -Body, which nginx returns with
            # `return`: that discards the body unread (proxying the refusal would read it first).
            # One line per status of the error catalogue: `return` takes no variable status.
            \(denied("@cameo_upload_denied", refusal: refusal, generated: generated))
            # The same for a tus creation or PATCH: its answers carry the protocol's version.
            \(denied("@cameo_tus_denied", refusal: refusal, generated: generated, tus: true))
            location @cameo_method_not_allowed {
            \(refusal)
                set $cameo_refusal \(ErrorCode.methodNotAllowed.rawValue);
                return 405 '\(json(.methodNotAllowed))';
            }

            # A worker pool down or too slow, or a failed auth subrequest.
            location @cameo_unavailable {
            \(refusal)
                add_header Retry-After \(AppError.serviceUnavailable.retryAfter ?? 5) always;
                add_header Cache-Control no-store always;
                set $cameo_refusal \(ErrorCode.unavailable.rawValue);
                return 503 '\(json(.serviceUnavailable, requestID: "$request_id"))';
            }

            location @cameo_too_large {
            \(refusal)
                set $cameo_refusal \(ErrorCode.tooLarge.rawValue);
                return 413 '\(json(.tooLarge(limit: limits.maxUploadBytes)))';
            }

            # A JSON body (presign, scanner callback) over its limit.
            location @cameo_json_too_large {
            \(refusal)
                set $cameo_refusal \(ErrorCode.tooLarge.rawValue);
                return 413 '\(json(.tooLarge(limit: jsonBodyBytes)))';
            }

            # A path no route has.
            location @cameo_not_found {
            \(refusal)
                set $cameo_refusal \(ErrorCode.notFound.rawValue);
                return 404 '\(json(.notFound))';
            }

            # A body on a method that takes none (see the map $cameo_unexpected_body).
            location @cameo_unexpected_body {
            \(refusal)
                set $cameo_refusal \(ErrorCode.unexpectedBody.rawValue);
                return 400 '\(json(.unexpectedBody))';
            }

            location @cameo_too_many_connections {
            \(refusal)
                add_header Retry-After \(AppError.tooManyConnections.retryAfter ?? 5) always;
                set $cameo_refusal \(ErrorCode.tooManyConnections.rawValue);
                return 429 '\(json(.tooManyConnections))';
            }

            location @cameo_rate_limited {
            \(refusal)
                add_header Retry-After \(AppError.addressRateLimited.retryAfter ?? 1) always;
                set $cameo_refusal \(ErrorCode.rateLimited.rawValue);
                return 429 '\(json(.addressRateLimited))';
            }

            # A CORS preflight (see the site's server block): what an allowed origin's page may
            # send, answered by nginx; any other origin is refused here, before its request.
            location @cameo_preflight {
            \(refusal)
                if ($cameo_cors_origin = "") {
                    include \(generated)/cameo-headers.conf;   # and none of the Allow headers below
                    set $cameo_refusal \(ErrorCode.badOrigin.rawValue);
                    return 403 '\(json(.originNotAllowed))';
                }
                add_header Access-Control-Allow-Methods "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" always;
                add_header Access-Control-Allow-Headers "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Upload-Checksum, X-Requested-With" always;
                add_header Access-Control-Max-Age 600 always;
                return 204;
            }

            """
        return out
    }

    /// An error body as nginx's `return` text: single-quoted, so it must hold no `'`.
    private static func json(_ error: AppError, requestID: String? = nil) -> String {
        let text = error.body(requestID: requestID).serialized()
        precondition(!text.contains("'"), "an nginx error body may not contain a single quote")
        return text
    }
}
