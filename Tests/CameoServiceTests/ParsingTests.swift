import Testing
@testable import CameoService

@Suite struct MultipartFormTests {
    let contentType = "multipart/form-data; boundary=----cameo7"

    func body(_ parts: [(name: String, filename: String?, bytes: [UInt8])], boundary: String = "----cameo7") -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\""
            if let filename = part.filename { head += "; filename=\"\(filename)\"\r\nContent-Type: image/jpeg" }
            out += Array((head + "\r\n\r\n").utf8) + part.bytes + Array("\r\n".utf8)
        }
        return out + Array("--\(boundary)--\r\n".utf8)
    }

    @Test func findsTheFilePartAmongOthers() throws {
        // Binary content that contains CRLFs and dashes, but not the delimiter.
        let image: [UInt8] = [0xFF, 0xD8, 0x0D, 0x0A, 0x2D, 0x2D, 0x00, 0xFF, 0xD9]
        let form = body([("crop", nil, Array(#"{"x":1,"y":2,"size":3}"#.utf8)), ("file", "me.jpg", image)])
        #expect(try MultipartForm.field("file", in: form, contentType: contentType) == image)
        #expect(try MultipartForm.field("crop", in: form, contentType: contentType) == Array(#"{"x":1,"y":2,"size":3}"#.utf8))
    }

    @Test func missingFieldAndBrokenBodiesAreErrors() {
        let form = body([("picture", "me.jpg", [1, 2, 3])])
        #expect(throws: MultipartForm.Failure.noFileField) { try MultipartForm.field("file", in: form, contentType: contentType) }
        #expect(throws: MultipartForm.Failure.notMultipart) { try MultipartForm.field("file", in: form, contentType: "application/json") }
        let truncated = Array(body([("file", "me.jpg", [1, 2, 3])]).prefix(60))
        #expect(throws: MultipartForm.Failure.malformed) { try MultipartForm.field("file", in: truncated, contentType: contentType) }
    }

    @Test func boundaryMayBeQuotedAndIsBounded() {
        #expect(MultipartForm.boundary(contentType: #"multipart/form-data; charset=utf-8; boundary="a b""#) == "a b")
        #expect(MultipartForm.boundary(contentType: "multipart/form-data; boundary=" + String(repeating: "x", count: 71)) == nil)
        #expect(MultipartForm.boundary(contentType: "text/plain; boundary=x") == nil)
    }
}

@Suite struct HTTPRequestTests {
    func request(_ parameters: [String: String]) -> HTTPRequest { HTTPRequest(cgi: parameters, body: .none) }

    @Test func buildsFromCGIParameters() {
        let made = request([
            "REQUEST_METHOD": "PUT", "REQUEST_URI": "/uploads/abc?X-Amz-Credential=k%2F2026&b=%3B&flag", "DOCUMENT_URI": "/_cameo/verify-upload",
            "HTTP_X_FORWARDED_FOR": "10.0.0.1", "CONTENT_TYPE": "image/png", "HTTP_HOST": "example", "CAMEO_HOST": "example:8080",
            "HTTP_COOKIE": "a=1; access_token=tok.en; b=2",
        ])
        #expect(made.method == "PUT" && made.documentURI == "/_cameo/verify-upload")
        #expect(made.path == "/uploads/abc")
        #expect(made.queryItems.map { "\($0.0)=\($0.1)" } == ["X-Amz-Credential=k/2026", "b=;", "flag="])
        #expect(made.headers["x-forwarded-for"] == "10.0.0.1")
        #expect(made.headers["content-type"] == "image/png")
        // The signed host is the one the client sent, port included (CAMEO_HOST = $http_host).
        #expect(made.headers["host"] == "example:8080")
        #expect(made.cookie("access_token") == "tok.en")
        #expect(made.cookie("missing") == nil)
    }
}

@Suite struct LogTests {
    @Test func aQuotedValueCannotStartALineOfItsOwn() {
        // A profile's name or a client's error text is the sender's to choose.
        let forged = "x\r\nlevel=error msg=\"forged\"\n\u{1B}[31m\r"
        let quoted = Log.quoted(forged)
        #expect(!quoted.unicodeScalars.contains { $0.properties.generalCategory == .control })
        #expect(quoted == #""x  level=error msg=\"forged\"  [31m ""#)
        #expect(Log.quoted(#"back\slash"#) == #""back\\slash""#)
    }
}
