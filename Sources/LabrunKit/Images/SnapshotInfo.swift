import FoundationEssentials

/// One internal snapshot of a qcow2 image, as qemu-img's `--output=json` and QMP's
/// `query-named-block-nodes` both describe it (same keys on both paths).
public struct SnapshotInfo: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    /// Bytes of saved VM state (RAM and devices); 0 for a disk-only snapshot.
    public var vmStateSize: UInt64
    public var dateSeconds: Int64
    public var dateNanoseconds: Int64
    public var vmClockSeconds: Int64
    public var vmClockNanoseconds: Int64

    public init(id: String, name: String, vmStateSize: UInt64, dateSeconds: Int64, dateNanoseconds: Int64 = 0,
                vmClockSeconds: Int64 = 0, vmClockNanoseconds: Int64 = 0) {
        self.id = id
        self.name = name
        self.vmStateSize = vmStateSize
        self.dateSeconds = dateSeconds
        self.dateNanoseconds = dateNanoseconds
        self.vmClockSeconds = vmClockSeconds
        self.vmClockNanoseconds = vmClockNanoseconds
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case vmStateSize = "vm-state-size"
        case dateSeconds = "date-sec"
        case dateNanoseconds = "date-nsec"
        case vmClockSeconds = "vm-clock-sec"
        case vmClockNanoseconds = "vm-clock-nsec"
    }

    public var date: Date { Date(timeIntervalSince1970: Double(dateSeconds) + Double(dateNanoseconds) / 1e9) }
    public var hasVMState: Bool { vmStateSize > 0 }
}
