import Testing
@testable import LabrunKit

@Suite(.enabled(if: hasQemuImg)) struct ImagesOfflineSnapshotsTests {
    @Test func createListRestoreDeleteRoundTrip() throws {
        try withScratch { s in
            let runtime = try s.makeChain().runtime
            let snaps = OfflineSnapshots(qemuImg: try QemuImg(), image: runtime)
            #expect(try snaps.list().isEmpty)

            #expect(try s.qemuIO(runtime, "write -P 0xAB 0 4k"))
            let first = try snaps.create(name: "marked")
            #expect(first.name == "marked")
            #expect(first.vmStateSize == 0)
            #expect(try s.qemuIO(runtime, "write -P 0xCD 0 4k"))
            try snaps.create(name: "overwritten")
            #expect(try snaps.list().map(\.name) == ["marked", "overwritten"])

            #expect(try snaps.restore(name: "marked") == first)
            #expect(try s.qemuIO(runtime, "read -P 0xAB 0 4k"))
            #expect(try !s.qemuIO(runtime, "read -P 0xCD 0 4k"))
            try snaps.restore(name: "overwritten")
            #expect(try s.qemuIO(runtime, "read -P 0xCD 0 4k"))

            #expect(try snaps.delete(name: "marked") == first)
            #expect(try snaps.list().map(\.name) == ["overwritten"])
            try snaps.delete(name: "overwritten")
            #expect(try snaps.list().isEmpty)
        }
    }

    @Test func refusalsWriteNothing() throws {
        try withScratch { s in
            let image = try s.makeImage()
            let snaps = OfflineSnapshots(qemuImg: try QemuImg(), image: image)
            let refusedOnEmpty: [(String, () throws -> Void)] = [
                ("no snapshot named 'ghost'; there are no snapshots yet", { try snaps.restore(name: "ghost") }),
                ("no snapshot named 'ghost'; there are no snapshots yet", { try snaps.delete(name: "ghost") }),
            ]
            for (message, action) in refusedOnEmpty {
                let before = s.bytes(image)
                #expect(throws: LabrunError(message)) { try action() }
                #expect(s.bytes(image) == before)
            }

            try snaps.create(name: "a")
            try snaps.create(name: "b")
            let refused: [(String, () throws -> Void)] = [
                ("no snapshot named 'c'; existing: a, b", { try snaps.restore(name: "c") }),
                ("no snapshot named 'c'; existing: a, b", { try snaps.delete(name: "c") }),
                ("snapshot 'a' already exists (ID 1); choose another name, or pass --force to replace it",
                 { try snaps.create(name: "a") }),
                // A name equal to another snapshot's ID would make qemu-img act on that ID.
                ("snapshot name '2' is all digits", { try snaps.restore(name: "2") }),
                ("snapshot name '1' is all digits", { try snaps.delete(name: "1") }),
                ("snapshot name '3' is all digits", { try snaps.create(name: "3") }),
                ("snapshot name 'x y' contains whitespace", { try snaps.create(name: "x y", force: true) }),
            ]
            for (message, action) in refused {
                let before = s.bytes(image)
                #expect { try action() } throws: { ($0 as? LabrunError)?.message.hasPrefix(message) == true }
                #expect(s.bytes(image) == before, "\(message)")
            }
            #expect(try snaps.list().map(\.name) == ["a", "b"])
        }
    }

    @Test func forceReplacesWithoutDuplicate() throws {
        try withScratch { s in
            let image = try s.makeImage()
            let snaps = OfflineSnapshots(qemuImg: try QemuImg(), image: image)
            #expect(try s.qemuIO(image, "write -P 0x11 0 4k"))
            try snaps.create(name: "keep")
            try snaps.create(name: "base")
            #expect(try s.qemuIO(image, "write -P 0x22 0 4k"))
            let replaced = try snaps.create(name: "base", force: true)
            #expect(try snaps.list().map(\.name) == ["keep", "base"])
            #expect(try snaps.list().last == replaced)
            // qcow2 hands out max(ID) + 1, so the replacement reuses the deleted one's ID 2.
            #expect(replaced.id == "2")
            try snaps.restore(name: "keep")
            try snaps.restore(name: "base")
            #expect(try s.qemuIO(image, "read -P 0x22 0 4k"))
        }
    }

    @Test func duplicateNamesMadeOutsideLabrunAreRefused() throws {
        try withScratch { s in
            let image = try s.makeImage()
            let img = try QemuImg()
            try img.createSnapshot(image, name: "twin")
            try img.createSnapshot(image, name: "twin")
            let snaps = OfflineSnapshots(qemuImg: img, image: image)
            let before = s.bytes(image)
            let message = "2 snapshots are named 'twin' (IDs 1, 2); remove the extra ones with `qemu-img snapshot -d ID \(image)` while the VM is stopped"
            #expect(throws: LabrunError(message)) { try snaps.restore(name: "twin") }
            #expect(throws: LabrunError(message)) { try snaps.delete(name: "twin") }
            #expect(throws: LabrunError(message)) { try snaps.create(name: "twin", force: true) }
            #expect(s.bytes(image) == before)
        }
    }
}
