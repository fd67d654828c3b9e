/// Small text helpers FoundationEssentials lacks.
extension StringProtocol {
    /// Without leading and trailing whitespace (spaces, tabs, CR, LF, CRLF).
    public var trimmed: String {
        // Character.isWhitespace also covers "\r\n", which Swift treats as one Character.
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
