/// The parts of a qcow2 image that Qcow2Space and Qcow2SnapshotRename read: the header, the
/// refcounts and the snapshot table, each checked against the format's rules and QEMU's
/// limits (docs/interop/qcow2.txt; block/qcow2.h) so that a corrupt or hostile file yields
/// nil instead of a crash or an unbounded read. Every read is a pread through `fd`.
struct Qcow2File {
    /// QEMU's limits (block/qcow2.h): cluster sizes 512 B…2 MiB, an L1 table of at most
    /// 32 MiB, a refcount table of at most 8 MiB, a snapshot table of at most 64 MiB.
    static let minClusterBits = 9, maxClusterBits = 21
    static let maxL1Bytes = 32 << 20
    static let maxRefcountTableBytes = 8 << 20
    static let maxSnapshotTableBytes = 64 << 20
    /// Incompatible feature bits this code understands: bit 3 (compression type; only the
    /// compressed data changes, not its descriptor) and bit 4 (extended L2 entries). Bit 0
    /// (dirty: refcounts may be stale under lazy refcounts), bit 1 (corrupt), bit 2 (external
    /// data file) and unknown bits are refused.
    static let understoodIncompatible: UInt64 = 1 << 3 | 1 << 4
    static let extendedL2Bit: UInt64 = 1 << 4
    /// Bits 9–55 of an L1 or standard L2 entry: the host offset.
    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    static let compressedBit: UInt64 = 1 << 62
    /// Header bytes 60–71: nb_snapshots (4) and snapshots_offset (8), written together.
    static let snapshotFieldsOffset: Int64 = 60

    let fd: FileDescriptor
    let fileSize: UInt64
    let version: UInt64
    let clusterBits: Int
    let virtualSize: UInt64
    let refcountOrder: Int
    let extendedL2: Bool
    let refcountTableOffset: UInt64
    let refcountTableEntries: Int
    let snapshotCount: Int
    let snapshotsOffset: UInt64

    var clusterSize: Int { 1 << clusterBits }
    /// Refcount entries per refcount block, as a power of two.
    var refcountBlockBits: Int { clusterBits + 3 - refcountOrder }
    /// L2 entries per L2 table.
    var l2Entries: Int { clusterSize / (extendedL2 ? 16 : 8) }
    func isAligned(_ offset: UInt64) -> Bool { offset & UInt64(clusterSize - 1) == 0 }

    /// Exactly `count` bytes at `offset` within the file, or nil.
    func bytes(_ offset: UInt64, _ count: Int) -> [UInt8]? {
        guard count >= 0, offset <= fileSize, UInt64(count) <= fileSize - offset else { return nil }
        if count == 0 { return [] }
        guard let buffer = try? fd.read(upTo: count, at: Int64(offset)).get(), buffer.count == count else { return nil }
        return buffer
    }

    /// Parses the header of the image open at `fd`; nil when it is not a qcow2 image this
    /// code may trust (see `understoodIncompatible`).
    init?(_ fd: FileDescriptor) {
        guard let length = try? fd.length(), length > 0 else { return nil }
        self.fd = fd
        fileSize = UInt64(length)
        guard let h = (try? fd.read(upTo: 104, at: 0).get()), h.count >= 72,
              Array(h[0..<4]) == ImageHeader.qcow2Magic else { return nil }
        version = h.be(4, 4)
        guard version == 2 || version == 3 else { return nil }
        let bits = Int(h.be(20, 4))
        guard (Self.minClusterBits...Self.maxClusterBits).contains(bits) else { return nil }
        clusterBits = bits
        virtualSize = h.be(24, 8)
        if version == 3 {
            guard h.count == 104, h.be(100, 4) >= 104 else { return nil }
            let incompatible = h.be(72, 8)
            guard incompatible & ~Self.understoodIncompatible == 0 else { return nil }
            extendedL2 = incompatible & Self.extendedL2Bit != 0
            let order = h.be(96, 4)
            guard order <= 6 else { return nil }
            refcountOrder = Int(order)
        } else {
            extendedL2 = false
            refcountOrder = 4
        }
        refcountTableOffset = h.be(48, 8)
        let tableClusters = h.be(56, 4)
        guard tableClusters > 0, tableClusters <= UInt64(Self.maxRefcountTableBytes >> bits),
              refcountTableOffset & UInt64((1 << bits) - 1) == 0, refcountTableOffset != 0 else { return nil }
        refcountTableEntries = Int(tableClusters) << (bits - 3)
        snapshotCount = Int(h.be(60, 4))
        snapshotsOffset = h.be(64, 8)
        guard snapshotCount <= Qcow2SnapshotTable.maxSnapshots,
              snapshotCount == 0 || (snapshotsOffset & UInt64((1 << bits) - 1) == 0 && snapshotsOffset != 0) else { return nil }
    }

