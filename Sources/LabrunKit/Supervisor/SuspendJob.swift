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

    init(qmp: QMPClient, agent: GuestAgent, lab: Lab, shape: VMShape, shareExported: Bool) {
        self.qmp = qmp
        self.agent = agent
        self.lab = lab
        self.shape = shape
        self.shareExported = shareExported
    }

    /// QEMU's exec: migration runs `sh -c`: only this labrun-made path, quoted, goes there.
    private func exec(_ command: String, _ path: String) -> JSONValue { .string("exec:\(command) \(shellQuoted(path))") }

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
        qmp.enableMigrationEvents { [self] err in
            if let err { return failed(err) }
            qmp.send(QMPCommand("stop"))
            qmp.whenMigrationEnds { [self] status in
                guard status == "completed" else {
                    return qmp.send(.queryMigrate) { r in failed((try? r.get())?["error-desc"]?.string ?? "migration \(status)") }
                }
                do {
                    try renameFile(part, SuspendedState.statePath(lab))
                    try SuspendedState(date: wallClockSeconds(), shape: shape).save(in: lab)
                    done(nil)
                } catch {
                    SuspendedState.discard(in: lab)
                    failed("\(error)")
                }
            }
            qmp.send(QMPCommand("migrate", ["uri": exec("cat >", part)])) { r in
                if case .failure(let e) = r { failed(e.desc) }
            }
        }
    }

    /// Takes the saved state back into this QEMU (started with `-incoming defer`) and lets the
    /// VM go on; `done` gets nil on success, else the reason.
    func resume(_ done: @escaping (String?) -> Void) {
        qmp.enableMigrationEvents { [self] err in
            if let err { return done(err) }
            qmp.whenMigrationEnds { [self] status in
                guard status == "completed" else { return done("the saved state did not load (\(status))") }
                qmp.send(.cont) { r in
                    if case .failure(let e) = r { return done(e.desc) }
                    done(nil)
                }
            }
            qmp.send(QMPCommand("migrate-incoming", ["uri": exec("cat", SuspendedState.statePath(lab))])) { r in
                if case .failure(let e) = r { done(e.desc) }
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

    /// Answering on `control`, noting on `screen`.
    init(operations: OperationQueue, control: ControlServer, screen: Screen) {
        self.operations = operations
        reply = { [unowned control] in control.respond($0, $1) }
        notice = { [unowned screen] in screen.notice($0) }
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
