import Glibc

// File-system and process queries the layers above need, each a thin checked wrapper, so
// nothing outside System/, Terminal/ and Process/ calls Glibc.

/// What `stat` says of a path that matters to labrun.
public struct FileStatus: Equatable, Sendable {
    public var isDirectory: Bool
    public var ownerUID: UInt32
    public var size: Int64
    /// Bytes allocated on disk (st_blocks × 512).
    public var allocatedBytes: Int64
    public var device: UInt64
    public var inode: UInt64
    /// Last modification, in nanoseconds since 1970.
    public var modifiedNanoseconds: Int64

    init(_ st: stat) {
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        ownerUID = st.st_uid
        size = Int64(st.st_size)
        allocatedBytes = Int64(st.st_blocks) * 512
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        modifiedNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }

    /// `stat` (following links), or nil when the path cannot be examined. The corresponding C function is `stat`.
    public static func of(_ path: String) -> FileStatus? {
        var st = stat()
        guard case .success = nothingOrErrno({ stat(path, &st) }) else { return nil }
        return FileStatus(st)
    }

    /// `lstat` (the link itself). The corresponding C function is `lstat`.
    public static func ofLink(_ path: String) -> FileStatus? {
        var st = stat()
        guard case .success = nothingOrErrno({ lstat(path, &st) }) else { return nil }
        return FileStatus(st)
    }
}

public func fileExists(_ p: String) -> Bool { access(p, F_OK) == 0 }

/// True when this process may read `path`. The corresponding C function is `access`.
public func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

/// True when this process may read and write `path`.
public func isReadWritable(_ path: String) -> Bool { access(path, R_OK | W_OK) == 0 }

/// True when this process may search (enter) the directory `path`.
public func isSearchable(_ path: String) -> Bool { access(path, X_OK) == 0 }

/// Sets a path's permission bits. The corresponding C function is `chmod`.
public func setPermissions(_ path: String, _ mode: UInt32) throws(SystemCallError) {
    try nothingOrErrno { chmod(path, mode_t(mode)) }.get("chmod \(path)")
}

/// Creates one directory; false when it could not (it may already exist). The corresponding C function is `mkdir`.
@discardableResult
public func createDirectory(_ path: String, mode: UInt32) -> Bool {
    if case .success = nothingOrErrno({ mkdir(path, mode_t(mode)) }) { return true }
    return false
}

/// Runs `body` with the process's file-creation mask set to `mask`, then puts the old one
/// back. Single-threaded callers only. The corresponding C function is `umask`.
public func withFileCreationMask<R, E: Error>(_ mask: UInt32, _ body: () throws(E) -> R) throws(E) -> R {
    let old = umask(mode_t(mask))
    defer { umask(old) }
    return try body()
}

/// The current directory, or "." when it cannot be read. The corresponding C function is `getcwd`.
func currentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buf, buf.count) != nil else { return "." }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// An environment variable, nil when unset. The corresponding C function is `getenv`.
public func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// This process's id and user. The corresponding C functions are `getpid` and `getuid`.
public var currentProcessID: Int32 { getpid() }
public var currentUserID: UInt32 { getuid() }

/// True when a process with this pid exists and this user may signal it (signal 0). The
/// corresponding C function is `kill`.
public func processExists(_ pid: Int32) -> Bool {
    if case .success = nothingOrErrno(retryOnInterrupt: false, { kill(pid, 0) }) { return true }
    return false
}

/// An exclusive, non-blocking flock on an open descriptor: true when taken. The
/// corresponding C function is `flock`.
public func tryExclusiveLock(_ fd: FileDescriptor) -> Bool {
    if case .success = nothingOrErrno({ flock(fd.rawValue, LOCK_EX | LOCK_NB) }) { return true }
    return false
}

extension FileDescriptor {
    /// Reads up to `count` bytes at `offset` (short only at end of file). The corresponding C function is `pread`.
    public func read(upTo count: Int, at offset: Int64) -> Result<[UInt8], Errno> {
        var failure: Errno?
        let buffer = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            switch valueOrErrno({ pread(rawValue, raw.baseAddress, count, off_t(offset)) }) {
            case .success(let n): initialized = n
            case .failure(let e): failure = e; initialized = 0
            }
        }
        if let failure { return .failure(failure) }
        return .success(buffer)
    }
}

/// The host's machine name ("x86_64", "aarch64"). The corresponding C function is `uname`.
public var hostMachine: String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

extension FileDescriptor {
    public static let readOnly = O_RDONLY
    public static let readWrite = O_RDWR
    public static let directoryOnly = O_RDONLY | O_DIRECTORY
    public static let createTruncate = O_WRONLY | O_CREAT | O_TRUNC
    /// A log: appended to, created if missing.
    public static let appendCreate = O_WRONLY | O_APPEND | O_CREAT
    /// A lock file: created if missing, never truncated.
    public static let createLock = O_RDWR | O_CREAT
}

/// `count` bytes from the kernel's random number generator (/dev/urandom).
public func hostRandomBytes(_ count: Int) -> [UInt8] {
    guard let fd = try? FileDescriptor.open("/dev/urandom", O_RDONLY) else { return [] }
    defer { fd.close() }
    var out: [UInt8] = []
    while out.count < count, case .success(let b) = fd.read(upTo: count - out.count), !b.isEmpty { out += b }
    return out
}

/// Points standard error at /dev/null (a background process whose reader has gone). The
/// corresponding C function is `dup2`.
public func redirectStandardErrorToNull() {
    guard let null = try? FileDescriptor.open("/dev/null", O_WRONLY) else { return }
    _ = dup2(null.rawValue, 2)
    null.close()
}

/// An exclusive flock, waiting for it (held for short read-modify-write steps only). The
/// corresponding C function is `flock`.
public func exclusiveLock(_ fd: FileDescriptor) -> Bool {
    if case .success = nothingOrErrno({ flock(fd.rawValue, LOCK_EX) }) { return true }
    return false
}
