/// The supervisor's side of the console (issue 12): the console socket, every attached
/// terminal (a "viewer"), and the recent screen replayed to a terminal that attaches. Guest
/// output and labrun's notices go to every viewer; a viewer that does not keep up never
/// stalls the VM or the others: past `queueLimit` its backlog is dropped and it is told.
/// Keys and console commands come back tagged with the viewer that sent them; the window
/// size that counts is that of the viewer that typed last (as tmux does).
final class ConsoleHub: LoopPart {
    struct ViewerID: Hashable, Sendable, CustomStringConvertible {
        let rawValue: UInt64
        var description: String { "#\(rawValue)" }
    }

    final class Viewer {
        let id: ViewerID
        let fd: FileDescriptor
        var decoder = ConsoleFrameDecoder()
        var hello: ConsoleHello?
        var queue: [UInt8] = []
        var sent = 0
        var skippedBytes = 0
        var detached = false
        var size: WindowSize?
        var closing = false
        var refused = false
        /// Descriptors that came with the hello (the terminal's input and output).
        var passed: [FileDescriptor] = []
        /// The terminal this process relays itself (its descriptors were passed).
        var direct: DirectTerminal?
        var readOnlyNoted = false
        init(id: ViewerID, fd: FileDescriptor) {
            self.id = id
            self.fd = fd
        }
        var backlog: Int { queue.count - sent }
        var isOwner: Bool { hello?.owner == true }
        var readOnly: Bool { hello?.readOnly == true }
    }

    let path: String
    let listener: FileDescriptor
    private(set) var viewers: [ViewerID: Viewer] = [:]
    private var byDescriptor: [FileDescriptor: ViewerID] = [:]
    private var nextID: UInt64 = 1
    private let allowedUID = currentUserID
    /// What a viewer that attaches sees first.
    private(set) var history = ConsoleHistory()
    var log: ConsoleLog?

    var welcome: () -> ConsoleWelcome = { ConsoleWelcome(lab: "", supervisorPid: 0, monitorSocket: "", others: 0) }
    var onKeys: (ViewerID, [UInt8]) -> Void = { _, _ in }
    /// Whether the guest's side takes more keys now (direct terminals' keyboards wait otherwise).
    var canTakeKeys: () -> Bool = { true }
    var onCommand: (ViewerID, ConsoleCommand) -> Void = { _, _ in }
    /// The window size the guest's console should have now, and the TERM of the terminal that
    /// counts (the one that typed last).
    var onSize: (WindowSize) -> Void = { _ in }
    var onTerm: (String) -> Void = { _ in }
    private var appliedTerm: String?
    /// The terminal that started the boot went away without detaching (it was killed).
    var onOwnerLost: () -> Void = {}
    /// A viewer attached or left (the loop's descriptors change).
    var onViewersChanged: () -> Void = {}

    /// A viewer's backlog beyond this is dropped (it stopped reading).
    static let queueLimit = 1 << 20
    /// When the last terminal left by detaching, and why (a hang-up is told to the next one).
    private var lastLeft: (Double, String)?
    private var sizeOwner: ViewerID?
    private var appliedSize: WindowSize?

    init(path: String) throws(SystemCallError) {
        self.path = path
        listener = try UnixSocket.listen(path: path, mode: 0o600)
    }

    var interests: [PollInterest] {
        [PollInterest(listener)] + viewers.values.flatMap { v in
            [PollInterest(v.fd, read: !v.closing, write: v.backlog > 0)] + (v.direct?.interests ?? [])
        }
    }

    func addInterests(to set: inout PollSet) {
        set.add(listener)
        for v in viewers.values {
            set.add(v.fd, read: !v.closing, write: v.backlog > 0)
            v.direct?.addInterests(to: &set)
        }
    }

