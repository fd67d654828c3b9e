import Glibc

/// The supervisor's side of the control socket, driven by the supervisor's poll loop:
/// it accepts, checks the peer's uid, reads one request line per connection, and writes
/// responses as the socket takes them. It knows nothing of what requests do.
public final class ControlServer {
    public typealias ConnectionID = Int32

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
    private let allowedUID: uid_t

    public init(path: String) throws(SystemCallError) {
        self.path = path
        listener = try UnixSocket.listen(path: path, mode: 0o600)
        allowedUID = getuid()
    }

    /// Descriptors to poll: (fd, wants write).
    public var pollInterests: [(FileDescriptor, Bool)] {
        [(listener, false)] + connections.values.map { ($0.fd, !$0.outbox.isEmpty) }
    }

    public func owns(_ fd: FileDescriptor) -> Bool { fd == listener || connections[fd.rawValue] != nil }

    public func handle(_ fd: FileDescriptor, _ readiness: Readiness) {
        if fd == listener {
            while let c = UnixSocket.accept(listener) { admit(c) }
            return
        }
        guard connections[fd.rawValue] != nil else { return }
        if readiness.writable { flush(fd.rawValue) }
        if readiness.readable || readiness.hangup { read(fd.rawValue) }
    }

    /// Another user's peer is refused as the answer to its request line, not at once: closing
    /// before the client has written would make its write fail (EPIPE) and the client would
    /// never read why.
    private func admit(_ fd: FileDescriptor) {
        var c = Connection(fd: fd)
        if let peer = UnixSocket.peerCredentials(fd), peer.uid == allowedUID || peer.uid == 0 {} else {
            c.refusal = LabrunError("permission denied: this lab's supervisor belongs to another user")
        }
        connections[fd.rawValue] = c
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

    /// Queues a response; a final one closes the connection once written.
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
        connections.removeValue(forKey: id)?.fd.close()
    }

    public func close() {
        for id in connections.keys { drop(id) }
        listener.close()
        unlink(path)
    }
}
