/// The one part Cameo reads from a `multipart/form-data` body (RFC 7578): the field `file`.
///
/// The body is at most a few MB (nginx caps it), so it is parsed in memory. Only the part's
/// bytes are kept; its filename and declared type are ignored, since magic bytes decide.
struct MultipartForm {
    enum Failure: Error, Equatable {
        case notMultipart
        case noFileField
        case malformed
    }

    /// The boundary from `multipart/form-data; boundary=...` (quoted or not).
    static func boundary(contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingWhitespace() }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for parameter in parts.dropFirst() where parameter.lowercased().hasPrefix("boundary=") {
            var value = Substring(parameter.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            // RFC 2046: 1 to 70 characters.
            return (1...70).contains(value.utf8.count) ? String(value) : nil
        }
        return nil
    }

    /// The bytes of the part named `name`.
    static func field(_ name: String, in body: [UInt8], contentType: String) throws(Failure) -> [UInt8] {
        guard let boundary = boundary(contentType: contentType) else { throw .notMultipart }
        let delimiter = Array("--\(boundary)".utf8)
        let partSeparator = Array("\r\n--\(boundary)".utf8)
        let headerEnd = Array("\r\n\r\n".utf8)
        guard var cursor = find(delimiter, in: body, from: 0) else { throw .malformed }
        cursor += delimiter.count
        while true {
            // After a delimiter: "--" closes the body, CRLF starts a part.
            guard cursor + 2 <= body.count else { throw .malformed }
            if body[cursor] == UInt8(ascii: "-"), body[cursor + 1] == UInt8(ascii: "-") { throw .noFileField }
            guard body[cursor] == 0x0D, body[cursor + 1] == 0x0A else { throw .malformed }
            cursor += 2
            guard let headersEnd = find(headerEnd, in: body, from: cursor) else { throw .malformed }
            let headers = String(decoding: body[cursor..<headersEnd], as: UTF8.self)
            let contentStart = headersEnd + headerEnd.count
            guard let contentEnd = find(partSeparator, in: body, from: contentStart) else { throw .malformed }
            if partName(headers) == name { return Array(body[contentStart..<contentEnd]) }
            cursor = contentEnd + partSeparator.count
        }
    }

    /// The `name` parameter of the part's Content-Disposition header.
    static func partName(_ headers: String) -> String? {
        for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
            for parameter in line.split(separator: ";").dropFirst() {
                let trimmed = parameter.trimmingWhitespace()
                guard trimmed.hasPrefix("name=") else { continue }
                var value = Substring(trimmed.dropFirst(5))
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
                return String(value)
            }
        }
        return nil
    }

    /// Index of the first occurrence of `needle` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, needle.count <= haystack.count else { return nil }
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            guard let candidate = haystack[index...last].firstIndex(of: first) else { return nil }
            if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            index = candidate + 1
        }
        return nil
    }
}
