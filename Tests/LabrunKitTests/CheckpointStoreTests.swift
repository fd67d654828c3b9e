import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

/// The boot checkpoint's pieces without QEMU (issue 11): the checksum, the key and what it
/// says changed, the store's checks on a checkpoint's files, and freshness of a layer.
@Suite struct CheckpointStoreTests {
    static func key(append: String = "console=ttyS0 quiet", memory: Int = 256, gdb: Bool = false, golden: String = "/lab/debian-rootfs.qcow2") -> CheckpointKey {
        let f = { (p: String) in FileIdentity(path: p, inode: 7, size: 100, modified: 1) }
        return CheckpointKey(kernel: f("/lab/vmlinux"), initrd: f("/lab/initrd.img"), append: append, golden: f(golden),
                             shape: VMShape(arch: "x86_64", machine: "pc", cpu: "default", memoryMiB: memory, cpus: 1, share: false, network: false),
                             accelerator: "tcg", gdb: gdb, qemu: f("/usr/bin/qemu-system-x86_64"))
    }

    func tempDirectory() -> String {
        var template = Array("/tmp/labrun-unit-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    /// Writes a checkpoint with a fake (but well-formed) state and disk; returns its directory.
    @discardableResult
    func writeCheckpoint(_ store: CheckpointStore, _ key: CheckpointKey, created: Double = 1000, stateBytes: Int = 300_000) throws -> String {
        let dir = store.path(for: key)
        try #require(makeDirectory(dir))
        var state = Checkpoint.streamMagic
        for i in 0..<stateBytes { state.append(UInt8(truncatingIfNeeded: i &* 31 &+ 7)) }
        let disk = [UInt8](repeating: 0x51, count: 65_536)
        let sfd = try FileDescriptor.open(dir + "/state", O_WRONLY | O_CREAT | O_TRUNC)
        try sfd.writeAll(state); sfd.close()
        let dfd = try FileDescriptor.open(dir + "/disk.qcow2", O_WRONLY | O_CREAT | O_TRUNC)
        try dfd.writeAll(disk); dfd.close()
        var s = Checksum(); s.update(state)
        var d = Checksum(); d.update(disk)
        let record = CheckpointRecord(key: key, created: created, state: FileCheck(size: Int64(state.count), checksum: s.value),
                                      disk: FileCheck(size: Int64(disk.count), checksum: d.value), diskBacking: "debian-rootfs.qcow2", prompt: "root@lab:~# ")
        try String(decoding: jsonLine(record), as: UTF8.self).write(toFile: dir + "/checkpoint.json")
        return dir
    }

    @Test func checksumIsTheSameHoweverTheBytesAreSplit() {
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 131) }
        var whole = Checksum()
        whole.update(bytes)
        for split in [1, 3, 31, 32, 33, 4096] {
            var parts = Checksum()
            var i = 0
            while i < bytes.count {
                parts.update(Array(bytes[i..<min(i + split, bytes.count)]))
                i += split
            }
            #expect(parts.value == whole.value, "split \(split)")
        }
        var flipped = bytes
        flipped[5000] ^= 1
        var other = Checksum()
        other.update(flipped)
        #expect(other.value != whole.value)
        var shorter = Checksum()
        shorter.update(Array(bytes.dropLast()))
        #expect(shorter.value != whole.value)
        #expect(whole.value.count == 16)
    }

    @Test func keyDifferencesNameWhatChanged() {
        let old = Self.key()
        #expect(Self.key().differences(from: old).isEmpty)
        #expect(Self.key().id == old.id)
        let appended = Self.key(append: "console=ttyS0 quiet debug")
        #expect(appended.id != old.id)
        #expect(appended.differences(from: old) == ["the kernel command line (\"console=ttyS0 quiet\" → \"console=ttyS0 quiet debug\")"])
        #expect(Self.key(memory: 512, gdb: true).differences(from: old) == ["memory (256 → 512 MiB)", "the gdb stub (now on)"])
        var rebuilt = old
        rebuilt.golden.inode = 8
        #expect(rebuilt.differences(from: old) == ["the golden image (rebuilt)"])
    }

