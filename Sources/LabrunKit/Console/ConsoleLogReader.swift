import FoundationEssentials

/// Which part of the console log `labrun log` prints, and how.
public struct ConsoleLogQuery: Sendable {
    /// Only the last N lines.
    public var last: Int?
    /// One boot: 0 the latest, -1 the one before, 1 the first in the log.
    public var boot: Int?
    /// From this time on (seconds since 1970).
    public var since: Double?
    /// Each line with the host time and the time since QEMU started.
    public var timestamps = false

    public init() {}

    /// "2026-12-02 10:30[:15]", "10:30[:15]" (today), or "-10m", "-2h", "-30s", "-1d" (ago).
    public static func parseTime(_ text: String, now: Double) -> Double? {
        let s = text.trimmed
        if s.hasPrefix("-"), let unit = s.last, let n = Double(s.dropFirst().dropLast()), n >= 0 {
            let scale: Double? = switch unit { case "s": 1; case "m": 60; case "h": 3600; case "d": 86400; default: nil }
            return scale.map { now - n * $0 }
        }
        let parts = s.split(separator: " ")
        guard (1...2).contains(parts.count) else { return nil }
        var day = CalendarTime.local(Int64(now))
        if parts.count == 2 {
            let d = parts[0].split(separator: "-").compactMap { Int($0) }
            guard d.count == 3 else { return nil }
            (day.year, day.month, day.day) = (d[0], d[1], d[2])
        }
        let t = parts[parts.count - 1].split(separator: ":").compactMap { Int($0) }
        guard (2...3).contains(t.count), (0..<24).contains(t[0]), (0..<60).contains(t[1]) else { return nil }
        (day.hour, day.minute, day.second) = (t[0], t[1], t.count == 3 ? t[2] : 0)
        return Double(day.secondsSince1970Local)
    }
}

/// One record of the console log (see `ConsoleLog` for the format).
public struct ConsoleLogRecord: Equatable, Sendable {
    public var wallMs: Int64
    public var relativeMs: Int64
    public var kind: UInt8
    public var payload: [UInt8]

    /// Parses one line (without its newline); nil for anything malformed.
    public static func parse(_ line: ArraySlice<UInt8>) -> ConsoleLogRecord? {
        guard let s1 = line.firstIndex(of: 0x20) else { return nil }
        let afterWall = line.index(after: s1)
        guard let s2 = line[afterWall...].firstIndex(of: 0x20) else { return nil }
        let k = line.index(after: s2)
        guard k < line.endIndex, let wall = Int64(String(decoding: line[..<s1], as: UTF8.self)),
              let rel = Int64(String(decoding: line[afterWall..<s2], as: UTF8.self)) else { return nil }
        let kind = line[k]
        guard [UInt8(ascii: "G"), UInt8(ascii: "P"), UInt8(ascii: "L"), UInt8(ascii: "B"), UInt8(ascii: "R")].contains(kind) else { return nil }
        let start = min(line.index(k, offsetBy: 2), line.endIndex)
        return ConsoleLogRecord(wallMs: wall, relativeMs: rel, kind: kind, payload: Array(line[start...]))
    }
}

/// Reads the console log back: the rotated files oldest first, records merged into lines.
public struct ConsoleLogReader: Sendable {
    public let path: String
    public let files: Int

    public init(path: String, files: Int) {
        self.path = path
        self.files = files
    }

    public var exists: Bool { fileExists(path) || fileExists(path + ".1") }

    /// The files oldest first.
    var paths: [String] { (1..<max(1, files)).reversed().map { path + ".\($0)" }.filter(fileExists) + [path] }

    /// Every whole record in the log, oldest first.
    public func records() -> [ConsoleLogRecord] {
        var out: [ConsoleLogRecord] = []
        for p in paths {
            guard let bytes = try? readWholeFile(p) else { continue }
            out += Self.parse(bytes[...]).records
        }
        return out
    }

    /// The records in `bytes`, and how many bytes they took (an unfinished last line is left).
    static func parse(_ bytes: ArraySlice<UInt8>) -> (records: [ConsoleLogRecord], used: Int) {
        var out: [ConsoleLogRecord] = []
        var start = bytes.startIndex
        while let nl = bytes[start...].firstIndex(of: 0x0A) {
            if let r = ConsoleLogRecord.parse(bytes[start..<nl]) { out.append(r) }
            start = nl + 1
        }
        return (out, start - bytes.startIndex)
    }

