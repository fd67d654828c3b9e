import FoundationEssentials

/// A VM saved by `labrun suspend`: its whole state (RAM, devices) in a migration stream file
/// beside the runtime layer, whose disk is exactly as the VM left it. The next `labrun boot`
/// resumes it (QEMU -incoming) in the same VM shape, then the files go. It is not a snapshot:
/// `snapshot list` never shows it.
public struct SuspendedState: Codable, Equatable, Sendable {
    /// When it was suspended (seconds since 1970).
    public var date: Double
    public var shape: VMShape
    /// The kernel it was booted with (`--kernel`) and that kernel's modules (`--modules`), when
    /// not the lab's own: the resumed VM needs the same devices (the modules disk).
    public var kernel: String?
    public var modules: String?

    public init(date: Double, shape: VMShape, kernel: String? = nil, modules: String? = nil) {
        self.date = date
        self.shape = shape
        self.kernel = kernel
        self.modules = modules
    }

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

    /// The undo step's suspended VM (moved there by `reset` with its runtime layer).
    static func undoPaths(_ lab: Lab) -> (state: String, info: String) {
        (lab.root + "/.labrun-suspended-undo.state", lab.root + "/.labrun-suspended-undo.json")
    }

    /// `reset`: the current suspended VM (if any) goes with its layer into the undo step,
    /// replacing the undo step's.
    public static func moveToUndo(in lab: Lab) {
        let undo = undoPaths(lab)
        removeFile(undo.state); removeFile(undo.info)
        if of(lab) != nil {
            try? renameFile(statePath(lab), undo.state)
            try? renameFile(infoPath(lab), undo.info)
        }
        discard(in: lab)
    }

    /// `reset --undo`: the layers swap, and so do their suspended VMs.
    public static func swapWithUndo(in lab: Lab) {
        let undo = undoPaths(lab)
        let pairs = [(statePath(lab), undo.state), (infoPath(lab), undo.info)]
        for (a, b) in pairs {
            let tmp = a + ".swap"
            removeFile(tmp)
            if fileExists(a) { try? renameFile(a, tmp) }
            if fileExists(b) { try? renameFile(b, a) }
            if fileExists(tmp) { try? renameFile(tmp, b) }
        }
    }

    /// "2026-12-01 21:05:33" in local time.
    public var since: String {
        let t = CalendarTime.local(Int64(date))
        return "\(t.date(separator: "-")) \(t.time(separator: ":"))"
    }
}
