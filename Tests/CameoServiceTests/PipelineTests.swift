import CameoCore
import CameoMetrics
import CameoService
import CameoSystem
import CameoTesting
import Foundation
import MediaStore
import Synchronization
import Testing

/// The upload pipeline through the real router and handlers, in process, on the in-memory
/// store: one test per transition of the state machine and per refusal. No MariaDB, nginx or
/// clamd; a scripted scanner and a manual clock.
@Suite struct PipelineTests {
    let photo = TestImages.png(width: 96, height: 64)

    func record(_ harness: ServiceHarness, _ id: MediaID) throws -> MediaRecord { try #require(try harness.store.media(id: id)) }

    // MARK: claim → startScan → markClean → publish

    @Test func aCleanUploadIsPublishedAndLeavesNothingBehind() throws {
        let harness = try ServiceHarness()
        let (id, response) = try harness.upload("alice", photo)
        #expect(response.status == 200)
        let body = try ServiceHarness.json(response)
        #expect(body["state"] as? String == "ready")
        let url = try #require(body["avatar_url"] as? String)
        #expect(url.hasPrefix("http://127.0.0.1:8080/profile-media/alice/avatar.webp?v="))
        #expect((body["variants"] as? [String: String])?.keys.sorted() == ["128", "256", "512", "64"])

        try #expect(record(harness, id).state == .ready)
        let pointer = try #require(try harness.store.avatar(userID: "alice"))
        #expect(pointer.mediaID == id && pointer.sizes == [512, 256, 128, 64])
        #expect((harness.store as? InMemoryMediaStore)?.events == [id])
        #expect((harness.store as? InMemoryMediaStore)?.scanFacts(id)?.scanned == true)
        #expect(harness.names(in: "quarantine").isEmpty && harness.names(in: "incoming").isEmpty)
        // The stable names link to the version's own files.
        let folder = harness.root.userFolder("alice")
        #expect(FileSystem.readLink(folder + "/avatar.webp") == "avatar.\(pointer.version).webp")
        #expect(FileSystem.readLink(folder + "/avatar-64.webp") == "avatar-64.\(pointer.version).webp")
        #expect(harness.names(in: "profile-media/alice").count == 8)
    }

    @Test func theMultipartUploadTakesTheSamePipeline() throws {
        let harness = try ServiceHarness()
        let response = try harness.postAvatar("bob", photo, crop: #"{"x":0,"y":0,"size":64}"#)
        #expect(response.status == 200)
        try #expect(harness.store.avatar(userID: "bob") != nil)
        #expect(harness.names(in: "quarantine").isEmpty && harness.names(in: "incoming").isEmpty)
    }

    // MARK: markInfected

    @Test func anInfectedUploadIsRejectedAndTheOldAvatarStays() throws {
        let harness = try ServiceHarness()
        let (first, _) = try harness.upload("carol", photo)
        harness.scanner.answer = .infected("Test.EICAR")
        let (id, response) = try harness.upload("carol", TestImages.png(width: 80, height: 80))
        #expect(response.status == 422 && ServiceHarness.code(response) == "infected")
        let media = try record(harness, id)
        #expect(media.state == .rejected && media.rejectReason == .infected)
        #expect((harness.store as? InMemoryMediaStore)?.scanFacts(id)?.signature == "Test.EICAR")
        try #expect(harness.store.avatar(userID: "carol")?.mediaID == first)
        #expect(harness.names(in: "quarantine").isEmpty)
    }

    // MARK: deferScan, leaseScan: the scanner down, then back

    @Test func aScannerThatIsDownLeavesTheUploadWaitingUntilTheRetrierPublishesIt() throws {
        let harness = try ServiceHarness(settings: ["scanner.retry_base_seconds": "5"])
        harness.scanner.answer = .down
        let (id, response) = try harness.upload("dave", photo)
        #expect(response.status == 202)
        try #expect(ServiceHarness.json(response)["state"] as? String == "scanning")
        var media = try record(harness, id)
        #expect(media.state == .scanning && media.scanAttempts == 1 && media.nextScanAt == harness.clock.epochSeconds + 5)
        #expect(harness.names(in: "quarantine") == [id.rawValue], "the bytes wait for the retry")
        #expect(harness.profile("GET", "dave").status == 404, "nothing is published before a verdict")

        // Not due yet: nothing happens.
        try #expect(harness.service.retrier.retryDue() == 0)
        harness.scanner.answer = .clean
        harness.clock.advance(seconds: 5)
        try #expect(harness.service.retrier.retryDue() == 1)
        media = try record(harness, id)
        #expect(media.state == .ready)
        try #expect(harness.store.avatar(userID: "dave")?.mediaID == id)
        #expect(harness.names(in: "quarantine").isEmpty)
    }

    @Test func theRetrierGivesUpAfterTheLastAttempt() throws {
        let harness = try ServiceHarness(settings: ["scanner.max_attempts": "3", "scanner.retry_base_seconds": "1"])
        harness.scanner.answer = .down
        let (id, _) = try harness.upload("erin", photo)
        harness.clock.advance(seconds: 1)
        try #expect(harness.service.retrier.retryDue() == 1)
        try #expect(record(harness, id).scanAttempts == 2)
        harness.clock.advance(seconds: 2)  // backoff doubled
        try #expect(harness.service.retrier.retryDue() == 1)
        let media = try record(harness, id)
        #expect(media.state == .rejected && media.rejectReason == .scanFailed)
        #expect(harness.names(in: "quarantine").isEmpty)
        harness.clock.advance(seconds: 100)
        try #expect(harness.service.retrier.retryDue() == 0)
        #expect(harness.scanner.scans == 3)
    }

    @Test func aRetryWhoseBytesWereSweptRejectsTheUpload() throws {
        let harness = try ServiceHarness(settings: ["scanner.retry_base_seconds": "1"])
        harness.scanner.answer = .down
        let (id, _) = try harness.upload("frank", photo)
        FileSystem.remove(harness.root.quarantined(id))
        harness.clock.advance(seconds: 1)
        _ = try harness.service.retrier.retryDue()
        try #expect(record(harness, id).rejectReason == .scanFailed)
    }

    // MARK: awaitVerdict and the external scanner's callback

    @Test func anExternalScannersVerdictsMoveTheUploadAndReplaysChangeNothing() throws {
        let harness = try ServiceHarness(settings: ["scanner.mode": "external"])
        harness.scanner.answer = .external
        let (clean, first) = try harness.upload("gina", photo)
        #expect(first.status == 202)
        try #expect(record(harness, clean).nextScanAt == nil, "no retry is due while a verdict is awaited")
        let published = harness.callback(clean, result: "clean")
        try #expect(published.status == 200 && (ServiceHarness.json(published))["state"] as? String == "ready")
        #expect(ServiceHarness.code(harness.callback(clean, result: "infected", signature: "Late")) == "already_decided")
        try #expect(record(harness, clean).state == .ready)

        let (infected, _) = try harness.upload("gina", photo)
        let rejected = harness.callback(infected, result: "infected", signature: "Eicar")
        try #expect(rejected.status == 200 && (ServiceHarness.json(rejected))["state"] as? String == "rejected")
        try #expect(record(harness, infected).rejectReason == .infected)
        try #expect(harness.store.avatar(userID: "gina")?.mediaID == clean)

        let (undecided, _) = try harness.upload("gina", photo)
        let again = harness.callback(undecided, result: "error")
        try #expect((ServiceHarness.json(again))["state"] as? String == "scanning")
        try #expect(record(harness, undecided).scanAttempts == 1)
        #expect(harness.names(in: "quarantine") == [undecided.rawValue])
    }

    /// An `error` verdict re-queues the scan and counts an attempt, so one captured and sent
    /// again inside the timestamp window could keep an upload from ever being scanned. Each
    /// signed callback is taken once; the scanner's next real one still is.
    @Test func aCallbackIsAcceptedOnceAndAReplayChangesNothing() throws {
        let harness = try ServiceHarness(settings: ["scanner.mode": "external"])
        harness.scanner.answer = .external
        let (id, _) = try harness.upload("ivan", photo)
        #expect(harness.callback(id, result: "error").status == 200)
        #expect(ServiceHarness.code(harness.callback(id, result: "error")) == "replayed_callback")
        try #expect(record(harness, id).scanAttempts == 1)
        harness.clock.advance(seconds: 1)
        // A callback that failed on Cameo's side is not a replay when the scanner sends it again.
        let store = try #require(harness.store as? InMemoryMediaStore)
        store.fail(.markClean)
        #expect(harness.callback(id, result: "clean").status == 503)
        store.fail(nil)
        #expect(harness.callback(id, result: "clean").status == 200)
        try #expect(record(harness, id).state == .ready)
    }

    /// Rotating the callback secret: old and new both verify while the scanner switches over;
    /// the download links are signed with the first.
    @Test func callbackKeysRotateWithOverlap() throws {
        let old = "a1e26b225db64e8459ad73eded0ec1ad0d4530573758a117", new = "6e1cc5105e57ec36ba8887ee6c9e711266d851b8d3539837"
        let harness = try ServiceHarness(settings: ["scanner.mode": "external", "scanner.callback_secret": "", "scanner.callback_keys": "new:\(new),old:\(old)"])
        harness.scanner.answer = .external
        let (first, _) = try harness.upload("jill", photo)
        #expect(harness.callback(first, result: "clean", secret: old).status == 200)
        let (second, _) = try harness.upload("jill", photo)
        harness.clock.advance(seconds: 1)
        #expect(harness.callback(second, result: "clean", secret: new).status == 200)
        let (third, _) = try harness.upload("jill", photo)
        #expect(ServiceHarness.code(harness.callback(third, result: "clean", secret: String(repeating: "x", count: 40))) == "bad_signature")
    }

    /// The verdict deadline: an upload announced to a scanner that never answers is rejected
    /// by the sweeper after `scanner.verdict_timeout_seconds`, its bytes removed.
    @Test func anAnnouncedUploadWithoutAVerdictIsRejectedAfterTheDeadline() throws {
        let harness = try ServiceHarness(settings: ["scanner.mode": "external", "scanner.verdict_timeout_seconds": "600"])
        harness.scanner.answer = .external
        let (id, _) = try harness.upload("kim", photo)
        harness.clock.advance(seconds: 599)
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        try #expect(record(harness, id).state == .scanning)
        harness.clock.advance(seconds: 2)
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        try #expect(record(harness, id).rejectReason == .scanFailed)
        #expect(harness.names(in: "quarantine").isEmpty)
    }

    /// The database fails while a scan is being deferred (the scanner down too): the row
    /// cannot be moved, so the bytes stay with it instead of a `scanning` row whose file is
    /// gone; once the database answers, the sweeper settles both.
    @Test func aDatabaseFailureWhileDeferringAScanStrandsNeitherRowNorBytes() throws {
        let harness = try ServiceHarness(settings: ["scanner.verdict_timeout_seconds": "600"])
        harness.scanner.answer = .down
        let store = try #require(harness.store as? InMemoryMediaStore)
        store.goDown(atNext: .deferScan)
        let (id, response) = try harness.upload("lena", photo)
        #expect(response.status == 503)
        store.setReachable(true)
        try #expect(record(harness, id).state == .scanning)
        #expect(harness.names(in: "quarantine") == [id.rawValue])
        harness.clock.advance(seconds: 601)
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        try #expect(record(harness, id).rejectReason == .scanFailed)
        #expect(harness.names(in: "quarantine").isEmpty)
    }

    @Test func forgedStaleAndMalformedCallbacksAreRefused() throws {
        let harness = try ServiceHarness(settings: ["scanner.mode": "external"])
        harness.scanner.answer = .external
        let (id, _) = try harness.upload("hank", photo)
        #expect(ServiceHarness.code(harness.callback(id, result: "clean", secret: String(repeating: "x", count: 40))) == "bad_signature")
        #expect(ServiceHarness.code(harness.callback(id, result: "clean", skew: -600)) == "stale_timestamp")
        #expect(ServiceHarness.code(harness.callback(id, result: "maybe")) == "bad_result")
        #expect(ServiceHarness.code(harness.callback(MediaID.random(), result: "clean")) == "not_found")
        try #expect(record(harness, id).state == .scanning)
    }

    @Test func scannerCallbacksDoNotExistInClamdMode() throws {
        let harness = try ServiceHarness()
        #expect(harness.callback(MediaID.random(), result: "clean").status == 404)
    }

    // MARK: reject: every reason

    @Test(arguments: RejectReason.allCases) func eachRejectReasonIsAnsweredWithItsCodeAndLeavesNothing(_ reason: RejectReason) throws {
        let harness = try ServiceHarness(settings: ["limits.max_side": "2048", "limits.max_pixels": "1000000", "scanner.max_attempts": "1"])
        let (first, _) = try harness.upload("ivy", photo)
        var body = TestImages.png(width: 40, height: 40)
        var crop: [String: Int]? = nil
        var declared: Int? = nil
        switch reason {
        case .tooLarge: declared = 100  // the signed bound is smaller than the body
        case .badType: body = Array("<html><script>alert(1)</script></html>".utf8)
        case .badDimensions: body = TestImages.pngHeader(width: 3000, height: 10)
        case .pixelBomb: body = TestImages.pngHeader(width: 2000, height: 2000)
        case .corrupt: body = Array(body.prefix(body.count / 2))
        case .badCrop: crop = ["x": 30, "y": 30, "size": 30]
        case .infected: harness.scanner.answer = .infected("Test")
        case .scanFailed: harness.scanner.answer = .down
        }
        let presigned = harness.presign("ivy", length: declared ?? body.count, crop: crop)
        let id = MediaID(try ServiceHarness.json(presigned)["media_id"] as? String ?? "")!
        // A body over the signed bound arrives chunked (no length to refuse up front).
        let response = try harness.put(try harness.uploadURI(presigned), body, declaringLength: reason != .tooLarge)
        #expect(ServiceHarness.code(response) == reason.rawValue)
        #expect(response.status == (reason == .tooLarge ? 413 : reason == .badType ? 415 : 422))
        let media = try record(harness, id)
        #expect(media.state == .rejected && media.rejectReason == reason)
        #expect(harness.names(in: "quarantine").isEmpty && harness.names(in: "incoming").isEmpty)
        try #expect(harness.store.avatar(userID: "ivy")?.mediaID == first, "the previous avatar stays")
        let names = harness.names(in: "profile-media/ivy")
        #expect(names.count == 8 && names.allSatisfy { !$0.hasPrefix(".") }, "only the first avatar's files: \(names)")
    }

    // MARK: expire, unpublish

    @Test func theSweeperExpiresUnusedURLsAndRemovesAbandonedFiles() throws {
        let harness = try ServiceHarness()
        let store = try #require(harness.store as? InMemoryMediaStore)
        let presigned = harness.presign("jack", length: 1000)
        let id = MediaID(try ServiceHarness.json(presigned)["media_id"] as? String ?? "")!
        store.backdate(id, by: 2 * 86_400)
        let report = try Sweeper(store: store, config: harness.config, clock: harness.clock).sweep()
        #expect(report.expiredUploads == 1)
        try #expect(record(harness, id).state == .expired)
        // An expired URL can no longer be used.
        try #expect(harness.put(harness.uploadURI(presigned), photo, declaringLength: false).status == 409)
    }

    @Test func aRescanTakesDownAnAvatarANewSignatureDetects() throws {
        let harness = try ServiceHarness()
        let (id, _) = try harness.upload("kate", photo)
        harness.scanner.answer = .infected("Test.Rescan")
        let report = try Rescanner(store: harness.store, config: harness.config, scanner: harness.scanner).rescan(since: 0)
        #expect(report.unpublished.map(\.mediaID) == [id.rawValue])
        try #expect(harness.store.avatar(userID: "kate") == nil)
        try #expect(record(harness, id).state == .rejected)
        #expect(harness.names(in: "profile-media").isEmpty, "the folder is gone")
    }

    // MARK: Races of publish and delete

    /// The staging race of issue 9: a DELETE after the new version's files are written but
    /// before the publish commits removes every file the store does not name (the new ones
    /// too); the publish, committed after it, writes its own files again when it settles.
    @Test func aDeleteBetweenTheNewFilesAndTheCommitLeavesThePublishedAvatarWhole() throws {
        let deleting = Box<ServiceHarness?>(nil)
        let harness = try ServiceHarness(hooks: PipelineHooks(beforePublish: { _ in
            guard let harness = deleting.value else { return }
            deleting.value = nil
            #expect(harness.profile("DELETE", "mona").status == 204)
            #expect(harness.names(in: "profile-media/mona").isEmpty, "the delete removed the staged files")
        }))
        let (_, first) = try harness.upload("mona", photo)
        #expect(first.status == 200)
        deleting.value = harness
        let (id, response) = try harness.upload("mona", photo)
        #expect(response.status == 200)
        let pointer = try #require(try harness.store.avatar(userID: "mona"))
        #expect(pointer.mediaID == id)
        for size in pointer.sizes {
            #expect(harness.names(in: "profile-media/mona").contains("avatar\(size == pointer.sizes.max() ? "" : "-\(size)").\(pointer.version).webp"), "\(size)")
        }
        #expect(harness.profile("GET", "mona").status == 200)
    }

    @Test func aDeleteDuringAPublishLeavesNoAvatarAndNoFiles() throws {
        let deleting = Box<ServiceHarness?>(nil)
        let harness = try ServiceHarness(hooks: PipelineHooks(afterPublishCommit: { _ in
            // Between the publish's commit and its files: the user deletes the avatar.
            guard let harness = deleting.value else { return }
            deleting.value = nil
            #expect(harness.profile("DELETE", "liam").status == 204)
        }))
        deleting.value = harness
        let (id, response) = try harness.upload("liam", photo)
        #expect(response.status == 200)
        try #expect(harness.store.avatar(userID: "liam") == nil)
        try #expect(record(harness, id).state == .ready)
        #expect(harness.names(in: "profile-media/liam").isEmpty)
        #expect(harness.send("GET", "/api/v1/profile/me/avatar", headers: ["authorization": "Bearer \(harness.token("liam"))"]).status == 404)
    }

    @Test func aPublishThatCommitsLaterWinsWhicheverFinishesFirst() throws {
        let second = Box<ServiceHarness?>(nil)
        let laterID = Box<MediaID?>(nil)
        let harness = try ServiceHarness(hooks: PipelineHooks(afterPublishCommit: { _ in
            // The first publisher pauses after its commit; a second upload commits and
            // settles its files completely before the first goes on.
            guard let harness = second.value else { return }
            second.value = nil
            let (id, response) = try! harness.upload("mia", TestImages.png(width: 70, height: 70) { _, _ in (10, 200, 10) })
            #expect(response.status == 200)
            laterID.value = id
        }))
        second.value = harness
        let (_, response) = try harness.upload("mia", photo)
        #expect(response.status == 200)
        let pointer = try #require(try harness.store.avatar(userID: "mia"))
        #expect(pointer.mediaID == laterID.value)
        let folder = harness.root.userFolder("mia")
        for size in pointer.sizes {
            let name = size == 512 ? "avatar" : "avatar-\(size)"
            #expect(FileSystem.readLink("\(folder)/\(name).webp") == "\(name).\(pointer.version).webp")
            #expect(FileSystem.exists("\(folder)/\(name).webp"))
        }
    }
}

/// A value a `@Sendable` hook can read and change (tests run the hook on their own thread).
final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// The published files against the store: upgrades from the layout before versioned files,
/// repairs by the sweeper, and who may remove quarantined bytes.
@Suite struct MediaFilesTests {
    let photo = TestImages.png(width: 64, height: 64)

    @Test func theSweeperConvertsTheOldLayoutWithoutLosingABit() throws {
        let harness = try ServiceHarness()
        _ = try harness.upload("olga", photo)
        let pointer = try #require(try harness.store.avatar(userID: "olga"))
        let folder = harness.root.userFolder("olga")
        // The layout before: the current avatar's bytes as regular files under the stable names.
        var legacy: [String: [UInt8]] = [:]
        for name in harness.names(in: "profile-media/olga") { FileSystem.remove(folder + "/" + name) }
        for (index, size) in pointer.sizes.enumerated() {
            let name = index == 0 ? "avatar.webp" : "avatar-\(size).webp"
            legacy[name] = Array("old bytes of \(size)".utf8)
            try FileSystem.writeNew(legacy[name]!, to: folder + "/" + name, mode: 0o644)
        }
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        for (name, bytes) in legacy {
            let versioned = name.replacing(".webp", with: ".\(pointer.version).webp")
            #expect(FileSystem.readLink(folder + "/" + name) == versioned)
            #expect(try FileSystem.read(folder + "/" + versioned, limit: 1000) == bytes, "the old URL with ?v= serves the same bytes")
        }
    }

    @Test func aDeleteRemovesTheOldLayoutsFilesToo() throws {
        let harness = try ServiceHarness()
        _ = try harness.upload("pia", photo)
        let folder = harness.root.userFolder("pia")
        for name in harness.names(in: "profile-media/pia") { FileSystem.remove(folder + "/" + name) }
        try FileSystem.writeNew(Array("old".utf8), to: folder + "/avatar.webp", mode: 0o644)
        #expect(harness.profile("DELETE", "pia").status == 204)
        #expect(harness.names(in: "profile-media").isEmpty)
    }

    @Test func theSweeperRemovesEveryFileOfAUserWithoutAnAvatar() throws {
        let harness = try ServiceHarness()
        _ = try harness.upload("quinn", photo)
        // A delete committed, but its own settle never ran (the worker died).
        #expect(try harness.store.deleteAvatar(userID: "quinn") != nil)
        #expect(harness.names(in: "profile-media/quinn").count == 8)
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        #expect(harness.names(in: "profile-media").isEmpty)
    }

    @Test func aReplacedVersionsGracePeriodStartsWhenItIsReplaced() throws {
        let harness = try ServiceHarness()
        _ = try harness.upload("rose", photo)
        let old = try #require(try harness.store.avatar(userID: "rose"))
        let folder = harness.root.userFolder("rose")
        // Uploaded three days ago...
        for name in harness.names(in: "profile-media/rose") where name.contains(old.version) {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3 * 86_400)], ofItemAtPath: folder + "/" + name)
        }
        // ...replaced now: a sweep right after keeps it for the pages that still show it.
        _ = try harness.upload("rose", TestImages.png(width: 64, height: 64) { _, _ in (0, 0, 200) })
        _ = try Sweeper(store: harness.store, config: harness.config, clock: harness.clock).sweep()
        #expect(harness.names(in: "profile-media/rose").filter { $0.contains(old.version) }.count == 4)
    }

    @Test func aFailedClaimLeavesAnotherRequestsBytesAlone() throws {
        let store = InMemoryMediaStore()
        let harness = try ServiceHarness(store: store)
        harness.scanner.answer = .down
        let presigned = harness.presign("sam", length: photo.count)
        let id = MediaID(try ServiceHarness.json(presigned)["media_id"] as? String ?? "")!
        let stale = try #require(try store.media(id: id))  // read while still pending
        #expect(try harness.put(try harness.uploadURI(presigned), photo).status == 202)
        #expect(harness.names(in: "quarantine") == [id.rawValue])
        // A second request with the same URL, whose claim fails in the database.
        store.fail(.claim)
        let incoming = harness.root.incoming + "/second"
        try FileSystem.writeNew(photo, to: incoming)
        #expect(throws: StoreError.self) { try harness.service.pipeline.advance(stale, with: .body(.file(path: incoming), maxBytes: photo.count)) }
        store.fail(nil)
        #expect(harness.names(in: "quarantine") == [id.rawValue], "the first request's bytes stay")
        #expect(try store.media(id: id)?.state == .scanning)
    }

    @Test func anUploadCheckOfAPathItCannotReadIsRefusedInItsEnvelope() throws {
        let harness = try ServiceHarness()
        let response = harness.send("PUT", "//uploads/nonsense", documentURI: Route.verifyUploadLocation)
        #expect(response.status == 403 && response.header("X-Cameo-Error-Status") == "403")
        #expect(response.header("X-Cameo-Error-Body")?.contains("bad_signature") == true)
    }
}

