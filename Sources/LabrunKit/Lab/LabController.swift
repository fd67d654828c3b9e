/// Where a command goes (ARCHITECTURE.md, "The routing decision").
public enum Route {
    /// A supervisor answers on the control socket: act through it (QMP).
    case live(SupervisorConnection)
    /// Nobody holds the images: act on them with qemu-img.
    case offline
}

/// One connection to a lab's running supervisor, good for one request.
public struct SupervisorConnection {
    let fd: FileDescriptor

    /// Sends the request and returns the final response; progress lines go to `progress`,
    /// else to stderr. A refusal throws its one line.
    public func send(_ command: ControlCommand, progress: ((ControlResponse) -> Void)? = nil) throws(LabrunError) -> ControlResponse {
        let r = try ControlClient.send(ControlRequest(command), on: fd) { response in
            if let progress { return progress(response) }
            if let line = response.message { try? FileDescriptor.standardError.writeAll("labrun: \(line)\n") }
        }
        if !r.ok { throw LabrunError(r.message ?? "the supervisor refused the request", exitCode: r.exitCode ?? 1) }
        return r
    }

    /// Closes it unused.
    public func close() { fd.close() }
}

/// The facade every command goes through: finds out whether the VM runs, cleans up after a
/// supervisor that died, and refuses when someone else's QEMU holds the images.
public struct LabController {
    public let lab: Lab
    public var run: RunDirectory { lab.runDirectory }

    public init(lab: Lab) { self.lab = lab }

    /// The image layers, top to bottom. The runtime layer stays first even when it does not
    /// exist yet: the lock probe judges the first path as the top layer (any QEMU lock is a
    /// conflict) and the others as backing layers (only a writer is), and the golden image is
    /// shared read-only by every lab made with `labrun init`, whose running VMs lock it. A file
    /// that does not exist counts as unlocked.
    public var layerPaths: [String] {
        [lab.runtimePath, lab.goldenPath, lab.basePath]
    }

    /// 1. a supervisor answers → live; 2. a layer is locked by another process → refuse,
    /// naming it; 3. offline. `action` completes "cannot …" in the refusal.
    ///
    /// The offline path holds the lab's command lock until the process ends, so that two
    /// offline commands at once (two terminals) run one after the other instead of meeting
    /// each other's qemu-img lock or both creating the same name.
    public func route(for action: String) throws(LabrunError) -> Route {
        if let denied = run.permissionProblem { throw LabrunError(denied) }
        if let link = supervisorOrCommandLock() { return .live(link) }
        cleanStaleRunDirectory()
        try ImageLock.requireUnlocked(layerPaths, action: action)
        return .offline
    }

    /// A connection to this lab's running supervisor, or nil once this process holds the
    /// lab's command lock (best effort: nil also when the lab directory cannot be opened).
    /// A boot holds the lock for its VM's whole life, so waiting for the lock alone would
    /// wait for the VM to stop: the wait ends as soon as a supervisor answers instead.
    func supervisorOrCommandLock() -> SupervisorConnection? {
        while true {
            if let link = supervisor() { return link }
            switch holdCommandLock() {
            case .held, .unavailable: return nil
            case .supervisorAnswers: continue
            }
        }
    }

    /// Labs whose command lock this process holds (an flock on the lab directory, released
    /// when the process exits).
    nonisolated(unsafe) private static var commandLocks: [String: FileDescriptor] = [:]

    enum CommandLock { case held, supervisorAnswers, unavailable }

    /// Takes this lab's command lock, waiting (and saying so) while another labrun command
    /// holds it, but only until a supervisor answers on the control socket: then it returns
    /// `.supervisorAnswers` without the lock.
    func holdCommandLock() -> CommandLock {
        if Self.commandLocks[lab.root] != nil { return .held }
        guard let fd = try? FileDescriptor.open(lab.root, FileDescriptor.directoryOnly) else { return .unavailable }
        if tryExclusiveLock(fd) {
            Self.commandLocks[lab.root] = fd
            return .held
        }
        try? FileDescriptor.standardError.writeAll("labrun: waiting for another labrun command on this lab to finish\n")
        while true {
            if tryExclusiveLock(fd) {
                Self.commandLocks[lab.root] = fd
                return .held
            }
            if isRunning {
                fd.close()
                return .supervisorAnswers
            }
            sleepSeconds(0.05)
        }
    }

