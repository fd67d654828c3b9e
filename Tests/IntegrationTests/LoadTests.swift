import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 7, "Load": many live snapshot cycles while the guest prints, many live restores in a
/// row. Full size (200 cycles, 50 restores) with LABRUN_LOAD_SCALE=full (`make test-faults`);
/// the normal run uses reduced sizes (LoadScale).
@Suite(.serialized, .enabled(if: integrationAvailable, "needs QEMU, `make guest` and a built labrun"))
struct LoadTests {
    /// Live snapshot create/delete cycles while the guest prints a numbered line every 10 ms:
    /// every numbered line reaches the console exactly once and in order, labrun's notices sit
    /// on lines of their own, the image checks clean afterwards, and labrun's resident memory
    /// does not grow between cycle 20 and the last.
    @Test func snapshotCyclesWhileTheGuestPrints() throws {
        let cycles = LoadScale.snapshotCycles
        let lab = try TestLab()
        let session = try lab.bootToShell()
        // The loop ends when /tmp/stop appears (made through the agent: Ctrl-C would mostly
        // hit usleep, and busybox ash then carries on with the loop).
        try session.send("rm -f /tmp/stop; i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo \"n $i\"; usleep 10000; done\r")
        try session.expect("n 3", timeout: 20)
        let labrunPid = session.process.pid
        var rssAt20 = 0
        let started = monotonicSeconds()
        for cycle in 1...cycles {
            let name = "cycle-\(cycle)"
            let c = try lab.cli(["snapshot", "create", name])
            #expect(c.status == .exited(0), "cycle \(cycle) create: \(c.stderr)")
            let d = try lab.cli(["snapshot", "delete", name])
            #expect(d.status == .exited(0), "cycle \(cycle) delete: \(d.stderr)")
            session.drain(for: 0.005)
            if cycle == 20 { rssAt20 = residentKiB(labrunPid) ?? 0 }
            if c.status != .exited(0) || d.status != .exited(0) { break }
        }
        let elapsed = monotonicSeconds() - started
        let rssEnd = residentKiB(labrunPid) ?? 0
        print("load: \(cycles) snapshot cycles in \(Messages.formatSeconds(elapsed)), labrun RSS \(rssAt20) KiB at cycle 20, \(rssEnd) KiB at the end")
        session.drain(for: 0.5)
        #expect(try lab.exec("touch /tmp/stop").status == .exited(0))
        try session.expect(ConsoleSession.prompt, timeout: 20)
        try session.quit()

        // The console: "n 1", "n 2", … each exactly once, in order; only labrun's own
        // notices between them, each on a line of its own.
        let all = lines(session.text)
        for line in all where line.contains("[labrun]") {
            #expect(line.hasPrefix("[labrun]"), "a notice split a guest line: \(line.debugDescription)")
        }
        func number(_ line: String) -> Int? {
            guard line.hasPrefix("n "), let n = Int(line.dropFirst(2)), n > 0 else { return nil }
            return n
        }
        let first = try #require(all.firstIndex { number($0) == 1 }, "the guest's loop never printed")
        let last = try #require(all.lastIndex { number($0) != nil })
        var expected = 1
        var notices = 0
        for line in all[first...last] {
            if line.hasPrefix("[labrun]") { notices += 1; continue }
            guard let n = number(line) else {
                Issue.record("a stray line among the numbered ones: \(line.debugDescription)")
                continue
            }
            if n != expected {
                Issue.record("line \(n) where \(expected) was due (\(n < expected ? "repeated" : "lost"))")
                expected = n
            }
            expected += 1
        }
        #expect(expected - 1 > cycles, "too few numbered lines (\(expected - 1)) to mean anything")
        #expect(notices >= cycles, "labrun's notices about the snapshots are missing (\(notices))")
        // Memory: a small bound for \(cycles - 20) cycles (allocator noise, not growth).
        #expect(rssAt20 > 0 && rssEnd - rssAt20 < 2048, "labrun's RSS grew from \(rssAt20) KiB at cycle 20 to \(rssEnd) KiB at cycle \(cycles)")
        print("load: \(expected - 1) numbered lines, \(notices) notices, each line once and in order")

        let check = try lab.cli(["check"])
        #expect(check.status == .exited(0), "\(check.stdout)\(check.stderr)")
        #expect(try lab.listJSON().isEmpty, "a cycle's snapshot was left behind")
    }

    /// Live restores in a row, alternating between two snapshots with different markers in
    /// memory (a shell variable) and on disk: each restore shows the right markers and leaves
    /// the VM running; no temporary snapshot is left behind.
    @Test func liveRestoresAlternatingBetweenTwoSnapshots() throws {
        let restores = LoadScale.restores
        let lab = try TestLab()
        let session = try lab.bootToShell()
        for name in ["alpha", "beta"] {
            try session.shell("M=\(name); echo \(name) > /root/marker")
            try lab.ok(["snapshot", "create", name])
        }
        let started = monotonicSeconds()
        for i in 0..<restores {
            let name = i % 2 == 0 ? "alpha" : "beta"
            let r = try lab.cli(["snapshot", "restore", name])
            #expect(r.status == .exited(0), "restore \(i) of \(name): \(r.stderr)")
            #expect(try lab.runningStatus().status?.runState == "running", "the VM is not running after restore \(i)")
            let out = lines(try session.shell("echo M=$M D=$(cat /root/marker)", timeout: 20))
            #expect(out.contains("M=\(name) D=\(name)"), "restore \(i) of \(name) shows \(out)")
        }
        print("load: \(restores) live restores in \(Messages.formatSeconds(monotonicSeconds() - started))")
        try session.quit()
        #expect(try lab.listJSON().map(\.name) == ["alpha", "beta"])
        #expect(try lab.cli(["check"]).status == .exited(0))
    }
}
