import Testing
@testable import Scanning

@Suite struct ClamdReplyTests {
    @Test func cleanAndInfectedRepliesParse() throws {
        #expect(try ClamdClient.parse(reply: "stream: OK") == .clean)
        #expect(try ClamdClient.parse(reply: "stream: Win.Test.EICAR_HDB-1 FOUND") == .infected(signature: "Win.Test.EICAR_HDB-1"))
    }

    @Test func errorsAndGarbageAreNeverClean() {
        #expect(throws: ScannerError.scannerError("INSTREAM size limit exceeded.")) {
            try ClamdClient.parse(reply: "INSTREAM size limit exceeded. ERROR")
        }
        for garbage in ["", "OK", "stream: FOUND", "stream:  FOUND", "PONG", "stream: OK extra"] {
            #expect(throws: (any Error).self) { try ClamdClient.parse(reply: garbage) }
        }
    }

    @Test func chunkLengthsAreBigEndian() {
        #expect(ClamdClient.lengthPrefix(0) == [0, 0, 0, 0])
        #expect(ClamdClient.lengthPrefix(65536) == [0, 1, 0, 0])
        #expect(ClamdClient.lengthPrefix(0x0102_0304) == [1, 2, 3, 4])
    }

    @Test func missingSocketIsUnreachableNotClean() {
        let client = ClamdClient(socketPath: "/nonexistent/clamd.sock", timeoutSeconds: 1)
        do {
            _ = try client.scan([1, 2, 3])
            Issue.record("a missing socket scanned")
        } catch {
            guard case .unreachable(let cause) = error else { Issue.record("\(error)"); return }
            #expect(cause.isNotFound)
        }
        #expect(client.ping() == false)
    }
}

@Suite struct ScanAnnouncerTests {
    @Test func parsesHTTPURLs() throws {
        let parsed = try #require(ScanAnnouncer.parse("http://127.0.0.1:9000/scan?x=1"))
        #expect(parsed.host == "127.0.0.1" && parsed.port == 9000 && parsed.path == "/scan?x=1")
        #expect(ScanAnnouncer.parse("http://scanner")?.port == 80)
        #expect(ScanAnnouncer.parse("https://scanner/") == nil)
        #expect(ScanAnnouncer.parse("http://host:port/") == nil)
    }

    @Test func readsTheStatusLine() throws {
        #expect(try ScanAnnouncer.status(ofReply: Array("HTTP/1.1 202 Accepted\r\n\r\n".utf8)) == 202)
        #expect(throws: ScannerError.self) { try ScanAnnouncer.status(ofReply: Array("SSH-2.0-OpenSSH\r\n".utf8)) }
        #expect(throws: ScannerError.self) { try ScanAnnouncer.status(ofReply: []) }
    }

    @Test func nothingListeningIsUnreachable() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        #expect(throws: ScannerError.self) { try ScanAnnouncer(url: "http://127.0.0.1:9/", timeoutSeconds: 1).post(json: "{}") }
    }
}
