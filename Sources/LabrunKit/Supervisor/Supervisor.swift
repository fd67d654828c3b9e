import FoundationEssentials
import Glibc

/// Why the supervisor's loop ended.
public enum ExitReason: Equatable, Sendable, CustomStringConvertible {
    /// Ctrl-a x or `labrun stop`: the VM was shut down on request.
    case quit
    /// QEMU exited by itself with status 0 (the guest powered off).
    case guestPoweroff
    /// labrun received a terminating signal; the VM was shut down gracefully.
    case signal(Signal)
    /// QEMU ended with an error (or was killed).
    case qemuFailed(String)

    public var exitCode: Int32 {
        switch self {
        case .quit, .guestPoweroff: 0
        case .signal(let s): 128 + s.rawValue
        case .qemuFailed: 1
        }
    }

    public var description: String {
        switch self {
        case .quit: "the VM was shut down"
        case .guestPoweroff: "the guest powered off"
        case .signal(let s): "stopped by \(s); the VM was shut down"
        case .qemuFailed(let why): why
        }
    }
}

/// Wires the parts together and owns the poll loop: keyboard → escape parser → pty,
/// pty → screen, QEMU's stderr → notices, QMP, the human monitor (Ctrl-a c), and the
/// control socket. It performs snapshot operations one at a time through QMP, never
/// blocking the loop: each step continues from the QMP reply's completion.
public final class Supervisor {
    public let lab: Lab
    public let command: QemuCommand
    public let run: RunDirectory
    private let input: FileDescriptor
    private let screen: Screen
    private let startedAt = monotonicSeconds()

    private var child: ChildProcess!
    private var pty: PseudoTerminal!
    private var qemuStderr: FileDescriptor?
    private var stderrLines = LineBuffer(limit: 64 * 1024)
    private var lastQemuError: String?
    private var qmp: QMPClient?
    private let agent = GuestAgent()
    private var control: ControlServer!
    private var signals: SignalPipe!
    private var rawMode: RawMode?
    private var outputFlags: Int32?
    private var inputFlags: Int32?
    private var terminalGuard: TerminalGuard?

    private var parser = EscapeParser()
    private enum Mode { case console, prompt(LineEditor, defaultName: String), monitor(FileDescriptor), sysrq }
    private var mode: Mode = .console
    /// Guest output held while the user is in a prompt or the monitor (bounded: past the
    /// screen's high-water mark the loop stops reading the guest, so nothing is lost).
    private var held: [UInt8] = []
    private var toGuest: [UInt8] = []
    private var inputOpen = true
    private var ptyOpen = true

    private var exitReason: ExitReason?
    private var quitDeadline: Double?
    private var teardownStep = 0
    private var runState = "starting"
    private var shutdownRequestedByGuest = false

    private struct Operation {
        enum Origin { case control(ControlServer.ConnectionID), console }
        let origin: Origin
        let request: ControlRequest
    }
    private var operations: [Operation] = []
    private var operationRunning = false

    public init(lab: Lab, command: QemuCommand, input: FileDescriptor = .standardInput, output: FileDescriptor = .standardOutput) {
        self.lab = lab
        self.command = command
        self.run = lab.runDirectory
        self.input = input
        self.screen = Screen(fd: output)
    }

    /// Starts QEMU and runs until the VM is gone. The terminal is restored on every path.
    public func runUntilExit() throws(LabrunError) -> ExitReason {
        try start()
        defer { cleanUp() }
        loop()
        return exitReason ?? .quit
    }

    // MARK: start and clean-up

