import CameoCore
import CameoSystem
import CameoTesting
import Foundation
import MediaStore
import Testing

@testable import CameoService

/// Resumable uploads in process: what the integration tests cannot stage through nginx (a
/// worker killed between its write and its commit, a file that lost bytes), the pool the
/// pre-check names, and the header formats.
@Suite struct TusTests {
    let photo = TestImages.png(width: 48, height: 48)

    func headers(_ harness: ServiceHarness, _ user: String, _ extra: [String: String] = [:]) -> [String: String] {
        ["authorization": "Bearer \(harness.token(user))", "tus-resumable": "1.0.0"].merging(extra) { $1 }
    }

    func create(_ harness: ServiceHarness, _ user: String, length: Int) throws -> MediaID {
        let response = harness.send(
            "POST", "/tus/",
            headers: headers(harness, user, ["upload-length": String(length), "upload-metadata": "filetype " + Data("image/png".utf8).base64EncodedString()]),
            documentURI: Route.tusCreateLocation)
        #expect(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        return try #require(response.header("Location").flatMap { MediaID($0.split(separator: "/").last.map(String.init) ?? "") })
    }

    /// A PATCH whose chunk nginx buffered, as the worker receives it (read into memory).
    func patch(_ harness: ServiceHarness, _ user: String, _ id: MediaID, at offset: Int, _ chunk: [UInt8]) throws -> HTTPResponse {
        let sent = ["content-type": TusHandler.chunkType, "upload-offset": String(offset), "content-length": String(chunk.count)]
        return harness.send("PATCH", "/tus/\(id)", headers: headers(harness, user, sent), body: .bytes(chunk), documentURI: Route.tusPatchLocation)
    }

    func offset(_ harness: ServiceHarness, _ user: String, _ id: MediaID) -> String? {
        harness.send("HEAD", "/tus/\(id)", headers: headers(harness, user)).header("Upload-Offset")
    }

    @Test func bytesAKilledAppendLeftPastTheOffsetAreCutOffByTheNext() throws {
        let harness = try ServiceHarness()
        let id = try create(harness, "alice", length: photo.count)
        let (third, twoThirds) = (photo.count / 3, 2 * photo.count / 3)
        #expect(try patch(harness, "alice", id, at: 0, Array(photo[..<third])).status == 204)
        // A worker wrote its chunk and died before its offset moved: the bytes are on disk (more
        // of them than the rest of the upload), the store does not count them.
        let partial = try FileHandle(forWritingTo: URL(filePath: harness.root.quarantined(id)))
        partial.seekToEndOfFile()
        partial.write(Data(repeating: 0xEE, count: photo.count))
        try partial.close()
        #expect(offset(harness, "alice", id) == String(third))

        #expect(try patch(harness, "alice", id, at: third, Array(photo[third..<twoThirds])).status == 204)
        let kept = try FileSystem.read(harness.root.quarantined(id), limit: 2 * photo.count)
        let cutOff = kept == Array(photo[..<twoThirds])
        #expect(cutOff, "the dead worker's bytes were cut off, not kept after the chunk (the file has \(kept.count) bytes)")

        let last = try patch(harness, "alice", id, at: twoThirds, Array(photo[twoThirds...]))
        #expect(last.status == 204 && last.header("Cameo-Media-State") == "ready")
        #expect(harness.scanner.scans == 1)
        #expect(try harness.store.media(id: id)?.state == .ready)
        #expect(harness.names(in: "quarantine") == [], "the pipeline removed the completed upload's bytes")
    }

    @Test func aPartialFileShorterThanItsOffsetEndsTheUpload() throws {
        let harness = try ServiceHarness()
        let id = try create(harness, "alice", length: 100)
        #expect(try patch(harness, "alice", id, at: 0, Array(repeating: 1, count: 40)).status == 204)
        // The disk lost bytes the store counted (a file system without its journal, say).
        try FileHandle(forWritingTo: URL(filePath: harness.root.quarantined(id))).truncate(atOffset: 10)
        let refused = try patch(harness, "alice", id, at: 40, Array(repeating: 2, count: 60))
        #expect(refused.status == 500)
        #expect(try harness.store.media(id: id)?.state == .expired)
        #expect(harness.names(in: "quarantine") == [])
        #expect(harness.send("HEAD", "/tus/\(id)", headers: headers(harness, "alice")).status == 410)
    }

    @Test func aPartialUploadWhoseFileIsGoneEndsInsteadOfFailingUntilItExpires() throws {
        let harness = try ServiceHarness()
        let id = try create(harness, "alice", length: 100)
        #expect(try patch(harness, "alice", id, at: 0, Array(repeating: 1, count: 40)).status == 204)
        // A restore from backup brings the rows back but not quarantine/.
        FileSystem.remove(harness.root.quarantined(id))
        let refused = try patch(harness, "alice", id, at: 40, Array(repeating: 2, count: 60))
        #expect(refused.status == 410 && ServiceHarness.code(refused) == "upload_expired")
        #expect(try harness.store.media(id: id)?.state == .expired)
    }

