/// The user's side of the console: the terminal in raw mode (with the guard process that
/// restores it if labrun is killed), and non-blocking I/O on stdin and stdout whose flags are
/// put back at exit (stdout may be a pipe or file shared with the shell).
final class UserTerminal {
    let input: FileDescriptor
    let output: FileDescriptor
    private var rawMode: RawMode?
    private var terminalGuard: TerminalGuard?
    private let inputFlags: Int32?
    private let outputFlags: Int32?
    /// Set when raw mode could not be set (keys are then line-buffered).
    private(set) var warning: String?

    init(input: FileDescriptor, output: FileDescriptor) {
        self.input = input
        self.output = output
        if input.isTerminal {
            do {
                let raw = try RawMode(input)
                rawMode = raw
                terminalGuard = TerminalGuard.start(settings: raw.originalSettingsHex, terminal: input)
            } catch {
                warning = "could not put the terminal in raw mode (\(error)); keys are line-buffered"
            }
        }
        outputFlags = try? output.fileStatusFlags()
        inputFlags = try? input.fileStatusFlags()
        try? output.setNonBlocking(true)
        try? input.setNonBlocking(true)
    }

    /// The terminal's size, nil when it is not one.
    var size: WindowSize? { WindowSize.of(input) }

    /// True when a hang-up of the input means the user's terminal is gone.
    var isInteractive: Bool { rawMode != nil || input.isTerminal }

    /// Puts everything back (idempotent).
    func restore() {
        rawMode?.restore()
        if let f = outputFlags { try? output.setFileStatusFlags(f) }
        if let f = inputFlags { try? input.setFileStatusFlags(f) }
        terminalGuard?.dismiss()
        terminalGuard = nil
    }
}
