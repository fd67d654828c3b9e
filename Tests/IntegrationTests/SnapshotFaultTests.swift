import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3: a foreign QEMU on the image, concurrent requests, failed live restores.
extension SnapshotSuites {
    @Suite struct SnapshotFaultTests {
        /// Acceptance 4: a QEMU started by hand on the runtime image (not under labrun) makes every
        /// command refuse with a message naming its pid; the image is untouched.
        @Test func aForeignQemuOnTheImageMakesEveryCommandRefuse() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "existing"])
            let listing = try lab.qemuImgListing()
            let qemu = try ForeignQemu(image: lab.runtime)
            defer { qemu.kill() }
            try #require(ImageLock.isLocked(lab.runtime), "the hand-started QEMU did not lock the image")
            let stamp = lab.fileStamp(lab.runtime)

            let commands: [[String]] = [
                ["snapshot", "create", "new-one"], ["snapshot", "create", "--force", "existing"],
                ["snapshot", "restore", "existing"], ["snapshot", "list"], ["snapshot", "list", "--json"],
                ["snapshot", "delete", "existing"], ["reset", "--yes"], ["reset", "--force", "--yes"],
                ["reset", "--undo", "--yes"], ["info"], ["info", "--json"], ["check"], ["check", "--repair"],
            ]
            for args in commands {
                let err = try lab.refused(args)
                #expect(err.contains("pid \(qemu.pid)"), "labrun \(args.joined(separator: " ")) does not name QEMU's pid \(qemu.pid): \(err)")
                #expect(err.contains("kill \(qemu.pid)") || err.contains("stop that VM"), "says how to stop it: \(err)")
            }
            // boot refuses too, before starting anything.
            let boot = try lab.refused(["boot"])
            #expect(boot.contains("pid \(qemu.pid)"))
            #expect(try lab.ok(["status"]).contains("in use by pid \(qemu.pid)"))

            #expect(lab.fileStamp(lab.runtime) == stamp, "the runtime image was written while another QEMU held it")
            #expect(fileExists(lab.runtime) && !fileExists(lab.root + "/" + Lab.undoName))
            #expect(processAlive(qemu.pid))
            qemu.kill()
            #expect(try lab.qemuImgListing() == listing)
            #expect(try lab.ok(["snapshot", "list"]).contains("existing"))
        }

        /// Two snapshot requests at once from two processes both complete (serialized by the
        /// supervisor), and both snapshots are whole.
        @Test func twoLiveSnapshotRequestsAtOnceBothComplete() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            for round in 0..<2 {
                let names = ["first-\(round)", "second-\(round)"]
                let outputs = try concurrently(names.map { ["--lab", lab.root, "snapshot", "create", $0] })
                for (name, out) in zip(names, outputs) {
                    #expect(out.status == .exited(0), "\(name): \(out.stderr)")
                    #expect(out.stdout.hasPrefix("snapshot '\(name)' created ("))
                }
            }
            let listed = try lab.listJSON()
            #expect(Set(listed.map(\.name)) == ["first-0", "second-0", "first-1", "second-1"])
            #expect(listed.allSatisfy { $0.vm_state_size > 0 })
            // A restore and a create at once: both complete too.
            let mixed = try concurrently([["--lab", lab.root, "snapshot", "restore", "first-0"],
                                          ["--lab", lab.root, "snapshot", "create", "third"]])
            #expect(mixed.allSatisfy { $0.status == .exited(0) }, "\(mixed.map(\.stderr))")
            #expect(try session.shell("echo alive").contains("alive"))
            try session.quit()
            let check = try lab.cli(["check"])
            #expect(check.status == .exited(0), "\(check.stdout)\(check.stderr)")
        }

        /// Two offline requests at once: both complete (one waits for the other), no
        /// "Failed to get write lock" from qemu-img.
        @Test func twoOfflineSnapshotRequestsAtOnceBothComplete() throws {
            let lab = try TestLab()
            for round in 0..<4 {
                let names = ["a-\(round)", "b-\(round)"]
                let outputs = try concurrently(names.map { ["--lab", lab.root, "snapshot", "create", $0] }
                                               + [["--lab", lab.root, "snapshot", "list"]])
                for out in outputs { #expect(out.status == .exited(0), "\(out.stderr)") }
            }
            #expect(try lab.qemuImgSnapshots().count == 8)
            let same = try concurrently(Array(repeating: ["--lab", lab.root, "snapshot", "create", "same"], count: 2))
            #expect(same.map(\.status).sorted { "\($0)" < "\($1)" } == [.exited(0), .exited(1)], "\(same.map(\.stderr))")
            #expect(try lab.qemuImgSnapshots().filter { $0.name == "same" }.count == 1, "a duplicate name was created")
        }

        /// A refused live restore (disk-only snapshot) leaves the VM running, untouched.
        @Test func refusedLiveRestoreOfADiskOnlySnapshotLeavesTheVMRunning() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "disk-only"])
            let session = try lab.bootToShell()
            try session.shell("V=still-here")
            let err = try lab.refused(["snapshot", "restore", "disk-only"])
            #expect(err.contains("disk only") && err.contains("labrun stop"))
            try session.expect("[labrun] failed: snapshot 'disk-only' is disk only")
            #expect(try session.shell("echo alive V=$V").contains("alive V=still-here"))
            let status = try lab.ok(["status", "--json"])
            #expect(status.contains("\"runState\" : \"running\""))
            try session.quit()
        }

        /// A live restore that QEMU itself fails (the snapshot was taken with another memory size):
        /// refused with QEMU's reason, and the VM keeps running as it was: not paused, not rebooted,
        /// its shell state and disk as before.
        @Test func restoreIntoAVMOfAnotherShapeLeavesTheVMRunningAsItWas() throws {
            let lab = try TestLab()
            var session = try lab.bootToShell(["--mem", "320M"])
            try session.shell("echo from-320 > /root/marker")
            try lab.ok(["snapshot", "create", "other-mem"])
            try lab.ok(["snapshot", "create", "unrecorded"])
            try lab.ok(["stop"])
            session.waitStopped()
            // Forget the shape of one of them, as for a snapshot labrun did not take.
            let shapes = lab.root + "/.labrun-snapshots.json"
            let table = try #require(readSmallFile(shapes).map { String(decoding: $0, as: UTF8.self) })
            #expect(table.contains("other-mem@") && table.contains("unrecorded@") && table.contains("\"memoryMiB\":320"))
            var decoded = try JSONDecoder().decode([String: VMShape].self, from: Data(table.utf8))
            decoded = decoded.filter { !$0.key.hasPrefix("unrecorded@") }
            try String(decoding: JSONEncoder().encode(decoded), as: UTF8.self).write(toFile: shapes)

            session = try lab.bootToShell()
            try session.shell("V=still-here; echo current > /root/marker")
            let mark = session.length
            // Recorded shape: refused before QEMU is asked, saying how to boot for it.
            let up = try lab.refused(["snapshot", "restore", "other-mem"])
            #expect(up.contains("320 MiB") && up.contains("--mem 320M"), "\(up)")
            // No record: QEMU tries, fails, and labrun brings the VM back from its safety snapshot.
            let err = try lab.refused(["snapshot", "restore", "unrecorded"])
            #expect(err.contains("snapshot 'unrecorded' not restored"), "\(err)")
            let status = try lab.ok(["status", "--json"])
            #expect(status.contains("\"runState\" : \"running\""), "the VM was left paused: \(status)")
            let out = try session.shell("echo alive V=$V; cat /root/marker", timeout: 10)
            #expect(out.contains("alive V=still-here"), "the guest lost its state: \(out)")
            #expect(out.contains("current"))
            #expect(!session.text(since: mark).contains("labrun-guest: ready"), "the guest rebooted")
            try session.quit()
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["other-mem", "unrecorded"], "a temporary snapshot was left behind")

            // Offline restore, then a plain boot: it resumes in the snapshot's own shape.
            try lab.ok(["snapshot", "restore", "other-mem"])
            let resumed = try lab.boot()
            try resumed.expect("with its settings: 320 MiB", timeout: 30)
            try resumed.expect("(tcg, 320 MiB", timeout: 30)
            let back = try resumed.shell("cat /root/marker", timeout: 30)
            #expect(back.contains("from-320"))
            try resumed.send([0x01, UInt8(ascii: "x")])
            #expect(resumed.waitForExit() == .exited(0))
        }
    }
}

/// Runs several labrun commands at the same moment; returns their outputs in order.
func concurrently(_ commands: [[String]]) throws -> [Spawner.Output] {
    struct Running { let child: ChildProcess; let out: FileDescriptor; let err: FileDescriptor }
    var running: [Running] = []
    for args in commands {
        let out = try FileDescriptor.pipe(), err = try FileDescriptor.pipe()
        var config = SpawnConfiguration(executable: labrunBinary, arguments: args)
        config.standardInput = .devNull
        config.standardOutput = .descriptor(out.writeEnd)
        config.standardError = .descriptor(err.writeEnd)
        let child = try Spawner.spawn(config)
        out.writeEnd.close()
        err.writeEnd.close()
        running.append(Running(child: child, out: out.readEnd, err: err.readEnd))
    }
    return running.map { r in
        func drain(_ fd: FileDescriptor) -> [UInt8] {
            var bytes: [UInt8] = []
            while case .success(let b) = fd.read(), !b.isEmpty { bytes += b }
            fd.close()
            return bytes
        }
        // Outputs are short (well under a pipe's buffer), so reading one after the other is safe.
        let o = drain(r.out), e = drain(r.err)
        return Spawner.Output(status: r.child.wait(), standardOutput: o, standardError: e)
    }
}
