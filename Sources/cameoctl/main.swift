// cameoctl: the admin CLI. It reads the same config as the workers (CAMEO_CONFIG + CAMEO_*),
// so what it checks or mints is what the running stack accepts.
import ArgumentParser
import CameoCore
import CameoMetrics
import CameoService
import CameoSystem
import MariaDB
import MariaDBStore
import MediaStore

@main
struct CameoCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cameoctl",
        abstract: "Administer a Cameo installation.",
        version: CameoVersion.current,
        subcommands: [
            Migrate.self, CheckConfig.self, InitConfig.self, GenerateSecret.self, RenderNginx.self, Token.self, Revoke.self, ShowMedia.self,
            SignURL.self, ScanRetry.self, Sweep.self, Rescan.self, JWKSCommand.self, Stuck.self, Takedown.self, Erase.self, Prune.self,
        ])
}

func loadConfig() throws -> Config {
    do {
        return try Config.load(environment: SystemProcess.environment)
    } catch {
        throw configFailure(error)
    }
}

/// A configuration that cannot run: its message on standard error, and the workers' exit
/// status (78), so a unit or a script sees the same failure from either.
func configFailure(_ error: ConfigError) -> ExitCode {
    SystemProcess.writeError("cameoctl: \(error.description)")
    return ExitCode(ConfigError.exitStatus)
}

/// The store of a command that moves uploads (sweep, scan retries, rescans, takedowns): every
/// final state it causes reaches the metrics collector, labelled `ctl`.
func openMeteredStore(_ config: Config) -> MeteredStore {
    MeteredStore(openStore(config), metrics: commandMetrics(config))
}

func commandMetrics(_ config: Config) -> any MetricsSink {
    config.metrics.eventsSocket.flatMap { try? DatagramMetricsSink(path: $0, pool: "ctl") } ?? NoMetrics()
}

/// The store of the configured database; each command opens only what it uses.
func openStore(_ config: Config) -> MariaDBMediaStore {
    Connection.initializeLibrary()
    return MariaDBMediaStore(config.database)
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the SQL migrations that are not applied yet.",
        discussion: """
            Safe to run on every host of an upgrade at once: the files are applied under a lock \
            in the database that holds across hosts and Galera nodes; a second run waits for it \
            (--wait) and then finds nothing left to do. --status lists each file, applied or \
            pending, and exits 2 while any is pending.
            """)
    @Option(help: "Folder of the migration files.") var directory = "/usr/share/cameo/sql"
    @Flag(help: "Only show what is applied and what is pending.") var status = false
    @Option(help: "Seconds to wait for another host's migration to finish.") var wait = 120

    func run() throws {
        let config = try loadConfig()
        Connection.initializeLibrary()
        let migrator = Migrator(db: Connection(options: ConnectOptions(config.database)), directory: directory)
        if status {
            let report = try migrator.status()
            for (version, at) in report.applied { print("applied  \(version)  \(at)") }
            for version in report.pending { print("pending  \(version)") }
            for version in report.unknown { print("unknown  \(version)  (applied, but no file here: the database is newer than this release)") }
            if let lock = report.lockHolder { print("locked by \(lock.holder) until \(lock.until) UTC") }
            print(report.pending.isEmpty ? "schema is up to date" : "\(report.pending.count) pending")
            if !report.pending.isEmpty { throw ExitCode(2) }
            return
        }
        let applied = try migrator.migrate(holder: "\(SystemProcess.hostName):\(SystemProcess.id)", waitSeconds: wait)
        print(applied.isEmpty ? "schema is up to date" : "applied: \(applied.joined(separator: ", "))")
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration exactly as a worker does at start.")
    func run() throws {
        let config = try loadConfig()
        do {
            _ = try JWTVerifier(settings: config.auth)
        } catch let error as ConfigError {
            throw configFailure(error)
        }
        print("config ok: media_root=\(config.mediaRoot) public_base_url=\(config.publicBaseURL) presign keys=\(config.presign.keys.keys.sorted().joined(separator: ","))")
    }
}

