import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// Helpers for the snapshot, image and console suites (issue 3).

/// One row of `labrun snapshot list --json`.
struct ListedSnapshot: Decodable, Equatable {
    var name: String
    var id: String
    var vm_state_size: UInt64
    var date: String
}

/// What `qemu-img info --output=json -U` says about an image's snapshots: (name, id) pairs.
struct QemuImgSnapshot: Decodable, Equatable {
    var name: String
    var id: String
    var vmStateSize: UInt64
    enum CodingKeys: String, CodingKey { case name, id, vmStateSize = "vm-state-size" }
}

extension TestLab {
    /// `qemu-img info --output=json -U` of the runtime image: its snapshots, read without
    /// taking a lock (works whether the VM runs or not).
    func qemuImgSnapshots(sourceLocation: SourceLocation = #_sourceLocation) throws -> [QemuImgSnapshot] {
        let r = try Spawner.run("qemu-img", ["info", "--output=json", "-U", runtime])
        try #require(r.status == .exited(0), "qemu-img info failed: \(r.stderr)", sourceLocation: sourceLocation)
        struct Info: Decodable { var snapshots: [QemuImgSnapshot]? }
        return try JSONDecoder().decode(Info.self, from: Data(r.standardOutput)).snapshots ?? []
    }

    /// `qemu-img snapshot -l -U` of the runtime image, verbatim: the "image unchanged" witness.
    func qemuImgListing() throws -> String {
        let r = try Spawner.run("qemu-img", ["snapshot", "-l", "-U", runtime])
        return r.stdout + r.stderr
    }

