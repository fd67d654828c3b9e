/// Output to the user's terminal: a bounded queue written when the terminal takes it, so a
/// slow terminal never blocks the loop (the loop stops reading the guest instead: nothing is
/// lost). labrun's own lines start on a fresh line and end in \r\n, and never cut a guest line
/// in two: while the guest is mid-line a notice waits for the line's end, or for `noticeDelay`
/// of quiet (a shell prompt never ends its line).
public final class Screen {
    public let fd: FileDescriptor
    public private(set) var queue: [UInt8] = []
    /// Above this the loop stops reading guest output until the terminal catches up.
    public let highWater: Int
    private var atLineStart = true
    /// The terminal went away (EIO/EPIPE): output is dropped from then on.
    public private(set) var isGone = false
    private var pendingNotices: [UInt8] = []
    /// When waiting notices are shown even though the guest's line is unfinished.
    public private(set) var noticeDeadline: Double?
    public let noticeDelay: Double = 0.3

    public init(fd: FileDescriptor, highWater: Int = 1 << 20) {
        self.fd = fd
        self.highWater = highWater
    }

    public var isFull: Bool { queue.count >= highWater }
    public var wantsWrite: Bool { !queue.isEmpty && !isGone }

    /// Guest bytes, verbatim. Waiting notices go out right after the last complete line.
    public func guest(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        if !pendingNotices.isEmpty, let nl = bytes.lastIndex(of: 0x0A) {
            queue += bytes[...nl]
            queue += pendingNotices
            pendingNotices.removeAll()
            noticeDeadline = nil
            queue += bytes[(nl + 1)...]
        } else {
            queue += bytes
        }
        atLineStart = bytes.last == 0x0A
        flush()
    }

    /// Shows waiting notices once their deadline has passed (called from the loop).
    public func tick(now: Double = monotonicSeconds()) {
        guard let d = noticeDeadline, now >= d else { return }
        showPendingNotices()
    }

    private func showPendingNotices() {
        guard !pendingNotices.isEmpty else { return }
        let text = pendingNotices
        pendingNotices.removeAll()
        noticeDeadline = nil
        raw((atLineStart ? [] : [0x0D, 0x0A]) + text)
    }

    /// Raw bytes from labrun itself (echo of the prompt editor, monitor output).
    public func raw(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        queue += bytes
        atLineStart = bytes.last == 0x0A
        flush()
    }

    /// One labrun line: "[labrun] message", on a line of its own. `now` shows it at once
    /// (for answers to the user's own keys); otherwise it waits for the guest's line to end.
    public func notice(_ message: String, now: Bool = false) {
        let line = Array(("[labrun] " + message.replacingAll("\n", with: "\r\n") + "\r\n").utf8)
        if now || (atLineStart && pendingNotices.isEmpty) {
            pendingNotices += line
            return showPendingNotices()
        }
        pendingNotices += line
        if noticeDeadline == nil { noticeDeadline = monotonicSeconds() + noticeDelay }
    }

    /// Starts a labrun prompt on a fresh line (no newline at its end).
    public func prompt(_ text: String) {
        showPendingNotices()
        raw(Array(((atLineStart ? "" : "\r\n") + "[labrun] " + text).utf8))
        atLineStart = false
    }

    /// Drops what waits to be written (a terminal that stopped reading skips ahead); its size.
    public func dropQueued() -> Int {
        defer { queue.removeAll() }
        return queue.count
    }

    public func flush() {
        guard !queue.isEmpty, !isGone else { return }
        switch fd.write(queue) {
        case .success(let n): queue.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure:
            isGone = true
            queue.removeAll()
        }
    }

    /// Writes what is queued, waiting up to `seconds` (at exit only).
    public func drain(seconds: Double) {
        showPendingNotices()
        let deadline = monotonicSeconds() + seconds
        while wantsWrite && monotonicSeconds() < deadline {
            flush()
            if wantsWrite {
                var set = PollSet()
                set.add(fd, read: false, write: true)
                _ = try? set.wait(timeout: 50)
            }
        }
    }
}

extension Screen: LoopPart {
    var interests: [PollInterest] { wantsWrite ? [PollInterest(fd, read: false, write: true)] : [] }
    var deadline: Double? { noticeDeadline }
    func addInterests(to set: inout PollSet) { if wantsWrite { set.add(fd, read: false, write: true) } }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if let r = ready[fd], r.writable { flush() }
        tick(now: now)
    }
}
