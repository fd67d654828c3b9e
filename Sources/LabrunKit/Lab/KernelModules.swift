import FoundationEssentials

/// Booting a kernel the lab was not built with (issue 14 §2). The tiny guest's initrd loads
/// virtio, ext4 … modules made for the lab's kernel, and its root file system holds that kernel's
/// modules only: another kernel can use neither. So, when labrun knows where that kernel's
/// modules are (`make modules_install INSTALL_MOD_PATH=DIR` gives DIR/lib/modules/RELEASE):
///  - the initrd it boots is the lab's initrd followed by a small newc archive with the kernel's
///    own early modules and an /etc/initrd-modules that lists them (the kernel unpacks both
///    archives in turn, the later file wins; the initrd's /init loads what that list says);
///  - the modules reach the guest on a read-only virtio disk (ext4, serial "labmodules") that
///    the initrd's /init mounts on /lib/modules/RELEASE, so modprobe works as usual.
/// A disk and not a 9p share: a mounted 9p share blocks savevm, suspend and boot checkpoints
/// (QEMU-FACTS.md), and many kernels (Debian's cloud kernel) have no 9p at all, while every
/// kernel that can boot the lab has virtio-blk and ext4. Both files are cached in
/// LAB/.labrun-kernels, keyed on what they are made from.
public struct KernelModules: Sendable, Equatable {
    /// DIR/lib/modules/RELEASE: modules.dep and the modules.
    public var directory: String
    public var release: String

    /// The modules the initrd loads before it mounts the root disk, dependencies first (as
    /// guest/build-tiny.sh's INITRD_MODULES, without 9p: mount-shared modprobes it later).
    /// crc32c_generic: ext4's metadata_csum needs crc32c, and TCG's CPU has no SSE4.2.
    public static let earlyModules = ["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_ring", "virtio", "virtio_pci",
                                      "virtio_blk", "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4", "virtio_console"]
    /// Without these the kernel cannot boot the lab: each one's reason.
    static let required: [(name: String, why: String)] = [
        ("virtio_pci", "the lab's disks are virtio PCI devices (CONFIG_VIRTIO_PCI)"),
        ("virtio_blk", "it cannot see the lab's disk (CONFIG_VIRTIO_BLK)"),
        ("ext4", "it cannot mount the lab's root file system (CONFIG_EXT4_FS)"),
    ]
    /// The disk's virtio serial, which the initrd's /init looks for in /sys/block/vd*/serial.
    public static let diskSerial = "labmodules"

    public init(directory: String, release: String) {
        self.directory = directory
        self.release = release
    }

    /// The modules for `kernel` (release `release` when the image tells it): `given` (--modules
    /// DIR or lab.conf `modules`: an INSTALL_MOD_PATH directory, or its lib/modules/RELEASE
    /// itself), else the first of `conventionalPlaces` that has them; nil when none has.
    public static func locate(kernel: String, release: String?, given: String?) throws(LabrunError) -> KernelModules? {
        if let given {
            let dir = absolutePath(given)
            guard isDirectory(dir) else { throw LabrunError("--modules \(given): no such directory (expected what `make modules_install INSTALL_MOD_PATH=DIR` makes: DIR/lib/modules/RELEASE)") }
            if fileExists(dir + "/modules.dep") {
                let name = dir.split(separator: "/").last.map(String.init) ?? dir
                if let release, name != release {
                    throw LabrunError("--modules \(given) holds the modules of \(name), but \(kernel) is \(release)")
                }
                return KernelModules(directory: dir, release: release ?? name)
            }
            let releases = namesInDirectory(dir + "/lib/modules").filter { isDirectory(dir + "/lib/modules/" + $0) }.sorted()
            if let release {
                guard releases.contains(release) else {
                    let there = releases.isEmpty ? "it has no lib/modules/*" : "it has \(releases.joined(separator: ", "))"
                    throw LabrunError("--modules \(given): no lib/modules/\(release) there for \(kernel) (\(there)); run `make modules_install INSTALL_MOD_PATH=\(given)` in its tree")
                }
                return try checked(KernelModules(directory: dir + "/lib/modules/" + release, release: release))
            }
            guard releases.count == 1 else {
                throw LabrunError("--modules \(given): cannot tell which of lib/modules/{\(releases.joined(separator: ","))} is \(kernel)'s (its image names no release)")
            }
            return try checked(KernelModules(directory: dir + "/lib/modules/" + releases[0], release: releases[0]))
        }
        guard let release else { return nil }
        for root in conventionalPlaces(kernel: kernel) where isDirectory(root + "/lib/modules/" + release) {
            return try checked(KernelModules(directory: root + "/lib/modules/" + release, release: release))
        }
        return nil
    }