    private func start() throws(LabrunError) {
        ignoreBrokenPipeSignal()
        try run.create()
        do {
            control = try ControlServer(path: run.controlSocket)
            signals = try SignalPipe([.interrupt, .terminate, .hangup, .windowChanged, .child, .quit])
            let size = WindowSize.of(input)
            pty = try PseudoTerminal.open(size: size)
            try pty.primary.setNonBlocking(true)
            let errPipe = try FileDescriptor.pipe()
            var config = command.spawnConfiguration(runDirectory: run)
            config.standardInput = .path(pty.secondaryPath)
            config.standardOutput = .path(pty.secondaryPath)
            config.standardError = .descriptor(errPipe.writeEnd)
            config.newSession = true
            // QEMU creates its sockets under our umask: only this user may use them.
            let oldMask = umask(0o077)
            defer { umask(oldMask) }
            do {
                child = try Spawner.spawn(config)
            } catch {
                errPipe.readEnd.close()
                errPipe.writeEnd.close()
                throw error
            }
            errPipe.writeEnd.close()
            try errPipe.readEnd.setNonBlocking(true)
            qemuStderr = errPipe.readEnd
            // QEMU opened the secondary (it is its controlling terminal now): if labrun dies,
            // the primary closes, QEMU gets SIGHUP and exits instead of living on headless.
            pty.secondary.close()
        } catch {
            control?.close()
            signals?.uninstall()
            throw LabrunError("cannot start \(command.qemuBinary): \(error)")
        }
        try? "\(getpid())\n".write(toFile: run.pidFile)
        if input.isTerminal {
            do {
                rawMode = try RawMode(input)
                terminalGuard = TerminalGuard.start(settings: rawMode!.originalSettingsHex, terminal: input)
            } catch {
                screen.notice("warning: could not put the terminal in raw mode (\(error)); keys are line-buffered")
            }
        }
        // Non-blocking I/O on the user's side; the flags are put back at exit (stdout may be
        // a pipe or file shared with the shell, not the terminal RawMode restores).
        outputFlags = try? screen.fd.fileStatusFlags()
        inputFlags = try? input.fileStatusFlags()
        try? screen.fd.setNonBlocking(true)
        try? input.setNonBlocking(true)
        control.onRequest = { [unowned self] id, request in self.received(request, from: id) }
        agent.onReady = { [unowned self] in self.agentStarted() }
        screen.notice("booting \(lab.root) (\(command.accelerator.rawValue), \(command.memoryMiB) MiB, QEMU pid \(child.pid)); Ctrl-a h for help, Ctrl-a x to quit")
    }

    private func cleanUp() {
        if case .monitor(let fd) = mode { fd.close() }
        qmp?.close()
        agent.close()
        control.close()
        signals.uninstall()
        screen.drain(seconds: 2)
        rawMode?.restore()
        if let f = outputFlags { try? screen.fd.setFileStatusFlags(f) }
        if let f = inputFlags { try? input.setFileStatusFlags(f) }
        terminalGuard?.dismiss()
        pty.primary.close()
        qemuStderr?.close()
        if child.poll() == nil {
            child.send(.kill)
            child.wait()
        }
        run.cleanStale()
    }

    // MARK: the loop

    private func loop() {
        while true {
            if child.status != nil && !ptyOpen { break }
            var set = PollSet()
            set.add(signals.readEnd)
            if ptyOpen { set.add(pty.primary, read: !screen.isFull && held.count < screen.highWater, write: !toGuest.isEmpty) }
            if inputOpen && toGuest.count < (1 << 20) { set.add(input) }
            if screen.wantsWrite { set.add(screen.fd, read: false, write: true) }
            if let e = qemuStderr { set.add(e) }
            if let q = qmp, !q.isClosed { set.add(q.fd, read: true, write: q.wantsWrite) }
            if let a = agent.fd { set.add(a, read: true, write: agent.wantsWrite) }
            if case .monitor(let m) = mode { set.add(m) }
            for (fd, w) in control.pollInterests { set.add(fd, read: true, write: w) }

            let ready: [FileDescriptor: Readiness]
            do { ready = try set.wait(timeout: nextTimeout()) } catch { exitReason = exitReason ?? .qemuFailed("poll failed: \(error)"); break }

            if ready[signals.readEnd] != nil { handleSignals() }
            if let r = ready[pty.primary] { handlePty(r) }
            // POLLNVAL too: a closed stdin must end keyboard input, not spin the loop.
            if let r = ready[input], r.readable || r.hangup || r.invalid { handleKeyboard() }
            if let r = ready[screen.fd], r.writable { screen.flush() }
            if let e = qemuStderr, let r = ready[e] { if r.readable || r.hangup { handleQemuStderr(e) } }
            if let q = qmp, let r = ready[q.fd] {
                if r.writable { q.flush() }
                if r.readable || r.hangup { q.handleReadable() }
            }
            if let a = agent.fd, let r = ready[a] {
                if r.writable { agent.flush() }
                if r.readable || r.hangup { agent.handleReadable() }
            }
            if case .monitor(let m) = mode, let r = ready[m] { handleMonitorOutput(m, r) }
            for (fd, r) in ready where control.owns(fd) { control.handle(fd, r) }

            connectQMPIfNeeded()
            advanceTeardown()
            screen.tick()
            if !waitingForAgent.isEmpty { expireAgentWaits() }
            if child.status != nil { noteQemuExit() }
        }
    }

