import FoundationEssentials

/// A configuration value that failed validation. The start stops with this message, which names
/// the key (and the environment variable that overrides it) or the file's line, but never a
/// secret's value.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// The setting, or for a line that is no setting, `path:line`.
    public let key: String
    public let problem: String
    /// Whether `key` is a setting (so an environment variable can override it).
    let isSetting: Bool

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
        isSetting = true
    }

    /// A problem of the file itself: a line, the file's path, or an environment variable.
    public init(at location: String, problem: String) {
        key = location
        self.problem = problem
        isSetting = false
    }

    public var description: String {
        isSetting ? "config: \(key) (env \(Config.environmentName(for: key))): \(problem)" : "config: \(key): \(problem)"
    }

    /// The exit status of a start refused for its configuration (`EX_CONFIG`, sysexits.h), the
    /// same for the workers and every `cameoctl` command.
    public static let exitStatus: Int32 = 78
}

/// Everything a worker or `cameoctl` needs, read once at start from one file plus `CAMEO_*`
/// environment overrides, and validated before anything else runs.
///
/// The file is `key = value` lines; `#` starts a comment. The environment variable for a key is
/// `CAMEO_` followed by the key upper-cased with dots as underscores (`database.socket` →
/// `CAMEO_DATABASE_SOCKET`).
public struct Config: Sendable {
    /// Where clients reach nginx; upload URLs are built and verified against its host.
    public var publicBaseURL: String
    /// Prefix of published avatar URLs (a CDN in front of nginx, or nginx itself).
    public var cdnBaseURL: String
    /// Root of `quarantine/` and `profile-media/`.
    public var mediaRoot: String
    public var database: DatabaseSettings
    public var auth: AuthSettings
    public var presign: PresignSettings
    /// How long a resumable (tus) upload may take, from its creation: its `Upload-Expires`
    /// (`tus.lifetime_seconds`); then the sweeper removes what was received.
    public var tusLifetimeSeconds: Int
    /// Resumable uploads one user may have `receiving` at once (`tus.partial_uploads_per_user`):
    /// their bytes wait on disk until they complete or expire.
    public var tusPartialUploadsPerUser: Int
    public var limits: Limits
    public var output: OutputSettings
    public var rateLimits: RateLimits
    public var scanner: ScannerSettings
    public var front: FrontSettings
    public var metrics: MetricsSettings
    /// Quarantine files and unused upload URLs older than this are swept (`cameoctl sweep`).
    public var abandonedAfterSeconds: Int
    /// How long rows are kept (`retention.*`, days): finished uploads other than a current
    /// avatar, and analytics events. `cameoctl prune` (the hourly sweep) deletes older ones.
    public var retention: Retention
    public struct Retention: Sendable {
        public var uploadDays: Int
        public var analyticsDays: Int
    }
    /// A worker exits after this many requests and the pool starts a fresh one.
    public var maxRequestsPerWorker: Int
    /// Every setting there is, as this build reads them (the README's table and the example
    /// config list the same; a test keeps them equal).
    public let settingNames: Set<String>

    public struct DatabaseSettings: Sendable {
        public var socket: String?
        public var host: String
        public var port: Int
        public var user: String
        public var password: String
        public var name: String
    }

    public struct AuthSettings: Sendable {
        /// The token algorithms accepted (`auth.algorithms`); nothing else is, whatever keys
        /// are configured.
        public var algorithms: Set<JWTAlgorithm> = []
        /// HS256 shared secret (bytes of the UTF-8 text), for `HS256`.
        public var hs256Secret: String?
        /// HS256 secrets with ids (`auth.hs256_keys = id:secret,...`), instead of one secret:
        /// a token's `kid` picks one, so the host application can rotate. The first signs
        /// what `cameoctl token` mints.
        public var hs256Keys: [(id: String, secret: String)] = []
        /// PEM public key for RS256 or ES256 as text (tests); nil: see `publicKeyFile`.
        public var publicKeyPEM: String?
        /// The file holding that key (`auth.public_key_file`). It is read where tokens are
        /// verified (the worker, `check-config`), not when the config is loaded, so commands
        /// that verify no token (sweep, migrate) start even if it cannot be read.
        public var publicKeyFile: String? = nil
        /// A JWKS document with the identity provider's public keys, by `kid`
        /// (`auth.jwks_file`), instead of one PEM key; workers re-read it when it changes.
        public var jwksFile: String? = nil
        /// Where `cameo-jwks-refresh` fetches that document from (`auth.jwks_url`).
        public var jwksURL: String? = nil
        public var issuer: String?
        public var audience: String?
        public var leewaySeconds: Int
        /// Whether a token must carry a `jti` (`auth.require_jti`, default true): only a token
        /// with one can be revoked. A `jti` is at most 128 characters, the revocation key's size.
        public var requireTokenID: Bool = true
        /// The longest a token may be valid from now (`auth.max_token_lifetime_seconds`): a
        /// token minted to last a year is refused, whoever signed it.
        public var maxLifetimeSeconds: Int = 86_400
        /// Origins allowed to send cookie-authenticated requests.
        public var allowedOrigins: [String]
    }