    @Test func metadataIsBoundedAndNeverEchoed() throws {
        #expect(throws: AppError.badMetadata("at most \(TusHandler.maxMetadataBytes) bytes.")) {
            try TusHandler.metadata("filetype aW1hZ2UvcG5n," + String(repeating: "k", count: 3000))
        }
        do {
            _ = try TusHandler.metadata("secretish-key !!!")
            Issue.record("not base64, yet accepted")
        } catch {
            #expect(!error.message.contains("secretish"))
        }
    }

    @Test func thePreCheckSendsOnlyTheCompletingChunkToTheImagePool() throws {
        let harness = try ServiceHarness()
        let id = try create(harness, "alice", length: 100)
        func verify(_ extra: [String: String]) -> HTTPResponse {
            harness.send(
                "PATCH", "/tus/\(id)", headers: headers(harness, "alice", ["content-type": TusHandler.chunkType, "upload-offset": "0"].merging(extra) { $1 }),
                documentURI: Route.verifyTusLocation)
        }
        #expect(verify(["content-length": "40"]).header(TusHandler.poolHeader) == "fast")
        #expect(verify(["content-length": "100"]).header(TusHandler.poolHeader) == "heavy")
        #expect(verify(["transfer-encoding": "chunked"]).header(TusHandler.poolHeader) == "heavy", "a chunked body might complete it")
        // Refusals travel to nginx as a 403 naming the client's answer, before the body is read.
        let tooLong = verify(["content-length": "101"])
        #expect(tooLong.status == 403 && tooLong.header("X-Cameo-Error-Status") == "413")
        #expect(verify(["content-length": "10", "upload-offset": "5"]).header("X-Cameo-Error-Code") == "offset_mismatch")
        #expect(verify(["content-length": "10", "upload-checksum": "md5 AAAA"]).header("X-Cameo-Error-Code") == "bad_checksum")
    }

    @Test func creationIsCheckedBeforeItsBodyToo() throws {
        let harness = try ServiceHarness()
        func verify(_ extra: [String: String]) -> HTTPResponse {
            let metadata = "filetype " + Data("image/png".utf8).base64EncodedString()
            return harness.send("POST", "/tus/", headers: headers(harness, "alice", ["upload-metadata": metadata].merging(extra) { $1 }), documentURI: Route.verifyTusLocation)
        }
        #expect(verify(["upload-length": "100"]).header(TusHandler.poolHeader) == "fast")
        #expect(verify(["upload-length": "100", "content-type": TusHandler.chunkType, "content-length": "100"]).header(TusHandler.poolHeader) == "heavy")
        #expect(verify(["upload-length": "5242881"]).header("X-Cameo-Error-Status") == "413")
        #expect(verify(["upload-length": "100", "content-type": "image/png", "content-length": "100"]).header("X-Cameo-Error-Code") == "bad_content_type")
        #expect(verify(["upload-length": "100", "tus-resumable": "0.2.2"]).header("X-Cameo-Error-Code") == "unsupported_version")
        #expect(try harness.store.media(id: MediaID.random()) == nil)
    }

    @Test func metadataIsKeyBase64PairsWithUniqueKeys() throws {
        let parsed = try TusHandler.metadata("filetype aW1hZ2UvcG5n,filename YS5wbmc=, is_confidential")
        #expect(parsed.count == 3)
        #expect(parsed["filetype"] == .some(Array("image/png".utf8)) && parsed["filename"] == .some(Array("a.png".utf8)))
        #expect(parsed["is_confidential"] == .some(nil), "a key without a value")
        #expect(try TusHandler.metadata("") == [:])
        #expect(throws: AppError.self) { try TusHandler.metadata("filetype aW1h,filetype aW1h") }
        #expect(throws: AppError.self) { try TusHandler.metadata("filetype not base64!") }
        #expect(throws: AppError.self) { try TusHandler.metadata("filetype a b") }
    }

    @Test func checksumsAreTheChunksSHA1OrSHA256InBase64() throws {
        // FIPS 180's "abc" vectors, as a client would send them.
        let sha1 = Data([0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d])
        let sha256 = Data(
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
             0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad])
        func checksum(_ header: String) throws -> TusHandler.Checksum? {
            try TusHandler.checksum(HTTPRequest(method: "PATCH", documentURI: "/", path: "/", headers: ["upload-checksum": header]))
        }
        let abc = Array("abc".utf8)
        try TusHandler.verify(abc, against: checksum("sha1 " + sha1.base64EncodedString()))
        try TusHandler.verify(abc, against: checksum("SHA256 " + sha256.base64EncodedString()))
        #expect(throws: AppError.checksumMismatch) { try TusHandler.verify(Array("abd".utf8), against: checksum("sha1 " + sha1.base64EncodedString())) }
        #expect(throws: AppError.badChecksum) { try checksum("sha256 " + sha1.base64EncodedString()) }
        #expect(throws: AppError.badChecksum) { try checksum("md5 " + sha1.base64EncodedString()) }
    }

    @Test func uploadExpiresIsAnHTTPDate() {
        // RFC 9110's own example.
        #expect(httpDate(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(httpDate(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(httpDate(epochSeconds: 1_803_000_000) == "Fri, 19 Feb 2027 01:20:00 GMT")  // as `date -u -d @1803000000` prints it
    }

    @Test func theSweeperExpiresPartialUploadsAndTheirBytes() throws {
        let harness = try ServiceHarness(settings: ["tus.lifetime_seconds": "60"])
        let id = try create(harness, "alice", length: 100)
        #expect(try patch(harness, "alice", id, at: 0, Array(repeating: 1, count: 40)).status == 204)
        let sweeper = Sweeper(store: harness.store, config: harness.config, clock: harness.clock)
        _ = try sweeper.sweep()
        #expect(harness.names(in: "quarantine") == [id.rawValue], "still within its lifetime")
        harness.clock.advance(seconds: 61)
        #expect(try patch(harness, "alice", id, at: 40, [2]).status == 410)
        let report = try sweeper.sweep()
        #expect(report.expiredUploads == 1)
        #expect(harness.names(in: "quarantine") == [])
        #expect(try harness.store.media(id: id)?.state == .expired)
    }
}