    /// Where labrun looks for a kernel's modules without --modules (INSTALL_MOD_PATH values):
    /// - the kernel tree the image is in (arch/ARCH/boot/bzImage, vmlinux): TREE itself
    ///   (`make modules_install INSTALL_MOD_PATH=.`), then TREE/tar-install (`make tar-pkg`);
    /// - an unpacked package or install root, the image being ROOT/boot/vmlinuz-RELEASE: ROOT;
    /// - "/" (modules_install's default, /lib/modules/RELEASE).
    public static func conventionalPlaces(kernel: String) -> [String] {
        var places: [String] = []
        var dir = parentDirectory(absolutePath(kernel))
        for _ in 0..<4 {
            if fileExists(dir + "/Makefile") && fileExists(dir + "/Kconfig") {
                places += [dir, dir + "/tar-install"]
                break
            }
            if dir == "/" { break }
            dir = parentDirectory(dir)
        }
        let imageDir = parentDirectory(absolutePath(kernel))
        if imageDir.hasSuffix("/boot") { places.append(parentDirectory(imageDir)) }
        places.append("")
        return places
    }

    /// The directory has the modules.dep that modprobe (and labrun) need.
    static func checked(_ m: KernelModules) throws(LabrunError) -> KernelModules {
        guard fileExists(m.directory + "/modules.dep") else {
            throw LabrunError("\(m.directory) has no modules.dep: run `depmod -b ROOT \(m.release)` on it (modules_install runs depmod when kmod is installed; `busybox depmod` works too)")
        }
        return m
    }

    /// modules.dep: each module's name (dashes as underscores) → its path and its dependencies' names.
    func dependencies() throws(LabrunError) -> [String: (path: String, deps: [String])] {
        guard let bytes = readSmallFile(directory + "/modules.dep", limit: 64 << 20) else { throw LabrunError("cannot read \(directory)/modules.dep") }
        var table: [String: (path: String, deps: [String])] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let path = String(line[..<colon])
            let deps = line[line.index(after: colon)...].split(separator: " ").map { Self.moduleName(String($0)) }
            table[Self.moduleName(path)] = (path, deps)
        }
        return table
    }

    /// modules.builtin's names.
    func builtins() -> Set<String> {
        guard let bytes = readSmallFile(directory + "/modules.builtin", limit: 16 << 20) else { return [] }
        return Set(String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { Self.moduleName(String($0)) })
    }

    /// "kernel/fs/ext4/ext4.ko.xz" → "ext4"; "kernel/net/9p/9pnet-virtio.ko" → "9pnet_virtio".
    static func moduleName(_ path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? path
        for ext in [".xz", ".zst", ".gz"] where name.hasSuffix(ext) { name.removeLast(ext.count) }
        if name.hasSuffix(".ko") { name.removeLast(3) }
        return name.replacingAll("-", with: "_")
    }

    /// The early modules this kernel has as modules, in an order that loads (dependencies
    /// first): paths relative to `directory`. Throws when the kernel lacks what the lab needs;
    /// `missingConsole` is set when it has no virtio_console (no guest agent then).
    func earlyLoadList(missingConsole: inout Bool) throws(LabrunError) -> [String] {
        let deps = try dependencies()
        let builtin = builtins()
        for (name, why) in Self.required where deps[name] == nil && !builtin.contains(name) {
            throw LabrunError("the kernel \(release) cannot boot the lab: it has no \(name), neither built in nor among its modules in \(directory): \(why)")
        }
        missingConsole = deps["virtio_console"] == nil && !builtin.contains("virtio_console")
        var order: [String] = []
        var seen: Set<String> = []
        func visit(_ name: String) {
            guard !seen.contains(name), let entry = deps[name] else { return }
            seen.insert(name)
            for d in entry.deps { visit(d) }
            order.append(entry.path)
        }
        for name in Self.earlyModules { visit(name) }
        return order
    }
}

