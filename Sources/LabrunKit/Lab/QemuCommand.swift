/// Builds QEMU's command line for a lab, following ARCHITECTURE.md: stdio on labrun's pty via
/// a plain `-chardev stdio,signal=off` (QEMU's own Ctrl-a mux is never used: its Ctrl-a s
/// would commit the runtime overlay into the golden image), `-monitor none`, QMP and the human
/// monitor on unix sockets in the run directory, disks as `-blockdev` with node names, and
/// anything network-facing bound to 127.0.0.1 only.
public struct QemuCommand: Sendable {
    public static let runtimeNode = "runtime"
    public static let consoleID = "console"
    public static let modulesNode = "modules"

    public let lab: Lab
    public let options: BootOptions
    public let accelerator: Accelerator

    public init(lab: Lab, options: BootOptions, environment accelOverride: String? = environmentValue("LABRUN_ACCEL")) throws(LabrunError) {
        self.lab = lab
        self.options = options
        var accel = options.accel ?? lab.config.accel
        if let env = accelOverride, !env.isEmpty {
            guard let a = Accelerator(rawValue: env) else { throw LabrunError("LABRUN_ACCEL=\(env): expected auto, kvm or tcg") }
            accel = a
        }
        if accel == .auto {
            accel = QemuCommand.kvmUsable(for: lab.config.arch) && (lab.config.arch != .x86_64 || QemuCommand.probeKVM(options, lab)) ? .kvm : .tcg
        }
        accelerator = accel
    }

    /// The KVM self-test (cached per host boot).
    private static func probeKVM(_ options: BootOptions, _ lab: Lab) -> Bool {
        KVMProbe.works(qemu: qemuBinary(options, lab), run: lab.runDirectory)
    }

    /// --qemu, else LABRUN_QEMU, else lab.conf's qemu, else qemu-system-ARCH on PATH.
    static func qemuBinary(_ options: BootOptions, _ lab: Lab) -> String {
        options.qemu ?? environmentValue("LABRUN_QEMU").flatMap { $0.isEmpty ? nil : $0 }
            ?? lab.config.qemu ?? "qemu-system-\(lab.config.arch.rawValue)"
    }

    /// KVM is used when /dev/kvm opens read-write and the guest has the host's architecture.
    public static func kvmUsable(for arch: Architecture) -> Bool {
        guard hostMachine == arch.rawValue, let fd = try? FileDescriptor.open("/dev/kvm", FileDescriptor.readWrite) else { return false }
        fd.close()
        return true
    }

    public var memoryMiB: Int { options.memoryMiB ?? lab.config.memoryMiB }
    /// `--kernel`, else the lab's.
    public var kernelPath: String { options.kernel ?? lab.kernelPath }
    /// The lab's initrd, or the one with another kernel's early modules added.
    public var initrdPath: String? { options.kernelModules?.initrd ?? lab.initrdPath }
    public var cpus: Int { options.cpus ?? lab.config.cpus }
    public var qemuBinary: String { QemuCommand.qemuBinary(options, lab) }
    public var consoleDevice: String { lab.config.arch == .aarch64 ? "ttyAMA0" : "ttyS0" }
    public var kernelAppend: String {
        lab.config.append ?? "console=\(consoleDevice) quiet"
    }