func freshSecret() -> String { SecretPolicy.generate() }

struct GenerateSecret: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-secret", abstract: "Print a fresh secret (32 random bytes, hex) for auth.hs256_secret, presign.keys or scanner.callback_secret.")
    func run() { print(freshSecret()) }
}

struct InitConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-config",
        abstract: "Write a configuration for a new install, with freshly generated secrets.",
        discussion: """
            The token secret (HS256) and the database password are new; give the first to the host \
            application that mints the tokens, and create the database user with the second. The file \
            is written 0640 and never overwritten.
            """)
    @Option(help: "Where clients reach nginx, e.g. https://avatars.example.com.") var publicBaseURL: String
    @Option(help: "The file to write.") var output = Config.defaultPath

    func run() throws {
        guard !FileSystem.exists(output) else { throw ValidationError("\(output) exists; it is never overwritten") }
        let databasePassword = freshSecret()
        let text = """
            # Written by `cameoctl init-config`; every key is described in cameo.conf.example.
            public_base_url = \(publicBaseURL)
            media_root = /var/lib/cameo/media
            database.socket = /run/mysqld/mysqld.sock
            database.user = cameo
            database.password = \(databasePassword)
            database.name = cameo
            # Tokens of the host application, signed with this shared secret (or list RS256/ES256 and
            # set auth.public_key_file, and remove the secret).
            auth.algorithms = HS256
            auth.hs256_secret = \(freshSecret())
            presign.keys = k1:\(freshSecret())
            presign.active_key = k1
            # Sent by nginx with every request (render-nginx writes it into a root-only include).
            nginx.fastcgi_secret = \(freshSecret())

            """
        // Validated as the workers will read it, before it is written.
        _ = try Config(values: Config.parse(text: text, source: output), environment: [:])
        try FileSystem.writeNew(Array(text.utf8), to: output, mode: 0o640)
        print("wrote \(output); create the database user with:")
        print("  CREATE USER 'cameo'@'localhost' IDENTIFIED BY '<database.password from \(output)>'; GRANT ALL ON cameo.* TO 'cameo'@'localhost';")
    }
}

struct RenderNginx: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render-nginx",
        abstract: "Write the nginx includes that carry Cameo's limits and error bodies, and the site from its template.",
        discussion: """
            The includes (cameo-http.conf, cameo-server.conf, cameo-errors.conf, cameo-upload-body.conf, \
            cameo-form-body.conf, cameo-upload-limits.conf) come from the configuration (limits.*, nginx.*) and \
            the error catalogue; cameo-fastcgi-secret.conf (mode 0600: run this as root) carries \
            nginx.fastcgi_secret. Run this again after changing those keys, then reload nginx. With --site, the \
            site template is rendered too (media_root and nginx.upload_buffer_path from the configuration).
            """)
    @Option(help: "Folder for the generated includes.") var output: String
    @Option(help: "Also render this site template to this path.") var site: String?
    @Option(help: "The site template.") var template = "/usr/share/cameo/nginx/cameo.conf.in"
    @Option(help: "nginx `listen` of the site; repeat for several (default: 80 and [::]:80).") var listen: [String] = []
    @Option(help: "Folder of the pools' sockets.") var runDirectory = "/run/cameo"
    @Option(help: "Folder of the upload page.") var wwwRoot = "/usr/share/cameo/www"
    @Flag(help: "Render the built-in defaults instead of reading the configuration (the shipped copies).") var defaults = false

    func run() throws {
        var limits = Config.Limits.defaults
        var front = Config.FrontSettings.defaults
        var metrics = Config.MetricsSettings.defaults
        var mediaRoot = "/var/lib/cameo/media"
        var publicBaseURL = "https://avatars.example.com"
        var allowedOrigins: [String] = []
        if !defaults {
            let config = try loadConfig()
            limits = config.limits
            front = config.front
            metrics = config.metrics
            mediaRoot = config.mediaRoot
            publicBaseURL = config.publicBaseURL
            allowedOrigins = config.auth.allowedOrigins
        }
        try FileSystem.makeDirectory(output)
        for (name, text) in NginxConfig.snippets(
                limits: limits, front: front, metrics: metrics, allowedOrigins: allowedOrigins, runDirectory: runDirectory, generated: defaults ? "/etc/cameo/nginx" : output) { try replaceFile(output + "/" + name, with: text) }
        // Root-only: nginx reads it as root at start and reload, before dropping privileges.
        if let secret = NginxConfig.secretSnippet(front: front) { try replaceFile(output + "/" + NginxConfig.secretSnippetName, with: secret, mode: 0o600) }
        guard let site else { return }
        let paths = NginxConfig.SitePaths(
            listen: listen.isEmpty ? ["80", "[::]:80"] : listen, serverName: NginxConfig.serverName(of: publicBaseURL), mediaRoot: mediaRoot, runDirectory: runDirectory, wwwRoot: wwwRoot, generated: output, uploadBuffer: front.uploadBufferPath)
        let rendered = try NginxConfig.site(template: String(decoding: FileSystem.read(template, limit: 1 << 20), as: UTF8.self), paths: paths)
        try replaceFile(site, with: rendered)
    }

}