    /// A connection to this lab's running supervisor, nil when none answers. The only place a
    /// command connects to the control socket.
    public func supervisor() -> SupervisorConnection? {
        ControlClient.connect(run.controlSocket).map(SupervisorConnection.init)
    }

    /// The running supervisor, or a one-line refusal saying how to start the VM.
    public func requireSupervisor() throws(LabrunError) -> SupervisorConnection {
        if let denied = run.permissionProblem { throw LabrunError(denied) }
        guard let link = supervisor() else {
            throw LabrunError("the VM is not running: start it with `labrun boot` (or `make run`) first")
        }
        return link
    }

    /// True when a supervisor answers for this lab.
    public var isRunning: Bool {
        guard let link = supervisor() else { return false }
        link.close()
        return true
    }

    /// Waits up to `seconds` for a supervisor to answer (one whose pid file names `pid`, when
    /// given); nil when none did, or `stillStarting` returned false.
    public func waitForSupervisor(seconds: Double, pid: Int32? = nil, stillStarting: () -> Bool = { true }) -> SupervisorConnection? {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline && stillStarting() {
            if pid == nil || run.readPid() == pid, let link = supervisor() { return link }
            sleepSeconds(0.02)
        }
        return nil
    }

    /// Carries out a snapshot request on the live or offline path, with the same rules and
    /// the same typed outcome on both. Offline restores and deletes keep the lab's "resume at
    /// next boot" record in step.
    public func snapshot(_ request: SnapshotRequest, progress: ((ControlResponse) -> Void)? = nil) throws(LabrunError) -> (outcome: SnapshotOutcome, live: Bool) {
        do { try SnapshotRules.validate(request) } catch { throw error.asLabrunError }
        switch try route(for: request.action) {
        case .live(let link):
            let r = try link.send(.snapshot(request), progress: progress)
            guard let outcome = r.outcome else { throw LabrunError("the supervisor sent no result") }
            return (outcome, true)
        case .offline:
            let outcome: SnapshotOutcome
            let offline = try offlineSnapshots()
            do { outcome = try offline.perform(request) } catch { throw error.asLabrunError }
            switch outcome {
            case .restored(let s, _, _, let resumes, _):
                // The disk went back: a suspended VM's state no longer fits it.
                SuspendedState.discard(in: lab)
                try setPendingResume(resumes ? s.name : nil)
            case .deleted(let name, _) where pendingResume == name: try setPendingResume(nil)
            default: break
            }
            SnapshotHistory(lab: lab).note(outcome)
            return (outcome, false)
        }
    }

    /// A supervisor killed with SIGKILL leaves its sockets and pid file behind: remove them
    /// when nobody answers and the recorded pid is gone. Returns the dead pid when it cleaned.
    @discardableResult
    public func cleanStaleRunDirectory() -> Int32? {
        guard fileExists(run.controlSocket) || fileExists(run.pidFile) else { return nil }
        let pid = run.readPid()
        if let pid, pid > 0, processExists(pid), isLabrun(pid) { return nil }
        run.cleanStale()
        return pid ?? 0
    }

    private func isLabrun(_ pid: Int32) -> Bool {
        guard let exe = realPath("/proc/\(pid)/exe") else { return true }
        return exe.hasSuffix("/labrun")
    }

    public func qemuImg() throws(LabrunError) -> QemuImg { try QemuImg() }

    public func offlineSnapshots() throws(LabrunError) -> OfflineSnapshots {
        try requireRuntime()
        return OfflineSnapshots(qemuImg: try qemuImg(), image: lab.runtimePath)
    }

    public func requireRuntime() throws(LabrunError) {
        guard fileExists(lab.runtimePath) else {
            if fileExists(lab.goldenPath) {
                throw LabrunError("\(lab.runtimePath) does not exist yet: `labrun boot` creates it (or `labrun reset --yes`)")
            }
            throw LabrunError("no lab images in \(lab.root): build the default guest with `make guest`")
        }
        try requireSoundRuntime()
    }

