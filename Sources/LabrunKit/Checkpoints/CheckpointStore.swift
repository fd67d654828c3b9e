import FoundationEssentials

/// A file of a checkpoint as it was written: its size and checksum.
public struct FileCheck: Codable, Equatable, Sendable {
    public var size: Int64
    public var checksum: String
}

/// What a checkpoint directory says of itself (`checkpoint.json`).
public struct CheckpointRecord: Codable, Equatable, Sendable {
    public var key: CheckpointKey
    /// When it was made (seconds since 1970).
    public var created: Double
    public var state: FileCheck
    public var disk: FileCheck
    /// The backing file name in `disk.qcow2`'s header (that of the lab that made it).
    public var diskBacking: String
    /// The console's last line when it was made (the shell prompt), shown again on a resume.
    public var prompt: String?
    /// The guest console's size then (a resume into a terminal of that size needs no change).
    public var consoleRows: Int?
    public var consoleColumns: Int?

    /// "2026-12-01 21:05:33" in local time.
    public var createdText: String {
        let t = CalendarTime.local(Int64(created))
        return "\(t.date(separator: "-")) \(t.time(separator: ":"))"
    }
}

/// One boot checkpoint: a directory holding the VM's state as a migration stream (`state`),
/// the runtime layer as it was at that moment (`disk.qcow2`, backed by the golden image) and
/// its record. Only ever read once made, so labs on the same golden image share it.
public struct Checkpoint: Equatable, Sendable {
    public let directory: String
    public let record: CheckpointRecord

    public var statePath: String { directory + "/state" }
    public var diskPath: String { directory + "/disk.qcow2" }
    public var recordPath: String { directory + "/checkpoint.json" }
    public var name: String { "the boot checkpoint of \(record.createdText)" }
    /// What it is a checkpoint of: the kernel, its command line and the VM's size.
    public var summary: String {
        let kernel = record.key.kernel.path.split(separator: "/").last.map(String.init) ?? record.key.kernel.path
        return "\(kernel), \"\(record.key.append)\", \(record.key.shape.memoryMiB) MiB"
    }

    static let streamMagic: [UInt8] = [0x51, 0x45, 0x56, 0x4D, 0, 0, 0, 3]   // "QEVM", version 3

    /// Why this checkpoint must not be loaded, or nil when its files are whole: both present
    /// with the sizes and checksums recorded, and the state a QEMU migration stream.
    public func damage() -> String? {
        for (path, check, what) in [(statePath, record.state, "VM state"), (diskPath, record.disk, "disk")] {
            guard let st = FileStatus.of(path) else { return "its \(what) file is missing" }
            if st.size != check.size { return "its \(what) file has \(st.size) bytes instead of \(check.size) (truncated?)" }
        }
        guard let fd = try? FileDescriptor.open(statePath, FileDescriptor.readOnly) else { return "its VM state cannot be read" }
        let head = (try? fd.read(upTo: 8, at: 0).get("read")) ?? []
        fd.close()
        if head != Self.streamMagic { return "its VM state is not a QEMU 7 migration stream" }
        guard let state = try? Checksum.of(file: statePath) else { return "its VM state cannot be read" }
        if state.value != record.state.checksum { return "its VM state does not match its checksum (damaged)" }
        return nil
    }

    /// Makes `runtime` a copy of the checkpoint's disk, with `backing` as its backing file name;
    /// throws (leaving `runtime` as it was) when the copy does not match the recorded checksum.
    public func installDisk(as runtime: String, backing: String) throws(LabrunError) {
        let part = runtime + ".checkpoint-part"
        var sum = Checksum()
        do { try FileStream.copy(diskPath, to: part) { sum.update($0) } } catch { throw error.asLabrunError }
        guard sum.value == record.disk.checksum else {
            removeFile(part)
            throw LabrunError("its disk does not match its checksum (damaged)")
        }
        do {
            if backing != record.diskBacking { try QemuImg().setBacking(path: part, backing: backing, backingFormat: "qcow2") }
        } catch {
            removeFile(part)
            throw error
        }
        do { try renameFile(part, runtime) } catch {
            removeFile(part)
            throw error.asLabrunError
        }
    }
}

/// Where a lab's boot checkpoints live: `.labrun-checkpoints/` beside the golden image, so
/// every lab made from that image shares them (or the lab's own, when that place is not
/// writable; or lab.conf's `checkpoints = DIR`). One directory per key; a few are kept.
public struct CheckpointStore: Equatable, Sendable {
    public let directory: String
    /// How many checkpoints are kept (the newest; one per key).
    public static let keep = 4