/// Writes a new file beside the old one and renames it over, so no reader (nginx, a worker)
/// ever sees half of it.
func replaceFile(_ path: String, with text: String, mode: UInt32 = 0o644) throws {
    let temporary = path + ".new"
    FileSystem.remove(temporary)
    try FileSystem.writeNew(Array(text.utf8), to: temporary, mode: mode, durable: true)
    try FileSystem.rename(temporary, to: path)
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mint an HS256 token the running stack accepts (development).")
    @Option(help: "User id (the token's sub).") var user: String
    @Option(help: "Lifetime in seconds.") var ttl = 3600

    func run() throws {
        let config = try loadConfig()
        // The first of auth.hs256_keys, named by its id, or the one auth.hs256_secret.
        guard let (keyID, secret) = config.auth.hs256Keys.first.map({ (Optional($0.id), $0.secret) }) ?? config.auth.hs256Secret.map({ (nil, $0) })
        else { throw ValidationError("neither auth.hs256_secret nor auth.hs256_keys is set") }
        guard JWTVerifier.isSafeUserID(user) else { throw ValidationError("--user must be 1-64 of A-Z a-z 0-9 _ -") }
        let minted = JWTMinter.hs256(
            secret: secret, keyID: keyID, userID: user, ttlSeconds: ttl, now: SystemClock().epochSeconds, issuer: config.auth.issuer, audience: config.auth.audience)
        print(minted.token)
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a token by its jti.")
    @Argument(help: "The token's jti.") var jti: String
    @Option(help: "When the token expires (epoch seconds); the row may be purged after.") var expiresAt = SystemClock().epochSeconds + 86_400 * 30

    func run() throws {
        let config = try loadConfig()
        try openStore(config).revoke(jti: jti, expiresAt: expiresAt)
        print("revoked \(jti)")
    }
}

struct ShowMedia: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show-media", abstract: "Print everything Cameo holds about one upload, a `column value` line each (- for none).")
    @Argument(help: "The media id (32 hex characters).") var id: String

    func run() throws {
        let config = try loadConfig()
        guard let mediaID = MediaID(id), let view = try openStore(config).operatorView(id: mediaID) else {
            SystemProcess.writeError("cameoctl: no upload \(id)")
            throw ExitCode(1)
        }
        for (column, value) in view { print("\(column) \(value ?? "-")") }
    }
}