    /// `labrun snapshot list --json`, decoded; records an issue when it fails.
    func listJSON(sourceLocation: SourceLocation = #_sourceLocation) throws -> [ListedSnapshot] {
        let r = try cli(["snapshot", "list", "--json"])
        try #require(r.status == .exited(0), "list --json failed: \(r.stderr)", sourceLocation: sourceLocation)
        return try JSONDecoder().decode([ListedSnapshot].self, from: Data(r.standardOutput))
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    @discardableResult
    func ok(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try cli(args)
        #expect(r.status == .exited(0), "labrun \(args.joined(separator: " ")) → \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// Runs a CLI command that must be refused with `status`; returns its stderr.
    @discardableResult
    func refused(_ args: [String], status: Int32 = 1, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try cli(args)
        #expect(r.status == .exited(status), "labrun \(args.joined(separator: " ")) should be refused with \(status), got \(r.status): \(r.stdout)\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, "a refusal prints nothing on stdout: \(r.stdout)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "a refusal is one line: \(r.stderr)", sourceLocation: sourceLocation)
        return r.stderr
    }

    /// A session that has reached the guest's shell.
    func bootToShell(_ extra: [String] = []) throws -> ConsoleSession {
        let s = try boot(extra)
        try s.waitForShell()
        return s
    }

    /// Byte identity of a file (size, mtime in ns, inode): unchanged means nothing wrote it.
    func fileStamp(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { return "missing" }
        return "\(st.st_size)/\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)/\(st.st_ino)"
    }
}

extension ConsoleSession {
    /// Ctrl-a followed by `key`.
    func ctrlA(_ key: Character) throws { try send([0x01] + Array(String(key).utf8)) }

    /// Writes to the guest's disk reach the image (for offline snapshots, which see only the disk).
    func syncDisk() throws { try shell("sync") }

    /// Ctrl-a x and the exit status.
    @discardableResult
    func quit(sourceLocation: SourceLocation = #_sourceLocation) throws -> TerminationStatus? {
        try ctrlA("x")
        let s = waitForExit(timeout: 30)
        #expect(s == .exited(0), "labrun did not quit cleanly: \(String(describing: s))", sourceLocation: sourceLocation)
        return s
    }

    /// Waits for labrun to end after `labrun stop` from another process.
    func waitStopped(sourceLocation: SourceLocation = #_sourceLocation) {
        let s = waitForExit(timeout: 30)
        #expect(s == .exited(0), "labrun did not end after stop: \(String(describing: s))", sourceLocation: sourceLocation)
    }

    /// The screen text after `mark` (a prefix of the transcript's length).
    func text(since mark: Int) -> String {
        let t = Array(text.utf8)
        return String(decoding: t[min(mark, t.count)...], as: UTF8.self)
    }

    var length: Int { text.utf8.count }
}

/// Runs a program with extra environment variables (through env(1), so the test process's
/// own environment is untouched) and without make's variables from an enclosing `make test`.
func runWithEnvironment(_ environment: [String: String], _ executable: String, _ arguments: [String]) throws -> Spawner.Output {
    let unset = ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"].flatMap { ["-u", $0] }
    let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    return try Spawner.run("env", unset + assignments + [executable] + arguments)
}

/// `make -C REPO TARGET…` on `lab` (LABRUN_LAB), with the labrun under test.
func make(_ lab: TestLab, _ arguments: [String]) throws -> Spawner.Output {
    let binary = labrunBinary == repositoryRoot + "/.build/debug/labrun" ? ["CONFIG=debug"] : ["LABRUN=" + labrunBinary]
    return try runWithEnvironment(["LABRUN_LAB": lab.root, "LABRUN_ACCEL": "tcg"], "make",
                                  ["-C", repositoryRoot, "--no-print-directory"] + binary + arguments)
}

/// `scripts/snapshot.sh ARGS…` on `lab`, with the labrun under test.
func snapshotScript(_ lab: TestLab, _ arguments: [String], binary: String? = labrunBinary) throws -> Spawner.Output {
    var env = ["LABRUN_LAB": lab.root]
    if let binary { env["LABRUN_BIN"] = binary }
    return try runWithEnvironment(env, repositoryRoot + "/scripts/snapshot.sh", arguments)
}

/// A QEMU started by hand on `image` (not under labrun), paused, holding the image's locks.
final class ForeignQemu {
    let process: ChildProcess

    init(image: String) throws {
        var config = SpawnConfiguration(executable: "qemu-system-x86_64", arguments: [
            "-nodefaults", "-display", "none", "-S",
            "-blockdev", "driver=file,filename=\(image),node-name=f",
            "-blockdev", "driver=qcow2,file=f,node-name=q",
            "-device", "virtio-blk-pci,drive=q", "-monitor", "none"])
        config.standardInput = .devNull
        config.standardOutput = .devNull
        config.standardError = .devNull
        process = try Spawner.spawn(config)
        // QEMU holds the image once it has opened it: wait for its lock.
        let deadline = monotonicSeconds() + 10
        while !ImageLock.isLocked(image) && monotonicSeconds() < deadline && process.poll() == nil { sleepSeconds(0.02) }
    }

    var pid: Int32 { process.pid }

    func kill() {
        process.send(.kill)
        process.wait()
    }

    deinit { kill() }
}

/// Sets the 16-bit refcount of host cluster `cluster` in the first refcount block of a qcow2
/// image (as ImagesCheckTests does): cluster 0, the header, has refcount 1; 2 makes exactly
/// one leaked cluster.
func setRefcount(_ image: String, cluster: Int, to value: UInt16) throws {
    let fd = try FileDescriptor.open(image, O_RDWR)
    defer { fd.close() }
    func u64(_ at: Int) throws -> Int {
        var b = [UInt8](repeating: 0, count: 8)
        let n = b.withUnsafeMutableBytes { pread(fd.rawValue, $0.baseAddress, 8, off_t(at)) }
        try #require(n == 8)
        return b.reduce(0) { $0 << 8 | Int($1) }
    }
    let block = try u64(try u64(48))
    var bytes: [UInt8] = [UInt8(value >> 8), UInt8(value & 0xff)]
    let n = bytes.withUnsafeMutableBytes { pwrite(fd.rawValue, $0.baseAddress, 2, off_t(block + 2 * cluster)) }
    try #require(n == 2)
}

/// The table rendering's column layout: the header line and where each column starts.
func tableShape(_ table: String) -> (header: String, columnStarts: [Int]) {
    let header = String(table.split(separator: "\n").first ?? "")
    var starts: [Int] = []
    for title in ["NAME", "ID", "VM STATE", "DATE", "VM CLOCK"] {
        if let r = header.firstRange(of: title) { starts.append(header.distance(from: header.startIndex, to: r.lowerBound)) }
    }
    return (header, starts)
}

/// Issue 3's integration suites, nested here so that they run one test at a time: each boots a
/// VM, and several TCG guests at once on a small machine make timeouts flaky.
/// `swift test --filter SnapshotSuites` runs them all; `--filter SnapshotTests` one of them.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct SnapshotSuites {}
