/// Renames an internal snapshot of a qcow2 image that no process has open, by rewriting the
/// snapshot table: qemu-img has no rename (layout: QEMU's docs/interop/qcow2.txt).
///
/// The image is locked the way QEMU locks it (OFD shared locks on bytes 100–103, "holds every
/// permission", and 200–203, "shares none"), then checked: another QEMU, qemu-img or qemu-io
/// holding any of those bytes means it is in use and the rename is refused. While the lock is
/// held no QEMU process can open the image.
///
/// The new table is written the way QEMU's qcow2_write_snapshots does (crash-safe): into free
/// clusters (refcount 0, covered by an existing refcount block; the first such run, often
/// past the end of the file), whose refcounts are then set to 1; fsync; then the header's
/// nb_snapshots and snapshots_offset in one 12-byte pwrite; fsync; then the old table's
/// clusters lose their count; fsync. A crash before the header write leaves the old table
/// in force and at worst leaked clusters (`qemu-img check -r leaks` reclaims them); after it,
/// the new one. Every byte of every entry but the renamed one's name (and its length field) is
/// kept: ids, times, L1 offsets, extra data.
///
/// Fallback: when no refcount block covers a free run long enough (the last block is full),
/// and the new table fits in the clusters the old one occupies, the table is rewritten in
/// place (`Method.inPlace`) — not crash-safe: a crash during that one pwrite can leave a torn
/// table. Otherwise the rename is refused rather than growing the refcount structures.
public enum Qcow2SnapshotRename {
    /// How the table was written.
    public enum Method: Equatable, Sendable {
        /// Into newly allocated clusters, then switched to by the header (crash-safe).
        case newClusters
        /// Over the old table (see the type's documentation).
        case inPlace
    }

    /// QEMU's lock bytes: 100+n "holds permission n", 200+n "forbids permission n", for
    /// its four permissions (see ImageLock).
    static let lockRanges = ImageLock.ranges