    @Test func aWholeCheckpointIsFoundAndADamagedOneMovedAside() throws {
        let store = CheckpointStore(directory: tempDirectory())
        defer { _ = try? Spawner.run("rm", ["-rf", store.directory]) }
        let key = Self.key()
        guard case .missing(let why) = store.find(key) else { Issue.record("found a checkpoint in an empty store"); return }
        #expect(why.contains("no boot checkpoint yet"))

        let dir = try writeCheckpoint(store, key)
        guard case .found(let c) = store.find(key) else { Issue.record("a whole checkpoint was not found"); return }
        #expect(c.record.prompt == "root@lab:~# ")

        let cases: [(String, (String) throws -> Void)] = [
            ("truncated", { d in #expect(truncate(d + "/state", 1000) == 0) }),
            ("does not match its checksum", { d in
                let fd = try FileDescriptor.open(d + "/state", O_WRONLY)
                _ = [UInt8](repeating: 0, count: 16).withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress, 16, 100_000) }
                fd.close()
            }),
            ("not a QEMU 7 migration stream", { d in
                let fd = try FileDescriptor.open(d + "/state", O_WRONLY)
                _ = Array("JUNK".utf8).withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress, 4, 0) }
                fd.close()
            }),
            ("record is missing", { d in removeFile(d + "/checkpoint.json") }),
            ("disk file is missing", { d in removeFile(d + "/disk.qcow2") }),
            ("made for another VM", { d in
                var text = String(decoding: readSmallFile(d + "/checkpoint.json")!, as: UTF8.self)
                text = text.replacing("console=ttyS0 quiet", with: "console=ttyS0")
                try text.write(toFile: d + "/checkpoint.json")
            }),
        ]
        for (n, (expected, damage)) in cases.enumerated() {
            if n > 0 { try writeCheckpoint(store, key) }
            try damage(dir)
            guard case .damaged(let why, let moved) = store.find(key) else { Issue.record("\(expected): not judged damaged"); continue }
            #expect(why.contains(expected), "\(expected): \(why)")
            #expect(moved != nil && fileExists(moved!), "\(expected): not moved aside")
            #expect(!fileExists(dir), "\(expected): still in place")
        }
        #expect(namesInDirectory(store.directory).filter { $0.hasPrefix("damaged-") }.count <= 2, "only the newest two damaged ones stay")
    }

    @Test func aMissingKeySaysWhatChangedSinceTheNewest() throws {
        let store = CheckpointStore(directory: tempDirectory())
        defer { _ = try? Spawner.run("rm", ["-rf", store.directory]) }
        try writeCheckpoint(store, Self.key(), created: 1000)
        try writeCheckpoint(store, Self.key(memory: 512), created: 2000)
        guard case .missing(let why) = store.find(Self.key(append: "quiet", memory: 512)) else { Issue.record("found"); return }
        #expect(why == "changed since the last boot checkpoint: the kernel command line (\"console=ttyS0 quiet\" → \"quiet\")", "\(why)")
    }

    @Test func installDiskRefusesACopyThatDoesNotMatch() throws {
        let store = CheckpointStore(directory: tempDirectory())
        defer { _ = try? Spawner.run("rm", ["-rf", store.directory]) }
        try writeCheckpoint(store, Self.key())
        guard case .found(let c) = store.find(Self.key()) else { Issue.record("not found"); return }
        let runtime = store.directory + "/runtime.qcow2"
        try "old layer".write(toFile: runtime)
        try c.installDisk(as: runtime, backing: "debian-rootfs.qcow2")
        #expect(readSmallFile(runtime) == [UInt8](repeating: 0x51, count: 65_536))

        try "old layer".write(toFile: runtime)
        let fd = try FileDescriptor.open(c.diskPath, O_WRONLY)
        _ = [UInt8](repeating: 0, count: 1).withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress, 1, 10) }
        fd.close()
        #expect(throws: LabrunError.self) { try c.installDisk(as: runtime, backing: "debian-rootfs.qcow2") }
        #expect(readSmallFile(runtime) == Array("old layer".utf8), "a bad copy replaced the runtime layer")
        #expect(!fileExists(runtime + ".checkpoint-part"))
    }

    @Test func pruneKeepsTheNewestAndDropsStaleAndHalfMadeOnes() throws {
        let store = CheckpointStore(directory: tempDirectory())
        defer { _ = try? Spawner.run("rm", ["-rf", store.directory]) }
        let golden = store.directory + "/golden.qcow2"
        try "golden".write(toFile: golden)
        var current = Self.key()
        current.golden = try #require(FileIdentity.of(golden))
        var dirs: [String] = []
        for m in 0..<6 {
            var k = current
            k.shape.memoryMiB = 256 + m
            dirs.append(try writeCheckpoint(store, k, created: Double(1000 + m), stateBytes: 100))
        }
        // One made on an older build of the golden image, and one half-made by a dead process.
        var old = current
        old.golden.inode += 1
        let stale = try writeCheckpoint(store, old, created: 5000, stateBytes: 100)
        #expect(makeDirectory(store.directory + "/0123456789abcdef.part-999999"))
        store.prune(protecting: dirs[0])
        let name = { (d: String) in String(d.split(separator: "/").last!) }
        let left = Set(namesInDirectory(store.directory).filter { !$0.hasSuffix(".qcow2") })
        #expect(left == Set([dirs[0], dirs[5], dirs[4], dirs[3]].map(name)), "\(left.sorted())")
        #expect(!fileExists(stale))
    }

    @Test func aLayerIsFreshUntilSomethingWritesIt() throws {
        let root = tempDirectory()
        defer { _ = try? Spawner.run("rm", ["-rf", root]) }
        let lab = Lab(root: root, config: LabConfig())
        try "layer".write(toFile: lab.runtimePath)
        #expect(!FreshRuntime.isFresh(lab))
        FreshRuntime.mark(lab)
        #expect(FreshRuntime.isFresh(lab))
        sleepSeconds(0.01)
        let fd = try FileDescriptor.open(lab.runtimePath, O_WRONLY | O_APPEND)
        try fd.writeAll(Array("x".utf8)); fd.close()
        #expect(!FreshRuntime.isFresh(lab))
        FreshRuntime.mark(lab)
        FreshRuntime.clear(lab)
        #expect(!FreshRuntime.isFresh(lab))
    }

    @Test func terminalReportsAreNotTyping() {
        let report = Array("\u{1B}[9;13R".utf8)
        #expect(BootCheckpointer.withoutTerminalReports(report).isEmpty)
        #expect(BootCheckpointer.withoutTerminalReports(Array("a\u{1B}[6nb".utf8)) == Array("ab".utf8))
        #expect(BootCheckpointer.withoutTerminalReports(Array("ls\r".utf8)) == Array("ls\r".utf8))
    }
}
