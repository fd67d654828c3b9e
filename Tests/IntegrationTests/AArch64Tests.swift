import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 5, acceptance 2: `labrun init DIR --arch aarch64` from the repository's x86_64 lab makes
/// a lab on the tiny AArch64 guest (`make guest-aarch64`, a prerequisite of `make test`; it builds
/// in about 15 s and boots in about 4 s under TCG), and the lab behaves like the x86_64 one.
let aarch64Available: Bool = findExecutable("qemu-system-aarch64") != nil && fileExists(labrunBinary)
    && fileExists(aarch64LabRoot + "/" + Lab.goldenName) && fileExists(aarch64LabRoot + "/guest-build/vmlinuz")

@Suite(.serialized, .enabled(if: aarch64Available, "needs qemu-system-aarch64, `make guest-aarch64` and a built labrun"))
struct AArch64Tests {
    /// A lab on the AArch64 guest, made from the repository's (x86_64) lab.
    func aarch64Lab() throws -> DerivedLab {
        let lab = try DerivedLab(source: repositoryRoot, arch: "aarch64")
        let conf = readSmallFile(lab.root + "/lab.conf").map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(conf.contains("arch = aarch64"), "\(conf)")
        #expect(conf.contains("golden = \(realPath(aarch64LabRoot) ?? aarch64LabRoot)/"), "\(conf)")
        return lab
    }

    @Test func initArchAarch64BootsToAShellAndSnapshotsLive() throws {
        let lab = try aarch64Lab()
        let dry = try lab.ok(["boot", "--dry-run"])
        #expect(dry.hasPrefix("qemu-system-aarch64 ") && dry.contains("-machine virt") && dry.contains("console=ttyAMA0"), "\(dry)")
        let (s, seconds) = try lab.bootToShell(timeout: 60)
        report("AArch64 tiny guest: boot to the shell in \(tenths(seconds)) s")
        let uname = try s.shell("uname -m; echo one > /root/marker; V=ram-one")
        #expect(uname.contains("aarch64"))
        let created = try lab.ok(["snapshot", "create", "a1"])
        #expect(created.contains("snapshot 'a1' created"), "\(created)")
        try s.shell("echo two > /root/marker; V=ram-two")
        let restored = try lab.ok(["snapshot", "restore", "a1"])
        #expect(restored.contains("snapshot 'a1' restored"), "\(restored)")
        let back = try s.shell("cat /root/marker; echo V=$V")
        #expect(back.contains("one") && !back.contains("two") && back.contains("V=ram-one"), "\(back.debugDescription)")
        // The agent answers on the virtio-serial port of the virt machine too.
        let exec = try lab.cli(["exec", "--timeout", "30", "--", "uname", "-m"])
        #expect(exec.stdout == "aarch64\n", "\(exec.stdout)\(exec.stderr)")
        try s.quitCleanly()
        // Offline, the snapshot is still there.
        #expect(try lab.ok(["snapshot", "list", "--json"]).contains("\"a1\""))
    }

    @Test func sharedFolderAndPoweroff() throws {
        let lab = try aarch64Lab()
        try "from-host\n".write(toFile: lab.root + "/shared/host.txt")
        let (s, _) = try lab.bootToShell(["--shared"], timeout: 60)
        if !s.text.contains("is mounted at /mnt in the guest") { try s.expect("is mounted at /mnt in the guest", timeout: 30) }
        let out = try s.shell("cat /mnt/host.txt; echo from-guest > /mnt/guest.txt; sync")
        #expect(out.contains("from-host"))
        #expect(readSmallFile(lab.root + "/shared/guest.txt").map { String(decoding: $0, as: UTF8.self) } == "from-guest\n")
        try s.send("poweroff\r")
        #expect(s.waitForExit(timeout: 30) == .exited(0))
        #expect(s.text.contains("the guest powered off"))
    }

    /// A second init reuses the built guest (no rebuild), and an x86_64 init still works.
    @Test func initReusesTheBuiltGuest() throws {
        let lab = try DerivedLab(source: repositoryRoot, arch: "aarch64")
        #expect(!lab.initOutput.stderr.contains("building"), "\(lab.initOutput.stderr)")
        guard integrationAvailable else { return }   // (the x86_64 tiny guest: `make guest`)
        let x86 = try DerivedLab(source: repositoryRoot, arch: "x86_64")
        let conf = readSmallFile(x86.root + "/lab.conf").map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(conf.contains("arch = x86_64"))
    }
}
