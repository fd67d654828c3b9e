import Glibc

/// A tiny watchdog process that restores the user's terminal if labrun dies without doing it
/// (SIGKILL). It is labrun itself, started as `labrun __terminal-guard SETTINGS`, reading a
/// pipe whose write end only labrun holds: end of file without a goodbye byte means labrun
/// died, so the guard restores the saved settings on its stdin (the terminal) and exits.
public final class TerminalGuard {
    private let pipeWrite: FileDescriptor
    private let child: ChildProcess

    public static let commandName = "__terminal-guard"

    private init(pipeWrite: FileDescriptor, child: ChildProcess) {
        self.pipeWrite = pipeWrite
        self.child = child
    }

    /// Starts the guard; nil when it cannot (labrun then relies on its normal restore paths).
    public static func start(settings: String, terminal: FileDescriptor) -> TerminalGuard? {
        guard let exe = realPath("/proc/self/exe"), let pipe = try? FileDescriptor.pipe() else { return nil }
        var config = SpawnConfiguration(executable: exe, arguments: [commandName, settings])
        config.standardInput = .descriptor(pipe.readEnd)
        config.standardOutput = .descriptor(terminal)
        config.standardError = .devNull
        config.newSession = true
        guard let child = try? Spawner.spawn(config) else {
            pipe.readEnd.close(); pipe.writeEnd.close()
            return nil
        }
        pipe.readEnd.close()
        return TerminalGuard(pipeWrite: pipe.writeEnd, child: child)
    }

    /// labrun restored the terminal itself: tell the guard to leave it alone.
    public func dismiss() {
        _ = pipeWrite.write([0x21])
        pipeWrite.close()
        _ = child.wait(upTo: 1)
    }

    /// The guard's own main: stdin is the pipe, stdout the terminal.
    public static func runGuard(settings: String) -> Int32 {
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        var dismissed = false
        while case .success(let bytes) = FileDescriptor.standardInput.read(upTo: 16), !bytes.isEmpty {
            if bytes.contains(0x21) { dismissed = true }
        }
        if !dismissed { _ = RawMode.restore(hex: settings, on: .standardOutput) }
        return 0
    }
}
