import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// Helpers for the fault, bad-input, security and load suites (issue 7).

/// How big the load tests run: LABRUN_LOAD_SCALE=full (what `make test-faults` sets) gives the
/// issue's sizes (200 snapshot cycles, 50 restores); a number scales them; unset gives the
/// reduced sizes of the normal run.
enum LoadScale {
    static let value: String = getenv("LABRUN_LOAD_SCALE").map { String(cString: $0) } ?? ""
    static var isFull: Bool { value == "full" || Double(value) == 1 }
    static func size(full: Int, reduced: Int, minimum: Int) -> Int {
        if isFull { return full }
        if let f = Double(value), f > 0 { return max(minimum, Int((Double(full) * f).rounded())) }
        return reduced
    }
    static var snapshotCycles: Int { size(full: 200, reduced: 30, minimum: 21) }
    static var restores: Int { size(full: 50, reduced: 10, minimum: 2) }
}

/// Whether the tests run as root (mounts and `setpriv` need it).
let runningAsRoot = getuid() == 0

/// A tmpfs mounted by the test (needs root): a small file system to fill up.
final class TmpfsMount {
    let path: String
    private var mounted = false

    init(at path: String, sizeMiB: Int) throws {
        self.path = path
        try #require(makeDirectory(path))
        let r = try Spawner.run("mount", ["-t", "tmpfs", "-o", "size=\(sizeMiB)m,mode=0755", "tmpfs", path])
        try #require(r.status == .exited(0), "mount tmpfs failed: \(r.stderr)")
        mounted = true
    }

    /// Free bytes on the file system.
    var freeBytes: UInt64 {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return 0 }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    /// Fills the file system until `leave` bytes are free (a file of zeros named `name`).
    func fill(leaving leave: UInt64, name: String = "filler") throws {
        let free = freeBytes
        guard free > leave else { return }
        let fd = try FileDescriptor.open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        defer { fd.close() }
        let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
        var left = free - leave
        while left > 0 {
            let n = Int(min(left, UInt64(chunk.count)))
            try fd.writeAll(chunk.prefix(n))
            left -= UInt64(n)
        }
    }

    func unmount() {
        guard mounted else { return }
        // Lazy: a process that still holds a file there must not make the test hang.
        _ = try? Spawner.run("umount", ["-l", path])
        mounted = false
    }

    deinit { unmount() }
}

/// Runs a program as user and group `nobody` (65534), with no supplementary groups.
func runAsNobody(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Spawner.Output {
    let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    return try Spawner.run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                                       "PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + assignments + [executable] + arguments)
}

/// A file's permission bits (lstat), nil when it is missing.
func permissions(_ path: String) -> mode_t? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o7777
}

func octal(_ m: mode_t?) -> String { m.map { "0" + String($0, radix: 8) } ?? "missing" }

/// VmRSS of a process in KiB, from /proc.
func residentKiB(_ pid: Int32) -> Int? {
    guard let bytes = readSmallFile("/proc/\(pid)/status", limit: 64 * 1024) else { return nil }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }
    return nil
}

/// The status JSON of a running lab (`labrun status --json`).
struct RunningStatus: Decodable {
    struct Status: Decodable { var qemuPid: Int32; var supervisorPid: Int32; var runState: String; var runDirectory: String }
    var running: Bool
    var status: Status?
}

extension TestLab {
    func runningStatus(sourceLocation: SourceLocation = #_sourceLocation) throws -> RunningStatus {
        let r = try cli(["status", "--json"])
        try #require(r.status == .exited(0), "status failed: \(r.stderr)", sourceLocation: sourceLocation)
        return try JSONDecoder().decode(RunningStatus.self, from: Data(r.standardOutput))
    }

    /// `labrun exec -- sh -c LINE`, its output and status.
    func exec(_ line: String) throws -> Spawner.Output {
        try cli(["exec", "--", "sh", "-c", line])
    }
}

extension ConsoleSession {
    /// Reads whatever the screen shows for `seconds` (keeps labrun's output flowing).
    func drain(for seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline { pump(timeout: max(0.001, min(0.05, deadline - monotonicSeconds()))) }
    }
}

/// labrun's one-line refusal: exit status ≠ 0, nothing on stdout, exactly one line on stderr.
func expectOneLineRefusal(_ r: Spawner.Output, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status != .exited(0), "\(what): accepted: \(r.stdout)", sourceLocation: sourceLocation)
    #expect(r.stdout.isEmpty, "\(what): printed on stdout: \(r.stdout)", sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n")
    #expect(lines.count == 1 && lines[0].hasPrefix("labrun: "), "\(what): not one line: \(r.stderr)", sourceLocation: sourceLocation)
}

/// One raw exchange on a control socket, as a hand-written client would do it: sends `bytes`
/// (as much as the server takes), then reads until the server closes or `timeout` passes.
/// Returns the lines received and whether the server closed the connection.
func rawControlExchange(_ socket: String, _ bytes: [UInt8], timeout: Double = 10) throws -> (lines: [String], closed: Bool) {
    signal(SIGPIPE, SIG_IGN)
    let fd = try UnixSocket.connect(path: socket)
    defer { fd.close() }
    try fd.setNonBlocking(true)
    var rest = bytes[...]
    var received: [UInt8] = []
    var closed = false
    let deadline = monotonicSeconds() + timeout
    while !closed && monotonicSeconds() < deadline {
        var set = PollSet()
        set.add(fd, read: true, write: !rest.isEmpty)
        let ready = try set.wait(timeout: 100)
        guard let r = ready[fd] else { continue }
        if r.writable && !rest.isEmpty {
            switch fd.write(rest) {
            case .success(let n): rest = rest.dropFirst(n)
            case .failure(.wouldBlock): break
            case .failure: rest = [] // the server stopped reading and closed
            }
        }
        if r.readable || r.hangup {
            switch fd.read() {
            case .success(let b) where !b.isEmpty: received += b
            case .failure(.wouldBlock): break
            default: closed = true
            }
        }
    }
    let lines = String(decoding: received, as: UTF8.self).split(separator: "\n").map(String.init)
    return (lines, closed)
}

/// A free TCP port on 127.0.0.1 (for a gdb stub that must not collide with other VMs).
func freeLoopbackPort() -> Int {
    for _ in 0..<50 {
        let p = 20000 + Int.random(in: 0..<20000)
        if TCPPort.isFreeOnLoopback(p) { return p }
    }
    return 1234
}
