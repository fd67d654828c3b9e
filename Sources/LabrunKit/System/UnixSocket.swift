import Glibc

/// Unix stream sockets: listen, accept, connect, and the peer's credentials.
public enum UnixSocket {
    /// The longest path a sockaddr_un holds (107 bytes plus the NUL).
    public static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    private static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(SystemCallError) -> R {
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathLength else {
            throw SystemCallError(call: "socket path too long (\(bytes.count) > \(maxPathLength) bytes): \(path)", errno: Errno(rawValue: ENAMETOOLONG))
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    private static func newSocket() throws(SystemCallError) -> FileDescriptor {
        let fd = try valueOrErrno { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }.get("socket")
        return FileDescriptor(rawValue: fd)
    }

    /// Binds and listens at `path` with the given mode (set through umask, so there is no
    /// window where the socket is more open). Removes a stale socket at the path first.
    public static func listen(path: String, mode: mode_t = 0o600) throws(SystemCallError) -> FileDescriptor {
        let fd = try newSocket()
        unlink(path)
        let old = umask(0o777 & ~mode)
        defer { umask(old) }
        do {
            let r = try withAddress(path) { addr, len in valueOrErrno { bind(fd.rawValue, addr, len) } }
            _ = try r.get("bind \(path)")
            _ = try valueOrErrno { Glibc.listen(fd.rawValue, 16) }.get("listen")
            try fd.setNonBlocking(true)
        } catch {
            fd.close()
            throw error
        }
        return fd
    }

    /// Connects to `path` (blocking). The corresponding C function is `connect`.
    public static func connect(path: String) throws(SystemCallError) -> FileDescriptor {
        let fd = try newSocket()
        do {
            let r = try withAddress(path) { addr, len in valueOrErrno { Glibc.connect(fd.rawValue, addr, len) } }
            _ = try r.get("connect \(path)")
        } catch {
            fd.close()
            throw error
        }
        return fd
    }

    /// Accepts one connection, or nil when none is waiting. The corresponding C function is `accept`.
    public static func accept(_ listener: FileDescriptor) -> FileDescriptor? {
        switch valueOrErrno({ Glibc.accept(listener.rawValue, nil, nil) }) {
        case .success(let raw):
            let fd = FileDescriptor(rawValue: raw)
            do {
                try fd.setCloseOnExec()
                try fd.setNonBlocking(true)
            } catch {
                fd.close()
                return nil
            }
            return fd
        case .failure: return nil
        }
    }

    /// The peer's pid and uid (SO_PEERCRED).
    public static func peerCredentials(_ fd: FileDescriptor) -> (pid: pid_t, uid: uid_t)? {
        var cred = PeerCredentials()
        var len = socklen_t(MemoryLayout<PeerCredentials>.size)
        let r = getsockopt(fd.rawValue, SOL_SOCKET, SO_PEERCRED_OPTION, &cred, &len)
        return r == 0 ? (cred.pid, cred.uid) : nil
    }

    /// Sets a receive timeout on a blocking socket so a client never hangs forever.
    public static func setReceiveTimeout(_ fd: FileDescriptor, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd.rawValue, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// Accumulates bytes from a stream and hands out complete lines, bounded in size.
public struct LineBuffer {
    public private(set) var pending: [UInt8] = []
    public let limit: Int
    public init(limit: Int = 1 << 20) { self.limit = limit }

    public enum LineError: Error { case tooLong }

    /// Appends bytes; returns complete lines (without the newline or a trailing CR).
    public mutating func append(_ bytes: [UInt8]) throws(LineError) -> [[UInt8]] {
        pending += bytes
        var lines: [[UInt8]] = []
        while let nl = pending.firstIndex(of: 0x0A) {
            var line = Array(pending[..<nl])
            if line.last == 0x0D { line.removeLast() }
            lines.append(line)
            pending.removeSubrange(...nl)
        }
        if pending.count > limit {
            pending.removeAll()
            throw .tooLong
        }
        return lines
    }
}
