import Glibc

/// Loopback TCP ports.
public enum TCPPort {
    /// True when nothing listens on 127.0.0.1:`port` (we can bind it). The probe socket is
    /// closed at once. The corresponding C functions are `socket` and `bind`.
    public static func isFreeOnLoopback(_ port: Int) -> Bool {
        guard case .success(let fd) = valueOrErrno({ socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }) else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return r == 0
    }
}