    /// The soonest notice a direct terminal holds back (asked every loop turn: no array made).
    var deadline: Double? {
        var soonest: Double?
        for v in viewers.values { if let d = v.direct?.deadline, d < (soonest ?? .infinity) { soonest = d } }
        return soonest
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if ready[listener] != nil {
            while let fd = UnixSocket.accept(listener) { admit(fd) }
        }
        for (fd, r) in ready {
            guard let id = byDescriptor[fd], let v = viewers[id] else { continue }
            if r.writable { flush(v) }
            if viewers[id] != nil, r.readable || r.hangup || r.invalid { read(v) }
        }
        for v in viewers.values where v.direct != nil {
            v.direct?.handle(ready, now: now)
        }
    }

    private func admit(_ fd: FileDescriptor) {
        let v = Viewer(id: ViewerID(rawValue: nextID), fd: fd)
        nextID += 1
        if let peer = UnixSocket.peerCredentials(fd), peer.uid == allowedUID || peer.uid == 0 {} else { v.refused = true }
        viewers[v.id] = v
        byDescriptor[fd] = v.id
        onViewersChanged()
    }

    private func read(_ v: Viewer) {
        while viewers[v.id] != nil {
            // recvmsg, not read: a terminal's descriptors may come with its hello.
            switch UnixSocket.receive(v.fd, upTo: 65536) {
            case .success(let (bytes, descriptors)) where !bytes.isEmpty:
                if v.hello == nil && v.passed.isEmpty && descriptors.count == 2 {
                    v.passed = descriptors
                } else {
                    descriptors.forEach { $0.close() }
                }
                do {
                    for m in try v.decoder.append(bytes) { received(m, from: v) }
                } catch {
                    return drop(v)
                }
            case .failure(.wouldBlock): return
            default: return drop(v)
            }
        }
    }

    private func received(_ m: ConsoleMessage, from v: Viewer) {
        guard v.hello != nil else {
            guard case .hello(let h) = m, h.v == ConsoleProtocol.version else { return drop(v) }
            if v.refused {
                return farewell(v, ConsoleFarewell(message: "permission denied: this lab's supervisor belongs to another user", exitCode: 1))
            }
            v.hello = h
            if h.owner { ownerAttached = true }
            if let r = h.rows, let c = h.columns { v.size = WindowSize(rows: UInt16(clamping: r), columns: UInt16(clamping: c)) }
            var w = welcome()
            w.others = viewers.values.filter { $0.hello != nil && $0.id != v.id }.count
            if h.direct == true, v.passed.count == 2, v.passed[0].isTerminal {
                v.direct = relayDirectly(v, monitorPath: w.monitorSocket)
                w.direct = true
            } else {
                v.passed.forEach { $0.close() }
            }
            v.passed = []
            send(.welcome(w), to: v)
            if let d = v.direct {
                if w.others > 0 { d.screen.notice("attached; \(w.others) other terminal\(w.others == 1 ? " is" : "s are") attached too") }
                for item in history.items {
                    switch item {
                    case .output(let bytes): d.desk.guest(bytes)
                    case .notice(let text): d.screen.notice(text)
                    }
                }
            } else {
                for frame in history.frames { enqueue(frame, to: v) }
            }
            if let (when, why) = lastLeft, !why.isEmpty, w.others == 0 {
                let t = CalendarTime.local(Int64(when))
                notice("the last terminal attached here was detached at \(t.time(separator: ":")) because it \(why); the VM ran on", to: v.id)
            }
            if sizeOwner == nil || viewers[sizeOwner!] == nil { sizeOwner = v.id; applySize() }
            return
        }
        switch m {
        case .keys(let keys):
            keysFrom(v, keys)
        case .resize(let rows, let columns):
            v.size = WindowSize(rows: UInt16(clamping: rows), columns: UInt16(clamping: columns))
            if sizeOwner == v.id { applySize() }
        case .command(let c):
            commandFrom(v, c)
        case .detach(let why):
            detached(v, why: why, tell: false)
        default:
            drop(v)
        }
    }

    private func keysFrom(_ v: Viewer, _ keys: [UInt8]) {
        guard !v.readOnly else { return }
        if sizeOwner != v.id { sizeOwner = v.id; applySize() }
        onKeys(v.id, keys)
    }

    private func commandFrom(_ v: Viewer, _ c: ConsoleCommand) {
        guard !v.readOnly || c == .status else { return notice("read-only: this terminal only watches", to: v.id) }
        onCommand(v.id, c)
    }

