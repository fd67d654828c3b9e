/// A fast 64-bit checksum of a byte stream (four multiply-rotate lanes over 32-byte stripes,
/// in the manner of xxHash64), to tell a damaged or truncated checkpoint file from a good one
/// before QEMU is given it. Not a cryptographic hash: it detects accidents, not attacks.
public struct Checksum: Sendable {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63

    private var lanes: (UInt64, UInt64, UInt64, UInt64)
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    public init(seed: UInt64 = 0) {
        lanes = (seed &+ Self.p1 &+ Self.p2, seed &+ Self.p2, seed, seed &- Self.p1)
    }

    @inline(__always)
    private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        let a = acc &+ input &* p2
        return ((a << 31) | (a >> 33)) &* p1
    }

    @inline(__always)
    private mutating func stripes(_ p: UnsafeRawPointer, count: Int) {
        var (a, b, c, d) = lanes
        var i = 0
        while i + 32 <= count {
            a = Self.round(a, p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            b = Self.round(b, p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
            c = Self.round(c, p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
            d = Self.round(d, p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
            i += 32
        }
        lanes = (a, b, c, d)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress, !bytes.isEmpty else { return }
        var count = bytes.count
        length += UInt64(count)
        if !pending.isEmpty {
            let take = min(32 - pending.count, count)
            pending += UnsafeRawBufferPointer(start: base, count: take)
            base += take
            count -= take
            guard pending.count == 32 else { return }
            pending.withUnsafeBytes { stripes($0.baseAddress!, count: 32) }
            pending.removeAll(keepingCapacity: true)
        }
        let whole = count & ~31
        stripes(base, count: whole)
        if whole < count { pending += UnsafeRawBufferPointer(start: base + whole, count: count - whole) }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The checksum of everything so far, as 16 hex digits.
    public var value: String {
        let (a, b, c, d) = lanes
        var h = ((a << 1) | (a >> 63)) &+ ((b << 7) | (b >> 57)) &+ ((c << 12) | (c >> 52)) &+ ((d << 18) | (d >> 46))
        for lane in [a, b, c, d] { h = (h ^ Self.round(0, lane)) &* Self.p1 &+ Self.p4 }
        h = h &+ length
        for byte in pending { h = ((h ^ (UInt64(byte) &* Self.p3)) << 11 | (h ^ (UInt64(byte) &* Self.p3)) >> 53) &* Self.p1 }
        h ^= h >> 33; h = h &* Self.p2; h ^= h >> 29; h = h &* Self.p3; h ^= h >> 32
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The checksum and size of a whole file.
    public static func of(file path: String) throws(SystemCallError) -> (value: String, size: Int64) {
        var sum = Checksum()
        let size = try FileStream.read(path) { sum.update($0) }
        return (sum.value, size)
    }
}
