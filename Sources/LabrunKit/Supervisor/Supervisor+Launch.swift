/// Starting one QEMU: its pty, stderr, links, watchdog, teardown and (on a fresh runtime
/// layer) the boot checkpointer. Called once at start and again by a reset in place.
extension Supervisor {
    /// Starts `command`'s QEMU on a new pty and makes the parts that belong to it.
    func launch() throws(LabrunError) {
        guestSpoke = false
        let launch: QemuLaunch
        do {
            launch = try QemuLaunch.start(command.spawnConfiguration(runDirectory: run), size: consoleSize ?? WindowSize(rows: 24, columns: 80))
        } catch {
            throw LabrunError("cannot start \(command.qemuBinary): \(error)")
        }
        child = launch.child
        startedAt = monotonicSeconds()
        guestConsoleSize = nil
        if case .resume(let checkpoint) = command.options.checkpoint, let r = checkpoint.record.consoleRows, let c = checkpoint.record.consoleColumns {
            guestConsoleSize = WindowSize(rows: UInt16(clamping: r), columns: UInt16(clamping: c))
        }
        runState = "starting"
        exitNoted = false
        relay = GuestRelay(pty: launch.console)
        relay.onOutput = { [unowned self] in
            // A snapshot resumed with -loadvm is used up once the guest runs from it (its
            // console speaks), even if QMP's handshake has not finished when the VM is quit.
            if !guestSpoke {
                guestSpoke = true
                if command.options.loadSnapshot != nil { removeFile(run.resumeFile) }
            }
            checkpointer?.output($0)
            if lab.config.crashDetection { crashes.feed($0) }
            hub.output($0)
        }
        if let size = consoleSize { relay.resize(to: size) }
        qemuMessages = QemuMessages(fd: launch.stderr)
        qemuMessages.onLine = { [unowned self] in hub.notice("qemu: " + $0) }
        log?.boot(command.options.resumesCheckpoint ? "resume of the boot checkpoint" : command.options.resumeSuspended ? "resume of the suspended VM" : "boot")

        links = SocketLinks(run: run)
        links.needsQMP = { [unowned self] in child.status == nil && (qmp == nil || qmp!.isClosed) }
        links.needsAgent = { [unowned self] in child.status == nil && agent.fd == nil }
        links.onQMP = { [unowned self] in connected($0) }
        links.onAgent = { [unowned self] in agent.attach($0) }

        watchdog = QemuWatchdog(pid: child.pid, image: lab.runtimePath)
        watchdog.busySince = { [unowned self] in qmp?.oldestPendingSince }
        watchdog.onProgress = { [unowned self] in operations.progress($0) }
        watchdog.wantsProbe = { [unowned self] in agentRequests.isBusy }
        watchdog.probe = { [unowned self] in qmp?.send(.queryStatus) }
        watchdog.onHung = { [unowned self] in operations.qemuHung($0); agentRequests.qemuHung(OperationQueue.hungLine(nil, $0)); teardown.escalate() }
        watchdog.onRecovered = { [unowned self] in hub.notice("QEMU answers again"); operations.qemuRecovered(); agentRequests.qemuRecovered() }
        teardown = Teardown(child: child) { [unowned self] in qmp?.quitIfReady() ?? false }
        checkpointer = makeCheckpointer()
        parts = nil
    }

    func makeCheckpointer() -> BootCheckpointer? {
        guard case .make(let store, let key) = command.options.checkpoint else { return nil }
        let c = BootCheckpointer(store: store, key: key, runtime: lab.runtimePath, backing: lab.runtimeBacking)
        c.qmp = { [unowned self] in qmp }
        c.agent = agent
        c.shareExported = command.options.shared != nil
        c.operationsIdle = { [unowned self] in operations.isIdle }
        c.setOperationsPaused = { [unowned self] paused in
            operations.closed = paused || relaunching != nil || exitReason != nil
            if !operations.closed { operations.startNext() }
        }
        c.notice = { [unowned self] in hub.notice($0) }
        c.consoleSize = { [unowned self] in guestConsoleSize }
        c.onFinished = { [unowned self] in
            if let term = consoleTerm { agentRequests.setConsoleTerm(term) }
            agentRequests.agentStarted()
        }
        return c
    }
}