/// Each maintenance command builds only what it needs.
@Suite struct MaintenanceTests {
    @Test func theSweeperRunsWhereTheTokenKeyCannotBeRead() throws {
        let harness = try ServiceHarness()
        let config = try Config(
            values: [
                "media_root": harness.root.path, "auth.algorithms": "RS256", "auth.public_key_file": "/nonexistent/jwt-public.pem",
                "presign.keys": "k1:a4f09e2c7b1d58e36f0a2c9d4b7e1f85c3a6e0d92b7f14c58a3e6d0b9f2c71", "nginx.fastcgi_secret": "9c4e1b7a2f0d83e56b1c94a7e2d05f3b8a6c1e9d47b20f5a3c8e61d9b4f07a2e",
            ],
            environment: [:])
        // The worker refuses to start, naming the key...
        #expect { _ = try Service(config: config, store: harness.store) } throws: { error in
            (error as? ConfigError)?.key == "auth.public_key_file"
        }
        // ...while the sweeper, which verifies no token, does its work.
        let presigned = harness.presign("tom", length: 100)
        let id = MediaID(try ServiceHarness.json(presigned)["media_id"] as? String ?? "")!
        try #require(harness.store as? InMemoryMediaStore).backdate(id, by: 2 * 86_400)
        #expect(try Sweeper(store: harness.store, config: config, clock: harness.clock).sweep().expiredUploads == 1)
    }
}