    private var isConsoleMode: Bool { if case .console = mode { return true }; return false }

    private func nextTimeout() -> Int32 {
        var t: Double = -1
        if needsConnection { t = max(0, nextConnectAttempt - monotonicSeconds()) }
        if let d = quitDeadline { let left = max(0, d - monotonicSeconds()); t = t < 0 ? left : min(t, left) }
        if child.status != nil { t = t < 0 ? 0.05 : min(t, 0.05) }
        if !waitingForAgent.isEmpty { t = t < 0 ? 1 : min(t, 1) }
        if let d = screen.noticeDeadline { let left = max(0, d - monotonicSeconds()); t = t < 0 ? left : min(t, left) }
        return t < 0 ? -1 : Int32(t * 1000) + 1
    }

    // MARK: guest console

    private func handlePty(_ r: Readiness) {
        if r.writable { writeToGuest() }
        guard r.readable || r.hangup || r.invalid else { return }
        switch pty.primary.read() {
        case .success(let bytes) where !bytes.isEmpty:
            if isConsoleMode { screen.guest(bytes) } else { held += bytes }
        case .failure(.wouldBlock): break
        default:
            // EIO: QEMU closed its side. Console closed; the exit is noticed via SIGCHLD.
            ptyOpen = false
        }
    }

    private func handleKeyboard() {
        switch input.read(upTo: 4096) {
        case .success(let bytes) where !bytes.isEmpty:
            handleKeys(bytes)
        case .failure(.wouldBlock): return
        default:
            inputOpen = false
            // The user's terminal is gone (hang-up): shut the VM down rather than run headless.
            if input.isTerminal || rawMode != nil { beginQuit(.signal(.hangup)) }
        }
    }

    private func handleKeys(_ bytes: [UInt8]) {
        var rest = bytes[...]
        while !rest.isEmpty {
            switch mode {
            case .prompt(var editor, let def):
                // The editor takes this read up to the line's end (one key's escape sequence
                // arrives in one read; a lone Esc at its end cancels); later keys stay for the guest.
                let end = rest.firstIndex { $0 == 0x0D || $0 == 0x0A || $0 == 0x03 }.map { rest.index(after: $0) } ?? rest.endIndex
                let chunk = rest[..<end]
                rest = rest[end...]
                switch editor.feed(chunk) {
                case .editing(let echo):
                    mode = .prompt(editor, defaultName: def)
                    screen.raw(echo)
                case .cancelled:
                    screen.raw([0x0D, 0x0A])
                    leaveHoldingMode(notice: "snapshot cancelled")
                case .accepted(let text):
                    screen.raw([0x0D, 0x0A])
                    let name = text.isEmpty ? def : text
                    leaveHoldingMode(notice: nil)
                    enqueue(Operation(origin: .console, request: ControlRequest(.snapshotCreate, name: name)))
                }
            case .sysrq:
                let b = rest.removeFirst()
                mode = .console
                sendSysRq(b)
            case .console, .monitor:
                // Parse up to and including the byte after a Ctrl-a, so a command that
                // changes mode (monitor, prompt) takes effect for the bytes after it.
                let cut: Int
                if parser.awaitingCommand {
                    cut = 1
                } else if let e = rest.firstIndex(of: EscapeKeys.escape) {
                    cut = min(rest.distance(from: rest.startIndex, to: e) + 2, rest.count)
                } else {
                    cut = rest.count
                }
                let chunk = rest.prefix(cut)
                rest = rest.dropFirst(cut)
                for action in parser.feed(chunk) {
                    switch action {
                    case .forward(let data): forward(data)
                    case .command(let c): perform(c)
                    }
                }
            }
        }
    }