/// What a boot with another kernel's modules uses: the initrd (the lab's plus that kernel's
/// early modules) and the modules disk. Made once, then found in LAB/.labrun-kernels.
public struct KernelModulesBoot: Sendable, Equatable {
    public var modules: KernelModules
    public var initrd: String
    public var disk: String

    static let cacheName = ".labrun-kernels"
    /// How many of each kind of file the cache keeps (the newest).
    static let cacheKeep = 3

    /// The files for booting with `modules` on `lab`'s initrd; `build` makes what is missing
    /// (else only the paths, for --dry-run); `notes` gets a line for each file made.
    public static func prepare(_ modules: KernelModules, lab: Lab, build: Bool, notes: inout [String]) throws(LabrunError) -> KernelModulesBoot {
        guard let base = lab.initrdPath, let baseID = FileIdentity.of(base) else {
            throw LabrunError("no initrd to add \(modules.release)'s modules to: build the default guest with `make guest`")
        }
        let dir = realPath(modules.directory) ?? modules.directory
        guard let dep = FileIdentity.of(dir + "/modules.dep") else { throw LabrunError("\(dir) has no modules.dep") }
        var sum = Checksum()
        sum.update(Array("labrun-kernel-modules 2|\(dir)|\(modules.release)|\(dep.inode) \(dep.size) \(dep.modified)|".utf8))
        let diskKey = sum.value
        sum.update(Array("\(baseID.path) \(baseID.inode) \(baseID.size) \(baseID.modified)".utf8))
        let initrdKey = sum.value
        let cache = lab.root + "/" + cacheName
        let boot = KernelModulesBoot(modules: KernelModules(directory: dir, release: modules.release),
                                     initrd: cache + "/initrd-\(initrdKey).img", disk: cache + "/modules-\(diskKey).img")
        guard build else { return boot }
        if !isDirectory(cache) { makeDirectory(cache) }
        if !fileExists(boot.initrd) {
            try boot.makeInitrd(base: base)
            notes.append("made \(boot.initrd): the lab's initrd with \(modules.release)'s early modules")
        } else {
            var unused = false
            _ = try boot.modules.earlyLoadList(missingConsole: &unused)   // (the same checks, and reasons)
        }
        if !fileExists(boot.disk) {
            try boot.makeDisk()
            notes.append("made \(boot.disk): \(dir) as a read-only disk, mounted on /lib/modules/\(modules.release) in the guest")
        }
        touch(boot.initrd)
        touch(boot.disk)
        prune(cache)
        return boot
    }

    /// Base initrd, zero padding to a 4-byte boundary (where the kernel looks for the next
    /// archive's "070701"), then the newc archive of the early modules and their list.
    func makeInitrd(base: String) throws(LabrunError) {
        var missingConsole = false
        let list = try modules.earlyLoadList(missingConsole: &missingConsole)
        var cpio = NewcArchive()
        // Every initrd that loads modules has these. No entries for them: the unpacker would
        // replace a merged-/usr initrd's /lib symlink (Debian's) by a directory.
        cpio.existing(["lib", "lib/modules"])
        cpio.directory("etc")
        let root = "lib/modules/" + modules.release
        var lines = ""
        for path in list {
            let bytes: [UInt8]
            do { bytes = try readWholeFile(modules.directory + "/" + path) } catch { throw error.asLabrunError }
            cpio.file(root + "/" + path, bytes, parents: true)
            lines += "/\(root)/\(path)\n"
        }
        cpio.file("etc/initrd-modules", Array(lines.utf8))
        let part = initrd + ".part"
        do {
            try FileStream.copy(base, to: part)
            let size = FileStatus.of(part)?.size ?? 0
            let fd = try FileDescriptor.open(part, FileDescriptor.appendCreate)
            try fd.closeAfter { () throws(SystemCallError) in
                try fd.writeAll([UInt8](repeating: 0, count: Int((4 - size % 4) % 4)) + cpio.finished())
            }
            try renameFile(part, initrd)
        } catch {
            removeFile(part)
            throw error.asLabrunError
        }
    }

