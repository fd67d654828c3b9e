import Glibc

/// Glibc hides POSIX_SPAWN_SETSID behind __USE_GNU; its value from <spawn.h> (glibc ≥ 2.26).
let POSIX_SPAWN_SETSID_FLAG: Int16 = 0x80

/// How a child ended.
public enum TerminationStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus s: Int32) {
        if s & 0x7f == 0 { self = .exited((s >> 8) & 0xff) } else { self = .signaled(s & 0x7f) }
    }
    public var isSuccess: Bool { self == .exited(0) }
    public var description: String {
        switch self {
        case .exited(let c): "exit status \(c)"
        case .signaled(let s): "killed by \(Signal(rawValue: s))"
        }
    }
}

/// A running (or finished) child process.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public private(set) var status: TerminationStatus?

    init(pid: pid_t) { self.pid = pid }

    /// Reaps without blocking; returns the status once the child has ended.
    @discardableResult
    public func poll() -> TerminationStatus? {
        if let status { return status }
        var s: Int32 = 0
        if case .success(let r) = valueOrErrno({ waitpid(pid, &s, WNOHANG) }), r == pid {
            status = TerminationStatus(waitStatus: s)
        }
        return status
    }

    /// Blocks until the child ends (CLI side only, never inside the poll loop).
    @discardableResult
    public func wait() -> TerminationStatus {
        if let status { return status }
        var s: Int32 = 0
        if case .success = valueOrErrno({ waitpid(pid, &s, 0) }) {
            status = TerminationStatus(waitStatus: s)
        } else {
            status = .exited(255)
        }
        return status!
    }

    /// Waits up to `seconds` for the child to end.
    public func wait(upTo seconds: Double) -> TerminationStatus? {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if let s = poll() { return s }
            sleepSeconds(0.01)
        }
        return poll()
    }

    public func send(_ signal: Signal) {
        guard status == nil else { return }
        kill(pid, signal.rawValue)
    }
}

public enum Spawner {
    /// Starts the configured program with posix_spawn: an empty signal mask, every signal at
    /// its default, standard descriptors as configured, and optionally a new session.
    public static func spawn(_ config: SpawnConfiguration) throws(SystemCallError) -> ChildProcess {
        guard let exe = findExecutable(config.executable) else {
            throw SystemCallError(call: "\(config.executable): not found", errno: .noEntry)
        }
        var actions = posix_spawn_file_actions_t()
        try checkReturnCode("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attr = posix_spawnattr_t()
        try checkReturnCode("posix_spawnattr_init", posix_spawnattr_init(&attr))
        defer { posix_spawnattr_destroy(&attr) }

        // A source descriptor in 0...2 could be overwritten by an earlier dup2 onto that
        // number (stdout = our fd 0 after stdin was replaced): move such sources above 2 first.
        var temporaries: [FileDescriptor] = []
        defer { temporaries.forEach { $0.close() } }
        var ios = [config.standardInput, config.standardOutput, config.standardError]
        for (target, io) in ios.enumerated() {
            guard case .descriptor(let fd) = io, fd.rawValue <= 2, fd.rawValue != Int32(target) else { continue }
            let moved = try valueOrErrno { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 3) }.get("fcntl F_DUPFD_CLOEXEC")
            temporaries.append(FileDescriptor(rawValue: moved))
            ios[target] = .descriptor(FileDescriptor(rawValue: moved))
        }
        for (target, io) in ios.enumerated() {
            let t = Int32(target)
            switch io {
            case .inherit: break
            case .devNull:
                try checkReturnCode("addopen", posix_spawn_file_actions_addopen(&actions, t, "/dev/null", O_RDWR, 0))
            case .descriptor(let fd):
                try checkReturnCode("adddup2", posix_spawn_file_actions_adddup2(&actions, fd.rawValue, t))
            case .path(let path):
                try checkReturnCode("addopen", posix_spawn_file_actions_addopen(&actions, t, path, O_RDWR, 0))
            }
        }

        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if config.newSession { flags |= POSIX_SPAWN_SETSID_FLAG }
        try checkReturnCode("posix_spawnattr_setflags", posix_spawnattr_setflags(&attr, flags))
        var empty = sigset_t()
        sigemptyset(&empty)
        try checkReturnCode("setsigmask", posix_spawnattr_setsigmask(&attr, &empty))
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        try checkReturnCode("setsigdefault", posix_spawnattr_setsigdefault(&attr, &all))

        var env: [String: String] = [:]
        var e = environ
        while let p = e.pointee {
            let entry = String(cString: p)
            if let eq = entry.firstIndex(of: "=") { env[String(entry[..<eq])] = String(entry[entry.index(after: eq)...]) }
            e += 1
        }
        for (k, v) in config.environment { env[k] = v }

        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + config.arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        try checkReturnCode("posix_spawn \(exe)", posix_spawn(&pid, exe, &actions, &attr, argv, envp))
        return ChildProcess(pid: pid)
    }

    /// The result of running a program to completion with its output captured.
    public struct Output: Sendable {
        public let status: TerminationStatus
        public let standardOutput: [UInt8]
        public let standardError: [UInt8]
        public var stdout: String { String(decoding: standardOutput, as: UTF8.self) }
        public var stderr: String { String(decoding: standardError, as: UTF8.self) }
    }

    /// Runs a program to completion, capturing stdout and stderr (both read through poll so
    /// neither pipe can fill and block the child). Blocking: CLI side only.
    public static func run(_ executable: String, _ arguments: [String], input: StandardIO = .devNull) throws(SystemCallError) -> Output {
        let out = try FileDescriptor.pipe()
        let err: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do { err = try FileDescriptor.pipe() } catch { out.readEnd.close(); out.writeEnd.close(); throw error }
        var config = SpawnConfiguration(executable: executable, arguments: arguments)
        config.standardInput = input
        config.standardOutput = .descriptor(out.writeEnd)
        config.standardError = .descriptor(err.writeEnd)
        let child: ChildProcess
        do { child = try spawn(config) } catch {
            [out.readEnd, out.writeEnd, err.readEnd, err.writeEnd].forEach { $0.close() }
            throw error
        }
        out.writeEnd.close()
        err.writeEnd.close()
        var stdoutBytes: [UInt8] = [], stderrBytes: [UInt8] = []
        var open: Set<FileDescriptor> = [out.readEnd, err.readEnd]
        while !open.isEmpty {
            var set = PollSet()
            for fd in open { set.add(fd) }
            let ready = (try? set.wait(timeout: -1)) ?? [:]
            for (fd, r) in ready where r.readable || r.hangup || r.invalid {
                switch fd.read() {
                case .success(let bytes) where !bytes.isEmpty:
                    if fd == out.readEnd { stdoutBytes += bytes } else { stderrBytes += bytes }
                case .failure(.wouldBlock): break
                default:
                    open.remove(fd)
                    fd.close()
                }
            }
        }
        return Output(status: child.wait(), standardOutput: stdoutBytes, standardError: stderrBytes)
    }
}
