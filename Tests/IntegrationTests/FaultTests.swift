import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 7, "Faults to survive": QEMU killed in the middle of a live snapshot, the lab's file
/// system full during one, a guest that panics or hangs. (labrun itself killed with SIGKILL,
/// SIGTERM or SIGHUP, and a second boot, are BootTests.)
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct FaultTests {
    /// QEMU SIGKILLed while it writes a live snapshot of a 1 GiB guest with ~400 MiB of dirty
    /// memory: labrun says so and exits 1, the terminal is restored, `labrun check` explains
    /// any leaked clusters (exit 3) or is clean, `--repair` fixes them, the interrupted snapshot
    /// is not listed, both older snapshots restore with their markers (memory and disk), and
    /// the next boot works.
    @Test func qemuKilledDuringALiveSnapshot() throws {
        let lab = try TestLab()
        var session = try lab.bootToShell(["--mem", "1G"])
        try session.shell("M=old-one; echo old-one > /root/marker; sync")
        try lab.ok(["snapshot", "create", "old-one"])
        var hit = false
        for attempt in 0..<3 {
            // Dirty the guest's memory with non-zero pages (zero pages cost savevm nothing).
            try session.shell("mkdir -p /dirty && mount -t tmpfs -o size=900m tmpfs /dirty && dd if=/dev/urandom of=/dirty/seed bs=1M count=4 2>/dev/null && for i in $(seq 100); do cat /dirty/seed; done > /dirty/fill; echo dirtied", timeout: 180)
            if attempt == 0 {
                try session.shell("M=old-two; echo old-two > /root/marker; sync")
                let two = try lab.ok(["snapshot", "create", "old-two"])
                #expect(two.contains("MiB of VM state"))
            }
            let qemu = try qemuPid(lab)
            var config = SpawnConfiguration(executable: labrunBinary, arguments: ["--lab", lab.root, "snapshot", "create", "doomed"])
            let err = try FileDescriptor.pipe()
            config.standardInput = .devNull
            config.standardOutput = .devNull
            config.standardError = .descriptor(err.writeEnd)
            let client = try Spawner.spawn(config)
            err.writeEnd.close()
            // savevm of ~400 MiB takes about a second under TCG: kill in its first part.
            sleepSeconds([0.3, 0.2, 0.12][attempt])
            kill(qemu, SIGKILL)
            var stderr: [UInt8] = []
            while case .success(let b) = err.readEnd.read(), !b.isEmpty { stderr += b }
            err.readEnd.close()
            let clientStatus = client.wait()
            let exit = session.waitForExit(timeout: 20)
            if clientStatus == .exited(0) {
                // The snapshot finished first: too quick to hit. Boot again and retry sooner.
                try lab.ok(["snapshot", "delete", "doomed"])
                session = try lab.bootToShell(["--mem", "1G"])
                continue
            }
            hit = true
            print("fault: QEMU killed \([300, 200, 120][attempt]) ms into `snapshot create` (attempt \(attempt + 1))")
            let message = String(decoding: stderr, as: UTF8.self)
            #expect(message.split(separator: "\n").count == 1 && message.contains("snapshot 'doomed' not created"), "\(message)")
            #expect(exit == .exited(1), "labrun's exit after QEMU was killed: \(String(describing: exit))")
            #expect(session.text.contains("killed by SIGKILL") || session.text.contains("SIGKILL"), "labrun did not say QEMU was killed: \(session.text.suffix(600))")
            #expect(session.text.contains("failed: snapshot 'doomed' not created"))
            #expect(session.terminalRestored)
            break
        }
        try #require(hit, "every savevm finished before QEMU was killed; the guest's memory was not dirty enough")

        // The image: clean, or leaked clusters explained and repaired.
        let check = try lab.cli(["check"])
        print("fault: after the kill, labrun check: \(check.status): \(check.stdout.trimmed)")
        #expect(check.status == .exited(0) || check.status == .exited(3), "check: \(check.status) \(check.stdout)\(check.stderr)")
        if check.status == .exited(3) {
            #expect(check.stdout.contains("leaked cluster") && check.stdout.contains("--repair"), "\(check.stdout)")
            let repair = try lab.cli(["check", "--repair"])
            #expect(repair.status == .exited(0) && repair.stdout.contains("repaired"), "\(repair.stdout)\(repair.stderr)")
        }
        #expect(try lab.cli(["check"]).status == .exited(0))
        let names = try lab.listJSON().map(\.name)
        #expect(names == ["old-one", "old-two"], "the interrupted snapshot must not be listed: \(names)")

        // The next boot works, and every older snapshot restores with its markers.
        session = try lab.bootToShell(["--mem", "1G"])
        for name in ["old-two", "old-one", "old-two"] {
            try lab.ok(["snapshot", "restore", name])
            let out = lines(try session.shell("echo M=$M; cat /root/marker"))
            #expect(out.contains("M=\(name)") && out.contains(name), "after restoring \(name): \(out)")
        }
        try session.quit()
    }

    /// The lab's file system fills up during a live snapshot: one clear error line, the VM
    /// keeps running, no half snapshot is listed, the older one is whole and restores, the list
    /// shows each snapshot's VM state size, and once there is room again snapshots work.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func fullFileSystemDuringALiveSnapshot() throws {
        let lab = try TestLab()
        // The lab moves onto a small tmpfs of its own (mounted over its directory).
        let mount = try TmpfsMount(at: lab.root, sizeMiB: 170)
        defer {
            _ = try? lab.cli(["stop"])
            mount.unmount()
        }
        let made = try labrun(["--lab", repositoryRoot, "init", lab.root])
        try #require(made.status == .exited(0), "\(made.stderr)")
        let session = try lab.bootToShell()
        try session.shell("M=before-full; echo before-full > /root/marker; sync")
        try lab.ok(["snapshot", "create", "before-full"])
        let old = try #require(try lab.listJSON().first)
        // Leave a third of the VM state's size: savevm runs out of space half-way.
        try mount.fill(leaving: old.vm_state_size / 3)
        try session.shell("M=after-fill")

        let r = try lab.cli(["snapshot", "create", "too-big"])
        expectOneLineRefusal(r, "snapshot create on a full file system")
        #expect(r.stderr.contains("snapshot 'too-big' not created"), "\(r.stderr)")
        // The VM keeps running: the console, the agent and QEMU's run state say so.
        #expect(lines(try session.shell("echo alive M=$M")).contains("alive M=after-fill"))
        let alive = try lab.exec("echo alive")
        #expect(alive.status == .exited(0) && alive.stdout == "alive\n", "\(alive.stdout)\(alive.stderr)")
        #expect(try lab.runningStatus().status?.runState == "running")
        // No half snapshot; the list shows how much each holds.
        let listed = try lab.listJSON()
        #expect(listed.map(\.name) == ["before-full"], "\(listed)")
        let table = try lab.ok(["snapshot", "list"])
        #expect(table.contains("VM STATE") && table.contains(formatBytes(old.vm_state_size)), "\(table)")

        // Room again: the old snapshot restores with its markers, and a new one works.
        removeFile(mount.path + "/filler")
        try lab.ok(["snapshot", "restore", "before-full"])
        let out = lines(try session.shell("echo M=$M; cat /root/marker"))
        #expect(out.contains("M=before-full") && out.contains("before-full"), "\(out) screen: \(session.text.suffix(1500).debugDescription)")
        try lab.ok(["snapshot", "create", "with-room"])
        try session.quit()
        let check = try lab.cli(["check"])
        #expect(check.status == .exited(0) || check.status == .exited(3), "\(check.stdout)\(check.stderr)")
    }

    /// A guest that hangs (userspace hogs on every vCPU) and then panics: labrun stays
    /// responsive: Ctrl-a i answers, `labrun status` answers, a snapshot of the panicked
    /// guest works, and `labrun stop` ends it within a few seconds.
    @Test func guestThatHangsOrPanicsLeavesLabrunResponsive() throws {
        let lab = try TestLab()
        let session = try lab.bootToShell()
        // A hog: the guest's only CPU busy in two loops that ignore the console.
        try session.send("(while :; do :; done) & (while :; do :; done) &\r")
        session.drain(for: 1)
        try session.ctrlA("i")
        try session.expect("[labrun] QEMU pid", timeout: 5)
        var t = monotonicSeconds()
        #expect(try lab.runningStatus().status?.runState == "running")
        #expect(monotonicSeconds() - t < 3, "status took \(monotonicSeconds() - t) s with a busy guest")

        // The kernel panics: nothing in the guest runs any more.
        try session.send("echo c > /proc/sysrq-trigger\r")
        try session.expect("Kernel panic", timeout: 30)
        session.drain(for: 1)
        try session.ctrlA("i")
        try session.expect("[labrun] QEMU pid", timeout: 5)
        t = monotonicSeconds()
        let st = try lab.runningStatus()
        #expect(st.running && monotonicSeconds() - t < 3)
        // Snapshots do not need the guest's help.
        try lab.ok(["snapshot", "create", "panicked"])
        t = monotonicSeconds()
        let stop = try lab.cli(["stop"])
        #expect(stop.status == .exited(0), "\(stop.stderr)")
        #expect(monotonicSeconds() - t < 8, "stop took \(monotonicSeconds() - t) s")
        #expect(session.waitForExit(timeout: 10) == .exited(0))
        #expect(session.terminalRestored)
    }
}
