/// QEMU started on a pseudo-terminal labrun owns: the pty secondary is QEMU's stdin, stdout
/// and controlling terminal (so if labrun dies the primary closes, QEMU gets SIGHUP and exits
/// instead of living on headless), and its stderr is a pipe.
struct QemuLaunch {
    let child: ChildProcess
    /// The pty primary (non-blocking): the guest's serial console.
    let console: FileDescriptor
    /// QEMU's stderr (non-blocking).
    let stderr: FileDescriptor

    /// Spawns `config` with its standard descriptors replaced, in its own session, under
    /// umask 077 (QEMU creates its sockets under it: only this user may use them).
    static func start(_ config: SpawnConfiguration, size: WindowSize?) throws(SystemCallError) -> QemuLaunch {
        let pty = try PseudoTerminal.open(size: size)
        let errPipe: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            try pty.primary.setNonBlocking(true)
            errPipe = try FileDescriptor.pipe()
        } catch {
            pty.primary.close(); pty.secondary.close()
            throw error
        }
        var config = config
        config.standardInput = .path(pty.secondaryPath)
        config.standardOutput = .path(pty.secondaryPath)
        config.standardError = .descriptor(errPipe.writeEnd)
        config.newSession = true
        let child: ChildProcess
        do {
            child = try withFileCreationMask(0o077) { () throws(SystemCallError) in try Spawner.spawn(config) }
        } catch {
            [pty.primary, pty.secondary, errPipe.readEnd, errPipe.writeEnd].forEach { $0.close() }
            throw error
        }
        errPipe.writeEnd.close()
        // QEMU opened the secondary itself (its controlling terminal now).
        pty.secondary.close()
        try? errPipe.readEnd.setNonBlocking(true)
        return QemuLaunch(child: child, console: pty.primary, stderr: errPipe.readEnd)
    }
}
