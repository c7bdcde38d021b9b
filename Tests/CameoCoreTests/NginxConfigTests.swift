import CameoSystem
import Testing
@testable import CameoCore

@Suite struct NginxConfigTests {
    static let repository: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func read(_ relative: String) throws -> String {
        String(decoding: try FileSystem.read(repository + "/" + relative, limit: 1 << 20), as: UTF8.self)
    }

    @Test func theShippedIncludesAreTheRenderOfTheDefaults() throws {
        for (name, text) in NginxConfig.snippets(limits: .defaults, front: .defaults, metrics: .defaults) {
            #expect(try Self.read("nginx/generated/" + name) == text, "nginx/generated/\(name) differs: run `cameoctl render-nginx --defaults --output nginx/generated`")
        }
    }

    @Test func theIncludesFollowTheLimits() {
        var limits = Config.Limits.defaults
        limits.maxUploadBytes = 8_000_000
        let snippets = Dictionary(uniqueKeysWithValues: NginxConfig.snippets(limits: limits, front: .defaults, metrics: .defaults).map { ($0.name, $0.text) })
        #expect(snippets["cameo-upload-body.conf"]?.contains("client_max_body_size 8000000;") == true)
        #expect(snippets["cameo-form-body.conf"]?.contains("client_max_body_size \(8_000_000 + 65_536);") == true)
        #expect(snippets["cameo-errors.conf"]?.contains(#""code":"too_large","message":"The upload is larger than 8000000 bytes.","limit":8000000"#) == true)
        // Every status the catalogue has is passed on by the upload-URL refusal.
        for status in Set(ErrorCode.allCases.map(\.status)) where status != 403 {
            #expect(snippets["cameo-errors.conf"]?.contains("return \(status) $cameo_denial_body") == true, "\(status)")
        }
    }

    @Test func theSiteTemplateRendersWithEveryPlaceholderFilled() throws {
        let paths = NginxConfig.SitePaths(
            listen: ["127.0.0.1:9", "[::1]:9"], serverName: NginxConfig.serverName(of: "https://avatars.example.com:8443/x"), mediaRoot: "/m",
            runDirectory: "/r", wwwRoot: "/w", generated: "/g", uploadBuffer: "/b")
        let site = try NginxConfig.site(template: try Self.read("nginx/sites-available/cameo.conf.in"), paths: paths)
        #expect(site.contains("    listen 127.0.0.1:9;\n    listen [::1]:9;\n") && site.contains("server_name avatars.example.com;"))
        #expect(site.contains("server unix:/r/fast.sock;") && site.contains("include /g/cameo-errors.conf;"))
        let listens = site.split(separator: "\n").filter { $0.trimmingWhitespace().hasPrefix("listen ") }
        #expect(!listens.contains { $0.contains("default_server") } && !site.contains("server_name _;"), "the site must coexist with Debian's default site")
        #expect(!site.contains("/var/lib/cameo") && !site.contains("/run/cameo/"), "a production path is written into the template")
        #expect(throws: NginxConfig.TemplateError.self) { try NginxConfig.site(template: "listen @LISTEN@; @OTHER@", paths: paths) }
    }

    @Test func theFrontSettingsRenderIntoTheIncludes() {
        var front = Config.FrontSettings.defaults
        let exempt = Dictionary(uniqueKeysWithValues: NginxConfig.snippets(limits: .defaults, front: front, metrics: .defaults).map { ($0.name, $0.text) })
        #expect(exempt["cameo-http.conf"]?.contains("127.0.0.0/8  1;") == true)
        front.exemptLoopback = false
        front.bodyTimeoutSeconds = 7
        front.connectionsPerIP = 3
        let strict = Dictionary(uniqueKeysWithValues: NginxConfig.snippets(limits: .defaults, front: front, metrics: .defaults).map { ($0.name, $0.text) })
        #expect(strict["cameo-http.conf"]?.contains("127.0.0.0/8") == false)
        #expect(strict["cameo-server.conf"]?.contains("client_body_timeout 7s;") == true)
        #expect(strict["cameo-upload-limits.conf"]?.contains("limit_conn cameo_connections 3;") == true)
        #expect(strict["cameo-upload-limits.conf"]?.contains("limit_conn cameo_upload_url 1;") == true)
        // The secret is in no shared include, and the defaults have none to write.
        #expect(NginxConfig.secretSnippet(front: .defaults) == nil)
        front.fastCGISecret = "9c4e1b7a2f0d83e56b1c94a7e2d05f3b"
        #expect(NginxConfig.secretSnippet(front: front)?.contains("fastcgi_param CAMEO_FRONT_SECRET \"9c4e1b7a2f0d83e56b1c94a7e2d05f3b\";") == true)
        #expect(!NginxConfig.snippets(limits: .defaults, front: front, metrics: .defaults).contains { $0.text.contains(front.fastCGISecret) })
    }

    /// A location that set a fastcgi_param of its own would inherit none of the server's, the
    /// front secret among them, and every request it passes would be refused by the workers.
    @Test func noLocationSetsAFastCGIParameterOfItsOwn() throws {
        let template = try Self.read("nginx/sites-available/cameo.conf.in")
        var depth = 0
        for line in template.split(separator: "\n") {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if code.contains("fastcgi_param") { #expect(depth == 1, "fastcgi_param inside a location: \(line)") }
            depth += code.filter { $0 == "{" }.count - code.filter { $0 == "}" }.count
        }
        let snippet = try Self.read("nginx/snippets/cameo-fastcgi.conf")
        #expect(!snippet.split(separator: "\n").contains { !$0.hasPrefix("#") && $0.contains("fastcgi_param") })
    }
}
