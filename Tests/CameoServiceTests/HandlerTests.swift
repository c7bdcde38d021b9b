import CameoCore
import CameoService
import CameoSystem
import CameoTesting
import MediaStore
import Testing

/// The handlers' refusals, in process: tokens, upload URLs, ownership, limits, routes, and
/// dependencies that are down.
@Suite struct HandlerTests {
    let photo = TestImages.png(width: 48, height: 48)

    // MARK: Tokens

    @Test func requestsWithoutAValidTokenAreRefused() throws {
        let harness = try ServiceHarness()
        #expect(ServiceHarness.code(harness.send("POST", "/users/me/avatar/upload", body: .bytes([]))) == "missing_token")
        #expect(ServiceHarness.code(harness.presign("a", length: 10, token: "not.a.token")) == "invalid_token")
        let forged = JWTMinter.hs256(secret: String(repeating: "x", count: 40), userID: "a", ttlSeconds: 60, now: harness.clock.epochSeconds, issuer: nil, audience: nil)
        #expect(ServiceHarness.code(harness.presign("a", length: 10, token: forged.token)) == "invalid_token")
        let expired = harness.token("a", ttl: 10)
        harness.clock.advance(seconds: 100)
        let response = harness.presign("a", length: 10, token: expired)
        #expect(response.status == 401 && ServiceHarness.code(response) == "token_expired")
    }

    @Test func aRevokedTokenIsRefusedEverywhere() throws {
        let harness = try ServiceHarness()
        let token = harness.token("a", jti: "revoke-me")
        #expect(harness.presign("a", length: 10, token: token).status == 201)
        try harness.store.revoke(jti: "revoke-me", expiresAt: harness.clock.epochSeconds + 600)
        #expect(ServiceHarness.code(harness.presign("a", length: 10, token: token)) == "token_revoked")
        let profile = harness.send("GET", "/api/v1/profile/me/avatar", headers: ["authorization": "Bearer \(token)"])
        #expect(ServiceHarness.code(profile) == "token_revoked")
    }

