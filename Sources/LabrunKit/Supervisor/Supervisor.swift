import FoundationEssentials

/// Wiring only: builds the parts, polls their interests, hands each part its readiness and
/// deadlines, and ends with an exit reason. Each part owns one job (Console/, Agent/, QMP/,
/// Control/, Process/, and the supervisor's own OperationQueue, SocketLinks, QemuWatchdog).
public final class Supervisor {
    public let lab: Lab
    public let command: QemuCommand
    public let run: RunDirectory
    private let input: FileDescriptor
    private let screen: Screen
    private let startedAt = monotonicSeconds()

    // The parts, built by `start`.
    private var child: ChildProcess!
    private var terminal: UserTerminal!
    private var signals: SignalEvents!
    private var control: ControlServer!
    private var relay: GuestRelay!
    private var keyboard: Keyboard!
    private var qemuMessages: QemuMessages!
    private var links: SocketLinks!
    private var teardown: Teardown!
    private var watchdog: QemuWatchdog!
    private var agentRequests: AgentRequests!
    private var qmp: QMPClient? { didSet { parts = nil } }
    /// The parts the loop polls, rebuilt when a link comes or goes.
    private var parts: [any LoopPart]?
    private let agent = GuestAgent()
    private var operations: OperationQueue!
    private var suspender: Suspender!
    private var console: ConsoleDesk!

    private var exitReason: ExitReason?
    private var runState = "starting"
    private var exitNoted = false

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
        let launch: QemuLaunch
        do {
            control = try ControlServer(path: run.controlSocket)
            signals = try SignalEvents([.interrupt, .terminate, .hangup, .windowChanged, .child, .quit])
            launch = try QemuLaunch.start(command.spawnConfiguration(runDirectory: run), size: WindowSize.of(input))
        } catch {
            control?.close()
            signals?.pipe.uninstall()
            throw LabrunError("cannot start \(command.qemuBinary): \(error)")
        }
        child = launch.child
        try? "\(currentProcessID)\n".write(toFile: run.pidFile)
        terminal = UserTerminal(input: input, output: screen.fd)
        if let w = terminal.warning { screen.notice("warning: " + w) }

        relay = GuestRelay(pty: launch.console)
        console = ConsoleDesk(screen: screen, relay: relay, monitorPath: run.hmpSocket)
        console.onQuit = { [unowned self] in quit(.quit) }
        console.onSuspend = { [unowned self] in suspender.request(from: nil) }
        console.statusLine = { [unowned self] in statusLine() }
        console.onSnapshot = { [unowned self] in operations.enqueue(.init(origin: .console, request: .create(name: $0))) }
        console.onSysRq = { [unowned self] key in qmp?.sendSysRq(key) { [unowned self] in screen.notice("SysRq \(key) failed: \($0)") } }
        console.qemuReady = { [unowned self] in qmp?.isReady == true }
        console.onMonitorChanged = { [unowned self] in parts = nil }
        relay.onOutput = { [unowned self] in console.guest($0) }
        relay.canTakeOutput = { [unowned self] in console.canTakeOutput }
        keyboard = Keyboard(fd: input)
        keyboard.accepting = { [unowned self] in relay.wantsKeys }
        keyboard.onKeys = { [unowned self] in console.keys($0) }
        // The user's terminal is gone (hang-up): shut the VM down rather than run headless.
        keyboard.onClosed = { [unowned self] in if terminal.isInteractive { quit(.signal(.hangup)) } }
        qemuMessages = QemuMessages(fd: launch.stderr)
        qemuMessages.onLine = { [unowned self] in screen.notice("qemu: " + $0) }
        signals.onSignal = { [unowned self] s in
            switch s {
            case .windowChanged: if let size = terminal.size { relay.resize(to: size) }
            case .child: child.poll()
            default: quit(.signal(s))
            }
        }

        links = SocketLinks(run: run)
        links.needsQMP = { [unowned self] in child.status == nil && (qmp == nil || qmp!.isClosed) }
        links.needsAgent = { [unowned self] in child.status == nil && agent.fd == nil }
        links.onQMP = { [unowned self] in connected($0) }
        links.onAgent = { [unowned self] in agent.attach($0) }
        agentRequests = AgentRequests(agent: agent, control: control)
        agentRequests.share = command.options.shared
        agentRequests.notice = { [unowned self] in screen.notice($0) }
        agent.onReady = { [unowned self] in agentRequests.agentStarted() }
        agentRequests.qemuRunning = { [unowned self] in child.status == nil }

