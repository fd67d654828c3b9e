/// Small text helpers FoundationEssentials lacks.
extension StringProtocol {
    /// Without leading and trailing whitespace (spaces, tabs, CR, LF).
    public var trimmed: String {
        let ws: Set<Character> = [" ", "\t", "\r", "\n"]
        guard let first = firstIndex(where: { !ws.contains($0) }), let last = lastIndex(where: { !ws.contains($0) }) else { return "" }
        return String(self[first...last])
    }
}
