import FoundationEssentials

/// What a snapshot's saved VM state depends on: loading it into a VM of another shape fails
/// (and QEMU has already reset the machine and reverted the disk by then). labrun records the
/// shape of every snapshot it takes, so a restore into a different VM is refused up front,
/// and a boot that resumes a snapshot uses the snapshot's own shape.
public struct VMShape: Codable, Equatable, Sendable, CustomStringConvertible {
    public var arch: String
    public var machine: String
    public var cpu: String
    public var memoryMiB: Int
    public var cpus: Int
    /// The 9p share device is present (it is part of the device state).
    public var share: Bool
    /// The ssh NIC is present (lab.conf ssh_port).
    public var network: Bool? = false

    public var description: String {
        "\(memoryMiB) MiB, \(cpus) CPU\(cpus == 1 ? "" : "s"), \(cpu) CPU model, \(share ? "with" : "without") --shared"
            + (network == true ? ", with the ssh NIC (lab.conf ssh_port)" : "")
    }

    /// Boot flags that give this shape (for messages).
    public var bootFlags: String {
        "--mem \(memoryMiB)M --cpus \(cpus)" + (share ? " --shared" : "") + (cpu == "host" ? " --accel kvm" : " --accel tcg")
    }
}

/// The lab's record of snapshot shapes: `LAB/.labrun-snapshots.json`, keyed by snapshot name
/// and creation time (so a replaced or re-created name never inherits an old record).
public struct SnapshotShapes {
    public let path: String

    public init(lab: Lab) { path = lab.root + "/.labrun-snapshots.json" }

    static func key(_ s: SnapshotInfo) -> String { "\(s.name)@\(s.dateSeconds).\(s.dateNanoseconds)" }

    public func all() -> [String: VMShape] {
        guard let bytes = readSmallFile(path, limit: 4 << 20) else { return [:] }
        return (try? JSONDecoder().decode([String: VMShape].self, from: Data(bytes))) ?? [:]
    }

    public func shape(of snapshot: SnapshotInfo) -> VMShape? { all()[Self.key(snapshot)] }

    /// A renamed snapshot keeps its shape record.
    public func renamed(_ s: SnapshotInfo, to newName: String) {
        var table = all()
        guard let shape = table.removeValue(forKey: Self.key(s)) else { return }
        var n = s
        n.name = newName
        table[Self.key(n)] = shape
        write(table)
    }

    private func write(_ table: [String: VMShape]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(table) else { return }
        let tmp = path + ".part"
        if (try? String(decoding: data, as: UTF8.self).write(toFile: tmp)) != nil { try? renameFile(tmp, path) }
    }

    /// Records a snapshot's shape, dropping records of snapshots that no longer exist.
    public func record(_ shape: VMShape, for snapshot: SnapshotInfo, existing: [SnapshotInfo]) {
        let live = Set(existing.map(Self.key))
        var table = all().filter { live.contains($0.key) }
        table[Self.key(snapshot)] = shape
        write(table)
    }
}

extension QemuCommand {
    /// The shape of the VM this command line starts.
    public var shape: VMShape {
        VMShape(arch: lab.config.arch.rawValue,
                machine: lab.config.arch == .aarch64 ? "virt" : "pc",
                cpu: accelerator == .kvm ? "host" : (lab.config.arch == .aarch64 ? "cortex-a57" : "default"),
                memoryMiB: memoryMiB, cpus: cpus, share: options.shared != nil, network: lab.config.sshPort != nil)
    }
}
