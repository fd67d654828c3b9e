/// Keeps the boot checkpoint (issue 11): the first time a fresh runtime layer reaches the
/// guest's readiness (the agent's hello, then the console quiet at a shell prompt), the VM is
/// stopped, its state streamed into the store, the runtime layer copied beside it, and the VM
/// goes on. Keys typed meanwhile wait in the terminal and reach the guest after; anything that
/// depends on the guest being up (exec, wait-ready, the share) waits too.
final class BootCheckpointer: LoopPart {
    enum Phase: Equatable {
        case booting, waitingForPrompt(since: Double), saving, done

        /// For `labrun status` while it is not done (keys and guest requests wait meanwhile).
        var description: String? {
            switch self {
            case .booting: "waits for the guest agent"
            case .waitingForPrompt: "waits for a quiet shell prompt (keys wait)"
            case .saving: "being saved (keys wait)"
            case .done: nil
            }
        }
    }

    let store: CheckpointStore
    let key: CheckpointKey
    let runtime: String
    let backing: String
    var qmp: () -> QMPClient? = { nil }
    var agent: GuestAgent?
    var shareExported = false
    /// Snapshot operations are idle (a checkpoint never runs beside one).
    var operationsIdle: () -> Bool = { true }
    var setOperationsPaused: (Bool) -> Void = { _ in }
    var notice: (String) -> Void = { _ in }
    /// The size the guest's console has (recorded with the checkpoint).
    var consoleSize: () -> WindowSize? = { nil }
    /// The checkpoint is made, or given up: what waited for the guest goes ahead.
    var onFinished: () -> Void = {}

    private(set) var phase = Phase.booting
    private var lastOutput = monotonicSeconds()
    private var lastLine: [UInt8] = []
    private var typedEarly = false
    /// How long the console must be quiet at a prompt, and the longest wait for one.
    static let quiet = 0.3
    static let promptWait = 15.0

    init(store: CheckpointStore, key: CheckpointKey, runtime: String, backing: String) {
        self.store = store
        self.key = key
        self.runtime = runtime
        self.backing = backing
    }

    /// Keys wait in the terminal while the checkpoint is being made.
    var holdsKeys: Bool {
        switch phase { case .waitingForPrompt, .saving: true; default: false }
    }

    /// Requests for the guest (exec, wait-ready) wait until the checkpoint is made.
    var holdsGuest: Bool { phase != .done }

    /// Guest output: the last line is the prompt a resume shows again.
    func output(_ bytes: [UInt8]) {
        lastOutput = monotonicSeconds()
        if let nl = bytes.lastIndex(of: 0x0A) { lastLine = Array(bytes[(nl + 1)...]) } else { lastLine += bytes }
        if lastLine.count > 256 { lastLine = Array(lastLine.suffix(256)) }
    }

    /// Keys the user typed before the guest was ready make the boot not a clean one (the
    /// guest has already read them); Enter alone does not count.
    func keysForwarded(_ bytes: [UInt8]) {
        if phase == .booting, Self.withoutTerminalReports(bytes).contains(where: { $0 != 0x0D && $0 != 0x0A }) { typedEarly = true }
    }

    /// The bytes without CSI sequences (ESC [ … final byte): the terminal's answers to the
    /// guest's queries (busybox's shell asks for the cursor position) are not typing.
    static func withoutTerminalReports(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x1B, i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "[") {
                i += 2
                while i < bytes.count, !(0x40...0x7E).contains(bytes[i]) { i += 1 }
                i += 1
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return out
    }

    /// The agent said hello.
    func agentReady() {
        guard phase == .booting else { return onFinished() }
        if typedEarly {
            phase = .done
            notice("no boot checkpoint this time: keys were typed before the guest was ready")
            return onFinished()
        }
        phase = .waitingForPrompt(since: monotonicSeconds())
    }

    /// QEMU ended or the VM is going away: nothing more to do.
    func cancel() { if phase != .saving { phase = .done } }

    var interests: [PollInterest] { [] }

    var deadline: Double? {
        if let g = giveUp { return g.at }
        guard case .waitingForPrompt(let since) = phase else { return nil }
        return min(lastOutput + Self.quiet, since + Self.promptWait)
    }

    /// A save that QEMU never finishes is given up after this long: the VM goes on (it is
    /// stopped meanwhile, and the terminal's keys wait). Seconds are usual, even for 1 GiB.
    static let saveLimit = 120.0
    /// While a save runs: when to give it up, and how.
    private var giveUp: (at: Double, run: () -> Void)?

    /// The console's last line without control sequences (the shell's cursor query).
    var prompt: String {
        String(decoding: Self.withoutTerminalReports(lastLine).filter { $0 >= 0x20 || $0 == 0x09 }, as: UTF8.self)
    }

