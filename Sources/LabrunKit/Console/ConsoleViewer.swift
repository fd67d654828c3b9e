import FoundationEssentials

/// One terminal attached to a running VM's console (issue 12): `labrun boot`'s own terminal,
/// or `labrun attach` in any other. It puts its terminal in raw mode (restored on every exit
/// path, and by the guard process if it is killed), shows what the supervisor sends, and
/// handles its own Ctrl-a keys: the snapshot prompt and the monitor are this terminal's
/// alone; Ctrl-a d leaves it, and the VM runs on. A terminal that hangs up detaches.
public final class ConsoleViewer {
    public enum Outcome: Equatable, Sendable {
        /// Ctrl-a d, or the terminal hung up: the VM runs on.
        case detached
        /// The supervisor ended the console: its message and exit status.
        case ended(ConsoleFarewell)
        /// The supervisor went away without a word (it was killed).
        case lost
        /// A terminating signal arrived (as the owner, the VM was asked to shut down first).
        case signal(Signal)
    }

    let socket: FileDescriptor
    let hello: ConsoleHello
    let input: FileDescriptor
    let screen: Screen
    private var decoder = ConsoleFrameDecoder()
    private var outbox: [UInt8] = []
    private var terminal: UserTerminal!
    private var keyboard: Keyboard!
    private var signals: SignalEvents!
    private var desk: ConsoleDesk!
    private var outcome: Outcome?
    /// A signal asked the owner's VM to shut down: the farewell is awaited until then.
    private var waitingForFarewellUntil: Double?
    private var pendingSignal: Signal?
    public private(set) var welcome: ConsoleWelcome?
    private var socketOpen = true
    private var readOnlyNoted = false
    /// The supervisor relays this terminal itself (its descriptors went with the hello): this
    /// process then reads no keys and writes nothing until the console ends for it.
    private var direct: Bool { welcome?.direct == true }
    /// Whether to offer the terminal's descriptors: both ends are terminals (LABRUN_CONSOLE_DIRECT=0
    /// keeps the relay through this process).
    private var offerDirect: Bool {
        input.isTerminal && screen.fd.isTerminal && environmentValue("LABRUN_CONSOLE_DIRECT") != "0"
    }

    /// Connects to the console socket at `path` and says hello; nil when nobody answers there.
    public init(path: String, hello: ConsoleHello, input: FileDescriptor = .standardInput, output: FileDescriptor = .standardOutput) throws(LabrunError) {
        guard let fd = try? UnixSocket.connect(path: path) else {
            throw LabrunError("the VM's console does not answer (\(path)): is the VM running? `labrun status` says")
        }
        try? fd.setNonBlocking(true)
        socket = fd
        var h = hello
        if let size = WindowSize.of(input) { h.rows = Int(size.rows); h.columns = Int(size.columns) }
        h.term = h.term ?? environmentValue("TERM")
        self.hello = h
        self.input = input
        screen = Screen(fd: output)
    }

    private func send(_ m: ConsoleMessage) {
        outbox += m.frame
        flushSocket()
    }

    private func flushSocket() {
        guard socketOpen, !outbox.isEmpty else { return }
        switch outbox.withUnsafeBytes({ socket.write($0) }) {
        case .success(let n): outbox.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: socketOpen = false
        }
    }

    /// Runs until the console ends for this terminal; the terminal is restored on return.
    public func run() -> Outcome {
        ignoreBrokenPipeSignal()
        terminal = UserTerminal(input: input, output: screen.fd)
        if offerDirect {
            var h = hello
            h.direct = true
            // A fresh non-blocking socket takes a frame this small at once.
            if case .failure = UnixSocket.send(socket, ConsoleMessage.hello(h).frame, passing: [input, screen.fd]) { socketOpen = false }
        } else {
            send(.hello(hello))
        }
        if let w = terminal.warning { screen.notice("warning: " + w) }
        signals = try? SignalEvents([.interrupt, .terminate, .hangup, .windowChanged, .quit])
        keyboard = Keyboard(fd: input)
        keyboard.accepting = { [unowned self] in outbox.count < 1 << 20 }
        keyboard.onKeys = { [unowned self] in desk.keys($0) }
        keyboard.onClosed = { [unowned self] in
            // The terminal is gone (a closed window, a dropped ssh link): detach.
            if terminal.isInteractive { detach("hung up") }
        }
        desk = ConsoleDesk(screen: screen, monitorPath: "")
        desk.qemuReady = { true }
        desk.toGuest = { [unowned self] keys in
            guard !hello.readOnly else {
                if !readOnlyNoted { screen.notice("read-only: keys are not sent to the guest (Ctrl-a d detaches)", now: true) }
                readOnlyNoted = true
                return
            }
            send(.keys(keys))
        }
        desk.onQuit = { [unowned self] in send(.command(.quit)) }
        desk.onSuspend = { [unowned self] in send(.command(.suspend)) }
        desk.onReset = { [unowned self] in send(.command(.reset)) }
        desk.onSnapshot = { [unowned self] in send(.command(.snapshot(name: $0, description: $1))) }
        desk.onSysRq = { [unowned self] in send(.command(.sysrq(key: $0))) }
        desk.onStatus = { [unowned self] in send(.command(.status)) }
        desk.onDetach = { [unowned self] in detach() }
        signals?.onSignal = { [unowned self] s in received(s) }
        loop()
        screen.drain(seconds: 2)
        terminal.restore()
        desk.close()
        signals?.pipe.uninstall()
        socket.close()
        return outcome ?? .lost
    }