    public struct PresignSettings: Sendable {
        /// Signing keys by id; the id travels in the credential scope so old URLs verify during
        /// a rotation.
        public var keys: [String: String]
        public var activeKeyID: String
        public var ttlSeconds: Int
        public var region: String
    }

    public struct Limits: Sendable {
        public var maxUploadBytes: Int
        public var maxSide: Int
        public var maxPixels: Int
        public var allowedTypes: [String]
        /// Animated WebP/APNG: publish the first frame (default) or refuse the upload.
        public var rejectAnimated: Bool

        /// SPEC §5's defaults: the one place they are written. nginx's limits are rendered from
        /// the running configuration (`cameoctl render-nginx`), the shipped snippets from these.
        public static let defaults = Limits(
            maxUploadBytes: 5_242_880, maxSide: 2048, maxPixels: 4_200_000, allowedTypes: ["image/jpeg", "image/png", "image/webp"],
            rejectAnimated: false)
    }

    public struct OutputSettings: Sendable {
        public var sizes: [Int]
        public var webpQuality: Int
    }

    /// Who says whether an upload is clean: clamd next to Cameo, or an external service that
    /// calls back.
    public struct ScannerSettings: Sendable {
        public enum Mode: String, Sendable { case clamd, external }
        public var mode: Mode
        public var clamdSocket: String
        public var timeoutSeconds: Int
        /// Scan attempts before an upload is rejected as `scan_failed`.
        public var maxAttempts: Int
        /// Backoff before retry n is base × 2^(n-1) seconds.
        public var retryBaseSeconds: Int
        /// External mode: where uploads are announced, and the shared HMAC secret of callbacks.
        public var externalURL: String?
        public var callbackSecret: String?
        /// Several callback secrets with ids (`scanner.callback_keys = id:secret,...`), instead
        /// of one, for a rotation: the first signs the download links, a callback or link
        /// signed with any of them verifies.
        public var callbackKeys: [(id: String, secret: String)] = []
        /// How long an upload announced to the external scanner waits for its verdict before
        /// the sweeper rejects it as `scan_failed` (`scanner.verdict_timeout_seconds`).
        public var verdictTimeoutSeconds: Int = 3600

        /// The callback secrets, the signing one first.
        public var callbackSecrets: [String] { callbackSecret.map { [$0] } ?? callbackKeys.map(\.secret) }
    }

    public struct RateLimits: Sendable {
        public var uploadsPerMinute: Int
        public var deletesPerMinute: Int
    }

    /// nginx, the front of every request (`nginx.*`): what `cameoctl render-nginx` writes into
    /// the site's includes, and the secret by which a worker knows a request came through it.
    public struct FrontSettings: Sendable {
        /// The FastCGI parameter secret (`CAMEO_FRONT_SECRET`) nginx sends with every request:
        /// the worker sockets are open to nginx's user, and so to any other process running as
        /// it; a request without the secret gets nothing. Empty only in `defaults`.
        public var fastCGISecret: String
        /// The secret being rotated out (`nginx.fastcgi_previous_secret`): still admitted, never
        /// sent by nginx. README, "Rotating keys and secrets".
        public var previousFastCGISecret: String? = nil
        /// nginx's buffer folder for upload bodies (`client_body_temp_path`); its own
        /// file system can bound it (see README).
        public var uploadBufferPath: String
        /// Seconds between two reads of a body or header before nginx gives up on the client
        /// (`client_body_timeout`, `client_header_timeout`; also `send_timeout`).
        public var bodyTimeoutSeconds: Int
        public var headerTimeoutSeconds: Int
        /// Open connections one address may hold on Cameo's locations.
        public var connectionsPerIP: Int
        /// Upload bodies nginx receives at once, from everyone: with the byte cap, what the
        /// upload buffer can hold.
        public var concurrentUploads: Int
        /// Whether 127.0.0.0/8 and ::1 skip the per-IP limits (local health checks, load tests).
        public var exemptLoopback: Bool
        /// The folder of the site's own logs, `cameo-access.log` and `cameo-error.log`
        /// (`nginx.log_directory`).
        public var logDirectory: String