    /// Keyboard bytes to the guest (written at once; what the pty does not take waits for
    /// POLLOUT), or to the monitor when it is shown.
    private func forward(_ data: [UInt8]) {
        if case .monitor(let m) = mode {
            try? m.writeAll(data)
            return
        }
        toGuest += data
        writeToGuest()
    }

    private func writeToGuest() {
        guard ptyOpen, !toGuest.isEmpty else { return }
        switch pty.primary.write(toGuest) {
        case .success(let n): toGuest.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: toGuest.removeAll()
        }
    }

    private func perform(_ command: EscapeCommand) {
        switch command {
        case .quit:
            screen.notice("quitting: shutting the VM down", now: true)
            beginQuit(.quit)
        case .help:
            screen.raw(Array(("\r\n" + EscapeKeys.helpText).utf8))
        case .snapshot:
            guard isConsoleMode || isMonitorMode else { return }
            leaveMonitorIfShown()
            let def = SnapshotName.defaultName(date: Date())
            mode = .prompt(LineEditor(), defaultName: def)
            screen.prompt("snapshot name [\(def)] (Enter accepts, Esc cancels): ")
        case .monitor:
            if case .monitor(let m) = mode {
                m.close()
                mode = .console
                leaveHoldingMode(notice: "back to the guest console")
            } else {
                enterMonitor()
            }
        case .status:
            screen.notice(statusLine(), now: true)
        case .sendBreak:
            guard qmp?.isReady == true else { return screen.notice("QEMU is not ready yet", now: true) }
            mode = .sysrq
            screen.notice("SysRq: press the command key (h lists them in the guest's log, s sync, u remount ro, b reboot)", now: true)
        case .unknown(let b):
            screen.notice("Ctrl-a \(keyName(b)) does nothing; Ctrl-a h lists the keys", now: true)
        }
    }

    private var isMonitorMode: Bool { if case .monitor = mode { return true }; return false }

    private func leaveMonitorIfShown() {
        if case .monitor(let m) = mode {
            m.close()
            mode = .console
        }
    }

    private func keyName(_ b: UInt8) -> String {
        if b < 0x20 { return "Ctrl-" + String(UnicodeScalar(b + 0x60)) }
        if b < 0x7F { return String(UnicodeScalar(b)) }
        return "0x" + String(b, radix: 16)
    }

    /// Back to the console: print the held guest output after labrun's line.
    private func leaveHoldingMode(notice: String?) {
        mode = .console
        if let notice {
            screen.notice(notice + (held.isEmpty ? "" : " (guest output meanwhile follows)"), now: true)
        }
        if !held.isEmpty {
            screen.guest(held)
            held.removeAll()
        }
    }

    private func enterMonitor() {
        do {
            let m = try UnixSocket.connect(path: run.hmpSocket)
            try m.setNonBlocking(true)
            mode = .monitor(m)
            screen.notice("QEMU monitor (guest output is kept meanwhile); Ctrl-a c returns to the guest", now: true)
        } catch {
            screen.notice("cannot reach the QEMU monitor: \(error)", now: true)
        }
    }

    private func handleMonitorOutput(_ m: FileDescriptor, _ r: Readiness) {
        switch m.read() {
        case .success(let bytes) where !bytes.isEmpty: screen.raw(bytes)
        case .failure(.wouldBlock): break
        default:
            m.close()
            leaveHoldingMode(notice: "the monitor closed; back to the guest console")
        }
    }

