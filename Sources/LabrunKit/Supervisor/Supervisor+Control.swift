/// The control requests a running supervisor answers (`labrun status`, `stop`, `exec`, …).
extension Supervisor {
    func received(_ request: ControlRequest, from id: ControlServer.ConnectionID) {
        switch request.command {
        case .status:
            var r = ControlResponse()
            let stuck = watchdog.notResponding
            r.status = SupervisorStatus(lab: lab.root, runDirectory: run.path, supervisorPid: currentProcessID, qemuPid: child.pid,
                                        runState: stuck == nil ? runState : "not responding", uptimeSeconds: monotonicSeconds() - startedAt,
                                        accelerator: command.accelerator.rawValue, shared: command.options.shared,
                                        gdbPort: command.options.gdbPort, agent: agent.isReady, notResponding: stuck,
                                        guest: stuck == nil ? crashes.guestState : "not responding", lastReport: crashes.reports.last?.title,
                                        kernel: command.kernelPath, bootCheckpoint: checkpointer?.phase.description)
            r.message = statusLine()
            control.respond(id, r)
        case .stop:
            var r = ControlResponse()
            r.message = "stopping the VM"
            control.respond(id, r)
            hub.notice("`labrun stop` requested: shutting the VM down")
            quit(.quit)
        case .exec, .waitReady, .readFile:
            agentRequests.submit(request.command, from: id)
        case .snapshot(let r):
            operations.enqueue(.init(origin: .control(id), request: r))
        case .suspend:
            suspender.request(from: id)
        case .renameSnapshot(let old, let new):
            renameSnapshot(old, to: new, requester: id)
        case .reset(let undo):
            hub.notice(undo ? "`labrun reset --undo` requested: back to the previous runtime layer" : "`labrun reset` requested: back to the golden image")
            beginRelaunch(.reset(undo: undo, requester: id))
        case .export(let path, let compress, let speed):
            exporter.start(path: path, compress: compress, speed: speed, from: id)
        }
    }

    /// A console command from an attached terminal (its Ctrl-a keys that act on the VM).
    func consoleCommand(_ c: ConsoleCommand, from viewer: ConsoleHub.ViewerID) {
        switch c {
        case .quit:
            hub.notice("quitting: shutting the VM down")
            quit(.quit)
        case .suspend:
            hub.notice("suspending: saving the VM's state")
            suspender.request(from: nil)
        case .reset:
            hub.notice("resetting the VM to the golden image (Ctrl-a r)")
            beginRelaunch(.reset(undo: false, requester: nil))
        case .snapshot(let name, let description):
            operations.enqueue(.init(origin: .console, request: .create(name: name), description: description))
        case .sysrq(let key):
            guard let qmp, qmp.isReady else { return hub.notice("QEMU is not ready yet", to: viewer) }
            qmp.sendSysRq(key) { [unowned self] in hub.notice("SysRq \(key) failed: \($0)") }
        case .status:
            hub.notice(statusLine(), to: viewer)
        }
    }

    /// The terminal that counts changed size: the console pty, and the guest's own idea of
    /// its console (`stty size`, what vi and less draw), follow it.
    func resizeConsole(_ size: WindowSize) {
        consoleSize = size
        relay.resize(to: size)
        syncGuestConsoleSize()
    }

    /// Sets the guest's console size when it differs from what the terminals want (each change
    /// makes the guest's shell redraw its prompt).
    func syncGuestConsoleSize() {
        guard agent.isReady, let want = consoleSize, want != guestConsoleSize else { return }
        guestConsoleSize = want
        agentRequests.setConsoleSize(want, device: command.consoleDevice)
    }
}
