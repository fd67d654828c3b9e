/// Starting the VM again without leaving the console (issue 11, reset in place): the old QEMU
/// is shut down, the runtime layers change, and a new QEMU starts on the same terminal,
/// resuming the golden image's boot checkpoint when it can.
enum Relaunch: Equatable {
    /// `labrun reset` (or Ctrl-a r): a fresh runtime layer; `undo`: the previous one.
    case reset(undo: Bool, requester: ControlServer.ConnectionID?)
    /// The boot checkpoint did not load: boot cold on a fresh runtime layer.
    case cold
    /// `snapshot rename` of a running VM: it was suspended; rename, then resume it.
    case rename(old: String, new: String, requester: ControlServer.ConnectionID?, began: Double)
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
        var renameFailure: LabrunError?
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
            case .rename(let old, let new, let id, _):
                requester = id
                // The VM resumes whether or not the rename worked; the answer says which.
                do {
                    _ = try controller.renameOffline(old, to: new)
                    done = "renamed snapshot '\(old)' to '\(new)'; the VM was paused"
                } catch {
                    done = "not renamed: \(error.message); the VM was paused"
                    renameFailure = error
                }
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
        if case .rename(_, _, _, let pausedAt) = what {
            // What the user sees: one line, the pause it cost.
            let line = done + " for \(Messages.formatSeconds(monotonicSeconds() - pausedAt)) while QEMU reopened the image"
            hub.notice(line)
            if let requester {
                if let failure = renameFailure {
                    control.respond(requester, .failure(LabrunError("\(failure.message) (the VM runs on)")))
                } else {
                    var r = ControlResponse()
                    r.message = line
                    control.respond(requester, r)
                }
            }
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

extension Supervisor {
    /// `snapshot rename` while the VM runs: QEMU has no rename and keeps the snapshot table in
    /// memory, so the VM is suspended (its state to a file, as `labrun suspend` does), QEMU
    /// ends, the table is rewritten, and a new QEMU resumes the VM on the same terminals.
    /// The names are checked first, so a refusal never pauses the VM.
    func renameSnapshot(_ old: String, to new: String, requester id: ControlServer.ConnectionID) {
        do { _ = try LabController(lab: lab).renameTarget(old, to: new) } catch {
            return control.respond(id, .failure(LabrunError("not renamed: \(error.message)")))
        }
        guard relaunching == nil, exitReason == nil, operations.isIdle, !operations.closed,
              let job = suspender.makeJob() else {
            return control.respond(id, .failure(LabrunError("not renamed: QEMU is starting, busy with a snapshot, or shutting down; try again")))
        }
        let began = monotonicSeconds()
        control.respond(id, .progress("pausing the VM to rename snapshot '\(old)' (QEMU cannot rename while it holds the image)"))
        operations.closed = true
        job.suspend { [unowned self] why in
            if let why {
                operations.closed = false
                return control.respond(id, .failure(LabrunError("not renamed: \(why); the VM runs on")))
            }
            operations.closed = false
            beginRelaunch(.rename(old: old, new: new, requester: id, began: began))
        }
    }
}
