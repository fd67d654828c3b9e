/// One snapshot vocabulary for the live path (the supervisor, through QMP) and the offline
/// path (qemu-img): the same requests, the same rules, the same outcomes and errors, and one
/// rendering of them to text (`Messages`).

/// What a snapshot command asks for.
public enum SnapshotRequest: Equatable, Sendable {
    case list
    /// `force` replaces a snapshot of the same name; `diskOnly` saves no RAM (live only:
    /// offline snapshots are always disk only).
    case create(name: String, force: Bool = false, diskOnly: Bool = false)
    case restore(name: String)
    case delete(name: String)

    public var name: String? {
        switch self {
        case .list: nil
        case .create(let n, _, _), .restore(let n), .delete(let n): n
        }
    }

    /// The verb for "cannot …" refusals ("create snapshot 'x'").
    public var action: String {
        switch self {
        case .list: "list snapshots"
        case .create(let n, _, _): "create snapshot '\(n)'"
        case .restore(let n): "restore snapshot '\(n)'"
        case .delete(let n): "delete snapshot '\(n)'"
        }
    }
}

/// Something the share (9p at /mnt) needed around a live snapshot.
public enum ShareNote: Codable, Equatable, Sendable {
    /// Unmounted in the guest for savevm, mounted again after.
    case unmountedAround
    /// Could not be mounted again afterwards.
    case remountFailed(String)
}

/// What a snapshot command did.
public enum SnapshotOutcome: Codable, Equatable, Sendable {
    case listed([SnapshotInfo])
    /// `snapshot` is nil only when the new snapshot could not be read back.
    case created(name: String, snapshot: SnapshotInfo?, seconds: Double, diskOnlyAsked: Bool, share: ShareNote?)
    /// `live`: the running VM went on from the snapshot; else the disk was reverted and
    /// `resumesVM` says whether the next boot resumes the saved RAM.
    case restored(snapshot: SnapshotInfo, seconds: Double, live: Bool, resumesVM: Bool, share: ShareNote?)
    case deleted(name: String, snapshot: SnapshotInfo?)

    public var snapshots: [SnapshotInfo]? { if case .listed(let l) = self { return l }; return nil }

    public var seconds: Double? {
        switch self {
        case .created(_, _, let s, _, _), .restored(_, let s, _, _, _): s
        default: nil
        }
    }
}

/// Why a snapshot command was refused or failed. `Messages.text(of:)` renders each one.
public enum SnapshotError: Error, Equatable, Sendable {
    /// The name breaks SnapshotName's rules (the reason is SnapshotName's own sentence).
    case badName(String)
    case exists(name: String, id: String)
    case missing(name: String, existing: [String])
    case ambiguous(name: String, ids: [String], image: String)
    /// A disk-only snapshot cannot be loaded into a running VM.
    case diskOnlyWhileRunning(name: String)
    case shapeMismatch(name: String, recorded: VMShape, current: VMShape)
    /// QEMU (or qemu-img) refused or failed; `detail` is its reason, `hint` what to do.
    case failed(SnapshotRequest, detail: String, hint: String = "")
    /// A failed live restore, and what became of the VM.
    case restoreFailed(name: String, detail: String, outcome: String)
    /// Anything else, already one user-facing line (locks, missing images, I/O).
    case other(LabrunError)

    public var asLabrunError: LabrunError {
        if case .other(let e) = self { return e }
        return LabrunError(Messages.text(of: self))
    }
}

/// The rules both paths apply, once, before anything is written: name validation, duplicate
/// and missing names, and (live) disk-only snapshots and VM-shape mismatches.
public enum SnapshotRules {
    /// Refuses a request whose name is unsafe (the same check on every path).
    public static func validate(_ request: SnapshotRequest) throws(SnapshotError) {
        do {
            switch request {
            case .list: break
            case .create(let n, _, _): try SnapshotName.validateNew(n)
            case .restore(let n), .delete(let n): try SnapshotName.validate(n)
            }
        } catch { throw .badName(error.message) }
    }

    /// The snapshot called `name` in `existing`, nil when there is none; refuses when several
    /// share it (qemu-img would act on the first only, QEMU on whichever it finds).
    public static func unique(_ name: String, in existing: [SnapshotInfo], image: String) throws(SnapshotError) -> SnapshotInfo? {
        let matches = existing.filter { $0.name == name }
        if matches.count > 1 { throw .ambiguous(name: name, ids: matches.map(\.id), image: image) }
        return matches.first
    }

    /// For create: the snapshot it replaces (with force), or nil; refuses a taken name.
    public static func checkCreate(_ name: String, force: Bool, existing: [SnapshotInfo], image: String) throws(SnapshotError) -> SnapshotInfo? {
        guard let old = try unique(name, in: existing, image: image) else { return nil }
        guard force else { throw .exists(name: name, id: old.id) }
        return old
    }

    /// For restore and delete: the one snapshot of that name.
    public static func target(_ name: String, existing: [SnapshotInfo], image: String) throws(SnapshotError) -> SnapshotInfo {
        guard let s = try unique(name, in: existing, image: image) else { throw .missing(name: name, existing: existing.map(\.name)) }
        return s
    }

    /// For a live restore: the VM state must exist and fit this VM (QEMU resets the machine
    /// and reverts the disk before it reads the state, so a load that fails is destructive).
    public static func checkLiveRestore(_ snapshot: SnapshotInfo, recorded: VMShape?, current: VMShape) throws(SnapshotError) {
        guard snapshot.hasVMState else { throw .diskOnlyWhileRunning(name: snapshot.name) }
        if let recorded, recorded != current { throw .shapeMismatch(name: snapshot.name, recorded: recorded, current: current) }
    }
}
