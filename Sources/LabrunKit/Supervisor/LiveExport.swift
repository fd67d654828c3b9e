/// `labrun export FILE` while the VM runs (issue 15 §5): a QMP `drive-backup` job (sync
/// full) copies the runtime disk with its whole backing chain into the empty standalone
/// qcow2 the CLI made (its `.part` name). The guest runs on: the job copies in
/// the background and copies a cluster aside before the guest overwrites it, so the copy is
/// the disk as it was when the job started.
///
/// Progress comes from query-block-jobs every half second, relayed to the client as
/// progress lines; the end from BLOCK_JOB_COMPLETED / BLOCK_JOB_CANCELLED. A client that
/// goes away (Ctrl-C, SIGTERM, SIGKILL) has its job cancelled. On any failure the partial
/// file is removed. Checking and renaming the result is the CLI's part (qemu-img would
/// block this loop).
final class LiveExport: LoopPart {
    /// The QMP client of the current QEMU (nil while none is ready).
    var qmp: () -> QMPClient? = { nil }
    var reply: (ControlServer.ConnectionID, ControlResponse) -> Void = { _, _ in }
    var isConnected: (ControlServer.ConnectionID) -> Bool = { _ in false }
    var notice: (String) -> Void = { _ in }
    /// How often the job's progress is asked for.
    static let pollInterval = 0.5

    private struct Running {
        let client: ControlServer.ConnectionID
        let jobID: String
        let path: String
        let qmp: QMPClient
        let started: Double
        var nextPoll: Double
        var cancelling = false
        var lastReported: Int64 = -1
    }
    private var running: Running?
    /// An export that waits for a cancelled one (whose client went away) to end.
    private var waiting: (path: String, compress: Bool, speed: Int, client: ControlServer.ConnectionID)?
    private var nextJob = 1

    init() {}

    /// Answering on `control`.
    convenience init(control: ControlServer, notice: @escaping (String) -> Void) {
        self.init()
        reply = { [unowned control] in control.respond($0, $1) }
        isConnected = { [unowned control] in control.isConnected($0) }
        self.notice = notice
    }

    var isIdle: Bool { running == nil }

    func start(path: String, compress: Bool, speed: Int, from client: ControlServer.ConnectionID) {
        if let r = running {
            // A job whose client has gone is being cancelled: the new export follows it.
            guard !isConnected(r.client), waiting == nil else {
                return reply(client, .failure(LabrunError("not exported: another export of this VM is under way; wait for it to finish")))
            }
            waiting = (path, compress, speed, client)
            reply(client, .progress("waiting for a cancelled export to end"))
            return cancel()
        }
        guard let q = qmp(), q.isReady, !q.isClosed else {
            return reply(client, .failure(LabrunError("not exported: QEMU is starting or shutting down; try again")))
        }
        guard path.hasPrefix("/"), fileExists(path) else {
            return reply(client, .failure(LabrunError("not exported: \(path) must be an absolute path to an empty qcow2 image of the disk's size")))
        }
        let jobID = "labrun-export-\(nextJob)"
        nextJob += 1
        let now = monotonicSeconds()
        running = Running(client: client, jobID: jobID, path: path, qmp: q, started: now, nextPoll: now + Self.pollInterval)
        // Registered before the command goes out: a small disk can finish before the reply.
        q.whenEvent { [weak self] name, data in
            guard name == "BLOCK_JOB_COMPLETED" || name == "BLOCK_JOB_CANCELLED", data?["device"]?.string == jobID else { return false }
            self?.ended(jobID, cancelled: name == "BLOCK_JOB_CANCELLED", error: data?["error"]?.string)
            return true
        }
        var args: [String: JSONValue] = [
            "job-id": .string(jobID), "device": .string(QemuCommand.runtimeNode), "target": .string(path),
            "format": .string("qcow2"), "sync": .string("full"), "mode": .string("existing"),
            "compress": .bool(compress),
        ]
        if speed > 0 { args["speed"] = .number(Double(speed)) }
        q.send(QMPCommand("drive-backup", args)) { [weak self] r in
            if case .failure(let e) = r { self?.finish(jobID, .failure(LabrunError("not exported: QEMU refused the backup job: \(e.desc)"))) }
        }
    }

    var interests: [PollInterest] { [] }
    /// The next poll of the job; now when an export waits to start.
    var deadline: Double? { running?.nextPoll ?? (waiting != nil ? 0 : nil) }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if running == nil, let w = waiting {
            waiting = nil
            start(path: w.path, compress: w.compress, speed: w.speed, from: w.client)
        }
        guard var r = running, now >= r.nextPoll else { return }
        r.nextPoll = now + Self.pollInterval
        running = r
        if r.qmp.isClosed {
            return finish(r.jobID, .failure(LabrunError("not exported: QEMU ended before the copy was complete")))
        }
        if !isConnected(r.client) { return cancel() }
        let jobID = r.jobID
        r.qmp.send(QMPCommand("query-block-jobs")) { [weak self] result in
            guard let self, let cur = running, cur.jobID == jobID, case .success(let jobs) = result,
                  let job = jobs.array?.first(where: { $0["device"]?.string == jobID }),
                  let done = job["offset"]?.int, let total = job["len"]?.int, done != cur.lastReported else { return }
            running?.lastReported = done
            var p = ControlResponse.progress("exporting")
            p.transfer = TransferProgress(done: done, total: total)
            reply(cur.client, p)
        }
    }

    /// Cancels the running job, whose client has gone.
    private func cancel() {
        guard let r = running, !r.cancelling else { return }
        running?.cancelling = true
        notice("export cancelled (its labrun command went away): removing \(r.path)")
        r.qmp.send(QMPCommand("block-job-cancel", ["device": .string(r.jobID), "force": .bool(true)]))
    }

    private func ended(_ jobID: String, cancelled: Bool, error: String?) {
        guard let r = running, r.jobID == jobID else { return }
        if cancelled { return finish(jobID, .failure(LabrunError("not exported: the copy was cancelled"))) }
        if let error { return finish(jobID, .failure(LabrunError("not exported: the copy failed: \(error)"))) }
        finish(jobID, .success(monotonicSeconds() - r.started))
    }

    private func finish(_ jobID: String, _ result: Result<Double, LabrunError>) {
        guard let r = running, r.jobID == jobID else { return }
        running = nil
        switch result {
        case .success(let seconds):
            var response = ControlResponse()
            response.message = "copied the running disk in \(Messages.formatSeconds(seconds))"
            reply(r.client, response)
        case .failure(let error):
            // QEMU may have created the file before failing; nothing half-written stays.
            removeFile(r.path)
            if !isConnected(r.client) { notice(error.message) }
            reply(r.client, .failure(error))
        }
        // An export waiting for this one starts on the next loop turn, not from inside the
        // QMP client's event dispatch (which it would add a waiter to).
    }
}