    /// An ext4 image of the modules directory (sparse, twice its size plus room).
    func makeDisk() throws(LabrunError) {
        let part = disk + ".part"
        removeFile(part)
        let du = try? Spawner.run("du", ["-sk", modules.directory])
        let usedKiB = du.flatMap { Int($0.stdout.split(separator: "\t").first ?? "") } ?? 0
        guard usedKiB > 0 else { throw LabrunError("cannot measure \(modules.directory) (du failed)") }
        let mkfs = findExecutable("mkfs.ext4") ?? findExecutable("mkfs.ext4", path: "/usr/sbin:/sbin") ?? "mkfs.ext4"
        let sizeKiB = (usedKiB * 2 + 32 * 1024 + 3) / 4 * 4
        let r: Spawner.Output
        do {
            r = try Spawner.run(mkfs, ["-q", "-F", "-b", "4096", "-L", KernelModules.diskSerial, "-E", "root_owner=0:0",
                                       "-d", modules.directory, part, "\(sizeKiB)k"])
        } catch { throw LabrunError("cannot run \(mkfs) (e2fsprogs: `apt-get install e2fsprogs`): \(error.asLabrunError.message)") }
        guard r.status.isSuccess else {
            removeFile(part)
            throw LabrunError("could not make the modules disk from \(modules.directory) (mkfs.ext4 \(r.status)): \(r.stderr.trimmed.split(separator: "\n").last ?? "")")
        }
        do { try renameFile(part, disk) } catch { removeFile(part); throw error.asLabrunError }
    }

    /// The last use of a cached file is its modification time.
    static func touch(_ path: String) {
        _ = try? Spawner.run("touch", ["-c", path])
    }

    /// Keeps the newest `cacheKeep` initrds and disks.
    static func prune(_ cache: String) {
        for prefix in ["initrd-", "modules-"] {
            let files = namesInDirectory(cache).filter { $0.hasPrefix(prefix) && $0.hasSuffix(".img") }
                .map { (name: $0, modified: FileStatus.of(cache + "/" + $0)?.modifiedNanoseconds ?? 0) }
                .sorted { $0.modified > $1.modified }
            for old in files.dropFirst(cacheKeep) { removeFile(cache + "/" + old.name) }
        }
    }
}

/// A kernel image's release ("6.1.0-57-cloud-amd64"), read from the image itself: an x86
/// bzImage's setup header points at its version string (kernel_version at 0x20e, the string at
/// that value + 0x200, after the "HdrS" magic at 0x202); an ELF vmlinux or an uncompressed arm64
/// Image holds linux_banner, "Linux version RELEASE (…". Nil for anything else (a compressed Image).
public enum KernelRelease {
    public static func of(image path: String) -> String? {
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return nil }
        defer { fd.close() }
        if case .success(let header) = fd.read(upTo: 0x210, at: 0), header.count == 0x210,
           Array(header[0x202..<0x206]) == Array("HdrS".utf8) {
            let offset = Int(header[0x20e]) | Int(header[0x20f]) << 8
            if offset > 0, case .success(let text) = fd.read(upTo: 128, at: Int64(offset + 0x200)), let r = release(in: text) { return r }
        }
        let marker = Array("Linux version ".utf8)
        var from: Int64 = 0
        // linux_banner's release starts with a digit (other "Linux version " texts do not).
        for _ in 0..<8 {
            guard let hit = try? FileStream.firstMatch(of: marker, inFile: path, keep: marker.count + 128, from: from) else { return nil }
            if let r = release(in: Array(hit.bytes.dropFirst(marker.count))) { return r }
            from = hit.offset + 1
        }
        return nil
    }

    /// The first word, when it looks like a release (a digit first, printable, no slash).
    static func release(in bytes: [UInt8]) -> String? {
        let word = bytes.prefix { $0 > 0x20 && $0 < 0x7f }
        guard let first = word.first, (0x30...0x39).contains(first), word.count < bytes.count, word.count <= 64,
              !word.contains(0x2f) else { return nil }
        return String(decoding: word, as: UTF8.self)
    }
}