    /// Refuses, in one line, a runtime layer that is not qcow2 (raw garbage, an empty file) or
    /// whose backing chain has a missing file, before qemu-img or QEMU trips over it.
    public func requireSoundRuntime() throws(LabrunError) {
        if let problem = ImageHeader.problem(runtime: lab.runtimePath) { throw LabrunError(problem) }
        if let recorded = lab.config.goldenID, fileExists(lab.runtimePath), let now = lab.goldenIdentity, now != recorded {
            throw LabrunError("the golden image \(lab.goldenPath) was rebuilt after this lab's runtime layer was made on it, so the layer no longer matches: `labrun reset --yes` starts a fresh one (the old one is kept as the undo step)")
        }
    }

    /// Creates the runtime layer on the golden image when it is missing, with a relative
    /// backing path when both sit in the lab (so the lab can move).
    public func ensureRuntimeLayer() throws(LabrunError) -> Bool {
        guard !fileExists(lab.runtimePath) else { return false }
        guard fileExists(lab.goldenPath) else {
            throw LabrunError("no golden image at \(lab.goldenPath): build the default guest with `make guest`")
        }
        try qemuImg().createOverlay(path: lab.runtimePath, backing: lab.runtimeBacking, backingFormat: "qcow2")
        FreshRuntime.mark(lab)
        return true
    }

    /// The snapshot an offline restore asked the next boot to resume from.
    public var pendingResume: String? {
        guard let bytes = readSmallFile(run.resumeFile, limit: 1024) else { return nil }
        let name = String(decoding: bytes, as: UTF8.self).trimmed
        return name.isEmpty ? nil : name
    }

    public func setPendingResume(_ name: String?) throws(LabrunError) {
        if let name {
            try run.create()
            do { try name.write(toFile: run.resumeFile) } catch { throw error.asLabrunError }
        } else {
            removeFile(run.resumeFile)
        }
    }

    /// True when `pid` no longer runs: gone, or a zombie its parent has not reaped yet (a
    /// supervisor only exits after QEMU has ended and its sockets are closed).
    static func hasEnded(_ pid: Int32) -> Bool {
        guard processExists(pid) else { return true }
        guard let stat = readSmallFile("/proc/\(pid)/stat", limit: 4096),
              let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return false }
        return stat[close + 2] == UInt8(ascii: "Z")
    }

    /// Asks the running supervisor to stop and waits until it has gone (up to `seconds`).
    public func stopRunning(over link: SupervisorConnection, seconds: Double = 20) throws(LabrunError) {
        let pid = run.readPid()
        _ = try link.send(.stop)
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if !isRunning, pid.map(Self.hasEnded) ?? true { return }
            sleepSeconds(0.05)
        }
        throw LabrunError("the VM did not stop within \(Int(seconds)) s; see `labrun status`")
    }
}

extension LabController {
    /// `reset`: the runtime layer (with a suspended VM's state, if any) becomes the one undo
    /// step, and a fresh layer is made on the golden image. Returns the line that says so.
    public func resetRuntimeLayer() throws(LabrunError) -> String {
        let hadLayer = fileExists(lab.runtimePath)
        if hadLayer {
            do { try renameFile(lab.runtimePath, lab.undoPath) } catch { throw error.asLabrunError }
        }
        do {
            _ = try ensureRuntimeLayer()
            if lab.config.goldenID != nil { try lab.recordGoldenIdentity() }
        } catch {
            // Put the old layer back rather than leave the lab without one.
            if fileExists(lab.undoPath) && !fileExists(lab.runtimePath) { try? renameFile(lab.undoPath, lab.runtimePath) }
            throw error
        }
        try setPendingResume(nil)
        layerMovedToUndo(hadLayer: hadLayer)
        return "reset: a fresh \(Lab.runtimeName) on the golden image" + (fileExists(lab.undoPath) ? "; the previous one is kept as \(Lab.undoName) (`labrun reset --undo`)" : "")
    }

    /// What goes with a runtime layer renamed to the undo step: its suspended VM and where its
    /// snapshot story stood (`reset`, `init --force`).
    public func layerMovedToUndo(hadLayer: Bool = true) {
        SuspendedState.moveToUndo(in: lab)
        if hadLayer { SnapshotHistory(lab: lab).layerReset() }
    }

