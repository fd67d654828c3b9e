import FoundationEssentials

/// Wiring only: builds the parts, polls their interests, hands each part its readiness and
/// deadlines, and ends with an exit reason. Each part owns one job (Console/, Agent/, QMP/,
/// Control/, Process/, and the supervisor's own OperationQueue, SocketLinks, QemuWatchdog).
/// The parts that belong to one QEMU (the pty, its stderr, the links, the watchdog, the
/// teardown) are made by `launch`, again for each QEMU when the VM is reset in place.
public final class Supervisor {
    public let lab: Lab
    public internal(set) var command: QemuCommand
    public let run: RunDirectory
    let input: FileDescriptor
    let screen: Screen
    var startedAt = monotonicSeconds()

    // The parts that live as long as the supervisor, built by `start`.
    var terminal: UserTerminal!
    var signals: SignalEvents!
    var control: ControlServer!
    var keyboard: Keyboard!
    var agentRequests: AgentRequests!
    var qmp: QMPClient? { didSet { parts = nil } }
    /// The parts the loop polls, rebuilt when a link comes or goes.
    var parts: [any LoopPart]?
    let agent = GuestAgent()
    var operations: OperationQueue!
    var suspender: Suspender!
    var console: ConsoleDesk!

    // The parts of the current QEMU, built by `launch`.
    var child: ChildProcess!
    var relay: GuestRelay!
    var qemuMessages: QemuMessages!
    var links: SocketLinks!
    var teardown: Teardown!
    var watchdog: QemuWatchdog!
    var checkpointer: BootCheckpointer?

    /// A reset in place under way: the old QEMU is ending, a new one follows.
    var relaunching: Relaunch?
    var exitReason: ExitReason?
    var runState = "starting"
    var exitNoted = false
    /// A resumed guest's clock and random pool are the saved ones: fixed once its agent answers.
    var resumedGuestIsStale = false

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

