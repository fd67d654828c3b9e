import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

extension TestLab {
    /// Keeps this lab's boot checkpoints in its own store (so no other test's checkpoint is
    /// found), or in `directory`.
    func useCheckpointStore(_ directory: String? = nil) throws {
        try setConf("checkpoints", directory ?? root + "/checkpoints")
    }

    var checkpointStore: String {
        (try? Lab.open(root)).flatMap { CheckpointStore(lab: $0)?.directory } ?? root + "/checkpoints"
    }

    /// Sets one lab.conf key (replacing an earlier value).
    func setConf(_ key: String, _ value: String) throws {
        let path = root + "/lab.conf"
        let old = readSmallFile(path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let kept = old.split(separator: "\n").filter { !$0.hasPrefix(key + " ") && !$0.hasPrefix(key + "=") }
        try (kept.joined(separator: "\n") + "\n\(key) = \(value)\n").write(toFile: path)
    }

    /// The checkpoint directories in this lab's store (whole ones, not damaged or half-made).
    func checkpoints() -> [String] {
        namesInDirectory(checkpointStore).filter { $0.count == 16 }.sorted()
    }

    func damagedCheckpoints() -> [String] {
        namesInDirectory(checkpointStore).filter { $0.hasPrefix("damaged-") }
    }

    /// Boots a fresh layer cold and waits until its checkpoint is kept; the session is left running.
    func bootKeepingCheckpoint(_ extra: [String] = []) throws -> ConsoleSession {
        let s = try boot(extra)
        try s.expect("booting cold", timeout: 20)
        try s.waitForShell()
        try s.expect("kept a boot checkpoint", timeout: 30)
        return s
    }

    /// How far the guest's clock is from the host's, in whole seconds, through the agent: 0
    /// when the guest's `date +%s` lies within the host's seconds around the call.
    func guestClockOffset() throws -> Int {
        let before = wallClockSeconds()
        let r = try exec("date +%s")
        let after = wallClockSeconds()
        let guest = Int(r.stdout.trimmed) ?? 0
        if guest < Int(before) { return guest - Int(before) }
        if guest > Int(after) { return guest - Int(after) }
        return 0
    }
}

/// Issue 11 §1 and §3: the boot checkpoint, and reset in place. Real QEMU, the tiny guest, TCG.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct CheckpointTests {
    /// A fresh runtime layer boots cold once and keeps a checkpoint; the next fresh layer
    /// resumes it: no boot output, the prompt, a clock that matches the host's, exec at once.
    @Test func freshLayerResumesTheBootCheckpoint() throws {
        let lab = try TestLab()
        try lab.useCheckpointStore()
        var session = try lab.boot()
        try session.expect("booting cold", timeout: 20)
        // Meanwhile status says what the checkpoint waits for; nothing once it is kept.
        #expect(try lab.ok(["status"]).contains("boot checkpoint: waits for"))
        try session.waitForShell()
        try session.expect("kept a boot checkpoint", timeout: 30)
        #expect(!(try lab.ok(["status"])).contains("boot checkpoint"))
        #expect(lab.checkpoints().count == 1)
        try session.shell("echo on-disk > /root/marker; sync")
        try session.quit()

        // Not fresh any more: an ordinary boot.
        session = try lab.boot()
        try session.waitForShell()
        #expect(!session.text.contains("resumed the boot checkpoint") && !session.text.contains("booting cold"), "\(session.text)")
        #expect(lines(try session.shell("cat /root/marker")).contains("on-disk"))
        try session.quit()

        try lab.ok(["reset", "--yes"])
        sleepSeconds(2)   // the checkpoint's clock is older still
        let started = monotonicSeconds()
        session = try lab.boot()
        try session.expect(ConsoleSession.resumedLine, timeout: 20)
        try session.expect(ConsoleSession.prompt, timeout: 5)
        let answered = lines(try session.shell("echo r$((6*7))"))
        print("checkpoint: shell answered \(tenths(monotonicSeconds() - started)) s after labrun boot")
        #expect(answered.contains("r42"))
        #expect(!session.text.contains(ConsoleSession.readyLine), "a resumed boot shows no boot output")
        #expect(lines(try session.shell("ls /root/marker 2>&1")).contains { $0.contains("No such file") }, "the reset layer still has the old marker")
        #expect(abs(try lab.guestClockOffset()) <= 1, "the guest's clock was not set after the resume")
        #expect(try lab.exec("echo exec-works").stdout == "exec-works\n")
        // The agent was idle when the checkpoint was made: a command's stderr comes back here,
        // not on the guest's console.
        let both = try lab.exec("echo to-stderr >&2; echo to-stdout")
        #expect(both.stdout == "to-stdout\n" && both.stderr.contains("to-stderr"), "\(both.stdout)|\(both.stderr)")
        try session.quit()
    }

