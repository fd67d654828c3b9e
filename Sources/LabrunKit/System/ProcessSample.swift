/// What /proc says of a process at one moment: its scheduler state and how much I/O it has
/// done, enough to tell a busy process from a stopped or stuck one.
public struct ProcessSample: Equatable, Sendable {
    /// The state letter of /proc/PID/stat: R running, S sleeping, D uninterruptible (disk),
    /// T stopped (SIGSTOP), t traced, Z zombie.
    public var state: Character
    /// Bytes read and written so far (rchar + wchar of /proc/PID/io), nil when unreadable.
    public var ioBytes: UInt64?
    /// CPU time used so far, in clock ticks (utime + stime).
    public var cpuTicks: UInt64

    /// Samples `pid`, nil when it is gone.
    public static func of(_ pid: Int32) -> ProcessSample? {
        guard let stat = readSmallFile("/proc/\(pid)/stat", limit: 4096) else { return nil }
        let io = readSmallFile("/proc/\(pid)/io", limit: 4096).map { String(decoding: $0, as: UTF8.self) }
        return parse(stat: String(decoding: stat, as: UTF8.self), io: io)
    }

    /// Parses /proc/PID/stat (the command name may hold spaces and parentheses: fields count
    /// from the last ')') and /proc/PID/io.
    static func parse(stat: String, io: String?) -> ProcessSample? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let state = fields[0].first else { return nil }
        let cpu = (UInt64(fields[11]) ?? 0) + (UInt64(fields[12]) ?? 0)
        var ioBytes: UInt64?
        if let io {
            var total: UInt64 = 0
            for line in io.split(separator: "\n") where line.hasPrefix("rchar:") || line.hasPrefix("wchar:") {
                total += UInt64(line.split(separator: " ").last ?? "") ?? 0
            }
            ioBytes = total
        }
        return ProcessSample(state: state, ioBytes: ioBytes, cpuTicks: cpu)
    }

    public var stateName: String {
        switch state {
        case "R": "running"
        case "S": "sleeping"
        case "D": "in uninterruptible I/O"
        case "T": "stopped"
        case "t": "stopped by a debugger"
        case "Z": "a zombie"
        default: "in state \(state)"
        }
    }

    /// Stopped by a signal or a debugger: it cannot answer until it is continued.
    public var isStopped: Bool { state == "T" || state == "t" }
}
