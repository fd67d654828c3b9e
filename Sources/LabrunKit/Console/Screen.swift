/// Output to the user's terminal: a bounded queue written when the terminal takes it, so a
/// slow terminal never blocks the loop (the loop stops reading the guest instead: nothing is
/// lost). labrun's own lines start on a fresh line and end in \r\n.
public final class Screen {
    public let fd: FileDescriptor
    public private(set) var queue: [UInt8] = []
    /// Above this the loop stops reading guest output until the terminal catches up.
    public let highWater: Int
    private var atLineStart = true
    /// The terminal went away (EIO/EPIPE): output is dropped from then on.
    public private(set) var isGone = false

    public init(fd: FileDescriptor, highWater: Int = 1 << 20) {
        self.fd = fd
        self.highWater = highWater
    }

    public var isFull: Bool { queue.count >= highWater }
    public var wantsWrite: Bool { !queue.isEmpty && !isGone }

    /// Guest bytes, verbatim.
    public func guest(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        queue += bytes
        atLineStart = bytes.last == 0x0A
        flush()
    }

    /// Raw bytes from labrun itself (echo of the prompt editor, monitor output).
    public func raw(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        queue += bytes
        atLineStart = bytes.last == 0x0A
        flush()
    }

    /// One labrun line: "[labrun] message", on a line of its own.
    public func notice(_ message: String) {
        var text = atLineStart ? "" : "\r\n"
        text += "[labrun] " + message.replacingAll("\n", with: "\r\n") + "\r\n"
        raw(Array(text.utf8))
    }

    /// Starts a labrun prompt on a fresh line (no newline at its end).
    public func prompt(_ text: String) {
        raw(Array(((atLineStart ? "" : "\r\n") + "[labrun] " + text).utf8))
        atLineStart = false
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