    /// The lines `query` asks for, each ending in "\n".
    public func lines(_ query: ConsoleLogQuery) -> [[UInt8]] {
        var rs = records()
        if let b = query.boot {
            let boots = rs.indices.filter { rs[$0].kind == UInt8(ascii: "B") }
            let i = b <= 0 ? boots.count - 1 + b : b - 1
            guard boots.indices.contains(i) else { return [] }
            let end = i + 1 < boots.count ? boots[i + 1] : rs.endIndex
            rs = Array(rs[boots[i]..<end])
        }
        if let since = query.since { rs = rs.filter { Double($0.wallMs) / 1000 >= since } }
        var renderer = ConsoleLogRenderer(timestamps: query.timestamps)
        return rs.flatMap { renderer.render($0) } + renderer.finish()
    }

    /// The kernel crash reports in the log, oldest first, each with its latest count.
    public func reports() -> [CrashReport] {
        var out: [CrashReport] = []
        for r in records() where r.kind == UInt8(ascii: "R") {
            guard let report = try? JSONDecoder().decode(CrashReport.self, from: Data(r.payload)) else { continue }
            if let i = out.lastIndex(where: { $0.title == report.title && $0.firstSeen == report.firstSeen }) {
                out[i] = report
            } else {
                out.append(report)
            }
        }
        return out
    }

    /// Follows the log from its current end (`labrun log -f`).
    public func follower() -> Follower { Follower(path: path, start: FileStatus.of(path)) }

    public struct Follower {
        let path: String
        var inode: UInt64?
        var offset: Int64
        var renderer: ConsoleLogRenderer?

        init(path: String, start: FileStatus?) {
            self.path = path
            inode = start?.inode
            offset = start?.size ?? 0
        }

        /// What was added since the last call (a rotated file is followed into the new one).
        public mutating func next(_ query: ConsoleLogQuery) -> [[UInt8]] {
            if renderer == nil { renderer = ConsoleLogRenderer(timestamps: query.timestamps) }
            guard let st = FileStatus.of(path) else { return [] }
            if st.inode != inode || st.size < offset {
                inode = st.inode
                offset = 0
            }
            guard st.size > offset, let fd = try? FileDescriptor.open(path, FileDescriptor.readOnly) else { return [] }
            defer { fd.close() }
            guard case .success(let bytes) = fd.read(upTo: Int(min(st.size - offset, 8 << 20)), at: offset) else { return [] }
            let (records, used) = ConsoleLogReader.parse(bytes[...])
            offset += Int64(used)
            return records.flatMap { renderer!.render($0) }
        }
    }
}

/// Turns records into printable lines: a guest line that was written in pieces (`P` records)
/// comes out whole; labrun's own lines are marked; timestamps on request.
struct ConsoleLogRenderer {
    let timestamps: Bool
    private var pending: [UInt8] = []
    private var pendingStamp: ConsoleLogRecord?

    init(timestamps: Bool) { self.timestamps = timestamps }

    private func stamp(_ r: ConsoleLogRecord) -> [UInt8] {
        guard timestamps else { return [] }
        let t = CalendarTime.local(r.wallMs / 1000)
        let ms = zeroPadded(r.wallMs % 1000, 3)
        let rel = "\(r.relativeMs / 1000).\(zeroPadded(r.relativeMs % 1000, 3))"
        return Array("[\(t.date(separator: "-")) \(t.time(separator: ":")).\(ms) +\(rel)] ".utf8)
    }

    mutating func render(_ r: ConsoleLogRecord) -> [[UInt8]] {
        switch r.kind {
        case UInt8(ascii: "R"):
            // The report's lines are in the log already, as the guest printed them.
            return []
        case UInt8(ascii: "P"):
            if pendingStamp == nil { pendingStamp = r }
            pending += r.payload
            return []
        case UInt8(ascii: "G"):
            let first = pendingStamp ?? r
            var line = stamp(first) + pending + r.payload
            pending.removeAll()
            pendingStamp = nil
            if line.last == 0x0D { line.removeLast() }
            return [line + [0x0A]]
        default:
            var out = finish()
            let text = r.kind == UInt8(ascii: "B") ? "-- \(String(decoding: r.payload, as: UTF8.self)) at \(Self.date(r.wallMs)) --" : String(decoding: r.payload, as: UTF8.self)
            out.append(stamp(r) + Array("[labrun] \(text)\n".utf8))
            return out
        }
    }

    static func date(_ ms: Int64) -> String {
        let t = CalendarTime.local(ms / 1000)
        return "\(t.date(separator: "-")) \(t.time(separator: ":"))"
    }

    /// An unfinished guest line at the end, printed as it is.
    mutating func finish() -> [[UInt8]] {
        guard let first = pendingStamp else { return [] }
        let line = stamp(first) + pending + [0x0A]
        pending.removeAll()
        pendingStamp = nil
        return [line]
    }
}
