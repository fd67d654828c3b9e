import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3, acceptance 2 and the other entry points: `make snapshot|restore|delete|snapshots`
/// while `labrun boot` runs in another terminal, and `scripts/snapshot.sh`.
extension SnapshotSuites {
    @Suite(.enabled(if: findExecutable("make") != nil, "needs make")) struct SnapshotEntryPointTests {
        @Test func makeSnapshotAndRestoreWhileTheVMRuns() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            try session.shell("echo from-make > /root/marker; V=make-ram")

            let snap = try make(lab, ["snapshot", "NAME=mk-1"])
            #expect(snap.status == .exited(0), "\(snap.stdout)\(snap.stderr)")
            #expect(snap.stdout.hasPrefix("snapshot 'mk-1' created ("), "\(snap.stdout)")
            #expect(!snap.stdout.contains("swift build"), "make snapshot rebuilt labrun under the running VM")
            try session.expect("[labrun] snapshot 'mk-1' created (")
            let line = try session.expect("\r\n")
            #expect(line.hasSuffix(" s (requested from another terminal)\r\n"), "\(line.debugDescription)")
            #expect(!line.dropLast(2).contains("\n") && !line.dropLast(2).contains("\r"), "not one line: \(line.debugDescription)")

            try session.shell("echo changed > /root/marker; V=changed")
            let restore = try make(lab, ["restore", "NAME=mk-1"])
            #expect(restore.status == .exited(0), "\(restore.stdout)\(restore.stderr)")
            #expect(restore.stdout.hasPrefix("snapshot 'mk-1' restored in "))
            try session.expect("[labrun] snapshot 'mk-1' restored in ")
            let back = try session.shell("cat /root/marker; echo V=$V")
            #expect(back.contains("from-make") && back.contains("V=make-ram"))

            let list = try make(lab, ["snapshots"])
            #expect(list.status == .exited(0))
            #expect(list.stdout == (try lab.ok(["snapshot", "list"])))
            #expect(list.stdout.contains("mk-1"))

            // Without NAME: the usage line and a failure, nothing run.
            for target in ["snapshot", "restore", "delete"] {
                for extra in [[], ["NAME="]] {
                    let r = try make(lab, [target] + extra)
                    #expect(r.status != .exited(0))
                    #expect(r.stderr.hasPrefix("usage: make \(target) NAME=<name>\n"), "\(r.stderr)")
                }
            }
            // A name make itself would expand or a shell would run is passed verbatim to labrun,
            // which refuses it; nothing is executed.
            unlink("/tmp/pwned")
            for name in ["$(shell touch /tmp/pwned)", "$(touch /tmp/pwned)", "x;touch /tmp/pwned", "`touch /tmp/pwned`", "a b", "it's"] {
                let r = try make(lab, ["snapshot", "NAME=\(name)"])
                #expect(r.status != .exited(0), "make snapshot NAME=\(name) succeeded")
                #expect(r.stderr.hasPrefix("labrun: snapshot name '\(name)' "), "\(name): \(r.stderr)")
            }
            #expect(!fileExists("/tmp/pwned"), "a snapshot name was executed")

            let delete = try make(lab, ["delete", "NAME=mk-1"])
            #expect(delete.status == .exited(0), "\(delete.stderr)")
            #expect(try lab.qemuImgSnapshots().isEmpty)
            #expect(try session.shell("echo alive").contains("alive"))
            try session.quit()

            // Stopped: the same targets work offline.
            let offline = try make(lab, ["snapshot", "NAME=mk-off"])
            #expect(offline.status == .exited(0) && offline.stdout.contains("(disk only)"), "\(offline.stderr)")
            #expect(try make(lab, ["info"]).stdout.contains("mk-off"))
            #expect(try make(lab, ["check"]).status == .exited(0))
            // make reset asks first; without a terminal it refuses and changes nothing.
            let reset = try make(lab, ["reset"])
            #expect(reset.status != .exited(0) && reset.stderr.contains("--yes"), "\(reset.stderr)")
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["mk-off"])
        }

        @Test func snapshotScriptIsAThinWrapper() throws {
            let lab = try TestLab()
            let script = repositoryRoot + "/scripts/snapshot.sh"
            #expect(access(script, X_OK) == 0, "scripts/snapshot.sh is not executable")

            #expect(try snapshotScript(lab, ["list"]).stdout == "no snapshots\n")
            let created = try snapshotScript(lab, ["create", "via-script"])
            #expect(created.status == .exited(0) && created.stdout.hasPrefix("snapshot 'via-script' created"), "\(created.stderr)")
            let list = try snapshotScript(lab, ["list"])
            #expect(list.stdout == (try lab.ok(["snapshot", "list"])))
            #expect(try snapshotScript(lab, ["list", "--json"]).stdout == (try lab.ok(["snapshot", "list", "--json"])))
            let info = try snapshotScript(lab, ["info"])
            #expect(info.status == .exited(0) && info.stdout.contains("via-script") && info.stdout.contains("runtime "))
            #expect(try snapshotScript(lab, ["restore", "via-script"]).status == .exited(0))

            // labrun's own refusals and exit codes come through unchanged; names are never evaluated.
            unlink("/tmp/pwned")
            for name in ["$(touch /tmp/pwned)", "a;touch /tmp/pwned", "`touch /tmp/pwned`", "a b"] {
                let r = try snapshotScript(lab, ["create", name])
                #expect(r.status == .exited(1), "\(name): \(r.status)")
                #expect(r.stderr.hasPrefix("labrun: snapshot name '\(name)'"), "\(r.stderr)")
            }
            #expect(!fileExists("/tmp/pwned"))
            #expect(try snapshotScript(lab, ["restore", "missing"]).stderr == "labrun: no snapshot named 'missing'; existing: via-script\n")

            // Usage errors: exit 2 with the usage line.
            for args in [[], ["create"], ["restore"], ["delete"], ["frobnicate", "x"], ["create", "a", "b"]] {
                let r = try snapshotScript(lab, args)
                #expect(r.status == .exited(2), "\(args): \(r.status)")
                #expect(r.stderr.hasPrefix("usage: "), "\(args): \(r.stderr)")
                #expect(r.stdout.isEmpty)
            }

            #expect(try snapshotScript(lab, ["delete", "via-script"]).status == .exited(0))
            #expect(try lab.qemuImgSnapshots().isEmpty)

            // Live too: the wrapper reaches the running supervisor like labrun does.
            let session = try lab.bootToShell()
            let live = try snapshotScript(lab, ["create", "live-script"])
            #expect(live.status == .exited(0) && live.stdout.contains("of VM state"), "\(live.stderr)")
            try session.expect("[labrun] snapshot 'live-script' created (")
            try session.quit()

            // No labrun to run: says to build it.
            let none = try runWithEnvironment(["LABRUN_BIN": "/nonexistent/labrun", "LABRUN_LAB": lab.root], script, ["list"])
            #expect(none.status != .exited(0))
            #expect(none.stderr.contains("make build"), "\(none.stderr)")
        }
    }
}
