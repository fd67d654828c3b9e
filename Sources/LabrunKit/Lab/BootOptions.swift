/// How to boot: the lab's settings overridden by command-line flags.
public struct BootOptions: Sendable, Equatable {
    public var memoryMiB: Int?
    public var cpus: Int?
    public var accel: Accelerator?
    public var qemu: String?
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

    public init() {}
}
