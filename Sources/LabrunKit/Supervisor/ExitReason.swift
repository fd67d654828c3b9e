/// Why the supervisor's loop ended.
public enum ExitReason: Equatable, Sendable, CustomStringConvertible {
    /// Ctrl-a x or `labrun stop`: the VM was shut down on request.
    case quit
    /// `labrun suspend` or Ctrl-a z: the VM was saved to disk and QEMU ended.
    case suspended
    /// QEMU exited by itself with status 0 (the guest powered off).
    case guestPoweroff
    /// labrun received a terminating signal; the VM was shut down gracefully.
    case signal(Signal)
    /// QEMU ended with an error (or was killed).
    case qemuFailed(String)
    /// The guest kernel panicked and lab.conf says `on_panic = poweroff`: the report's title.
    case guestPanicked(String)

    /// The status of `labrun boot`, `exec` and `wait-ready` when the guest kernel panicked
    /// (not a command's own status, nor a signal's).
    public static let panicExitCode: Int32 = 125

    public var exitCode: Int32 {
        switch self {
        case .quit, .guestPoweroff, .suspended: 0
        case .signal(let s): 128 + s.rawValue
        case .qemuFailed: 1
        case .guestPanicked: Self.panicExitCode
        }
    }

    public var description: String {
        switch self {
        case .quit: "the VM was shut down"
        case .guestPoweroff: "the guest powered off"
        case .suspended: "the VM was suspended; `labrun boot` resumes it where it was"
        case .signal(let s): "stopped by \(s); the VM was shut down"
        case .qemuFailed(let why): why
        case .guestPanicked(let title): "the guest kernel panicked (\(title)); the VM was powered off (lab.conf on_panic = poweroff)"
        }
    }
}


extension ExitReason {
    /// QEMU ended by itself: a guest power-off, or a failure with QEMU's last words.
    init(qemu binary: String, ended status: TerminationStatus, lastMessage: String?) {
        if status.isSuccess { self = .guestPoweroff; return }
        let how = if case .signaled = status { "was \(status)" } else { "ended with \(status)" }
        self = .qemuFailed("\(binary) \(how)" + (lastMessage.map { ": \($0)" } ?? ""))
    }
}
