import Glibc
import Testing
@testable import LabrunKit

@Suite(.enabled(if: hasQemuImg)) struct ImagesLockTests {
    @Test func unlockedAndMissingImagesAreNotLocked() throws {
        try withScratch { s in
            let image = try s.makeImage()
            #expect(!ImageLock.isLocked(image))
            #expect(!ImageLock.isLocked(s.path("missing.qcow2")))
            #expect(ImageLock.firstLocked(paths: [image, s.path("missing.qcow2")]) == nil)
            try ImageLock.requireUnlocked([image], action: "test")
        }
    }

    @Test func holdersFindsAnOpenDescriptorThroughSymlinks() throws {
        try withScratch { s in
            let image = try s.makeImage()
            #expect(symlink(image, s.path("link.qcow2")) == 0)
            #expect(!ImageLock.holders(image).contains { $0.pid == getpid() })
            let fd = try FileDescriptor.open(image, O_RDONLY)
            defer { fd.close() }
            let me = ImageLock.holders(s.path("link.qcow2")).filter { $0.pid == getpid() }
            #expect(me.count == 1)
            #expect(me.first.map { !$0.command.isEmpty && $0.command.count <= 100 } == true)
            // Merely having it open is not a QEMU lock.
            #expect(!ImageLock.isLocked(image))
        }
    }

    @Test(.enabled(if: findExecutable("qemu-system-x86_64") != nil))
    func aRunningQemuIsSeenWithoutBeingDisturbed() throws {
        try withScratch { s in
            let (base, golden, runtime) = try s.makeChain()
            var config = SpawnConfiguration(executable: "qemu-system-x86_64", arguments: [
                "-nodefaults", "-display", "none", "-S", "-monitor", "none",
                "-blockdev", "driver=file,filename=\(runtime),node-name=f",
                "-blockdev", "driver=qcow2,file=f,node-name=q",
                "-device", "virtio-blk-pci,drive=q",
            ])
            config.standardInput = .devNull
            config.standardOutput = .devNull
            config.standardError = .devNull
            let qemu = try Spawner.spawn(config)
            defer {
                qemu.send(.kill)
                qemu.wait()
            }
            // QEMU locks the top layer first, then each backing file as it opens it: every layer
            // of the chain carries QEMU's locks.
            let layers = [runtime, golden, base]
            let deadline = monotonicSeconds() + 5
            while !layers.allSatisfy(ImageLock.isLocked) && qemu.poll() == nil && monotonicSeconds() < deadline {
                sleepSeconds(0.05)
            }
            try #require(layers.allSatisfy(ImageLock.isLocked), "qemu-system did not lock the chain (\(String(describing: qemu.status)))")
            let holders = ImageLock.holders(runtime)
            #expect(holders.contains { $0.pid == qemu.pid && $0.command.contains("qemu-system-x86_64 -nodefaults") })
            let first = try #require(ImageLock.firstLocked(paths: [s.path("missing"), runtime, base]))
            #expect(first.path == runtime)
            // Another lab's runtime layer on the same golden image: the running VM only reads
            // golden and base (as its backing files), which is no conflict for that chain.
            #expect(ImageLock.isLockedForWriting(runtime))
            #expect(!ImageLock.isLockedForWriting(golden) && !ImageLock.isLockedForWriting(base))
            let other = s.path("other-lab-runtime.qcow2")
            try QemuImg().createOverlay(path: other, backing: golden, backingFormat: "qcow2")
            #expect(ImageLock.firstLocked(paths: [other, golden, base]) == nil)
            try ImageLock.requireUnlocked([other, golden, base], action: "test")
            #expect(try OfflineSnapshots(qemuImg: QemuImg(), image: other).create(name: "beside-a-running-vm").name == "beside-a-running-vm")
            #expect(first.holders == holders)

            // Probing took no lock and changed nothing: qemu-img still meets QEMU's lock.
            let img = try QemuImg()
            #expect { try img.info(runtime, backingChain: false) } throws: {
                ($0 as? LabrunError)?.message.contains("Failed to get shared \"write\" lock") == true
            }
            #expect(try img.info(runtime, backingChain: false, shareLocks: true).first?.format == "qcow2")
            guard case .error(let message) = try img.check(runtime, repair: false).status else {
                Issue.record("check of a locked image should be an error")
                return
            }
            #expect(message.contains("lock"))

            // The offline path refuses before writing, naming the holder.
            let before = s.bytes(runtime)
            let snaps = OfflineSnapshots(qemuImg: img, image: runtime)
            #expect { try snaps.create(name: "live") } throws: {
                let m = ($0 as? LabrunError)?.message ?? ""
                return m.hasPrefix("cannot create snapshot 'live': \(runtime) is in use by pid \(qemu.pid) (")
                    && m.hasSuffix("; stop that VM first (`kill \(qemu.pid)` if nothing else will)")
            }
            #expect(throws: LabrunError.self) { try snaps.list() }
            #expect(s.bytes(runtime) == before)

            qemu.send(.kill)
            qemu.wait()
            #expect(!ImageLock.isLocked(runtime))
            #expect(ImageLock.firstLocked(paths: layers) == nil)
            #expect(try snaps.list().isEmpty)
        }
    }
}
