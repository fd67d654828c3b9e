import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Debian's cloud kernel unpacked as `make modules_install` leaves it (guest/fetch-test-kernel.sh,
/// `make test-kernel`): a kernel the lab was not built with. Fetched once (about 26 MB) when
/// missing; nil when it cannot be (no network), and the tests are skipped.
let testKernel: (root: String, release: String)? = {
    let dir = repositoryRoot + "/guest-build/test-kernel"
    if !fileExists(dir + "/release") {
        _ = try? Spawner.run("/bin/bash", [repositoryRoot + "/guest/fetch-test-kernel.sh", repositoryRoot])
    }
    guard let bytes = readSmallFile(dir + "/release"), case let release = String(decoding: bytes, as: UTF8.self).trimmed,
          !release.isEmpty, fileExists(dir + "/root/lib/modules/\(release)/modules.dep") else { return nil }
    return (dir + "/root", release)
}()

/// Issue 14 §2: boot your own kernel, with its own modules.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, the guest and labrun"),
       .enabled(if: testKernel != nil, "needs Debian's cloud kernel: `make test-kernel` (apt-get download linux-image-6.1.0-N-cloud-amd64) failed"))
struct KernelTests {
    var kernel: String { testKernel!.root + "/boot/vmlinuz-" + testKernel!.release }

    /// The release comes from the image: a bzImage's setup header, a vmlinux's linux_banner.
    @Test func theReleaseIsReadFromTheImage() throws {
        #expect(KernelRelease.of(image: kernel) == testKernel!.release)
        let own = String(decoding: readSmallFile(repositoryRoot + "/guest-build/kernel-version") ?? [], as: UTF8.self).trimmed
        #expect(KernelRelease.of(image: repositoryRoot + "/guest-build/vmlinux") == own)
        #expect(KernelRelease.of(image: repositoryRoot + "/Makefile") == nil)
    }

    /// The kernel's modules are found beside it (ROOT/boot/vmlinuz-R → ROOT/lib/modules/R), its
    /// early ones load from the initrd, and modprobe loads one that the lab's root file system
    /// does not have (dummy) from that kernel's own modules.
    @Test func theKernelsOwnModulesLoad() throws {
        let lab = try TestLab()
        let r = try lab.cli(["run", "--kernel", kernel, "--", "sh", "-c",
                             "uname -r; modprobe dummy && echo loaded; grep -o '^dummy ' /proc/modules; ls /lib/modules"])
        #expect(r.status == .exited(0), "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == testKernel!.release, "\(r.stdout)")
        #expect(lines.contains("loaded") && lines.contains("dummy "), "\(r.stdout)\(r.stderr)")
        // The lab's own modules are still in the root file system beside them.
        let own = String(decoding: readSmallFile(repositoryRoot + "/guest-build/kernel-version") ?? [], as: UTF8.self).trimmed
        #expect(lines.filter { $0 == testKernel!.release }.count == 2 && lines.contains(own), "\(r.stdout)")
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"))
    }

    /// --modules DIR names them when they are not beside the kernel; a DIR for another release is
    /// a one-line error before anything boots.
    @Test func modulesGivenExplicitly() throws {
        let lab = try TestLab()
        let copy = parentDirectory(lab.root) + "/bzImage"
        #expect(try Spawner.run("cp", [kernel, copy]).status == .exited(0))
        let r = try lab.cli(["run", "--kernel", copy, "--modules", testKernel!.root, "--", "sh", "-c", "modprobe loop && grep -c '^loop ' /proc/modules"])
        #expect(r.status == .exited(0) && r.stdout == "1\n", "\(r.stdout)\(r.stderr)")
        let wrong = try lab.cli(["boot", "--detach", "--kernel", copy, "--modules", repositoryRoot + "/guest-build"])
        expectOneLineRefusal(wrong, "--modules without that release")
        #expect(wrong.stderr.contains("no lib/modules/\(testKernel!.release)"), "\(wrong.stderr)")
    }

    /// A VM of another kernel, suspended, comes back with that kernel and its modules disk,
    /// whatever the next boot's flags say (the devices must be the same to take the state back).
    @Test func aSuspendedVMOfAnotherKernelResumesWithIt() throws {
        let lab = try TestLab()
        let copy = parentDirectory(lab.root) + "/bzImage"
        #expect(try Spawner.run("cp", [kernel, copy]).status == .exited(0))
        let booted = try lab.cli(["boot", "--detach", "--kernel", copy, "--modules", testKernel!.root])
        try #require(booted.status == .exited(0), "\(booted.stderr)")
        #expect(try lab.cli(["exec", "--", "sh", "-c", "modprobe loop"]).status == .exited(0))
        let suspended = try lab.cli(["suspend"])
        try #require(suspended.status == .exited(0), "\(suspended.stderr)")
        let resumed = try lab.cli(["boot", "--detach"])
        try #require(resumed.status == .exited(0), "\(resumed.stderr)")
        let r = try lab.cli(["exec", "--", "sh", "-c", "uname -r; grep -c '^loop ' /proc/modules; modprobe dummy && echo more"])
        #expect(r.stdout == "\(testKernel!.release)\n1\nmore\n", "\(r.stdout)\(r.stderr)")
        _ = try lab.cli(["stop"])
    }

    /// A kernel that cannot boot the lab (here: its virtio and ext4 are modules, and none are
    /// given) fails within seconds with the initrd's reason and status 125, never a hang.
    @Test func aKernelThatCannotBootTheLabFailsWithTheReason() throws {
        let lab = try TestLab()
        let bare = parentDirectory(lab.root) + "/vmlinuz-bare"
        #expect(try Spawner.run("cp", [kernel, bare]).status == .exited(0))
        let started = monotonicSeconds()
        let r = try lab.cli(["run", "--kernel", bare, "--", "true"])
        #expect(r.status == .exited(ExitReason.panicExitCode), "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("the guest did not boot: root disk /dev/vda did not appear"), "\(r.stderr)")
        #expect(monotonicSeconds() - started < 60)
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"))

        let detached = try lab.cli(["boot", "--detach", "--kernel", bare])
        #expect(detached.status == .exited(ExitReason.panicExitCode), "\(detached.stderr)")
        #expect(detached.stderr.split(separator: "\n").count == 1, "\(detached.stderr)")
        #expect(detached.stderr.contains("virtio_blk"), "\(detached.stderr)")
        _ = try lab.cli(["stop"])
    }
}
