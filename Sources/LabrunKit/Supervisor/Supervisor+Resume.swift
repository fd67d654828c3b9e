/// Booting by resuming saved state instead of booting: a suspended VM, or the boot checkpoint.
extension Supervisor {
    func resumeSuspended(_ client: QMPClient) {
        let since = SuspendedState.of(lab)?.since ?? "earlier"
        suspendJob(client).resume { [unowned self] why in
            if let why { return quit(.qemuFailed("the suspended VM could not be resumed: \(why); `labrun boot --cold` discards it")) }
            SuspendedState.discard(in: lab)
            resumed("resumed the VM suspended at \(since)", prompt: nil)
        }
    }

    /// Loads the boot checkpoint into this QEMU; one that does not load is moved aside and
    /// the VM boots cold instead, in place.
    func resumeCheckpoint(_ checkpoint: Checkpoint, _ client: QMPClient) {
        let began = startedAt
        MigrationFile.load(client, from: checkpoint.statePath) { [unowned self] why in
            let failed = { [unowned self] (why: String) in
                let moved = CheckpointStore(directory: parentDirectory(checkpoint.directory)).moveAside(checkpoint.directory)
                hub.notice(BootPlanner.damaged("QEMU could not load it (\(why))", moved))
                beginRelaunch(.cold)
            }
            if let why { return failed(why) }
            client.send(.cont) { [unowned self] r in
                if case .failure(let e) = r { return failed(e.desc) }
                resumed("resumed \(checkpoint.name) (\(checkpoint.summary)) in \(Messages.formatSeconds(monotonicSeconds() - began)) instead of booting", prompt: checkpoint.record.prompt)
            }
        }
    }

    /// A resumed VM (no boot, no agent hello): its agent is already up, its clock and random
    /// pool are stale, and its console shows the line it stood at.
    func resumed(_ line: String, prompt: String?) {
        resumedGuestIsStale = true
        agent.assumeReady()
        // At once (not after the old VM's unfinished line): the prompt belongs after it.
        hub.notice(line, urgent: true)
        // The prompt the checkpoint stood at: shown, but not logged (this guest did not print it).
        if let prompt { hub.output(Array(prompt.utf8), logged: false) }
        operations.qemuReady()
    }
}
