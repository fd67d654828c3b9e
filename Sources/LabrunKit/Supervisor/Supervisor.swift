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
    var startedAt = monotonicSeconds()
    /// Lines from before the VM started (`booting cold: …`), shown first to every terminal.
    let startupLines: [String]
    /// A terminal will attach as the owner (`labrun boot` in a terminal): it hears the end.
    public var ownerWillAttach = false

    // The parts that live as long as the supervisor, built by `start`.
    var signals: SignalEvents!
    var control: ControlServer!
    var hub: ConsoleHub!
    var log: ConsoleLog?
    var agentRequests: AgentRequests!
    var qmp: QMPClient? { didSet { parts = nil } }
    /// The parts the loop polls, rebuilt when a link comes or goes.
    var parts: [any LoopPart]?
    let agent = GuestAgent()
    var operations: OperationQueue!
    var suspender: Suspender!
    /// `labrun export` while the VM runs: one backup job at a time.
    var exporter: LiveExport!
    /// Keys that wait while the boot checkpoint is made or the VM is reset in place.
    var heldKeys: [UInt8] = []
    /// The guest's console size as the terminals last asked for it, and as the guest has it
    /// (set through its agent; a resumed checkpoint has the size it was made with).
    var consoleSize: WindowSize?
    var guestConsoleSize: WindowSize?
    /// The TERM of the terminal that counts.
    var consoleTerm: String?

    // The parts of the current QEMU, built by `launch`.
    var child: ChildProcess!
    var relay: GuestRelay!
    var qemuMessages: QemuMessages!
    var links: SocketLinks!
    var teardown: Teardown!
    var watchdog: QemuWatchdog!
    var checkpointer: BootCheckpointer?
    /// Kernel crash reports on the console (issue 13).
    let crashes = CrashWatch()

    /// A reset in place under way: the old QEMU is ending, a new one follows.
    var relaunching: Relaunch?
    /// The guest has written to its console since this QEMU started.
    var guestSpoke = false
    var exitReason: ExitReason?
    var runState = "starting"
    var exitNoted = false
    /// A resumed guest's clock and random pool are the saved ones: fixed once its agent answers.
    var resumedGuestIsStale = false

    public init(lab: Lab, command: QemuCommand, startupLines: [String] = []) {
        self.lab = lab
        self.command = command
        self.run = lab.runDirectory
        self.startupLines = startupLines
    }

    /// Starts QEMU and runs until the VM is gone; every attached terminal gets the reason.
    /// `started` runs once the console and control sockets answer.
    public func runUntilExit(started: () -> Void = {}) throws(LabrunError) -> ExitReason {
        try start()
        started()
        loop()
        let reason = exitReason ?? .quit
        cleanUp(reason)
        return reason
    }

    private func start() throws(LabrunError) {
        ignoreBrokenPipeSignal()
        try run.create()
        do {
            hub = try ConsoleHub(path: run.consoleSocket)
            control = try ControlServer(path: run.controlSocket)
            signals = try SignalEvents([.interrupt, .terminate, .hangup, .child, .quit])
        } catch {
            control?.close()
            hub?.close()
            throw LabrunError("cannot start \(command.qemuBinary): \(error)")
        }
        if lab.config.consoleLog {
            let l = ConsoleLog(path: lab.consoleLogPath, fileLimit: lab.config.logSize, files: lab.config.logFiles)
            l.notice = { [unowned self] text in hub.log = nil; hub.notice(text); hub.log = log }
            log = l
            hub.log = l
        }
        for line in startupLines { hub.notice(line) }
        agentRequests = AgentRequests(agent: agent, control: control)
        operations = OperationQueue(control: control) { [unowned self] in hub.notice($0) }
        let history = SnapshotHistory(lab: lab)
        operations.onOutcome = { op, outcome in
            history.note(outcome)
            if let text = op.description, case .created(_, let s?, _, _, _) = outcome { history.describe(s, text) }
        }
        do { try launch() } catch {
            control.close()
            hub.close()
            signals.pipe.uninstall()
            throw error
        }
        try? "\(currentProcessID)\n".write(toFile: run.pidFile)

        hub.welcome = { [unowned self] in
            ConsoleWelcome(lab: lab.root, supervisorPid: currentProcessID, monitorSocket: run.hmpSocket, others: 0)
        }
        hub.onKeys = { [unowned self] _, keys in
            if holdsKeys { heldKeys += keys; return }
            relay.send(keys)
            checkpointer?.keysForwarded(keys)
        }
        hub.canTakeKeys = { [unowned self] in relay.wantsKeys }
        hub.onCommand = { [unowned self] id, c in consoleCommand(c, from: id) }
        hub.onSize = { [unowned self] size in resizeConsole(size) }
        hub.onTerm = { [unowned self] term in
            consoleTerm = term
            if agent.isReady && checkpointer?.holdsGuest != true { agentRequests.setConsoleTerm(term) }
        }
        hub.onOwnerLost = { [unowned self] in
            hub.notice("the terminal that started this VM was killed: shutting the VM down")
            quit(.quit)
        }
        hub.onViewersChanged = { [unowned self] in parts = nil }
        signals.onSignal = { [unowned self] s in
            switch s {
            case .child: child.poll()
            // No terminal of its own: a hang-up means nothing here.
            case .hangup: break
            default: quit(.signal(s))
            }
        }

        agentRequests.share = command.options.shared
        agentRequests.notice = { [unowned self] in hub.notice($0) }
        agent.onReady = { [unowned self] in
            crashes.guestIsUp()
            let resumed = resumedGuestIsStale
            if resumedGuestIsStale {
                // First on the agent's queue, before anything a client asks.
                resumedGuestIsStale = false
                agentRequests.refreshResumedGuest()
            }
            if !resumed { agentRequests.showKernelWarnings() }
            syncGuestConsoleSize()
            if let checkpointer { return checkpointer.agentReady() }
            if let term = consoleTerm { agentRequests.setConsoleTerm(term) }
            agentRequests.agentStarted()
        }
        agentRequests.qemuRunning = { [unowned self] in child.status == nil }
        crashes.onReport = { [unowned self] report, new in crashReported(report, new: new) }
        crashes.onBootFailure = { [unowned self] reason in
            let line = "the guest did not boot: \(reason)"
            hub.notice(line + "; its initrd waits in a rescue shell (`labrun attach` to use it, `labrun stop` ends the VM)")
            agentRequests.guestDidNotBoot(line)
        }
        agentRequests.lastConsoleLine = { [unowned self] in crashes.lastLine }
        agentRequests.guestReady = { [unowned self] in agent.isReady && checkpointer?.holdsGuest != true }

        operations.makeJob = { [unowned self] request, done in
            let context = LiveSnapshotContext(lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
            return qmp.flatMap { $0.isReady ? LiveSnapshotJob(request, qmp: $0, agent: agent, context: context, done: done) : nil }
        }
        suspender = Suspender(operations: operations, control: control) { [unowned self] in hub.notice($0) }
        suspender.makeJob = { [unowned self] in qmp.flatMap { $0.isReady && relaunching == nil ? suspendJob($0) : nil } }
        suspender.onSuspended = { [unowned self] in quit(.suspended) }
        control.onRequest = { [unowned self] in received($1, from: $0) }
        exporter = LiveExport(control: control) { [unowned self] in hub.notice($0) }
        exporter.qmp = { [unowned self] in qmp }
        hub.notice("booting \(lab.root) (\(command.accelerator.rawValue), \(command.memoryMiB) MiB, QEMU pid \(child.pid)); Ctrl-a h for help, Ctrl-a d detaches, Ctrl-a x quits")
    }

    /// Keys wait while the boot checkpoint is being made or the VM is being reset.
    var holdsKeys: Bool { checkpointer?.holdsKeys == true || relaunching != nil }

    private func cleanUp(_ reason: ExitReason) {
        qmp?.close()
        agent.close()
        control.close()
        signals.pipe.uninstall()
        relay.close()
        qemuMessages.close()
        if child.poll() == nil {
            child.send(.kill)
            child.wait()
        }
        log?.labrun(reason.description)
        log?.close()
        if ownerWillAttach { hub.waitForOwner(seconds: 5) }
        run.cleanStale()
        // Last: the terminals leave once the sockets are gone (a command run right after sees
        // the VM stopped).
        hub.farewell(ConsoleFarewell(message: reason.description, exitCode: reason.exitCode))
        hub.close()
    }

    private func loop() {
        var set = PollSet()
        guard let events = try? EventSet() else {
            exitReason = exitReason ?? .qemuFailed("epoll_create1 failed")
            return
        }
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
            do { ready = try events.wait(set, timeout: timeout) } catch {
                exitReason = exitReason ?? .qemuFailed("poll failed: \(error)")
                break
            }
            let now = monotonicSeconds()
            for part in parts { part.handle(ready, now: now) }
            if !heldKeys.isEmpty && !holdsKeys {
                relay.send(heldKeys)
                heldKeys.removeAll()
            }
            if child.status != nil {
                if relaunching != nil { finishRelaunch() } else { noteQemuExit() }
            }
        }
    }

    private func currentParts() -> [any LoopPart] {
        var all: [any LoopPart] = [signals, relay, hub, qemuMessages]
        if let qmp { all.append(qmp) }
        all += [agent, control, links, teardown, watchdog, agentRequests] as [any LoopPart]
        if let log { all.append(log) }
        all.append(crashes)
        if let checkpointer { all.append(checkpointer) }
        all.append(exporter)
        parts = all
        return all
    }

    func connected(_ client: QMPClient) {
        client.onEvent = { [unowned self] name, _ in
            if name == "STOP" { runState = "paused" } else if name == "RESUME" { runState = "running" }
            if name == "GUEST_PANICKED" { crashes.guestSaysItPanicked() }
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
        crashes.finish()
        operations.failAll(LabrunError("QEMU ended (\(status)) before the operation completed"))
        if exitReason == nil { exitReason = ExitReason(qemu: command.qemuBinary, ended: status, lastMessage: qemuMessages.last) }
    }

    func suspendJob(_ q: QMPClient) -> SuspendJob {
        let job = SuspendJob(qmp: q, agent: agent, lab: lab, shape: command.shape, shareExported: command.options.shared != nil)
        job.kernel = command.options.kernel
        job.modules = command.options.modules
        return job
    }

    func statusLine() -> String {
        var state = watchdog.notResponding.map { "not responding: \($0)" } ?? runState
        if crashes.guestState != "running" { state += ", guest kernel \(crashes.guestState)" + (crashes.reports.last.map { " (\($0.title))" } ?? "") }
        if !agent.isReady { state += ", guest agent not up" }
        if let c = checkpointer?.phase.description { state += ", boot checkpoint \(c)" }
        return "QEMU pid \(child.pid), \(state), up \(Messages.formatSeconds(monotonicSeconds() - startedAt)), run directory \(run.path)"
    }
}