    private func sendSysRq(_ b: UInt8) {
        let c = Character(UnicodeScalar(b))
        guard c.isLetter || c.isNumber, b < 0x80 else { return screen.notice("SysRq cancelled", now: true) }
        let key = String(c).lowercased()
        qmp?.send(.human("sendkey alt-sysrq-\(key)")) { [unowned self] r in
            if case .success(let out) = r, let e = HMPResult.error(in: out.string ?? "") {
                self.screen.notice("SysRq \(key) failed: \(e)")
            }
        }
        screen.notice("sent SysRq \(key) (Alt-SysRq-\(key) on the guest's keyboard)", now: true)
    }

    private func statusLine() -> String {
        "QEMU pid \(child.pid), \(runState), up \(Messages.formatSeconds(monotonicSeconds() - startedAt)), run directory \(run.path)"
    }

    // MARK: QEMU's stderr and lifecycle

    private func handleQemuStderr(_ e: FileDescriptor) {
        switch e.read() {
        case .success(let bytes) where !bytes.isEmpty:
            for line in (try? stderrLines.append(bytes)) ?? [] {
                let text = String(decoding: line, as: UTF8.self).trimmed
                guard !text.isEmpty else { continue }
                lastQemuError = text
                screen.notice("qemu: " + text)
            }
        case .failure(.wouldBlock): break
        default:
            e.close()
            qemuStderr = nil
        }
    }

    /// When the next attempt to reach QEMU's sockets is due, and the current interval: 20 ms
    /// while QEMU starts (it creates them within a few ms), doubling to 1 s if nothing answers.
    private var nextConnectAttempt: Double = 0
    private var connectInterval: Double = 0.02
    private var needsConnection: Bool { child.status == nil && (qmp == nil || qmp?.isClosed == true || agent.fd == nil) }

    private func connectQMPIfNeeded() {
        guard needsConnection else { return }
        let now = monotonicSeconds()
        guard now >= nextConnectAttempt else { return }
        connectInterval = min(connectInterval * 2, 1)
        nextConnectAttempt = now + connectInterval
        // QEMU accepts one QMP client at a time; if our connection dropped, take it again.
        if qmp?.isClosed == true { qmp = nil }
        if qmp == nil, let fd = try? UnixSocket.connect(path: run.qmpSocket) {
            // QEMU made its sockets under umask 077 (0700: a socket's x bit means nothing, and a
            // tighter umask would make 9p directories in the share untraversable): make them 0600.
            for socket in [run.qmpSocket, run.hmpSocket, run.agentSocket] { chmod(socket, 0o600) }
            try? fd.setNonBlocking(true)
            let client = QMPClient(fd: fd)
            client.onEvent = { [unowned self] name, data in self.event(name, data) }
            client.onReady = { [unowned self] in
                self.runState = "running"
                unlink(self.run.resumeFile)
                self.startNextOperation()
            }
            qmp = client
        }
        if qmp != nil, agent.fd == nil, let fd = try? UnixSocket.connect(path: run.agentSocket) {
            try? fd.setNonBlocking(true)
            agent.attach(fd)
        }
        if !needsConnection { connectInterval = 0.02 }
    }


    /// The guest agent said hello (at boot, or after a guest reboot): mount the share if exported.
    private func agentStarted() {
        expireAgentWaits()
        guard let shared = command.options.shared else { return }
        agent.setShareMounted(true) { [unowned self] why in
            if let why { self.screen.notice("could not mount the shared folder at /mnt: \(why)") }
            else if !self.shareAnnounced {
                self.shareAnnounced = true
                self.screen.notice("\(shared) is mounted at /mnt in the guest")
            }
        }
    }
    private var shareAnnounced = false

    /// Requests that need the guest agent, waiting for it to start (at most `agentWait` s).
    private var waitingForAgent: [(request: ControlRequest, id: ControlServer.ConnectionID, deadline: Double)] = []
    private let agentWait: Double = 120

