import FoundationEssentials

/// What labrun knows of each snapshot beyond the qcow2 table (issue 15): its description, the
/// snapshot the VM came from when it was taken (its parent), and the snapshot the VM is on now.
/// Kept in `LAB/.labrun-history.json`, keyed like the shape record by name and creation time
/// (so a re-created name never inherits an old story, and the keys stay valid when the lab
/// moves). The qcow2 table stays the truth: a snapshot without a record (qemu-img, the monitor)
/// is listed without parent or description, and a missing, corrupt or unknown file only
/// loses the extra story (the corrupt file is kept aside), never a snapshot.
public struct SnapshotRecord: Codable, Equatable, Sendable {
    public var description: String?
    /// The parent's key (name@seconds.nanoseconds), nil for a root.
    public var parent: String?

    public init(description: String? = nil, parent: String? = nil) {
        self.description = description
        self.parent = parent
    }
}

public struct SnapshotHistoryFile: Codable, Equatable, Sendable {
    public static let currentVersion = 1
    public var version = SnapshotHistoryFile.currentVersion
    public var records: [String: SnapshotRecord] = [:]
    /// The snapshot the runtime layer's VM is on now (created or restored last); nil when it
    /// is on the golden image (a fresh layer) or on no snapshot labrun saw.
    public var current: String?
    /// The same for the undo step's layer (`reset` moves it there, `reset --undo` back).
    public var undoCurrent: String?

    public init() {}
}

public struct SnapshotHistory: Sendable {
    public let path: String

    public init(lab: Lab) { path = lab.root + "/.labrun-history.json" }
    public init(path: String) { self.path = path }

    public static func key(_ s: SnapshotInfo) -> String { "\(s.name)@\(s.dateSeconds).\(s.dateNanoseconds)" }
    static func name(ofKey key: String) -> String { key.lastIndex(of: "@").map { String(key[..<$0]) } ?? key }

    /// Longest description kept.
    public static let maxDescriptionBytes = 4096

