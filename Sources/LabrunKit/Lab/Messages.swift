/// The user-facing sentences for snapshot results, shared by the live and offline paths so
/// both print exactly the same thing.
public enum Messages {
    public static func stateDescription(_ s: SnapshotInfo) -> String {
        s.hasVMState ? "\(formatBytes(s.vmStateSize)) of VM state" : "disk only"
    }

    public static func created(_ s: SnapshotInfo?, name: String, seconds: Double) -> String {
        "snapshot '\(name)' created" + (s.map { " (\(stateDescription($0)))" } ?? "") + " in \(formatSeconds(seconds))"
    }

    public static func restored(name: String, seconds: Double, live: Bool, resumesVM: Bool) -> String {
        if live { return "snapshot '\(name)' restored in \(formatSeconds(seconds)); the VM runs on from that moment" }
        return resumesVM
            ? "snapshot '\(name)' restored (disk); the next `labrun boot` resumes the VM from that moment"
            : "snapshot '\(name)' restored (disk only: the next boot starts fresh from that disk)"
    }

    public static func deleted(name: String) -> String { "snapshot '\(name)' deleted" }

    /// Restore or delete of a name that is not there (both paths: QEMU itself would "succeed").
    public static func missing(_ name: String, existing: [SnapshotInfo]) -> LabrunError {
        LabrunError("no snapshot named '\(name)'; " + (existing.isEmpty
            ? "there are no snapshots yet"
            : "existing: " + existing.map(\.name).joined(separator: ", ")))
    }

    /// Create of a name that is taken, without --force (both paths).
    public static func exists(_ name: String, id: String) -> LabrunError {
        LabrunError("snapshot '\(name)' already exists (ID \(id)); choose another name, or pass --force to replace it")
    }

    public static func formatSeconds(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000) s"
    }
}
