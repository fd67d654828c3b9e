import Glibc

/// F_OFD_GETLK from <bits/fcntl-linux.h>, which Swift's Glibc module does not see (it sits
/// behind __USE_GNU). 36 on every Linux architecture.
let F_OFD_GETLK_COMMAND: Int32 = 36

extension FileDescriptor {
    /// Whether another open file description holds a lock that conflicts with a write lock on
    /// `length` bytes at `start`. Only asks: never takes, changes or releases a lock, so it
    /// cannot disturb the holder. The corresponding C function is `fcntl(F_OFD_GETLK)`.
    public func hasConflictingLock(start: Int, length: Int) throws(SystemCallError) -> Bool {
        var lock = flock(l_type: Int16(F_WRLCK), l_whence: Int16(SEEK_SET), l_start: off_t(start), l_len: off_t(length), l_pid: 0)
        try nothingOrErrno { fcntl(rawValue, F_OFD_GETLK_COMMAND, &lock) }.get("fcntl F_OFD_GETLK")
        return lock.l_type != Int16(F_UNLCK)
    }
}

/// Whether another open file description holds a lock conflicting with a write lock on any
/// of `ranges` of the file at `path`; false when the file cannot be opened or asked.
func fileHasConflictingLock(_ path: String, ranges: [(start: Int, length: Int)]) -> Bool {
    guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return false }
    defer { fd.close() }
    return ranges.contains { (try? fd.hasConflictingLock(start: $0.start, length: $0.length)) ?? false }
}
