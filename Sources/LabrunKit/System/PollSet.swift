import Glibc

/// What a poll call reported for one descriptor.
public struct Readiness: Sendable {
    public let readable: Bool
    public let writable: Bool
    /// POLLHUP or POLLERR: the peer is gone (data may still be readable).
    public let hangup: Bool
    public let invalid: Bool
}

extension Readiness {
    /// From a poll `revents` or an epoll `events` word: Linux gives both the same bits (IN 0x1,
    /// OUT 0x4, ERR 0x8, HUP 0x10, NVAL 0x20).
    init(events e: Int32) {
        readable = e & Int32(POLLIN) != 0
        writable = e & Int32(POLLOUT) != 0
        hangup = e & (Int32(POLLHUP) | Int32(POLLERR)) != 0
        invalid = e & Int32(POLLNVAL) != 0
    }
}

/// One descriptor a part of a poll loop wants watched, and for what.
public struct PollInterest: Equatable, Sendable {
    public var fd: FileDescriptor
    public var read: Bool
    public var write: Bool
    public init(_ fd: FileDescriptor, read: Bool = true, write: Bool = false) {
        self.fd = fd
        self.read = read
        self.write = write
    }
}

/// A set of descriptors and the events wanted on each, rebuilt for every wait.
public struct PollSet {
    private var fds: [pollfd] = []

    public init() {}

    /// Empties the set, keeping its storage for the next turn.
    public mutating func removeAll() { fds.removeAll(keepingCapacity: true) }

    public mutating func add(_ fd: FileDescriptor, read: Bool = true, write: Bool = false) {
        var events: Int16 = 0
        if read { events |= Int16(POLLIN) }
        if write { events |= Int16(POLLOUT) }
        fds.append(pollfd(fd: fd.rawValue, events: events, revents: 0))
    }

    public mutating func add(_ interest: PollInterest) {
        guard interest.read || interest.write else { return }
        add(interest.fd, read: interest.read, write: interest.write)
    }

    /// Each descriptor and what it is wanted for (an `EventSet` waits on them instead).
    func forEach(_ body: (_ fd: Int32, _ read: Bool, _ write: Bool) -> Void) {
        for p in fds { body(p.fd, p.events & Int16(POLLIN) != 0, p.events & Int16(POLLOUT) != 0) }
    }

    /// Waits up to `timeout` milliseconds (-1 forever). EINTR returns no readiness: the
    /// signal's byte is then waiting in the signal pipe. The corresponding C function is `poll`.
    public mutating func wait(timeout: Int32) throws(SystemCallError) -> [FileDescriptor: Readiness] {
        for i in fds.indices { fds[i].revents = 0 }
        let count = fds.count
        let result = fds.withUnsafeMutableBufferPointer { buffer in
            valueOrErrno(retryOnInterrupt: false) { poll(buffer.baseAddress, nfds_t(count), timeout) }
        }
        switch result {
        case .failure(.interrupted): return [:]
        case .failure(let err): throw SystemCallError(call: "poll", errno: err)
        case .success: break
        }
        var out: [FileDescriptor: Readiness] = [:]
        for p in fds where p.revents != 0 {
            out[FileDescriptor(rawValue: p.fd)] = Readiness(events: Int32(p.revents))
        }
        return out
    }
}
