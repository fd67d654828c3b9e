import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

extension TestLab {
    /// `labrun attach` in a pty of its own, past the replayed screen.
    func attach(_ extra: [String] = [], rows: UInt16 = 40, columns: UInt16 = 132) throws -> ConsoleSession {
        let s = try ConsoleSession(arguments: ["--lab", root, "attach"] + extra, size: WindowSize(rows: rows, columns: columns))
        try s.expect(ConsoleSession.prompt, timeout: 15)
        s.skipPast(seconds: 0.5)
        return s
    }

    /// `labrun log ARGS`, its stdout.
    func logText(_ args: [String] = []) throws -> String {
        let r = try cli(["log"] + args)
        #expect(r.status == .exited(0), "labrun log \(args): \(r.stderr)")
        return r.stdout
    }
}

/// Issue 12: a console you can leave, come back to, read back and share. Real QEMU, tiny guest.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct ConsoleTests {
    /// Ctrl-a d detaches (the terminal is restored, the VM runs on); `labrun attach` replays
    /// the recent screen and the session goes on where it was.
    @Test func detachAndAttachAgain() throws {
        let lab = try TestLab()
        let session = try lab.bootToShell()
        try session.shell("KEEP=detach-survivor; echo before-detach")
        try session.ctrlA("d")
        #expect(session.waitForExit() == .exited(0))
        #expect(session.terminalRestored)
        #expect(session.text.contains("detached"), "\(session.text.suffix(300))")
        #expect(try lab.cli(["status"]).stdout.hasPrefix("running"))

        let again = try ConsoleSession(arguments: ["--lab", lab.root, "attach"])
        try again.expect("before-detach", timeout: 15)   // the replayed screen
        try again.expect(ConsoleSession.prompt, timeout: 5)
        again.skipPast(seconds: 0.5)
        #expect(lines(try again.shell("echo $KEEP")).contains("detach-survivor"))
        try again.ctrlA("x")
        #expect(again.waitForExit() == .exited(0))
        #expect(again.terminalRestored)
    }

    /// `labrun boot` on a running lab offers to attach (on a terminal) instead of refusing.
    @Test func bootOnARunningLabOffersToAttach() throws {
        let lab = try TestLab()
        #expect(try lab.cli(["boot", "--detach"]).status == .exited(0))
        let s = try lab.boot()
        try s.expect("already running", timeout: 10)
        try s.expect("[y/N]", timeout: 5)
        try s.send("y\r")
        try s.expect(ConsoleSession.prompt, timeout: 15)
        s.skipPast(seconds: 0.5)
        #expect(lines(try s.shell("echo joined-$((3+4))")).contains("joined-7"))
        try s.ctrlA("d")
        #expect(s.waitForExit() == .exited(0))
        #expect(try lab.cli(["status"]).stdout.hasPrefix("running"))
        _ = try lab.cli(["stop"])
    }

    /// `boot --detach` then `attach`; two terminals see the same output and both can type;
    /// a read-only one only watches; Ctrl-a d leaves only the terminal that pressed it.
    @Test func severalViewersShareTheConsole() throws {
        let lab = try TestLab()
        let detached = try lab.cli(["boot", "--detach"])
        #expect(detached.status == .exited(0), "\(detached.stderr)")
        let a = try lab.attach()
        let b = try lab.attach()
        try a.send("echo from-a-$((1+1))\r")
        try a.expect("from-a-2", timeout: 10)
        try b.expect("from-a-2", timeout: 10)
        try b.send("echo from-b-$((2+2))\r")
        try a.expect("from-b-4", timeout: 10)
        try b.expect("from-b-4", timeout: 10)

        let watcher = try lab.attach(["--read-only"])
        try watcher.send("echo typed-by-watcher\r")
        try watcher.expect("read-only", timeout: 5)
        try a.shell("echo seen-by-all")
        try watcher.expect("seen-by-all", timeout: 10)
        #expect(!a.text.contains("typed-by-watcher"), "a read-only terminal's keys reached the guest")

        // The snapshot prompt is shown only to the terminal that asked.
        try b.ctrlA("s")
        try b.expect("snapshot name", timeout: 5)
        a.drain(for: 0.5)
        #expect(!a.text.contains("snapshot name"))
        try b.send([0x1B])
        try b.expect("snapshot cancelled", timeout: 5)

        try b.ctrlA("d")
        #expect(b.waitForExit() == .exited(0))
        #expect(b.terminalRestored)
        #expect(a.process.poll() == nil && watcher.process.poll() == nil)
        try a.shell("echo after-b-left")
        try watcher.expect("after-b-left", timeout: 10)

        try a.ctrlA("x")
        #expect(a.waitForExit() == .exited(0))
        #expect(watcher.waitForExit() == .exited(0), "every terminal leaves when the VM is shut down")
        #expect(watcher.text.contains("the VM was shut down"))
    }

    /// A `labrun attach` killed with SIGKILL leaves the VM running (its terminal restored by
    /// the guard); the supervisor killed with SIGKILL takes QEMU with it and every terminal
    /// is restored with a line saying what happened.
    @Test func killedViewersAndAKilledSupervisor() throws {
        let lab = try TestLab()
        #expect(try lab.cli(["boot", "--detach"]).status == .exited(0))
        let qemu = try qemuPid(lab)
        let v = try lab.attach()
        v.process.send(.kill)
        _ = v.waitForExit()
        let deadline = monotonicSeconds() + 2
        while !v.terminalRestored && monotonicSeconds() < deadline { sleepSeconds(0.02) }
        #expect(v.terminalRestored)
        sleepSeconds(0.5)
        #expect(processAlive(qemu), "a killed viewer took the VM with it")

        let w1 = try lab.attach(), w2 = try lab.attach()
        let supervisor = try #require(lab.runningStatus().status?.supervisorPid)
        kill(supervisor, SIGKILL)
        #expect(waitGone(qemu, seconds: 2), "QEMU outlived a SIGKILLed supervisor")
        for w in [w1, w2] {
            #expect(w.waitForExit(timeout: 5) == .exited(1))
            #expect(w.terminalRestored)
            #expect(w.text.contains("ended without a word"), "\(w.text.suffix(300))")
        }
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"))
    }

    /// SIGTERM to the supervisor shuts the VM down gracefully; the terminals are told.
    @Test func sigtermToTheSupervisorShutsDownGracefully() throws {
        let lab = try TestLab()
        let s = try lab.bootToShell()
        let qemu = try qemuPid(lab)
        let supervisor = try #require(lab.runningStatus().status?.supervisorPid)
        kill(supervisor, SIGTERM)
        #expect(s.waitForExit(timeout: 20) != nil)
        #expect(waitGone(qemu, seconds: 5))
        #expect(s.terminalRestored)
        #expect(s.text.contains("SIGTERM") || s.text.contains("stopped by"), "\(s.text.suffix(300))")
    }

    /// The log holds every guest line with its time, labrun's notices marked, across boots;
    /// -n, --boot, --since, --timestamps and -f select and show it.
    @Test func consoleLogAcrossBoots() throws {
        let lab = try TestLab()
        var s = try lab.bootToShell()
        try s.shell("echo first-boot-line")
        try s.quit()
        s = try lab.bootToShell()
        try s.shell("echo second-boot-line")
        sleepSeconds(0.3)   // the log is written every 50 ms

        let all = try lab.logText()
        #expect(all.contains("first-boot-line") && all.contains("second-boot-line"))
        #expect(all.contains("[labrun] -- boot"), "boots are marked")
        #expect(all.contains("[labrun] booting"), "labrun's notices are marked as its own")
        let latest = try lab.logText(["--boot", "0"])
        #expect(latest.contains("second-boot-line") && !latest.contains("first-boot-line"))
        let previous = try lab.logText(["--boot", "-1"])
        #expect(previous.contains("first-boot-line") && !previous.contains("second-boot-line"))
        #expect(Array(try lab.logText(["-n", "3"]).utf8).filter { $0 == 0x0A }.count == 3)
        let stamped = try lab.logText(["--timestamps", "-n", "5"])
        #expect(stamped.split(separator: "\n").allSatisfy { $0.hasPrefix("[20") && $0.contains(" +") }, "\(stamped)")
        #expect(try lab.logText(["--since", "-1h"]).contains("first-boot-line"))
        #expect(!(try lab.logText(["--since", "-0s"])).contains("first-boot-line"))
        let bad = try lab.cli(["log", "--since", "yesterday-ish"])
        #expect(bad.status == .exited(64))

        // -f follows what comes.
        let follow = try ConsoleSession(arguments: ["--lab", lab.root, "log", "-f"])
        follow.drain(for: 0.5)
        try s.shell("echo followed-line")
        sleepSeconds(0.2)
        try follow.expect("followed-line", timeout: 10)
        follow.process.send(.interrupt)
        _ = follow.waitForExit()
        try s.quit()
    }

    /// The guest's console has the attaching terminal's size, and follows a resize.
    @Test func guestConsoleFollowsTheTerminalSize() throws {
        let lab = try TestLab()
        let s = try ConsoleSession(arguments: ["--lab", lab.root, "boot"], size: WindowSize(rows: 45, columns: 150))
        try s.waitForShell()
        #expect(lines(try s.shell("stty size")).contains("45 150"))
        s.resize(WindowSize(rows: 30, columns: 100))
        sleepSeconds(1)
        #expect(lines(try s.shell("stty size")).contains("30 100"))
        try s.quit()
    }

    /// A terminal that stops reading (Ctrl-Z, a stalled link) never stalls the VM or the
    /// other terminals; when it reads again it skips ahead and is told so.
    @Test func aStoppedViewerNeverStallsTheOthers() throws {
        let lab = try TestLab()
        let a = try lab.bootToShell()
        let stopped = try lab.attach()
        kill(stopped.process.pid, SIGSTOP)
        let started = monotonicSeconds()
        // More than a viewer's backlog limit (1 MiB) and its socket's buffers.
        try a.send("yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c 1400000; echo END$((40+2))\r")
        try a.expect("END42", timeout: 60)
        try a.expect("\n" + ConsoleSession.prompt, timeout: 20)
        print("console: 1.4 MB of output with a stopped viewer took \(tenths(monotonicSeconds() - started)) s")
        #expect(lines(try a.shell("echo still-$((1+2))")).contains("still-3"))
        kill(stopped.process.pid, SIGCONT)
        try stopped.expect("fell behind", timeout: 30)
        try stopped.expect("still-3", timeout: 30)
        try stopped.ctrlA("d")
        #expect(stopped.waitForExit() == .exited(0))
        try a.quit()
    }

    /// On a full disk the log pauses with one notice; the console goes on.
    @Test(.enabled(if: runningAsRoot, "mounts a small tmpfs"))
    func aFullDiskPausesTheLogNotTheConsole() throws {
        let lab = try TestLab()
        let mount = try TmpfsMount(at: lab.root, sizeMiB: 8)
        defer {
            _ = try? lab.cli(["stop"])
            mount.unmount()
        }
        try #require(try labrun(["--lab", repositoryRoot, "init", lab.root]).status == .exited(0))
        let s = try lab.bootToShell()
        try mount.fill(leaving: 0)
        try s.send("i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done; echo DONE$((6*7))\r")
        try s.expect("console log paused", timeout: 60)
        try s.expect("DONE42", timeout: 60)
        try s.expect("\n" + ConsoleSession.prompt, timeout: 20)
        #expect(lines(try s.shell("echo after-$((2+2))")).contains("after-4"))
        try s.quit()
    }
}
