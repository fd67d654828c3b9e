/// A process that has an image open.
public struct LockHolder: Equatable, Sendable, CustomStringConvertible {
    public let pid: Int32
    /// Its command line, arguments joined by spaces and shortened.
    public let command: String

    public init(pid: Int32, command: String) {
        self.pid = pid
        self.command = command
    }

    public var description: String { command.isEmpty ? "pid \(pid)" : "pid \(pid) (\(command))" }
}

/// Whether a QEMU process is using an image, asked without disturbing it.
///
/// QEMU marks the permissions it holds and forbids with OFD read locks on bytes 100–103 and
/// 200–203 of every image in a chain. Asking with F_OFD_GETLK whether a write lock on those
/// bytes would conflict takes no lock, so a running VM and qemu-img never notice the probe.
/// OFD locks do not name their holder; `holders` finds it by scanning /proc/*/fd.
///
/// A chain is judged layer by layer: its top (the runtime layer) is in use when anyone holds
/// any QEMU lock on it; a backing layer (golden, base) only when someone may change it or
/// forbids reading it. Other labs made with `labrun init` share the golden and base layers
/// read-only as their own backing files; their running VMs lock those layers too (hold
/// consistent-read, forbid write and resize) and are no conflict.
public enum ImageLock {
    /// The byte ranges QEMU locks: (start, length).
    static let ranges = [(start: 100, length: 4), (start: 200, length: 4)]
    /// What a reader of a backing file cannot share: someone holding write, write-unchanged or
    /// resize (101–103), or forbidding consistent read (200).
    static let backingConflictRanges = [(start: 101, length: 3), (start: 200, length: 1)]

    /// Whether another process holds a QEMU lock on `path`. A file that cannot be opened
    /// counts as unlocked (qemu-img then reports why it cannot open it).
    public static func isLocked(_ path: String) -> Bool {
        fileHasConflictingLock(path, ranges: ranges)
    }

    /// Whether another process may write `path` (or forbids reading it): what matters for a
    /// backing layer, which labrun and qemu-img only ever read.
    public static func isLockedForWriting(_ path: String) -> Bool {
        fileHasConflictingLock(path, ranges: backingConflictRanges)
    }

    /// The processes (visible to this user) that have `path` open, by pid.
    public static func holders(_ path: String) -> [LockHolder] {
        guard let target = realPath(path), let pids = directoryEntries("/proc") else { return [] }
        return pids.compactMap { Int32($0) }.sorted().compactMap { pid in
            let fdDir = "/proc/\(pid)/fd"
            guard let fds = directoryEntries(fdDir),
                  fds.contains(where: { symbolicLinkTarget("\(fdDir)/\($0)") == target }) else { return nil }
            return LockHolder(pid: pid, command: commandLine(pid))
        }
    }

    /// The first layer of the chain `paths` (top first) that is in use, and who holds it: the
    /// top when it carries any QEMU lock, a lower layer when someone may write it.
    public static func firstLocked(paths: [String]) -> (path: String, holders: [LockHolder])? {
        paths.enumerated().first { i, path in i == 0 ? isLocked(path) : isLockedForWriting(path) }
            .map { ($0.element, holders($0.element)) }
    }

    /// Refuses, naming the holder and how to stop it, when the chain `paths` (top first) is in
    /// use (see `firstLocked`); `action` completes "cannot …" (e.g. "create snapshot 'x'").
    public static func requireUnlocked(_ paths: [String], action: String) throws(LabrunError) {
        guard let (path, holders) = firstLocked(paths: paths) else { return }
        let who = holders.isEmpty ? "another process" : holders.map(\.description).joined(separator: ", ")
        let how = holders.isEmpty
            ? "stop that VM first"
            : "stop that VM first (`kill \(holders.map { String($0.pid) }.joined(separator: " "))` if nothing else will)"
        throw LabrunError("cannot \(action): \(path) is in use by \(who); \(how)")
    }

    /// /proc/PID/cmdline with NULs as spaces, shortened to `limit` characters.
    static func commandLine(_ pid: Int32, limit: Int = 100) -> String {
        guard let bytes = readSmallFile("/proc/\(pid)/cmdline", limit: 4096) else { return "" }
        let line = String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).trimmed
        return line.count > limit ? String(line.prefix(limit - 1)) + "…" : line
    }
}
