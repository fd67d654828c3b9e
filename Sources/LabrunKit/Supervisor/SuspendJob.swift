/// `labrun suspend` (Ctrl-a z) and its counterpart at boot. Suspend: the share is unmounted
/// (9p blocks migration), the VM stopped, and its state streamed by QEMU's migration into a
/// file beside the runtime layer; the supervisor then ends QEMU. Resume: QEMU started with
/// `-incoming defer` takes the stream back, and the VM goes on where it was.
final class SuspendJob {
    let qmp: QMPClient
    let agent: GuestAgent
    let lab: Lab
    let shape: VMShape
    let shareExported: Bool
    /// `--kernel` and its `--modules` (nil: the lab's kernel), kept with the saved state.
    var kernel: String?
    var modules: String?

    init(qmp: QMPClient, agent: GuestAgent, lab: Lab, shape: VMShape, shareExported: Bool) {
        self.qmp = qmp
        self.agent = agent
        self.lab = lab
        self.shape = shape
        self.shareExported = shareExported
    }

    /// Saves the VM; `done` gets nil once the state is on disk (the VM is then stopped and
    /// may be ended), else the reason (the VM runs on as before).
    func suspend(_ done: @escaping (String?) -> Void) {
        MigrationGate.open(qmp: qmp, agent: agent, shareExported: shareExported) { [self] blocked, unmounted in
            if let blocked { return done(blocked) }
            save(unmounted: unmounted, done)
        }
    }

    private func save(unmounted: Bool, _ done: @escaping (String?) -> Void) {
        let part = SuspendedState.statePath(lab) + ".part"
        let failed: (String) -> Void = { [self] why in
            removeFile(part)
            qmp.send(.cont)
            guard unmounted else { return done(why) }
            agent.setShareMounted(true) { _ in done(why) }
        }
        MigrationFile.save(qmp, to: part) { [self] why in
            if let why { return failed(why) }
            do {
                try renameFile(part, SuspendedState.statePath(lab))
                try SuspendedState(date: wallClockSeconds(), shape: shape, kernel: kernel, modules: modules).save(in: lab)
                done(nil)
            } catch {
                SuspendedState.discard(in: lab)
                failed("\(error)")
            }
        }
    }

    /// Takes the saved state back into this QEMU (started with `-incoming defer`) and lets the
    /// VM go on; `done` gets nil on success, else the reason.
    func resume(_ done: @escaping (String?) -> Void) {
        MigrationFile.load(qmp, from: SuspendedState.statePath(lab)) { [self] why in
            if let why { return done(why) }
            qmp.send(.cont) { r in
                if case .failure(let e) = r { return done(e.desc) }
                done(nil)
            }
        }
    }
}

/// Who may suspend, and what is said: a suspend waits for no snapshot operation (it is
/// refused while one runs), stops new ones meanwhile, and ends the VM once the state is saved.
final class Suspender {
    let operations: OperationQueue
    var makeJob: () -> SuspendJob? = { nil }
    var reply: (ControlServer.ConnectionID, ControlResponse) -> Void = { _, _ in }
    var notice: (String) -> Void = { _ in }
    /// The state is on disk: end QEMU.
    var onSuspended: () -> Void = {}

    /// Answering on `control`, noting with `notice`.
    init(operations: OperationQueue, control: ControlServer, notice: @escaping (String) -> Void) {
        self.operations = operations
        reply = { [unowned control] in control.respond($0, $1) }
        self.notice = notice
    }

    func request(from id: ControlServer.ConnectionID?) {
        let answer = { [unowned self] (r: ControlResponse) in
            if let id { reply(id, r) }
            notice(r.ok ? (r.message ?? "") : "failed: " + (r.message ?? ""))
        }
        guard operations.isIdle, !operations.closed, let job = makeJob() else {
            return answer(.failure(LabrunError("not suspended: QEMU is starting, busy with a snapshot, or shutting down; try again")))
        }
        operations.closed = true
        job.suspend { [unowned self] why in
            if let why {
                operations.closed = false
                return answer(.failure(LabrunError("not suspended: \(why); the VM runs on")))
            }
            var r = ControlResponse()
            r.message = "suspended: the VM's state is saved; `labrun boot` resumes it where it was"
            answer(r)
            onSuspended()
        }
    }
}
