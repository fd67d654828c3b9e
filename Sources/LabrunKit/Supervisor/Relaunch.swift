/// Starting the VM again without leaving the console (issue 11, reset in place): the old QEMU
/// is shut down, the runtime layers change, and a new QEMU starts on the same terminal,
/// resuming the golden image's boot checkpoint when it can.
enum Relaunch: Equatable {
    /// `labrun reset` (or Ctrl-a r): a fresh runtime layer; `undo`: the previous one.
    case reset(undo: Bool, requester: ControlServer.ConnectionID?)
    /// The boot checkpoint did not load: boot cold on a fresh runtime layer.
    case cold
}

extension Supervisor {
    /// Ends the current QEMU and starts another once it has gone (`finishRelaunch`).
    func beginRelaunch(_ what: Relaunch) {
        guard relaunching == nil, exitReason == nil else {
            if case .reset(_, let id?) = what { control.respond(id, .failure(LabrunError("not reset: the VM is already being reset or shut down"))) }
            return
        }
        if case .reset = what, !operations.isIdle || checkpointer?.phase == .saving {
            let why = "not reset: a snapshot or the boot checkpoint is being saved; try again in a moment"
            if case .reset(_, let id?) = what { control.respond(id, .failure(LabrunError(why))) } else { hub.notice(why) }
            return
        }
        relaunching = what
        checkpointer?.cancel()
        operations.closed = true
        teardown.begin(watchdog.notResponding == nil ? TeardownStep.graceful : TeardownStep.unresponsive)
    }

    /// The old QEMU has ended: swap the layers, plan the boot and launch the new QEMU.
    func finishRelaunch() {
        guard let what = relaunching else { return }
        let began = monotonicSeconds()
        relay.drain()
        qemuMessages.read()
        relay.close()
        qemuMessages.close()
        qmp?.close()
        qmp = nil
        agent.reset()
        crashes.restart()
        agentRequests.guestRecovered()
        operations.qemuRestarting(LabrunError("the VM was reset before the operation completed"))
        var requester: ControlServer.ConnectionID?
        var done = ""
        do {
            let controller = LabController(lab: lab)
            var options = command.options
            options.resumeSuspended = false
            options.loadSnapshot = nil
            options.waitForGdb = false
            switch what {
            case .reset(let undo, let id):
                requester = id
                done = undo ? try controller.undoReset() : try controller.resetRuntimeLayer()
            case .cold:
                removeFile(lab.runtimePath)
                _ = try controller.ensureRuntimeLayer()
            }
            if let suspended = SuspendedState.of(lab) {
                options = options.resuming(suspended, in: lab)
            } else {
                options = try BootPlanner.plan(lab, options, cold: false) { [unowned self] in hub.notice($0) }
            }
            command = try QemuCommand(lab: lab, options: options)
            relaunching = nil
            try launch()
        } catch {
            relaunching = nil
            exitReason = .qemuFailed("the VM could not be started again: \(error.message)")
            if let requester { control.respond(requester, .failure(LabrunError("\(exitReason!)"))) }
            return
        }
        let how = command.options.resumesCheckpoint ? "resuming the boot checkpoint" : command.options.resumeSuspended ? "resuming its suspended VM" : "booting"
        let line = (done.isEmpty ? "started again" : done) + " (\(how); QEMU pid \(child.pid), \(Messages.formatSeconds(monotonicSeconds() - began)) so far)"
        hub.notice(line)
        if let requester {
            var r = ControlResponse()
            r.message = line
            control.respond(requester, r)
        }
    }
}
