/// Snapshots of the runtime image while no VM is using it, through qemu-img, under the same
/// rules as the live path (`SnapshotRules`): an existing name is never silently duplicated, a
/// missing name is refused with the list of existing ones, an ambiguous (duplicated) name is
/// refused, and nothing is written while another process holds the image. Every refusal
/// happens before anything is written.
public struct OfflineSnapshots: Sendable {
    public let qemuImg: QemuImg
    /// The runtime layer (the only layer that holds snapshots).
    public let image: String

    public init(qemuImg: QemuImg, image: String) {
        self.qemuImg = qemuImg
        self.image = image
    }

    /// Carries out one request.
    public func perform(_ request: SnapshotRequest) throws(SnapshotError) -> SnapshotOutcome {
        try SnapshotRules.validate(request)
        let started = monotonicSeconds()
        do {
            try ImageLock.requireUnlocked([image], action: request.action)
            let existing = try snapshotTable()
            switch request {
            case .list:
                return .listed(existing)
            case .create(let name, let force, _):
                if try SnapshotRules.checkCreate(name, force: force, existing: existing, image: image) != nil {
                    try qemuImg.deleteSnapshot(image, name: name)
                }
                try qemuImg.createSnapshot(image, name: name)
                guard let new = try SnapshotRules.unique(name, in: snapshotTable(), image: image) else {
                    throw SnapshotError.failed(request, detail: "qemu-img reported success but the snapshot is not in \(image)")
                }
                return .created(name: name, snapshot: new, seconds: monotonicSeconds() - started, diskOnlyAsked: false, share: nil)
            case .restore(let name):
                let snapshot = try SnapshotRules.target(name, existing: existing, image: image)
                try qemuImg.applySnapshot(image, name: name)
                return .restored(snapshot: snapshot, seconds: monotonicSeconds() - started, live: false,
                                 resumesVM: snapshot.hasVMState, share: nil)
            case .delete(let name):
                let snapshot = try SnapshotRules.target(name, existing: existing, image: image)
                try qemuImg.deleteSnapshot(image, name: name)
                return .deleted(name: name, snapshot: snapshot)
            }
        } catch let e as SnapshotError {
            throw e
        } catch let e as LabrunError {
            throw .other(e)
        } catch {
            throw .other(LabrunError("\(error)"))
        }
    }

    /// The snapshots, oldest first.
    public func list() throws(LabrunError) -> [SnapshotInfo] {
        try run(.list).snapshots ?? []
    }

    /// Takes a disk-only snapshot named `name`. An existing snapshot of that name is refused,
    /// or with `force` deleted first so that no duplicate remains. Returns the new snapshot.
    @discardableResult
    public func create(name: String, force: Bool = false) throws(LabrunError) -> SnapshotInfo {
        guard case .created(_, let s?, _, _, _) = try run(.create(name: name, force: force)) else {
            throw LabrunError("snapshot '\(name)' not created")
        }
        return s
    }

    /// Reverts the runtime image to snapshot `name`; returns it.
    @discardableResult
    public func restore(name: String) throws(LabrunError) -> SnapshotInfo {
        guard case .restored(let s, _, _, _, _) = try run(.restore(name: name)) else { throw LabrunError("snapshot '\(name)' not restored") }
        return s
    }

    /// Deletes snapshot `name`; returns what it was.
    @discardableResult
    public func delete(name: String) throws(LabrunError) -> SnapshotInfo {
        guard case .deleted(_, let s?) = try run(.delete(name: name)) else { throw LabrunError("snapshot '\(name)' not deleted") }
        return s
    }

    private func run(_ request: SnapshotRequest) throws(LabrunError) -> SnapshotOutcome {
        do { return try perform(request) } catch { throw error.asLabrunError }
    }

    /// The image's snapshots: read straight from its qcow2 header (a few preads), or through
    /// qemu-img when the table reads as anything unexpected.
    private func snapshotTable() throws(LabrunError) -> [SnapshotInfo] {
        if let table = Qcow2SnapshotTable.read(image) { return table }
        return try qemuImg.snapshots(image)
    }
}
