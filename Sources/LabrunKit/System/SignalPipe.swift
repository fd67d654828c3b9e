import Glibc

/// The write end of the self-pipe, read by the async-signal-safe handler. A C global by nature.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// The handler: one byte (the signal number) into the pipe; errno saved and restored.
private let selfPipeHandler: @convention(c) (Int32) -> Void = { signo in
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signo)
    _ = Glibc.write(signalPipeWriteEnd, &byte, 1)
    errno = saved
}

/// A named signal.
public struct Signal: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let interrupt = Signal(rawValue: SIGINT)
    public static let terminate = Signal(rawValue: SIGTERM)
    public static let hangup = Signal(rawValue: SIGHUP)
    public static let kill = Signal(rawValue: SIGKILL)
    public static let quit = Signal(rawValue: SIGQUIT)
    public static let child = Signal(rawValue: SIGCHLD)
    public static let windowChanged = Signal(rawValue: SIGWINCH)
    public static let pipe = Signal(rawValue: SIGPIPE)
    public static let `continue` = Signal(rawValue: SIGCONT)
    public var description: String {
        switch self {
        case .interrupt: "SIGINT"
        case .terminate: "SIGTERM"
        case .hangup: "SIGHUP"
        case .kill: "SIGKILL"
        case .quit: "SIGQUIT"
        case .child: "SIGCHLD"
        case .windowChanged: "SIGWINCH"
        case .pipe: "SIGPIPE"
        default: "signal \(rawValue)"
        }
    }
}

/// Turns signals into readable bytes on a non-blocking pipe that joins the poll set.
/// One per process: installing it twice replaces the first.
public final class SignalPipe {
    public let readEnd: FileDescriptor
    private let writeEnd: FileDescriptor
    private let signals: [Signal]

    public init(_ signals: [Signal]) throws(SystemCallError) {
        let (r, w) = try FileDescriptor.pipe()
        try r.setNonBlocking(true)
        try w.setNonBlocking(true)
        readEnd = r
        writeEnd = w
        self.signals = signals
        signalPipeWriteEnd = w.rawValue
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = selfPipeHandler
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(s.rawValue, &action, nil)
        }
    }

    /// The signals that arrived since the last call, in order, duplicates folded.
    public func drain() -> [Signal] {
        var seen: [Signal] = []
        while case .success(let bytes) = readEnd.read(upTo: 256), !bytes.isEmpty {
            for b in bytes {
                let s = Signal(rawValue: Int32(b))
                if !seen.contains(s) { seen.append(s) }
            }
        }
        return seen
    }

    /// Restores the default disposition and closes the pipe.
    public func uninstall() {
        for s in signals { signal(s.rawValue, SIG_DFL) }
        signalPipeWriteEnd = -1
        readEnd.close()
        writeEnd.close()
    }
}

/// Ignore SIGPIPE once: writes to a closed socket then fail with EPIPE instead of killing labrun.
public func ignoreBrokenPipeSignal() {
    signal(SIGPIPE, SIG_IGN)
}

/// Ctrl-C is for the child in the foreground (gdb), not for us. The corresponding C function is `signal`.
public func ignoreInterruptSignal() {
    signal(SIGINT, SIG_IGN)
}