        public static let defaults = FrontSettings(
            fastCGISecret: "", uploadBufferPath: "/var/lib/cameo/upload-buffer", bodyTimeoutSeconds: 60, headerTimeoutSeconds: 20,
            connectionsPerIP: 32, concurrentUploads: 128, exemptLoopback: true, logDirectory: "/var/log/nginx")
    }

    /// Prometheus metrics (`metrics.*`): workers and `cameoctl` report events to the host's one
    /// collector, `cameo-metrics`, which nginx's `/metrics` location reaches.
    public struct MetricsSettings: Sendable {
        /// The collector's datagram socket (`metrics.events_socket`); nil when metrics are off
        /// (`metrics.enabled = false`).
        public var eventsSocket: String?
        /// Who may scrape `/metrics` through nginx (`metrics.allow`): addresses or CIDR ranges.
        public var allow: [String]
        /// nginx's `listen` of the metrics server (`metrics.listen`): its own address and port,
        /// never the public site's.
        public var listen: String = defaultListen
        public static let defaultListen = "127.0.0.1:9173"

        public static let defaultEventsSocket = "/run/cameo-metrics/events.sock"
        public static let defaultAllow = ["127.0.0.1", "::1"]
        public static let defaults = MetricsSettings(eventsSocket: defaultEventsSocket, allow: defaultAllow)
    }

    /// Prefix of the environment variables that override file keys.
    public static let environmentPrefix = "CAMEO_"
    /// Config file read when `CAMEO_CONFIG` is not set.
    public static let defaultPath = "/etc/cameo/cameo.conf"

