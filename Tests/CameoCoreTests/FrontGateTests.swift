import Testing
@testable import CameoCore

@Suite struct FrontGateTests {
    let current = "9c4e1b7a2f0d83e56b1c94a7e2d05f3b8a6c1e9d47b20f5a3c8e61d9b4f07a2e"
    let previous = "2b7f0e94c1d35a86e0f4b1c97d2a53e8f6b0c4d19a7e25f38c0b6d1e4a9f7c3b"
    var base: [String: String] {
        [
            "auth.algorithms": "HS256", "auth.hs256_secret": ConfigTests.hs256Secret,
            "presign.keys": "a:5d1e9b72c04af83e6b2d07c95f1a84e27c3f0b9e1d64a58c2e9f7b031da6c845", "nginx.fastcgi_secret": current,
        ]
    }

    func gate(_ values: [String: String]) throws -> FrontGate { FrontGate(try Config(values: values, environment: [:]).front) }

    func sending(_ secret: String?) -> [String: String] { secret.map { [FrontGate.parameter: $0] } ?? [:] }

    @Test func onlyTheConfiguredSecretIsAdmitted() throws {
        let gate = try gate(base)
        #expect(gate.admits(sending(current)))
        #expect(!gate.admits(sending(previous)) && !gate.admits(sending(nil)) && !gate.admits(sending("")))
        #expect(!gate.admits(sending(String(current.dropLast()))))
    }

    @Test func duringARotationThePreviousSecretIsAdmittedToo() throws {
        var values = base
        values["nginx.fastcgi_previous_secret"] = previous
        let gate = try gate(values)
        #expect(gate.admits(sending(current)) && gate.admits(sending(previous)))
        #expect(!gate.admits(sending("nonsense")))
        // The previous secret is held to the same rule as any secret.
        values["nginx.fastcgi_previous_secret"] = "changeme"
        #expect(throws: ConfigError.self) { try Config(values: values, environment: [:]) }
    }
}
