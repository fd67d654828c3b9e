/// One kernel crash report seen on the guest's console: an oops, a BUG, a WARNING, a panic, a
/// lockup or stall, a sanitizer report.
///
/// `CrashDetector` makes these from the console's bytes. The title is a one-line summary in the
/// style of syzkaller's `pkg/report`, e.g. `WARNING in hello_init`,
/// `BUG: unable to handle kernel NULL pointer dereference in hello_init`, `INFO: task hung in
/// mnt_want_write` or `kernel panic: sysrq triggered crash`. Numbers, addresses and source lines
/// in a title are replaced by `NUM`, `ADDR` and `LINE` as syzkaller does, so that a report that
/// repeats gets the same title each time.
public struct CrashReport: Codable, Equatable, Sendable {
    /// What sort of report this is: the header line the kernel printed first.
    public enum Kind: String, Codable, Sendable {
        /// `Kernel panic - not syncing: …` as the report's first line.
        case panic
        /// A fault in kernel code: `BUG: unable to handle page fault / kernel NULL pointer
        /// dereference`, `Oops:`, `invalid opcode:`, `divide error:`, `PANIC: double fault`, …
        case oops
        /// `kernel BUG at …` (a `BUG()`/`BUG_ON()`), and the other `BUG:` reports (sleeping in
        /// atomic context, bad page state, memory leak, KMSAN, KCSAN, …).
        case bug
        /// `WARNING: CPU: … at …` (a `WARN()`/`WARN_ON()`) and lockdep's `WARNING:`/`INFO:` reports.
        case warning
        /// `general protection fault`.
        case generalProtectionFault
        /// `BUG: KASAN: …`.
        case kasan
        /// `BUG: KFENCE: …`.
        case kfence
        /// `UBSAN: …`.
        case ubsan
        /// `INFO: task … blocked for more than N seconds.` (the hung-task detector).
        case hungTask
        /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`.
        case softLockup
        /// `watchdog: Watchdog detected hard LOCKUP on cpu N` (6.1 prints it as `NMI watchdog: …`).
        case hardLockup
        /// `rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:` and the `rcu_sched`,
        /// self-detected and expedited variants.
        case rcuStall
    }

    /// What sort of report this is.
    public var kind: Kind
    /// A one-line summary, syzkaller-style: `WARNING in foo`, `kernel BUG in foo`, …
    public var title: String
    /// The report's lines as the console printed them (timestamps kept), ANSI sequences and
    /// carriage returns removed, each line ended by `\n`. Lines of other CPUs or tasks that came
    /// in between are left out when the kernel's line prefixes tell them apart (see
    /// `CrashDetector`). At most `CrashDetector.maxReportLines` lines and
    /// `CrashDetector.maxReportBytes` bytes.
    public var text: String
    /// How many times this same report (same title) came, counting the first: a guest that
    /// oopses in a loop gives one report whose count goes up.
    public var count: Int
    /// The `now` passed to `CrashDetector.feed` when the report's first line arrived.
    public var firstSeen: Double
    /// The `now` when the last line of the latest repetition arrived.
    public var lastSeen: Double
    /// Whether the kernel panicked in this report: the report is a panic (`kind == .panic`), or
    /// a panic caused by it came as a part of it, such as `Kernel panic - not syncing: Fatal
    /// exception` after an oops, `… panic_on_warn set …` after a warning or `hung_task: blocked
    /// tasks` after a hung-task report. A panicked guest runs no more.
    public var isPanic: Bool
    /// Whether the report was cut at `CrashDetector.maxReportLines` or `maxReportBytes`.
    public var truncated: Bool

    /// Makes a report; `isPanic` defaults to `kind == .panic`.
    public init(kind: Kind, title: String, text: String, count: Int = 1, firstSeen: Double, lastSeen: Double,
                isPanic: Bool? = nil, truncated: Bool = false) {
        self.kind = kind
        self.title = title
        self.text = text
        self.count = count
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.isPanic = isPanic ?? (kind == .panic)
        self.truncated = truncated
    }
}

/// What `CrashDetector.feed` and `CrashDetector.tick` report.
public enum CrashEvent: Equatable, Sendable {
    /// A new complete report (its `count` is 1).
    case report(CrashReport)
    /// A report with the same title as an earlier one came again within
    /// `CrashDetector.repeatWindow` seconds of the earlier one's last line: the earlier report
    /// (its first text) with `count` and `lastSeen` brought up to date. At most one such event a
    /// second per title: repetitions in between only raise the count, and the detector reports
    /// the final count once the second has passed (`deadline` tells the caller when to `tick`).
    case repeated(CrashReport)

    /// The report, new or repeated.
    public var crashReport: CrashReport {
        switch self {
        case .report(let r), .repeated(let r): return r
        }
    }
}
