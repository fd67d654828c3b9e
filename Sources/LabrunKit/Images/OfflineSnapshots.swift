/// Snapshots of the runtime image while no VM is using it, through qemu-img, with labrun's
/// name-safety policy: names are validated, an existing name is never silently duplicated,
/// a missing name is refused with the list of existing ones, an ambiguous (duplicated) name is
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

    /// The snapshots, oldest first.
    public func list() throws(LabrunError) -> [SnapshotInfo] {
        try ImageLock.requireUnlocked([image], action: "list snapshots")
        return try snapshotTable()
    }

    /// Takes a disk-only snapshot named `name`. An existing snapshot of that name is refused,
    /// or with `force` deleted first so that no duplicate remains. Returns the new snapshot.
    @discardableResult
    public func create(name: String, force: Bool = false) throws(LabrunError) -> SnapshotInfo {
        try SnapshotName.validateNew(name)
        try ImageLock.requireUnlocked([image], action: "create snapshot '\(name)'")
        if let old = try unique(name, in: snapshotTable()) {
            guard force else { throw Messages.exists(name, id: old.id) }
            try qemuImg.deleteSnapshot(image, name: name)
        }
        try qemuImg.createSnapshot(image, name: name)
        guard let new = try unique(name, in: snapshotTable()) else {
            throw LabrunError("qemu-img reported success but snapshot '\(name)' is not in \(image)")
        }
        return new
    }

    /// Reverts the runtime image to snapshot `name`; returns it.
    @discardableResult
    public func restore(name: String) throws(LabrunError) -> SnapshotInfo {
        let snapshot = try existing(name, action: "restore snapshot '\(name)'")
        try qemuImg.applySnapshot(image, name: name)
        return snapshot
    }

    /// Deletes snapshot `name`; returns what it was.
    @discardableResult
    public func delete(name: String) throws(LabrunError) -> SnapshotInfo {
        let snapshot = try existing(name, action: "delete snapshot '\(name)'")
        try qemuImg.deleteSnapshot(image, name: name)
        return snapshot
    }

    /// Validates, checks the lock, and finds exactly one snapshot called `name`.
    private func existing(_ name: String, action: String) throws(LabrunError) -> SnapshotInfo {
        try SnapshotName.validate(name)
        try ImageLock.requireUnlocked([image], action: action)
        let all = try snapshotTable()
        guard let snapshot = try unique(name, in: all) else { throw Messages.missing(name, existing: all) }
        return snapshot
    }

    /// The image's snapshots: read straight from its qcow2 header (a few preads), or through
    /// qemu-img when the table reads as anything unexpected.
    private func snapshotTable() throws(LabrunError) -> [SnapshotInfo] {
        if let table = Qcow2SnapshotTable.read(image) { return table }
        return try qemuImg.snapshots(image)
    }

    /// The snapshot called `name`, nil when there is none; refuses when several share it
    /// (qemu-img would act on the first only, QEMU on whichever it finds).
    private func unique(_ name: String, in all: [SnapshotInfo]) throws(LabrunError) -> SnapshotInfo? {
        let matches = all.filter { $0.name == name }
        if matches.count > 1 {
            let ids = matches.map(\.id).joined(separator: ", ")
            throw LabrunError("\(matches.count) snapshots are named '\(name)' (IDs \(ids)); remove the extra ones with `qemu-img snapshot -d ID \(image)` while the VM is stopped")
        }
        return matches.first
    }
}