    private var atPrompt: Bool {
        let line = prompt.trimmed
        return line.hasSuffix("#") || line.hasSuffix("$") || line.hasSuffix(">")
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if let g = giveUp, now >= g.at { return g.run() }
        guard case .waitingForPrompt(let since) = phase else { return }
        let quietNow = now - lastOutput >= Self.quiet
        guard (quietNow && atPrompt) || now - since >= Self.promptWait else { return }
        // Never while the agent runs something (the console size being set): a request in
        // flight would be resumed into a supervisor that never sent it.
        if let agent, !agent.isIdle, now - since < Self.promptWait {
            lastOutput = now - Self.quiet + 0.05
            return
        }
        save()
    }

    private func finish(_ line: String) {
        phase = .done
        setOperationsPaused(false)
        notice(line)
        onFinished()
    }

    private func save() {
        guard let qmp = qmp(), qmp.isReady, let agent else { return finish("no boot checkpoint kept: QEMU is not ready") }
        guard operationsIdle() else { return finish("no boot checkpoint kept: a snapshot operation was running") }
        phase = .saving
        setOperationsPaused(true)
        makeDirectory(store.directory)
        // Two boots racing for the same checkpoint: one makes it, both boot.
        guard let lock = try? FileDescriptor.open(store.directory + "/." + key.id + ".lock", FileDescriptor.createLock, mode: 0o644),
              tryExclusiveLock(lock) else {
            return finish("no boot checkpoint kept: another boot is making it now")
        }
        let part = store.directory + "/" + key.id + ".part-\(currentProcessID)"
        removeFlatDirectory(part)
        guard makeDirectory(part) else {
            lock.close()
            return finish("no boot checkpoint kept: cannot create \(part)")
        }
        let started = monotonicSeconds()
        let prompt = self.prompt
        // Settled once: by QEMU's answers, or by giving up (`saveLimit`), whichever comes first.
        var settled = false
        var unmountedShare = false
        let done = { [self] (why: String?) in
            guard !settled else { return }
            settled = true
            giveUp = nil
            lock.close()
            if why != nil { removeFlatDirectory(part) }
            if unmountedShare { agent.setShareMounted(true) { _ in } }
            finish(why.map { "no boot checkpoint kept: \($0); the VM runs on" }
                   ?? "kept a boot checkpoint (\(Messages.formatSeconds(monotonicSeconds() - started))): the next boot of a fresh runtime layer on this golden image resumes here")
        }
        giveUp = (started + Self.saveLimit, {
            qmp.send(QMPCommand("migrate_cancel"))
            qmp.send(.cont)
            done("saving it took over \(Int(Self.saveLimit)) s")
        })
        MigrationGate.open(qmp: qmp, agent: agent, shareExported: shareExported) { [self] blocked, unmounted in
            unmountedShare = unmounted
            guard !settled else {
                if unmounted { agent.setShareMounted(true) { _ in } }
                return
            }
            if let blocked { return done(blocked) }
            MigrationFile.save(qmp, to: part + "/state") { [self] why in
                guard !settled else { return }
                // The VM is stopped and its disk flushed: the runtime layer is as the state needs it.
                let failure = why ?? store(part: part, prompt: prompt)
                qmp.send(.cont)
                done(failure)
            }
        }
    }

    /// Completes the checkpoint directory and moves it into place; nil, or why not.
    private func store(part: String, prompt: String) -> String? {
        do {
            var disk = Checksum()
            try FileStream.copy(runtime, to: part + "/disk.qcow2") { disk.update($0) }
            let state = try Checksum.of(file: part + "/state")
            let diskSize = FileStatus.of(part + "/disk.qcow2")?.size ?? 0
            let record = CheckpointRecord(key: key, created: wallClockSeconds(),
                                          state: FileCheck(size: state.size, checksum: state.value),
                                          disk: FileCheck(size: diskSize, checksum: disk.value),
                                          diskBacking: backing, prompt: prompt.isEmpty ? nil : prompt,
                                          consoleRows: consoleSize().map { Int($0.rows) }, consoleColumns: consoleSize().map { Int($0.columns) })
            try String(decoding: jsonLine(record), as: UTF8.self).write(toFile: part + "/checkpoint.json")
            let final = store.path(for: key)
            if fileExists(final) { removeFlatDirectory(final) }
            // Readable by every lab on this golden image (QEMU wrote the state under umask 077).
            for name in ["state", "disk.qcow2", "checkpoint.json"] { try setPermissions(part + "/" + name, 0o644) }
            try renameFile(part, final)
            store.prune(protecting: final)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
