import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3, acceptance 1: create / list / restore / delete, offline (qemu-img) and live (the
/// running supervisor through QMP), with a marker written in the guest, and the same output
/// shape on both paths.
extension SnapshotSuites {
    @Suite struct SnapshotTests {
        /// Offline: the VM is stopped, snapshots are disk-only (qemu-img). A marker written before
        /// the snapshot reads back at the next boot after restoring it.
        @Test func offlineCreateListRestoreDelete() throws {
            let lab = try TestLab()
            #expect(try lab.ok(["snapshot", "list"]) == "no snapshots\n")
            #expect(try lab.ok(["snapshot", "list", "--json"]) == "[]\n")

            var session = try lab.bootToShell()
            try session.shell("echo marker-one > /root/marker")
            try session.syncDisk()
            try session.quit()

            let created = try lab.ok(["snapshot", "create", "before"])
            #expect(created.hasPrefix("snapshot 'before' created (disk only) in "))
            let listed = try lab.listJSON()
            #expect(listed.map(\.name) == ["before"])
            #expect(listed.first?.vm_state_size == 0)
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["before"])
            #expect(try lab.qemuImgSnapshots().map(\.id) == listed.map(\.id))

            session = try lab.bootToShell()
            let changedText = try session.shell("echo marker-two > /root/marker; cat /root/marker")
            #expect(changedText.contains("marker-two"))
            try session.syncDisk()
            try lab.ok(["stop"])
            session.waitStopped()

            let restored = try lab.ok(["snapshot", "restore", "before"])
            #expect(restored == "snapshot 'before' restored (disk only: the next boot starts fresh from that disk)\n")
            #expect(!(try lab.ok(["status"])).contains("resumes"), "a disk-only snapshot must not make the next boot resume")

            session = try lab.bootToShell()
            let back = try session.shell("cat /root/marker")
            #expect(back.contains("marker-one"))
            #expect(!back.contains("marker-two"))
            try session.quit()

            #expect(try lab.ok(["snapshot", "delete", "before"]) == "snapshot 'before' deleted\n")
            #expect(try lab.ok(["snapshot", "list"]) == "no snapshots\n")
            #expect(try lab.qemuImgSnapshots().isEmpty)
        }

        /// Live: snapshot create / restore / delete from another process while the console runs;
        /// the marker reads back; the console shows one `[labrun] …` line for each.
        @Test func liveCreateListRestoreDelete() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            try session.shell("echo live-one > /root/marker; V=kept-in-ram")

            let created = try lab.ok(["snapshot", "create", "live1"])
            #expect(created.hasPrefix("snapshot 'live1' created ("), "\(created)")
            #expect(created.contains("of VM state) in "))
            let notice = try session.expect(" (requested from another terminal)")
            #expect(notice.contains("[labrun] snapshot 'live1' created ("))

            let listed = try lab.listJSON()
            #expect(listed.map(\.name) == ["live1"])
            #expect(listed[0].vm_state_size > 1 << 20, "a live snapshot holds RAM: \(listed[0].vm_state_size)")
            let fromImage = try lab.qemuImgSnapshots()
            #expect(fromImage.map(\.name) == listed.map(\.name))
            #expect(fromImage.map(\.id) == listed.map(\.id))
            #expect(fromImage.map(\.vmStateSize) == listed.map(\.vm_state_size))

            try session.shell("echo live-two > /root/marker; V=changed")
            let restored = try lab.ok(["snapshot", "restore", "live1"])
            #expect(restored.hasPrefix("snapshot 'live1' restored in "))
            #expect(restored.hasSuffix("; the VM runs on from that moment\n"))
            try session.expect("[labrun] snapshot 'live1' restored in ")
            let back = try session.shell("cat /root/marker; echo V=$V")
            #expect(back.contains("live-one"))
            #expect(back.contains("V=kept-in-ram"))
            #expect(!back.contains("live-two"))

            #expect(try lab.ok(["snapshot", "delete", "live1"]) == "snapshot 'live1' deleted\n")
            try session.expect("[labrun] snapshot 'live1' deleted (requested from another terminal)")
            #expect(try lab.ok(["snapshot", "list"]) == "no snapshots\n")
            #expect(try lab.qemuImgSnapshots().isEmpty)
            #expect(session.process.poll() == nil)
            try session.quit()
        }

        /// Offline restore of a snapshot with VM state: the next boot resumes from that moment
        /// (a shell variable set before the snapshot is still set, no fresh boot).
        @Test func offlineRestoreOfAVMStateSnapshotResumesTheNextBoot() throws {
            let lab = try TestLab()
            var session = try lab.bootToShell()
            try session.shell("V=resumed-42; echo vm-one > /root/marker")
            try lab.ok(["snapshot", "create", "vmstate"])
            try session.shell("V=gone; echo vm-two > /root/marker; sync")
            try lab.ok(["stop"])
            session.waitStopped()

            let restored = try lab.ok(["snapshot", "restore", "vmstate"])
            #expect(restored == "snapshot 'vmstate' restored (disk); the next `labrun boot` resumes the VM from that moment\n")
            #expect(try lab.ok(["status"]).contains("the next boot resumes from snapshot 'vmstate'"))
            #expect(try lab.ok(["info"]).contains("the next boot resumes from snapshot 'vmstate'"))

            session = try lab.boot()
            try session.expect("resuming from snapshot 'vmstate'")
            // Keys typed before labrun has the terminal in raw mode are flushed: wait for it.
            try session.expect("[labrun] booting ")
            let out = try session.shell("echo V=$V; cat /root/marker")
            #expect(out.contains("V=resumed-42"))
            #expect(out.contains("vm-one"))
            #expect(!session.text.contains("labrun-guest: ready"), "the guest booted afresh instead of resuming")
            try session.quit()

            // Resuming is one-shot: the boot after that starts fresh.
            #expect(!(try lab.ok(["status"])).contains("resumes"))
            session = try lab.bootToShell()
            #expect(try session.shell("echo V=$V").contains("V=\r"))
            try session.quit()
        }

        /// `list` (table and JSON) and `info` print exactly the same thing live and offline for the
        /// same snapshots, and both match `qemu-img info --output=json -U` (names, ids, sizes).
        @Test func listOutputIsTheSameLiveAndOffline() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "disk-only-1"])
            let session = try lab.bootToShell()
            try session.shell("echo x > /root/marker")
            try lab.ok(["snapshot", "create", "with-ram"])
            try lab.ok(["snapshot", "create", "name-with.more_chars+x"])

            let liveTable = try lab.ok(["snapshot", "list"])
            let liveJSON = try lab.ok(["snapshot", "list", "--json"])
            let liveImage = try lab.qemuImgSnapshots()
            let liveInfo = try lab.ok(["info"])
            try session.quit()

            let offTable = try lab.ok(["snapshot", "list"])
            let offJSON = try lab.ok(["snapshot", "list", "--json"])
            #expect(liveTable == offTable)
            #expect(liveJSON == offJSON)
            // The snapshot the VM is on is marked before its name (issue 15), so names start in column 2.
            #expect(tableShape(liveTable).header.hasPrefix("  NAME                    ID  VM STATE   DATE                 VM CLOCK      FREES     PARENT"))
            #expect(tableShape(liveTable).columnStarts == tableShape(offTable).columnStarts)
            #expect(liveTable.split(separator: "\n").count == 4)

            let decoded = try JSONDecoder().decode([ListedSnapshot].self, from: Data(offJSON.utf8))
            #expect(decoded.map(\.name) == ["disk-only-1", "with-ram", "name-with.more_chars+x"])
            #expect(decoded.map(\.name) == liveImage.map(\.name))
            #expect(decoded.map(\.id) == liveImage.map(\.id))
            #expect(decoded.map(\.vm_state_size) == liveImage.map(\.vmStateSize))
            #expect(decoded.allSatisfy { $0.date.count == 20 && $0.date.hasSuffix("Z") && $0.date.dropFirst(10).hasPrefix("T") })
            #expect(try lab.qemuImgSnapshots() == liveImage)

            // info: the same snapshot block in both states (sizes on disk may move when QEMU exits).
            let offInfo = try lab.ok(["info"])
            func snapshotBlock(_ info: String) -> String { String(info[(info.firstRange(of: "snapshots (in")?.lowerBound ?? info.endIndex)...]) }
            #expect(liveInfo.contains("(VM running)") && offInfo.contains("(VM stopped)"))
            #expect(!snapshotBlock(offInfo).isEmpty)
            #expect(snapshotBlock(liveInfo) == snapshotBlock(offInfo))
        }
    }
}
