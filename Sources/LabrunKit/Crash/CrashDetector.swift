import Glibc

/// Finds kernel crash reports in the guest's console output, incrementally and cheaply.
///
/// Feed it every byte the console prints, split however the reads came (mid-line, mid-UTF-8,
/// CR LF, ANSI sequences and all), with the time they arrived; it hands back `CrashEvent`s.
/// It is pure: no clock, no I/O. The caller passes `now` (any monotonic seconds) and calls
/// `tick(now:)` when `deadline` has passed, so that a report that has no end marker is
/// completed half a second (`quietSeconds`) after its last line.
///
/// **Recognised**: `Kernel panic - not syncing`, `BUG:` (page faults, NULL dereferences, KASAN,
/// KFENCE, KMSAN, KCSAN, soft lockups, …), `kernel BUG at`, `WARNING:`, `general protection
/// fault`, `Oops: … [#N]`, `invalid opcode:`, `divide error:`, `int3:`, `stack segment:`, `PANIC:
/// double fault`, `UBSAN:`, `INFO: task … blocked for more than …`, RCU stalls (`rcu: INFO:
/// rcu_preempt detected stalls …`), `watchdog: BUG: soft lockup`, `Watchdog detected hard
/// LOCKUP`, and arm's `Unable to handle kernel`, `Internal error:`, `Unhandled fault:`. A header
/// may come anywhere in a line (after a shell prompt the kernel's line interrupted, say) but must
/// start a word. `BUG:`, `WARNING:` and `INFO:` on a line without a kernel timestamp count only
/// in a form the kernel prints (so `WARNING: modpost: …` from a build in the guest is no crash).
///
/// **A report** is its header line and the lines after it of the same printk context: with
/// kernel timestamps (`[  12.345678] `), the timestamped lines; with a printk caller (`[T123]`,
/// CONFIG_PRINTK_CALLER), that caller's lines (and, after `Sending NMI from CPU`, the CPUs' `[Cn]`
/// lines); without timestamps, the lines without one. So a shell's output, or another task's
/// lines, in between are left out, and reports of different callers that interleave are collected
/// side by side (at most `maxOpenReports`). `Call Trace:` and the rest after a header belong to
/// its report. An `Oops:` or `invalid opcode:` line continues the open report of its context, and
/// so does a panic when that report has no stack yet or caused it (`Fatal exception`,
/// `panic_on_warn`, `hung_task: blocked tasks`, …; `isPanic` becomes true); another header ends
/// the context's report and starts a new one. (An unrelated panic, such as `echo c >
/// /proc/sysrq-trigger` just after a hung-task report, is a report of its own.)
///
/// **Complete** when its end marker arrives (`---[ end trace …`, `---[ end Kernel panic …`, or
/// for KASAN, KFENCE, KMSAN, KCSAN and UBSAN the closing `=====` rule), when a new report starts,
/// when it reaches `maxReportLines`/`maxReportBytes` (then `truncated`), or `quietSeconds` after
/// its last line (`deadline`, `tick`). Its title is made then (see `CrashReport.title`).
///
/// **Repeats**: a report whose title equals one completed within `repeatWindow` seconds is not
/// a new report: the earlier one's `count` goes up, reported as `.repeated` at most once per
/// `repeatInterval` per title (the last count is reported when the interval has passed). A report
/// with the same title *and the same kernel timestamp* as one seen before is a replay of the
/// kernel log (`dmesg` in the guest) and is ignored.
///
/// **Bounds**: lines are cut at `maxLineBytes`, reports at `maxReportLines` and
/// `maxReportBytes`, and it remembers `maxRememberedTitles` titles; garbage costs nothing more.
///
/// **Cost**: per byte, a table test and (at a header's first letter starting a word) a short
/// compare; lines are split with memchr. Lines are copied only while a report is open or when
/// they hold a header.
public struct CrashDetector: Sendable {
    /// Longer lines are cut to this many bytes (the rest of the line is dropped).
    public static let maxLineBytes = 4096
    /// A report is complete (and `truncated`) when it has this many lines.
    public static let maxReportLines = 400
    /// A report is complete (and `truncated`) when it has this many bytes.
    public static let maxReportBytes = 64 * 1024
    /// At most one `.repeated` event per title per this many seconds.
    public static let repeatInterval = 1.0
    /// How many titles the detector remembers for repeats and replays.
    public static let maxRememberedTitles = 16