    /// A terminal leaves (Ctrl-a d, its hang-up). A direct terminal is told once its screen is
    /// written, so its client puts the terminal back only after the last byte.
    private func detached(_ v: Viewer, why: String, tell: Bool) {
        guard viewers[v.id] != nil, !v.detached else { return }
        v.detached = true
        lastLeft = (wallClockSeconds(), why)
        if tell, let d = v.direct {
            d.finish(seconds: 1)
            send(.detach(why), to: v)
            v.closing = true
            flush(v)
        } else {
            drop(v)
        }
    }

    /// The desk of a terminal whose descriptors were passed: its keys and Ctrl-a commands come
    /// here as the framed ones do.
    private func relayDirectly(_ v: Viewer, monitorPath: String) -> DirectTerminal {
        let d = DirectTerminal(input: v.passed[0], output: v.passed[1], monitorPath: monitorPath)
        let id = v.id
        d.keyboard.accepting = { [unowned self] in canTakeKeys() }
        d.keyboard.onClosed = { [unowned self] in if let v = viewers[id] { detached(v, why: "hung up", tell: true) } }
        d.desk.toGuest = { [unowned self] keys in
            guard let v = viewers[id], !v.closing else { return }
            guard !v.readOnly else {
                if !v.readOnlyNoted { v.direct?.screen.notice("read-only: keys are not sent to the guest (Ctrl-a d detaches)", now: true) }
                v.readOnlyNoted = true
                return
            }
            keysFrom(v, keys)
        }
        func command(_ c: ConsoleCommand) { if let v = viewers[id] { commandFrom(v, c) } }
        d.desk.onQuit = { command(.quit) }
        d.desk.onSuspend = { command(.suspend) }
        d.desk.onReset = { command(.reset) }
        d.desk.onSnapshot = { command(.snapshot(name: $0, description: $1)) }
        d.desk.onSysRq = { command(.sysrq(key: $0)) }
        d.desk.onStatus = { command(.status) }
        d.desk.onDetach = { [unowned self] in if let v = viewers[id] { detached(v, why: "", tell: true) } }
        return d
    }

    private func applySize() {
        if let id = sizeOwner, let term = viewers[id]?.hello?.term, term != appliedTerm {
            appliedTerm = term
            onTerm(term)
        }
        guard let id = sizeOwner, let size = viewers[id]?.size, size != appliedSize else { return }
        appliedSize = size
        onSize(size)
    }

