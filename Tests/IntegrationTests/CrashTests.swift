import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 13: when the guest kernel crashes, labrun notices, keeps the evidence and says so.
/// Real QEMU, the tiny guest (Debian's 6.1 kernel), TCG.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct CrashTests {
    struct Status: Decodable {
        struct St: Decodable { var runState: String; var guest: String?; var lastReport: String? }
        var status: St?
    }

    func guestStatus(_ lab: TestLab) throws -> Status.St {
        let r = try lab.cli(["status", "--json"])
        return try #require(try JSONDecoder().decode(Status.self, from: Data(r.standardOutput)).status)
    }

    /// A panic while `labrun exec` runs: exec returns at once with 125 and the title; the
    /// console says so within a second; the VM is paused, not rebooted; status, the log's
    /// reports and later execs say so; a reset brings the guest back.
    @Test func panicDuringExecIsReportedEverywhere() throws {
        let lab = try TestLab()
        let session = try lab.bootToShell()
        var config = SpawnConfiguration(executable: labrunBinary, arguments: ["--lab", lab.root, "exec", "--", "sleep", "120"])
        config.standardInput = .devNull
        let pipe = try FileDescriptor.pipe()
        config.standardError = .descriptor(pipe.writeEnd)
        config.standardOutput = .devNull
        let exec = try Spawner.spawn(config)
        pipe.writeEnd.close()
        defer { pipe.readEnd.close() }
        sleepSeconds(1)

        try session.send("echo c > /proc/sysrq-trigger\r")
        try session.expect("Kernel panic - not syncing", timeout: 20)
        let printed = monotonicSeconds()
        // ("panicked during boot" when the agent had not answered yet: a busy machine)
        let said = try session.expect("sysrq triggered crash. The VM is paused", timeout: 5)
        #expect(said.contains("[labrun] the guest kernel panicked"), "\(said.suffix(300))")
        #expect(monotonicSeconds() - printed < 1.5, "the notice came more than a second after the report")

        let ended = exec.wait(upTo: 10)
        #expect(ended == .exited(ExitReason.panicExitCode), "exec ended with \(String(describing: ended))")
        var err: [UInt8] = []
        while case .success(let b) = pipe.readEnd.read(), !b.isEmpty { err += b }
        let text = String(decoding: err, as: UTF8.self)
        #expect(text.split(separator: "\n").count == 1 && text.contains("sysrq triggered crash"), "\(text)")

        let st = try guestStatus(lab)
        #expect(st.guest == "panicked" && st.lastReport == "kernel panic: sysrq triggered crash", "\(st)")
        #expect(st.runState == "paused", "the panicked VM is not paused: \(st.runState)")
        let again = try lab.cli(["exec", "--", "true"])
        #expect(again.status == .exited(ExitReason.panicExitCode))
        let reports = try lab.logText(["--reports"])
        #expect(reports.contains("kernel panic: sysrq triggered crash"), "\(reports)")
        let full = try lab.logText(["--report", "1"])
        #expect(full.contains("Kernel panic - not syncing: sysrq triggered crash") && full.contains("Call Trace"), "\(full)")

        // A reset brings a running guest back; its kernel is clean again.
        #expect(try lab.cli(["reset", "--yes"]).status == .exited(0))
        try session.waitForShell()
        #expect(try lab.exec("echo back").stdout == "back\n")
        #expect(try guestStatus(lab).guest == "running")
        try session.quit()
    }

    /// A hung task (a writer blocked on a frozen file system) gives a report and the guest
    /// runs on: status counts it.
    @Test func hungTaskIsReportedAndTheGuestRunsOn() throws {
        let lab = try TestLab()
        let session = try lab.bootToShell()
        try session.shell("echo 2 > /proc/sys/kernel/hung_task_timeout_secs; fsfreeze --freeze /")
        try session.send("echo blocked > /root/hung &\r")
        try session.expect("blocked for more than", timeout: 30)
        try session.expect("[labrun] the guest kernel reported: INFO: task hung in", timeout: 10)
        try session.shell("")
        try session.shell("fsfreeze --unfreeze /; wait")
        let st = try guestStatus(lab)
        #expect(st.guest?.hasPrefix("oopsed") == true && st.lastReport?.hasPrefix("INFO: task hung in") == true, "\(st)")
        #expect(lines(try session.shell("cat /root/hung")).contains("blocked"))
        try session.quit()
    }

    /// A WARN from a module (examples/warn): a report titled as syzkaller would, the guest
    /// runs on, and status counts it.
    @Test(.enabled(if: findExecutable("make") != nil && findExecutable("gcc") != nil, "builds a module"))
    func aWarningFromAModuleIsReported() throws {
        let lab = try TestLab()
        let dir = parentDirectory(lab.root) + "/warn"
        try #require(try Spawner.run("cp", ["-a", repositoryRoot + "/examples/warn", dir]).status == .exited(0))
        try #require(try lab.cli(["module", "build", dir]).status == .exited(0))
        let session = try lab.bootToShell()
        #expect(try lab.cli(["module", "load", dir]).status == .exited(0))
        try session.expect("[labrun] the guest kernel reported: WARNING in warn_init", timeout: 15)
        let st = try guestStatus(lab)
        #expect(st.guest == "oopsed 1 time" && st.lastReport == "WARNING in warn_init", "\(st)")
        #expect(st.runState == "running")
        #expect(lines(try session.shell("echo alive-$((1+1))")).contains("alive-2"))
        #expect(try lab.logText(["--reports"]).contains("WARNING in warn_init"))
        try session.quit()
    }

    /// QEMU's GUEST_PANICKED (the pvpanic device, written here from the guest by hand) with no
    /// report on the console: a report all the same, and the VM is paused.
    @Test func pvpanicAloneIsAPanic() throws {
        let lab = try TestLab()
        #expect(try lab.cli(["boot", "--detach"]).status == .exited(0))
        _ = try lab.exec("printf '\\001' | dd of=/dev/port bs=1 seek=1285 count=1 2>/dev/null")
        let deadline = monotonicSeconds() + 10
        var st = try guestStatus(lab)
        while st.guest != "panicked" && monotonicSeconds() < deadline { sleepSeconds(0.2); st = try guestStatus(lab) }
        #expect(st.guest == "panicked" && st.lastReport?.contains("pvpanic") == true, "\(st)")
        #expect(st.runState == "paused")
        #expect(try lab.cli(["exec", "--", "true"]).status == .exited(ExitReason.panicExitCode))
        _ = try lab.cli(["stop"])
    }

    /// A kernel that panics during boot: `boot --detach` fails in one line with the panic's
    /// status, naming the title and the last console line; it never hangs.
    @Test func panicDuringBootFailsADetachedBoot() throws {
        let lab = try TestLab()
        try lab.setConf("append", "console=ttyS0 quiet rdinit=/no/such/init init=/no/such/init")
        let started = monotonicSeconds()
        let r = try lab.cli(["boot", "--detach"])
        #expect(r.status == .exited(ExitReason.panicExitCode), "\(r.status): \(r.stderr)")
        #expect(r.stderr.contains("panicked during boot: kernel panic") && r.stderr.contains("last console line"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(monotonicSeconds() - started < 60)
        _ = try lab.cli(["stop"])
    }

    /// on_panic = poweroff: `labrun boot` ends with the panic status; on_panic = snapshot keeps
    /// the crashed VM as a snapshot named from the time and the title.
    @Test func onPanicPoweroffAndSnapshot() throws {
        let lab = try TestLab()
        try lab.setConf("on_panic", "poweroff")
        var session = try lab.bootToShell()
        try session.send("echo c > /proc/sysrq-trigger\r")
        #expect(session.waitForExit(timeout: 30) == .exited(ExitReason.panicExitCode))
        #expect(session.terminalRestored)

        try lab.setConf("on_panic", "snapshot")
        session = try lab.bootToShell()
        try session.send("echo c > /proc/sysrq-trigger\r")
        try session.expect("kept as snapshot 'panic-", timeout: 30)
        try session.expect("snapshot 'panic-", timeout: 30)
        let names = try lab.listJSON().map(\.name)
        #expect(names.contains { $0.hasPrefix("panic-") && $0.hasSuffix("kernel-panic-sysrq-triggered-crash") }, "\(names)")
        try session.quit()
        let bad = try lab.setConfRefused("on_panic", "explode")
        #expect(bad.contains("on_panic"), "\(bad)")
    }
}

extension TestLab {
    /// Sets a lab.conf key to a bad value and returns labrun's one-line refusal.
    func setConfRefused(_ key: String, _ value: String) throws -> String {
        try setConf(key, value)
        defer { try? setConf(key, "pause") }
        let r = try cli(["status"])
        #expect(r.status == .exited(1))
        return r.stderr
    }
}