    private func whenAgentReady(_ request: ControlRequest, _ id: ControlServer.ConnectionID) {
        if agent.isReady { return dispatchAgentRequest(request, id) }
        control.respond(id, .progress("waiting for the guest to boot (its agent is not up yet)"))
        waitingForAgent.append((request, id, monotonicSeconds() + agentWait))
    }

    private func dispatchAgentRequest(_ request: ControlRequest, _ id: ControlServer.ConnectionID) {
        if request.op == .exec { return runInGuest(request, for: id) }
        var r = ControlResponse()
        r.message = "the guest is up"
        control.respond(id, r)
    }

    private func expireAgentWaits() {
        let now = monotonicSeconds()
        if agent.isReady {
            let ready = waitingForAgent
            waitingForAgent.removeAll()
            for w in ready { dispatchAgentRequest(w.request, w.id) }
            return
        }
        waitingForAgent.removeAll { w in
            guard w.deadline <= now || child.status != nil else { return false }
            control.respond(w.id, .failure(LabrunError("the guest agent did not start within \(Int(agentWait)) s: the guest may not have booted, or its image has no agent")))
            return true
        }
    }

    private func event(_ name: String, _ data: JSONValue?) {
        switch name {
        case "STOP": runState = "paused"
        case "RESUME": runState = "running"
        case "SHUTDOWN": shutdownRequestedByGuest = data?["guest"]?.bool ?? false
        default: break
        }
    }

    private func handleSignals() {
        for s in signals.drain() {
            switch s {
            case .windowChanged:
                if let size = WindowSize.of(input) { size.apply(to: pty.primary) }
            case .child:
                child.poll()
            default:
                beginQuit(.signal(s))
            }
        }
    }

    /// Graceful shutdown: QMP quit, then SIGTERM after 5 s, then SIGKILL after 2 s more.
    private func beginQuit(_ reason: ExitReason) {
        if exitReason == nil { exitReason = reason }
        guard quitDeadline == nil, child.status == nil else { return }
        if let q = qmp, q.isReady {
            q.send(.quit)
            quitDeadline = monotonicSeconds() + 5
        } else {
            child.send(.terminate)
            teardownStep = 1
            quitDeadline = monotonicSeconds() + 2
        }
    }

    private func advanceTeardown() {
        guard let d = quitDeadline, child.status == nil, monotonicSeconds() >= d else { return }
        switch teardownStep {
        case 0:
            child.send(.terminate)
            teardownStep = 1
            quitDeadline = monotonicSeconds() + 2
        default:
            child.send(.kill)
            quitDeadline = nil
        }
    }

    private func noteQemuExit() {
        guard let status = child.status else { return }
        // Drain what is left of the console, then end.
        while ptyOpen {
            switch pty.primary.read() {
            case .success(let bytes) where !bytes.isEmpty: if isConsoleMode { screen.guest(bytes) } else { held += bytes }
            default: ptyOpen = false
            }
        }
        if let e = qemuStderr { handleQemuStderr(e) }
        if !held.isEmpty { leaveHoldingMode(notice: nil) }
        failAllOperations(LabrunError("QEMU ended (\(status)) before the operation completed"))
        if exitReason == nil {
            if status.isSuccess {
                exitReason = .guestPoweroff
            } else {
                let how = if case .signaled = status { "was \(status)" } else { "ended with \(status)" }
                exitReason = .qemuFailed("\(command.qemuBinary) \(how)" + (lastQemuError.map { ": \($0)" } ?? ""))
            }
        }
    }

    // MARK: operations (control socket and Ctrl-a s), one at a time