    private func detach(_ why: String = "") {
        guard outcome == nil else { return }
        send(.detach(why))
        outcome = .detached
    }

    private func received(_ s: Signal) {
        switch s {
        case .windowChanged:
            if let size = terminal.size { send(.resize(rows: Int(size.rows), columns: Int(size.columns))) }
        case .hangup:
            detach("hung up")
        default:
            guard outcome == nil, pendingSignal == nil else { return }
            if hello.owner {
                // `labrun boot`'s terminal: the VM shuts down with it, as it always did.
                pendingSignal = s
                waitingForFarewellUntil = monotonicSeconds() + 20
                send(.command(.quit))
            } else {
                send(.detach("was stopped by \(s)"))
                outcome = .signal(s)
            }
        }
    }

    private func handleSocket(_ r: Readiness) {
        if r.writable { flushSocket() }
        guard r.readable || r.hangup || r.invalid else { return }
        while socketOpen, !screen.isFull {
            switch socket.read(upTo: 65536) {
            case .success(let bytes) where !bytes.isEmpty:
                guard let messages = try? decoder.append(bytes) else { socketOpen = false; return }
                for m in messages { show(m) }
            case .failure(.wouldBlock): return
            default:
                socketOpen = false
                return
            }
        }
    }

    private func show(_ m: ConsoleMessage) {
        switch m {
        case .output(let bytes): desk.guest(bytes)
        case .notice(let text): screen.notice(text)
        case .urgentNotice(let text): screen.notice(text, now: true)
        case .welcome(let w):
            welcome = w
            desk.monitorPath = w.monitorSocket
            if w.others > 0 && w.direct != true { screen.notice("attached; \(w.others) other terminal\(w.others == 1 ? " is" : "s are") attached too") }
        case .farewell(let f):
            if let s = pendingSignal { outcome = .signal(s) } else { outcome = .ended(f) }
            socketOpen = false
        case .detach:
            // A direct terminal's Ctrl-a d or hang-up, handled by the supervisor.
            if outcome == nil { outcome = .detached }
            socketOpen = false
        default: break
        }
    }

    private var finished: Bool {
        if let outcome {
            if case .ended = outcome { return true }
            if case .signal = outcome, pendingSignal != nil { return true }
            return outbox.isEmpty || !socketOpen
        }
        if let until = waitingForFarewellUntil, monotonicSeconds() > until, let s = pendingSignal {
            outcome = .signal(s)
            return true
        }
        return !socketOpen
    }

    private func loop() {
        var set = PollSet()
        while !finished {
            set.removeAll()
            if socketOpen { set.add(socket, read: !screen.isFull, write: !outbox.isEmpty) }
            if let signals { signals.addInterests(to: &set) }
            // Keys are read here only once the supervisor said it does not read them itself.
            if welcome != nil && !direct { keyboard.addInterests(to: &set) }
            screen.addInterests(to: &set)
            if let m = desk.monitor { m.addInterests(to: &set) }
            let deadline = [screen.deadline, waitingForFarewellUntil].compactMap { $0 }.min()
            let timeout = deadline.map { Int32(max(0, $0 - monotonicSeconds()) * 1000) + 1 } ?? -1
            guard let ready = try? set.wait(timeout: timeout) else { break }
            let now = monotonicSeconds()
            if let r = ready[socket] { handleSocket(r) }
            signals?.handle(ready, now: now)
            if welcome != nil && !direct { keyboard.handle(ready, now: now) }
            screen.handle(ready, now: now)
            desk.monitor?.handle(ready, now: now)
        }
        // What arrived with the last read is shown, not lost.
        desk.releaseHeld()
    }
}
