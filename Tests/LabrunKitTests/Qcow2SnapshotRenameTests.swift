import Glibc
import Testing
@testable import LabrunKit

@Suite(.enabled(if: hasQemuImg)) struct Qcow2SnapshotRenameTests {
    /// Three snapshots over different data.
    func makeImage(_ s: Scratch, options: String = "") throws -> String {
        let image = try s.makeQcow2("disk.qcow2", size: "16M", options: options)
        for (i, name) in ["alpha", "beta", "gamma"].enumerated() {
            try s.io(image, "write -P 0x\(i + 1)\(i + 1) 0 1M")
            try s.snapshot(image, "-c", name)
        }
        try s.io(image, "write -P 0x99 0 1M")
        return image
    }

    /// Each entry's bytes as stored, and the table's offset.
    func entries(_ image: String) throws -> (raw: [[UInt8]], offset: UInt64) {
        let fd = try FileDescriptor.open(image, FileDescriptor.readOnly)
        defer { fd.close() }
        let file = try #require(Qcow2File(fd))
        return (try #require(file.snapshotTable()).entries.map(\.raw), file.snapshotsOffset)
    }

    @Test(arguments: ["", "refcount_bits=2", "refcount_bits=4", "refcount_bits=8", "refcount_bits=64", "compat=0.10", "extended_l2=on"])
    func renameKeepsEverythingButTheName(options: String) throws {
        try withScratch { s in
            let image = try makeImage(s, options: options)
            let q = try QemuImg()
            let before = try q.snapshots(image)
            let (rawBefore, offsetBefore) = try entries(image)
            let used = try #require(Qcow2Space.usedClusters(image))

            #expect(try Qcow2SnapshotRename.rename(image, from: "beta", to: "beta-renamed-to-something-longer") == .newClusters)

            let after = try q.snapshots(image)
            var expected = before
            expected[1].name = "beta-renamed-to-something-longer"
            #expect(after == expected)
            #expect(Qcow2SnapshotTable.read(image) == expected)
            let (rawAfter, offsetAfter) = try entries(image)
            #expect(offsetAfter != offsetBefore)
            #expect(rawAfter[0] == rawBefore[0] && rawAfter[2] == rawBefore[2])
            // The renamed entry: the same bytes up to the name length, then the id, then the new name.
            let extra = Int(rawBefore[1].be(36, 4)), idSize = Int(rawBefore[1].be(12, 2))
            #expect(rawAfter[1][0..<14] == rawBefore[1][0..<14])
            #expect(rawAfter[1][16..<(40 + extra + idSize)] == rawBefore[1][16..<(40 + extra + idSize)])
            // The new table took one new cluster and gave the old one back: no leak.
            #expect(try #require(Qcow2Space.usedClusters(image)) == used)
            try s.requireClean(image, "\(options)")

            // Applying the renamed snapshot brings back its data; the old name is gone.
            try s.snapshot(image, "-a", "beta-renamed-to-something-longer")
            #expect(try s.qemuIO(image, "read -P 0x22 0 1M"))
            #expect(throws: LabrunError.self) { try q.applySnapshot(image, name: "beta") }
            try s.snapshot(image, "-a", "gamma")
            #expect(try s.qemuIO(image, "read -P 0x33 0 1M"))
            try s.snapshot(image, "-d", "beta-renamed-to-something-longer")
            try s.requireClean(image)
            #expect(try q.snapshots(image).map(\.name) == ["alpha", "gamma"])
        }
    }

    /// Growing names, many times, over a table that spans several 4 KiB clusters.
    @Test func renamingToLongerNamesManyTimes() throws {
        try withScratch { s in
            let image = try s.makeQcow2("disk.qcow2", size: "16M", options: "cluster_size=4096")
            for i in 0..<30 {
                try s.io(image, "write -P \(i + 1) \(i * 64)k 64k")
                try s.snapshot(image, "-c", "s\(i)")
            }
            let q = try QemuImg()
            let original = try q.snapshots(image)
            var names = original.map(\.name)
            for round in 0..<40 {
                let i = (round * 7) % names.count
                let new = "r\(round)-" + String(repeating: "x", count: min(240, round * 6))
                try Qcow2SnapshotRename.rename(image, from: names[i], to: new)
                names[i] = new
            }
            try s.requireClean(image)
            let renamed = try q.snapshots(image)
            #expect(renamed.map(\.name) == names)
            #expect(renamed.map(\.id) == original.map(\.id))
            #expect(renamed.map(\.dateSeconds) == original.map(\.dateSeconds))
            // The table now spans more than one cluster.
            let fd = try FileDescriptor.open(image, FileDescriptor.readOnly)
            defer { fd.close() }
            #expect(try #require(Qcow2File(fd)?.snapshotTable()).size > 4096)
            for (i, name) in names.enumerated() where i % 5 == 0 {
                try s.snapshot(image, "-a", name)
                #expect(try s.qemuIO(image, "read -P \(i + 1) \(i * 64)k 64k"), "\(name)")
            }
            try s.requireClean(image)
        }
    }

    @Test func refusals() throws {
        try withScratch { s in
            let image = try makeImage(s)
            let bytes = s.bytes(image)
            func refusal(_ old: String, _ new: String) -> String? {
                do {
                    try Qcow2SnapshotRename.rename(image, from: old, to: new)
                    return nil
                } catch {
                    return error.message
                }
            }
            #expect(refusal("missing", "new-name")?.contains("has no snapshot named 'missing'") == true)
            #expect(refusal("alpha", "gamma")?.contains("a snapshot named 'gamma' already exists") == true)
            #expect(refusal("alpha", "alpha")?.contains("already exists") == true)
            #expect(refusal("alpha", "2")?.contains("all digits") == true)
            #expect(refusal("alpha", "has space")?.contains("whitespace") == true)
            #expect(refusal("alpha", "")?.contains("empty") == true)
            #expect(refusal("alpha", SnapshotName.restoreUndo)?.contains("labrun's own use") == true)
            #expect(refusal("alpha", String(repeating: "n", count: 256))?.contains("256 bytes") == true)
            #expect(throws: LabrunError.self) { try Qcow2SnapshotRename.rename(s.path("nope.qcow2"), from: "a", to: "b") }
            try "not an image".write(toFile: s.path("raw"))
            do throws(LabrunError) {
                try Qcow2SnapshotRename.rename(s.path("raw"), from: "a", to: "b")
                Issue.record("renamed in a raw file")
            } catch {
                #expect(error.message.contains("not a qcow2 image labrun can rewrite"))
            }
            // Every refusal left the file as it was.
            #expect(s.bytes(image) == bytes)
            // Names made by qemu-img that labrun would not accept can still be renamed away from.
            try s.snapshot(image, "-c", "odd name")
            try Qcow2SnapshotRename.rename(image, from: "odd name", to: "odd-name")
            #expect(try QemuImg().snapshots(image).last?.name == "odd-name")
            // Two snapshots of one name (qemu-img -c allows it): ambiguous.
            try s.snapshot(image, "-c", "twice")
            try s.snapshot(image, "-c", "twice")
            #expect(refusal("twice", "once")?.contains("2 snapshots named 'twice'") == true)
            try s.requireClean(image)
        }
    }

    /// A running qemu-io holds QEMU's locks: the rename is refused, naming it, and the image is
    /// untouched; while a rename holds its locks, qemu-img cannot open the image.
    @Test func refusesAnImageInUseAndLocksOutQemu() throws {
        try withScratch { s in
            let image = try makeImage(s)
            let bytes = s.bytes(image)
            var config = SpawnConfiguration(executable: "qemu-io", arguments: ["-f", "qcow2", "-c", "sleep 20000", image])
            config.standardInput = .devNull
            config.standardOutput = .devNull
            config.standardError = .devNull
            let holder = try Spawner.spawn(config)
            defer {
                holder.send(.kill)
                holder.wait()
            }
            let deadline = monotonicSeconds() + 5
            while !ImageLock.isLocked(image) && holder.poll() == nil && monotonicSeconds() < deadline { sleepSeconds(0.02) }
            try #require(ImageLock.isLocked(image))
            do throws(LabrunError) {
                try Qcow2SnapshotRename.rename(image, from: "alpha", to: "renamed")
                Issue.record("renamed an image in use")
            } catch {
                #expect(error.message.hasPrefix("cannot rename snapshot 'alpha' to 'renamed': \(image) is in use by pid \(holder.pid)"))
                #expect(!error.message.contains("\n"))
            }
            #expect(holder.poll() == nil)
            holder.send(.kill)
            holder.wait()
            #expect(s.bytes(image) == bytes)

            let fd = try FileDescriptor.open(image, FileDescriptor.readWrite)
            #expect(Qcow2SnapshotRename.takeLocks(fd))
            let out = try Spawner.run("qemu-img", ["snapshot", "-l", image])
            #expect(!out.status.isSuccess && out.stderr.contains("lock"))
            fd.close()
            #expect(try Spawner.run("qemu-img", ["snapshot", "-l", image]).status.isSuccess)
        }
    }

    /// The allocator finds runs only inside existing refcount blocks, never at cluster 0.
    @Test func freeRunStaysInsideRefcountBlocks() {
        // 512-byte clusters, 16-bit refcounts: 256 entries per block.
        func refcounts(_ blocks: [Int: [UInt16]]) -> Qcow2File.Refcounts {
            var bytes: [Int: [UInt8]] = [:]
            for (i, counts) in blocks { bytes[i] = counts.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
            let table = (0..<4).map { blocks[$0] == nil ? UInt64(0) : UInt64(0x10000 + $0 * 512) }
            return Qcow2File.Refcounts(order: 4, blockBits: 8, table: table, blocks: bytes)
        }
        let full = [UInt16](repeating: 1, count: 256)
        var holes = full
        holes[10] = 0; holes[20] = 0; holes[21] = 0
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: full]), count: 1) == nil)
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: holes]), count: 1) == 10)
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: holes]), count: 2) == 20)
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: holes]), count: 3) == nil)
        var tail = full
        tail[255] = 0
        // A run across two adjacent blocks, but not across a missing one.
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: tail, 1: [0] + full.dropFirst()]), count: 2) == 255)
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: tail, 2: [0] + full.dropFirst()]), count: 2) == nil)
        #expect(Qcow2SnapshotRename.freeRun(refcounts([0: [0] + full.dropFirst()]), count: 1) == nil)
    }

    /// Sub-byte refcount entries: written back without disturbing their neighbours.
    @Test func subByteRefcountEntriesRoundTrip() {
        for order in 0...6 {
            let bits = 1 << order
            let max = bits == 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1
            var block = [UInt8](repeating: 0, count: 64)
            let entries = 64 * 8 / bits
            for i in 0..<entries { Qcow2File.Refcounts.setEntry(&block, i, order: order, to: UInt64(i) % (max == UInt64.max ? 1000 : max + 1)) }
            Qcow2File.Refcounts.setEntry(&block, 3, order: order, to: max)
            for i in 0..<entries {
                let want = i == 3 ? max : UInt64(i) % (max == UInt64.max ? 1000 : max + 1)
                #expect(Qcow2File.Refcounts.entry(block, i, order: order) == want, "order \(order) entry \(i)")
            }
        }
        // QEMU's packing: 1-bit entries from the low bit of each byte up.
        var block = [UInt8](repeating: 0, count: 2)
        Qcow2File.Refcounts.setEntry(&block, 0, order: 0, to: 1)
        Qcow2File.Refcounts.setEntry(&block, 9, order: 0, to: 1)
        #expect(block == [0x01, 0x02])
    }
}