    // MARK: Refcounts

    /// The refcount table and every refcount block it names, read once.
    struct Refcounts {
        let order: Int
        let blockBits: Int
        /// Refcount block offsets by refcount table index (0: none).
        let table: [UInt64]
        /// Each present block's bytes, by refcount table index.
        var blocks: [Int: [UInt8]]

        /// The refcount of host cluster `cluster`, or nil when no refcount block covers it.
        func refcount(_ cluster: UInt64) -> UInt64? {
            let index = cluster >> UInt64(blockBits)
            guard index < UInt64(table.count), let block = blocks[Int(index)] else { return nil }
            return Self.entry(block, Int(cluster & ((1 << UInt64(blockBits)) - 1)), order: order)
        }

        /// Entry `i` of a refcount block: sub-byte widths are packed from the low bit of
        /// each byte up (as QEMU's get_refcount_ro0…2 read them), wider ones big-endian.
        static func entry(_ block: [UInt8], _ i: Int, order: Int) -> UInt64 {
            if order >= 3 {
                return block.withUnsafeBytes { raw in
                    switch order {
                    case 3: UInt64(raw[i])
                    case 4: UInt64(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).bigEndian)
                    case 5: UInt64(raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).bigEndian)
                    default: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).bigEndian
                    }
                }
            }
            let bits = 1 << order
            let bit = i * bits
            return UInt64(block[bit >> 3] >> UInt8(bit & 7)) & ((1 << UInt64(bits)) - 1)
        }

        /// Where entry `i` lives in its block: the byte range to rewrite after changing it.
        static func byteRange(_ i: Int, order: Int) -> Range<Int> {
            if order >= 3 {
                let width = 1 << (order - 3)
                return (i * width)..<(i * width + width)
            }
            let byte = (i << order) >> 3
            return byte..<(byte + 1)
        }

        static func setEntry(_ block: inout [UInt8], _ i: Int, order: Int, to value: UInt64) {
            if order >= 3 {
                let width = 1 << (order - 3)
                for k in 0..<width { block[i * width + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - k))) }
                return
            }
            let bits = 1 << order
            let bit = i * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(bit & 7)
            block[bit >> 3] = (block[bit >> 3] & ~mask) | (UInt8(truncatingIfNeeded: value) << UInt8(bit & 7)) & mask
        }

        /// Host clusters with a refcount above zero.
        var usedClusters: UInt64 {
            var used: UInt64 = 0
            for block in blocks.values {
                let entries = block.count * 8 >> order
                if order == 3 {
                    for byte in block where byte != 0 { used += 1 }
                } else if order > 3 {
                    let width = 1 << (order - 3)
                    var i = 0
                    while i < block.count {
                        if block[i..<(i + width)].contains(where: { $0 != 0 }) { used += 1 }
                        i += width
                    }
                } else {
                    for i in 0..<entries where Self.entry(block, i, order: order) != 0 { used += 1 }
                }
            }
            return used
        }
    }

    /// Reads the refcount table and blocks; nil when an entry is unaligned, points outside
    /// the file, or the blocks add up to more than the file holds.
    func refcounts() -> Refcounts? {
        guard let raw = bytes(refcountTableOffset, refcountTableEntries * 8) else { return nil }
        var table: [UInt64] = []
        table.reserveCapacity(refcountTableEntries)
        var blocks: [Int: [UInt8]] = [:]
        var total: UInt64 = 0
        for i in 0..<refcountTableEntries {
            let entry = raw.be(i * 8, 8)
            table.append(entry)
            guard entry != 0 else { continue }
            guard entry & 0x1FF == 0, isAligned(entry) else { return nil }
            total += UInt64(clusterSize)
            guard total <= fileSize, let block = bytes(entry, clusterSize) else { return nil }
            blocks[i] = block
        }
        return Refcounts(order: refcountOrder, blockBits: refcountBlockBits, table: table, blocks: blocks)
    }

    // MARK: Snapshot table

    /// One entry of the snapshot table, with its bytes as stored (without the padding).
    struct SnapshotEntry {
        let offset: UInt64
        let raw: [UInt8]
        var l1Offset: UInt64 { raw.be(0, 8) }
        var l1Size: Int { Int(raw.be(8, 4)) }
        var idSize: Int { Int(raw.be(12, 2)) }
        var nameSize: Int { Int(raw.be(14, 2)) }
        var extraSize: Int { Int(raw.be(36, 4)) }
        var id: String { String(decoding: raw[(40 + extraSize)..<(40 + extraSize + idSize)], as: UTF8.self) }
        var name: String { String(decoding: raw[(40 + extraSize + idSize)...], as: UTF8.self) }
        /// The 64-bit VM state size in the extra data when present (version 3), else the
        /// 32-bit field.
        var vmStateSize: UInt64 { extraSize >= 8 ? raw.be(40, 8) : raw.be(32, 4) }
        /// Bytes the entry takes in the table: padded to a multiple of 8.
        var paddedSize: Int { (raw.count + 7) & ~7 }

        /// The same entry under another name: every other byte kept.
        func renamed(_ name: String) -> SnapshotEntry {
            var out = Array(raw[0..<(40 + extraSize + idSize)])
            let bytes = Array(name.utf8)
            out[14] = UInt8(bytes.count >> 8)
            out[15] = UInt8(bytes.count & 0xFF)
            return SnapshotEntry(offset: offset, raw: out + bytes)
        }
    }

    /// The snapshot table's entries and its size in bytes (padding included); nil when an
    /// entry runs past the file or QEMU's limits.
    func snapshotTable() -> (entries: [SnapshotEntry], size: Int)? {
        var entries: [SnapshotEntry] = []
        var offset = snapshotsOffset
        var size = 0
        for _ in 0..<snapshotCount {
            guard let fixed = bytes(offset, 40) else { return nil }
            let idSize = Int(fixed.be(12, 2)), nameSize = Int(fixed.be(14, 2)), extraSize = Int(fixed.be(36, 4))
            // QEMU reads at most 1 KiB of extra data; names and ids fit in 16 bits.
            guard extraSize <= 1024, let rest = bytes(offset + 40, extraSize + idSize + nameSize) else { return nil }
            let entry = SnapshotEntry(offset: offset, raw: fixed + rest)
            size += entry.paddedSize
            guard size <= Self.maxSnapshotTableBytes else { return nil }
            entries.append(entry)
            offset += UInt64(entry.paddedSize)
        }
        return (entries, size)
    }

    /// The host clusters covering `count` bytes at `offset` (at least one when count > 0).
    func clusters(covering offset: UInt64, _ count: UInt64) -> ClosedRange<UInt64>? {
        guard count > 0 else { return nil }
        return (offset >> UInt64(clusterBits))...((offset + count - 1) >> UInt64(clusterBits))
    }
}
