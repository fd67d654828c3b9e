import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The repository root (the default lab, where `make guest` puts the tiny guest).
let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// The labrun binary under test: LABRUN_BIN, else the debug build.
let labrunBinary: String = getenv("LABRUN_BIN").map { String(cString: $0) } ?? repositoryRoot + "/.build/debug/labrun"

/// Integration tests need QEMU, the built guest and the labrun binary. When they are missing
/// the tests are skipped with that reason; `make test` provides all three.
let integrationAvailable: Bool = findExecutable("qemu-system-x86_64") != nil
    && fileExists(repositoryRoot + "/guest-build/vmlinux") && fileExists(repositoryRoot + "/debian-rootfs.qcow2")
    && fileExists(labrunBinary)

/// A throwaway lab: its own runtime layer on the repository's golden image (`labrun init`).
final class TestLab {
    let root: String

    init(name: String = "lab") throws {
        var template = Array("/tmp/labrun-test-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        root = dir + "/" + name
        let r = try labrun(["--lab", repositoryRoot, "init", root])
        try #require(r.status == .exited(0), "labrun init failed: \(r.stderr)")
    }

    var runtime: String { root + "/" + Lab.runtimeName }

    /// Runs the labrun CLI on this lab.
    @discardableResult
    func cli(_ args: [String], input: StandardIO = .devNull) throws -> Spawner.Output {
        try labrun(["--lab", root] + args, input: input)
    }

    /// Starts `labrun boot` on its own pseudo-terminal.
    func boot(_ extra: [String] = []) throws -> ConsoleSession {
        try ConsoleSession(arguments: ["--lab", root, "boot"] + extra)
    }

    deinit {
        _ = try? labrun(["--lab", root, "stop"])
        _ = try? Spawner.run("rm", ["-rf", parentDirectory(root)])
    }
}

func labrun(_ args: [String], input: StandardIO = .devNull) throws -> Spawner.Output {
    try Spawner.run(labrunBinary, args, input: input)
}

/// labrun running in a pty this test owns, as a user's terminal would: `expect` reads the
/// screen until a pattern shows, `send` types.
final class ConsoleSession {
    let pty: PseudoTerminal
    let process: ChildProcess
    /// Everything labrun printed so far.
    private(set) var transcript: [UInt8] = []
    /// Where the next `expect` starts looking.
    private var cursor = 0
    /// The terminal's settings before labrun started, to compare after it ends.
    let settingsBefore: termios
    let arguments: [String]

    init(arguments: [String], environment: [String: String] = ["LABRUN_ACCEL": "tcg"], size: WindowSize = WindowSize(rows: 40, columns: 132)) throws {
        self.arguments = arguments
        pty = try PseudoTerminal.open(size: size)
        // A cooked terminal, as a shell leaves it.
        var t = termios()
        tcgetattr(pty.secondary.rawValue, &t)
        t.c_lflag |= tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        t.c_iflag |= tcflag_t(ICRNL)
        t.c_oflag |= tcflag_t(OPOST | ONLCR)
        tcsetattr(pty.secondary.rawValue, TCSANOW, &t)
        tcgetattr(pty.secondary.rawValue, &t)
        settingsBefore = t
        var config = SpawnConfiguration(executable: labrunBinary, arguments: arguments)
        config.environment = environment
        config.standardInput = .path(pty.secondaryPath)
        config.standardOutput = .path(pty.secondaryPath)
        config.standardError = .path(pty.secondaryPath)
        config.newSession = true
        process = try Spawner.spawn(config)
        try pty.primary.setNonBlocking(true)
    }

    var text: String { String(decoding: transcript, as: UTF8.self) }

    /// Reads until `pattern` appears after the cursor; returns the text up to and including it.
    @discardableResult
    func expect(_ pattern: String, timeout: Double = 30, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let deadline = monotonicSeconds() + timeout
        let needle = Array(pattern.utf8)
        while true {
            if let r = find(needle, from: cursor) {
                let got = String(decoding: transcript[cursor..<r], as: UTF8.self)
                cursor = r
                return got
            }
            let left = deadline - monotonicSeconds()
            if left <= 0 { break }
            if !pump(timeout: min(left, 0.2)) && process.poll() != nil { break }
        }
        Issue.record("did not see \(pattern.debugDescription) within \(timeout) s; screen tail:\n\(String(text.suffix(1500)))\(labState)", sourceLocation: sourceLocation)
        throw ExpectationFailed()
    }

    /// The lab's status and the timestamped tail of its console log, for a failure's report
    /// (what the supervisor knew, and when each line came).
    var labState: String {
        guard let i = arguments.firstIndex(of: "--lab"), i + 1 < arguments.count else { return "" }
        let lab = arguments[i + 1]
        let status = (try? labrun(["--lab", lab, "status"]))?.stdout ?? ""
        let log = (try? labrun(["--lab", lab, "log", "--timestamps", "-n", "25"]))?.stdout ?? ""
        return "\nlab status:\n\(status)\nconsole log tail:\n\(log)"
    }

    struct ExpectationFailed: Error {}

    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard transcript.count - from >= needle.count else { return nil }
        var i = from
        while i + needle.count <= transcript.count {
            if transcript[i] == needle[0] && Array(transcript[i..<i + needle.count]) == needle { return i + needle.count }
            i += 1
        }
        return nil
    }

    /// Reads what is available within `timeout`; false when the pty is closed.
    @discardableResult
    func pump(timeout: Double) -> Bool {
        var set = PollSet()
        set.add(pty.primary)
        guard let ready = try? set.wait(timeout: Int32(timeout * 1000)), ready[pty.primary] != nil else { return true }
        switch pty.primary.read() {
        case .success(let b) where !b.isEmpty: transcript += b; return true
        case .failure(.wouldBlock): return true
        default: return false
        }
    }

