import FoundationEssentials

/// The control requests the guest agent answers: `wait-ready` (answered once the agent is up)
/// and `exec` (its output streams back as progress lines; the final response carries the
/// command's exit status). Requests that come before the agent is up wait for it, at most
/// `agentWait` seconds.
final class AgentRequests: LoopPart {
    let agent: GuestAgent
    var reply: (ControlServer.ConnectionID, ControlResponse) -> Void = { _, _ in }
    /// Whether requests may go to the guest now: its agent is up (and the supervisor is not
    /// holding them back while it keeps the boot checkpoint).
    lazy var guestReady: () -> Bool = { [unowned self] in agent.isReady }
    /// False once QEMU has ended: nothing waits any longer.
    var qemuRunning: () -> Bool = { true }
    let agentWait: Double

    private var waiting: [(command: ControlCommand, id: ControlServer.ConnectionID, deadline: Double)] = []
    /// Commands running in the guest, by client; removed when their final answer goes out.
    private var running: Set<ControlServer.ConnectionID> = []

    /// Something waits on the guest (QEMU must be watched meanwhile).
    var isBusy: Bool { !waiting.isEmpty || !running.isEmpty }

    /// Set while QEMU does not answer: new requests get this line at once.
    private var hung: String?

    func qemuRecovered() { hung = nil }

    /// Set once the guest kernel has panicked: nothing more will run in it.
    private var panicked: String?

    /// The guest kernel panicked: every client waiting on the guest gets `line` and the panic
    /// status now, never a hang; later requests get it at once.
    func guestPanicked(_ line: String) {
        panicked = line
        let ids = waiting.map(\.id) + running
        waiting.removeAll()
        running.removeAll()
        for id in ids { reply(id, .failure(LabrunError(line, exitCode: ExitReason.panicExitCode))) }
    }

    /// A new VM (a reset in place, a reboot): the guest may answer again.
    func guestRecovered() { panicked = nil }

    /// The guest did not boot (its initrd says why and waits in a rescue shell): for whoever
    /// waits on the guest it is as a panic (status 125: `git bisect run` skips such a kernel),
    /// until its agent starts after all (someone fixed it in that shell).
    func guestDidNotBoot(_ line: String) {
        bootFailed = true
        guestPanicked(line)
    }
    private var bootFailed = false

    /// The console's last line, for a guest whose agent never starts.
    var lastConsoleLine: () -> String = { "" }

    /// QEMU stopped answering: every client waiting here gets `line` now, not never.
    func qemuHung(_ line: String) {
        hung = line
        let ids = waiting.map(\.id) + running
        waiting.removeAll()
        running.removeAll()
        for id in ids { reply(id, .failure(LabrunError(line))) }
    }

    init(agent: GuestAgent, agentWait: Double = 120) {
        self.agent = agent
        self.agentWait = agentWait
    }

    /// Answering on `control`.
    convenience init(agent: GuestAgent, control: ControlServer) {
        self.init(agent: agent)
        reply = { [unowned control] in control.respond($0, $1) }
    }

    var interests: [PollInterest] { [] }
    var deadline: Double? { waiting.map(\.deadline).min() }

    func submit(_ command: ControlCommand, from id: ControlServer.ConnectionID) {
        if let hung { return reply(id, .failure(LabrunError(hung))) }
        if let panicked { return reply(id, .failure(LabrunError(panicked, exitCode: ExitReason.panicExitCode))) }
        if guestReady() { return dispatch(command, id) }
        reply(id, .progress("waiting for the guest to boot (its agent is not up yet)"))
        waiting.append((command, id, monotonicSeconds() + agentWait))
    }

    /// The host folder exported as the 9p share, mounted at /mnt whenever the agent starts.
    var share: String?
    var notice: (String) -> Void = { _ in }
    private var shareAnnounced = false

    /// A resumed guest (suspend, boot checkpoint) has the saved clock and random pool: its
    /// clock is set to the host's, and 64 bytes of the host's randomness are mixed into its
    /// pool (else every resume of a checkpoint would draw the same numbers; the kernel's
    /// early-boot reseed interval, about a second, carries them into the CRNG). One request,
    /// so a client's first `exec` waits for as little as possible.
    /// About how long the guest takes to run an agent request once it is sent (TCG).
    static let agentLatency = 0.1

    func refreshResumedGuest() {
        let octal = hostRandomBytes(64).map { "\\" + String($0, radix: 8) }.joined()
        // `date -s` takes whole seconds: the nearest one at about when the guest runs it.
        let line = "date -s @\(Int((wallClockSeconds() + Self.agentLatency).rounded())) >/dev/null && printf '\(octal)' >/dev/urandom"
        agent.exec(line, timeout: 10) { [unowned self] event in
            if case .exit(let code) = event, code != 0 { notice("could not set the guest's clock or reseed its random pool (exit \(code))") }
            if case .failed(let why) = event { notice("could not set the guest's clock: \(why)") }
            switch event { case .exit, .failed, .disconnected: return true; default: return false }
        }
    }