    @Test func cookieTokensNeedAnAllowedOrigin() throws {
        let harness = try ServiceHarness()
        let cookie = "access_token=\(harness.token("a"))"
        let body = RequestBody.bytes(Array(#"{"content_type":"image/png","content_length":10}"#.utf8))
        #expect(harness.send("POST", "/users/me/avatar/upload", headers: ["cookie": cookie, "origin": "http://127.0.0.1:8080"], body: body).status == 201)
        #expect(ServiceHarness.code(harness.send("POST", "/users/me/avatar/upload", headers: ["cookie": cookie, "origin": "https://evil.example"], body: body)) == "bad_origin")
        #expect(ServiceHarness.code(harness.send("POST", "/users/me/avatar/upload", headers: ["cookie": cookie], body: body)) == "bad_origin")
    }

    // MARK: Presign

    /// Presign keys rotate with overlap: a URL signed with the previous key (its id in the
    /// credential scope) is accepted while that key is listed, and refused once it is removed.
    @Test func uploadURLsSignedWithThePreviousKeyVerifyUntilItIsRemoved() throws {
        let current = "k1:a4f09e2c7b1d58e36f0a2c9d4b7e1f85c3a6e0d92b7f14c58a3e6d0b9f2c71"
        let previous = "k0:5e0c9a3f7b2d14e86a1f03c9d7b5e2a48f6c1d09e3b7a25f4c8e0d6b1a9f3c72"
        let rotating = try ServiceHarness(settings: ["presign.keys": "\(current),\(previous)", "presign.active_key": "k1"])
        let presigned = rotating.presign("rita", length: photo.count)
        let uri = try rotating.uploadURI(presigned)
        let path = String(uri.prefix { $0 != "?" })
        // The same URL as a worker still on the previous key would have signed it.
        let old = SigV4Presigner(keys: ["k0": String(previous.dropFirst(3))], activeKeyID: "k0", region: rotating.config.presign.region)
        let query = old.presignedQuery(
            for: .init(method: "PUT", host: "127.0.0.1:8080", path: path, contentType: "image/png", maxBytes: photo.count),
            now: rotating.clock.epochSeconds, expires: 300)
        #expect(rotating.verify(path + "?" + query, length: photo.count).status == 204)
        #expect(try rotating.put(path + "?" + query, photo).status == 200)

        let rotated = try ServiceHarness(settings: ["presign.keys": current])
        let again = try rotated.uploadURI(rotated.presign("rita", length: photo.count))
        let stale = SigV4Presigner(keys: ["k0": String(previous.dropFirst(3))], activeKeyID: "k0", region: rotated.config.presign.region)
        let stalePath = String(again.prefix { $0 != "?" })
        let staleQuery = stale.presignedQuery(
            for: .init(method: "PUT", host: "127.0.0.1:8080", path: stalePath, contentType: "image/png", maxBytes: photo.count),
            now: rotated.clock.epochSeconds, expires: 300)
        let refused = rotated.verify(stalePath + "?" + staleQuery, length: photo.count)
        #expect(refused.header("X-Cameo-Error-Code") == "bad_signature")
    }

    @Test func presignChecksTheDeclaredUploadUpFront() throws {
        let harness = try ServiceHarness()
        #expect(ServiceHarness.code(harness.presign("a", type: "image/gif", length: 10)) == "bad_type")
        #expect(ServiceHarness.code(harness.presign("a", length: 0)) == "bad_content_length")
        let tooLarge = harness.presign("a", length: 6_000_000)
        try #expect(tooLarge.status == 413 && (ServiceHarness.json(tooLarge)["error"] as? [String: Any])?["limit"] as? Int == 5_242_880)
        #expect(ServiceHarness.code(harness.presign("a", length: 10, crop: ["x": -1, "y": 0, "size": 5])) == "bad_crop")
        let auth = ["authorization": "Bearer \(harness.token("a"))"]
        #expect(ServiceHarness.code(harness.send("POST", "/users/me/avatar/upload", headers: auth, body: .bytes(Array("{".utf8)))) == "invalid_json")
        #expect(ServiceHarness.code(harness.send("POST", "/users/me/avatar/upload", headers: auth, body: .bytes(Array("{}".utf8)))) == "missing_field")
    }

    @Test func theSixthUploadInAMinuteIsRateLimited() throws {
        let harness = try ServiceHarness()
        for _ in 0..<5 { #expect(harness.presign("a", length: 10).status == 201) }
        let refused = harness.presign("a", length: 10)
        #expect(refused.status == 429 && refused.header("Retry-After") != nil)
        #expect(harness.presign("b", length: 10).status == 201)
        harness.clock.advance(seconds: 61)
        #expect(harness.presign("a", length: 10).status == 201)
    }

    // MARK: Upload URLs

    @Test func theAuthRequestCheckPassesAGoodURLAndNamesTheRealRefusal() throws {
        let harness = try ServiceHarness()
        let presigned = harness.presign("a", length: photo.count)
        let uri = try harness.uploadURI(presigned)
        #expect(harness.verify(uri, length: photo.count).status == 204)
        // Refusals are 403 for auth_request, with the client's real status and body in headers.
        let tooLong = harness.verify(uri, length: photo.count + 1)
        #expect(tooLong.status == 403 && tooLong.header("X-Cameo-Error-Status") == "413")
        try #expect(harness.put(uri, photo).status == 200)
        let used = harness.verify(uri, length: photo.count)
        #expect(used.header("X-Cameo-Error-Status") == "409" && used.header("X-Cameo-Error-Body")?.contains("url_used") == true)
    }

    @Test func tamperedAndExpiredURLsAreRefusedAndAURLIsSingleUse() throws {
        let harness = try ServiceHarness()
        let uri = try harness.uploadURI(harness.presign("a", length: photo.count))
        let tampered = String(uri.dropLast()) + (uri.hasSuffix("0") ? "1" : "0")
        try #expect(ServiceHarness.code(harness.put(tampered, photo)) == "bad_signature")
        try #expect(ServiceHarness.code(harness.put(uri, photo, type: "image/jpeg")) == "bad_signature", "the content type is signed")
        let other = try harness.uploadURI(harness.presign("a", length: photo.count))
        let moved = other.prefix(while: { $0 != "?" }) + uri.drop(while: { $0 != "?" })
        try #expect(ServiceHarness.code(harness.put(String(moved), photo)) == "bad_signature", "the path is signed")
        try #expect(harness.put(uri, photo).status == 200)
        try #expect(ServiceHarness.code(harness.put(uri, photo)) == "url_used")

        let late = try harness.uploadURI(harness.presign("a", length: photo.count))
        harness.clock.advance(seconds: 301)
        let expired = try harness.put(late, photo)
        #expect(expired.status == 403 && ServiceHarness.code(expired) == "url_expired")
    }

    @Test func expiryIsJudgedWhenTheRequestStarted() throws {
        let harness = try ServiceHarness()
        let slow = try harness.uploadURI(harness.presign("a", length: photo.count))
        let late = try harness.uploadURI(harness.presign("a", length: photo.count))
        // Both bodies finish arriving after the 300 s lifetime; the first began 10 s in.
        harness.clock.advance(seconds: 330)
        #expect(try harness.put(slow, photo, age: 320).status == 200)
        #expect(ServiceHarness.code(try harness.put(late, photo, age: 0)) == "url_expired")
    }

    @Test func theTokenCheckBeforeADirectUploadsBodyAnswersInItsEnvelope() throws {
        let harness = try ServiceHarness()
        let ok = harness.send("POST", "/api/v1/profile/me/avatar", headers: ["authorization": "Bearer \(harness.token("v"))"],
                              documentURI: Route.verifyTokenLocation)
        #expect(ok.status == 204)
        let refused = harness.send("POST", "/api/v1/profile/me/avatar", documentURI: Route.verifyTokenLocation)
        #expect(refused.status == 403 && refused.header("X-Cameo-Error-Status") == "401")
        #expect(refused.header("X-Cameo-Error-Body")?.contains("missing_token") == true)
    }

    // MARK: Ownership and lookups

    @Test func mediaStatusIsForItsOwnerOnly() throws {
        let harness = try ServiceHarness()
        let (id, _) = try harness.upload("owner", photo)
        let own = harness.status("owner", id)
        try #expect(own.status == 200 && (ServiceHarness.json(own))["state"] as? String == "ready")
        try #expect((ServiceHarness.json(own))["variants"] != nil)
        #expect(ServiceHarness.code(harness.status("someone-else", id)) == "forbidden")
        #expect(ServiceHarness.code(harness.status("owner", MediaID.random())) == "not_found")
    }

    @Test func theProfileShowsReplacesAndDeletesTheAvatar() throws {
        let harness = try ServiceHarness()
        #expect(ServiceHarness.code(harness.profile("GET", "p")) == "no_avatar")
        let (first, _) = try harness.upload("p", photo)
        let (second, _) = try harness.upload("p", TestImages.png(width: 50, height: 50) { _, _ in (200, 0, 0) })
        let current = try ServiceHarness.json(harness.profile("GET", "p"))
        #expect(current["media_id"] as? String == second.rawValue && first != second)
        let pointer = try #require(try harness.store.avatar(userID: "p"))
        #expect(current["avatar_url"] as? String == "http://127.0.0.1:8080/profile-media/p/avatar.webp?v=\(pointer.version)")
        // The replaced version's files stay for the sweeper; the delete removes everything.
        #expect(harness.names(in: "profile-media/p").count == 12)
        #expect(harness.profile("DELETE", "p").status == 204)
        #expect(harness.names(in: "profile-media").isEmpty)
        #expect(ServiceHarness.code(harness.profile("DELETE", "p")) == "no_avatar")
    }

    @Test func theEleventhDeleteInAMinuteIsRateLimited() throws {
        let harness = try ServiceHarness()
        for _ in 0..<10 { #expect(harness.profile("DELETE", "d").status == 404) }
        #expect(ServiceHarness.code(harness.profile("DELETE", "d")) == "rate_limited")
    }

    @Test func multipartBodiesWithoutAFileAreRefused() throws {
        let harness = try ServiceHarness()
        let response = harness.send(
            "POST", "/api/v1/profile/me/avatar", headers: ["authorization": "Bearer \(harness.token("m"))"], body: .bytes([]))
        #expect(ServiceHarness.code(response) == "missing_file")
        try #expect(ServiceHarness.code(harness.postAvatar("m", [])) == "missing_file")
        try #expect(ServiceHarness.code(harness.postAvatar("m", photo, crop: "nonsense")) == "bad_crop")
    }

    // MARK: Routes, methods, dependencies

    @Test func unknownRoutesAndWrongMethodsAreJSONErrors() throws {
        let harness = try ServiceHarness()
        #expect(ServiceHarness.code(harness.send("GET", "/nope")) == "not_found")
        #expect(ServiceHarness.code(harness.send("GET", "/users/me/avatar/upload")) == "method_not_allowed")
        #expect(ServiceHarness.code(harness.send("GET", "/uploads/\(MediaID.random())")) == "method_not_allowed")
        #expect(ServiceHarness.code(harness.send("GET", "/media/not-an-id")) == "not_found")
    }

    @Test func aStoreThatIsDownGives503WithTheRequestIDAndNoInternals() throws {
        let store = InMemoryMediaStore()
        let harness = try ServiceHarness(store: store)
        store.setReachable(false)
        let response = harness.presign("a", length: 10)
        #expect(response.status == 503 && response.header("Retry-After") == "5")
        let error = try #require(try ServiceHarness.json(response)["error"] as? [String: Any])
        #expect(error["code"] as? String == "unavailable" && error["request_id"] as? String == "test")
        #expect(!(error["message"] as? String ?? "").contains("in-memory"))
        let health = harness.send("GET", "/health/avatar")
        #expect(health.status == 503)
        try #expect(((ServiceHarness.json(health))["components"] as? [String: String])?["database"] == "down")
    }

    /// Readiness names a scanner that is down but stays 200 (`degraded`): uploads wait for it,
    /// and a shared scanner's outage must not take every host out of a load balancer.
    /// Liveness asks nothing, so it is 200 with the database gone too.
    @Test func healthNamesAScannerThatIsDownAndLivenessAsksNothing() throws {
        let harness = try ServiceHarness()
        #expect(harness.send("GET", "/health/avatar").status == 200)
        harness.scanner.answer = .down
        let health = harness.send("GET", "/health/avatar")
        #expect(health.status == 200)
        try #expect(ServiceHarness.json(health)["status"] as? String == "degraded")
        try #expect(((ServiceHarness.json(health))["components"] as? [String: String])?["scanner"] == "down")
        (harness.store as? InMemoryMediaStore)?.setReachable(false)
        #expect(harness.send("GET", "/health/avatar").status == 503)
        #expect(harness.send("GET", "/health/live").status == 200)
    }
}
