/// Snapshot operations, one at a time, from the control socket or the console (Ctrl-a s).
/// Each runs as a `LiveSnapshotJob`; its typed outcome goes back to the client that asked
/// and, rendered, to the console. A client that has gone still has its operation completed
/// and noted on the console. When QEMU hangs, the client waiting is told at once (and later
/// ones are refused) instead of waiting forever.
final class OperationQueue {
    enum Origin: Equatable { case control(ControlServer.ConnectionID), console }
    struct Operation {
        let origin: Origin
        let request: SnapshotRequest
        /// A new snapshot's description (Ctrl-a s asks for one after the name).
        var description: String? = nil
    }

    /// Answers a client.
    var reply: (ControlServer.ConnectionID, ControlResponse) -> Void = { _, _ in }
    var isConnected: (ControlServer.ConnectionID) -> Bool = { _ in false }
    /// A line on the console.
    var notice: (String) -> Void = { _ in }
    /// A job for the request, nil while QMP is not ready.
    var makeJob: (SnapshotRequest, @escaping LiveSnapshotJob.Done) -> LiveSnapshotJob? = { _, _ in nil }
    /// Every operation that succeeded, with its outcome (the lab's snapshot history follows it).
    var onOutcome: (Operation, SnapshotOutcome) -> Void = { _, _ in }
    /// No new operation starts (the VM is shutting down).
    var closed = false

    init() {}

    /// Answering on `control`, noting with `notice`.
    convenience init(control: ControlServer, notice: @escaping (String) -> Void) {
        self.init()
        reply = { [unowned control] in control.respond($0, $1) }
        isConnected = { [unowned control] in control.isConnected($0) }
        self.notice = notice
    }

    private var waiting: [Operation] = []
    private var running: (op: Operation, job: LiveSnapshotJob, abandoned: Bool)?
    /// Why QEMU does not answer, while it does not.
    private var hung: String?
    /// QMP has answered its handshake once: operations can start.
    private var startable = false

    var isIdle: Bool { running == nil && waiting.isEmpty }

    func enqueue(_ op: Operation) {
        if let hung, case .control(let id) = op.origin {
            return reply(id, .failure(LabrunError(Self.hungLine(op.request, hung))))
        }
        if case .control(let id) = op.origin, running != nil || !startable {
            reply(id, .progress(running != nil ? "waiting for another snapshot operation to finish" : "waiting for QEMU to finish starting"))
        }
        waiting.append(op)
        startNext()
    }

    /// QMP is ready: start what waits.
    func qemuReady() {
        startable = true
        startNext()
    }

    func startNext() {
        guard running == nil, !closed, hung == nil, !waiting.isEmpty else { return }
        let op = waiting[0]
        guard let job = makeJob(op.request, { [unowned self] result in self.finished(result) }) else { return }
        waiting.removeFirst()
        running = (op, job, false)
        job.start()
    }

    private func finished(_ result: Result<SnapshotOutcome, SnapshotError>) {
        guard let (op, _, abandoned) = running else { return }
        running = nil
        if case .success(let outcome) = result { onOutcome(op, outcome) }
        if abandoned { lateResult(op, result) } else { deliver(op, result) }
        startNext()
    }

    private func deliver(_ op: Operation, _ result: Result<SnapshotOutcome, SnapshotError>) {
        var response = ControlResponse()
        switch result {
        case .success(let outcome): response.outcome = outcome
        case .failure(let error): response = .failure(error.asLabrunError)
        }
        let line: String? = switch result {
        case .success(let outcome): Messages.text(of: outcome)
        case .failure(let error): "failed: " + Messages.text(of: error)
        }
        switch op.origin {
        case .control(let id):
            let present = isConnected(id)
            reply(id, response)
            if op.request != .list, let line {
                notice(line + (present ? " (requested from another terminal)" : " (requested from another terminal, which has gone)"))
            }
        case .console:
            if let line { notice(line) }
        }
    }

    /// QEMU answered after its client was told it hung: the client was told "not done", so a
    /// snapshot made late is removed again; anything else is only noted.
    private func lateResult(_ op: Operation, _ result: Result<SnapshotOutcome, SnapshotError>) {
        guard case .success(.created(let name, _, _, _, _)) = result else {
            let text: String = switch result {
            case .success(let outcome): Messages.text(of: outcome) ?? ""
            case .failure(let error): Messages.text(of: error)
            }
            if !text.isEmpty { notice("QEMU answers again; the operation it was stuck in ended: \(text)") }
            return
        }
        notice("QEMU answers again; snapshot '\(name)', reported as not created, was finished late: removing it")
        waiting.insert(Operation(origin: .console, request: .delete(name: name)), at: 0)
    }

    /// The watchdog judged QEMU hung: the waiting client gets one line now, queued ones too.
    func qemuHung(_ why: String) {
        hung = why
        if var r = running, !r.abandoned {
            r.abandoned = true
            r.job.cancel()
            running = r
            let line = Self.hungLine(r.op.request, why)
            if case .control(let id) = r.op.origin { reply(id, .failure(LabrunError(line))) }
            notice(line)
        }
        let queued = waiting
        waiting.removeAll()
        for op in queued {
            if case .control(let id) = op.origin { reply(id, .failure(LabrunError(Self.hungLine(op.request, why)))) }
        }
    }

    func qemuRecovered() {
        hung = nil
        startNext()
    }

    /// A progress line for the client of the running operation.
    func progress(_ text: String) {
        guard let r = running, !r.abandoned, case .control(let id) = r.op.origin else { return }
        reply(id, .progress(text))
    }

    /// QEMU ended: every operation fails with `error`.
    func failAll(_ error: LabrunError) {
        closed = true
        let all = (running.map { [$0.op] } ?? []) + waiting
        running = nil
        waiting.removeAll()
        for op in all { deliver(op, .failure(.failed(op.request, detail: error.message))) }
    }

    /// The VM is being started again in place (a reset): what waits fails now, and new
    /// operations wait for the new QEMU's handshake.
    func qemuRestarting(_ error: LabrunError) {
        failAll(error)
        closed = false
        startable = false
        hung = nil
    }

    /// The one line a client gets when QEMU hangs under its request (nil: not a snapshot request).
    static func hungLine(_ request: SnapshotRequest?, _ why: String) -> String {
        "\(request.map(Messages.notDone) ?? "no answer from the guest"): \(why); `labrun stop` ends it (`labrun status` shows its state)"
    }
}