/// Every final state reaches the metrics once, whichever process causes it; a guarded change
/// that did not happen reports nothing.
@Suite struct MeteredStoreTests {
    final class Recorder: MetricsSink, @unchecked Sendable {
        let events = Mutex<[MetricEvent]>([])
        func record(_ event: MetricEvent) { events.withLock { $0.append(event) } }
    }

    func pending(_ store: any MediaStore, clock: ManualClock) throws -> MediaID {
        let id = MediaID.random()
        let upload = NewUpload(id: id, userID: "alice", declaredType: "image/png", declaredBytes: 10, expiresAt: clock.epochSeconds + 300, crop: nil)
        #expect(try store.createUpload(upload, unlessRevoked: nil, perMinute: 100) == .created)
        return id
    }

    @Test func rejectionsAndExpiriesAreCountedOnceWithTheirReason() throws {
        let clock = ManualClock()
        let recorder = Recorder()
        let store = MeteredStore(InMemoryMediaStore(clock: clock), metrics: recorder)
        let rejected = try pending(store, clock: clock)
        #expect(try store.apply(.claim(bytes: 10), to: rejected, from: .pendingUpload))
        #expect(try store.apply(.reject(.corrupt), to: rejected, from: .received))
        #expect(try !store.apply(.reject(.corrupt), to: rejected, from: .received))  // lost: no second count
        _ = try pending(store, clock: clock)
        _ = try pending(store, clock: clock)
        clock.advance(seconds: 3600)
        #expect(try store.expireUnused(createdBefore: clock.epochSeconds - 60) == 2)
        #expect(try store.expireUnused(createdBefore: clock.epochSeconds - 60) == 0)
        #expect(recorder.events.withLock { $0 } == [
            .finished(state: "rejected", reason: "corrupt", count: 1), .finished(state: "expired", reason: nil, count: 2),
        ])
    }

    @Test func aPublishedUploadReportsItsProcessingTimeAndReady() throws {
        let recorder = Recorder()
        let harness = try ServiceHarness(metrics: recorder)
        let (_, response) = try harness.upload("alice", TestImages.png(width: 96, height: 64))
        #expect(response.status == 200)
        let events = recorder.events.withLock { $0 }
        #expect(events.contains(.finished(state: "ready", reason: nil, count: 1)))
        #expect(events.contains { if case .processing = $0 { true } else { false } })
        #expect(events.contains { if case .scan(verdict: "clean", _) = $0 { true } else { false } })
        #expect(events.contains { if case .request(route: "upload", status: 200, _) = $0 { true } else { false } })
    }
}