    /// `reset --undo`: the runtime layer and the undo step swap (each with its suspended VM).
    public func undoReset() throws(LabrunError) -> String {
        guard fileExists(lab.undoPath) else { throw LabrunError("nothing to undo: no previous runtime layer (\(Lab.undoName))") }
        let swap = lab.runtimePath + ".swap"
        do {
            if fileExists(lab.runtimePath) { try renameFile(lab.runtimePath, swap) }
            try renameFile(lab.undoPath, lab.runtimePath)
            if fileExists(swap) { try renameFile(swap, lab.undoPath) }
        } catch { throw error.asLabrunError }
        try setPendingResume(nil)
        FreshRuntime.clear(lab)
        SuspendedState.swapWithUndo(in: lab)
        SnapshotHistory(lab: lab).layersSwapped()
        return "restored the previous runtime layer; the one it replaced is now the undo step"
    }
}

extension LabController {
    /// `snapshot rename OLD NEW`: offline the qcow2 table is rewritten here; while the VM runs
    /// the supervisor suspends it around the same rewrite. Returns the line that says so and
    /// whether the VM was running.
    public func renameSnapshot(_ old: String, to new: String) throws(LabrunError) -> (message: String, live: Bool) {
        try SnapshotName.validateNew(new)
        switch try route(for: "rename snapshot '\(old)'") {
        case .live(let link):
            let r = try link.send(.renameSnapshot(old: old, new: new))
            return (r.message ?? "renamed snapshot '\(old)' to '\(new)'", true)
        case .offline:
            try requireRuntime()
            _ = try renameOffline(old, to: new)
            return ("renamed snapshot '\(old)' to '\(new)'", false)
        }
    }

    /// The runtime layer's snapshots, read straight from its table (running or not), else
    /// through qemu-img with force-share.
    public func runtimeSnapshots() throws(LabrunError) -> [SnapshotInfo] {
        if let table = Qcow2SnapshotTable.read(lab.runtimePath) { return table }
        return try qemuImg().snapshots(lab.runtimePath, shareLocks: true)
    }

    /// The snapshot `rename OLD NEW` acts on, under the rules of delete (OLD) and create (NEW).
    public func renameTarget(_ old: String, to new: String) throws(LabrunError) -> SnapshotInfo {
        let table = try runtimeSnapshots()
        do {
            try SnapshotRules.validate(.create(name: new))
            _ = try SnapshotRules.checkCreate(new, force: false, existing: table, image: lab.runtimePath)
            return try SnapshotRules.target(old, existing: table, image: lab.runtimePath)
        } catch { throw error.asLabrunError }
    }

    /// Rewrites the runtime layer's table (nobody may hold it) and carries the lab's records
    /// over: the story, the VM shape, a pending resume.
    public func renameOffline(_ old: String, to new: String) throws(LabrunError) -> SnapshotInfo {
        let s = try renameTarget(old, to: new)
        try Qcow2SnapshotRename.rename(lab.runtimePath, from: old, to: new)
        SnapshotHistory(lab: lab).renamed(s, to: new)
        SnapshotShapes(lab: lab).renamed(s, to: new)
        if pendingResume == old { try setPendingResume(new) }
        return s
    }

    /// `snapshot describe NAME TEXT`: the description is labrun's own record, the same live or
    /// offline (the snapshot must exist in the runtime layer's table).
    public func describeSnapshot(_ name: String, _ text: String) throws(LabrunError) -> String {
        try SnapshotHistory.validateDescription(text)
        try requireRuntime()
        let table = try runtimeSnapshots()
        let s: SnapshotInfo
        do { s = try SnapshotRules.target(name, existing: table, image: lab.runtimePath) } catch { throw error.asLabrunError }
        SnapshotHistory(lab: lab).describe(s, text)
        return text.isEmpty ? "cleared the description of snapshot '\(name)'" : "described snapshot '\(name)'"
    }

    /// `snapshot list` with the story: the table (live or offline), labrun's history and the
    /// space each snapshot alone holds.
    public func snapshotEntries() throws(LabrunError) -> (entries: [SnapshotEntry], live: Bool) {
        let (outcome, live) = try snapshot(.list)
        let list = outcome.snapshots ?? []
        let space = list.isEmpty ? nil : Qcow2Space.measure(lab.runtimePath)
        return (SnapshotEntry.entries(list, history: SnapshotHistory(lab: lab).load(), space: space), live)
    }
}
