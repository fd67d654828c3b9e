import Glibc

/// The supervisor's wait (issue 12's keystroke figure): the descriptors a loop turn collects in
/// a `PollSet`, kept registered in one epoll set across turns. poll() registered and
/// unregistered every descriptor on every turn, about half of the supervisor's time per
/// keystroke; here a turn whose interests did not change costs one epoll_wait.
///
/// A registration belongs to an open file, not to its number: a descriptor closed while its
/// file stays open elsewhere (a terminal passed by a client, which keeps it) stays registered,
/// and a number closed and opened again between two turns names another file. So whenever
/// this process closed a descriptor since the last turn, the epoll set is made anew: that is
/// rare (a terminal or a link coming or going), never per keystroke.
final class EventSet {
    private var epoll: Int32
    /// What each registered descriptor is registered for (EPOLLIN, EPOLLOUT).
    private var registered: [Int32: UInt32] = [:]
    /// This turn's wanted events per descriptor (kept to reuse its storage).
    private var wanted: [Int32: UInt32] = [:]
    /// Room for the events one wait returns (`Epoll.eventSize` bytes each).
    private let received: UnsafeMutableRawPointer
    private static let capacity = 64
    private var closedCount = FileDescriptor.closedCount

    init() throws(SystemCallError) {
        epoll = try Self.create()
        received = .allocate(byteCount: Self.capacity * Epoll.eventSize, alignment: 8)
    }

    deinit {
        Glibc.close(epoll)
        received.deallocate()
    }

    private static func create() throws(SystemCallError) -> Int32 {
        guard let call = Epoll.create else { throw SystemCallError(call: "epoll_create1", errno: Errno(rawValue: ENOSYS)) }
        return try valueOrErrno { call(Epoll.cloexec) }.get("epoll_create1")
    }

    /// EPOLL_CTL_ADD, _MOD or _DEL of `fd` for `events`.
    private func control(_ op: Int32, _ fd: Int32, _ events: UInt32) -> Result<Void, Errno> {
        guard let call = Epoll.control else { return .failure(Errno(rawValue: ENOSYS)) }
        var event = [UInt8](repeating: 0, count: Epoll.eventSize)
        return event.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: Int64(fd), toByteOffset: Epoll.dataOffset, as: Int64.self)
            return nothingOrErrno { call(epoll, op, fd, raw.baseAddress) }
        }
    }

    private static let readEvent = Epoll.input
    private static let writeEvent = Epoll.output

    /// Waits up to `timeout` milliseconds (-1 forever) for the descriptors in `set`, as
    /// `PollSet.wait` does: EINTR returns no readiness; a closed descriptor is reported
    /// invalid (POLLNVAL), and a regular file (which epoll refuses) always ready, as poll does.
    func wait(_ set: PollSet, timeout: Int32) throws(SystemCallError) -> [FileDescriptor: Readiness] {
        if closedCount != FileDescriptor.closedCount {
            closedCount = FileDescriptor.closedCount
            let fresh = try Self.create()
            Glibc.close(epoll)
            epoll = fresh
            registered.removeAll(keepingCapacity: true)
        }
        wanted.removeAll(keepingCapacity: true)
        set.forEach { fd, read, write in
            wanted[fd, default: 0] |= (read ? Self.readEvent : 0) | (write ? Self.writeEvent : 0)
        }
        // Still open (nothing was closed), no longer wanted.
        for fd in registered.keys where wanted[fd] == nil {
            _ = control(Epoll.delete, fd, 0)
            registered.removeValue(forKey: fd)
        }

        var out: [FileDescriptor: Readiness] = [:]
        for (fd, events) in wanted where registered[fd] != events {
            switch control(registered[fd] == nil ? Epoll.add : Epoll.modify, fd, events) {
            case .success:
                registered[fd] = events
            case .failure(let e) where e.rawValue == EPERM:
                // A regular file or /dev/null: always readable and writable, for poll too.
                out[FileDescriptor(rawValue: fd)] = Readiness(events: Int32(events))
            case .failure:
                // EBADF: not open. Reported as poll reports it (POLLNVAL), so its part stops asking.
                out[FileDescriptor(rawValue: fd)] = Readiness(events: Int32(POLLNVAL))
            }
        }

        guard let call = Epoll.wait else { throw SystemCallError(call: "epoll_wait", errno: Errno(rawValue: ENOSYS)) }
        let wait = out.isEmpty ? timeout : 0
        let result = valueOrErrno(retryOnInterrupt: false) { call(epoll, received, Int32(Self.capacity), wait) }
        let count: Int32
        switch result {
        case .failure(.interrupted): return out
        case .failure(let err): throw SystemCallError(call: "epoll_wait", errno: err)
        case .success(let n): count = n
        }
        for i in 0..<Int(count) {
            let entry = received + i * Epoll.eventSize
            let e = entry.loadUnaligned(as: UInt32.self)
            let fd = Int32(truncatingIfNeeded: entry.loadUnaligned(fromByteOffset: Epoll.dataOffset, as: Int64.self))
            out[FileDescriptor(rawValue: fd)] = Readiness(events: Int32(bitPattern: e))
        }
        return out
    }
}