    /// The kernel's warnings reach the console even under `quiet` (console log level 5: WARN,
    /// whose reports the crash detector reads there); a higher level the user chose stays.
    func showKernelWarnings() {
        agent.exec("read l rest </proc/sys/kernel/printk; [ \"$l\" -ge 5 ] || echo 5 >/proc/sys/kernel/printk", timeout: 10) { event in
            switch event { case .exit, .failed, .disconnected: return true; default: return false }
        }
    }

    /// Tells the guest the terminal's TERM when it has a terminfo entry for it: written to
    /// /run/labrun/term, which the Debian guest's shell takes before each prompt. Only names
    /// of letters, digits and . _ + - are passed (it is the user's environment).
    func setConsoleTerm(_ term: String) {
        guard !term.isEmpty, term.count <= 64, term.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || [0x2E, 0x5F, 0x2B, 0x2D].contains($0) }) else { return }
        let first = String(term.prefix(1))
        let script = "for d in /usr/share/terminfo /lib/terminfo /etc/terminfo; do [ -e \"$d/\(first)/\(term)\" ] && { mkdir -p /run/labrun && echo \(term) >/run/labrun/term; exit 0; }; done; exit 0"
        agent.exec(script, timeout: 10) { event in
            switch event { case .exit, .failed, .disconnected: return true; default: return false }
        }
    }

    /// Tells the guest's console its size (the terminal that typed last), so `stty size`, vi
    /// and less use the whole window: the agent sets it on the console tty, whose foreground
    /// programs get SIGWINCH. Sizes asked for while one is being set are folded into one.
    func setConsoleSize(_ size: WindowSize, device: String) {
        wantedSize = (size, device)
        guard !sizing else { return }
        sizing = true
        agent.exec("stty -F /dev/\(device) rows \(size.rows) cols \(size.columns) 2>/dev/null", timeout: 10) { [unowned self] event in
            switch event {
            case .exit, .failed, .disconnected:
                sizing = false
                if let (next, dev) = wantedSize, next != size { setConsoleSize(next, device: dev) }
                return true
            default: return false
            }
        }
    }
    private var sizing = false
    private var wantedSize: (WindowSize, String)?

    /// The agent said hello (at boot, or after a guest reboot): what waited goes ahead, and
    /// the share is mounted if exported.
    func agentStarted() {
        if bootFailed { bootFailed = false; panicked = nil }
        handle([:], now: monotonicSeconds())
        guard let share else { return }
        agent.setShareMounted(true) { [unowned self] why in
            if let why { return notice("could not mount the shared folder at /mnt: \(why)") }
            if !shareAnnounced { notice("\(share) is mounted at /mnt in the guest") }
            shareAnnounced = true
        }
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard !waiting.isEmpty else { return }
        if guestReady() {
            let ready = waiting
            waiting.removeAll()
            for w in ready { dispatch(w.command, w.id) }
            return
        }
        waiting.removeAll { w in
            guard w.deadline <= now || !qemuRunning() else { return false }
            let last = lastConsoleLine()
            reply(w.id, .failure(LabrunError("the guest agent did not start within \(Int(agentWait)) s: the guest may not have booted, or its image has no agent" + (last.isEmpty ? "" : "; its last console line: \(last)"))))
            return true
        }
    }

    private func dispatch(_ command: ControlCommand, _ id: ControlServer.ConnectionID) {
        if case .readFile(let path) = command {
            running.insert(id)
            return agent.readFile(path) { [unowned self] result in
                guard running.remove(id) != nil else { return }
                switch result {
                case .success(let gz):
                    var r = ControlResponse()
                    r.stdout = Data(gz).base64EncodedString()
                    reply(id, r)
                case .failure(let e): reply(id, .failure(e))
                }
            }
        }
        guard case .exec(let line, let timeout) = command else {
            var r = ControlResponse()
            r.message = "the guest is up"
            return reply(id, r)
        }
        guard !line.isEmpty else { return reply(id, .failure(LabrunError("exec: no command given"))) }
        running.insert(id)
        agent.exec(line, timeout: timeout) { [unowned self] event in
            var r = ControlResponse.progress("")
            r.message = nil
            switch event {
            case .stdout(let b): r.stdout = String(decoding: b, as: UTF8.self)
            case .stderr(let b): r.stderr = String(decoding: b, as: UTF8.self)
            case .exit(let code):
                r = ControlResponse()
                r.exitCode = code
                if code == 137 && timeout > 0 { r.message = "the command was killed after \(timeout) s (--timeout)" }
            case .failed(let why): r = .failure(LabrunError(why))
            case .disconnected: r = .failure(LabrunError("the guest agent went away before the command finished"))
            case .ok: return false
            }
            // A client already told that QEMU hung gets nothing more.
            guard running.contains(id) else { return r.final }
            if r.final { running.remove(id) }
            reply(id, r)
            return r.final
        }
    }
}