    /// Seconds without a further line of an open report after which it is complete.
    public let quietSeconds: Double
    /// A report with the title of one whose last line came at most this many seconds before its
    /// first line is a repeat.
    public let repeatWindow: Double

    /// At most this many reports (of different printk contexts) are collected at once.
    public static let maxOpenReports = 4

    private var partial: [UInt8] = []
    private var lastLineBytes: [UInt8] = []
    private var open: [OpenReport] = []   // in the order they started; at most one per context
    private var remembered: [Remembered] = []

    /// A detector with nothing seen. `quietSeconds`: see `deadline`; `repeatWindow`: see
    /// `CrashEvent.repeated` (5 minutes by default: the hung-task detector repeats its report
    /// every 2 minutes).
    public init(quietSeconds: Double = 0.5, repeatWindow: Double = 300) {
        self.quietSeconds = quietSeconds
        self.repeatWindow = repeatWindow
        partial.reserveCapacity(256)
    }

    /// Takes the next bytes of the console, which arrived at `now`; returns the reports they
    /// completed (and first completes a report whose quiet period had passed before `now`).
    public mutating func feed(_ bytes: some Collection<UInt8>, now: Double) -> [CrashEvent] {
        var events = tick(now: now)
        let done: Void? = bytes.withContiguousStorageIfAvailable { buf in
            consume(buf, now: now, events: &events)
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBufferPointer { consume($0, now: now, events: &events) }
        }
        return events
    }

    /// Completes the open reports whose quiet period has passed, and reports repeat counts whose
    /// interval has passed. Call it when `deadline` has come (calling it more often is harmless).
    public mutating func tick(now: Double) -> [CrashEvent] {
        var events: [CrashEvent] = []
        var i = 0
        while i < open.count {
            if now >= open[i].lastSeen + quietSeconds {
                complete(i, now: now, events: &events)
            } else {
                i += 1
            }
        }
        flushRepeats(now: now, all: false, events: &events)
        return events
    }

    /// Completes the open reports now and reports every pending repeat count, e.g. when the guest
    /// has stopped (QEMU exited) and no more lines will come.
    public mutating func finish(now: Double) -> [CrashEvent] {
        var events: [CrashEvent] = []
        while !open.isEmpty { complete(0, now: now, events: &events) }
        flushRepeats(now: now, all: true, events: &events)
        return events
    }

    /// When `tick` must next be called: an open report's last line plus `quietSeconds`, or when a
    /// pending repeat count may be reported; nil when nothing is pending.
    public var deadline: Double? {
        var d = open.map { $0.lastSeen + quietSeconds }.min()
        for r in remembered where r.pending {
            let t = r.lastEvent + Self.repeatInterval
            d = Swift.min(d ?? t, t)
        }
        return d
    }

    /// Whether a report has started and is not complete yet.
    public var isCollecting: Bool { !open.isEmpty }

    /// The last complete console line that was not blank, cleaned like `CrashReport.text` (for
    /// "the guest panicked during boot; last line: …"). Empty before the first line.
    public var lastLine: String { String(decoding: lastLineBytes, as: UTF8.self) }

    // MARK: lines

    private mutating func consume(_ buf: UnsafeBufferPointer<UInt8>, now: Double, events: inout [CrashEvent]) {
        guard let base = buf.baseAddress else { return }
        let n = buf.count
        var start = 0
        while start < n {
            guard let hit = memchr(base + start, 0x0A, n - start) else {
                appendPartial(base + start, n - start)
                return
            }
            let end = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
            if partial.isEmpty {
                processLine(base + start, Swift.min(end - start, Self.maxLineBytes), now: now, events: &events)
            } else {
                appendPartial(base + start, end - start)
                var line: [UInt8] = []
                swap(&line, &partial)
                line.withUnsafeBufferPointer { processLine($0.baseAddress!, $0.count, now: now, events: &events) }
                line.removeAll(keepingCapacity: true)
                swap(&line, &partial)
            }
            start = end + 1
        }
    }

    private mutating func appendPartial(_ p: UnsafePointer<UInt8>, _ n: Int) {
        let room = Self.maxLineBytes - partial.count
        if room > 0 { partial.append(contentsOf: UnsafeBufferPointer(start: p, count: Swift.min(n, room))) }
    }

