import FoundationEssentials

/// How `snapshot list` shows snapshots: a table for people, JSON for scripts.
/// Both the live (QMP) and the offline (qemu-img) path render through here.
public enum SnapshotTable {
    /// Columns NAME, ID, VM STATE, DATE (local time), VM CLOCK; "no snapshots" when empty.
    /// No trailing newline.
    public static func render(_ snapshots: [SnapshotInfo]) -> String {
        guard !snapshots.isEmpty else { return "no snapshots" }
        let header = ["NAME", "ID", "VM STATE", "DATE", "VM CLOCK"]
        let rows = snapshots.map { s in
            let date = CalendarTime.local(s.dateSeconds)
            return [s.name, s.id, s.hasVMState ? formatBytes(s.vmStateSize) : "disk only",
                    date.date(separator: "-") + " " + date.time(separator: ":"), vmClock(s)]
        }
        let table = [header] + rows
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.map { row in
            row.indices.map { column in
                column == row.count - 1 ? row[column] : row[column] + String(repeating: " ", count: widths[column] - row[column].count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// A JSON array of objects with the keys date (ISO 8601, UTC, "Z"), id, name,
    /// vm_clock_ns and vm_state_size (bytes), keys sorted, pretty-printed. No trailing newline.
    public static func json(_ snapshots: [SnapshotInfo]) -> String {
        guard !snapshots.isEmpty else { return "[]" }
        let rows = snapshots.map { s in
            let date = CalendarTime.utc(s.dateSeconds)
            return Row(date: date.date(separator: "-") + "T" + date.time(separator: ":") + "Z", id: s.id, name: s.name,
                       vm_clock_ns: s.vmClockSeconds * 1_000_000_000 + s.vmClockNanoseconds, vm_state_size: s.vmStateSize)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        return String(decoding: (try? encoder.encode(rows)) ?? Data("[]".utf8), as: UTF8.self)
    }

    private struct Row: Encodable {
        var date: String
        var id: String
        var name: String
        var vm_clock_ns: Int64
        var vm_state_size: UInt64
    }

    /// The guest clock when the snapshot was taken: HH:MM:SS.mmm.
    static func vmClock(_ s: SnapshotInfo) -> String {
        let seconds = s.vmClockSeconds + s.vmClockNanoseconds / 1_000_000_000
        let millis = (s.vmClockNanoseconds % 1_000_000_000) / 1_000_000
        return "\(zeroPadded(seconds / 3600, 2)):\(zeroPadded(seconds / 60 % 60, 2)):\(zeroPadded(seconds % 60, 2)).\(zeroPadded(millis, 3))"
    }
}

/// A byte count for people: "512 B", "1.0 KiB", "91.2 MiB", "3.5 GiB" (binary units, one decimal).
public func formatBytes(_ bytes: UInt64) -> String {
    guard bytes >= 1024 else { return "\(bytes) B" }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(bytes) / 1024
    var unit = 0
    // Move up while the value would print as 1024.0 or more.
    while (value * 10).rounded() >= 10240 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}
