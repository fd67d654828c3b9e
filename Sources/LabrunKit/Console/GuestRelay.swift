/// The relay to and from the guest's serial console: the pty primary whose secondary is
/// QEMU's stdio. Keys are written at once (what the pty does not take waits for POLLOUT);
/// output is read only while its consumer can take more, so a slow terminal stops the
/// guest's output instead of losing it.
final class GuestRelay: LoopPart {
    let pty: FileDescriptor
    /// Guest output, as read.
    var onOutput: ([UInt8]) -> Void = { _ in }
    /// Whether the consumer takes more output now (back-pressure).
    var canTakeOutput: () -> Bool = { true }
    /// QEMU closed its side (EIO): the console is gone.
    private(set) var isOpen = true
    private var toGuest: [UInt8] = []
    /// Keys queued beyond this stop keyboard reads until the guest takes them.
    static let keyQueueLimit = 1 << 20

    init(pty: FileDescriptor) { self.pty = pty }

    var wantsKeys: Bool { toGuest.count < Self.keyQueueLimit }

    /// While the guest floods its console, output is read in batches: after a read of at
    /// least `floodBytes`, the next waits `floodPause` (the pty holds far more than the
    /// guest's UART makes meanwhile). Every wake-up taken from a 2-core machine is time the
    /// guest's vCPU and the terminals could use; a keystroke's echo, after a quiet spell, is
    /// still read at once. A read that fills the pty's 4 KiB line buffer says the producer is
    /// faster than any pause (a stand-in, a fast console): then there is no pause, which would
    /// cap it at 4 KiB per `floodPause` (1.3 MB/s).
    static let floodBytes = 256
    static let floodPause = 0.003
    static let fullRead = 4000
    private var pausedUntil: Double?

    private var wantsRead: Bool {
        if let p = pausedUntil {
            if monotonicSeconds() < p { return false }
            pausedUntil = nil
        }
        return canTakeOutput()
    }

    var interests: [PollInterest] {
        guard isOpen else { return [] }
        return [PollInterest(pty, read: wantsRead, write: !toGuest.isEmpty)]
    }

    func addInterests(to set: inout PollSet) {
        if isOpen { set.add(pty, read: wantsRead, write: !toGuest.isEmpty) }
    }

    var deadline: Double? { pausedUntil }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard let r = ready[pty] else { return }
        if r.writable { writeKeys() }
        if r.readable || r.hangup || r.invalid { readOutput() }
    }

    func send(_ keys: [UInt8]) {
        toGuest += keys
        writeKeys()
    }

    private func writeKeys() {
        guard isOpen, !toGuest.isEmpty else { return }
        switch pty.write(toGuest) {
        case .success(let n): toGuest.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: toGuest.removeAll()
        }
    }

    private func readOutput() {
        switch pty.read() {
        case .success(let bytes) where !bytes.isEmpty:
            if bytes.count >= Self.floodBytes && bytes.count < Self.fullRead { pausedUntil = monotonicSeconds() + Self.floodPause }
            onOutput(bytes)
        case .failure(.wouldBlock): break
        default: isOpen = false   // EIO: QEMU closed its side; the exit comes via SIGCHLD.
        }
    }

    /// Reads what is left once QEMU has ended.
    func drain() {
        while isOpen {
            switch pty.read() {
            case .success(let bytes) where !bytes.isEmpty: onOutput(bytes)
            default: isOpen = false
            }
        }
    }

    func resize(to size: WindowSize) { size.apply(to: pty) }

    private var closed = false

    /// Closes the pty primary (once: a relaunch closes it before the supervisor's clean-up).
    func close() {
        guard !closed else { return }
        closed = true
        isOpen = false
        pty.close()
    }
}
