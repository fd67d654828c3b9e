/// The user-facing sentences for snapshot outcomes and errors: the one place where the live
/// and offline paths' typed results become text, so both print exactly the same thing.
public enum Messages {
    /// The line a snapshot command prints (nil for a list, which is a table).
    public static func text(of outcome: SnapshotOutcome) -> String? {
        switch outcome {
        case .listed: return nil
        case .created(let name, let s, let seconds, let diskOnly, let share):
            return created(s, name: name, seconds: seconds) + (diskOnly ? "; RAM was not saved" : "") + text(of: share)
        case .restored(let s, let seconds, let live, let resumesVM, let share):
            return restored(name: s.name, seconds: seconds, live: live, resumesVM: resumesVM) + text(of: share)
        case .deleted(let name, _):
            return deleted(name: name)
        }
    }

    static func text(of share: ShareNote?) -> String {
        switch share {
        case nil: ""
        case .unmountedAround: "; /mnt was unmounted in the guest around it"
        case .remountFailed(let why): "; /mnt could not be mounted again: \(why)"
        }
    }

    /// "snapshot 'x' not created" and the like: what a failed request did not do.
    static func notDone(_ request: SnapshotRequest) -> String {
        switch request {
        case .list: "snapshots not listed"
        case .create(let n, _, _): "snapshot '\(n)' not created"
        case .restore(let n): "snapshot '\(n)' not restored"
        case .delete(let n): "snapshot '\(n)' not deleted"
        }
    }

    public static func text(of error: SnapshotError) -> String {
        switch error {
        case .badName(let why): return why
        case .exists(let name, let id): return exists(name, id: id).message
        case .missing(let name, let existing):
            return "no snapshot named '\(name)'; " + (existing.isEmpty ? "there are no snapshots yet" : "existing: " + existing.joined(separator: ", "))
        case .ambiguous(let name, let ids, let image):
            return "\(ids.count) snapshots are named '\(name)' (IDs \(ids.joined(separator: ", "))); remove the extra ones with `qemu-img snapshot -d ID \(image)` while the VM is stopped"
        case .diskOnlyWhileRunning(let name):
            return "snapshot '\(name)' is disk only (no VM state): stop the VM (`labrun stop`), then restore it"
        case .shapeMismatch(let name, let recorded, let current):
            return "snapshot '\(name)' was taken in a VM with \(recorded), this one has \(current): stop it and boot with `labrun boot \(recorded.bootFlags)` to restore it"
        case .failed(let request, let detail, let hint):
            return request == .list ? detail : "\(notDone(request)): \(detail)\(hint)"
        case .restoreFailed(let name, let detail, let outcome):
            return "snapshot '\(name)' not restored: \(detail); \(outcome)"
        case .other(let e): return e.message
        }
    }

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

    /// Create of a name that is taken, without --force (both paths).
    public static func exists(_ name: String, id: String) -> LabrunError {
        LabrunError("snapshot '\(name)' already exists (ID \(id)); choose another name, or pass --force to replace it")
    }

    public static func formatSeconds(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000) s"
    }
}
