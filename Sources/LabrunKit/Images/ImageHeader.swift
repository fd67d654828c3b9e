/// What an image file's first bytes say about it, read directly: no qemu-img, no lock, so it
/// works the same whether a VM runs or not and costs a few reads.
///
/// It answers one question before any command touches the runtime layer: is it a qcow2 image
/// whose backing chain is all there? Without it, a raw or empty file at the runtime path lists
/// as "no snapshots" and fails a create with qemu-img's "-95 (Operation not supported)", and a
/// moved backing file surfaces as qemu-img's nested "Could not open … Could not open …".
public enum ImageHeader {
    /// The qcow2 magic, "QFI\xfb" (docs/interop/qcow2.txt).
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]
    /// QEMU refuses backing names longer than this.
    static let maxBackingName = 1023

    /// What a file at an image path is; a qcow2 image carries its backing name exactly as stored.
    enum Probe: Equatable {
        case notFound
        case unreadable
        case empty
        case notQcow2
        case qcow2(backing: String?)
    }

    static func probe(_ path: String) -> Probe {
        guard fileExists(path) else { return .notFound }
        guard let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return .unreadable }
        defer { fd.close() }
        func bytes(at offset: Int, count: Int) -> [UInt8] {
            (try? fd.read(upTo: count, at: Int64(offset)).get()) ?? []
        }
        let header = bytes(at: 0, count: 20)
        if header.isEmpty { return .empty }
        guard header.count == 20, Array(header[0..<4]) == qcow2Magic else { return .notQcow2 }
        let offset = header[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        let size = header[16..<20].reduce(0) { $0 << 8 | Int($1) }
        guard offset != 0, size > 0 else { return .qcow2(backing: nil) }
        guard size <= maxBackingName, offset < UInt64(Int.max) else { return .notQcow2 }
        let name = bytes(at: Int(offset), count: size)
        guard name.count == size else { return .notQcow2 }
        return .qcow2(backing: String(decoding: name, as: UTF8.self))
    }

    /// A backing name QEMU reads as a protocol ("nbd:…", "json:{…}") rather than a file.
    static func isProtocol(_ name: String) -> Bool {
        guard let colon = name.firstIndex(of: ":") else { return false }
        return !name[..<colon].contains("/")
    }

    /// One line saying what is wrong with the runtime layer at `path` and its backing chain,
    /// and what to do; nil when it is a qcow2 image whose backing files are all there.
    /// (A missing runtime layer itself is the caller's business: `boot` creates it.)
    public static func problem(runtime path: String) -> String? {
        let fix = "move it away and run `labrun reset --yes` for a fresh runtime layer on the golden image"
        switch probe(path) {
        case .notFound, .unreadable: return nil
        case .empty: return "\(path) is empty, not a qcow2 image: \(fix)"
        case .notQcow2: return "\(path) is not a qcow2 image: \(fix)"
        case .qcow2(let backing): return backing.flatMap { chainProblem(below: path, backing: $0, depth: 1) }
        }
    }

    private static func chainProblem(below image: String, backing: String, depth: Int) -> String? {
        guard !isProtocol(backing), depth < 16 else { return nil }
        // QEMU resolves a relative backing name against the directory of the image naming it.
        let resolved = backing.hasPrefix("/") ? backing : parentDirectory(image) + "/" + backing
        switch probe(resolved) {
        case .notFound:
            let role = depth == 1 ? "the runtime layer" : image
            return "the backing file \(lexicallyNormalized(resolved)) of \(role) is missing (moved or deleted?): put it back there; "
                + "or `labrun reset --yes` starts a fresh runtime layer on the golden image (the current one is kept as the undo step)"
        case .qcow2(let next?): return chainProblem(below: resolved, backing: next, depth: depth + 1)
        default: return nil
        }
    }

    /// "/a/b/../c/./d" → "/a/c/d", without touching the file system (for messages).
    static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
