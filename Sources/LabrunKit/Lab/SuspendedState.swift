import FoundationEssentials

/// A VM saved by `labrun suspend`: its whole state (RAM, devices) in a migration stream file
/// beside the runtime layer, whose disk is exactly as the VM left it. The next `labrun boot`
/// resumes it (QEMU -incoming) in the same VM shape, then the files go. It is not a snapshot:
/// `snapshot list` never shows it.
public struct SuspendedState: Codable, Equatable, Sendable {
    /// When it was suspended (seconds since 1970).
    public var date: Double
    public var shape: VMShape

    public static func statePath(_ lab: Lab) -> String { lab.root + "/.labrun-suspended.state" }
    public static func infoPath(_ lab: Lab) -> String { lab.root + "/.labrun-suspended.json" }

    /// The lab's suspended VM, nil when there is none (or its files are incomplete).
    public static func of(_ lab: Lab) -> SuspendedState? {
        guard fileExists(statePath(lab)), let bytes = readSmallFile(infoPath(lab), limit: 64 * 1024) else { return nil }
        return try? JSONDecoder().decode(SuspendedState.self, from: Data(bytes))
    }

    /// Records it (the state file is already in place).
    public func save(in lab: Lab) throws(SystemCallError) {
        let data = (try? JSONEncoder().encode(self)) ?? Data()
        try String(decoding: data, as: UTF8.self).write(toFile: Self.infoPath(lab) + ".part")
        try renameFile(Self.infoPath(lab) + ".part", Self.infoPath(lab))
    }

    /// Forgets it: the disk moved on (resumed, reset, restored) or the user asked.
    public static func discard(in lab: Lab) {
        removeFile(infoPath(lab))
        removeFile(statePath(lab))
        removeFile(statePath(lab) + ".part")
    }

    /// "2026-12-01 21:05:33" in local time.
    public var since: String {
        let t = CalendarTime.local(Int64(date))
        return "\(t.date(separator: "-")) \(t.time(separator: ":"))"
    }
}
