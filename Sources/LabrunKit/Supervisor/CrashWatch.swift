import FoundationEssentials

/// What labrun does when the guest kernel panics (lab.conf `on_panic`).
public enum PanicAction: String, Codable, Sendable, CaseIterable {
    /// Stop the VM where it is, so its state can be examined (the default).
    case pause
    /// Stop it and keep a snapshot of it, named from the time and the title.
    case snapshot
    /// Reset the guest (it boots again).
    case reboot
    /// End QEMU; `labrun boot` exits with `ExitReason.panicExitCode`.
    case poweroff
}

/// The crash detector on the console stream (issue 13), as a loop part: every guest byte goes
/// through `CrashDetector`; each complete report (or a repeat's new count) comes out through
/// `onReport` within a second of its last line. It keeps the reports of the current VM for
/// `status`.
final class CrashWatch: LoopPart {
    private var detector = CrashDetector()
    /// This VM's reports, oldest first (a repeat updates its report's count).
    private(set) var reports: [CrashReport] = []
    var onReport: (_ report: CrashReport, _ new: Bool) -> Void = { _, _ in }

    /// The guest's kernel panicked (it runs no more).
    var panicked: CrashReport? { reports.last(where: \.isPanic) }

    /// "running", "panicked", or "oopsed N times" (every non-panic report counts).
    var guestState: String {
        if panicked != nil { return "panicked" }
        let n = reports.reduce(0) { $0 + $1.count }
        return n == 0 ? "running" : "oopsed \(n) time\(n == 1 ? "" : "s")"
    }

    /// The last non-blank console line (what a boot that panicked last said).
    var lastLine: String { detector.lastLine }

    func feed(_ bytes: [UInt8]) {
        deliver(detector.feed(bytes, now: wallClockSeconds()))
        if watchesBoot { watchBoot(bytes) }
    }

    /// The tiny guest's initrd could not boot the lab: its /init printed
    /// "labrun-initrd: ERROR: REASON" and waits in a rescue shell (a kernel without virtio-blk or
    /// ext4 gets there). `onBootFailure` gets REASON, once per boot.
    var onBootFailure: (String) -> Void = { _ in }
    static let initrdError = Array("labrun-initrd: ERROR: ".utf8)
    /// The full Debian guest's initramfs-tools says it this way ("ALERT!  /dev/vda does not
    /// exist.  Dropping to a shell!") before its "(initramfs)" prompt.
    static let initramfsShell = Array("Dropping to a shell!".utf8)
    /// Until the guest is up (`guestIsUp`), console lines are looked at for that.
    private(set) var watchesBoot = true
    private var bootLine: [UInt8] = []

    /// The guest's agent is up: the boot went on.
    func guestIsUp() {
        watchesBoot = false
        bootLine = []
    }

    private func watchBoot(_ bytes: [UInt8]) {
        for b in bytes {
            if b != 0x0A {
                if bootLine.count < 512 && b != 0x0D { bootLine.append(b) }
                continue
            }
            defer { bootLine.removeAll(keepingCapacity: true) }
            if bootLine.count > Self.initrdError.count, let at = FileStream.firstOffset(of: Self.initrdError, in: bootLine) {
                watchesBoot = false
                onBootFailure(String(decoding: bootLine[(at + Self.initrdError.count)...], as: UTF8.self))
                return
            }
            if let at = FileStream.firstOffset(of: Self.initramfsShell, in: bootLine) {
                watchesBoot = false
                let words = String(decoding: bootLine[..<at], as: UTF8.self).split(separator: " ").filter { $0 != "ALERT!" }
                let why = words.joined(separator: " ").trimmed
                onBootFailure("its initramfs stopped: " + (why.isEmpty ? "no root file system" : why.hasSuffix(".") ? String(why.dropLast()) : why))
                return
            }
        }
    }

    /// QEMU has ended: what was being collected is complete.
    func finish() {
        deliver(detector.finish(now: wallClockSeconds()))
    }

    /// A new VM (a reset in place): its reports start afresh.
    func restart() {
        finish()
        detector = CrashDetector()
        reports.removeAll()
        watchesBoot = true
        bootLine = []
    }

