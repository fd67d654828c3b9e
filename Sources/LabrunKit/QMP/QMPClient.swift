import FoundationEssentials

/// A QMP client driven by a poll loop: it never blocks. Commands get ids; replies are matched
/// by id and handed to the command's completion; events go to `onEvent`. Commands issued
/// before the capabilities handshake completes are queued and sent right after it.
public final class QMPClient {
    public typealias Completion = (Result<JSONValue, QMPError>) -> Void

    public let fd: FileDescriptor
    public private(set) var isReady = false
    public private(set) var isClosed = false
    public var onEvent: ((String, JSONValue?) -> Void)?
    public var onReady: (() -> Void)?

    private var lines = LineBuffer(limit: 16 << 20)
    private var outbox: [UInt8] = []
    private var queued: [(QMPCommand, Completion)] = []
    private var pending: [Int: Completion] = [:]
    /// When each pending command was sent.
    private var sentAt: [Int: Double] = [:]
    private var nextId = 1
    /// Background jobs (snapshot-save, …) waiting for their JOB_STATUS_CHANGE "concluded".
    private var jobWaiters: [String: () -> Void] = [:]
    /// One-shot event waiters: each gets every event until it returns true.
    private var eventWaiters: [(String, JSONValue?) -> Bool] = []
    private var nextJob = 1

    /// Takes a connected, non-blocking socket.
    public init(fd: FileDescriptor) {
        self.fd = fd
    }

    public var wantsWrite: Bool { !outbox.isEmpty }
    public var hasPending: Bool { !pending.isEmpty || !queued.isEmpty }

    /// When the oldest command still waiting for its reply was sent (nil: none waits).
    public var oldestPendingSince: Double? { sentAt.values.min() }

    /// Sends a command; `completion` runs from `handleReadable` when the reply arrives, or with
    /// `.disconnected` if QEMU goes away first.
    public func send(_ command: QMPCommand, _ completion: @escaping Completion = { _ in }) {
        guard !isClosed else { return completion(.failure(.disconnected)) }
        guard isReady else { return queued.append((command, completion)) }
        enqueue(command, completion)
    }

    private func enqueue(_ command: QMPCommand, _ completion: @escaping Completion) {
        var c = command
        c.id = nextId
        nextId += 1
        pending[c.id] = completion
        sentAt[c.id] = monotonicSeconds()
        outbox += c.encodedLine()
        flush()
    }

    /// Writes what the socket takes now.
    public func flush() {
        guard !outbox.isEmpty, !isClosed else { return }
        switch fd.write(outbox) {
        case .success(let n): outbox.removeFirst(n)
        case .failure(.wouldBlock): break
        case .failure: close()
        }
    }

    /// Reads what is available and dispatches complete messages. Returns false once closed.
    @discardableResult
    public func handleReadable() -> Bool {
        while !isClosed {
            switch fd.read() {
            case .success(let bytes) where !bytes.isEmpty:
                guard let msgs = try? lines.append(bytes) else { close(); return false }
                msgs.forEach(dispatch)
            case .failure(.wouldBlock):
                return true
            default:
                close()
            }
        }
        return false
    }

    private func dispatch(_ line: [UInt8]) {
        guard let message = try? QMPMessage.decode(line) else { return }
        switch message {
        case .greeting:
            enqueue(.capabilities) { [weak self] result in
                guard let self, case .success = result else { self?.close(); return }
                self.isReady = true
                let waiting = self.queued
                self.queued.removeAll()
                for (c, done) in waiting { self.enqueue(c, done) }
                self.onReady?()
            }
        case .reply(let id, let result):
            sentAt.removeValue(forKey: id)
            pending.removeValue(forKey: id)?(result)
        case .event(let name, let data):
            if name == "JOB_STATUS_CHANGE", data?["status"]?.string == "concluded", let id = data?["id"]?.string {
                jobWaiters.removeValue(forKey: id)?()
            }
            eventWaiters.removeAll { $0(name, data) }
            onEvent?(name, data)
        case .unrecognized:
            break
        }
    }

    /// Closes the socket and fails every outstanding command.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        fd.close()
        let waiting = pending.values.map { $0 } + queued.map { $0.1 }
        pending.removeAll()
        sentAt.removeAll()
        jobWaiters.removeAll()
        queued.removeAll()
        waiting.forEach { $0(.failure(.disconnected)) }
    }
}