    /// Guest output for every viewer (and the log, unless it is labrun's own replay).
    func output(_ bytes: [UInt8], logged: Bool = true) {
        guard !bytes.isEmpty else { return }
        if logged { log?.guest(bytes) }
        history.output(bytes, lines: bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        var frame: [UInt8]?
        for v in viewers.values where v.hello != nil && !v.closing {
            if let d = v.direct {
                if d.desk.backlog > Self.queueLimit {
                    let skipped = d.desk.dropBacklog()
                    d.screen.notice("this terminal fell behind: \(formatBytes(UInt64(skipped))) of console output skipped (`labrun log` has it)", now: true)
                }
                d.desk.guest(bytes)
            } else {
                if frame == nil { frame = ConsoleMessage.outputFrame(bytes) }
                enqueue(frame!, to: v)
            }
        }
    }

    /// A labrun line for every viewer (and the log), or for one viewer only (an answer to it).
    func notice(_ text: String, to id: ViewerID? = nil, urgent: Bool = false) {
        let frame = (urgent ? ConsoleMessage.urgentNotice(text) : .notice(text)).frame
        if let id {
            if let v = viewers[id] { show(text, urgent: urgent, frame: frame, to: v) }
            return
        }
        log?.labrun(text)
        history.notice(text)
        for v in viewers.values where v.hello != nil && !v.closing { show(text, urgent: urgent, frame: frame, to: v) }
    }

    private func show(_ text: String, urgent: Bool, frame: [UInt8], to v: Viewer) {
        if let d = v.direct { d.screen.notice(text, now: urgent) } else { enqueue(frame, to: v) }
    }

    /// The last word to every viewer; written before the supervisor exits (up to `seconds`).
    func farewell(_ f: ConsoleFarewell, seconds: Double = 2) {
        // Direct terminals get their screens written first: the client restores the terminal
        // and prints the farewell after the last byte.
        for v in viewers.values where v.hello != nil { v.direct?.finish(seconds: seconds / 2) }
        for v in viewers.values where v.hello != nil { farewell(v, f) }
        let deadline = monotonicSeconds() + seconds
        while viewers.values.contains(where: { $0.backlog > 0 }) && monotonicSeconds() < deadline {
            var set = PollSet()
            for v in viewers.values where v.backlog > 0 { set.add(v.fd, read: false, write: true) }
            guard let ready = try? set.wait(timeout: 50) else { break }
            for (fd, _) in ready { if let id = byDescriptor[fd], let v = viewers[id] { flush(v) } }
        }
    }

    private func farewell(_ v: Viewer, _ f: ConsoleFarewell) {
        send(.farewell(f), to: v)
        v.closing = true
        flush(v)
    }

    private func send(_ m: ConsoleMessage, to v: Viewer) { enqueue(m.frame, to: v) }

    private func enqueue(_ frame: [UInt8], to v: Viewer) {
        if v.backlog > Self.queueLimit {
            // It stopped reading (suspended with Ctrl-Z, a stalled link): skip ahead.
            v.skippedBytes += v.backlog
            v.queue.removeAll(keepingCapacity: true)
            v.sent = 0
        }
        if v.skippedBytes > 0 && v.backlog == 0 {
            let note = ConsoleMessage.notice("this terminal fell behind: \(formatBytes(UInt64(v.skippedBytes))) of console output skipped (`labrun log` has it)").frame
            v.skippedBytes = 0
            v.queue += note
        }
        v.queue += frame
        if v.backlog == frame.count { flush(v) }
    }

    private func flush(_ v: Viewer) {
        while v.backlog > 0 {
            let r = v.queue.withUnsafeBytes { raw in v.fd.write(UnsafeRawBufferPointer(rebasing: raw[v.sent...])) }
            switch r {
            case .success(let n) where n > 0:
                v.sent += n
            case .failure(.wouldBlock), .success:
                compact(v)
                return
            case .failure:
                return drop(v)
            }
        }
        v.queue.removeAll(keepingCapacity: v.queue.capacity <= 1 << 20)
        v.sent = 0
        if v.closing { drop(v) }
    }

    private func compact(_ v: Viewer) {
        guard v.sent > 1 << 16 else { return }
        v.queue.removeFirst(v.sent)
        v.sent = 0
    }

    private func drop(_ v: Viewer) {
        guard viewers.removeValue(forKey: v.id) != nil else { return }
        byDescriptor.removeValue(forKey: v.fd)
        v.fd.close()
        v.direct?.close()
        v.direct = nil
        v.passed.forEach { $0.close() }
        v.passed = []
        if sizeOwner == v.id {
            sizeOwner = viewers.values.filter { $0.hello != nil }.max { $0.id.rawValue < $1.id.rawValue }?.id
            applySize()
        }
        onViewersChanged()
        if v.isOwner && !v.detached && !v.closing { onOwnerLost() }
    }

    /// The terminal that started the boot has attached (at some point).
    private(set) var ownerAttached = false

    /// Serves the console alone for up to `seconds` until the owner has attached (a VM that
    /// ended at once must still tell the terminal that started it why).
    func waitForOwner(seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        while !ownerAttached && monotonicSeconds() < deadline {
            var set = PollSet()
            addInterests(to: &set)
            guard let ready = try? set.wait(timeout: 50) else { return }
            handle(ready, now: monotonicSeconds())
        }
    }

    /// Viewers attached now (past their hello).
    var attachedCount: Int { viewers.values.filter { $0.hello != nil && !$0.closing }.count }

    func close() {
        for v in Array(viewers.values) {
            v.closing = true
            drop(v)
        }
        listener.close()
        removeFile(path)
    }
}