    /// The argv (without the binary).
    public func arguments(runDirectory run: RunDirectory) -> [String] {
        var a: [String] = ["-name", "labrun", "-nodefaults", "-no-user-config", "-display", "none"]
        switch lab.config.arch {
        case .x86_64:
            a += ["-machine", "pc"]
            if accelerator == .kvm { a += ["-cpu", "host"] }
        case .aarch64:
            a += ["-machine", "virt", "-cpu", accelerator == .kvm ? "host" : "cortex-a57"]
        }
        a += ["-accel", accelerator.rawValue, "-m", "\(memoryMiB)", "-smp", "\(cpus)"]
        a += ["-kernel", kernelPath]
        if let initrd = initrdPath { a += ["-initrd", initrd] }
        a += ["-append", kernelAppend]
        // The runtime layer; QEMU opens its backing chain from the image header.
        a += ["-blockdev", "driver=file,node-name=\(QemuCommand.runtimeNode)-file,filename=\(optValue(lab.runtimePath))",
              "-blockdev", "driver=qcow2,node-name=\(QemuCommand.runtimeNode),file=\(QemuCommand.runtimeNode)-file",
              "-device", "virtio-blk-pci,drive=\(QemuCommand.runtimeNode),id=disk0"]
        if let modules = options.kernelModules {
            // Another kernel's modules, read-only (so savevm and checkpoints leave it out), found
            // by the initrd's /init through its serial and mounted on /lib/modules/RELEASE.
            a += ["-blockdev", "driver=file,node-name=\(QemuCommand.modulesNode)-file,filename=\(optValue(modules.disk)),read-only=on",
                  "-blockdev", "driver=raw,node-name=\(QemuCommand.modulesNode),file=\(QemuCommand.modulesNode)-file,read-only=on",
                  "-device", "virtio-blk-pci,drive=\(QemuCommand.modulesNode),id=disk1,serial=\(KernelModules.diskSerial)"]
        }
        // The guest's serial console on stdio (labrun's pty). signal=off: Ctrl-C goes to the guest.
        a += ["-chardev", "stdio,id=\(QemuCommand.consoleID),signal=off",
              "-serial", "chardev:\(QemuCommand.consoleID)",
              "-monitor", "none"]
        a += ["-chardev", "socket,id=qmp,path=\(optValue(run.qmpSocket)),server=on,wait=off",
              "-mon", "chardev=qmp,mode=control",
              "-chardev", "socket,id=hmp,path=\(optValue(run.hmpSocket)),server=on,wait=off",
              "-mon", "chardev=hmp,mode=readline"]
        // The guest agent's own channel (never the user's console): a virtio-serial port.
        a += ["-device", "virtio-serial-pci,id=vser0",
              "-chardev", "socket,id=agent,path=\(optValue(run.agentSocket)),server=on,wait=off",
              "-device", "virtserialport,bus=vser0.0,chardev=agent,name=\(GuestAgent.portName)"]
        // The guest kernel tells QEMU when it panics (GUEST_PANICKED), where it has the driver;
        // QEMU itself does nothing then: labrun acts (lab.conf on_panic).
        a += ["-device", lab.config.arch == .x86_64 ? "pvpanic" : "pvpanic-pci", "-action", "panic=none"]
        if let shared = options.shared {
            a += ["-fsdev", "local,id=hostshare,path=\(optValue(shared)),security_model=mapped-xattr",
                  "-device", "virtio-9p-pci,fsdev=hostshare,mount_tag=hostshare"]
        }
        if let port = lab.config.sshPort {
            // ssh into the guest from this machine only: the forward binds 127.0.0.1
            // (hostfwd=tcp::P-:22 would bind every interface: a root login on the LAN).
            a += ["-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:\(port)-:22",
                  "-device", "virtio-net-pci,netdev=net0"]
        }
        if let port = options.gdbPort {
            a += ["-gdb", "tcp:127.0.0.1:\(port)"]
        }
        if options.waitForGdb { a += ["-S"] }
        if let snap = options.loadSnapshot { a += ["-loadvm", snap] }
        if options.resumeSuspended || options.resumesCheckpoint { a += ["-incoming", "defer"] }
        return a
    }

    public func spawnConfiguration(runDirectory run: RunDirectory) -> SpawnConfiguration {
        SpawnConfiguration(executable: qemuBinary, arguments: arguments(runDirectory: run))
    }
}

/// A value inside a QemuOpts string ("key=value,key=value"): commas are doubled.
func optValue(_ s: String) -> String { s.replacingAll(",", with: ",,") }
