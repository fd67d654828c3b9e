import FoundationEssentials

/// Which file a checkpoint depended on: its path and the inode, size and modification time it
/// had, so a rebuilt kernel, image or QEMU is a different file even at the same path.
public struct FileIdentity: Codable, Equatable, Sendable {
    public var path: String
    public var inode: UInt64
    public var size: Int64
    public var modified: Int64

    public static func of(_ path: String) -> FileIdentity? {
        let real = realPath(path) ?? path
        guard let st = FileStatus.of(real) else { return nil }
        return FileIdentity(path: real, inode: st.inode, size: st.size, modified: st.modifiedNanoseconds)
    }
}

/// Everything a boot checkpoint is valid for (issue 11): the kernel, initrd and append line,
/// the golden image, the VM's shape and devices, and the QEMU binary. A boot whose key differs
/// in anything boots cold, says why, and keeps a new checkpoint.
public struct CheckpointKey: Codable, Equatable, Sendable {
    /// labrun's checkpoint format: a labrun that changes what it stores bumps it.
    public var format = 4
    public var kernel: FileIdentity
    public var initrd: FileIdentity?
    public var append: String
    public var golden: FileIdentity
    public var shape: VMShape
    public var accelerator: String
    /// The gdb stub is on (`--debug`, `make run`).
    public var gdb: Bool
    public var qemu: FileIdentity
    /// Another kernel's modules disk (`--modules`; see KernelModules), made from one
    /// modules_install: a new one is a new file. Nil (and absent from the JSON, so older keys
    /// stay the same) for the lab's own kernel.
    public var modules: FileIdentity?

    /// A short name for the key: the checksum of its canonical JSON.
    public var id: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var sum = Checksum()
        sum.update(Array((try? encoder.encode(self)) ?? Data()))
        return sum.value
    }

    /// What changed from `old` to this key, in the user's words ("the kernel command line").
    public func differences(from old: CheckpointKey) -> [String] {
        var out: [String] = []
        if format != old.format { out.append("labrun's checkpoint format") }
        if kernel != old.kernel { out.append(kernel.path == old.kernel.path ? "the kernel (\(kernel.path) was rebuilt)" : "the kernel (\(old.kernel.path) → \(kernel.path))") }
        if initrd != old.initrd { out.append("the initrd") }
        if append != old.append { out.append("the kernel command line (\"\(old.append)\" → \"\(append)\")") }
        if golden != old.golden { out.append(golden.path == old.golden.path ? "the golden image (rebuilt)" : "the golden image") }
        if shape.memoryMiB != old.shape.memoryMiB { out.append("memory (\(old.shape.memoryMiB) → \(shape.memoryMiB) MiB)") }
        if shape.cpus != old.shape.cpus { out.append("CPUs (\(old.shape.cpus) → \(shape.cpus))") }
        if shape.share != old.shape.share { out.append(shape.share ? "the shared folder (now exported)" : "the shared folder (no longer exported)") }
        if shape.network != old.shape.network { out.append("the ssh NIC (lab.conf ssh_port)") }
        if shape.arch != old.shape.arch || shape.machine != old.shape.machine || shape.cpu != old.shape.cpu { out.append("the machine") }
        if accelerator != old.accelerator { out.append("the accelerator (\(old.accelerator) → \(accelerator))") }
        if gdb != old.gdb { out.append(gdb ? "the gdb stub (now on)" : "the gdb stub (now off)") }
        if qemu != old.qemu { out.append("QEMU (\(qemu.path) changed)") }
        if modules != old.modules { out.append(modules == nil ? "the kernel's modules (none now)" : "the kernel's modules (\(modules!.path))") }
        return out
    }
}

extension CheckpointKey {
    /// The key of the VM `command` starts, or nil when one of its files is missing.
    public init?(command: QemuCommand) {
        let lab = command.lab
        guard let kernel = FileIdentity.of(command.kernelPath), let golden = FileIdentity.of(lab.goldenPath),
              let exe = findExecutable(command.qemuBinary), let qemu = FileIdentity.of(exe) else { return nil }
        var initrd: FileIdentity?
        if let path = command.initrdPath {
            guard let i = FileIdentity.of(path) else { return nil }
            initrd = i
        }
        self.kernel = kernel
        self.initrd = initrd
        self.append = command.kernelAppend
        self.golden = golden
        self.shape = command.shape
        self.accelerator = command.accelerator.rawValue
        self.gdb = command.options.gdbPort != nil
        self.qemu = qemu
        if let disk = command.options.kernelModules?.disk {
            guard let m = FileIdentity.of(disk) else { return nil }
            self.modules = m
        }
    }
}
