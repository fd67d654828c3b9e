import Glibc

/// Saves a terminal's settings (termios and the O_NONBLOCK file status flag, which QEMU-like
/// programs share through the open file description), puts it in raw mode, and restores the
/// original exactly once on every exit path: `restore()` is idempotent and also runs from an
/// `atexit` handler for paths that skip `defer` (an `exit()` anywhere).
public final class RawMode: @unchecked Sendable {
    public let fd: FileDescriptor
    private let original: termios
    private let originalFlags: Int32
    private var restored = false

    /// The one active instance, for the atexit handler.
    nonisolated(unsafe) private static var active: RawMode?

    /// Puts `fd` in raw mode. Throws when it is not a terminal.
    public init(_ fd: FileDescriptor) throws(SystemCallError) {
        self.fd = fd
        var t = termios()
        try nothingOrErrno { tcgetattr(fd.rawValue, &t) }.get("tcgetattr")
        original = t
        originalFlags = (try? fd.fileStatusFlags()) ?? 0
        var raw = t
        cfmakeraw(&raw)
        // cfmakeraw leaves VMIN/VTIME as they were: set them (one byte, no timer).
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        try Self.apply(raw, to: fd)
        RawMode.active = self
        Self.installAtExit()
    }

    /// tcsetattr reports success if any change took; re-read to be sure the wanted mode holds.
    private static func apply(_ wanted: termios, to fd: FileDescriptor) throws(SystemCallError) {
        var w = wanted
        // TCSADRAIN, not TCSAFLUSH: keys typed before labrun started are kept for the guest.
        try nothingOrErrno { tcsetattr(fd.rawValue, TCSADRAIN, &w) }.get("tcsetattr")
        var now = termios()
        try nothingOrErrno { tcgetattr(fd.rawValue, &now) }.get("tcgetattr")
        if now.c_lflag != wanted.c_lflag || now.c_iflag != wanted.c_iflag || now.c_oflag != wanted.c_oflag {
            throw SystemCallError(call: "tcsetattr (settings not applied)", errno: Errno(rawValue: EINVAL))
        }
    }

    /// Restores the original settings. Safe to call many times.
    public func restore() {
        guard !restored else { return }
        restored = true
        var t = original
        _ = valueOrErrno { tcsetattr(fd.rawValue, TCSADRAIN, &t) }
        try? fd.setFileStatusFlags(originalFlags)
        if RawMode.active === self { RawMode.active = nil }
    }

    nonisolated(unsafe) private static var atExitInstalled = false
    private static func installAtExit() {
        guard !atExitInstalled else { return }
        atExitInstalled = true
        atexit { RawMode.active?.restore() }
    }

    /// The original settings, serialised, for the guard process that restores the terminal
    /// after labrun is killed with SIGKILL.
    public var originalSettingsHex: String {
        var t = original
        return withUnsafeBytes(of: &t) { raw in raw.map { b in
            let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }.joined() } + ":\(originalFlags)"
    }

    /// Restores settings serialised by `originalSettingsHex` on `fd`.
    public static func restore(hex: String, on fd: FileDescriptor) -> Bool {
        let parts = hex.split(separator: ":")
        guard parts.count == 2, let flags = Int32(parts[1]) else { return false }
        let digits = Array(parts[0].utf8)
        var t = termios()
        guard digits.count == MemoryLayout<termios>.size * 2 else { return false }
        let ok = withUnsafeMutableBytes(of: &t) { raw -> Bool in
            for i in 0..<raw.count {
                guard let b = UInt8(String(decoding: digits[2*i..<2*i+2], as: UTF8.self), radix: 16) else { return false }
                raw[i] = b
            }
            return true
        }
        guard ok else { return false }
        _ = valueOrErrno { tcsetattr(fd.rawValue, TCSADRAIN, &t) }
        try? fd.setFileStatusFlags(flags)
        return true
    }
}
