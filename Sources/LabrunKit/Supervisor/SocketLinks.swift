/// The links to QEMU's QMP and guest-agent sockets, and their retry: every 20 ms while QEMU
/// starts (it creates them within a few ms), doubling to 1 s while nothing answers. QEMU
/// serves one QMP client at a time: a dropped connection is taken again.
final class SocketLinks: LoopPart {
    let run: RunDirectory
    /// A new QMP connection (not yet through its handshake).
    var onQMP: (QMPClient) -> Void = { _ in }
    /// A connected agent socket.
    var onAgent: (FileDescriptor) -> Void = { _ in }
    /// Whether each link is wanted now: QEMU runs and that link is down.
    var needsQMP: () -> Bool = { false }
    var needsAgent: () -> Bool = { false }

    private var nextAttempt: Double = 0
    private var interval = 0.02
    private var socketsSecured = false

    init(run: RunDirectory) { self.run = run }

    var interests: [PollInterest] { [] }
    var deadline: Double? { needsQMP() || needsAgent() ? nextAttempt : nil }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard needsQMP() || needsAgent(), now >= nextAttempt else { return }
        interval = min(interval * 2, 1)
        nextAttempt = now + interval
        if needsQMP(), let fd = try? UnixSocket.connect(path: run.qmpSocket) {
            secureSockets()
            try? fd.setNonBlocking(true)
            onQMP(QMPClient(fd: fd))
        }
        if !needsQMP(), needsAgent(), let fd = try? UnixSocket.connect(path: run.agentSocket) {
            try? fd.setNonBlocking(true)
            onAgent(fd)
        }
        if !needsQMP() && !needsAgent() { interval = 0.02 }
    }

    /// QEMU made its sockets under umask 077 (0700: a socket's x bit means nothing, and a
    /// tighter umask would make 9p directories in the share untraversable): make them 0600.
    private func secureSockets() {
        guard !socketsSecured else { return }
        socketsSecured = true
        for socket in [run.qmpSocket, run.hmpSocket, run.agentSocket] { try? setPermissions(socket, 0o600) }
    }
}
