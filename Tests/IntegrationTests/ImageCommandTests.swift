import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// Issue 3: reset (with its undo step), check (clean, leaks, repair, refused while running)
/// and info (the three layers and the snapshots, offline and live).
extension SnapshotSuites {
    @Suite struct ImageCommandTests {
        @Test func offlineResetKeepsOneUndoStep() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "old-1"])
            try lab.ok(["snapshot", "create", "old-2"])
            let golden = lab.fileStamp(realPath(repositoryRoot + "/" + Lab.goldenName)!)

            // Without --yes and without a terminal: refused, nothing changed.
            let noTTY = try lab.refused(["reset"])
            #expect(noTTY.contains("--yes"))
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["old-1", "old-2"])
            #expect(!fileExists(lab.root + "/" + Lab.undoName))

            let out = try lab.ok(["reset", "--yes"])
            #expect(out.contains("a fresh \(Lab.runtimeName)") && out.contains("reset --undo"))
            #expect(try lab.ok(["snapshot", "list"]) == "no snapshots\n")
            #expect(fileExists(lab.root + "/" + Lab.undoName))
            let info = try QemuImg().chain(lab.runtime)
            #expect(info.layers.count == 3, "the fresh layer is not on the golden image: \(info.filenames)")

            // Undo brings the old layer back with its snapshots; the fresh one becomes the undo step.
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["old-1", "old-2"])
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.qemuImgSnapshots().isEmpty)
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["old-1", "old-2"])

            // The next reset replaces the undo step.
            try lab.ok(["reset", "--yes"])
            try lab.ok(["snapshot", "create", "fresh"])
            try lab.ok(["reset", "--yes"])
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["fresh"])
            #expect(lab.fileStamp(realPath(repositoryRoot + "/" + Lab.goldenName)!) == golden, "reset wrote the golden image")
        }

        /// `reset` on a running VM resets it in place (CheckpointTests); `--force` stops it and
        /// resets offline instead.
        @Test func resetForceWhileRunningStopsTheVM() throws {
            let lab = try TestLab()
            let session = try lab.bootToShell()
            try session.shell("echo changed > /root/marker")
            try lab.ok(["snapshot", "create", "live-one"])

            // Without --yes and without a terminal: refused before touching anything.
            let notAsked = try lab.refused(["reset"])
            #expect(notAsked.contains("--yes"))
            // --force without --yes and without a terminal: refused before stopping anything.
            let unconfirmed = try lab.refused(["reset", "--force"])
            #expect(unconfirmed.contains("--yes"))
            #expect(session.process.poll() == nil, "reset --force without confirmation stopped the VM")
            #expect(try session.shell("echo alive").contains("alive"))

            let r = try lab.cli(["reset", "--force", "--yes"])
            #expect(r.status == .exited(0), "\(r.stderr)")
            #expect(r.stderr.contains("stopping the running VM first"))
            session.waitStopped()
            #expect(try lab.ok(["snapshot", "list"]) == "no snapshots\n")
            try lab.ok(["reset", "--undo", "--yes"])
            #expect(try lab.qemuImgSnapshots().map(\.name) == ["live-one"])
        }

        @Test func checkCleanLeakyRepairedAndRefusedWhileRunning() throws {
            let lab = try TestLab()
            let clean = try lab.cli(["check"])
            #expect(clean.status == .exited(0))
            #expect(clean.stdout == "\(Lab.runtimeName): no errors\n")

            try setRefcount(lab.runtime, cluster: 0, to: 2)
            let leaky = try lab.cli(["check"])
            #expect(leaky.status == .exited(3))
            #expect(leaky.stdout.contains("1 leaked cluster: wasted space only, no data is harmed"))
            #expect(leaky.stdout.contains("labrun check --repair"))

            let repaired = try lab.cli(["check", "--repair"])
            #expect(repaired.status == .exited(0), "\(repaired.stdout)\(repaired.stderr)")
            #expect(repaired.stdout == "\(Lab.runtimeName): no errors; repaired 1 leaked cluster\n")
            #expect(try lab.cli(["check"]).status == .exited(0))

            let session = try lab.bootToShell()
            for args in [["check"], ["check", "--repair"]] {
                let err = try lab.refused(args)
                #expect(err.contains("the VM is running") && err.contains("labrun stop"))
            }
            try session.quit()
            #expect(try lab.cli(["check"]).stdout == "\(Lab.runtimeName): no errors\n")
        }

        @Test func infoShowsTheThreeLayersAndTheSnapshotsOfflineAndLive() throws {
            let lab = try TestLab()
            try lab.ok(["snapshot", "create", "offline-one"])
            let golden = realPath(repositoryRoot + "/" + Lab.goldenName)!
            let base = realPath(repositoryRoot + "/" + Lab.baseName)!

            func checkText(_ text: String, running: Bool, snapshots: [String]) {
                let lines = text.split(separator: "\n").map(String.init)
                #expect(lines.first == "lab: \(lab.root) (VM \(running ? "running" : "stopped"))")
                #expect(lines.count > 4)
                guard lines.count > 4 else { return }
                #expect(lines[1].hasPrefix("  runtime \(lab.runtime)  qcow2, virtual "))
                #expect(lines[1].hasSuffix("backed by \(golden)"))
                #expect(lines[2].hasPrefix("  golden  \(golden)  qcow2, virtual "))
                #expect(lines[2].hasSuffix("backed by \(Lab.baseName)"))
                #expect(lines[3].hasPrefix("  base    \(base)  raw, virtual "))
                #expect(lines[4] == "snapshots (in \(Lab.runtimeName)):")
                #expect(lines.count > 5 && lines[5].hasPrefix("  NAME "))
                for s in snapshots { #expect(lines.contains { $0.hasPrefix("  \(s) ") }, "\(s) missing from info") }
            }
            struct Info: Decodable {
                struct Layer: Decodable { var filename: String; var format: String }
                struct Snap: Decodable { var name: String }
                var lab: String; var running: Bool; var chain: [Layer]; var snapshots: [Snap]
            }
            func checkJSON(_ json: String, running: Bool, snapshots: [String]) throws {
                let info = try JSONDecoder().decode(Info.self, from: Data(json.utf8))
                #expect(info.lab == lab.root)
                #expect(info.running == running)
                #expect(info.chain.map(\.filename) == [lab.runtime, golden, base])
                #expect(info.chain.map(\.format) == ["qcow2", "qcow2", "raw"])
                #expect(info.snapshots.map(\.name) == snapshots)
            }

            checkText(try lab.ok(["info"]), running: false, snapshots: ["offline-one"])
            try checkJSON(try lab.ok(["info", "--json"]), running: false, snapshots: ["offline-one"])

            let session = try lab.bootToShell()
            try lab.ok(["snapshot", "create", "live-one"])
            checkText(try lab.ok(["info"]), running: true, snapshots: ["offline-one", "live-one"])
            try checkJSON(try lab.ok(["info", "--json"]), running: true, snapshots: ["offline-one", "live-one"])
            try session.quit()
        }
    }
}
