/// How to boot: the lab's settings overridden by command-line flags.
public struct BootOptions: Sendable, Equatable {
    public var memoryMiB: Int?
    public var cpus: Int?
    public var accel: Accelerator?
    public var qemu: String?
    /// Another kernel to boot (`--kernel`: bzImage or vmlinux, Image on arm64).
    public var kernel: String?
    /// That kernel's modules (`--modules DIR`: INSTALL_MOD_PATH of `make modules_install`).
    public var modules: String?
    /// Another kernel's modules, ready to boot with: its initrd and modules disk (see
    /// KernelModules). Set by `boot` once it has found (or been given) the modules.
    public var kernelModules: KernelModulesBoot?
    /// Export this host folder with 9p (mount tag hostshare), mounted at /mnt in the guest.
    public var shared: String?
    /// gdb stub on 127.0.0.1:port.
    public var gdbPort: Int?
    public var waitForGdb = false
    public var dryRun = false
    /// Resume from this snapshot (`-loadvm`).
    public var loadSnapshot: String?
    /// Resume the VM `labrun suspend` saved (`-incoming defer`, then its state file).
    public var resumeSuspended = false
    /// The boot checkpoint: resume it, or keep one once the guest is up.
    public var checkpoint: CheckpointPlan = .none

    public init() {}

    /// The boot resumes the boot checkpoint (QEMU waits for its state: `-incoming defer`).
    public var resumesCheckpoint: Bool {
        if case .resume = checkpoint { return true }
        return false
    }
}

extension BootOptions {
    /// These options changed to resume `suspended` in the shape it was saved in, whatever the
    /// flags said.
    public func resuming(_ suspended: SuspendedState, in lab: Lab) -> BootOptions {
        var o = self
        o.memoryMiB = suspended.shape.memoryMiB
        o.cpus = suspended.shape.cpus
        o.accel = suspended.shape.cpu == "host" ? .kvm : .tcg
        o.shared = suspended.shape.share ? (shared ?? lab.sharedPath) : nil
        o.loadSnapshot = nil
        o.checkpoint = .none
        o.resumeSuspended = true
        o.kernel = suspended.kernel
        o.modules = suspended.modules
        return o
    }
}
