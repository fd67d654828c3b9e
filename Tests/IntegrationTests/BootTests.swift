import Glibc
import Testing
@testable import LabrunKit

/// Issue 2: the guest boots under labrun in a pty, answers, and labrun leaves nothing behind.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct BootTests {
    @Test func bootRunCommandQuitWithCtrlAX() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        let out = try session.shell("uname -r; echo $((6*7))")
        #expect(out.contains("-amd64"))
        #expect(out.contains("42"))
        let qemu = try qemuPid(lab)
        try session.send([0x01, UInt8(ascii: "x")])
        #expect(session.waitForExit() == .exited(0))
        #expect(waitGone(qemu, seconds: 2), "QEMU \(qemu) outlived labrun")
        #expect(session.terminalRestored)
        #expect(!fileExists(lab.root + "/.labrun/control.sock"))
    }

    @Test func ctrlCReachesTheGuestNotLabrun() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        try session.send("sleep 100\r")
        sleepSeconds(0.5)
        try session.send([0x03])
        try session.expect(ConsoleSession.prompt, timeout: 10)
        try session.shell("echo still-here")
        #expect(session.process.poll() == nil)
        try session.send([0x01, UInt8(ascii: "x")])
        #expect(session.waitForExit() == .exited(0))
    }

    @Test func ctrlABSendsSysRqAndUnknownKeysAreSwallowed() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        try session.send([0x01, UInt8(ascii: "b")])
        try session.expect("SysRq: press the command key")
        try session.send("h")
        try session.expect("sysrq: HELP", timeout: 10)
        // (Ctrl-a z was the unused key here until issue 11 made it suspend.)
        try session.send([0x01, UInt8(ascii: "q")])
        try session.expect("Ctrl-a q does nothing")
        try session.send([0x01, UInt8(ascii: "h")])
        try session.expect("Ctrl-a c again returns")
        // A literal Ctrl-a reaches the guest: ash shows it as ^A in `cat -v`.
        try session.send("cat -v\r")
        try session.expect("cat -v")
        sleepSeconds(0.5)
        try session.send([0x01, UInt8(ascii: "a"), 0x0D])
        try session.expect("^A")
        try session.send([0x04])
        try session.expect(ConsoleSession.prompt)
        try session.send([0x01, UInt8(ascii: "x")])
        #expect(session.waitForExit() == .exited(0))
    }

    @Test func guestPoweroffEndsLabrunWithZero() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        try session.send("poweroff\r")
        #expect(session.waitForExit(timeout: 30) == .exited(0))
        #expect(session.text.contains("the guest powered off"))
        #expect(session.terminalRestored)
    }

    @Test(arguments: [Signal.terminate, .interrupt])
    func terminatingSignalShutsTheVMDownAndRestoresTheTerminal(_ signal: Signal) throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        let qemu = try qemuPid(lab)
        session.process.send(signal)
        #expect(session.waitForExit() != nil)
        #expect(waitGone(qemu, seconds: 2), "QEMU \(qemu) outlived labrun after \(signal)")
        #expect(session.terminalRestored)
    }

    /// Issue 12: a hang-up (a closed window, a dropped ssh link) detaches; the VM runs on.
    @Test func hangupDetachesAndTheVMRunsOn() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        try session.shell("HUPMARK=still-here")
        let qemu = try qemuPid(lab)
        session.process.send(.hangup)
        #expect(session.waitForExit() != nil)
        #expect(session.terminalRestored)
        sleepSeconds(1)
        #expect(processAlive(qemu), "QEMU \(qemu) ended after a hang-up")
        #expect(try lab.cli(["status"]).stdout.hasPrefix("running"))
        let back = try ConsoleSession(arguments: ["--lab", lab.root, "attach"])
        try back.expect(ConsoleSession.prompt, timeout: 10)
        back.skipPast(seconds: 0.5)
        #expect(lines(try back.shell("echo $HUPMARK")).contains("still-here"))
        try back.send([0x01, UInt8(ascii: "x")])
        #expect(back.waitForExit() == .exited(0))
        #expect(waitGone(qemu, seconds: 5))
    }

    @Test func sigkillLeavesNoQemuAndTheNextCommandCleansUp() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        let qemu = try qemuPid(lab)
        session.process.send(.kill)
        #expect(session.waitForExit() == .signaled(SIGKILL))
        #expect(waitGone(qemu, seconds: 2), "QEMU \(qemu) outlived a SIGKILLed labrun")
        // The guard process restores the terminal even after SIGKILL.
        let deadline = monotonicSeconds() + 2
        while !session.terminalRestored && monotonicSeconds() < deadline { sleepSeconds(0.02) }
        #expect(session.terminalRestored)
        // The stale run directory is noticed and cleaned; the lab boots again.
        let st = try lab.cli(["status"])
        #expect(st.stdout.hasPrefix("stopped"))
        #expect(!fileExists(lab.root + "/.labrun/control.sock"))
        let again = try lab.boot()
        try again.waitForShell()
        try again.send([0x01, UInt8(ascii: "x")])
        #expect(again.waitForExit() == .exited(0))
    }

    @Test func secondBootOnARunningLabIsRefused() throws {
        let lab = try TestLab()
        let session = try lab.boot()
        try session.waitForShell()
        let r = try lab.cli(["boot"])
        #expect(r.status == .exited(1))
        #expect(r.stderr.contains("already running"))
        try session.send([0x01, UInt8(ascii: "x")])
        #expect(session.waitForExit() == .exited(0))
    }

    @Test func missingPiecesAreOneLineErrorsAndNothingStarts() throws {
        let lab = try TestLab()
        try "kernel = /nonexistent/vmlinux\n".write(toFile: lab.root + "/lab.conf")
        let r = try lab.cli(["boot"])
        #expect(r.status == .exited(1))
        #expect(r.stderr.contains("no kernel at /nonexistent/vmlinux") && r.stderr.contains("make guest"))
        try "mem = lots\n".write(toFile: lab.root + "/lab.conf")
        let bad = try lab.cli(["boot"])
        #expect(bad.status == .exited(1) && bad.stderr.contains("lab.conf:1"))
        removeFile(lab.root + "/lab.conf")
        let q = try lab.cli(["boot", "--qemu", "/no/qemu"])
        #expect(q.status == .exited(1) && q.stderr.contains("/no/qemu not found"))
    }
}
