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

/// Passing descriptors over a Unix socket (SCM_RIGHTS): a console terminal hands its own
/// terminal to the supervisor, which then relays it without a hop through the client (issue 12).
/// The control-message layout is written out here because Swift cannot use the CMSG_* macros:
/// a `cmsghdr` (length, level, type), then the descriptors, each part aligned to `size_t`.
extension UnixSocket {
    static let maxPassedDescriptors = 4
    private static func align(_ n: Int) -> Int { (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }
    private static var headerSize: Int { align(MemoryLayout<cmsghdr>.size) }
    private static func controlSpace(_ count: Int) -> Int { headerSize + align(count * MemoryLayout<Int32>.size) }

    /// Sends `bytes` (at least one) with `descriptors` attached, in one sendmsg; blocking on a
    /// blocking socket. Returns the bytes written.
    public static func send(_ socket: FileDescriptor, _ bytes: [UInt8], passing descriptors: [FileDescriptor]) -> Result<Int, Errno> {
        precondition(!bytes.isEmpty && descriptors.count <= maxPassedDescriptors)
        var control = [UInt8](repeating: 0, count: controlSpace(descriptors.count))
        var data = bytes
        return data.withUnsafeMutableBytes { dataRaw in
            control.withUnsafeMutableBytes { controlRaw in
                var header = cmsghdr()
                header.cmsg_len = headerSize + descriptors.count * MemoryLayout<Int32>.size
                header.cmsg_level = SOL_SOCKET
                header.cmsg_type = Int32(SCM_RIGHTS)
                withUnsafeBytes(of: &header) { controlRaw.copyMemory(from: $0) }
                for (i, fd) in descriptors.enumerated() {
                    withUnsafeBytes(of: fd.rawValue) { v in
                        UnsafeMutableRawBufferPointer(rebasing: controlRaw[(headerSize + i * 4)...]).copyMemory(from: v)
                    }
                }
                return withMessage(dataRaw, descriptors.isEmpty ? UnsafeMutableRawBufferPointer(start: nil, count: 0) : controlRaw) { m in
                    valueOrErrno { sendmsg(socket.rawValue, &m, Int32(MSG_NOSIGNAL)) }.map { Int($0) }
                }
            }
        }
    }

    /// A message header over one data buffer and a control buffer (empty: no control data).
    private static func withMessage<R>(_ data: UnsafeMutableRawBufferPointer, _ control: UnsafeMutableRawBufferPointer, _ body: (inout msghdr) -> R) -> R {
        var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
        return withUnsafeMutablePointer(to: &iov) { iovp in
            var m = msghdr()
            m.msg_iov = iovp
            m.msg_iovlen = 1
            m.msg_control = control.baseAddress
            m.msg_controllen = control.count
            return body(&m)
        }
    }

    /// Reads up to `count` bytes and any descriptors that came with them (close-on-exec).
    /// EAGAIN is `.wouldBlock`; an empty result is the end of the stream.
    public static func receive(_ socket: FileDescriptor, upTo count: Int = 65536) -> Result<(bytes: [UInt8], descriptors: [FileDescriptor]), Errno> {
        var buffer = [UInt8](repeating: 0, count: count)
        var control = [UInt8](repeating: 0, count: controlSpace(maxPassedDescriptors))
        var passed: [FileDescriptor] = []
        let r: Result<Int, Errno> = buffer.withUnsafeMutableBytes { dataRaw in
            control.withUnsafeMutableBytes { controlRaw in
                withMessage(dataRaw, controlRaw) { m in
                    let n = valueOrErrno { recvmsg(socket.rawValue, &m, Int32(MSG_CMSG_CLOEXEC)) }
                    // Walk the control messages (normally one) for the descriptors.
                    var offset = 0
                    let total = min(Int(m.msg_controllen), controlRaw.count)
                    while case .success = n, offset + headerSize <= total {
                        var h = cmsghdr()
                        withUnsafeMutableBytes(of: &h) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: controlRaw[offset..<(offset + MemoryLayout<cmsghdr>.size)])) }
                        let length = Int(h.cmsg_len)
                        guard length >= headerSize, offset + length <= total else { break }
                        if h.cmsg_level == SOL_SOCKET && h.cmsg_type == Int32(SCM_RIGHTS) {
                            for i in 0..<((length - headerSize) / 4) {
                                var raw: Int32 = 0
                                withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: controlRaw[(offset + headerSize + i * 4)..<(offset + headerSize + i * 4 + 4)])) }
                                passed.append(FileDescriptor(rawValue: raw))
                            }
                        }
                        offset += align(length)
                    }
                    return n.map { Int($0) }
                }
            }
        }
        switch r {
        case .success(let n):
            buffer.removeSubrange(n...)
            return .success((buffer, passed))
        case .failure(let e):
            passed.forEach { $0.close() }
            return .failure(e)
        }
    }
}