struct Stuck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List uploads that are not finished (ready, rejected, expired) and no step touched for a while.",
        discussion: "One line per upload, oldest first: id, user, state, attempts, last change. Exit status 0 either way.")
    @Option(help: "Untouched for at least this many minutes.") var minutes = 30
    @Option(help: "At most this many.") var limit = 100

    func run() throws {
        let config = try loadConfig()
        let rows = try openStore(config).unfinished(untouchedSince: SystemClock().epochSeconds - minutes * 60, limit: limit)
        for row in rows {
            let value = { (name: String) in row.first { $0.column == name }?.value ?? "-" }
            print("\(value("id")) user=\(value("user_id")) state=\(value("state")) attempts=\(value("scan_attempts")) updated=\(value("updated_at"))")
        }
        if rows.isEmpty { print("no upload unfinished for \(minutes) minutes or more") }
    }
}

struct Takedown: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a user's avatar as an operator (its files and pointer), with a reason for the log.",
        discussion: "Run it as the workers' user (it removes files under media_root). The user can upload again.")
    @Argument(help: "The user id.") var user: String
    @Option(help: "Why, for the log line (a ticket, a complaint).") var reason: String

    func validate() throws { try requireUserID(user) }

    func run() throws {
        let config = try loadConfig()
        guard let removed = try CameoService.Takedown(store: openMeteredStore(config), config: config).run(userID: user, reason: reason) else {
            SystemProcess.writeError("cameoctl: \(user) has no avatar")
            throw ExitCode(1)
        }
        print("took down \(user)'s avatar \(removed.mediaID) (version \(removed.version))")
    }
}

struct Erase: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase everything Cameo holds about a user (an erasure request): avatar files, upload records, analytics, rate-limit hits.",
        discussion: """
            Run it as the workers' user (it removes files under media_root). Irreversible. The nginx \
            access log still has the user's avatar paths until logrotate drops it (README, "Retention"). \
            Revoked token ids and scanner callback signatures name no user and stay until they expire.
            """)
    @Argument(help: "The user id.") var user: String

    func validate() throws { try requireUserID(user) }

    func run() throws {
        let config = try loadConfig()
        let report = try Erasure(store: openMeteredStore(config), config: config).run(userID: user)
        print("erased \(user): \(report.uploads) upload record(s)" + (report.avatar.map { ", avatar \($0.mediaID) and its files" } ?? ", no avatar"))
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished uploads and analytics events past their retention (retention.upload_days, retention.analytics_days).",
        discussion: "Current avatars are never pruned. cameo-sweep.service runs it hourly after the sweep.")

    func run() throws {
        let config = try loadConfig()
        let pruned = try Pruner(store: openStore(config), config: config).prune()
        print("pruned \(pruned.uploads) finished upload(s) older than \(config.retention.uploadDays) days, \(pruned.analytics) analytics event(s) older than \(config.retention.analyticsDays) days")
    }
}

/// User ids name folders under profile-media/: the same rule as a token's subject.
func requireUserID(_ user: String) throws {
    guard JWTVerifier.isSafeUserID(user) else { throw ValidationError("a user id is 1-64 of A-Z a-z 0-9 _ -") }
}

struct SignURL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign-url",
        abstract: "Presign a PUT with given inputs and print the query (for comparing with other SigV4 signers).")
    @Option var host: String
    @Option var path: String
    @Option var contentType: String
    @Option var maxBytes: Int
    @Option var keyID: String
    @Option var secret: String
    @Option var region: String
    @Option(help: "Signing time, epoch seconds.") var time: Int
    @Option var expires = 300

    func run() throws {
        let signer = SigV4Presigner(keys: [keyID: secret], activeKeyID: keyID, region: region)
        print(
            signer.presignedQuery(
                for: .init(method: "PUT", host: host, path: path, contentType: contentType, maxBytes: maxBytes), now: time, expires: expires))
    }
}

