import Glibc

/// Whole-file reads and copies with one reusable buffer, for files of many MiB (checkpoint
/// state, image layers): no array per chunk, and every short read and EINTR handled here.
public enum FileStream {
    static let chunk = 1 << 20

    /// Calls `body` with each successive chunk of the file at `path`; returns the bytes read.
    /// The corresponding C function is `read`.
    @discardableResult
    public static func read(_ path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws(SystemCallError) -> Int64 {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try valueOrErrno { Glibc.read(fd.rawValue, buffer.baseAddress, chunk) }.get("read \(path)")
            if n == 0 { return total }
            body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
    }

    /// Copies `from` to a new file `to` (mode 0644, replaced if present), flushed to disk;
    /// `body` sees each chunk as it goes (e.g. to checksum it). On failure `to` is removed.
    /// The corresponding C functions are `read`, `write` and `fsync`.
    public static func copy(_ from: String, to: String, _ body: (UnsafeRawBufferPointer) -> Void = { _ in }) throws(SystemCallError) {
        let input = try FileDescriptor.open(from, O_RDONLY)
        defer { input.close() }
        let out = try FileDescriptor.open(to, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        do {
            while true {
                let n = try valueOrErrno { Glibc.read(input.rawValue, buffer.baseAddress, chunk) }.get("read \(from)")
                if n == 0 { break }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                body(bytes)
                var done = 0
                while done < n {
                    done += try valueOrErrno { Glibc.write(out.rawValue, bytes.baseAddress! + done, n - done) }.get("write \(to)")
                }
            }
            try nothingOrErrno { fsync(out.rawValue) }.get("fsync \(to)")
            out.close()
        } catch {
            out.close()
            removeFile(to)
            throw error
        }
    }

    /// Where `needle` first occurs in the file at `path` at or after offset `from` (nil when it
    /// does not), and the bytes from there on, up to `keep` of them (what follows a marker, such
    /// as a version string). The corresponding C functions are `pread`, `memchr` and `memcmp`.
    public static func firstMatch(of needle: [UInt8], inFile path: String, keep: Int, from: Int64 = 0) throws(SystemCallError) -> (offset: Int64, bytes: [UInt8])? {
        precondition(!needle.isEmpty && keep >= needle.count)
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        var offset = from
        while true {
            // Chunks overlap by `keep` bytes, so a match and what follows it are never split.
            let window = try fd.read(upTo: chunk + keep, at: offset).get("pread \(path)")
            let at = firstOffset(of: needle, in: window)
            if let at, at < chunk || window.count < chunk + keep {
                return (offset + Int64(at), Array(window[at..<min(window.count, at + keep)]))
            }
            if window.count < chunk + keep { return nil }
            offset += Int64(chunk)
        }
    }

    /// Where `needle` first occurs in `bytes` (memmem is a GNU extension that Glibc does not
    /// import: memchr for the first byte, memcmp for the rest).
    static func firstOffset(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return bytes.withUnsafeBytes { w -> Int? in
            needle.withUnsafeBytes { n -> Int? in
                let base = w.baseAddress!
                var i = 0
                let last = w.count - n.count
                while i <= last {
                    guard let p = memchr(base + i, Int32(n[0]), last - i + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(p))
                    if memcmp(base + at, n.baseAddress!, n.count) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }

    /// Flushes a file's data to disk. The corresponding C function is `fsync`.
    public static func sync(_ path: String) throws(SystemCallError) {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        try nothingOrErrno { fsync(fd.rawValue) }.get("fsync \(path)")
    }
}

/// A whole file's bytes (for files of a few MiB, like the console log).
public func readWholeFile(_ path: String) throws(SystemCallError) -> [UInt8] {
    var out: [UInt8] = []
    try FileStream.read(path) { out += $0 }
    return out
}
