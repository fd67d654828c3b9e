import Glibc
import Testing
@testable import LabrunKit

@Suite struct VMShapeTests {
    @Test func recordsByNameAndTimeAndForgetsDeletedSnapshots() throws {
        var template = Array("/tmp/labrun-shape-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? Spawner.run("rm", ["-rf", dir]) }
        let shapes = SnapshotShapes(lab: Lab(root: dir, config: LabConfig()))
        let small = VMShape(arch: "x86_64", machine: "pc", cpu: "default", memoryMiB: 256, cpus: 1, share: false)
        let big = VMShape(arch: "x86_64", machine: "pc", cpu: "default", memoryMiB: 1024, cpus: 2, share: true)
        let a = SnapshotInfo(id: "1", name: "a", vmStateSize: 10, dateSeconds: 100)
        let aAgain = SnapshotInfo(id: "2", name: "a", vmStateSize: 10, dateSeconds: 200)
        shapes.record(small, for: a, existing: [a])
        #expect(shapes.shape(of: a) == small)
        // The same name re-created later does not inherit the old record.
        #expect(shapes.shape(of: aAgain) == nil)
        shapes.record(big, for: aAgain, existing: [aAgain])
        #expect(shapes.shape(of: aAgain) == big)
        #expect(shapes.shape(of: a) == nil, "records of snapshots that are gone are dropped")
        #expect(big.bootFlags == "--mem 1024M --cpus 2 --shared --accel tcg")
    }
}
