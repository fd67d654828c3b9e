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
        [PollInterest(listener)] + viewers.values.map { PollInterest($0.fd, read: !$0.closing, write: $0.backlog > 0) }
    }

    func addInterests(to set: inout PollSet) {
        set.add(listener)
        for v in viewers.values { set.add(v.fd, read: !v.closing, write: v.backlog > 0) }
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
            switch v.fd.read(upTo: 65536) {
            case .success(let bytes) where !bytes.isEmpty:
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
            send(.welcome(w), to: v)
            for frame in history.frames { enqueue(frame, to: v) }
            if let (when, why) = lastLeft, !why.isEmpty, w.others == 0 {
                let t = CalendarTime.local(Int64(when))
                send(.notice("the last terminal attached here was detached at \(t.time(separator: ":")) because it \(why); the VM ran on"), to: v)
            }
            if sizeOwner == nil || viewers[sizeOwner!] == nil { sizeOwner = v.id; applySize() }
            return
        }
        switch m {
        case .keys(let keys):
            guard !v.readOnly else { return }
            if sizeOwner != v.id { sizeOwner = v.id; applySize() }
            onKeys(v.id, keys)
        case .resize(let rows, let columns):
            v.size = WindowSize(rows: UInt16(clamping: rows), columns: UInt16(clamping: columns))
            if sizeOwner == v.id { applySize() }
        case .command(let c):
            guard !v.readOnly || c == .status else { return notice("read-only: this terminal only watches", to: v.id) }
            onCommand(v.id, c)
        case .detach(let why):
            v.detached = true
            lastLeft = (wallClockSeconds(), why)
            drop(v)
        default:
            drop(v)
        }
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
        let frame = ConsoleMessage.outputFrame(bytes)
        history.output(bytes, lines: bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        for v in viewers.values where v.hello != nil && !v.closing { enqueue(frame, to: v) }
    }

    /// A labrun line for every viewer (and the log), or for one viewer only (an answer to it).
    func notice(_ text: String, to id: ViewerID? = nil, urgent: Bool = false) {
        let frame = (urgent ? ConsoleMessage.urgentNotice(text) : .notice(text)).frame
        if let id {
            if let v = viewers[id] { enqueue(frame, to: v) }
            return
        }
        log?.labrun(text)
        history.notice(frame: frame)
        for v in viewers.values where v.hello != nil && !v.closing { enqueue(frame, to: v) }
    }

    /// The last word to every viewer; written before the supervisor exits (up to `seconds`).
    func farewell(_ f: ConsoleFarewell, seconds: Double = 2) {
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

/// The recent screen, replayed to a viewer that attaches: at most `maxLines` lines of output
/// (and notices), bounded in bytes. Guest output is kept in chunks that grow until 16 KiB, so a
/// keystroke's echo adds bytes, not an entry (trimming stays cheap however the output comes).
struct ConsoleHistory {
    private enum Kind { case output, notice }
    private var chunks: [(kind: Kind, bytes: [UInt8], lines: Int)] = []
    private var totalLines = 0
    private var totalBytes = 0
    let maxLines: Int
    let maxBytes: Int
    static let chunkBytes = 16 << 10

    init(maxLines: Int = 100, maxBytes: Int = 256 << 10) {
        self.maxLines = maxLines
        self.maxBytes = maxBytes
    }

    /// The frames to replay.
    var frames: [[UInt8]] {
        chunks.map { $0.kind == .output ? ConsoleMessage.outputFrame($0.bytes) : $0.bytes }
    }

    mutating func output(_ bytes: [UInt8], lines n: Int) {
        if let last = chunks.last, last.kind == .output, last.bytes.count < Self.chunkBytes {
            chunks[chunks.count - 1].bytes += bytes
            chunks[chunks.count - 1].lines += n
        } else {
            chunks.append((.output, bytes, n))
        }
        added(bytes.count, n)
    }

    /// A notice, as its whole frame.
    mutating func notice(frame: [UInt8]) {
        chunks.append((.notice, frame, 1))
        added(frame.count, 1)
    }

    private mutating func added(_ bytes: Int, _ lines: Int) {
        totalLines += lines
        totalBytes += bytes
        while chunks.count > 1 && (totalLines - chunks[0].lines >= maxLines || totalBytes > maxBytes) {
            let first = chunks.removeFirst()
            totalLines -= first.lines
            totalBytes -= first.bytes.count
        }
    }
}
