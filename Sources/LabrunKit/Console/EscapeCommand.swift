/// The commands reachable with the escape key (Ctrl-a) on labrun's console.
public enum EscapeCommand: Equatable, Sendable {
    case quit
    case monitor
    case snapshot
    case help
    case status
    case sendBreak
    case suspend
    case reset
    case detach
    /// A key after Ctrl-a that means nothing: swallowed, with a hint.
    case unknown(UInt8)
}

/// The key table: one place that says which key does what, so help can't disagree with it.
public enum EscapeKeys {
    /// Ctrl-a.
    public static let escape: UInt8 = 0x01

    public struct Entry: Sendable {
        public let keys: String
        public let summary: String
    }

    /// Maps the byte after Ctrl-a to what it does. A literal Ctrl-a is handled by the parser.
    public static func command(for byte: UInt8) -> EscapeCommand {
        switch byte {
        case UInt8(ascii: "x"), UInt8(ascii: "X"): .quit
        case UInt8(ascii: "c"), UInt8(ascii: "C"): .monitor
        case UInt8(ascii: "s"), UInt8(ascii: "S"): .snapshot
        case UInt8(ascii: "h"), UInt8(ascii: "H"), UInt8(ascii: "?"): .help
        case UInt8(ascii: "i"), UInt8(ascii: "I"): .status
        case UInt8(ascii: "b"), UInt8(ascii: "B"): .sendBreak
        case UInt8(ascii: "z"), UInt8(ascii: "Z"): .suspend
        case UInt8(ascii: "r"), UInt8(ascii: "R"): .reset
        case UInt8(ascii: "d"), UInt8(ascii: "D"): .detach
        default: .unknown(byte)
        }
    }

    public static let table: [Entry] = [
        Entry(keys: "x", summary: "quit: shut the VM down (QMP quit) and leave labrun"),
        Entry(keys: "d", summary: "detach: leave this terminal, the VM runs on (`labrun attach` comes back)"),
        Entry(keys: "s", summary: "snapshot now: asks for a name (Enter accepts the default, Esc cancels)"),
        Entry(keys: "z", summary: "suspend: save the whole VM to disk and quit; the next boot resumes it"),
        Entry(keys: "r", summary: "reset: back to the golden image's boot checkpoint, console kept (asks y/N)"),
        Entry(keys: "c", summary: "switch to the QEMU monitor, (qemu) prompt; Ctrl-a c again returns"),
        Entry(keys: "i", summary: "status: QEMU pid, run state, uptime, run directory"),
        Entry(keys: "b", summary: "SysRq: the next key is sent as Alt-SysRq-KEY on the guest keyboard (h: help)"),
        Entry(keys: "h or ?", summary: "this help"),
        Entry(keys: "a or Ctrl-a", summary: "send one Ctrl-a to the guest"),
    ]

    /// The help text, lines ending in \r\n (the terminal is raw).
    public static var helpText: String {
        var lines = ["labrun escape keys: press Ctrl-a, then"]
        for e in table {
            lines.append("  " + e.keys.padding(toLength: 13) + e.summary)
        }
        lines.append("Ctrl-C, Ctrl-Z and Ctrl-\\ go to the guest.")
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

extension String {
    func padding(toLength n: Int) -> String {
        count >= n ? self + " " : self + String(repeating: " ", count: n - count)
    }
}
