/// What one internal snapshot costs in a qcow2 file.
public struct Qcow2SnapshotSpace: Equatable, Sendable {
    public let id: String
    public let name: String
    /// Bytes of saved VM state (0 for a disk-only snapshot).
    public let vmStateSize: UInt64
    /// Bytes of host clusters that only this snapshot holds: its L1 table, and the L2 tables
    /// and data clusters (VM state included: QEMU keeps it in the snapshot's L1/L2 beyond the
    /// virtual disk) whose every reference is this snapshot's.
    public let exclusiveBytes: UInt64
    /// What `qemu-img snapshot -d` of this snapshot alone frees: `exclusiveBytes`, plus the
    /// clusters the snapshot table shrinks by (its entry removed; the last snapshot's
    /// deletion frees the whole table).
    public let deleteFreesBytes: UInt64
}

/// A qcow2 file's space, as its refcounts account for it.
public struct Qcow2SpaceReport: Equatable, Sendable {
    public let clusterSize: Int
    /// The file's length in bytes.
    public let fileBytes: UInt64
    /// Host clusters with a refcount above zero (metadata included), in bytes.
    public let allocatedBytes: UInt64
    /// In snapshot table order.
    public let snapshots: [Qcow2SnapshotSpace]
}

/// Measures, for each internal snapshot of a qcow2 image, the space deleting it alone would
/// free, read directly from the image's refcounts (layout: QEMU's docs/interop/qcow2.txt).
///
/// Deletion is simulated as QEMU's qcow2_snapshot_delete does it (block/qcow2-snapshot.c,
/// qcow2_update_snapshot_refcount in block/qcow2-refcount.c): every reference the snapshot
/// makes loses one count — each L2 table its L1 names, each data cluster each of those L2
/// tables names (a data cluster's refcount counts the L1 tables that reach it, shared L2
/// tables or not), each cluster a compressed cluster's bytes touch, and its L1 table. The
/// clusters whose count reaches zero are what deletion frees.
///
/// Cost: the refcount table and blocks once, then per snapshot one pread for its L1 table and
/// one per L2 table (a 20 GiB disk with 64 KiB clusters has 40). Anything inconsistent — an
/// unaligned or out-of-file offset, a reference to a cluster whose refcount is too low, a
/// dirty (lazy refcounts) or corrupt image, an unknown incompatible feature — gives nil, as
/// does a file that would need more than `maxMetadataBytes` of L2 reads or `maxReferences`
/// counted references.
public enum Qcow2Space {
    /// Caps against a hostile or corrupt file: at most this many bytes of L1 and L2 tables
    /// read in all, and this many cluster references held in memory (8 bytes each).
    static let maxMetadataBytes: UInt64 = 4 << 30
    static let maxReferences = 32 << 20

    public static func measure(_ path: String) -> Qcow2SpaceReport? {
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return nil }
        defer { fd.close() }
        guard let file = Qcow2File(fd), let refcounts = file.refcounts(),
              let (entries, tableSize) = file.snapshotTable() else { return nil }
        let cluster = UInt64(file.clusterSize)
        var budget = maxMetadataBytes
        var snapshots: [Qcow2SnapshotSpace] = []
        let tableClusters = (UInt64(tableSize) + cluster - 1) / cluster
        for entry in entries {
            guard let freed = exclusiveClusters(file, refcounts, entry, budget: &budget) else { return nil }
            // The table without this entry, as QEMU rewrites it before dropping the refcounts.
            let smaller = UInt64(tableSize - entry.paddedSize)
            let shrink = tableClusters - (smaller + cluster - 1) / cluster
            snapshots.append(Qcow2SnapshotSpace(
                id: entry.id, name: entry.name, vmStateSize: entry.vmStateSize,
                exclusiveBytes: freed * cluster, deleteFreesBytes: (freed + shrink) * cluster))
        }
        return Qcow2SpaceReport(clusterSize: file.clusterSize, fileBytes: file.fileSize,
                                allocatedBytes: refcounts.usedClusters * cluster, snapshots: snapshots)
    }

    /// Host clusters with a refcount above zero, or nil (for comparing before and after).
    static func usedClusters(_ path: String) -> UInt64? {
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return nil }
        defer { fd.close() }
        return Qcow2File(fd)?.refcounts()?.usedClusters
    }

    /// The number of host clusters whose refcount deleting `entry` brings to zero.
    static func exclusiveClusters(_ file: Qcow2File, _ refcounts: Qcow2File.Refcounts,
                                  _ entry: Qcow2File.SnapshotEntry, budget: inout UInt64) -> UInt64? {
        let l1Bytes = UInt64(entry.l1Size) * 8
        guard l1Bytes <= UInt64(Qcow2File.maxL1Bytes), file.isAligned(entry.l1Offset), l1Bytes <= budget else { return nil }
        budget -= l1Bytes
        guard let l1 = file.bytes(entry.l1Offset, Int(l1Bytes)) else { return nil }
        let cb = UInt64(file.clusterBits)
        let l2Stride = file.extendedL2 ? 16 : 8
        // Compressed descriptors: host offset in bits 0..<x, additional 512-byte sectors in x…61,
        // x = 62 - (cluster_bits - 8).
        let sizeShift = UInt64(62 - (file.clusterBits - 8))
        let sizeMask = (UInt64(1) << UInt64(file.clusterBits - 8)) - 1
        let compressedOffsetMask = (UInt64(1) << sizeShift) - 1

        var references: [UInt64] = []
        func add(_ c: UInt64) -> Bool {
            guard references.count < maxReferences else { return false }
            references.append(c)
            return true
        }
        if let l1Clusters = file.clusters(covering: entry.l1Offset, l1Bytes) {
            for c in l1Clusters { guard add(c) else { return nil } }
        }
        var seenL2 = Set<UInt64>()
        for i in 0..<entry.l1Size {
            let l2Offset = l1.be(i * 8, 8) & Qcow2File.offsetMask
            guard l2Offset != 0 else { continue }
            // QEMU never names one L2 table twice in an L1; a file that does is corrupt (and
            // could make this loop read one cluster millions of times).
            guard file.isAligned(l2Offset), seenL2.insert(l2Offset).inserted,
                  UInt64(file.clusterSize) <= budget else { return nil }
            budget -= UInt64(file.clusterSize)
            guard let l2 = file.bytes(l2Offset, file.clusterSize), add(l2Offset >> cb) else { return nil }
            // One unaligned 8-byte load per entry: this loop runs once per mapped cluster.
            let words = l2.withUnsafeBytes { raw in
                stride(from: 0, to: raw.count, by: l2Stride).map { raw.loadUnaligned(fromByteOffset: $0, as: UInt64.self).bigEndian }
            }
            for e in words {
                if e & Qcow2File.compressedBit != 0 {
                    let start = (e & compressedOffsetMask) & ~511
                    let sectors = ((e >> sizeShift) & sizeMask) + 1
                    guard start != 0, let range = file.clusters(covering: start, sectors * 512) else { return nil }
                    for c in range { guard add(c) else { return nil } }
                } else {
                    let host = e & Qcow2File.offsetMask
                    guard host != 0 else { continue }
                    guard file.isAligned(host), add(host >> cb) else { return nil }
                }
            }
        }
        references.sort()
        var freed: UInt64 = 0
        var k = 0
        while k < references.count {
            let c = references[k]
            var drop: UInt64 = 0
            while k < references.count && references[k] == c { drop += 1; k += 1 }
            guard let count = refcounts.refcount(c), count >= drop else { return nil }
            if count == drop { freed += 1 }
        }
        return freed
    }
}
