import Glibc
import Testing
@testable import LabrunKit

/// Helpers shared by the Qcow2Space and Qcow2SnapshotRename tests.
extension Scratch {
    /// A qcow2 image of `size` made with `options` (qemu-img -o).
    func makeQcow2(_ name: String, size: String = "64M", options: String = "") throws -> String {
        let p = path(name)
        try run("qemu-img", ["create", "-q", "-f", "qcow2"] + (options.isEmpty ? [] : ["-o", options]) + [p, size])
        return p
    }

    /// Runs qemu-io commands on a qcow2 image and requires them to succeed.
    func io(_ image: String, _ commands: String...) throws {
        try run("qemu-io", ["-f", "qcow2"] + commands.flatMap { ["-c", $0] } + [image])
    }

    func snapshot(_ image: String, _ flag: String, _ name: String) throws {
        try run("qemu-img", ["snapshot", flag, name, image])
    }

    /// qemu-img check's verdict, required clean: no corruption, no leak.
    func requireClean(_ image: String, _ comment: Comment? = nil) throws {
        let result = try QemuImg().check(image, repair: false)
        #expect(result.status == .clean, comment)
    }

    func copy(_ from: String, _ to: String) throws -> String {
        try run("cp", [from, path(to)])
        return path(to)
    }
}