    private func start() throws(LabrunError) {
        ignoreBrokenPipeSignal()
        try run.create()
        do {
            control = try ControlServer(path: run.controlSocket)
            signals = try SignalEvents([.interrupt, .terminate, .hangup, .windowChanged, .child, .quit])
        } catch {
            control?.close()
            throw LabrunError("cannot start \(command.qemuBinary): \(error)")
        }
        agentRequests = AgentRequests(agent: agent, control: control)
        operations = OperationQueue(control: control, screen: screen)
        console = ConsoleDesk(screen: screen, monitorPath: run.hmpSocket)
        do { try launch() } catch {
            control.close()
            signals.pipe.uninstall()
            throw error
        }
        try? "\(currentProcessID)\n".write(toFile: run.pidFile)
        terminal = UserTerminal(input: input, output: screen.fd)
        if let w = terminal.warning { screen.notice("warning: " + w) }

        console.toGuest = { [unowned self] in
            relay.send($0)
            checkpointer?.keysForwarded($0)
        }
        console.onQuit = { [unowned self] in quit(.quit) }
        console.onSuspend = { [unowned self] in suspender.request(from: nil) }
        console.onReset = { [unowned self] in beginRelaunch(.reset(undo: false, requester: nil)) }
        console.statusLine = { [unowned self] in statusLine() }
        console.onSnapshot = { [unowned self] in operations.enqueue(.init(origin: .console, request: .create(name: $0))) }
        console.onSysRq = { [unowned self] key in qmp?.sendSysRq(key) { [unowned self] in screen.notice("SysRq \(key) failed: \($0)") } }
        console.qemuReady = { [unowned self] in qmp?.isReady == true }
        console.onMonitorChanged = { [unowned self] in parts = nil }
        keyboard = Keyboard(fd: input)
        // Keys wait in the terminal while the guest cannot take them, a checkpoint is being
        // made, or the VM is being reset.
        keyboard.accepting = { [unowned self] in relay.wantsKeys && checkpointer?.holdsKeys != true && relaunching == nil }
        keyboard.onKeys = { [unowned self] in console.keys($0) }
        // The user's terminal is gone (hang-up): shut the VM down rather than run headless.
        keyboard.onClosed = { [unowned self] in if terminal.isInteractive { quit(.signal(.hangup)) } }
        signals.onSignal = { [unowned self] s in
            switch s {
            case .windowChanged: if let size = terminal.size { relay.resize(to: size) }
            case .child: child.poll()
            default: quit(.signal(s))
            }
        }

        agentRequests.share = command.options.shared
        agentRequests.notice = { [unowned self] in screen.notice($0) }
        agent.onReady = { [unowned self] in
            if resumedGuestIsStale {
                // First on the agent's queue, before anything a client asks.
                resumedGuestIsStale = false
                agentRequests.refreshResumedGuest()
            }
            if let checkpointer { checkpointer.agentReady() } else { agentRequests.agentStarted() }
        }
        agentRequests.qemuRunning = { [unowned self] in child.status == nil }
        agentRequests.guestReady = { [unowned self] in agent.isReady && checkpointer?.holdsGuest != true }

        operations.makeJob = { [unowned self] request, done in
            let context = LiveSnapshotContext(lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
            return qmp.flatMap { $0.isReady ? LiveSnapshotJob(request, qmp: $0, agent: agent, context: context, done: done) : nil }
        }
        suspender = Suspender(operations: operations, control: control, screen: screen)
        suspender.makeJob = { [unowned self] in qmp.flatMap { $0.isReady && relaunching == nil ? suspendJob($0) : nil } }
        suspender.onSuspended = { [unowned self] in quit(.suspended) }
        control.onRequest = { [unowned self] in received($1, from: $0) }
        screen.notice("booting \(lab.root) (\(command.accelerator.rawValue), \(command.memoryMiB) MiB, QEMU pid \(child.pid)); Ctrl-a h for help, Ctrl-a x to quit")
    }

    private func cleanUp() {
        console.close()
        qmp?.close()
        agent.close()
        control.close()
        signals.pipe.uninstall()
        screen.drain(seconds: 2)
        terminal.restore()
        relay.close()
        qemuMessages.close()
        if child.poll() == nil {
            child.send(.kill)
            child.wait()
        }
        run.cleanStale()
    }

    private func loop() {
        var set = PollSet()
        while !(child.status != nil && !relay.isOpen && relaunching == nil) {
            let parts = self.parts ?? currentParts()
            set.removeAll()
            var next: Double?
            for part in parts {
                part.addInterests(to: &set)
                if let d = part.deadline { next = min(next ?? d, d) }
            }
            if child.status != nil { next = min(next ?? .infinity, monotonicSeconds() + 0.05) }
            let timeout = next.map { Int32(max(0, $0 - monotonicSeconds()) * 1000) + 1 } ?? -1
            let ready: [FileDescriptor: Readiness]
            do { ready = try set.wait(timeout: timeout) } catch {
                exitReason = exitReason ?? .qemuFailed("poll failed: \(error)")
                break
            }
            let now = monotonicSeconds()
            for part in parts { part.handle(ready, now: now) }
            if child.status != nil {
                if relaunching != nil { finishRelaunch() } else { noteQemuExit() }
            }
        }
    }

    private func currentParts() -> [any LoopPart] {
        var all: [any LoopPart] = [signals, relay, keyboard, screen, qemuMessages]
        if let qmp { all.append(qmp) }
        if let monitor = console.monitor { all.append(monitor) }
        all += [agent, control, links, teardown, watchdog, agentRequests] as [any LoopPart]
        if let checkpointer { all.append(checkpointer) }
        parts = all
        return all
    }

    func connected(_ client: QMPClient) {
        client.onEvent = { [unowned self] name, _ in
            if name == "STOP" { runState = "paused" } else if name == "RESUME" { runState = "running" }
        }
        client.onReady = { [unowned self] in
            runState = "running"
            removeFile(run.resumeFile)
            if command.options.resumeSuspended { return resumeSuspended(client) }
            if case .resume(let checkpoint) = command.options.checkpoint { return resumeCheckpoint(checkpoint, client) }
            operations.qemuReady()
        }
        qmp = client
    }

    /// Graceful shutdown (QMP quit, SIGTERM, SIGKILL); straight to the signals when QEMU hangs.
    func quit(_ reason: ExitReason) {
        if exitReason == nil { exitReason = reason }
        relaunching = nil
        checkpointer?.cancel()
        operations.closed = true
        teardown.begin(watchdog.notResponding == nil ? TeardownStep.graceful : TeardownStep.unresponsive)
    }

    private func noteQemuExit() {
        guard !exitNoted, let status = child.status else { return }
        exitNoted = true
        checkpointer?.cancel()
        relay.drain()
        qemuMessages.read()
        console.releaseHeld()
        operations.failAll(LabrunError("QEMU ended (\(status)) before the operation completed"))
        if exitReason == nil { exitReason = ExitReason(qemu: command.qemuBinary, ended: status, lastMessage: qemuMessages.last) }
    }

    func suspendJob(_ q: QMPClient) -> SuspendJob {
        SuspendJob(qmp: q, agent: agent, lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
    }

    func statusLine() -> String {
        let state = watchdog.notResponding.map { "not responding: \($0)" } ?? runState
        return "QEMU pid \(child.pid), \(state), up \(Messages.formatSeconds(monotonicSeconds() - startedAt)), run directory \(run.path)"
    }
}
