/// A one-line editor for the raw console (the Ctrl-a s name prompt): printable bytes are
/// collected and echoed, Backspace/DEL erases, Ctrl-U clears, Enter accepts, Esc or Ctrl-C
/// cancels. Pure: it returns what to echo; the caller writes it.
public struct LineEditor: Sendable {
    public enum Outcome: Equatable, Sendable {
        case editing(echo: [UInt8])
        case accepted(String)
        case cancelled
    }

    public private(set) var text: [UInt8] = []
    public let maxBytes: Int

    public init(maxBytes: Int = 255) { self.maxBytes = maxBytes }

    public mutating func feed(_ byte: UInt8) -> Outcome {
        switch byte {
        case 0x0D, 0x0A:
            return .accepted(String(decoding: text, as: UTF8.self))
        case 0x1B, 0x03:
            return .cancelled
        case 0x7F, 0x08:
            guard !text.isEmpty else { return .editing(echo: []) }
            // Erase a whole UTF-8 character: drop continuation bytes too.
            while let last = text.last, last & 0xC0 == 0x80 { text.removeLast() }
            text.removeLast()
            return .editing(echo: [0x08, 0x20, 0x08])
        case 0x15:
            let n = String(decoding: text, as: UTF8.self).count
            text.removeAll()
            return .editing(echo: Array(repeating: [0x08, 0x20, 0x08], count: n).flatMap { $0 })
        default:
            guard byte >= 0x20, text.count < maxBytes else { return .editing(echo: []) }
            text.append(byte)
            return .editing(echo: [byte])
        }
    }
}