    /// The lab's store, or nil when lab.conf says `checkpoints = off`.
    public init?(lab: Lab) {
        if let conf = lab.config.checkpoints {
            if conf == "off" { return nil }
            directory = lab.resolve(conf) ?? conf
            return
        }
        let beside = parentDirectory(realPath(lab.goldenPath) ?? lab.goldenPath)
        directory = (isReadWritable(beside) ? beside : lab.root) + "/.labrun-checkpoints"
    }

    public init(directory: String) { self.directory = directory }

    public func path(for key: CheckpointKey) -> String { directory + "/" + key.id }

    public enum Lookup: Sendable {
        case found(Checkpoint)
        /// None for this key: why (what differs from the newest one made before).
        case missing(String)
        /// One exists but must not be loaded: why, and where it was moved.
        case damaged(String, movedTo: String?)
    }

    /// The checkpoint for `key`, checked whole (a damaged one is moved aside here).
    public func find(_ key: CheckpointKey) -> Lookup {
        let dir = path(for: key)
        guard fileExists(dir) else { return .missing(whyMissing(key)) }
        guard let record = Self.record(in: dir) else { return damaged(dir, "its record is missing or unreadable") }
        guard record.key == key else { return damaged(dir, "it was made for another VM (\(key.differences(from: record.key).joined(separator: ", ")))") }
        let checkpoint = Checkpoint(directory: dir, record: record)
        if let why = checkpoint.damage() { return damaged(dir, why) }
        return .found(checkpoint)
    }

    private func damaged(_ dir: String, _ why: String) -> Lookup {
        .damaged(why, movedTo: moveAside(dir))
    }

    /// Moves a damaged checkpoint out of the way (kept for a look, never loaded); its new path.
    @discardableResult
    public func moveAside(_ dir: String) -> String? {
        let base = directory + "/damaged-" + String(dir.split(separator: "/").last ?? "x") + "-"
        let now = Int(wallClockSeconds() * 1000)
        guard let target = (now..<now + 20).map({ base + String($0) }).first(where: { !fileExists($0) }),
              (try? renameFile(dir, target)) != nil else { removeFlatDirectory(dir); return nil }
        // Only the newest two damaged ones stay.
        let damaged = namesInDirectory(directory).filter { $0.hasPrefix("damaged-") }.sorted { stamp($0) > stamp($1) }
        for old in damaged.dropFirst(2) { removeFlatDirectory(directory + "/" + old) }
        return target
    }

    private func stamp(_ name: String) -> Int { Int(name.split(separator: "-").last ?? "") ?? 0 }

    static func record(in dir: String) -> CheckpointRecord? {
        guard let bytes = readSmallFile(dir + "/checkpoint.json", limit: 1 << 20) else { return nil }
        return try? JSONDecoder().decode(CheckpointRecord.self, from: Data(bytes))
    }

    /// Every whole checkpoint's record, newest first.
    public func all() -> [Checkpoint] {
        namesInDirectory(directory).filter { $0.count == 16 && $0.allSatisfy(\.isHexDigit) }
            .compactMap { name in Self.record(in: directory + "/" + name).map { Checkpoint(directory: directory + "/" + name, record: $0) } }
            .sorted { $0.record.created > $1.record.created }
    }

    /// Why there is no checkpoint for `key`: what differs from the newest one.
    func whyMissing(_ key: CheckpointKey) -> String {
        let others = all()
        guard let newest = others.first(where: { $0.record.key.golden.path == key.golden.path }) ?? others.first else {
            return "no boot checkpoint yet for this golden image"
        }
        let changed = key.differences(from: newest.record.key)
        return changed.isEmpty ? "no boot checkpoint for this VM yet" : "changed since the last boot checkpoint: " + changed.joined(separator: ", ")
    }

    /// Drops the oldest checkpoints beyond `keep`, and any made on an older build of a golden
    /// image that is still in use at the same path (never `protecting`).
    public func prune(protecting: String) {
        let checkpoints = all()
        var kept = 0
        for c in checkpoints where c.directory != protecting {
            let stale = FileIdentity.of(c.record.key.golden.path).map { $0 != c.record.key.golden } ?? true
            if stale || kept >= Self.keep - 1 { removeFlatDirectory(c.directory) } else { kept += 1 }
        }
        // Leftovers of saves that died half-way.
        for name in namesInDirectory(directory) where name.contains(".part-") {
            let pid = Int32(name.split(separator: "-").last ?? "") ?? 0
            if pid <= 0 || !processExists(pid) { removeFlatDirectory(directory + "/" + name) }
        }
    }
}
