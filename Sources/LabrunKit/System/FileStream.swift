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
