import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 11, part 2: `labrun suspend` saves the whole running VM and ends QEMU; the next boot
/// resumes exactly there.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct SuspendTests {
    /// A shell variable (RAM) and a file (disk) survive suspend → boot; the guest's clock is
    /// the host's again; the state is not a snapshot; status says suspended; the files go once
    /// resumed.
    @Test func suspendThenBootResumesWhereItWas() throws {
        let lab = try TestLab()
        var session = try lab.bootToShell()
        try session.shell("M=in-ram-42; echo on-disk > /root/marker; sync")
        let suspend = try lab.cli(["suspend"])
        #expect(suspend.status == .exited(0), "suspend: \(suspend.stderr)")
        #expect(session.waitForExit(timeout: 20) == .exited(0))
        #expect(session.terminalRestored)
        #expect(lines(session.text).contains { $0.contains("suspended") })
        let status = try lab.cli(["status"])
        #expect(status.stdout.contains("suspended since"), "status: \(status.stdout)")
        #expect(try lab.listJSON().isEmpty, "the suspended state is not a snapshot")

        sleepSeconds(3)   // the guest's clock stood still meanwhile
        let started = monotonicSeconds()
        session = try lab.boot()
        try session.expect("resumed the VM suspended at", timeout: 30)
        print("suspend: resumed after \(tenths(monotonicSeconds() - started)) s")
        try session.shell("")   // a fresh prompt: the shell was waiting at its old one
        let out = lines(try session.shell("echo M=$M; cat /root/marker"))
        #expect(out.contains("M=in-ram-42") && out.contains("on-disk"), "\(out)")
        // The clock is set through the agent right after the resume.
        let host = Int(wallClockSeconds())
        let guestDate = try lab.exec("date +%s")
        let guest = Int(guestDate.stdout.trimmed) ?? 0
        #expect(abs(guest - host) <= 1, "guest clock \(guest), host \(host)")
        #expect(!fileExists(lab.root + "/.labrun-suspended.state"), "the state file stays after the resume")
        try session.quit()
        // A suspended lab booted with --cold discards it.
        session = try lab.bootToShell()
        #expect(try lab.cli(["suspend"]).status == .exited(0))
        _ = session.waitForExit(timeout: 20)
        let cold = try lab.cli(["boot", "--cold", "--dry-run"])
        #expect(cold.status == .exited(0))
        let refused = try lab.cli(["boot", "--cold", "--detach"])
        #expect(refused.status != .exited(0) && refused.stderr.contains("--yes"), "\(refused.stderr)")
        #expect(fileExists(lab.root + "/.labrun-suspended.state"), "a refused --cold keeps the suspended VM")
        session = try lab.boot(["--cold", "--yes"])
        try session.waitForShell()
        #expect(!fileExists(lab.root + "/.labrun-suspended.state"))
        #expect(lines(try session.shell("echo M=$M")).contains("M="))
        try session.quit()
    }
}
