/// A value bound to a `?` placeholder.
public enum DatabaseValue: Sendable, Equatable {
    case null
    case int(Int64)
    case text(String)
    case blob([UInt8])
}

extension DatabaseValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension DatabaseValue {
    /// `.text(value)` or `.null` when `value` is nil.
    public static func optional(_ value: String?) -> DatabaseValue { value.map { .text($0) } ?? .null }
    /// `.int(value)` from a Swift `Int`.
    public static func int(_ value: Int) -> DatabaseValue { .int(Int64(value)) }
}

/// One result row. Columns arrive in the server's text form, looked up by name.
public struct Row: Sendable {
    let columns: [String: Int]
    let values: [[UInt8]?]

    /// The column's bytes, nil for SQL NULL or an unknown column.
    public func bytes(_ column: String) -> [UInt8]? {
        guard let index = columns[column] else { return nil }
        return values[index]
    }

    /// The column as a UTF-8 string, nil for NULL.
    public func string(_ column: String) -> String? { bytes(column).map { String(decoding: $0, as: UTF8.self) } }

    /// The column as an integer, nil for NULL or non-numeric text.
    public func int(_ column: String) -> Int? { string(column).flatMap { Int($0) } }
}
