import Glibc

/// A terminal window size.
public struct WindowSize: Equatable, Sendable {
    public var rows: UInt16
    public var columns: UInt16
    public init(rows: UInt16, columns: UInt16) { self.rows = rows; self.columns = columns }

    /// The size of the terminal on `fd`, or nil when it is not a terminal or reports 0×0.
    public static func of(_ fd: FileDescriptor) -> WindowSize? {
        var ws = winsize()
        guard ioctl(fd.rawValue, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_row > 0, ws.ws_col > 0 else { return nil }
        return WindowSize(rows: ws.ws_row, columns: ws.ws_col)
    }

    /// Applies this size to the terminal on `fd` (TIOCSWINSZ); the pty's reader gets SIGWINCH.
    public func apply(to fd: FileDescriptor) {
        var ws = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(fd.rawValue, UInt(TIOCSWINSZ), &ws)
    }
}

/// A pseudo-terminal pair owned by labrun: the primary stays here, the secondary's path is
/// opened by the child (so it becomes the child's controlling terminal).
public struct PseudoTerminal {
    public let primary: FileDescriptor
    public let secondary: FileDescriptor
    public let secondaryPath: String

    /// Opens a pair, sized like `size` (a new pty is 0×0 otherwise), with the secondary in raw
    /// mode: QEMU's `-chardev stdio,signal=off` would set raw mode itself, but bytes written
    /// before it starts must not be cooked. The corresponding C function is `openpty`.
    public static func open(size: WindowSize?) throws(SystemCallError) -> PseudoTerminal {
        var p: Int32 = -1
        var s: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        var ws = winsize(ws_row: size?.rows ?? 24, ws_col: size?.columns ?? 80, ws_xpixel: 0, ws_ypixel: 0)
        try nothingOrErrno(retryOnInterrupt: false) { openpty(&p, &s, &name, nil, &ws) }.get("openpty")
        let primary = FileDescriptor(rawValue: p)
        let secondary = FileDescriptor(rawValue: s)
        try primary.setCloseOnExec()
        try secondary.setCloseOnExec()
        var t = termios()
        if tcgetattr(s, &t) == 0 {
            cfmakeraw(&t)
            _ = tcsetattr(s, TCSANOW, &t)
        }
        return PseudoTerminal(primary: primary, secondary: secondary,
                              secondaryPath: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}