    /// Renames snapshot `old` (by name) of the qcow2 image at `path` to `new`. Refuses with a
    /// one-line LabrunError when the image is in use, `new` is not a valid name or already
    /// names or identifies a snapshot, `old` does not exist (or names several), or the image
    /// is not a qcow2 file this code trusts to rewrite.
    @discardableResult
    public static func rename(_ path: String, from old: String, to new: String) throws(LabrunError) -> Method {
        let action = "rename snapshot '\(old)' to '\(new)'"
        try SnapshotName.validateNew(new)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, FileDescriptor.readWrite)
        } catch {
            throw LabrunError("cannot \(action): \(path): \(error.errno)")
        }
        guard takeLocks(fd) else {
            // Closing drops our own locks, so the probe sees only the other holder's.
            fd.close()
            try ImageLock.requireUnlocked([path], action: action)
            throw LabrunError("cannot \(action): \(path) was in use by another process a moment ago; try again")
        }
        defer { fd.close() }

        func refuse(_ why: String) -> LabrunError { LabrunError("cannot \(action): \(why)") }
        let damaged = "\(path) is not a qcow2 image labrun can rewrite (run `qemu-img check \(path)`)"
        guard let file = Qcow2File(fd), var refcounts = file.refcounts(),
              let (entries, oldSize) = file.snapshotTable() else { throw refuse(damaged) }
        let matches = entries.indices.filter { entries[$0].name == old }
        guard let index = matches.first else { throw refuse("\(path) has no snapshot named '\(old)'") }
        guard matches.count == 1 else {
            throw refuse("\(path) has \(matches.count) snapshots named '\(old)' (ids \(matches.map { entries[$0].id }.joined(separator: ", ")))")
        }
        if let clash = entries.first(where: { $0.name == new || $0.id == new }) {
            throw refuse(clash.name == new ? "a snapshot named '\(new)' already exists" : "'\(new)' is the id of snapshot '\(clash.name)'")
        }

        var table: [UInt8] = []
        for (i, entry) in entries.enumerated() {
            let raw = i == index ? entry.renamed(new).raw : entry.raw
            table += raw + [UInt8](repeating: 0, count: ((raw.count + 7) & ~7) - raw.count)
        }
        guard table.count <= Qcow2File.maxSnapshotTableBytes else { throw refuse("the snapshot table would exceed QEMU's 64 MiB") }

        let cluster = UInt64(file.clusterSize)
        let oldClusters = file.clusters(covering: file.snapshotsOffset, UInt64(oldSize))!
        // The old table's clusters must be counted, or freeing them would corrupt the image.
        guard oldClusters.allSatisfy({ (refcounts.refcount($0) ?? 0) > 0 }) else { throw refuse(damaged) }
        let needed = (UInt64(table.count) + cluster - 1) / cluster
        let padded = table + [UInt8](repeating: 0, count: Int(needed * cluster) - table.count)

        do {
            guard let start = freeRun(refcounts, count: needed) else {
                guard needed <= UInt64(oldClusters.count) else {
                    throw refuse("no refcount block covers free space for the new snapshot table; rename it with QEMU instead")
                }
                try fd.write(table, at: Int64(file.snapshotsOffset))
                try fd.synchronize()
                return .inPlace
            }
            let offset = start << UInt64(file.clusterBits)
            try fd.write(padded, at: Int64(offset))
            for c in start..<(start + needed) { try setRefcount(fd, &refcounts, c, to: 1) }
            try fd.synchronize()
            var fields = [UInt8](repeating: 0, count: 12)
            for k in 0..<4 { fields[k] = UInt8(truncatingIfNeeded: UInt64(entries.count) >> UInt64(8 * (3 - k))) }
            for k in 0..<8 { fields[4 + k] = UInt8(truncatingIfNeeded: offset >> UInt64(8 * (7 - k))) }
            try fd.write(fields, at: Qcow2File.snapshotFieldsOffset)
            try fd.synchronize()
            for c in oldClusters { try setRefcount(fd, &refcounts, c, to: refcounts.refcount(c)! - 1) }
            try fd.synchronize()
            return .newClusters
        } catch let error as LabrunError {
            throw error
        } catch {
            throw refuse("\(path): \(error)")
        }
    }

    /// How long a conflicting lock may take to go away before the image counts as in use.
    /// A lock can outlive its holder's close by a moment: a process spawned by another thread
    /// shares the holder's open file description until it execs, and OFD locks last until
    /// the description's last copy is closed.
    static let lockPatience = 0.5

    /// Takes QEMU's locks on `fd`; false when another open file description holds any of
    /// them for longer than `lockPatience` (QEMU's own order: apply, then check, so two
    /// racing openers cannot both win).
    static func takeLocks(_ fd: FileDescriptor) -> Bool {
        let deadline = monotonicSeconds() + lockPatience
        while true {
            let held = lockRanges.allSatisfy { range in
                (try? fd.lockShared(start: range.start, length: range.length)) != nil
                    && (try? fd.hasConflictingLock(start: range.start, length: range.length)) == false
            }
            if held { return true }
            if monotonicSeconds() >= deadline { return false }
            sleepSeconds(0.02)
        }
    }

    /// The first cluster of the first run of `count` clusters with refcount 0, all covered by
    /// existing refcount blocks; never cluster 0 (the header).
    static func freeRun(_ refcounts: Qcow2File.Refcounts, count: UInt64) -> UInt64? {
        let perBlock = UInt64(1) << UInt64(refcounts.blockBits)
        var runStart: UInt64 = 0, runLength: UInt64 = 0
        for index in refcounts.blocks.keys.sorted() {
            let first = UInt64(index) * perBlock
            if first != runStart + runLength { runLength = 0 }
            for c in first..<(first + perBlock) where c != 0 {
                if refcounts.refcount(c) == 0 {
                    if runLength == 0 { runStart = c }
                    runLength += 1
                    if runLength == count { return runStart }
                } else {
                    runLength = 0
                }
            }
        }
        return nil
    }

    /// Sets cluster `c`'s refcount in memory and on disk (only the bytes that hold it).
    static func setRefcount(_ fd: FileDescriptor, _ refcounts: inout Qcow2File.Refcounts, _ c: UInt64, to value: UInt64) throws(SystemCallError) {
        let index = Int(c >> UInt64(refcounts.blockBits))
        let i = Int(c & ((1 << UInt64(refcounts.blockBits)) - 1))
        guard var block = refcounts.blocks[index] else { throw SystemCallError(call: "refcount block", errno: .ioError) }
        Qcow2File.Refcounts.setEntry(&block, i, order: refcounts.order, to: value)
        refcounts.blocks[index] = block
        let bytes = Qcow2File.Refcounts.byteRange(i, order: refcounts.order)
        try fd.write(Array(block[bytes]), at: Int64(refcounts.table[index]) + Int64(bytes.lowerBound))
    }
}
