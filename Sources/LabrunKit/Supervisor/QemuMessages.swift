/// QEMU's stderr: each line becomes a console notice; the last one explains a failed exit.
final class QemuMessages: LoopPart {
    private(set) var fd: FileDescriptor?
    private var lines = LineBuffer(limit: 64 * 1024)
    var onLine: (String) -> Void = { _ in }
    private(set) var last: String?

    init(fd: FileDescriptor) { self.fd = fd }

    var interests: [PollInterest] { fd.map { [PollInterest($0)] } ?? [] }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard let fd, let r = ready[fd], r.readable || r.hangup else { return }
        read()
    }

    /// Reads what is there (also at exit, to catch QEMU's last words).
    func read() {
        guard let fd else { return }
        switch fd.read() {
        case .success(let bytes) where !bytes.isEmpty:
            for line in (try? lines.append(bytes)) ?? [] {
                let text = String(decoding: line, as: UTF8.self).trimmed
                guard !text.isEmpty else { continue }
                last = text
                onLine(text)
            }
        case .failure(.wouldBlock): break
        default: close()
        }
    }

    func close() {
        fd?.close()
        fd = nil
    }
}
