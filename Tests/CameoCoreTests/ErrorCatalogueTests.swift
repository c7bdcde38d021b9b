import FoundationEssentials
import Testing
@testable import CameoCore

@Suite struct ErrorCatalogueTests {
    /// The rows of the README's error table: (code, status).
    static func readmeTable() throws -> [(String, Int)] {
        let readme = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appending(path: "README.md")
        let text = try String(decoding: #require(FileManager.default.contents(atPath: readme.path)), as: UTF8.self)
        let start = try #require(text.firstRange(of: "<!-- error-codes"))
        let end = try #require(text.firstRange(of: "<!-- /error-codes -->"))
        return text[start.upperBound..<end.lowerBound].split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|").map { $0.trimmingWhitespace() }
            guard cells.count >= 2, cells[0].hasPrefix("`"), let status = Int(cells[1]) else { return nil }
            return (String(cells[0].dropFirst().dropLast()), status)
        }
    }

    @Test func theReadmeTableListsEveryCodeWithItsStatus() throws {
        let table = try Self.readmeTable()
        #expect(table.map(\.0) == ErrorCode.allCases.map(\.rawValue), "README error table and ErrorCode differ in codes or order")
        for (code, status) in table {
            #expect(ErrorCode(rawValue: code)?.status == status, "\(code): README says \(status)")
        }
    }

    @Test func bodiesCarryCodeMessageDetailsAndRequestIDOnlyOn5xx() {
        #expect(AppError.tooLarge(limit: 5).body(requestID: "r1").serialized()
            == #"{"error":{"code":"too_large","message":"The upload is larger than 5 bytes.","limit":5}}"#)
        #expect(AppError.unavailable("database").body(requestID: "r1").serialized().hasSuffix(#","request_id":"r1"}}"#))
        #expect(AppError.rateLimited(retryAfter: 7, limit: 5).retryAfter == 7)
    }

    @Test func codesAreUniqueSnakeCase() {
        let codes = ErrorCode.allCases.map(\.rawValue)
        #expect(Set(codes).count == codes.count)
        #expect(codes.allSatisfy { $0.allSatisfy { $0 == "_" || ("a"..."z").contains($0) } })
    }
}
