import Glibc
import Testing
@testable import LabrunKit

@Suite(.enabled(if: findExecutable("qemu-img") != nil)) struct Qcow2SnapshotTableTests {
    @Test func readsWhatQemuImgReports() throws {
        var template = Array("/tmp/labrun-q2-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let img = dir + "/i.qcow2"
        let q = try QemuImg()
        #expect(try Spawner.run("qemu-img", ["create", "-q", "-f", "qcow2", img, "16M"]).status.isSuccess)
        #expect(Qcow2SnapshotTable.read(img) == [])
        // Names of several lengths exercise the 8-byte padding between entries.
        for name in ["a", "second-one", "ü-utf8", "x234567", "last"] { try q.createSnapshot(img, name: name) }
        try q.deleteSnapshot(img, name: "second-one")
        let direct = try #require(Qcow2SnapshotTable.read(img))
        #expect(direct == (try q.snapshots(img)))
        #expect(direct.map(\.name) == ["a", "ü-utf8", "x234567", "last"])
        #expect(Qcow2SnapshotTable.read(dir + "/missing") == nil)
        try "not an image".write(toFile: dir + "/raw")
        #expect(Qcow2SnapshotTable.read(dir + "/raw") == nil)
    }
}