    private func deliver(_ events: [CrashEvent]) {
        for e in events {
            switch e {
            case .report(let r):
                reports.append(r)
                onReport(r, true)
            case .repeated(let r):
                if let i = reports.lastIndex(where: { $0.title == r.title }) { reports[i] = r } else { reports.append(r) }
                onReport(r, false)
            }
        }
    }

    /// QEMU's GUEST_PANICKED (the guest's pvpanic driver): the console's own report usually
    /// says more, so it gets a second to arrive; without one, this is the report.
    private var pvpanicAt: Double?

    func guestSaysItPanicked() {
        guard panicked == nil, pvpanicAt == nil else { return }
        pvpanicAt = monotonicSeconds()
    }

    var interests: [PollInterest] { [] }

    var deadline: Double? {
        // The detector counts in wall-clock seconds; the loop in monotonic ones.
        let d = detector.deadline.map { monotonicSeconds() + max(0, $0 - wallClockSeconds()) }
        return [d, pvpanicAt.map { $0 + 1 }].compactMap { $0 }.min()
    }

    func handle(_ ready: [FileDescriptor: Readiness], now: Double) {
        if let d = detector.deadline, wallClockSeconds() >= d { deliver(detector.tick(now: wallClockSeconds())) }
        if let at = pvpanicAt, now >= at + 1 {
            pvpanicAt = nil
            deliver(detector.finish(now: wallClockSeconds()))
            guard panicked == nil else { return }
            let wall = wallClockSeconds()
            let r = CrashReport(kind: .panic, title: "kernel panic (the guest's pvpanic device said so; its console printed no report)",
                                text: detector.lastLine + "\n", firstSeen: wall, lastSeen: wall)
            reports.append(r)
            onReport(r, true)
        }
    }

    /// A snapshot name for a crash: "panic-20261202-103012-kernel-panic-sysrq-triggered-crash".
    static func snapshotName(for r: CrashReport, date: Double) -> String {
        let t = CalendarTime.local(Int64(date))
        var slug = ""
        for c in r.title.lowercased().unicodeScalars {
            let ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9")
            if ok { slug.unicodeScalars.append(c) } else if !slug.hasSuffix("-") { slug += "-" }
            if slug.count >= 48 { break }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        return "panic-\(t.date(separator: ""))-\(t.time(separator: ""))" + (slug.isEmpty ? "" : "-" + slug)
    }
}

extension Supervisor {
    /// A kernel crash report came (or came again): the terminals and the log are told; a
    /// panic also stops what waits on the guest and does what lab.conf `on_panic` says.
    func crashReported(_ r: CrashReport, new: Bool) {
        log?.report(r)
        let times = r.count > 1 ? " (\(r.count) times)" : ""
        guard r.isPanic, new else {
            return hub.notice("the guest kernel reported: \(r.title)\(times); `labrun log --reports` lists the reports")
        }
        let duringBoot = !agent.isReady
        var line = "the guest kernel panicked\(duringBoot ? " during boot" : ""): \(r.title)"
        if duringBoot, !crashes.lastLine.isEmpty { line += "; its last console line: \(crashes.lastLine)" }
        agentRequests.guestPanicked(line)
        let look = "`make debug` (gdb) or Ctrl-a c (monitor) to look, `labrun snapshot create NAME` keeps it, `labrun reset` starts afresh, `labrun stop` ends it"
        switch lab.config.onPanic {
        case .pause:
            qmp?.send(QMPCommand("stop"))
            hub.notice("\(line). The VM is paused (on_panic = pause): \(look)")
        case .snapshot:
            let name = CrashWatch.snapshotName(for: r, date: r.firstSeen)
            qmp?.send(QMPCommand("stop"))
            hub.notice("\(line). The VM is paused and kept as snapshot '\(name)' (on_panic = snapshot): \(look)")
            operations.enqueue(.init(origin: .console, request: .create(name: name)))
        case .reboot:
            hub.notice("\(line). The guest is reset (on_panic = reboot); `labrun log --reports` keeps the report")
            qmp?.send(QMPCommand("system_reset"))
        case .poweroff:
            hub.notice("\(line). The VM is powered off (on_panic = poweroff)")
            quit(.guestPanicked(r.title))
        }
    }
}