extension QMPClient: LoopPart {
    var interests: [PollInterest] { isClosed ? [] : [PollInterest(fd, read: true, write: wantsWrite)] }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        guard !isClosed, let r = ready[fd] else { return }
        if r.writable { flush() }
        if r.readable || r.hangup { handleReadable() }
    }
}

extension QMPClient {
    /// Calls `done` with the data of the next MIGRATION event whose status has ended
    /// (completed, failed or cancelled). Needs the `events` migration capability.
    func whenMigrationEnds(_ done: @escaping (String) -> Void) {
        eventWaiters.append { name, data in
            guard name == "MIGRATION", let status = data?["status"]?.string, ["completed", "failed", "cancelled"].contains(status) else { return false }
            done(status)
            return true
        }
    }

    /// Gives `waiter` every event from now on until it returns true (then it is dropped).
    func whenEvent(_ waiter: @escaping (String, JSONValue?) -> Bool) {
        eventWaiters.append(waiter)
    }

    /// Turns on MIGRATION events (QEMU sends them only when asked).
    func enableMigrationEvents(_ done: @escaping (String?) -> Void) {
        let cap: JSONValue = .object(["capability": .string("events"), "state": .bool(true)])
        send(QMPCommand("migrate-set-capabilities", ["capabilities": .array([cap])])) { r in
            if case .failure(let e) = r { return done(e.desc) }
            done(nil)
        }
    }

    /// Runs a QMP job (snapshot-save, snapshot-load, snapshot-delete): sends it with a fresh
    /// job id, waits for it to conclude, reads its error from query-jobs and dismisses it.
    /// `done` gets nil on success, else QEMU's reason. The waiter is registered before the
    /// command goes out: "concluded" can come before the command's own reply.
    func runJob(_ execute: String, _ arguments: [String: JSONValue], _ done: @escaping (String?) -> Void) {
        let id = "labrun-\(nextJob)"
        nextJob += 1
        jobWaiters[id] = { [weak self] in
            guard let self else { return done(QMPError.disconnected.desc) }
            send(.queryJobs) { [weak self] r in
                switch r {
                case .failure(let e): done(e.desc)
                case .success(let jobs):
                    self?.send(QMPCommand("job-dismiss", ["id": .string(id)]))
                    done(jobs.array?.first { $0["id"]?.string == id }?["error"]?.string)
                }
            }
        }
        var args = arguments
        args["job-id"] = .string(id)
        send(QMPCommand(execute, args)) { [weak self] r in
            if case .failure(let e) = r {
                self?.jobWaiters.removeValue(forKey: id)
                done(e.desc)
            }
        }
    }

    /// Sends `quit` when QEMU is past the handshake; false when it cannot be asked now.
    func quitIfReady() -> Bool {
        guard isReady, !isClosed else { return false }
        send(.quit)
        return true
    }

    /// Alt-SysRq-KEY on the guest's keyboard (QMP send-key); `failed` gets QEMU's reason if it refuses.
    func sendSysRq(_ key: String, failed: @escaping (String) -> Void) {
        let keys: [JSONValue] = ["alt", "sysrq", key].map { .object(["type": .string("qcode"), "data": .string($0)]) }
        send(QMPCommand("send-key", ["keys": .array(keys)])) { r in
            if case .failure(let e) = r { failed(e.desc) }
        }
    }

    /// Connects to a QMP socket for blocking use outside a poll loop (tests, benchmarks, the
    /// CLI): `execute` drives the client's own little loop until the reply.
    public static func connect(path: String) throws(SystemCallError) -> QMPClient {
        let fd = try UnixSocket.connect(path: path)
        try fd.setNonBlocking(true)
        return QMPClient(fd: fd)
    }

    /// Sends a command and waits for its reply (blocking; never inside the supervisor's loop).
    public func execute(_ command: QMPCommand, timeout: Double = 60) throws(QMPError) -> JSONValue {
        var result: Result<JSONValue, QMPError>?
        send(command) { result = $0 }
        let deadline = monotonicSeconds() + timeout
        while result == nil {
            let left = deadline - monotonicSeconds()
            if left <= 0 { throw QMPError(errorClass: "labrun.Timeout", desc: "no reply from QEMU to \(command.execute) in \(Int(timeout)) s") }
            var set = PollSet()
            set.add(fd, read: true, write: wantsWrite)
            let ready = (try? set.wait(timeout: Int32(min(left, 1) * 1000))) ?? [:]
            if let r = ready[fd] {
                if r.writable { flush() }
                if r.readable || r.hangup { handleReadable() }
            }
            if isClosed && result == nil { result = .failure(.disconnected) }
        }
        return try result!.get()
    }
}
