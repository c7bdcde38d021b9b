// FoundationEssentials leaves out `trimmingCharacters(in:)`; the workers avoid full Foundation
// to stay small, so this is the one helper they need.
extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