    /// Changing `append` gives a cold boot that says why, with the new command line; the boot
    /// after that resumes the new checkpoint.
    @Test func changedAppendBootsColdThenResumesTheNewCheckpoint() throws {
        let lab = try TestLab()
        try lab.useCheckpointStore()
        var session = try lab.bootKeepingCheckpoint()
        try session.quit()

        try lab.setConf("append", "console=ttyS0 quiet labrun.test=1")
        try lab.ok(["reset", "--yes"])
        session = try lab.boot()
        try session.expect("the kernel command line", timeout: 20)
        try session.waitForShell()
        try session.expect("kept a boot checkpoint", timeout: 30)
        #expect(lines(try session.shell("cat /proc/cmdline")).contains("console=ttyS0 quiet labrun.test=1"))
        try session.quit()
        #expect(lab.checkpoints().count == 2)

        try lab.ok(["reset", "--yes"])
        session = try lab.boot()
        try session.expect(ConsoleSession.resumedLine, timeout: 20)
        try session.expect(ConsoleSession.prompt, timeout: 5)
        #expect(lines(try session.shell("cat /proc/cmdline")).contains("console=ttyS0 quiet labrun.test=1"))
        try session.quit()

        // --cold forces a cold boot of a fresh layer (and keeps a new checkpoint).
        try lab.ok(["reset", "--yes"])
        session = try lab.boot(["--cold"])
        try session.expect("cold boot (--cold)", timeout: 20)
        try session.waitForShell()
        try session.expect("kept a boot checkpoint", timeout: 30)
        try session.quit()
    }

    /// A truncated, corrupted or foreign checkpoint is never loaded: one line, a cold boot,
    /// the bad one moved aside, and a new one kept.
    @Test func badCheckpointsAreMovedAsideAndTheVMBootsCold() throws {
        let lab = try TestLab()
        try lab.useCheckpointStore()
        try lab.bootKeepingCheckpoint().quit()

        let damages: [(String, (String) throws -> Void)] = [
            ("truncated", { dir in try #require(truncate(dir + "/state", 1 << 20) == 0) }),
            ("damaged", { dir in
                let fd = try FileDescriptor.open(dir + "/state", O_WRONLY)
                defer { fd.close() }
                _ = [UInt8](repeating: 0xA5, count: 4096).withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress, 4096, 20 << 20) }
            }),
            ("made for another VM", { dir in
                // As if made by another QEMU binary.
                var text = String(decoding: readSmallFile(dir + "/checkpoint.json")!, as: UTF8.self)
                text = text.replacing("qemu-system-x86_64", with: "qemu-system-x86_64-other")
                try text.write(toFile: dir + "/checkpoint.json")
            }),
        ]
        for (expected, damage) in damages {
            let before = lab.checkpoints()
            try #require(before.count == 1)
            try damage(lab.checkpointStore + "/" + before[0])
            try lab.ok(["reset", "--yes"])
            let session = try lab.boot()
            try session.expect("the boot checkpoint is not usable", timeout: 30)
            let line = try session.expect("\n", timeout: 5)
            #expect(line.contains(expected) && line.contains("booting cold"), "\(expected): \(line)")
            try session.waitForShell()
            #expect(session.text.contains(ConsoleSession.readyLine), "it booted cold")
            try session.expect("kept a boot checkpoint", timeout: 30)
            #expect(lines(try session.shell("echo r$((6*7))")).contains("r42"))
            try session.quit()
            #expect(!lab.damagedCheckpoints().isEmpty, "the bad checkpoint was not kept aside")
        }
        #expect(lab.damagedCheckpoints().count <= 2, "damaged checkpoints pile up")
    }

    /// Reset in place: the console session never closes, the marker is gone, `--undo` brings
    /// the previous layer back the same way, and Ctrl-a r asks first.
    @Test func resetWhileRunningKeepsTheConsole() throws {
        let lab = try TestLab()
        try lab.useCheckpointStore()
        let session = try lab.bootKeepingCheckpoint()
        try session.shell("echo before-reset > /root/marker; sync")

        let started = monotonicSeconds()
        let reset = try lab.cli(["reset", "--yes"])
        #expect(reset.status == .exited(0), "\(reset.stderr)")
        try session.expect(ConsoleSession.resumedLine, timeout: 20)
        try session.expect(ConsoleSession.prompt, timeout: 5)
        let answered = lines(try session.shell("echo r$((6*7))"))
        print("reset in place: shell answered \(tenths(monotonicSeconds() - started)) s after labrun reset")
        #expect(answered.contains("r42"))
        #expect(session.process.poll() == nil, "the console session closed")
        #expect(lines(try session.shell("cat /root/marker 2>&1")).contains { $0.contains("No such file") })
        #expect(fileExists(lab.root + "/" + Lab.undoName))

        // --undo while running: the previous layer, cold-booted, in the same console.
        #expect(try lab.cli(["reset", "--undo", "--yes"]).status == .exited(0))
        try session.waitForShell()
        #expect(lines(try session.shell("cat /root/marker")).contains("before-reset"))

        // Ctrl-a r asks; n keeps the VM, y resets it.
        try session.ctrlA("r")
        try session.expect("[y/N]", timeout: 10)
        try session.send("n")
        try session.expect("reset cancelled", timeout: 10)
        #expect(lines(try session.shell("cat /root/marker")).contains("before-reset"))
        try session.ctrlA("r")
        try session.expect("[y/N]", timeout: 10)
        try session.send("y")
        try session.expect(ConsoleSession.resumedLine, timeout: 20)
        try session.expect(ConsoleSession.prompt, timeout: 5)
        #expect(lines(try session.shell("cat /root/marker 2>&1")).contains { $0.contains("No such file") })
        #expect(try lab.exec("echo exec-works").stdout == "exec-works\n")
        try session.quit()
        #expect(session.terminalRestored)
    }