struct ScanRetry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan-retry",
        abstract: "Retry the virus scans that are due (uploads that met a scanner which was down).",
        discussion: "Run it as the workers' user (it reads quarantine/). With --loop it keeps going, as the retrier service does.")
    @Flag(help: "Keep running, checking every --interval seconds.") var loop = false
    @Option(help: "Seconds between checks with --loop.") var interval = 2

    func run() throws {
        let config = try loadConfig()
        let retrier = ScanRetrier(store: openMeteredStore(config), config: config, metrics: commandMetrics(config))
        repeat {
            do {
                let tried = try retrier.retryDue()
                if !loop { print("retried \(tried) scan(s)") }
            } catch where loop {
                // The database may be down for a moment; the next round tries again.
                printError("scan-retry: \(error)")
            }
            if loop { SystemProcess.sleep(seconds: interval) }
        } while loop
    }
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove abandoned quarantine files and expire unused upload URLs (purge.abandoned_after_seconds).")
    func run() throws {
        let config = try loadConfig()
        let report = try Sweeper(store: openMeteredStore(config), config: config).sweep()
        print("expired \(report.expiredUploads) unused upload(s); removed \(report.removedFiles.count) file(s); rejected \(report.abandonedUploads) abandoned upload(s)")
        for path in report.removedFiles { print("  removed \(path)") }
        for user in report.unsettled { printError("sweep: the avatar files of \(user) could not be settled (see the log); next sweep tries again") }
        if !report.unsettled.isEmpty { throw ExitCode(2) }
    }
}

struct Rescan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scan published avatars again (after a signature update) and unpublish any that are now detected.")
    @Option(help: "Only avatars published since this date (YYYY-MM-DD, UTC).") var since: String?

    func run() throws {
        var epoch = 0
        if let since {
            guard let parsed = epochSeconds(isoDate: since) else { throw ValidationError("--since takes a date, YYYY-MM-DD") }
            epoch = parsed
        }
        let config = try loadConfig()
        let report = try Rescanner(store: openStore(config), config: config).rescan(since: epoch)
        print("scanned \(report.scanned) avatar(s); unpublished \(report.unpublished.count); could not scan \(report.unscannable.count)")
        for item in report.unpublished { print("  unpublished user=\(item.userID) media=\(item.mediaID) signature=\(item.signature)") }
        if !report.unscannable.isEmpty { throw ExitCode(2) }
    }
}

func printError(_ text: String) { SystemProcess.writeError(text) }

/// The identity provider's keys (`auth.jwks_file`), kept fresh by cameo-jwks-refresh: it
/// fetches `auth.jwks_url` with curl and hands the document to `install`, which replaces the
/// file only with one that holds usable keys. Workers notice the new file within a second.
struct JWKSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks", abstract: "The JWKS key file: where it comes from, and replacing it safely.",
        subcommands: [URL.self, Install.self])

    struct URL: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print auth.jwks_url and auth.jwks_file, one per line.")
        func run() throws {
            let config = try loadConfig()
            guard let url = config.auth.jwksURL, let file = config.auth.jwksFile else {
                throw ValidationError("auth.jwks_url and auth.jwks_file are not both set")
            }
            print(url)
            print(file)
        }
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a fetched JWKS document and, if it holds usable keys, make it auth.jwks_file.")
        @Argument(help: "The fetched document.") var document: String

        func run() throws {
            let config = try loadConfig()
            guard let target = config.auth.jwksFile else { throw ValidationError("auth.jwks_file is not set") }
            let bytes = try FileSystem.read(document, limit: JWKS.maxBytes + 1)
            let set: JWKS
            do { set = try JWKS(json: bytes) } catch { throw ValidationError("\(document) \(error.description); \(target) is unchanged") }
            // Public keys: readable by all, like the PEM a host application publishes.
            try replaceFile(target, with: String(decoding: bytes, as: UTF8.self), mode: 0o644)
            print("installed \(set.keys.count) key(s) into \(target): \(set.keys.map { $0.id ?? "(no kid)" }.joined(separator: ", "))")
        }
    }
}