    /// Where signing keys may be fetched from: https, or plain http to this host only. The
    /// host is compared whole (no `localhost.example.com`), and no user part is allowed (no
    /// `http://127.0.0.1@elsewhere`).
    static func isSafeKeySource(_ url: String) -> Bool {
        if url.hasPrefix("https://") { return url.count > "https://".count && !url.contains(" ") }
        guard url.hasPrefix("http://") else { return false }
        let authority = url.dropFirst("http://".count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { return false }
        let host: Substring
        if authority.hasPrefix("[") {
            guard let end = authority.firstIndex(of: "]") else { return false }
            host = authority[...end]
            let rest = authority[authority.index(after: end)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else { return false }
        } else {
            let parts = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = parts[0]
            guard parts.count == 1 || parts[1].allSatisfy(\.isNumber) else { return false }
        }
        return ["127.0.0.1", "[::1]", "localhost"].contains(String(host))
    }

    /// An address or range as nginx's `allow` takes it (`10.0.0.0/8`, `::1`), and nothing an
    /// nginx directive could be smuggled in with.
    static func isAddressOrRange(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else { return false }
        guard parts[0].contains(".") || parts[0].contains(":") else { return false }
        guard parts.count == 2 else { return true }
        return Int(parts[1]).map { (0...128).contains($0) } ?? false
    }

    /// A browser origin as its `Origin` header carries it: `http(s)://host[:port]`, lower-case,
    /// nothing after the authority. nginx's CORS map is rendered from these, so nothing else
    /// (quotes, spaces) may pass.
    static func isOrigin(_ text: String) -> Bool {
        guard let scheme = ["https://", "http://"].first(where: text.hasPrefix) else { return false }
        let authority = text.dropFirst(scheme.count)
        return !authority.isEmpty && authority.allSatisfy { ("a"..."z").contains($0) || $0.isNumber || ".-:[]".contains($0) }
    }

    /// An origin as browsers send it: lower-case, without the trailing `/` a URL would have
    /// (earlier releases took `https://App.example.com/` for the cookie check).
    static func normalizedOrigin(_ text: String) -> String {
        let lowered = text.lowercased()
        return lowered.hasSuffix("/") ? String(lowered.dropLast()) : lowered
    }

    /// The origin of a base URL: its scheme and authority (`http://127.0.0.1:8080/x` →
    /// `http://127.0.0.1:8080`).
    static func origin(of url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://") else { return url }
        return String(url[..<schemeEnd.upperBound]) + url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    }

    /// `ADDRESS:PORT` as nginx's `listen` takes it, an IPv6 address in brackets; nothing an
    /// nginx directive could be smuggled in with.
    static func isListenAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return false }
        let host = text[..<colon]
        if host.hasPrefix("[") { return host.hasSuffix("]") && isAddressOrRange(String(host.dropFirst().dropLast())) }
        return !host.isEmpty && host.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }
    }

    public static func environmentName(for key: String) -> String {
        environmentPrefix + key.uppercased().replacing(".", with: "_")
    }

    /// Loads the file named by `CAMEO_CONFIG` (or the default path, if it exists), applies
    /// environment overrides and validates.
    public static func load(environment: [String: String]) throws(ConfigError) -> Config {
        let file = try parseFile(at: environment["CAMEO_CONFIG"] ?? defaultPath, required: environment["CAMEO_CONFIG"] != nil)
        return try Config(values: file.values, environment: environment, source: file)
    }

    /// Builds and validates a configuration from already-parsed file values and the environment.
    /// A key in the file or a `CAMEO_<SECTION>_…` variable that is no setting is an error (a
    /// typo would otherwise leave the default in force, silently); `source` names lines.
    public init(values: [String: String], environment: [String: String], source: ConfigFile? = nil) throws(ConfigError) {
        let reader = Reader(file: values, environment: environment)
        publicBaseURL = try reader.url("public_base_url", default: "http://127.0.0.1:8080")
        cdnBaseURL = try reader.url("cdn_base_url", default: publicBaseURL)
        mediaRoot = try reader.absolutePath("media_root", default: "/var/lib/cameo/media")
        database = DatabaseSettings(
            socket: reader.string("database.socket").map { $0 },
            host: reader.string("database.host") ?? "localhost",
            port: try reader.int("database.port", default: 3306, range: 1...65535),
            user: reader.string("database.user") ?? "cameo",
            password: reader.string("database.password") ?? "",
            name: reader.string("database.name") ?? "cameo")
        if let socket = database.socket, !socket.hasPrefix("/") {
            throw ConfigError(key: "database.socket", problem: "must be an absolute path")
        }
        if SecretPolicy.isPlaceholder(database.password) {
            throw ConfigError(key: "database.password", problem: "is a placeholder; set the password of the database user")
        }
        auth = AuthSettings(
            algorithms: try reader.algorithms("auth.algorithms"),
            hs256Secret: reader.string("auth.hs256_secret"),
            publicKeyPEM: nil,
            publicKeyFile: try reader.absolutePath("auth.public_key_file"),
            jwksFile: try reader.absolutePath("auth.jwks_file"),
            jwksURL: reader.string("auth.jwks_url"),
            issuer: reader.string("auth.issuer"),
            audience: reader.string("auth.audience"),
            leewaySeconds: try reader.int("auth.leeway_seconds", default: 30, range: 0...300),
            allowedOrigins: (reader.list("auth.allowed_origins") ?? [Self.origin(of: publicBaseURL)]).map(Self.normalizedOrigin))
        if let bad = auth.allowedOrigins.first(where: { !Self.isOrigin($0) }) {
            throw ConfigError(key: "auth.allowed_origins", problem: "`\(bad)` is not an origin (scheme://host or scheme://host:port, no path)")
        }
        auth.requireTokenID = try reader.bool("auth.require_jti", default: true)
        auth.maxLifetimeSeconds = try reader.int("auth.max_token_lifetime_seconds", default: 86_400, range: 60...31_536_000)
        // HS256 is on only when listed, and a key is configured only for an algorithm that is:
        // a leftover secret must not quietly keep HS256 alive beside a public key.
        if reader.string("auth.hs256_keys") != nil {
            guard auth.hs256Secret == nil else {
                throw ConfigError(key: "auth.hs256_keys", problem: "is set beside auth.hs256_secret; keep one (a secret in hs256_keys needs an id)")
            }
            auth.hs256Keys = try reader.orderedKeyring("auth.hs256_keys")
        }
        let hasHS256Key = auth.hs256Secret != nil || !auth.hs256Keys.isEmpty
        if auth.algorithms.contains(.hs256) {
            guard hasHS256Key else {
                throw ConfigError(key: "auth.hs256_secret", problem: "auth.algorithms lists HS256, so this secret (or auth.hs256_keys) is required")
            }
            if let secret = auth.hs256Secret { try SecretPolicy.check(secret, key: "auth.hs256_secret") }
        } else if hasHS256Key {
            let key = auth.hs256Secret != nil ? "auth.hs256_secret" : "auth.hs256_keys"
            throw ConfigError(key: key, problem: "is set but auth.algorithms does not list HS256; remove it or list HS256")
        }
        let publicKeyAlgorithms = auth.algorithms.subtracting([.hs256])
        if auth.publicKeyFile != nil && auth.jwksFile != nil {
            throw ConfigError(key: "auth.jwks_file", problem: "is set beside auth.public_key_file; keep one")
        }
        let publicKeySource = auth.publicKeyFile != nil ? "auth.public_key_file" : auth.jwksFile != nil ? "auth.jwks_file" : nil
        if !publicKeyAlgorithms.isEmpty && publicKeySource == nil {
            throw ConfigError(
                key: "auth.public_key_file",
                problem: "auth.algorithms lists \(publicKeyAlgorithms.map(\.rawValue).sorted().joined(separator: ", ")), which need this key (or auth.jwks_file)")
        }
        if publicKeyAlgorithms.isEmpty, let publicKeySource {
            throw ConfigError(key: publicKeySource, problem: "is set but auth.algorithms lists neither RS256 nor ES256")
        }
        if let url = auth.jwksURL {
            guard auth.jwksFile != nil else { throw ConfigError(key: "auth.jwks_url", problem: "needs auth.jwks_file, the file it is fetched into") }
            guard Self.isSafeKeySource(url) else {
                throw ConfigError(key: "auth.jwks_url", problem: "must be https:// (plain http only to 127.0.0.1, [::1] or localhost): the keys decide who is signed in")
            }
        }
        presign = PresignSettings(
            keys: try reader.keyring("presign.keys"),
            activeKeyID: reader.string("presign.active_key") ?? "",
            ttlSeconds: try reader.int("presign.ttl_seconds", default: 300, range: 5...3600),
            region: reader.string("presign.region") ?? "cameo")
        if presign.activeKeyID.isEmpty, presign.keys.count == 1 { presign.activeKeyID = presign.keys.keys.first! }
        tusLifetimeSeconds = try reader.int("tus.lifetime_seconds", default: 86_400, range: 5...604_800)
        tusPartialUploadsPerUser = try reader.int("tus.partial_uploads_per_user", default: 3, range: 1...100)
        guard presign.keys[presign.activeKeyID] != nil else {
            throw ConfigError(key: "presign.active_key", problem: "must name one of the ids in presign.keys")
        }
        limits = Limits(
            maxUploadBytes: try reader.int("limits.max_upload_bytes", default: Limits.defaults.maxUploadBytes, range: 1024...100_000_000),
            maxSide: try reader.int("limits.max_side", default: Limits.defaults.maxSide, range: 64...16384),
            maxPixels: try reader.int("limits.max_pixels", default: Limits.defaults.maxPixels, range: 4096...100_000_000),
            allowedTypes: reader.list("limits.allowed_types") ?? Limits.defaults.allowedTypes,
            rejectAnimated: Limits.defaults.rejectAnimated)
        switch reader.string("limits.animated") ?? "first_frame" {
        case "first_frame": limits.rejectAnimated = false
        case "reject": limits.rejectAnimated = true
        case let other: throw ConfigError(key: "limits.animated", problem: "`\(other)` is not first_frame or reject")
        }
        let known: Set = ["image/jpeg", "image/png", "image/webp"]
        if let unknown = limits.allowedTypes.first(where: { !known.contains($0) }) {
            throw ConfigError(key: "limits.allowed_types", problem: "\(unknown) is not a type Cameo can decode")
        }
        output = OutputSettings(
            sizes: try reader.intList("output.sizes", default: [512, 256, 128, 64], range: 16...1024),
            webpQuality: try reader.int("output.webp_quality", default: 80, range: 1...100))
        rateLimits = RateLimits(
            uploadsPerMinute: try reader.int("rate.uploads_per_minute", default: 5, range: 1...10_000),
            deletesPerMinute: try reader.int("rate.deletes_per_minute", default: 10, range: 1...10_000))
        guard let mode = ScannerSettings.Mode(rawValue: reader.string("scanner.mode") ?? "clamd") else {
            throw ConfigError(key: "scanner.mode", problem: "must be clamd or external")
        }
        scanner = ScannerSettings(
            mode: mode,
            clamdSocket: try reader.absolutePath("scanner.clamd_socket", default: "/run/clamav/clamd.ctl"),
            timeoutSeconds: try reader.int("scanner.timeout_seconds", default: 30, range: 1...600),
            maxAttempts: try reader.int("scanner.max_attempts", default: 6, range: 1...100),
            retryBaseSeconds: try reader.int("scanner.retry_base_seconds", default: 5, range: 1...3600),
            externalURL: reader.string("scanner.external_url"),
            callbackSecret: reader.string("scanner.callback_secret"))
        if let secret = scanner.callbackSecret { try SecretPolicy.check(secret, key: "scanner.callback_secret") }
        if reader.string("scanner.callback_keys") != nil {
            guard scanner.callbackSecret == nil else {
                throw ConfigError(key: "scanner.callback_keys", problem: "is set beside scanner.callback_secret; keep one")
            }
            scanner.callbackKeys = try reader.orderedKeyring("scanner.callback_keys")
        }
        scanner.verdictTimeoutSeconds = try reader.int("scanner.verdict_timeout_seconds", default: 3600, range: 1...86_400)
        if mode == .external {
            // The announcer speaks plain HTTP (a local service, or a TLS proxy in front of a remote one).
            guard let url = scanner.externalURL, url.hasPrefix("http://") else {
                throw ConfigError(key: "scanner.external_url", problem: "external mode needs the scanner's http:// URL")
            }
            guard !scanner.callbackSecrets.isEmpty else {
                throw ConfigError(
                    key: "scanner.callback_secret", problem: "external mode needs this secret (or scanner.callback_keys); generate one with `cameoctl generate-secret`")
            }
        }
        let frontDefaults = FrontSettings.defaults
        front = FrontSettings(
            fastCGISecret: reader.string("nginx.fastcgi_secret") ?? "",
            uploadBufferPath: try reader.absolutePath("nginx.upload_buffer_path", default: frontDefaults.uploadBufferPath),
            bodyTimeoutSeconds: try reader.int("nginx.body_timeout_seconds", default: frontDefaults.bodyTimeoutSeconds, range: 1...600),
            headerTimeoutSeconds: try reader.int("nginx.header_timeout_seconds", default: frontDefaults.headerTimeoutSeconds, range: 1...600),
            connectionsPerIP: try reader.int("nginx.connections_per_ip", default: frontDefaults.connectionsPerIP, range: 1...10_000),
            concurrentUploads: try reader.int("nginx.concurrent_uploads", default: frontDefaults.concurrentUploads, range: 1...60_000),
            exemptLoopback: try reader.bool("nginx.exempt_loopback", default: frontDefaults.exemptLoopback),
            logDirectory: try reader.absolutePath("nginx.log_directory", default: frontDefaults.logDirectory))
        guard !front.fastCGISecret.isEmpty else {
            throw ConfigError(key: "nginx.fastcgi_secret", problem: "is required; generate one with `cameoctl generate-secret`")
        }
        try SecretPolicy.check(front.fastCGISecret, key: "nginx.fastcgi_secret")
        front.previousFastCGISecret = reader.string("nginx.fastcgi_previous_secret")
        if let previous = front.previousFastCGISecret { try SecretPolicy.check(previous, key: "nginx.fastcgi_previous_secret") }
        let eventsSocket = try reader.absolutePath("metrics.events_socket", default: MetricsSettings.defaultEventsSocket)
        metrics = MetricsSettings(
            eventsSocket: try reader.bool("metrics.enabled", default: true) ? eventsSocket : nil,
            allow: reader.list("metrics.allow") ?? MetricsSettings.defaultAllow)
        metrics.listen = reader.string("metrics.listen") ?? MetricsSettings.defaultListen
        guard Self.isListenAddress(metrics.listen) else {
            throw ConfigError(key: "metrics.listen", problem: "`\(metrics.listen)` is not ADDRESS:PORT (127.0.0.1:9173, [::1]:9173)")
        }
        if let address = metrics.allow.first(where: { !Self.isAddressOrRange($0) }) {
            throw ConfigError(key: "metrics.allow", problem: "`\(address)` is not an IPv4 or IPv6 address or CIDR range")
        }
        abandonedAfterSeconds = try reader.int("purge.abandoned_after_seconds", default: 86_400, range: 60...31_536_000)
        retention = Retention(
            uploadDays: try reader.int("retention.upload_days", default: 90, range: 1...3650),
            analyticsDays: try reader.int("retention.analytics_days", default: 365, range: 1...3650))
        maxRequestsPerWorker = try reader.int("worker.max_requests", default: 5000, range: 1...1_000_000)
        settingNames = reader.read
        try reader.refuseUnknown(source: source)
    }

    /// Parses `key = value` lines. Unknown keys are kept; `Reader` decides what is read.
    static func parseFile(at path: String, required: Bool) throws(ConfigError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            if required { throw ConfigError(at: "CAMEO_CONFIG", problem: "cannot read \(path)") }
            return ConfigFile(path: path, values: [:], lines: [:])
        }
        return try parse(bytes: Array(data), source: path)
    }

    /// Parses config text; `source` names it in errors. One `key = value` per line, LF or
    /// CRLF, an optional UTF-8 byte order mark; `#` starts a comment only at the start of a
    /// line (a secret may contain one), and values are taken as written, never unquoted. A
    /// key given twice, a line without `=` and a value in quotes are errors naming the line,
    /// never echoing the value.
    public static func parse(text: String, source path: String) throws(ConfigError) -> [String: String] {
        try parse(bytes: Array(text.utf8), source: path).values
    }

    static func parse(bytes: [UInt8], source path: String) throws(ConfigError) -> ConfigFile {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var values: [String: String] = [:]
        var lines: [String: Int] = [:]
        // Split on the byte: as Characters, "\r\n" is one and would not split on "\n".
        for (index, rawLine) in body.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = String(decoding: rawLine.last == 0x0D ? rawLine.dropLast() : rawLine, as: UTF8.self).trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(at: "\(path):\(number)", problem: "expected `key = value`")
            }
            let key = String(line[..<equals].trimmingWhitespace())
            let value = String(line[line.index(after: equals)...].trimmingWhitespace())
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" }) else {
                throw ConfigError(at: "\(path):\(number)", problem: "expected `key = value` with a key of letters, digits, `.` and `_`")
            }
            if let first = lines[key] {
                throw ConfigError(at: "\(path):\(number)", problem: "`\(key)` is set again (first on line \(first)); keep one")
            }
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                throw ConfigError(at: "\(path):\(number)", problem: "`\(key)`'s value is in quotes; values are taken as written, remove them")
            }
            values[key] = value
            lines[key] = number
        }
        return ConfigFile(path: path, values: values, lines: lines)
    }
}

