import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The slow tier (issue 5): the full Debian guest that `make rootfs` builds into debian/, booted
/// under labrun to its root shell. Minutes under TCG, so it runs only with LABRUN_SLOW=1:
/// `make test-slow` builds the guest and sets it.
let slowTierEnabled: Bool = getenv("LABRUN_SLOW").map { String(cString: $0) } == "1"
let debianGuestAvailable: Bool = findExecutable("qemu-system-x86_64") != nil && fileExists(labrunBinary)
    && fileExists(debianLabRoot + "/" + Lab.goldenName) && fileExists(debianLabRoot + "/guest-build/initrd.img")

/// Boot to the shell: systemd under TCG on a busy 2-core host takes 30-60 s.
let debianBootTimeout: Double = 240

@Suite(.serialized, .enabled(if: slowTierEnabled, "slow tier: set LABRUN_SLOW=1 (make test-slow)"),
       .enabled(if: debianGuestAvailable, "needs the Debian guest (make rootfs), QEMU and a built labrun"))
struct SlowTests {
    /// A root shell on the serial console, gcc, the guest agent, the lab's settings.
    @Test func bootsToARootShellWithGccAndTheAgent() throws {
        let lab = try DerivedLab(source: debianLabRoot)
        // Cold: the motd is shown at login, which a resumed boot checkpoint is already past.
        let (s, seconds) = try lab.bootToShell(["--cold"], timeout: debianBootTimeout)
        report("Debian guest: cold boot to the root shell in \(tenths(seconds)) s")
        #expect(s.text.contains("Ctrl-a then"), "the motd lists the console keys")
        let gcc = try s.shell("gcc --version | head -n 1")
        #expect(gcc.contains("gcc (Debian 12"), "\(gcc.debugDescription)")
        let who = try s.shell("id -un; hostname; findmnt -no SOURCE /")
        #expect(who.contains("root") && who.contains("lab") && who.contains("/dev/vda"), "\(who.debugDescription)")
        // (The shell echoes the command, so the failure word is spliced: MIS""SING.)
        let tools = try s.shell("for t in make gdb strace ip ssh-keygen vi less; do command -v $t >/dev/null || echo $t MIS\"\"SING; done; echo checked")
        #expect(tools.contains("checked") && !tools.contains("MISSING"), "\(tools.debugDescription)")
        // The agent (a systemd service started by udev) answers labrun exec.
        let exec = try lab.cli(["exec", "--timeout", "60", "--", "uname", "-r"])
        #expect(exec.status == .exited(0) && exec.stdout.hasSuffix("-amd64\n"), "\(exec.stdout)\(exec.stderr)")
        let state = try lab.cli(["exec", "--timeout", "120", "--", "sh", "-c", "systemctl is-system-running --wait; systemctl --failed --no-legend"])
        #expect(state.stdout == "running\n", "systemd: \(state.stdout)\(state.stderr)")
        try s.quitCleanly()
    }

    /// Issue 12 §5: the guest's console has the terminal's size and TERM (the Debian guest has
    /// terminfo), after a resize too: `stty size` and `tput cols` agree.
    @Test func consoleGetsTheTerminalsSizeAndTerm() throws {
        let lab = try DerivedLab(source: debianLabRoot)
        let s = try ConsoleSession(arguments: ["--lab", lab.root, "boot"],
                                   environment: ["LABRUN_ACCEL": "tcg", "TERM": "xterm-256color"], size: WindowSize(rows: 45, columns: 150))
        try s.waitForShell(timeout: debianBootTimeout)
        // The agent sets size and TERM right after the boot (or the resume); the shell takes
        // TERM at its next prompt. Under TCG the Debian guest's agent takes a second or two.
        sleepSeconds(3)
        try s.shell("")
        #expect(lines(try s.shell("echo T=$TERM; stty size; tput cols")).contains("T=xterm-256color"))
        s.resize(WindowSize(rows: 30, columns: 100))
        sleepSeconds(3)
        try s.shell("")
        let after = lines(try s.shell("stty size; tput cols"))
        #expect(after.contains("30 100") && after.contains("100"), "\(after)")
        try s.quitCleanly()
    }

    /// Live snapshot and restore (RAM and disk), with the shared folder mounted by the agent
    /// (unmounted around the snapshot, mounted again after the restore).
    @Test func liveSnapshotAndRestoreWithTheShare() throws {
        let lab = try DerivedLab(source: debianLabRoot)
        try "from-host\n".write(toFile: lab.root + "/shared/host.txt")
        let (s, _) = try lab.bootToShell(["--shared"], timeout: debianBootTimeout)
        // (The agent often starts before the getty: the notice may precede the prompt.)
        if !s.text.contains("is mounted at /mnt in the guest") { try s.expect("is mounted at /mnt in the guest", timeout: 120) }
        let seen = try s.shell("cat /mnt/host.txt; echo one > /root/marker; V=ram-one")
        #expect(seen.contains("from-host"))

        let created = try lab.ok(["snapshot", "create", "s1"])
        #expect(created.contains("snapshot 's1' created"), "\(created)")
        report("Debian guest: " + created.trimmed)
        try s.shell("echo two > /root/marker; V=ram-two")

        let restored = try lab.ok(["snapshot", "restore", "s1"])
        #expect(restored.contains("snapshot 's1' restored"), "\(restored)")
        report("Debian guest: " + restored.trimmed)
        let back = try s.shell("cat /root/marker; echo V=$V")
        #expect(back.contains("one") && !back.contains("two") && back.contains("V=ram-one"), "\(back.debugDescription)")
        let share = try lab.cli(["exec", "--timeout", "60", "--", "sh", "-c", "grep -c ' /mnt 9p ' /proc/mounts"])
        #expect(share.stdout == "1\n", "share after restore: \(share.stdout)\(share.stderr)")
        let list = try lab.ok(["snapshot", "list", "--json"])
        #expect(list.contains("\"s1\""))
        try s.quitCleanly()
    }

    /// Issue 14 §2 on the full Debian guest: its initramfs-tools initrd loads another kernel's
    /// early modules from the archive labrun appends, and systemd mounts that kernel's modules
    /// disk before udev's coldplug, so modprobe finds them.
    @Test(.enabled(if: testKernel != nil, "needs Debian's cloud kernel (make test-kernel)"))
    func anotherKernelBootsWithItsOwnModules() throws {
        let lab = try DerivedLab(source: debianLabRoot)
        let kernel = testKernel!.root + "/boot/vmlinuz-" + testKernel!.release
        let r = try lab.cli(["run", "--timeout", "\(Int(debianBootTimeout))", "--kernel", kernel, "--", "sh", "-c",
                             "uname -r; modprobe dummy && echo loaded; grep -o '^dummy ' /proc/modules; findmnt -no FSTYPE,OPTIONS /lib/modules/$(uname -r)"])
        #expect(r.status == .exited(0), "\(r.stdout)\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == testKernel!.release, "\(r.stdout)")
        #expect(lines.contains("loaded") && lines.contains("dummy "), "\(r.stdout)\(r.stderr)")
        #expect(lines.contains { $0.hasPrefix("ext4") && $0.contains("ro") }, "the modules disk, read-only: \(r.stdout)")
    }

    /// `poweroff` in the guest: systemd shuts down and labrun ends with 0.
    @Test func guestPoweroffEndsLabrun() throws {
        let lab = try DerivedLab(source: debianLabRoot)
        let (s, _) = try lab.bootToShell(timeout: debianBootTimeout)
        try s.send("poweroff\r")
        #expect(s.waitForExit(timeout: 120) == .exited(0))
        #expect(s.text.contains("the guest powered off"))
    }
}
