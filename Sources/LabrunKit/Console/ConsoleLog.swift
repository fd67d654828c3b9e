import FoundationEssentials

/// The console log (issue 12): every byte the guest writes to its console, line by line with
/// the host time and the time since QEMU started, plus labrun's own notices marked as such
/// and a mark at each boot. Kept across boots in `LAB/console.log`, rotated at a size limit
/// (`console.log.1` … older). One record per line:
///
///     <unix ms> <ms since QEMU started> <kind> <bytes>
///
/// kind `G` a guest line, `P` the start of a guest line that continues in the next record
/// (written when a line stays unfinished, e.g. a shell prompt), `L` a labrun notice, `B` a
/// boot, `R` a kernel crash report (JSON; the report's lines are in the log as guest lines). Writes are buffered and never block the console; on a full disk logging pauses.
final class ConsoleLog: LoopPart {
    let path: String
    let fileLimit: Int64
    let files: Int
    /// When QEMU started (monotonic seconds): the second time column counts from it.
    var qemuStarted = monotonicSeconds()
    /// A line for the console (a full disk); it never comes back into the log.
    var notice: (String) -> Void = { _ in }

    private var fd: FileDescriptor?
    private var size: Int64 = 0
    private var pending: [UInt8] = []
    private var partial: [UInt8] = []
    private var partialSince: Double?
    private var flushAt: Double?
    private var pausedUntil: Double?
    /// How long an unfinished guest line waits before it is written as a `P` record.
    static let partialDelay = 1.0
    static let flushDelay = 0.05
    static let maxLine = 64 << 10

    init(path: String, fileLimit: Int64 = 16 << 20, files: Int = 4) {
        self.path = path
        self.fileLimit = fileLimit
        self.files = max(1, files)
    }

    private func stamp(_ kind: UInt8) -> [UInt8] {
        let wall = Int64(wallClockSeconds() * 1000)
        let rel = Int64(max(0, monotonicSeconds() - qemuStarted) * 1000)
        return Array("\(wall) \(rel) ".utf8) + [kind, 0x20]
    }

    /// Guest output as read from the console.
    func guest(_ bytes: [UInt8]) {
        var rest = bytes[...]
        while let nl = rest.firstIndex(of: 0x0A) {
            partial += rest[..<nl]
            record(UInt8(ascii: "G"), partial)
            partial.removeAll(keepingCapacity: true)
            rest = rest[(nl + 1)...]
        }
        partial += rest
        if partial.count > Self.maxLine {
            record(UInt8(ascii: "P"), partial)
            partial.removeAll(keepingCapacity: true)
        }
        partialSince = partial.isEmpty ? nil : (partialSince ?? monotonicSeconds())
    }

    /// One of labrun's notices.
    func labrun(_ text: String) {
        endPartial()
        record(UInt8(ascii: "L"), Array(text.replacingAll("\n", with: " ").utf8))
    }

    /// A kernel crash report (or a repeat's new count): one `R` record, its JSON.
    func report(_ r: CrashReport) {
        endPartial()
        record(UInt8(ascii: "R"), Array(String(decoding: jsonLine(r).dropLast(), as: UTF8.self).utf8))
    }

    /// A boot (or a reset in place) begins: `what` says which.
    func boot(_ what: String) {
        endPartial()
        qemuStarted = monotonicSeconds()
        record(UInt8(ascii: "B"), Array(what.utf8))
    }

    private func endPartial() {
        guard !partial.isEmpty else { return }
        record(UInt8(ascii: "P"), partial)
        partial.removeAll(keepingCapacity: true)
        partialSince = nil
    }

    private func record(_ kind: UInt8, _ payload: [UInt8]) {
        guard pausedUntil == nil else { return }
        pending += stamp(kind)
        pending += payload
        pending.append(0x0A)
        if pending.count >= 64 << 10 { flush() } else if flushAt == nil { flushAt = monotonicSeconds() + Self.flushDelay }
    }

    var interests: [PollInterest] { [] }

    var deadline: Double? {
        [flushAt, partialSince.map { $0 + Self.partialDelay }, pausedUntil].compactMap { $0 }.min()
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if let p = pausedUntil, now >= p { pausedUntil = nil }
        if let since = partialSince, now >= since + Self.partialDelay { endPartial() }
        if let f = flushAt, now >= f { flush() }
    }

    /// Writes what is buffered (the file is opened, and rotated, as needed).
    func flush() {
        flushAt = nil
        guard !pending.isEmpty, pausedUntil == nil else { return }
        if fd == nil || size >= fileLimit { rotateIfNeeded() }
        guard let fd else { return pause("cannot open \(path)") }
        var done = 0
        while done < pending.count {
            let r = pending.withUnsafeBytes { fd.write(UnsafeRawBufferPointer(rebasing: $0[done...])) }
            guard case .success(let n) = r, n > 0 else {
                if case .failure(let e) = r { return pause(e == .noSpace ? "the disk is full" : "\(e)") }
                return pause("short write")
            }
            done += n
        }
        size += Int64(done)
        pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
    }

    private func pause(_ why: String) {
        pending.removeAll()
        partial.removeAll()
        partialSince = nil
        pausedUntil = monotonicSeconds() + 10
        notice("console log paused (\(why)); the console goes on, logging tries again in 10 s")
    }

    private func rotateIfNeeded() {
        if let st = FileStatus.of(path), st.size >= fileLimit {
            fd?.close()
            fd = nil
            removeFile(path + ".\(files - 1)")
            if files > 1 {
                for i in stride(from: files - 2, through: 1, by: -1) where fileExists(path + ".\(i)") {
                    try? renameFile(path + ".\(i)", path + ".\(i + 1)")
                }
                try? renameFile(path, path + ".1")
            } else {
                removeFile(path)
            }
        }
        if fd == nil {
            fd = try? FileDescriptor.open(path, FileDescriptor.appendCreate, mode: 0o600)
            size = FileStatus.of(path)?.size ?? 0
        }
    }

    func close() {
        endPartial()
        flush()
        fd?.close()
        fd = nil
    }
}
