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
        for (name, text) in NginxConfig.snippets(limits: .defaults) {
            #expect(try Self.read("nginx/generated/" + name) == text, "nginx/generated/\(name) differs: run `cameoctl render-nginx --defaults --output nginx/generated`")
        }
    }

    @Test func theIncludesFollowTheLimits() {
        var limits = Config.Limits.defaults
        limits.maxUploadBytes = 8_000_000
        let snippets = Dictionary(uniqueKeysWithValues: NginxConfig.snippets(limits: limits).map { ($0.name, $0.text) })
        #expect(snippets["cameo-upload-body.conf"]?.contains("client_max_body_size 8000000;") == true)
        #expect(snippets["cameo-form-body.conf"]?.contains("client_max_body_size \(8_000_000 + 65_536);") == true)
        #expect(snippets["cameo-errors.conf"]?.contains(#""code":"too_large","message":"The upload is larger than 8000000 bytes.","limit":8000000"#) == true)
        // Every status the catalogue has is passed on by the upload-URL refusal.
        for status in Set(ErrorCode.allCases.map(\.status)) where status != 403 {
            #expect(snippets["cameo-errors.conf"]?.contains("return \(status) $cameo_denial_body") == true, "\(status)")
        }
    }

    @Test func theSiteTemplateRendersWithEveryPlaceholderFilled() throws {
        let paths = NginxConfig.SitePaths(listen: "127.0.0.1:9", mediaRoot: "/m", runDirectory: "/r", wwwRoot: "/w", generated: "/g")
        let site = try NginxConfig.site(template: try Self.read("nginx/sites-available/cameo.conf.in"), paths: paths)
        #expect(site.contains("listen 127.0.0.1:9;") && site.contains("server unix:/r/fast.sock;") && site.contains("include /g/cameo-errors.conf;"))
        #expect(!site.contains("/var/lib/cameo") && !site.contains("/run/cameo/"), "a production path is written into the template")
        #expect(throws: NginxConfig.TemplateError.self) { try NginxConfig.site(template: "listen @LISTEN@; @OTHER@", paths: paths) }
    }
}
