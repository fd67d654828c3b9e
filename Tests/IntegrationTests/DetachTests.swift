import Testing
@testable import LabrunKit

/// `labrun boot --detach`: the VM in the background, for scripts and CI.
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct DetachTests {
    @Test func detachedBootReturnsOnceTheGuestIsUpAndStops() throws {
        let lab = try TestLab()
        let up = try lab.cli(["boot", "--detach"])
        #expect(up.status == .exited(0), "\(up.stderr)")
        #expect(up.stdout.contains("runs in the background"))
        // The guest answers at once: boot --detach returned only when it was up.
        let r = try lab.cli(["exec", "--", "echo", "up"])
        #expect(r.stdout == "up\n")
        let again = try lab.cli(["boot", "--detach"])
        #expect(again.status == .exited(1) && again.stderr.contains("already running"))
        #expect(try lab.cli(["snapshot", "create", "bg"]).status == .exited(0))
        #expect(try lab.cli(["stop"]).status == .exited(0))
        #expect(try lab.cli(["status"]).stdout.hasPrefix("stopped"))
        // A boot that cannot start says why, here.
        try "mem = lots\n".write(toFile: lab.root + "/lab.conf")
        let bad = try lab.cli(["boot", "--detach"])
        #expect(bad.status == .exited(1) && bad.stderr.contains("lab.conf:1"))
    }
}
