import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 4: the shared folder, the guest agent (exec), snapshots with the share mounted, gdb.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct SharedFolderTests {
    func bootShared(_ lab: TestLab, _ extra: [String] = []) throws -> ConsoleSession {
        let s = try lab.boot(["--shared"] + extra)
        try s.waitForShell()
        try s.expect("is mounted at /mnt in the guest", timeout: 30)
        return s
    }

    func quit(_ s: ConsoleSession) throws {
        try s.send([0x01, UInt8(ascii: "x")])
        #expect(s.waitForExit() == .exited(0))
    }

    @Test func filesCrossBothWays() throws {
        let lab = try TestLab()
        try "from-host\n".write(toFile: lab.root + "/shared/host.txt")
        let s = try bootShared(lab)
        let out = try s.shell("cat /mnt/host.txt; echo from-guest > /mnt/guest.txt; sync")
        #expect(out.contains("from-host"))
        #expect(readSmallFile(lab.root + "/shared/guest.txt").map { String(decoding: $0, as: UTF8.self) } == "from-guest\n")
        try quit(s)
    }

    @Test func snapshotsWithTheShareMounted() throws {
        let lab = try TestLab()
        let s = try bootShared(lab)
        // A shell sitting in /mnt: both paths refuse and name it.
        try s.shell("cd /mnt")
        let refused = try lab.cli(["snapshot", "create", "x"])
        #expect(refused.status == .exited(1))
        #expect(refused.stderr.contains("in use by sh (pid"))
        try s.send([0x01, UInt8(ascii: "s")])
        try s.expect("Enter accepts")
        try s.send("inmnt\r\r")
        try s.expect("snapshot 'inmnt' not created")
        #expect(try lab.cli(["snapshot", "list", "--json"]).stdout.trimmed == "[]")
        // Out of /mnt: both succeed, and the share is mounted before and after.
        try s.shell("cd /; echo one > /root/marker")
        let made = try lab.cli(["snapshot", "create", "x"])
        #expect(made.status == .exited(0), "\(made.stderr)")
        #expect(made.stdout.contains("/mnt was unmounted in the guest around it"))
        try s.send([0x01, UInt8(ascii: "s")])
        try s.expect("Enter accepts")
        try s.send("y\r\r")
        try s.expect("snapshot 'y' created")
        let mounted = try s.shell("grep -c ' /mnt 9p ' /proc/mounts")
        #expect(lines(mounted).contains("1"), "\(mounted.debugDescription)")
        // Restore of a snapshot taken with the share mounted leaves /mnt mounted.
        try s.shell("echo two > /root/marker; cd /")
        let restored = try lab.cli(["snapshot", "restore", "x"])
        #expect(restored.status == .exited(0), "\(restored.stderr)")
        let after = try lab.cli(["exec", "--", "sh", "-c", "cat /root/marker; grep -c ' /mnt 9p ' /proc/mounts"])
        #expect(after.stdout == "one\n1\n")
        // --disk-only works with the share mounted, and says RAM is not saved.
        let disk = try lab.cli(["snapshot", "create", "--disk-only", "d"])
        #expect(disk.status == .exited(0) && disk.stdout.contains("RAM was not saved"))
        try quit(s)
    }

    @Test func execStreamsAndReturnsTheExitStatus() throws {
        let lab = try TestLab()
        let stopped = try lab.cli(["exec", "--", "true"])
        #expect(stopped.status == .exited(1))
        #expect(stopped.stderr.contains("not running") && lines(stopped.stderr).count == 1)
        let s = try lab.boot()
        // As soon as the supervisor answers, exec waits for the guest instead of failing.
        let deadline = monotonicSeconds() + 10
        while try !lab.cli(["status"]).stdout.hasPrefix("running") && monotonicSeconds() < deadline { sleepSeconds(0.02) }
        let r = try lab.cli(["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7"])
        #expect(r.status == .exited(7))
        #expect(r.stdout == "out\n")
        #expect(r.stderr == "err\n")
        // Arguments arrive as words, not re-split by a shell.
        let words = try lab.cli(["exec", "--", "printf", "[%s]", "a b", "$(echo no)", "c;d"])
        #expect(words.stdout == "[a b][$(echo no)][c;d]")
        let slow = try lab.cli(["exec", "--timeout", "1", "--", "sleep", "30"])
        #expect(slow.status == .exited(137))
        try s.waitForShell(timeout: 5)
        try quit(s)
    }

    @Test func gdbStubOnLoopbackOnlyAndGdbReadsRegisters() throws {
        guard findExecutable("gdb") != nil else { Issue.record("gdb is not installed (make deps installs it)"); return }
        let lab = try TestLab()
        let port = 20000 + Int(getpid() % 20000)
        let s = try lab.boot(["--gdb-port", String(port)])
        try s.waitForShell()
        let gdb = try Spawner.run("gdb", ["-q", "-batch", "-ex", "target remote 127.0.0.1:\(port)", "-ex", "info registers rip", "-ex", "detach"])
        #expect(gdb.stdout.contains("rip"), "\(gdb.stdout)\(gdb.stderr)")
        #expect(gdb.stdout.contains("Detached") || gdb.stdout.contains("detached"))
        // Every TCP listener QEMU or labrun holds is on 127.0.0.1.
        let qemu = try qemuPid(lab)
        let ss = try Spawner.run("ss", ["-ltnpH"])
        let mine = ss.stdout.split(separator: "\n").filter { $0.contains("pid=\(qemu),") || $0.contains("pid=\(s.process.pid),") }
        #expect(!mine.isEmpty)
        for line in mine { #expect(line.contains("127.0.0.1:"), "listener beyond loopback: \(line)") }
        // The guest still runs after gdb detached.
        try s.shell("echo alive")
        // A second VM on the same port is refused before it starts.
        let other = try TestLab(name: "other")
        let busy = try other.cli(["boot", "--gdb-port", String(port)])
        #expect(busy.status == .exited(1) && busy.stderr.contains("in use"))
        try quit(s)
    }
}
