import FoundationEssentials

/// The supervisor's side of the guest agent (guest/labrun-agent, protocol in guest/AGENT.md):
/// one line per message over the virtio-serial port `org.labrun.agent`, `ID VERB [ARGS]`,
/// payloads base64. Driven by the poll loop; never blocks.
public final class GuestAgent {
    public enum Event: Equatable, Sendable {
        case stdout([UInt8])
        case stderr([UInt8])
        case exit(Int32)
        case ok(String)
        case failed(String)
        case disconnected
    }
    /// Handles one event of a request; returns true when the request is finished.
    public typealias Handler = (Event) -> Bool

    public static let portName = "org.labrun.agent"
    public static let protocolVersion = 1

    public private(set) var fd: FileDescriptor?
    /// The agent said hello: requests will be answered.
    public private(set) var isReady = false
    public var onReady: (() -> Void)?

    private var lines = LineBuffer(limit: 16 << 20)
    private var outbox: [UInt8] = []
    private var handlers: [Int: Handler] = [:]
    private var nextID = 1

    public init() {}

    public var wantsWrite: Bool { !outbox.isEmpty }

    /// No request is waiting for its answer (nothing is in flight in the guest).
    public var isIdle: Bool { handlers.isEmpty && outbox.isEmpty }

    /// Adopts a connected, non-blocking socket to QEMU's agent chardev.
    public func attach(_ fd: FileDescriptor) {
        self.fd = fd
        if presumedUp {
            isReady = true
            onReady?()
        }
    }

    /// The agent was already running in a VM that was resumed (no new hello comes): take it
    /// as up.
    public func assumeReady() {
        presumedUp = true
        guard fd != nil else { return }
        isReady = true
        onReady?()
    }
    private var presumedUp = false

    /// Sends a request; `handler` gets its events until it returns true.
    public func request(_ verb: String, _ arguments: [String] = [], handler: @escaping Handler) {
        guard fd != nil, isReady else { _ = handler(.failed("the guest agent is not running (the guest has not booted, or its image has no agent)")); return }
        let id = nextID
        nextID += 1
        handlers[id] = handler
        outbox += Array(([String(id), verb] + arguments).joined(separator: " ").utf8) + [0x0A]
        flush()
    }

    public func flush() {
        guard let fd, !outbox.isEmpty else { return }
        switch fd.write(outbox) {
        case .success(let n): outbox.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: close()
        }
    }

    public func handleReadable() {
        guard let fd else { return }
        while true {
            switch fd.read() {
            case .success(let bytes) where !bytes.isEmpty:
                guard let got = try? lines.append(bytes) else { close(); return }
                got.forEach(dispatch)
            case .failure(.wouldBlock):
                return
            default:
                close()
                return
            }
        }
    }

    static func decode(_ field: Substring?) -> [UInt8] {
        guard let field, let data = Data(base64Encoded: String(field)) else { return [] }
        return Array(data)
    }

    private func dispatch(_ line: [UInt8]) {
        let fields = String(decoding: line, as: UTF8.self).split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard fields.count >= 2, let id = Int(fields[0]) else { return }
        let verb = fields[1]
        let rest = fields.count > 2 ? fields[2] : nil
        if id == 0 && verb == "hello" {
            // The agent (re)started: anything asked of the previous one is lost.
            failAll("the guest agent restarted")
            isReady = true
            onReady?()
            return
        }
        let event: Event
        switch verb {
        case "out": event = .stdout(Self.decode(rest))
        case "err": event = .stderr(Self.decode(rest))
        case "exit": event = .exit(Int32(rest.map { String($0) } ?? "") ?? 255)
        case "ok", "data": event = .ok(rest.map(String.init) ?? "")
        case "fail": event = .failed(String(decoding: Self.decode(rest), as: UTF8.self))
        default: return
        }
        if let h = handlers[id], h(event) { handlers.removeValue(forKey: id) }
    }

    private func failAll(_ why: String) {
        let waiting = handlers
        handlers.removeAll()
        for (_, h) in waiting { _ = h(.failed(why)) }
    }

    /// A new QEMU is starting: the next agent has to say hello first.
    public func reset() {
        close()
        presumedUp = false
    }

    public func close() {
        fd?.close()
        fd = nil
        isReady = false
        let waiting = handlers
        handlers.removeAll()
        for (_, h) in waiting { _ = h(.disconnected) }
    }
}

extension GuestAgent {
    /// Runs a shell command line in the guest (`exec TIMEOUT B64`).
    public func exec(_ commandLine: String, timeout: Int, handler: @escaping Handler) {
        request("exec", [String(timeout), Data(commandLine.utf8).base64EncodedString()], handler: handler)
    }

    /// A guest file's bytes, gzip-compressed (the agent's `read`): `done` gets them, or the
    /// reason it could not (an older agent without `read` says "unknown request").
    public func readFile(_ path: String, _ done: @escaping (Result<[UInt8], LabrunError>) -> Void) {
        request("read", [Data(path.utf8).base64EncodedString()]) { event in
            switch event {
            case .ok(let b64): done(Data(base64Encoded: b64).map { .success(Array($0)) } ?? .failure(LabrunError("the guest agent sent malformed data")))
            case .failed(let why): done(.failure(LabrunError(why)))
            case .disconnected: done(.failure(LabrunError("the guest agent went away")))
            default: return false
            }
            return true
        }
    }

    /// Unmounts (or mounts) the shared folder; `done` gets nil on success or the reason.
    public func setShareMounted(_ mounted: Bool, _ done: @escaping (String?) -> Void) {
        request(mounted ? "mount" : "umount") { event in
            switch event {
            case .ok: done(nil)
            case .failed(let why): done(why)
            case .disconnected: done("the guest agent went away")
            default: return false
            }
            return true
        }
    }
}

extension GuestAgent: LoopPart {
    var interests: [PollInterest] { fd.map { [PollInterest($0, read: true, write: wantsWrite)] } ?? [] }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard let fd, let r = ready[fd] else { return }
        if r.writable { flush() }
        if r.readable || r.hangup { handleReadable() }
    }
}
