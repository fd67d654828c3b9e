/// Reads a qcow2 image's internal snapshot table directly (layout: QEMU's
/// docs/interop/qcow2.txt, "Snapshots"), for the offline path: listing this way costs a few
/// preads instead of starting `qemu-img info`, which dominated `snapshot list` and `create`.
/// Anything unexpected returns nil and the caller asks qemu-img instead.
public enum Qcow2SnapshotTable {
    /// At most this many entries are read (QEMU's own limit is 65536).
    static let maxSnapshots = 65536

    public static func read(_ path: String) -> [SnapshotInfo]? {
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return nil }
        defer { fd.close() }
        func bytes(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard count > 0, offset < UInt64(Int64.max) else { return count == 0 ? [] : nil }
            guard let buffer = try? fd.read(upTo: count, at: Int64(offset)).get(), buffer.count == count else { return nil }
            return buffer
        }
        guard let header = bytes(0, 72), Array(header[0..<4]) == ImageHeader.qcow2Magic else { return nil }
        let version = header.be(4, 4)
        guard version == 2 || version == 3 else { return nil }
        let count = Int(header.be(60, 4))
        let tableOffset = header.be(64, 8)
        guard count <= maxSnapshots else { return nil }
        guard count > 0 else { return [] }
        var out: [SnapshotInfo] = []
        var offset = tableOffset
        for _ in 0..<count {
            guard let fixed = bytes(offset, 40) else { return nil }
            let idSize = Int(fixed.be(12, 2)), nameSize = Int(fixed.be(14, 2))
            let extraSize = Int(fixed.be(36, 4))
            guard extraSize <= 1024 else { return nil }
            guard let rest = bytes(offset + 40, extraSize + idSize + nameSize) else { return nil }
            var vmState = fixed.be(32, 4)
            // Extra data: a 64-bit VM state size first (version 3 images, large states).
            if extraSize >= 8 { vmState = rest.be(0, 8) }
            let id = String(decoding: rest[extraSize..<(extraSize + idSize)], as: UTF8.self)
            let name = String(decoding: rest[(extraSize + idSize)...], as: UTF8.self)
            let clock = fixed.be(24, 8)
            out.append(SnapshotInfo(id: id, name: name, vmStateSize: vmState,
                                    dateSeconds: Int64(fixed.be(16, 4)), dateNanoseconds: Int64(fixed.be(20, 4)),
                                    vmClockSeconds: Int64(clock / 1_000_000_000), vmClockNanoseconds: Int64(clock % 1_000_000_000)))
            // Each entry is padded to a multiple of 8 bytes.
            let length = 40 + extraSize + idSize + nameSize
            offset += UInt64((length + 7) & ~7)
        }
        return out
    }
}

extension Array where Element == UInt8 {
    /// A big-endian unsigned integer of `width` bytes at `at`.
    func be(_ at: Int, _ width: Int) -> UInt64 {
        self[at..<(at + width)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