    private func received(_ request: ControlRequest, from id: ControlServer.ConnectionID) {
        switch request.op {
        case .status:
            var r = ControlResponse()
            r.status = SupervisorStatus(lab: lab.root, runDirectory: run.path, supervisorPid: getpid(), qemuPid: child.pid,
                                        runState: runState, uptimeSeconds: monotonicSeconds() - startedAt,
                                        accelerator: command.accelerator.rawValue, shared: command.options.shared,
                                        gdbPort: command.options.gdbPort, agent: agent.isReady)
            r.message = statusLine()
            control.respond(id, r)
        case .stop:
            var r = ControlResponse()
            r.message = "stopping the VM"
            control.respond(id, r)
            screen.notice("`labrun stop` requested: shutting the VM down")
            beginQuit(.quit)
        case .exec, .waitReady:
            whenAgentReady(request, id)
        default:
            enqueue(Operation(origin: .control(id), request: request))
        }
    }

    /// `labrun exec`: the command's output streams back as progress lines; the final
    /// response carries its exit status.
    private func runInGuest(_ request: ControlRequest, for id: ControlServer.ConnectionID) {
        guard let line = request.command, !line.isEmpty else {
            return control.respond(id, .failure(LabrunError("exec: no command given")))
        }
        agent.exec(line, timeout: request.timeout ?? 0) { [unowned self] event in
            var r = ControlResponse.progress("")
            r.message = nil
            switch event {
            case .stdout(let b): r.stdout = String(decoding: b, as: UTF8.self)
            case .stderr(let b): r.stderr = String(decoding: b, as: UTF8.self)
            case .exit(let code):
                r = ControlResponse()
                r.exitCode = code
                if code == 137 && (request.timeout ?? 0) > 0 { r.message = "the command was killed after \(request.timeout!) s (--timeout)" }
            case .failed(let why): r = .failure(LabrunError(why))
            case .disconnected: r = .failure(LabrunError("the guest agent went away before the command finished"))
            case .ok: return false
            }
            self.control.respond(id, r)
            return r.final
        }
    }

    private func enqueue(_ op: Operation) {
        if operationRunning || qmp?.isReady != true, case .control(let id) = op.origin {
            control.respond(id, .progress(operationRunning
                ? "waiting for another snapshot operation to finish"
                : "waiting for QEMU to finish starting"))
        }
        operations.append(op)
        startNextOperation()
    }

    private func startNextOperation() {
        guard !operationRunning, let q = qmp, q.isReady, !operations.isEmpty, quitDeadline == nil else { return }
        let op = operations.removeFirst()
        operationRunning = true
        let ops = LiveSnapshots(qmp: q, agent: agent, shareExported: command.options.shared != nil,
                                shape: command.shape, shapes: SnapshotShapes(lab: lab))
        let started = monotonicSeconds()
        let done: (ControlResponse) -> Void = { [unowned self] response in
            self.operationRunning = false
            self.finish(op, response, seconds: monotonicSeconds() - started)
            self.startNextOperation()
        }
        let r = op.request
        switch r.op {
        case .snapshotList: ops.list(done)
        case .snapshotCreate: ops.create(name: r.name ?? "", force: r.force ?? false, diskOnly: r.diskOnly ?? false, done)
        case .snapshotRestore: ops.restore(name: r.name ?? "", done)
        case .snapshotDelete: ops.delete(name: r.name ?? "", done)
        case .status, .stop, .exec, .waitReady: done(ControlResponse())
        }
    }

    private func finish(_ op: Operation, _ response: ControlResponse, seconds: Double) {
        switch op.origin {
        case .control(let id):
            control.respond(id, response)
            if op.request.op != .snapshotList, let m = response.message {
                screen.notice((response.ok ? "" : "failed: ") + m + " (requested from another terminal)")
            }
        case .console:
            screen.notice((response.ok ? "" : "failed: ") + (response.message ?? ""))
        }
    }

    private func failAllOperations(_ error: LabrunError) {
        let waiting = operations
        operations.removeAll()
        for op in waiting { finish(op, .failure(error), seconds: 0) }
    }
}

extension String {
    /// Writes the string to a file, replacing it.
    func write(toFile path: String) throws(SystemCallError) {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        try fd.closeAfter { () throws(SystemCallError) in try fd.writeAll(self) }
    }
}