@Suite(.enabled(if: hasQemuImg)) struct Qcow2SpaceTests {
    /// Overlapping, distinct and compressed writes between up to four snapshots; then, for
    /// each snapshot on its own copy of the image, the prediction against what
    /// `qemu-img snapshot -d` actually frees (clusters with a refcount above zero, before and
    /// after), and qemu-img check's verdict that the image stayed clean.
    @Test(arguments: [
        "", "refcount_bits=2", "refcount_bits=4", "refcount_bits=8", "refcount_bits=32", "refcount_bits=64",
        "extended_l2=on", "compat=0.10", "cluster_size=4096", "cluster_size=512", "cluster_size=2M",
    ])
    func predictionMatchesDeletion(options: String) throws {
        try withScratch { s in
            let image = try s.makeQcow2("disk.qcow2", options: options)
            // Each snapshot adds a count to the clusters it shares: 2-bit refcounts (max 3)
            // allow the active layer and two snapshots.
            let snapshots = options == "refcount_bits=2" ? 2 : 4
            // Compressed clusters share host clusters, each sharer adding a count: too many for
            // 2- and 4-bit refcounts; and qemu-io compresses whole clusters only.
            let compress = !["refcount_bits=2", "refcount_bits=4", "cluster_size=2M"].contains(options) ? "-c " : ""
            let steps: [[String]] = [
                ["write -P 0x11 0 4M", "write -P 0x12 40M 64k"],
                ["write -P 0x22 1M 2M", "write -P 0x23 8M 1M", "write \(compress)-P 0x24 20M 256k"],
                ["write -P 0x33 0 512k", "write \(compress)-P 0x34 24M 512k", "write -z 40M 64k"],
                ["write -P 0x44 2M 4M", "discard 8M 512k"],
            ]
            for (i, step) in steps.prefix(snapshots).enumerated() {
                try s.run("qemu-io", ["-f", "qcow2"] + step.flatMap { ["-c", $0] } + [image])
                try s.snapshot(image, "-c", "s\(i + 1)")
            }
            try s.io(image, "write -P 0x55 3M 1M")
            try s.requireClean(image)
            let report = try #require(Qcow2Space.measure(image))
            #expect(report.snapshots.map(\.name) == (1...snapshots).map { "s\($0)" })
            #expect(report.snapshots.map(\.id) == (1...snapshots).map { "\($0)" })
            #expect(report.snapshots.allSatisfy { $0.vmStateSize == 0 })
            #expect(report.fileBytes == UInt64(FileStatus.of(image)!.size))
            #expect(report.allocatedBytes > 0 && report.allocatedBytes <= (report.fileBytes + UInt64(report.clusterSize) - 1) / UInt64(report.clusterSize) * UInt64(report.clusterSize))
            // Every snapshot holds at least its L1 table; s1 alone holds the 2 MiB that were
            // overwritten before s2.
            #expect(report.snapshots.allSatisfy { $0.exclusiveBytes >= UInt64(report.clusterSize) }, "\(report)")
            #expect(report.snapshots[0].exclusiveBytes >= 2 << 20, "\(report)")
            for snap in report.snapshots {
                let copy = try s.copy(image, "copy-\(snap.name).qcow2")
                let before = try #require(Qcow2Space.usedClusters(copy))
                #expect(before * UInt64(report.clusterSize) == report.allocatedBytes)
                try s.snapshot(copy, "-d", snap.name)
                let after = try #require(Qcow2Space.usedClusters(copy))
                #expect((before - after) * UInt64(report.clusterSize) == snap.deleteFreesBytes, "\(options) \(snap.name)")
                try s.requireClean(copy)
            }
        }
    }

    /// Deleting snapshots one after another: each prediction made on the image as it is then.
    @Test func predictionHoldsThroughSuccessiveDeletions() throws {
        try withScratch { s in
            let image = try s.makeQcow2("disk.qcow2", options: "cluster_size=16384")
            for i in 1...4 {
                try s.io(image, "write -P 0x\(i)\(i) \(i - 1)M 2M", "write -P 0x\(i)0 30M \(i * 64)k")
                try s.snapshot(image, "-c", "s\(i)")
            }
            for name in ["s2", "s4", "s1", "s3"] {
                let report = try #require(Qcow2Space.measure(image))
                let snap = try #require(report.snapshots.first { $0.name == name })
                let before = try #require(Qcow2Space.usedClusters(image))
                try s.snapshot(image, "-d", name)
                let after = try #require(Qcow2Space.usedClusters(image))
                #expect((before - after) * UInt64(report.clusterSize) == snap.deleteFreesBytes, "\(name)")
            }
            #expect(try #require(Qcow2Space.measure(image)).snapshots.isEmpty)
            try s.requireClean(image)
        }
    }

    /// A snapshot that shares everything with the active layer and the other snapshot holds
    /// only its L1 table; the last snapshot's deletion also frees the snapshot table.
    @Test func aSnapshotSharingEverythingHoldsOnlyItsL1Table() throws {
        try withScratch { s in
            let image = try s.makeQcow2("disk.qcow2")
            try s.io(image, "write -P 0x5a 0 8M")
            try s.snapshot(image, "-c", "only")
            var report = try #require(Qcow2Space.measure(image))
            let cluster = UInt64(report.clusterSize)
            #expect(report.snapshots.first?.exclusiveBytes == cluster)
            #expect(report.snapshots.first?.deleteFreesBytes == 2 * cluster)
            try s.snapshot(image, "-c", "twin")
            report = try #require(Qcow2Space.measure(image))
            #expect(report.snapshots.map(\.exclusiveBytes) == [cluster, cluster])
            #expect(report.snapshots.map(\.deleteFreesBytes) == [cluster, cluster])
            let before = try #require(Qcow2Space.usedClusters(image))
            try s.snapshot(image, "-d", "twin")
            #expect(try #require(Qcow2Space.usedClusters(image)) == before - 1)
            // Once the active layer diverges, the snapshot alone keeps the old data.
            try s.io(image, "write -P 0x6b 0 8M")
            report = try #require(Qcow2Space.measure(image))
            // 8 MiB of data clusters and the L2 table that maps them, plus the L1 table.
            #expect(report.snapshots.first?.exclusiveBytes == (8 << 20) + 2 * cluster)
        }
    }

    @Test func anImageWithoutSnapshotsCountsItsClusters() throws {
        try withScratch { s in
            let image = try s.makeQcow2("disk.qcow2", options: "refcount_bits=1")
            try s.io(image, "write -P 0x5a 0 1M")
            let report = try #require(Qcow2Space.measure(image))
            #expect(report.snapshots.isEmpty)
            // Header, refcount table, refcount block, L1 table, one L2 table, 16 data clusters:
            // qemu-img check's image end for a file with no holes.
            let check = try s.run("qemu-img", ["check", "--output=json", image]).stdout
            #expect(check.contains("\"image-end-offset\": \(report.allocatedBytes)"))
            #expect(report.allocatedBytes == 21 * 65536)
        }
    }

    /// A corrupt, truncated, dirty or foreign file gives nil, never a crash.
    @Test func inconsistentFilesGiveNil() throws {
        try withScratch { s in
            // 2 GiB: L1 tables of four entries (an L2 table maps 512 MiB).
            let image = try s.makeQcow2("disk.qcow2", size: "2G")
            try s.io(image, "write -P 0x11 0 2M", "write -P 0x12 1G 64k")
            try s.snapshot(image, "-c", "a")
            try s.io(image, "write -P 0x22 0 1M")
            try s.snapshot(image, "-c", "b")
            let good = s.bytes(image)
            #expect(Qcow2Space.measure(image) != nil)
            func variant(_ name: String, _ edit: (inout [UInt8]) -> Void) throws -> String {
                var bytes = good
                edit(&bytes)
                let p = s.path(name)
                try "".write(toFile: p)
                try s.write(p, bytes)
                return p
            }
            func put(_ bytes: inout [UInt8], _ at: Int, _ width: Int, _ value: UInt64) {
                for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - k))) }
            }
            let u64 = { (at: Int) in good[at..<at + 8].reduce(0) { $0 << 8 | Int($1) } }
            let table = u64(64)
            let firstL1 = u64(table)
            let refcountBlock = u64(u64(48))

            #expect(Qcow2Space.measure(s.path("missing")) == nil)
            #expect(Qcow2Space.measure(try variant("empty", { $0 = [] })) == nil)
            #expect(Qcow2Space.measure(try variant("truncated-header", { $0 = Array($0.prefix(50)) })) == nil)
            #expect(Qcow2Space.measure(try variant("truncated", { $0 = Array($0.prefix($0.count / 2)) })) == nil)
            #expect(Qcow2Space.measure(try variant("garbage", { $0 = $0.map { $0 ^ 0xA5 } })) == nil)
            #expect(Qcow2Space.measure(try variant("dirty", { $0[79] |= 1 })) == nil)
            #expect(Qcow2Space.measure(try variant("corrupt-bit", { $0[79] |= 2 })) == nil)
            #expect(Qcow2Space.measure(try variant("unknown-feature", { $0[72] |= 0x80 })) == nil)
            #expect(Qcow2Space.measure(try variant("refcount-order-7", { put(&$0, 96, 4, 7) })) == nil)
            #expect(Qcow2Space.measure(try variant("cluster-bits-30", { put(&$0, 20, 4, 30) })) == nil)
            #expect(Qcow2Space.measure(try variant("huge-refcount-table", { put(&$0, 56, 4, 0xFFFF_FFFF) })) == nil)
            #expect(Qcow2Space.measure(try variant("refcount-table-outside", { put(&$0, 48, 8, 1 << 50) })) == nil)
            #expect(Qcow2Space.measure(try variant("snapshots-outside", { put(&$0, 64, 8, 1 << 40) })) == nil)
            #expect(Qcow2Space.measure(try variant("too-many-snapshots", { put(&$0, 60, 4, 70000) })) == nil)
            #expect(Qcow2Space.measure(try variant("l1-unaligned", { put(&$0, table, 8, UInt64(firstL1 + 8)) })) == nil)
            #expect(Qcow2Space.measure(try variant("l1-huge", { put(&$0, table + 8, 4, 0xFFFF_FFFF) })) == nil)
            // The first snapshot's first L2 table moved into the header's cluster: unaligned.
            #expect(Qcow2Space.measure(try variant("l2-unaligned", { put(&$0, firstL1, 8, 0x200) })) == nil)
            // The same L2 table twice in one L1.
            #expect(Qcow2Space.measure(try variant("l2-twice", { put(&$0, firstL1 + 8, 8, UInt64(truncatingIfNeeded: u64(firstL1))) })) == nil)
            // A refcount too low for the references made: every cluster's count zeroed.
            #expect(Qcow2Space.measure(try variant("refcounts-zero", {
                for i in 0..<(65536 / 2) { put(&$0, refcountBlock + 2 * i, 2, 0) }
            })) == nil)
        }
    }

    /// Timing on a 1 GiB image with four snapshots (LABRUN_QCOW2_BENCH=1: writing the image
    /// takes a while).
    @Test(.enabled(if: environmentValue("LABRUN_QCOW2_BENCH") != nil))
    func benchmarkOneGigabyteFourSnapshots() throws {
        try withScratch { s in
            let image = try s.makeQcow2("big.qcow2", size: "4G")
            try s.io(image, "write -P 0x11 0 1G")
            for i in 1...4 {
                try s.io(image, "write -P 0x2\(i) \(i * 128)M 128M")
                try s.snapshot(image, "-c", "s\(i)")
            }
            var best = Double.infinity
            for _ in 0..<5 {
                let start = monotonicSeconds()
                _ = try #require(Qcow2Space.measure(image))
                best = min(best, monotonicSeconds() - start)
            }
            let report = try #require(Qcow2Space.measure(image))
            print("qcow2 space: \(report.fileBytes >> 20) MiB file, \(report.snapshots.count) snapshots, best of 5: \(Int(best * 1000)) ms; exclusive MiB:",
                  report.snapshots.map { $0.exclusiveBytes >> 20 })
        }
    }
}
