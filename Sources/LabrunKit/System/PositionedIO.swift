import Glibc

// Positioned writes, flushes, the file's length and taking OFD locks: what rewriting a few
// bytes of an image file in place needs (Images/Qcow2SnapshotRename.swift). Reading at an
// offset is `read(upTo:at:)` in FileSystem.swift.

/// F_OFD_SETLK from <bits/fcntl-linux.h>, hidden behind __USE_GNU like F_OFD_GETLK. 37 on
/// every Linux architecture.
let F_OFD_SETLK_COMMAND: Int32 = 37

extension FileDescriptor {
    /// Writes all of `bytes` at `offset`, looping over short writes; EINTR is retried.
    /// The corresponding C function is `pwrite`.
    public func write(_ bytes: [UInt8], at offset: Int64) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = try bytes.withUnsafeBytes { raw in
                valueOrErrno { pwrite(rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset + Int64(done))) }
            }.get("pwrite")
            guard n > 0 else { throw SystemCallError(call: "pwrite", errno: .ioError) }
            done += n
        }
    }

    /// Flushes the file's data and metadata to disk. The corresponding C function is `fsync`.
    public func synchronize() throws(SystemCallError) {
        try nothingOrErrno { fsync(rawValue) }.get("fsync")
    }

    /// The file's length in bytes. The corresponding C function is `fstat`.
    public func length() throws(SystemCallError) -> Int64 {
        var st = stat()
        try nothingOrErrno { fstat(rawValue, &st) }.get("fstat")
        return Int64(st.st_size)
    }

    /// Takes a shared (read) OFD lock on `length` bytes at `start`, as QEMU does on the bytes
    /// that stand for the permissions it holds or forbids; fails with EAGAIN when another
    /// open file description holds a conflicting write lock. Released when the descriptor's
    /// last copy is closed. The corresponding C function is `fcntl(F_OFD_SETLK)`.
    public func lockShared(start: Int, length: Int) throws(SystemCallError) {
        var lock = flock(l_type: Int16(F_RDLCK), l_whence: Int16(SEEK_SET), l_start: off_t(start), l_len: off_t(length), l_pid: 0)
        try nothingOrErrno { fcntl(rawValue, F_OFD_SETLK_COMMAND, &lock) }.get("fcntl F_OFD_SETLK")
    }
}
