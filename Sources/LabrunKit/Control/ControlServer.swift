/// The supervisor's side of the control socket, driven by the supervisor's poll loop:
/// it accepts, checks the peer's uid, reads one request line per connection, and writes
/// responses as the socket takes them. It knows nothing of what requests do.
public final class ControlServer: LoopPart {
    /// A connection's identity for the supervisor's whole life: a counter, never the
    /// descriptor number (the kernel hands a closed client's number to the next client, which
    /// would then receive the dead client's late reply).
    public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt64
        public var description: String { "#\(rawValue)" }
    }

    public let listener: FileDescriptor
    public let path: String
    /// Called with each well-formed request; answer with `respond`.
    public var onRequest: ((ConnectionID, ControlRequest) -> Void)?

    private struct Connection {
        var fd: FileDescriptor
        var lines = LineBuffer(limit: ControlProtocol.maxRequestBytes)
        var outbox: [UInt8] = []
        var gotRequest = false
        var closing = false
        /// Set for a peer of another user: its request line is answered with this, unread.
        var refusal: LabrunError?
    }
    private var connections: [ConnectionID: Connection] = [:]
    /// Which connection each open descriptor belongs to now.
    private var byDescriptor: [FileDescriptor: ConnectionID] = [:]
    private var nextID: UInt64 = 1
    private let allowedUID: UInt32

    public init(path: String) throws(SystemCallError) {
        self.path = path
        listener = try UnixSocket.listen(path: path, mode: 0o600)
        allowedUID = currentUserID
    }

    /// Descriptors to poll: the listener and every connection (for write when it has output).
    public var interests: [PollInterest] {
        [PollInterest(listener)] + connections.values.map { PollInterest($0.fd, read: true, write: !$0.outbox.isEmpty) }
    }

    public func owns(_ fd: FileDescriptor) -> Bool { fd == listener || byDescriptor[fd] != nil }

    /// True while the client that sent a request is still connected (its reply has a reader).
    public func isConnected(_ id: ConnectionID) -> Bool { connections[id] != nil }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        for (fd, r) in ready where owns(fd) { handle(fd, r) }
    }

    public func handle(_ fd: FileDescriptor, _ readiness: Readiness) {
        if fd == listener {
            while let c = UnixSocket.accept(listener) { admit(c) }
            return
        }
        guard let id = byDescriptor[fd] else { return }
        if readiness.writable { flush(id) }
        if readiness.readable || readiness.hangup { read(id) }
    }

    /// Another user's peer is refused as the answer to its request line, not at once: closing
    /// before the client has written would make its write fail (EPIPE) and the client would
    /// never read why.
    private func admit(_ fd: FileDescriptor) {
        var c = Connection(fd: fd)
        if let peer = UnixSocket.peerCredentials(fd), peer.uid == allowedUID || peer.uid == 0 {} else {
            c.refusal = LabrunError("permission denied: this lab's supervisor belongs to another user")
        }
        let id = ConnectionID(rawValue: nextID)
        nextID += 1
        connections[id] = c
        byDescriptor[fd] = id
    }

    private func read(_ id: ConnectionID) {
        guard var c = connections[id] else { return }
        while true {
            switch c.fd.read(upTo: 16384) {
            case .success(let bytes) where !bytes.isEmpty:
                guard !c.gotRequest, !c.closing else { continue }
                do {
                    let lines = try c.lines.append(bytes)
                    if let line = lines.first {
                        c.gotRequest = true
                        connections[id] = c
                        if let refusal = c.refusal {
                            respond(id, .failure(refusal))
                            guard let current = connections[id] else { return }
                            c = current
                            continue
                        }
                        switch ControlRequest.decode(line) {
                        case .success(let request): onRequest?(id, request)
                        case .failure(let error): respond(id, .failure(error))
                        }
                        // Answered and closed already: its descriptor is gone (and its number
                        // may be reused), so never read it again.
                        guard let current = connections[id] else { return }
                        c = current
                    }
                } catch {
                    connections[id] = c
                    respond(id, .failure(c.refusal ?? LabrunError("control request longer than \(ControlProtocol.maxRequestBytes) bytes: refused")))
                    guard let current = connections[id] else { return }
                    c = current
                }
            case .failure(.wouldBlock):
                connections[id] = c
                return
            default:
                // Peer closed: drop the connection (a pending request still completes; its reply is discarded).
                drop(id)
                return
            }
        }
    }

    /// Queues a response; a final one closes the connection once written. A response for a
    /// client that has gone is dropped.
    public func respond(_ id: ConnectionID, _ response: ControlResponse) {
        guard var c = connections[id] else { return }
        c.outbox += response.encodedLine()
        if response.final { c.closing = true }
        connections[id] = c
        flush(id)
    }

    private func flush(_ id: ConnectionID) {
        guard var c = connections[id] else { return }
        if !c.outbox.isEmpty {
            switch c.fd.write(c.outbox) {
            case .success(let n): c.outbox.removeFirst(n)
            case .failure(.wouldBlock): break
            case .failure: drop(id); return
            }
        }
        connections[id] = c
        if c.outbox.isEmpty && c.closing { drop(id) }
    }

    private func drop(_ id: ConnectionID) {
        guard let c = connections.removeValue(forKey: id) else { return }
        byDescriptor.removeValue(forKey: c.fd)
        c.fd.close()
    }

    public func close() {
        for id in connections.keys { drop(id) }
        listener.close()
        removeFile(path)
    }
}
