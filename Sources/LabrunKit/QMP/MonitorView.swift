/// The QEMU human monitor shown on the console (Ctrl-a c): a connection to QEMU's HMP socket,
/// its output to the screen, keys to it through a queue written when the socket takes them
/// (never a blocking write inside the loop).
final class MonitorView: LoopPart {
    let fd: FileDescriptor
    var onOutput: ([UInt8]) -> Void = { _ in }
    /// The monitor closed from QEMU's side.
    var onClosed: () -> Void = {}
    private var outbox: [UInt8] = []
    private(set) var isOpen = true

    /// Connects to the monitor socket (non-blocking).
    init(path: String) throws(SystemCallError) {
        fd = try UnixSocket.connect(path: path)
        do { try fd.setNonBlocking(true) } catch { fd.close(); throw error }
    }

    var interests: [PollInterest] { isOpen ? [PollInterest(fd, read: true, write: !outbox.isEmpty)] : [] }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard isOpen, let r = ready[fd] else { return }
        if r.writable { flush() }
        guard r.readable || r.hangup || r.invalid else { return }
        switch fd.read() {
        case .success(let bytes) where !bytes.isEmpty: onOutput(bytes)
        case .failure(.wouldBlock): break
        default:
            close()
            onClosed()
        }
    }

    func send(_ keys: [UInt8]) {
        outbox += keys
        flush()
    }

    private func flush() {
        guard isOpen, !outbox.isEmpty else { return }
        switch fd.write(outbox) {
        case .success(let n): outbox.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: outbox.removeAll()
        }
    }

    func close() {
        guard isOpen else { return }
        isOpen = false
        fd.close()
    }
}