    private mutating func processLine(_ p: UnsafePointer<UInt8>, _ count: Int, now: Double, events: inout [CrashEvent]) {
        var n = count
        while n > 0 && p[n - 1] == 0x0D { n -= 1 }
        guard n > 0 else { return }
        let scan = CrashScan.scan(p, n)
        if !scan.dirty {
            if CrashScan.isVisible(p, n) {
                lastLineBytes.removeAll(keepingCapacity: true)
                lastLineBytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            }
            guard scan.headers != 0 || !open.isEmpty else { return }
            examine(Array(UnsafeBufferPointer(start: p, count: n)), candidates: scan.headers, now: now, events: &events)
        } else {
            var line: [UInt8] = []
            line.reserveCapacity(n)
            CrashScan.clean(p, n, into: &line)
            guard !line.isEmpty else { return }
            let candidates = line.withUnsafeBufferPointer { CrashScan.scan($0.baseAddress!, $0.count).headers }
            if line.withUnsafeBufferPointer({ CrashScan.isVisible($0.baseAddress!, $0.count) }) {
                lastLineBytes = line
            }
            guard candidates != 0 || !open.isEmpty else { return }
            examine(line, candidates: candidates, now: now, events: &events)
        }
    }

    /// The slow path: a line that may start a report, or any line while one is open.
    private mutating func examine(_ line: [UInt8], candidates: UInt32, now: Double, events: inout [CrashEvent]) {
        let prefix = CrashScan.prefix(line)
        let header = candidates == 0 ? nil : CrashScan.header(in: line, candidates: candidates, prefix: prefix)
        if CrashScan.contains(line, "** replaying previous printk message **") {
            // The last header was cut short; the kernel prints it again whole.
            if let last = open.last, last.lines.count == 1 { open.removeLast() }
            return
        }
        let mine = open.firstIndex { $0.accepts(prefix) }   // the open report of this line's context
        if let h = header {
            var folds = false
            if let i = mine, h.continues {
                // A panic continues a report that has no stack yet, or one it is the consequence of.
                folds = h.header != .kernelPanic || !open[i].sawStack
                    || CrashScan.isConsequentialPanic(Array(line[h.offset...]))
            }
            if !folds {
                if let i = mine { complete(i, now: now, events: &events) }
                if open.count >= Self.maxOpenReports { complete(0, now: now, events: &events) }
                start(line, header: h.header, at: h.offset, prefix: prefix, now: now)
                return
            }
            if h.header == .kernelPanic, let i = mine {
                // Like syzkaller: a long report's title comes from the report, not the panic's stack.
                if open[i].titleLineLimit == nil && open[i].lines.count > 22 { open[i].titleLineLimit = open[i].lines.count }
                open[i].isPanic = true
            }
        }
        guard let i = mine else { return }
        open[i].append(line, prefix: prefix, now: now)
        if !open[i].sawStack && CrashFrames.callTrace(line) != nil { open[i].sawStack = true }
        if CrashScan.contains(line, "Sending NMI from CPU") { open[i].cpuTraceback = true }
        if CrashScan.isEndMarker(line, from: prefix.messageStart)
            || (open[i].endsAtRule && CrashScan.isRule(line, from: prefix.messageStart)) {
            complete(i, now: now, events: &events)
        } else if open[i].lines.count >= Self.maxReportLines || open[i].bytes >= Self.maxReportBytes {
            open[i].truncated = true
            complete(i, now: now, events: &events)
        }
    }

    private mutating func start(_ line: [UInt8], header: CrashHeader, at: Int, prefix: CrashScan.Prefix, now: Double) {
        var r = OpenReport(header: header, headerOffset: at, prefix: prefix, now: now)
        r.endsAtRule = header == .ubsan
            || (header == .bug && (CrashScan.has(line, at: at, "BUG: KASAN:") || CrashScan.has(line, at: at, "BUG: KFENCE:")
                || CrashScan.has(line, at: at, "BUG: KMSAN:") || CrashScan.has(line, at: at, "BUG: KCSAN:")))
        r.append(line, prefix: prefix, now: now)
        r.sawStack = CrashFrames.callTrace(line) != nil
        open.append(r)
    }

    // MARK: reports

