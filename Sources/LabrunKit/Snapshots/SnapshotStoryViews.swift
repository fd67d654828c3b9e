import FoundationEssentials

/// `snapshot list` with each snapshot's story (issue 15): the table, the family tree and JSON.
extension SnapshotTable {
    /// One line of a description for a table cell: newlines and tabs as spaces, at most `width`
    /// characters (an ellipsis says there is more).
    static func oneLine(_ text: String?, width: Int = 48) -> String {
        guard let text else { return "" }
        let flat = String(text.map { $0 == "\n" || $0 == "\r\n" || $0 == "\t" ? " " : $0 })
        return flat.count <= width ? flat : String(flat.prefix(width - 1)) + "…"
    }

    static func space(_ e: SnapshotEntry) -> String { e.exclusiveBytes.map(formatBytes) ?? "?" }

    /// The table: the columns of `render` (NAME, ID, VM STATE, DATE, VM CLOCK), then FREES (what
    /// deleting it alone frees), PARENT and DESCRIPTION; the snapshot the VM is on is marked
    /// with "*" before its name. No trailing newline.
    public static func storyTable(_ entries: [SnapshotEntry], colour: Colour = .off) -> String {
        guard !entries.isEmpty else { return "no snapshots" }
        let header = ["NAME", "ID", "VM STATE", "DATE", "VM CLOCK", "FREES", "PARENT", "DESCRIPTION"]
        let marked = entries.contains { $0.isCurrent }
        let rows = entries.map { e -> [String] in
            let s = e.info
            let date = CalendarTime.local(s.dateSeconds)
            return [(marked ? (e.isCurrent ? "* " : "  ") : "") + s.name, s.id, s.hasVMState ? formatBytes(s.vmStateSize) : "disk only",
                    date.date(separator: "-") + " " + date.time(separator: ":"), vmClock(s), space(e), e.parent ?? "-", oneLine(e.description)]
        }
        let head = [(marked ? "  " : "") + header[0]] + header.dropFirst()
        let table = [head] + rows
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.enumerated().map { index, row in
            row.indices.map { column -> String in
                let cell = column == row.count - 1 ? row[column] : row[column] + String(repeating: " ", count: widths[column] - row[column].count)
                guard index > 0, column == 0 else { return cell }
                let e = entries[index - 1]
                return e.isCurrent ? colour.current(cell) : colour.name(cell)
            }.joined(separator: "  ").trimmedTrailingSpaces
        }.joined(separator: "\n")
    }

    /// The family: each snapshot under the one the VM came from when it was taken (roots under
    /// the golden image), oldest first; the snapshot the VM is on says so. No trailing newline.
    public static func tree(_ entries: [SnapshotEntry], golden: String, colour: Colour = .off) -> String {
        var lines = ["golden image (\(golden))"]
        let names = Set(entries.map(\.info.name))
        var children: [String: [SnapshotEntry]] = [:]
        for e in entries {
            let parent = e.parent.flatMap { names.contains($0) ? $0 : nil } ?? ""
            children[parent, default: []].append(e)
        }
        for k in children.keys { children[k]!.sort { ($0.info.dateSeconds, $0.info.dateNanoseconds) < ($1.info.dateSeconds, $1.info.dateNanoseconds) } }
        var seen: Set<String> = []
        var rows: [(prefix: String, entry: SnapshotEntry)] = []
        func walk(_ parent: String, _ prefix: String) {
            let kids = children[parent] ?? []
            for (i, e) in kids.enumerated() where !seen.contains(e.info.name) {
                seen.insert(e.info.name)
                let last = i == kids.count - 1
                rows.append((prefix + (last ? "└── " : "├── "), e))
                walk(e.info.name, prefix + (last ? "    " : "│   "))
            }
        }
        walk("", "")
        // The dates line up after the longest branch and name.
        let width = rows.map { $0.prefix.count + $0.entry.info.name.count }.max() ?? 0
        for (prefix, e) in rows {
            let date = CalendarTime.local(e.info.dateSeconds)
            var line = prefix + (e.isCurrent ? colour.current(e.info.name) : colour.name(e.info.name))
            line += String(repeating: " ", count: width - prefix.count - e.info.name.count)
            line += "  " + date.date(separator: "-") + " " + date.time(separator: ":")
            line += "  " + (e.info.hasVMState ? "RAM " + formatBytes(e.info.vmStateSize) : "disk only")
            line += "  frees " + space(e)
            if let d = e.description { line += "  " + colour.dim("\"" + oneLine(d, width: 60) + "\"") }
            if e.isCurrent { line += "  " + colour.current("<- the VM is here") }
            lines.append(line)
        }
        if entries.isEmpty { lines.append("└── (no snapshots)") }
        return lines.joined(separator: "\n")
    }

    /// A JSON array with every field: the keys of `json` (date, id, name, vm_clock_ns,
    /// vm_state_size) plus current, description, exclusive_bytes (null when the image could not
    /// be measured), has_ram and parent (null for none). Keys sorted, pretty-printed.
    public static func storyJSON(_ entries: [SnapshotEntry]) -> String {
        guard !entries.isEmpty else { return "[]" }
        let rows = entries.map { e in
            let s = e.info
            let date = CalendarTime.utc(s.dateSeconds)
            return StoryRow(current: e.isCurrent, date: date.date(separator: "-") + "T" + date.time(separator: ":") + "Z",
                            description: e.description, exclusive_bytes: e.exclusiveBytes, has_ram: s.hasVMState,
                            id: s.id, name: s.name, parent: e.parent,
                            vm_clock_ns: s.vmClockSeconds * 1_000_000_000 + s.vmClockNanoseconds, vm_state_size: s.vmStateSize)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(rows)) ?? Data("[]".utf8), as: UTF8.self)
    }

    private struct StoryRow: Encodable {
        var current: Bool
        var date: String
        var description: String?
        var exclusive_bytes: UInt64?
        var has_ram: Bool
        var id: String
        var name: String
        var parent: String?
        var vm_clock_ns: Int64
        var vm_state_size: UInt64

        enum CodingKeys: String, CodingKey {
            case current, date, description, exclusive_bytes, has_ram, id, name, parent, vm_clock_ns, vm_state_size
        }

        // Every key is written, null when there is no value.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(current, forKey: .current)
            try c.encode(date, forKey: .date)
            try c.encode(description, forKey: .description)
            try c.encode(exclusive_bytes, forKey: .exclusive_bytes)
            try c.encode(has_ram, forKey: .has_ram)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(parent, forKey: .parent)
            try c.encode(vm_clock_ns, forKey: .vm_clock_ns)
            try c.encode(vm_state_size, forKey: .vm_state_size)
        }
    }
}

extension String {
    var trimmedTrailingSpaces: String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
