/// What to do with input from the user's keyboard.
public enum ConsoleAction: Equatable, Sendable {
    /// Bytes for the guest, in order.
    case forward([UInt8])
    case command(EscapeCommand)
}

/// The pure escape-key state machine: bytes in, actions out. It performs no I/O, so it can be
/// tested (and fuzzed) on its own. One boolean is the whole state: "the last byte was Ctrl-a",
/// which survives across calls, so a Ctrl-a at the end of one read pairs with the next read.
public struct EscapeParser: Sendable {
    public private(set) var awaitingCommand = false

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ConsoleAction] {
        var actions: [ConsoleAction] = []
        var run: [UInt8] = []
        func flush() {
            if !run.isEmpty { actions.append(.forward(run)); run.removeAll() }
        }
        for byte in bytes {
            if awaitingCommand {
                awaitingCommand = false
                if byte == EscapeKeys.escape || byte == UInt8(ascii: "a") || byte == UInt8(ascii: "A") {
                    run.append(EscapeKeys.escape)
                } else {
                    flush()
                    actions.append(.command(EscapeKeys.command(for: byte)))
                }
            } else if byte == EscapeKeys.escape {
                awaitingCommand = true
            } else {
                run.append(byte)
            }
        }
        flush()
        return actions
    }
}