        let context = LiveSnapshotContext(lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
        operations = OperationQueue(control: control, screen: screen)
        operations.makeJob = { [unowned self] request, done in
            qmp.flatMap { $0.isReady ? LiveSnapshotJob(request, qmp: $0, agent: agent, context: context, done: done) : nil }
        }
        suspender = Suspender(operations: operations, control: control, screen: screen)
        suspender.makeJob = { [unowned self] in qmp.flatMap { $0.isReady ? suspendJob($0) : nil } }
        suspender.onSuspended = { [unowned self] in quit(.suspended) }
        watchdog = QemuWatchdog(pid: child.pid, image: lab.runtimePath)
        watchdog.busySince = { [unowned self] in qmp?.oldestPendingSince }
        watchdog.onProgress = { [unowned self] in operations.progress($0) }
        watchdog.wantsProbe = { [unowned self] in agentRequests.isBusy }
        watchdog.probe = { [unowned self] in qmp?.send(.queryStatus) }
        watchdog.onHung = { [unowned self] in operations.qemuHung($0); agentRequests.qemuHung(OperationQueue.hungLine(nil, $0)); teardown.escalate() }
        watchdog.onRecovered = { [unowned self] in screen.notice("QEMU answers again"); operations.qemuRecovered(); agentRequests.qemuRecovered() }
        teardown = Teardown(child: child) { [unowned self] in qmp?.quitIfReady() ?? false }
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
        while !(child.status != nil && !relay.isOpen) {
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
            if child.status != nil { noteQemuExit() }
        }
    }

    private func currentParts() -> [any LoopPart] {
        var all: [any LoopPart] = [signals, relay, keyboard, screen, qemuMessages]
        if let qmp { all.append(qmp) }
        if let monitor = console.monitor { all.append(monitor) }
        all += [agent, control, links, teardown, watchdog, agentRequests] as [any LoopPart]
        parts = all
        return all
    }

    private func connected(_ client: QMPClient) {
        client.onEvent = { [unowned self] name, _ in
            if name == "STOP" { runState = "paused" } else if name == "RESUME" { runState = "running" }
        }
        client.onReady = { [unowned self] in
            runState = "running"
            removeFile(run.resumeFile)
            guard command.options.resumeSuspended else { return operations.qemuReady() }
            let since = SuspendedState.of(lab)?.since ?? "earlier"
            suspendJob(client).resume { [unowned self] why in
                if let why { return quit(.qemuFailed("the suspended VM could not be resumed: \(why); `labrun boot --cold` discards it")) }
                SuspendedState.discard(in: lab); agent.assumeReady()
                agentRequests.setGuestClock()
                screen.notice("resumed the VM suspended at \(since)")
                operations.qemuReady()
            }
        }
        qmp = client
    }

    /// Graceful shutdown (QMP quit, SIGTERM, SIGKILL); straight to the signals when QEMU hangs.
    private func quit(_ reason: ExitReason) {
        if exitReason == nil { exitReason = reason }
        operations.closed = true
        teardown.begin(watchdog.notResponding == nil ? TeardownStep.graceful : TeardownStep.unresponsive)
    }

    private func noteQemuExit() {
        guard !exitNoted, let status = child.status else { return }
        exitNoted = true
        relay.drain()
        qemuMessages.read()
        console.releaseHeld()
        operations.failAll(LabrunError("QEMU ended (\(status)) before the operation completed"))
        if exitReason == nil { exitReason = ExitReason(qemu: command.qemuBinary, ended: status, lastMessage: qemuMessages.last) }
    }

    private func received(_ request: ControlRequest, from id: ControlServer.ConnectionID) {
        switch request.command {
        case .status:
            var r = ControlResponse()
            let stuck = watchdog.notResponding
            r.status = SupervisorStatus(lab: lab.root, runDirectory: run.path, supervisorPid: currentProcessID, qemuPid: child.pid,
                                        runState: stuck == nil ? runState : "not responding", uptimeSeconds: monotonicSeconds() - startedAt,
                                        accelerator: command.accelerator.rawValue, shared: command.options.shared,
                                        gdbPort: command.options.gdbPort, agent: agent.isReady, notResponding: stuck)
            r.message = statusLine()
            control.respond(id, r)
        case .stop:
            var r = ControlResponse()
            r.message = "stopping the VM"
            control.respond(id, r)
            screen.notice("`labrun stop` requested: shutting the VM down")
            quit(.quit)
        case .exec, .waitReady:
            agentRequests.submit(request.command, from: id)
        case .snapshot(let r):
            operations.enqueue(.init(origin: .control(id), request: r))
        case .suspend:
            suspender.request(from: id)
        }
    }

    private func suspendJob(_ q: QMPClient) -> SuspendJob {
        SuspendJob(qmp: q, agent: agent, lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
    }

    private func statusLine() -> String {
        let state = watchdog.notResponding.map { "not responding: \($0)" } ?? runState
        return "QEMU pid \(child.pid), \(state), up \(Messages.formatSeconds(monotonicSeconds() - startedAt)), run directory \(run.path)"
    }
}