    /// The terminal changes size (its program gets SIGWINCH from the kernel).
    func resize(_ size: WindowSize) { size.apply(to: pty.primary) }

    func send(_ text: String) throws { try pty.primary.writeAll(Array(text.utf8)) }
    func send(_ bytes: [UInt8]) throws { try pty.primary.writeAll(bytes) }

    /// Reads for `seconds`, then looks only at what comes after (e.g. past a replayed screen).
    func skipPast(seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline { pump(timeout: max(0.001, min(0.05, deadline - monotonicSeconds()))) }
        cursor = transcript.count
    }

    /// Types a shell command and waits for the shell's next prompt.
    @discardableResult
    func shell(_ command: String, timeout: Double = 30) throws -> String {
        try send(command + "\r")
        // A prompt on a line of its own: the one the shell prints after the command. A prompt
        // it redraws in place (the console got its size, a terminal query timed out) starts
        // with a carriage return only, and is not the next command's.
        // bash turns bracketed paste on before each prompt once TERM is a real terminal's.
        let from = cursor
        // (After an empty command it is turned off and on again with nothing between.)
        let prompts = ["\n" + Self.prompt, "\n\u{1B}[?2004h" + Self.prompt, "\n\u{1B}[?2004l\r\u{1B}[?2004h" + Self.prompt]
        try expectAny(prompts, timeout: timeout)
        return String(decoding: transcript[from..<cursor], as: UTF8.self)
    }

    static let prompt = "root@lab:"

    /// Waits for the guest's shell after boot: a cold boot's readiness line, or the line of a
    /// resumed boot checkpoint (issue 11), then the prompt.
    func waitForShell(timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try expectAny([Self.readyLine, Self.resumedLine], timeout: timeout, sourceLocation: sourceLocation)
        try expect(Self.prompt, timeout: 15, sourceLocation: sourceLocation)
        // The shell redraws its prompt when the console gets the terminal's size: wait for
        // the console to settle, so the next prompt looked for is the next command's.
        settle()
    }

    /// Reads until nothing has come for `quiet` seconds (at most `limit`); looks only past it.
    func settle(quiet: Double = 0.4, limit: Double = 3) {
        let end = monotonicSeconds() + limit
        var last = transcript.count
        var lastChange = monotonicSeconds()
        while monotonicSeconds() < end {
            pump(timeout: 0.05)
            if transcript.count != last { last = transcript.count; lastChange = monotonicSeconds() }
            if monotonicSeconds() - lastChange >= quiet { break }
        }
        if let p = find(Array(Self.prompt.utf8), from: cursor) { cursor = max(cursor, p) }
        if let lastPrompt = lastOccurrence(Array(Self.prompt.utf8)) { cursor = max(cursor, lastPrompt) }
    }

    private func lastOccurrence(_ needle: [UInt8]) -> Int? {
        var at: Int?
        var i = cursor
        while let r = find(needle, from: i) { at = r; i = r }
        return at
    }

    static let readyLine = "labrun-guest: ready"
    static let resumedLine = "resumed the boot checkpoint of"

    /// Like `expect`, for whichever of `patterns` shows first; returns its index.
    @discardableResult
    func expectAny(_ patterns: [String], timeout: Double = 30, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        let deadline = monotonicSeconds() + timeout
        let needles = patterns.map { Array($0.utf8) }
        while true {
            let hits = needles.enumerated().compactMap { i, n in find(n, from: cursor).map { (i, $0) } }
            if let first = hits.min(by: { $0.1 < $1.1 }) {
                cursor = first.1
                return first.0
            }
            let left = deadline - monotonicSeconds()
            if left <= 0 { break }
            if !pump(timeout: min(left, 0.2)) && process.poll() != nil { break }
        }
        Issue.record("did not see any of \(patterns) within \(timeout) s; screen tail:\n\(String(text.suffix(1500)))\(labState)", sourceLocation: sourceLocation)
        throw ExpectationFailed()
    }

    /// Waits for labrun to exit and returns its status.
    func waitForExit(timeout: Double = 20) -> TerminationStatus? {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if let s = process.poll() { _ = pump(timeout: 0.05); return s }
            pump(timeout: 0.05)
        }
        return nil
    }

    /// The terminal's current settings.
    var settingsNow: termios {
        var t = termios()
        tcgetattr(pty.secondary.rawValue, &t)
        return t
    }

    var terminalRestored: Bool {
        let a = settingsBefore, b = settingsNow
        return a.c_lflag == b.c_lflag && a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag
    }

    deinit {
        if process.poll() == nil {
            process.send(.kill)
            process.wait()
        }
        pty.primary.close()
        pty.secondary.close()
    }
}

/// The lines of console text, each trimmed. (Compare lines, not substrings with "\n": Swift
/// treats "\r\n" as one Character, so "\r\n1" does not contain "\n1".)
func lines(_ text: String) -> [String] {
    text.split(whereSeparator: \.isNewline).map { $0.trimmed }
}

/// True while a process with this pid exists.
func processAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

/// Waits up to `seconds` for a process to disappear.
func waitGone(_ pid: Int32, seconds: Double) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if !processAlive(pid) { return true }
        sleepSeconds(0.02)
    }
    return !processAlive(pid)
}

/// QEMU's pid for a lab, from `labrun status --json`.
func qemuPid(_ lab: TestLab) throws -> Int32 {
    let r = try lab.cli(["status", "--json"])
    struct S: Decodable { struct St: Decodable { var qemuPid: Int32 }; var status: St? }
    let s = try JSONDecoder().decode(S.self, from: Data(r.standardOutput))
    return try #require(s.status?.qemuPid)
}
