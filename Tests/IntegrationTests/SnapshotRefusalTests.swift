import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3, acceptance 3 (and the name rules of its Semantics): every bad-name class is
/// refused with exit 1 and one line on both paths, and nothing changes; an existing name is
/// refused unless --force; restoring or deleting a missing name is refused naming the others.
extension SnapshotSuites {
    @Suite struct SnapshotRefusalTests {
        static let pwned = "/tmp/pwned"

        /// One name per class the issue lists, with what the refusal must mention.
        static let badNames: [(name: String, why: String)] = [
            ("", "empty"),
            ("123", "all digits"),
            ("007", "all digits"),
            (String(repeating: "x", count: 256), "256 bytes"),
            (String(repeating: "é", count: 128), "256 bytes"),
            ("two words", "whitespace"),
            ("tab\tname", "control character U+0009"),
            ("new\nline", "control character U+000A"),
            ("nbsp\u{00A0}name", "whitespace"),
            ("it's", "quote"),
            ("say\"hi\"", "quote"),
            ("back`tick`", "quote"),
            ("back\\slash", "backslash"),
            ("bell\u{07}", "control character U+0007"),
            ("esc\u{1B}[31m", "control character U+001B"),
            ("del\u{7F}", "control character U+007F"),
            ("$(touch \(pwned))", "shell character '$'"),
            ("a;touch \(pwned)", "shell character ';'"),
            ("a;b", "shell character ';'"),
            ("a|b", "shell character '|'"),
        ]

        /// Refuses every bad name for create, restore and delete, and returns nothing changed.
        func refuseAll(_ lab: TestLab, path: String) throws {
            unlink(Self.pwned)
            let before = try lab.qemuImgListing()
            let listBefore = try lab.ok(["snapshot", "list"])
            for (name, why) in Self.badNames {
                for verb in ["create", "restore", "delete"] {
                    let err = try lab.refused(["snapshot", verb, name])
                    #expect(err.hasPrefix("labrun: snapshot name"), "\(path) \(verb) \(name.debugDescription): \(err)")
                    #expect(err.contains(why), "\(path) \(verb) \(name.debugDescription) should mention \(why): \(err)")
                }
                let forced = try lab.refused(["snapshot", "create", "--force", name])
                #expect(forced.contains(why))
            }
            // A name that looks like an option: given after `--`, it reaches the name rules.
            for verb in ["create", "restore", "delete"] {
                #expect(try lab.refused(["snapshot", verb, "--", "-rf"]).contains("starts with '-'"))
            }
            #expect(try lab.qemuImgListing() == before, "\(path): the image's snapshots changed")
            #expect(try lab.ok(["snapshot", "list"]) == listBefore)
            #expect(!fileExists(Self.pwned), "\(path): a name was run by a shell")
        }

        @Test func badNamesAreRefusedOffline() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "good-one"])
            let image = lab.fileStamp(lab.runtime)
            try refuseAll(lab, path: "offline")
            #expect(lab.fileStamp(lab.runtime) == image, "the runtime image was written")
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["good-one"])
        }

        @Test func badNamesAreRefusedLiveAndByTheSupervisorItself() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            try lab.ok(["snapshot", "create", "good-one"])
            try refuseAll(lab, path: "live")

            // The supervisor validates too (Ctrl-a s and any other client reach it without the CLI).
            let socket = RunDirectory(lab: realPath(lab.root)!).controlSocket
            for (name, _) in Self.badNames {
                for op in [SnapshotRequest.create(name: name, force: true), .restore(name: name), .delete(name: name)] {
                    let fd = try #require(ControlClient.connect(socket))
                    let r = try ControlClient.send(ControlRequest(.snapshot(op)), on: fd)
                    #expect(!r.ok && r.exitCode == 1, "supervisor accepted \(op) \(name.debugDescription)")
                    #expect(r.message?.hasPrefix("snapshot name") == true, "\(r.message ?? "")")
                }
            }
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["good-one"])
            #expect(!fileExists(Self.pwned))
            #expect(try session.shell("echo alive").contains("alive"))
            try session.quit()
        }

        /// An existing name is refused unless --force; a missing one is refused listing the
        /// existing names; the messages are the same on both paths.
        @Test func existingAndMissingNamesOnBothPaths() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "keep"])
            let offDup = try lab.refused(["snapshot", "create", "keep"])
            #expect(offDup.contains("'keep' already exists") && offDup.contains("--force"))
            let forced = try lab.ok(["snapshot", "create", "--force", "keep"])
            #expect(forced.hasPrefix("snapshot 'keep' created"))
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["keep"], "--force must replace, not duplicate")
            let offRestore = try lab.refused(["snapshot", "restore", "nope"])
            let offDelete = try lab.refused(["snapshot", "delete", "nope"])
            #expect(offRestore == "labrun: no snapshot named 'nope'; existing: keep\n")
            #expect(offDelete == offRestore)
            // The name live restores use for their undo snapshot is kept for labrun.
            let reserved = try lab.refused(["snapshot", "create", SnapshotName.restoreUndo])
            #expect(reserved.contains("kept for labrun's own use"))

            let session = try lab.bootToShell()
            let liveDup = try lab.refused(["snapshot", "create", "keep"])
            #expect(liveDup == offDup, "the duplicate-name refusal differs between paths")
            let liveForced = try lab.ok(["snapshot", "create", "keep", "--force"])
            #expect(liveForced.contains("of VM state"))
            let after = try lab.qemuImgSnapshots()
            #expect(after.map(\.name) == ["keep"], "--force must replace, not duplicate: \(after)")
            #expect(after.first.map { $0.vmStateSize > 0 } == true)
            #expect(try lab.refused(["snapshot", "restore", "nope"]) == offRestore)
            #expect(try lab.refused(["snapshot", "create", SnapshotName.restoreUndo]) == reserved)
            #expect(try lab.refused(["snapshot", "delete", "nope"]) == offRestore)
            try session.quit()

            // Nothing at all yet: the refusal says so, the same way on both paths.
            let empty = try TestLab()
            let none = try empty.refused(["snapshot", "restore", "nope"])
            #expect(none == "labrun: no snapshot named 'nope'; there are no snapshots yet\n")
            let s2 = try empty.bootToShell()
            #expect(try empty.refused(["snapshot", "delete", "nope"]) == none)
            try s2.quit()
        }
    }
}
