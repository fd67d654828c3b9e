import Glibc

/// A raw file descriptor with the few operations labrun needs. Not owning: callers close.
public struct FileDescriptor: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    /// Opens a path. The corresponding C function is `open`.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemCallError) -> FileDescriptor {
        let fd = try valueOrErrno { Glibc.open(path, flags | O_CLOEXEC, mode) }.get("open \(path)")
        return FileDescriptor(rawValue: fd)
    }

    /// The raw calls, as values: tests pass their own to inject EINTR, short writes and
    /// failures (as swift-system's mocking does); everything else uses Glibc's.
    typealias ReadCall = (Int32, UnsafeMutableRawPointer?, Int) -> Int
    typealias WriteCall = (Int32, UnsafeRawPointer?, Int) -> Int
    typealias CloseCall = (Int32) -> Int32

    /// Reads up to `count` bytes; an empty array means end of file.
    /// EAGAIN is returned as `.wouldBlock` for non-blocking descriptors; EINTR is retried.
    /// The corresponding C function is `read`.
    public func read(upTo count: Int = 65536) -> Result<[UInt8], Errno> {
        read(upTo: count, call: Glibc.read)
    }

    func read(upTo count: Int, call: ReadCall) -> Result<[UInt8], Errno> {
        // Uninitialised capacity: no zero-filling of a buffer the kernel is about to overwrite
        // (a pty read returns ~4 KiB, so zeroing 64 KiB each time dominated the relay's cost).
        var failure: Errno?
        let buffer = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            switch valueOrErrno({ call(rawValue, raw.baseAddress, count) }) {
            case .success(let n): initialized = n
            case .failure(let e): failure = e; initialized = 0
            }
        }
        if let failure { return .failure(failure) }
        return .success(buffer)
    }

    /// Writes some of `bytes`; returns how many were written; EINTR is retried.
    /// The corresponding C function is `write`.
    public func write(_ bytes: some Collection<UInt8>) -> Result<Int, Errno> {
        write(bytes, call: Glibc.write)
    }

    func write(_ bytes: some Collection<UInt8>, call: WriteCall) -> Result<Int, Errno> {
        let array = Array(bytes)
        if array.isEmpty { return .success(0) }
        return array.withUnsafeBytes { raw in
            valueOrErrno { call(rawValue, raw.baseAddress, raw.count) }
        }
    }

    /// Writes some of the bytes at `buffer` (no copy); returns how many; EINTR is retried.
    /// The corresponding C function is `write`.
    public func write(_ buffer: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        if buffer.isEmpty { return .success(0) }
        return valueOrErrno { Glibc.write(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Writes every byte, looping over short writes and waiting out EAGAIN with poll.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemCallError) {
        try writeAll(bytes, call: Glibc.write)
    }

    func writeAll(_ bytes: some Collection<UInt8>, call: WriteCall) throws(SystemCallError) {
        var rest = Array(bytes)[...]
        while !rest.isEmpty {
            switch write(rest, call: call) {
            case .success(let n): rest = rest.dropFirst(n)
            case .failure(.wouldBlock):
                var pfd = pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)
                _ = valueOrErrno { poll(&pfd, 1, 1000) }
            case .failure(let err): throw SystemCallError(call: "write", errno: err)
            }
        }
    }

    public func writeAll(_ string: String) throws(SystemCallError) {
        try writeAll(Array(string.utf8))
    }

    /// Closes the descriptor. Never retried on EINTR (Linux has already released it).
    /// The corresponding C function is `close`.
    public func close() {
        close(call: Glibc.close)
    }

    @discardableResult
    func close(call: CloseCall) -> Result<Void, Errno> {
        Self.closedCount &+= 1
        return nothingOrErrno(retryOnInterrupt: false) { call(rawValue) }
    }

    /// How many descriptors this process has closed. An `EventSet` makes its registrations
    /// anew when it moved: a closed number may come back as another file. (Every close goes
    /// through here; the loops that read it run on the main thread.)
    nonisolated(unsafe) static var closedCount = 0

    /// Runs `body` and closes the descriptor on every path.
    public func closeAfter<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        defer { close() }
        return try body()
    }

    public func fileStatusFlags() throws(SystemCallError) -> Int32 {
        try valueOrErrno { fcntl(rawValue, F_GETFL) }.get("fcntl F_GETFL")
    }

    public func setFileStatusFlags(_ flags: Int32) throws(SystemCallError) {
        try nothingOrErrno { fcntl(rawValue, F_SETFL, flags) }.get("fcntl F_SETFL")
    }

    public func setNonBlocking(_ on: Bool) throws(SystemCallError) {
        let flags = try fileStatusFlags()
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if wanted != flags { try setFileStatusFlags(wanted) }
    }

    public func setCloseOnExec() throws(SystemCallError) {
        try nothingOrErrno { fcntl(rawValue, F_SETFD, FD_CLOEXEC) }.get("fcntl F_SETFD")
    }

    public var isTerminal: Bool { isatty(rawValue) == 1 }

    /// A pipe with both ends close-on-exec. The corresponding C function is `pipe`.
    public static func pipe() throws(SystemCallError) -> (readEnd: FileDescriptor, writeEnd: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try nothingOrErrno(retryOnInterrupt: false) { Glibc.pipe(&fds) }.get("pipe")
        let ends = (readEnd: FileDescriptor(rawValue: fds[0]), writeEnd: FileDescriptor(rawValue: fds[1]))
        // labrun spawns from one thread only, so setting FD_CLOEXEC right after is race-free.
        try ends.readEnd.setCloseOnExec()
        try ends.writeEnd.setCloseOnExec()
        return ends
    }
}

/// Reads a whole small file, or nil.
public func readSmallFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
    guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
    defer { fd.close() }
    var out: [UInt8] = []
    while out.count < limit {
        guard case .success(let chunk) = fd.read(), !chunk.isEmpty else { break }
        out += chunk
    }
    return out
}

extension String {
    /// Writes the string to a file, replacing it.
    func write(toFile path: String) throws(SystemCallError) {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        try fd.closeAfter { () throws(SystemCallError) in try fd.writeAll(self) }
    }
}