    /// A VM suspended before a reset comes back exactly as it was with `reset --undo`.
    @Test func undoResumesASuspendedPreviousLayer() throws {
        let lab = try TestLab()
        try lab.useCheckpointStore()
        var session = try lab.bootKeepingCheckpoint()
        try session.shell("M=in-ram-7")
        #expect(try lab.cli(["suspend"]).status == .exited(0))
        _ = session.waitForExit(timeout: 20)
        try lab.ok(["reset", "--yes"])
        #expect(!(try lab.ok(["status"])).contains("suspended"), "the suspended VM went with its layer into the undo step")

        session = try lab.boot()
        try session.expect(ConsoleSession.resumedLine, timeout: 20)
        try session.expect(ConsoleSession.prompt, timeout: 5)
        #expect(try lab.cli(["reset", "--undo", "--yes"]).status == .exited(0))
        try session.expect("resumed the VM suspended at", timeout: 20)
        try session.shell("")
        #expect(lines(try session.shell("echo M=$M")).contains("M=in-ram-7"))
        try session.quit()
    }

    /// Two fresh labs on one golden image booting at once: one makes the checkpoint, both boot.
    @Test func twoBootsRacingForTheFirstCheckpoint() throws {
        let a = try TestLab(name: "a"), b = try TestLab(name: "b")
        let shared = a.root + "/shared-checkpoints"
        try a.useCheckpointStore(shared)
        try b.useCheckpointStore(shared)
        let sa = try a.boot(), sb = try b.boot()
        try sa.waitForShell()
        try sb.waitForShell()
        #expect(try a.exec("echo a").stdout == "a\n")
        #expect(try b.exec("echo b").stdout == "b\n")
        sa.drain(for: 1)
        sb.drain(for: 1)
        let told = [sa.text, sb.text]
        #expect(told.filter { $0.contains("kept a boot checkpoint") }.count >= 1, "\(told)")
        #expect(namesInDirectory(shared).filter { $0.count == 16 }.count == 1)
        #expect(!namesInDirectory(shared).contains { $0.contains(".part-") }, "a half-made checkpoint was left")
        try sa.quit()
        try sb.quit()
    }

    /// A disk too full for the checkpoint or a suspend: one line, nothing half-made kept, the
    /// VM runs on.
    @Test(.enabled(if: runningAsRoot, "mounts a small tmpfs"))
    func fullDiskKeepsNothingHalfMade() throws {
        let lab = try TestLab()
        let mount = try TmpfsMount(at: lab.root + "/small", sizeMiB: 48)
        defer { mount.unmount() }
        try lab.useCheckpointStore(mount.path + "/checkpoints")
        try mount.fill(leaving: 8 << 20)
        let session = try lab.boot()
        try session.waitForShell()
        try session.expect("no boot checkpoint kept", timeout: 30)
        #expect(lab.checkpoints().isEmpty)
        #expect(namesInDirectory(mount.path + "/checkpoints").filter { !$0.hasPrefix(".") }.isEmpty, "half-made checkpoint left")
        #expect(lines(try session.shell("echo r$((6*7))")).contains("r42"))
        try session.quit()

        // Suspend onto a full disk: the state goes beside the runtime layer, in the lab.
        let smallMount = try TmpfsMount(at: parentDirectory(lab.root) + "/tiny", sizeMiB: 40)
        defer { smallMount.unmount() }
        let moved = smallMount.path + "/lab"
        try #require(try labrun(["--lab", repositoryRoot, "init", moved]).status == .exited(0))
        defer { _ = try? labrun(["--lab", moved, "stop"]) }
        let s2 = try ConsoleSession(arguments: ["--lab", moved, "boot"])
        try s2.waitForShell()
        try smallMount.fill(leaving: 4 << 20)
        let r = try labrun(["--lab", moved, "suspend"])
        #expect(r.status != .exited(0))
        expectOneLineRefusal(r, "suspend on a full disk")
        #expect(r.stderr.contains("not suspended"), "\(r.stderr)")
        #expect(!namesInDirectory(moved).contains { $0.hasPrefix(".labrun-suspended") }, "half-made suspend state left")
        #expect(s2.process.poll() == nil, "the VM did not keep running")
        #expect(lines(try s2.shell("echo r$((6*7))")).contains("r42"))
        try s2.quit()
        withExtendedLifetime(lab) {}
    }
}
