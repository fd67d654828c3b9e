/// Keys from the user's terminal (or whatever stdin is), read when the console can take them.
final class Keyboard: LoopPart {
    let fd: FileDescriptor
    var onKeys: ([UInt8]) -> Void = { _ in }
    /// End of input or a hang-up.
    var onClosed: () -> Void = {}
    /// Whether more keys are wanted now (back-pressure from the guest's side).
    var accepting: () -> Bool = { true }
    private(set) var isOpen = true

    init(fd: FileDescriptor) { self.fd = fd }

    var interests: [PollInterest] { isOpen && accepting() ? [PollInterest(fd)] : [] }

    func addInterests(to set: inout PollSet) {
        if isOpen && accepting() { set.add(fd) }
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        // POLLNVAL too: a closed stdin must end keyboard input, not spin the loop.
        guard isOpen, let r = ready[fd], r.readable || r.hangup || r.invalid else { return }
        switch fd.read(upTo: 4096) {
        case .success(let bytes) where !bytes.isEmpty: onKeys(bytes)
        case .failure(.wouldBlock): break
        default:
            isOpen = false
            onClosed()
        }
    }
}