/// A config file as read: its values, and the line each key is on (for error messages).
public struct ConfigFile: Sendable {
    public let path: String
    public let values: [String: String]
    public let lines: [String: Int]
}

/// Reads one key from the environment (first) or the file, converting and checking it.
private final class Reader {
    let file: [String: String]
    let environment: [String: String]
    /// Every key asked for: the settings there are.
    private(set) var read: Set<String> = []

    init(file: [String: String], environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    func string(_ key: String) -> String? {
        read.insert(key)
        let value = environment[Config.environmentName(for: key)] ?? file[key]
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// After every setting was read: a file key that none is, or a `CAMEO_` variable in a
    /// settings section (`CAMEO_AUTH_…`, `CAMEO_SCANNER_…`, or a top-level one such as
    /// `CAMEO_MEDIA_ROOT`) that none is, is a typo. Other `CAMEO_` variables belong to the tools
    /// (the dev stack's `CAMEO_STATE_DIR`, `CAMEO_PORT`, ...) and are not looked at.
    func refuseUnknown(source: ConfigFile?) throws(ConfigError) {
        for key in file.keys.sorted() where !read.contains(key) {
            let line = source.flatMap { file in file.lines[key].map { "\(file.path):\($0)" } }
            throw ConfigError(at: line ?? key, problem: "`\(key)` is not a Cameo setting\(Self.suggestion(for: key, among: read))")
        }
        let sections = Set(read.compactMap { key -> String? in
            let parts = key.split(separator: ".")
            return parts.count == 2 ? Config.environmentName(for: String(parts[0])) + "_" : nil
        })
        let names = Dictionary(uniqueKeysWithValues: read.map { (Config.environmentName(for: $0), $0) })
        for variable in environment.keys.sorted() where variable.hasPrefix(Config.environmentPrefix) && names[variable] == nil {
            guard sections.contains(where: { variable.hasPrefix($0) }) else { continue }
            let close = names.keys.filter { Self.editDistance(Array($0), Array(variable), atMost: 2) <= 2 }
            let hint = close.count == 1 ? "; did you mean `\(names[close[0]]!)`?" : ""
            throw ConfigError(at: "environment \(variable)", problem: "is not a Cameo setting\(hint)")
        }
    }

    /// ", did you mean `x`?" for the one setting within two edits of `key`, else "".
    static func suggestion(for key: String, among known: Set<String>) -> String {
        let close = known.filter { editDistance(Array($0), Array(key), atMost: 2) <= 2 }
        return close.count == 1 ? "; did you mean `\(close.first!)`?" : ""
    }

    /// Levenshtein distance, giving up (returning `limit + 1`) once it must exceed `limit`.
    static func editDistance(_ a: [Character], _ b: [Character], atMost limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            if current.min()! > limit { return limit + 1 }
            previous = current
        }
        return previous[b.count]
    }

    func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let text = string(key) else { return fallback }
        guard let value = Int(text) else { throw ConfigError(key: key, problem: "`\(text)` is not a whole number") }
        guard range.contains(value) else {
            throw ConfigError(key: key, problem: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func bool(_ key: String, default fallback: Bool) throws(ConfigError) -> Bool {
        switch string(key) {
        case nil: return fallback
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other?: throw ConfigError(key: key, problem: "`\(other)` is not true or false")
        }
    }

    func list(_ key: String) -> [String]? {
        string(key).map { $0.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty } }
    }

    func intList(_ key: String, default fallback: [Int], range: ClosedRange<Int>) throws(ConfigError) -> [Int] {
        guard let items = list(key) else { return fallback }
        var values: [Int] = []
        for item in items {
            guard let value = Int(item), range.contains(value) else {
                throw ConfigError(key: key, problem: "`\(item)` is not a size in \(range.lowerBound)...\(range.upperBound)")
            }
            values.append(value)
        }
        guard !values.isEmpty else { throw ConfigError(key: key, problem: "needs at least one size") }
        return values.sorted(by: >)
    }

    func url(_ key: String, default fallback: String) throws(ConfigError) -> String {
        let value = string(key) ?? fallback
        guard value.hasPrefix("http://") || value.hasPrefix("https://"), URL(string: value)?.host != nil else {
            throw ConfigError(key: key, problem: "`\(value)` is not an http(s) URL")
        }
        return value.hasSuffix("/") ? String(value.dropLast()) : value
    }

    func absolutePath(_ key: String, default fallback: String) throws(ConfigError) -> String {
        let value = string(key) ?? fallback
        guard value.hasPrefix("/") else { throw ConfigError(key: key, problem: "must be an absolute path") }
        return value
    }

    /// A comma-separated list of JWT algorithms; required, so that none is on by accident.
    func algorithms(_ key: String) throws(ConfigError) -> Set<JWTAlgorithm> {
        guard let names = list(key), !names.isEmpty else {
            throw ConfigError(key: key, problem: "is required: the algorithms of your application's tokens (HS256, RS256, ES256)")
        }
        var algorithms: Set<JWTAlgorithm> = []
        for name in names {
            guard let algorithm = JWTAlgorithm(rawValue: name.uppercased()) else {
                throw ConfigError(key: key, problem: "`\(name)` is not HS256, RS256 or ES256")
            }
            algorithms.insert(algorithm)
        }
        return algorithms
    }

    /// An optional absolute path.
    func absolutePath(_ key: String) throws(ConfigError) -> String? {
        guard let value = string(key) else { return nil }
        guard value.hasPrefix("/") else { throw ConfigError(key: key, problem: "must be an absolute path") }
        return value
    }

    /// `id:secret` pairs separated by commas.
    func keyring(_ key: String) throws(ConfigError) -> [String: String] {
        var keys: [String: String] = [:]
        for (id, secret) in try orderedKeyring(key) { keys[id] = secret }
        return keys
    }

    /// `id:secret[,id:secret...]`, in the order written.
    func orderedKeyring(_ key: String) throws(ConfigError) -> [(id: String, secret: String)] {
        guard let items = list(key) else { throw ConfigError(key: key, problem: "is required (id:secret[,id:secret...])") }
        var keys: [(id: String, secret: String)] = []
        for item in items {
            guard let colon = item.firstIndex(of: ":") else { throw ConfigError(key: key, problem: "an entry lacks `id:`") }
            let id = String(item[..<colon])
            let secret = String(item[item.index(after: colon)...])
            guard !id.isEmpty, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ConfigError(key: key, problem: "key ids may hold only letters, digits, - and _")
            }
            try SecretPolicy.check(secret, key: key, subject: "the secret of key `\(id)`")
            guard !keys.contains(where: { $0.id == id }) else { throw ConfigError(key: key, problem: "key id `\(id)` appears twice") }
            keys.append((id: id, secret: secret))
        }
        return keys
    }
}