    private mutating func complete(_ index: Int, now: Double, events: inout [CrashEvent]) {
        let r = open.remove(at: index)
        let upTo = r.titleLineLimit ?? r.lines.count
        var messages: [[UInt8]] = [Array(r.lines[0][r.headerOffset...])]
        for i in 1..<upTo { messages.append(Array(r.lines[i][r.messageStarts[i]...])) }
        let (kind, title) = CrashTitle.describe(r.header, lines: messages)
        var text: [UInt8] = []
        text.reserveCapacity(r.bytes)
        for l in r.lines {
            text.append(contentsOf: l)
            text.append(0x0A)
        }
        let report = CrashReport(kind: kind, title: title, text: String(decoding: text, as: UTF8.self),
                                 firstSeen: r.firstSeen, lastSeen: r.lastSeen,
                                 isPanic: r.isPanic || kind == .panic, truncated: r.truncated)
        record(report, stamp: r.stamp, now: now, events: &events)
    }

    private mutating func record(_ report: CrashReport, stamp: [UInt8], now: Double, events: inout [CrashEvent]) {
        if let i = remembered.firstIndex(where: { $0.report.title == report.title }) {
            var m = remembered[i]
            if !stamp.isEmpty && m.stamps.contains(stamp) { return }   // the kernel log replayed
            if report.firstSeen - m.report.lastSeen <= repeatWindow {
                m.report.count += 1
                m.report.lastSeen = Swift.max(m.report.lastSeen, report.lastSeen)
                m.report.isPanic = m.report.isPanic || report.isPanic
                m.remember(stamp)
                if now - m.lastEvent >= Self.repeatInterval {
                    events.append(.repeated(m.report))
                    m.lastEvent = now
                    m.pending = false
                } else {
                    m.pending = true
                }
                remembered.remove(at: i)
                remembered.append(m)   // most recent last
                return
            }
            if m.pending { events.append(.repeated(m.report)) }
            remembered.remove(at: i)
        }
        if remembered.count >= Self.maxRememberedTitles {
            let oldest = remembered.removeFirst()
            if oldest.pending { events.append(.repeated(oldest.report)) }
        }
        var m = Remembered(report: report, lastEvent: now)
        m.remember(stamp)
        remembered.append(m)
        events.append(.report(report))
    }

    private mutating func flushRepeats(now: Double, all: Bool, events: inout [CrashEvent]) {
        for i in remembered.indices where remembered[i].pending {
            if all || now >= remembered[i].lastEvent + Self.repeatInterval {
                events.append(.repeated(remembered[i].report))
                remembered[i].lastEvent = now
                remembered[i].pending = false
            }
        }
    }
}

/// A report being collected.
private struct OpenReport: Sendable {
    var header: CrashHeader
    var headerOffset: Int
    var timestamped: Bool
    var caller: [UInt8]
    var stamp: [UInt8]
    var lines: [[UInt8]] = []
    var messageStarts: [Int] = []
    var bytes = 0
    var firstSeen: Double
    var lastSeen: Double
    var isPanic: Bool
    var titleLineLimit: Int?
    var cpuTraceback = false
    var truncated = false
    var endsAtRule = false
    /// A `Call Trace:` has come.
    var sawStack = false

    init(header: CrashHeader, headerOffset: Int, prefix: CrashScan.Prefix, now: Double) {
        self.header = header
        self.headerOffset = headerOffset
        timestamped = prefix.timestamped
        caller = prefix.caller
        stamp = prefix.stamp
        firstSeen = now
        lastSeen = now
        isPanic = header == .kernelPanic
    }

    /// Whether a line with this prefix belongs to the report (the same printk context).
    func accepts(_ p: CrashScan.Prefix) -> Bool {
        guard p.timestamped == timestamped else { return false }
        if p.caller == caller { return true }
        return cpuTraceback && p.caller.first == UInt8(ascii: "C")
    }

    mutating func append(_ line: [UInt8], prefix: CrashScan.Prefix, now: Double) {
        lines.append(line)
        messageStarts.append(Swift.min(prefix.messageStart, line.count))
        bytes += line.count + 1
        lastSeen = now
    }
}

/// A title seen lately: for repeat counts and replays.
private struct Remembered: Sendable {
    var report: CrashReport
    var lastEvent: Double
    var pending = false
    var stamps: [[UInt8]] = []

    init(report: CrashReport, lastEvent: Double) {
        self.report = report
        self.lastEvent = lastEvent
    }

    mutating func remember(_ stamp: [UInt8]) {
        guard !stamp.isEmpty else { return }
        if stamps.count >= 64 { stamps.removeFirst() }
        stamps.append(stamp)
    }
}