/// A newc ("070701") cpio archive in memory, as the kernel's initramfs unpacker reads it:
/// owned by root, directories before what they hold.
struct NewcArchive {
    private var bytes: [UInt8] = []
    private var inode = 1
    private var directories: Set<String> = []

    /// Directories the base archive has: never written (an entry replaces what is there).
    mutating func existing(_ names: [String]) { directories.formUnion(names) }

    mutating func directory(_ name: String) {
        guard directories.insert(name).inserted else { return }
        entry(name, mode: 0o040755, data: [])
    }

    mutating func file(_ name: String, _ data: [UInt8], parents: Bool = false) {
        if parents {
            var path = ""
            for part in name.split(separator: "/").dropLast() {
                path += (path.isEmpty ? "" : "/") + part
                directory(path)
            }
        }
        entry(name, mode: 0o100644, data: data)
    }

    mutating func finished() -> [UInt8] {
        entry("TRAILER!!!", mode: 0, data: [], nlink: 1)
        return bytes
    }

    private mutating func entry(_ name: String, mode: Int, data: [UInt8], nlink: Int? = nil) {
        let nameBytes = Array(name.utf8) + [0]
        let fields = [inode, mode, 0, 0, nlink ?? (mode & 0o040000 != 0 ? 2 : 1), 0, data.count, 0, 0, 0, 0, nameBytes.count, 0]
        inode += 1
        bytes += Array("070701".utf8)
        for f in fields {
            let hex = String(f, radix: 16, uppercase: true)
            bytes += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
        }
        bytes += nameBytes
        pad()
        bytes += data
        pad()
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

extension KernelModulesBoot {
    /// What a boot of `kernel` on `lab` needs for that kernel's modules: nil for the kernel the
    /// lab's initrd was made for (guest-build/kernel-version beside it) when no modules are
    /// given; else the modules given (`--modules`, or lab.conf `modules` for lab.conf's kernel)
    /// or found in `KernelModules.conventionalPlaces`. Without any, `say` gets why the boot may
    /// fail (in `notes`). `build` makes the files (else only names them, for --dry-run).
    public static func plan(lab: Lab, kernel: String, given: String?, build: Bool, notes: inout [String]) throws(LabrunError) -> KernelModulesBoot? {
        let initrdRelease = lab.initrdPath.flatMap { readSmallFile(parentDirectory($0) + "/kernel-version", limit: 256) }
            .map { String(decoding: $0, as: UTF8.self).trimmed }.flatMap { $0.isEmpty ? nil : $0 }
        // The guest build's own kernel: its release is written beside it (no 60 MB scan).
        let real = realPath(kernel) ?? kernel
        let isGuestBuild = lab.initrdPath.map { parentDirectory(realPath($0) ?? $0) == parentDirectory(real) } == true
            && ["vmlinux", "vmlinuz"].contains(real.split(separator: "/").last.map(String.init) ?? "")
        if isGuestBuild && given == nil { return nil }
        let release = isGuestBuild ? initrdRelease : KernelRelease.of(image: kernel)
        if let modules = try KernelModules.locate(kernel: kernel, release: release, given: given) {
            return try prepare(modules, lab: lab, build: build, notes: &notes)
        }
        if let release, release == initrdRelease { return nil }
        let name = kernel.split(separator: "/").last.map(String.init) ?? kernel
        let looked = KernelModules.conventionalPlaces(kernel: kernel).map { ($0.isEmpty ? "" : $0) + "/lib/modules/" + (release ?? "RELEASE") }
        notes.append("no modules found for \(name)\(release.map { " (\($0))" } ?? "") in \(looked.joined(separator: ", ")): the lab's initrd has \(initrdRelease ?? "another kernel")'s, so the kernel boots the lab only with virtio_pci, virtio_blk and ext4 built in; `--modules DIR` gives its `make modules_install INSTALL_MOD_PATH=DIR`")
        return nil
    }
}
