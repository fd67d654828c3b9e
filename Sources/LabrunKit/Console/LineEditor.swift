/// A one-line editor for the raw console (the Ctrl-a s name prompt): printable bytes are
/// collected and echoed, Backspace/DEL erases, Ctrl-U clears, Enter accepts, Esc or Ctrl-C
/// cancels. Escape sequences (arrow and function keys: ESC [ … or ESC O x) are ignored whole.
/// Pure: it returns what to echo; the caller writes it.
public struct LineEditor: Equatable, Sendable {
    public enum Outcome: Equatable, Sendable {
        case editing(echo: [UInt8])
        case accepted(String)
        case cancelled
    }

    public private(set) var text: [UInt8] = []
    public let maxBytes: Int
    private enum Sequence { case none, escape, csi, ss3 }
    private var sequence = Sequence.none

    public init(maxBytes: Int = 255) { self.maxBytes = maxBytes }

    /// Feeds what one read returned. A lone Esc at the end of the read is the Esc key (cancel);
    /// an Esc followed by `[` or `O` starts a key's escape sequence, which is skipped.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> Outcome {
        var echo: [UInt8] = []
        for b in bytes {
            switch feed(b) {
            case .editing(let e): echo += e
            case let done: return done
            }
        }
        if sequence == .escape { return .cancelled }
        return .editing(echo: echo)
    }

    public mutating func feed(_ byte: UInt8) -> Outcome {
        switch sequence {
        case .none: break
        case .escape:
            if byte == UInt8(ascii: "[") { sequence = .csi; return .editing(echo: []) }
            if byte == UInt8(ascii: "O") { sequence = .ss3; return .editing(echo: []) }
            return .cancelled
        case .csi:
            // Parameters and intermediates run 0x20–0x3F; a final byte 0x40–0x7E ends it.
            if (0x40...0x7E).contains(byte) { sequence = .none }
            return .editing(echo: [])
        case .ss3:
            sequence = .none
            return .editing(echo: [])
        }
        switch byte {
        case 0x1B:
            sequence = .escape
            return .editing(echo: [])
        case 0x0D, 0x0A:
            return .accepted(String(decoding: text, as: UTF8.self))
        case 0x03:
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