    /// Refuses what cannot be shown on one line of a terminal safely: control characters other
    /// than newline and tab (escape sequences), and more than 4 KiB. Newlines are kept.
    public static func validateDescription(_ text: String) throws(LabrunError) {
        guard text.utf8.count <= maxDescriptionBytes else {
            throw LabrunError("the description is \(text.utf8.count) bytes; at most \(maxDescriptionBytes) are kept: shorten it")
        }
        if let bad = text.unicodeScalars.first(where: { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) }) {
            throw LabrunError("the description has a control character (U+\(String(bad.value, radix: 16, uppercase: true))); use plain text (newlines are kept)")
        }
    }

    /// The file's content: empty when there is none; a corrupt one is moved aside (once) and
    /// read as empty; a newer version is read for what it has.
    public func load() -> SnapshotHistoryFile { read().file }

    /// The file's content, and whether it is there but unreadable (corrupt).
    private func read() -> (file: SnapshotHistoryFile, corrupt: Bool) {
        guard let bytes = readSmallFile(path, limit: 16 << 20), !bytes.isEmpty else { return (SnapshotHistoryFile(), false) }
        if let file = try? JSONDecoder().decode(SnapshotHistoryFile.self, from: Data(bytes)) { return (file, false) }
        return (SnapshotHistoryFile(), true)
    }

    /// Read, change and write back under the lab's history lock (the supervisor and the CLI
    /// both write it). A corrupt file is kept as `.labrun-history.json.corrupt`.
    public func update(_ change: (inout SnapshotHistoryFile) -> Void) {
        guard let lock = try? FileDescriptor.open(path + ".lock", FileDescriptor.createLock, mode: 0o644) else { return }
        defer { lock.close() }
        _ = exclusiveLock(lock)
        var (file, corrupt) = read()
        if corrupt { try? renameFile(path, path + ".corrupt") }
        let before = file
        change(&file)
        guard file != before else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return }
        let tmp = path + ".part"
        if (try? String(decoding: data, as: UTF8.self).write(toFile: tmp)) != nil { try? renameFile(tmp, path) }
    }

    // MARK: events

    /// A snapshot was taken: its parent is the one the VM was on. One it replaced (same name,
    /// --force) leaves the family as a deleted one does.
    public func created(_ s: SnapshotInfo) {
        let key = Self.key(s)
        update { f in
            for old in f.records.keys where old != key && Self.name(ofKey: old) == s.name { Self.remove(old, from: &f) }
            var record = f.records[key] ?? SnapshotRecord()
            record.parent = f.current == key ? record.parent : f.current
            f.records[key] = record
            f.current = key
        }
    }

    /// The VM went back to a snapshot: it is the current one.
    public func restored(_ s: SnapshotInfo) {
        update { f in f.current = Self.key(s) }
    }

    /// A snapshot was deleted: its children take its parent, and a VM that was on it is now
    /// on its parent.
    public func deleted(_ s: SnapshotInfo) {
        update { f in Self.remove(Self.key(s), from: &f) }
    }

    private static func remove(_ key: String, from f: inout SnapshotHistoryFile) {
        let parent = f.records[key]?.parent
        for (k, r) in f.records where r.parent == key { f.records[k]?.parent = parent }
        f.records.removeValue(forKey: key)
        if f.current == key { f.current = parent }
        if f.undoCurrent == key { f.undoCurrent = parent }
    }

    /// A snapshot was renamed (its creation time stays): its record and every mention follow.
    public func renamed(_ s: SnapshotInfo, to newName: String) {
        var n = s
        n.name = newName
        let (old, new) = (Self.key(s), Self.key(n))
        update { f in
            if let r = f.records.removeValue(forKey: old) { f.records[new] = r }
            for (k, r) in f.records where r.parent == old { f.records[k]?.parent = new }
            if f.current == old { f.current = new }
            if f.undoCurrent == old { f.undoCurrent = new }
        }
    }

    /// Sets (or with nil/empty clears) a snapshot's description.
    public func describe(_ s: SnapshotInfo, _ text: String?) {
        let key = Self.key(s)
        update { f in
            var r = f.records[key] ?? SnapshotRecord()
            r.description = (text?.isEmpty ?? true) ? nil : text
            f.records[key] = r
        }
    }

    /// `reset`: the layer (and where it stood) became the undo step; the fresh one is on the golden image.
    public func layerReset() {
        update { f in
            f.undoCurrent = f.current
            f.current = nil
        }
    }

    /// `reset --undo`: the layers swap.
    public func layersSwapped() {
        update { f in swap(&f.current, &f.undoCurrent) }
    }

    /// Notes what a snapshot command did (both paths call it with their outcome).
    public func note(_ outcome: SnapshotOutcome) {
        switch outcome {
        case .created(_, let s?, _, _, _): created(s)
        case .restored(let s, _, _, _, _): restored(s)
        case .deleted(_, let s?): deleted(s)
        default: break
        }
    }
}

/// One row of `snapshot list`: the qcow2 table's entry and labrun's story of it.
public struct SnapshotEntry: Equatable, Sendable {
    public var info: SnapshotInfo
    public var description: String?
    /// The parent's name, when the parent still exists.
    public var parent: String?
    public var isCurrent: Bool
    /// What deleting it alone would free (nil when the image could not be measured).
    public var exclusiveBytes: UInt64?

    /// The table's snapshots with their story, in the table's order.
    public static func entries(_ list: [SnapshotInfo], history: SnapshotHistoryFile, space: Qcow2SpaceReport?) -> [SnapshotEntry] {
        var byKey: [String: SnapshotInfo] = [:]
        for s in list { byKey[SnapshotHistory.key(s)] = s }
        var spaceByID: [String: UInt64] = [:]
        for s in space?.snapshots ?? [] { spaceByID[s.id] = s.exclusiveBytes }
        return list.map { s in
            let key = SnapshotHistory.key(s)
            let record = history.records[key]
            // A parent that is gone (deleted by qemu-img) is skipped up to one that exists.
            var parentKey = record?.parent
            var seen: Set<String> = [key]
            while let p = parentKey, byKey[p] == nil, !seen.contains(p) {
                seen.insert(p)
                parentKey = history.records[p]?.parent
            }
            return SnapshotEntry(info: s, description: record?.description,
                                 parent: parentKey.flatMap { byKey[$0]?.name },
                                 isCurrent: history.current == key,
                                 exclusiveBytes: spaceByID[s.id])
        }
    }
}
