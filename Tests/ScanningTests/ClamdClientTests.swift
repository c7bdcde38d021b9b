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
        #expect(throws: ScannerError.unreachable(errno: 2)) { try client.scan([1, 2, 3]) }
        #expect(client.ping() == false)
    }
}
