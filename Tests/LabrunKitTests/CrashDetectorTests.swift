import FoundationEssentials
import Glibc
import Testing
@testable import LabrunKit

// The kernel crash-report detector (Sources/LabrunKit/Crash). Test data: CrashReports/*.txt,
// each a header block (`TITLE:` = the expected title of the first report, `SOURCE:`, and for
// syzkaller's files its other fields), an empty line, then the console log.
// - syzkaller-NNNN.txt: real kernel reports from google/syzkaller's pkg/report testdata, whose
//   TITLE is what syzkaller's parser makes of them (`CrashSamples.deliberate` lists where labrun's
//   title differs on purpose).
// - debian61-*.txt: Debian bookworm's 6.1 kernel: captured from labrun's tiny guest (sysrq crash,
//   hung task, no root fs, init exiting) or hand-written in its format (module bugs, lockups).

// MARK: test data

struct CrashSample: CustomStringConvertible, Sendable {
    let name: String
    let title: String
    let headers: [String: String]
    let log: [UInt8]
    var description: String { name }
}

enum CrashSamples {
    static let directory: String = {
        var path = #filePath
        while let last = path.last, last != "/" { path.removeLast() }
        return path + "CrashReports"
    }()

    static let all: [CrashSample] = {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
        return names.map(load)
    }()

    static let syzkaller = all.filter { $0.name.hasPrefix("syzkaller-") }
    static let debian = all.filter { $0.name.hasPrefix("debian61-") }

    static func named(_ name: String) -> CrashSample { all.first { $0.name == name }! }

    static func load(_ name: String) -> CrashSample {
        let data = FileManager.default.contents(atPath: directory + "/" + name) ?? Data()
        var bytes = [UInt8](data)
        var headers: [String: String] = [:]
        // Header lines up to the first empty line.
        while let nl = bytes.firstIndex(of: 0x0A) {
            let line = String(decoding: bytes[..<nl], as: UTF8.self)
            bytes.removeFirst(nl + 1)
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                headers[String(line[..<colon]), default: ""] += line[line.index(after: colon)...].trimmed
            }
        }
        return CrashSample(name: name, title: headers["TITLE"] ?? "", headers: headers, log: bytes)
    }

    /// Where labrun's title differs from syzkaller's on purpose (file → labrun's title, why).
    static let deliberate: [String: (title: String, why: String)] = [:]
}

/// A seeded generator (SplitMix64) so that the property tests reproduce.
struct CrashRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    /// `bytes` in random pieces: single bytes, a few, a line's worth, a read's worth.
    mutating func pieces(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while i < bytes.count {
            let k = [1, 2, 3, 5, 17, 64, 200, 1024, 4096][below(9)]
            out.append(bytes[i..<min(bytes.count, i + k)])
            i += k
        }
        return out
    }
}

/// Feeds `bytes` whole (or in `pieces`) at time 0, then lets the quiet period pass.
func crashEvents(_ bytes: [UInt8], pieces: [ArraySlice<UInt8>]? = nil) -> [CrashEvent] {
    var d = CrashDetector()
    var events: [CrashEvent] = []
    if let pieces {
        for p in pieces { events += d.feed(p, now: 0) }
    } else {
        events += d.feed(bytes, now: 0)
    }
    events += d.tick(now: 100)
    return events
}

/// Feeds `bytes` a line at a time, 0.1 ms apart, then lets the quiet period pass; the reports in
/// the order they started.
func crashReportsInOrder(_ bytes: [UInt8]) -> [CrashReport] {
    var d = CrashDetector()
    var events: [CrashEvent] = []
    var now = 0.0
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
        events += d.feed(line + [0x0A], now: now)
        now += 0.0001
    }
    events += d.tick(now: now + 100)
    return events.map(\.crashReport).enumerated().sorted { ($0.element.firstSeen, $0.offset) < ($1.element.firstSeen, $1.offset) }.map(\.element)
}

func crashTitles(_ events: [CrashEvent]) -> [String] { events.map { $0.crashReport.title } }

func crashBytes(_ s: String) -> [UInt8] { Array(s.utf8) }

// MARK: titles of real reports

@Suite struct CrashDetectorTitleTests {
    @Test(arguments: CrashSamples.syzkaller)
    func syzkallerReportTitle(_ sample: CrashSample) throws {
        let first = try #require(crashReportsInOrder(sample.log).first, "no report found in \(sample.name)")
        let expected = CrashSamples.deliberate[sample.name]?.title ?? sample.title
        #expect(first.title == expected, "\(sample.name)")
        #expect(first.count == 1)
        // Fed whole at one time, the same report comes first.
        #expect(crashEvents(sample.log).first?.crashReport.title == first.title)
    }

    @Test func syzkallerTitleAgreementSummary() {
        var exact = 0
        for s in CrashSamples.syzkaller where crashReportsInOrder(s.log).first?.title == s.title { exact += 1 }
        print("CrashDetector: \(exact) of \(CrashSamples.syzkaller.count) syzkaller titles match exactly; deliberate differences: \(CrashSamples.deliberate.count)")
        #expect(CrashSamples.syzkaller.count >= 25)
        #expect(exact + CrashSamples.deliberate.count == CrashSamples.syzkaller.count)
    }

    /// Each Debian sample: every report it holds, in order.
    static let debianExpectations: [String: [(CrashReport.Kind, String, Bool)]] = [
        "debian61-sysrq-crash.txt": [(.panic, "kernel panic: sysrq triggered crash", true)],
        "debian61-hung-task-then-sysrq.txt": [
            (.hungTask, "INFO: task hung in mnt_want_write", false),
            (.panic, "kernel panic: sysrq triggered crash", true),
        ],
        "debian61-vfs-no-root.txt": [(.panic, "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)", true)],
        "debian61-init-exits.txt": [(.panic, "kernel panic: Attempted to kill init!", true)],
        "debian61-warn-module.txt": [(.warning, "WARNING in hello_init", false)],
        "debian61-null-deref-module.txt": [(.oops, "BUG: unable to handle kernel NULL pointer dereference in hello_init", false)],
        "debian61-page-fault-module.txt": [(.oops, "BUG: unable to handle kernel paging request in hello_init", false)],
        "debian61-bug-on-module.txt": [(.bug, "kernel BUG in hello_init", false)],
        "debian61-gpf-module.txt": [(.generalProtectionFault, "general protection fault in hello_exit", false)],
        "debian61-hung-task-module.txt": [(.hungTask, "INFO: task hung in hello_write", false)],
        "debian61-soft-lockup-module.txt": [(.softLockup, "BUG: soft lockup in hello_write", false)],
        "debian61-hard-lockup-module.txt": [(.hardLockup, "BUG: hard lockup in finit_module", false)],
        "debian61-rcu-stall-module.txt": [(.rcuStall, "INFO: rcu detected stall in hello_write", false)],
        "debian61-timer-oops-fatal.txt": [
            (.oops, "BUG: unable to handle kernel NULL pointer dereference in hello_timer_fn", false),
            (.panic, "kernel panic: Fatal exception", true),
        ],
    ]

    @Test(arguments: CrashSamples.debian)
    func debianReports(_ sample: CrashSample) throws {
        let expected = try #require(Self.debianExpectations[sample.name], "no expectation for \(sample.name)")
        let events = crashEvents(sample.log)
        #expect(events.map { $0.crashReport.kind } == expected.map { $0.0 }, "\(sample.name)")
        #expect(crashTitles(events) == expected.map { $0.1 }, "\(sample.name)")
        #expect(events.map { $0.crashReport.isPanic } == expected.map { $0.2 }, "\(sample.name)")
        #expect(crashTitles(events).first == sample.title)
        for e in events {
            guard case .report(let r) = e else { Issue.record("not a new report: \(e)"); continue }
            #expect(r.count == 1)
            #expect(!r.truncated)
        }
    }

    @Test func sysrqCrashCompletesOnItsEndMarker() throws {
        var d = CrashDetector()
        let events = d.feed(CrashSamples.named("debian61-sysrq-crash.txt").log, now: 4.2)
        let r = try #require(events.first?.crashReport)
        #expect(events.count == 1)
        #expect(r.kind == .panic && r.isPanic)
        #expect(r.firstSeen == 4.2 && r.lastSeen == 4.2)
        #expect(d.deadline == nil)
        let lines = r.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "[    4.168065] Kernel panic - not syncing: sysrq triggered crash")
        #expect(lines.dropLast().last == "[    4.174433] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---")
        #expect(r.text.hasSuffix("]---\n"))
        #expect(r.text.contains("Call Trace:\n[    4.169798]  <TASK>\n"))
        #expect(!r.text.contains("root@lab"))   // the shell's lines are not part of it
        #expect(d.lastLine == "[    4.174433] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---")
    }

    @Test func warningFromAModuleLeavesTheShellOut() throws {
        let events = crashEvents(CrashSamples.named("debian61-warn-module.txt").log)
        let r = try #require(events.first?.crashReport)
        #expect(r.text.hasPrefix("[   45.675730] WARNING: CPU: 0 PID: 123 at /root/hello/hello.c:10 hello_init+0x15/0x30 [hello]\n"))
        #expect(r.text.hasSuffix("[   45.687510] ---[ end trace 0000000000000000 ]---\n"))
    }

    @Test func panicThatAWarningCausesIsPartOfIt() throws {
        // panic_on_warn: the WARNING's report goes on with the panic and its end marker.
        let warn = String(decoding: CrashSamples.named("debian61-warn-module.txt").log, as: UTF8.self)
        let body = warn.split(separator: "\n").filter { $0.hasPrefix("[") && !$0.contains("end trace") && !$0.contains("hello:") }
        let log = body.joined(separator: "\n") + """

            [   45.687600] Kernel panic - not syncing: kernel: panic_on_warn set ...
            [   45.687700] CPU: 0 PID: 123 Comm: insmod Tainted: G           OE      6.1.0-57-amd64 #1  Debian 6.1.192-3
            [   45.687800] Call Trace:
            [   45.687900]  <TASK>
            [   45.688000]  dump_stack_lvl+0x44/0x5c
            [   45.688100]  panic+0x118/0x2f4
            [   45.688200]  check_panic_on_warn.cold+0x1a/0x1a
            [   45.688300]  __warn+0x9c/0xc0
            [   45.688400]  </TASK>
            [   45.688500] Kernel Offset: disabled
            [   45.688600] ---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---

            """
        var d = CrashDetector()
        let events = d.feed(crashBytes(log), now: 1)
        #expect(crashTitles(events) == ["WARNING in hello_init"])
        let r = try #require(events.first?.crashReport)
        #expect(r.kind == .warning && r.isPanic)
        #expect(r.text.hasSuffix("---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---\n"))
    }

    @Test func hungTaskPanicIsPartOfTheHungTaskReport() {
        let hung = String(decoding: CrashSamples.named("debian61-hung-task-module.txt").log, as: UTF8.self)
        let log = hung + """
            [  242.880000] Kernel panic - not syncing: hung_task: blocked tasks
            [  242.880100] CPU: 0 PID: 27 Comm: khungtaskd Tainted: G           OE      6.1.0-57-amd64 #1  Debian 6.1.192-3
            [  242.880200] Call Trace:
            [  242.880300]  <TASK>
            [  242.880400]  dump_stack_lvl+0x44/0x5c
            [  242.880500]  panic+0x118/0x2f4
            [  242.880600]  watchdog.cold+0xc/0xa7
            [  242.880700]  kthread+0xda/0x100
            [  242.880800]  ret_from_fork+0x22/0x30
            [  242.880900]  </TASK>
            [  242.881000] Kernel Offset: disabled
            [  242.881100] ---[ end Kernel panic - not syncing: hung_task: blocked tasks ]---

            """
        let events = crashEvents(crashBytes(log))
        #expect(crashTitles(events) == ["INFO: task hung in hello_write"])
        #expect(events.first?.crashReport.isPanic == true)
        #expect(events.first?.crashReport.kind == .hungTask)
    }

    @Test func interleavedTasksGiveTwoReports() {
        // With CONFIG_PRINTK_CALLER each task's lines are told apart: two reports, one per task.
        let log = """
            [   10.000000][ T100] WARNING: CPU: 0 PID: 100 at /root/a/a.c:10 a_init+0x15/0x30 [a]
            [   10.000001][ T200] BUG: kernel NULL pointer dereference, address: 0000000000000008
            [   10.000002][ T100] RIP: 0010:a_init+0x15/0x30 [a]
            [   10.000003][ T200] Oops: 0000 [#1] PREEMPT SMP NOPTI
            [   10.000004][ T200] RIP: 0010:b_read+0x11/0x30 [b]
            [   10.000005][ T100] Call Trace:
            [   10.000006][ T200] Call Trace:
            [   10.000007][ T100]  do_one_initcall+0x5b/0x220
            [   10.000008][ T200]  vfs_read+0xa1/0x180
            [   10.000009][ T100] ---[ end trace 0000000000000000 ]---
            [   10.000010][ T200] ---[ end trace 0000000000000000 ]---

            """
        let reports = crashReportsInOrder(crashBytes(log))
        #expect(reports.map(\.title) == ["WARNING in a_init", "BUG: unable to handle kernel NULL pointer dereference in b_read"])
        #expect(reports.first.map { !$0.text.contains("T200") } == true)
        #expect(reports.last.map { !$0.text.contains("T100") } == true)
    }

    @Test func aPanicContinuesAReportThatHasNoStackYet() {
        // "BUG: scheduling while atomic" prints no stack before panic() prints one.
        let log = """
            [ 1181.712781] BUG: scheduling while atomic: sh/21395/0x00000201
            [ 1181.719776] no locks held by sh/21395.
            [ 1181.724731] Modules linked in:
            [ 1181.727989] Kernel panic - not syncing: scheduling while atomic
            [ 1181.751828] Call Trace:
            [ 1181.754432]  dump_stack+0x14d/0x20b
            [ 1181.759900]  panic+0x1c3/0x45d
            [ 1181.781972]  __schedule_bug+0x10f/0x140
            [ 1181.787791]  __schedule+0xd18/0x1d30
            [ 1181.815591]  schedule+0x8f/0x1b0
            [ 1181.820777]  exit_to_usermode_loop+0x164/0x360
            [ 1181.827185]  do_syscall_64+0x56e/0x6d0
            [ 1181.846538] ---[ end Kernel panic - not syncing: scheduling while atomic ]---

            """
        let events = crashEvents(crashBytes(log))
        #expect(crashTitles(events) == ["BUG: scheduling while atomic in exit_to_usermode_loop"])
        #expect(events.first?.crashReport.isPanic == true)
        #expect(events.first?.crashReport.kind == .bug)
    }

    @Test func aHeaderCutShortAndReplayedCountsOnce() {
        let log = """
            [  584.319520][   T31] INFO: t
            ** replaying previous printk message **
            [  584.319520][   T31] INFO: task udevd:5612 blocked for more than 143 seconds.
            [  584.319601][   T31] Call Trace:
            [  584.319622][   T31]  __schedule+0x1b74/0x2d24
            [  584.319668][   T31]  read_cache_folio+0x68/0x84

            """
        #expect(crashTitles(crashEvents(crashBytes(log))) == ["INFO: task hung in read_cache_folio"])
    }

    @Test func armBacktraceFrames() {
        let log = """
            [  100.000000] BUG: scheduling while atomic: sh/1/0x00000002
            [  100.000001] Backtrace:
            [  100.000002] [<8011218c>] (dump_backtrace) from [<8010e300>] (show_stack+0x18/0x1c)
            [  100.000003] [<8010e300>] (show_stack) from [<80c1eb20>] (dump_stack_lvl+0x60/0xdc)
            [  100.000004] [<80c1eb20>] (dump_stack_lvl) from [<8043e8d8>] (__schedule_bug+0x3bc/0x4e4)
            [  100.000005] [<8043e8d8>] (__schedule_bug) from [<80c1f000>] (hello_write+0x10/0x20)

            """
        #expect(crashTitles(crashEvents(crashBytes(log))) == ["BUG: scheduling while atomic in hello_write"])
    }

    @Test func printkCallerContextsAreKeptApart() throws {
        // 0480: "[ T9969]" is the report's task; a "[ T9967]" line in between is not part of it.
        let events = crashEvents(CrashSamples.named("syzkaller-0480.txt").log)
        let r = try #require(events.first?.crashReport)
        #expect(!r.text.contains("ubi0: scanning is finished"))
        #expect(r.text.contains("RIP: 0010:0x86"))
    }
}

// MARK: the byte stream

@Suite struct CrashDetectorStreamTests {
    @Test func randomSplitsGiveWhatWholeFeedingGives() {
        var rng = CrashRNG(0xC4A5_4DE7)
        for sample in CrashSamples.all {
            let whole = crashEvents(sample.log)
            for _ in 0..<8 {
                let split = crashEvents(sample.log, pieces: rng.pieces(sample.log))
                #expect(split == whole, "\(sample.name)")
            }
        }
    }

    @Test func crlfAndAnsiSequencesAreIgnored() {
        // What a serial console really sends: CR LF, colours, the shell's cursor query.
        for sample in CrashSamples.all {
            let text = String(decoding: sample.log, as: UTF8.self)
            var noisy = text.replacingOccurrences("\n", with: "\r\n")
            noisy = noisy.replacingOccurrences("root@lab:~# ", with: "\u{1B}[1;32mroot@lab\u{1B}[0m:~# \u{1B}[6n")
            noisy = noisy.replacingOccurrences("Call Trace:", with: "\u{1B}[0mCall Trace:\u{1B}[K")
            var rng = CrashRNG(UInt64(sample.name.utf8.count))
            #expect(crashTitles(crashEvents(crashBytes(noisy), pieces: rng.pieces(crashBytes(noisy)))) == crashTitles(crashEvents(sample.log)), "\(sample.name)")
        }
    }

    @Test func textHasNoControlBytesAndLFLineEnds() throws {
        var noisy = crashBytes("\u{1B}]0;title\u{07}root@lab:~# echo c > /proc/sysrq-trigger\r\n")
        noisy += crashBytes("[    4.1] Kernel panic - not syncing: sysrq triggered crash\r\n")
        noisy += crashBytes("[    4.2] CPU: 0 PID: 128 Comm: sh Not tainted 6.1.0-57-amd64 #1\r\r\n")
        noisy += crashBytes("[    4.3] \u{1B}[31mCall Trace:\u{1B}[0m\r\n")
        noisy += crashBytes("[    4.4] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\r\n")
        let r = try #require(crashEvents(noisy).first?.crashReport)
        #expect(r.text == """
            [    4.1] Kernel panic - not syncing: sysrq triggered crash
            [    4.2] CPU: 0 PID: 128 Comm: sh Not tainted 6.1.0-57-amd64 #1
            [    4.3] Call Trace:
            [    4.4] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---

            """)
    }

    @Test func unrelatedLinesInBetweenAreLeftOut() throws {
        // A shell printing (no timestamps) while the kernel's lines come, split mid-line and mid-UTF-8.
        let sample = CrashSamples.named("debian61-null-deref-module.txt")
        var mixed: [UInt8] = []
        for (i, line) in sample.log.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            mixed += line + [0x0A]
            if i % 3 == 1 { mixed += crashBytes("build: gcc -O2 -c héllo.c → héllo.o ✓ \(i)\n") }
        }
        var rng = CrashRNG(7)
        let events = crashEvents(mixed, pieces: rng.pieces(mixed))
        #expect(crashTitles(events) == [sample.title])
        let r = try #require(events.first?.crashReport)
        #expect(!r.text.contains("build:"))
        #expect(r.text == crashEvents(sample.log).first?.crashReport.text)
    }

    @Test func headerAfterAShellPromptOnTheSameLine() {
        // The real hung-task capture: "root@lab:~# [   12.004001] INFO: task sh:140 blocked …".
        let events = crashEvents(CrashSamples.named("debian61-hung-task-then-sysrq.txt").log)
        #expect(events.first?.crashReport.text.hasPrefix("root@lab:~# [   12.004001] INFO: task sh:140 blocked for more than 3 seconds.\n") == true)
    }

    @Test func noReportWithoutAKernelLine() {
        let shell = """
            root@lab:~# make -C /lib/modules/6.1.0-57-amd64/build M=/root/hello
            WARNING: modpost: missing MODULE_LICENSE() in /root/hello/hello.o
            INFO: this is a build log, BUG: none
            traps: a.out[1234] general protection fault ip:401136 sp:7ffc6e3f0a10 error:0 in a.out[401000+1000]
            Oops: the program failed
            Internal error: the program failed
            INFO: task build blocked for more than a while
            Kernel BUG reported by the user
            kernel BUGS are fun; DEBUG: x; BUGGY: y
            invalid opcode: nothing
            ---[ end trace 0000000000000000 ]---
            ---[ end Kernel panic - not syncing: nothing ]---
            [   12.000000] ---[ end trace 0000000000000000 ]---
            [   12.000001] ---[ end Kernel panic - not syncing: x ]---
            [   12.000002] traps: a.out[1234] general protection fault ip:401136 sp:7ffc6e3f0a10 error:0 in a.out[401000+1000]
            [   12.000003] EXT4-fs (vda): WARNING: mounting fs with errors
            root@lab:~#

            """
        var d = CrashDetector()
        #expect(d.feed(crashBytes(shell), now: 0).isEmpty)
        #expect(d.deadline == nil)
        #expect(!d.isCollecting)
        #expect(d.tick(now: 10).isEmpty)
        #expect(d.lastLine == "root@lab:~#")
    }

    @Test func knownFormsCountWithoutTimestamps() {
        let log = """
            WARNING: CPU: 0 PID: 123 at /root/hello/hello.c:10 hello_init+0x15/0x30 [hello]
            RIP: 0010:hello_init+0x15/0x30 [hello]
            Call Trace:
             <TASK>
             do_one_initcall+0x5b/0x220
             </TASK>
            ---[ end trace 0000000000000000 ]---

            """
        #expect(crashTitles(crashEvents(crashBytes(log))) == ["WARNING in hello_init"])
        // Any BUG:/WARNING:/INFO: the kernel prints (with a timestamp) is a report.
        #expect(crashTitles(crashEvents(crashBytes("[    1.000000] BUG: something new happened to 123 things at ffffffff81234567\n"))) == ["BUG: something new happened to NUM things at ADDR"])
    }

    @Test func quietPeriodCompletesAReportWithoutEndMarker() throws {
        var d = CrashDetector()
        let log = CrashSamples.named("debian61-hung-task-module.txt").log
        let half = log.count / 2
        #expect(d.feed(log[..<half], now: 10.0).isEmpty)
        #expect(d.deadline == 10.5)
        #expect(d.feed(log[half...], now: 10.25).isEmpty)   // more lines: the deadline moves
        #expect(d.deadline == 10.75)
        #expect(d.isCollecting)
        #expect(d.tick(now: 10.7).isEmpty)
        let events = d.tick(now: 10.75)
        let r = try #require(events.first?.crashReport)
        #expect(events.count == 1)
        #expect(r.title == "INFO: task hung in hello_write")
        #expect(r.firstSeen == 10.0 && r.lastSeen == 10.25)
        #expect(d.deadline == nil)
        #expect(!d.isCollecting)
    }

    @Test func unrelatedLinesDoNotPostponeTheDeadline() {
        var d = CrashDetector()
        _ = d.feed(crashBytes("[    5.000000] BUG: scheduling while atomic: sh/1/0x00000002\n"), now: 1)
        _ = d.feed(crashBytes("root@lab:~# ls\nbin  etc  usr\n"), now: 1.4)
        #expect(d.deadline == 1.5)
        #expect(crashTitles(d.feed(crashBytes("x\n"), now: 1.6)) == ["BUG: scheduling while atomic in corrupted"])
    }

    @Test func finishCompletesWhatIsOpen() {
        var d = CrashDetector()
        _ = d.feed(crashBytes("[    5.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n"), now: 1)
        #expect(crashTitles(d.finish(now: 1.1)) == ["kernel panic: Attempted to kill init!"])
        #expect(d.finish(now: 1.2).isEmpty)
    }

    @Test func aNewHeaderCompletesTheOpenReport() {
        let log = """
            [   10.000000] WARNING: CPU: 0 PID: 1 at /root/hello/hello.c:10 hello_init+0x15/0x30 [hello]
            [   10.000100] RIP: 0010:hello_init+0x15/0x30 [hello]
            [   10.000200] BUG: kernel NULL pointer dereference, address: 0000000000000000
            [   10.000300] RIP: 0010:hello_exit+0x1/0x30 [hello]

            """
        var d = CrashDetector()
        let first = d.feed(crashBytes(log), now: 0)
        #expect(crashTitles(first) == ["WARNING in hello_init"])
        #expect(crashTitles(d.tick(now: 1)) == ["BUG: unable to handle kernel NULL pointer dereference in hello_exit"])
    }

    @Test func lastLineIsTheLastCompleteVisibleLine() {
        var d = CrashDetector()
        #expect(d.lastLine == "")
        _ = d.feed(crashBytes("[    2.628005] Run /init as init process\r\n\r\n   \r\n\u{1B}[0m\r\npartial"), now: 0)
        #expect(d.lastLine == "[    2.628005] Run /init as init process")
        _ = d.feed(crashBytes(" line é\r\n"), now: 0)
        #expect(d.lastLine == "partial line é")
    }
}

// MARK: repeats

@Suite struct CrashDetectorRepeatTests {
    /// The WARNING sample's report lines with their timestamps moved `shift` seconds on.
    static func warning(shift: Double) -> [UInt8] {
        let text = String(decoding: CrashSamples.named("debian61-warn-module.txt").log, as: UTF8.self)
        var out = ""
        for line in text.split(separator: "\n") where line.hasPrefix("[") {
            let close = line.firstIndex(of: "]")!
            let t = Double(line[line.index(after: line.startIndex)..<close].trimmed)! + shift
            let stamp = String(Int(t)) + "." + String(Int((t - Double(Int(t))) * 1e6 + 1e6)).dropFirst()
            out += "[" + String(repeating: " ", count: max(0, 12 - stamp.count)) + stamp + line[close...] + "\n"
        }
        return crashBytes(out)
    }

    @Test func aLoopGivesOneReportWithACount() throws {
        var d = CrashDetector()
        var events: [CrashEvent] = []
        for i in 0..<50 {
            events += d.feed(Self.warning(shift: Double(i) * 0.1), now: 100 + Double(i) * 0.1)
        }
        let news = events.filter { if case .report = $0 { true } else { false } }
        let repeats = events.compactMap { if case .repeated(let r) = $0 { r } else { nil } }
        #expect(news.count == 1)
        #expect(news.first?.crashReport.count == 1)
        // At most one .repeated a second: 4.9 s of repeats.
        #expect(repeats.count >= 4 && repeats.count <= 5)
        #expect(repeats.map(\.count) == repeats.map(\.count).sorted())
        // The last count is reported once its second has passed.
        let deadline = try #require(d.deadline)
        #expect(d.tick(now: deadline - 0.01).isEmpty)
        let last = d.tick(now: deadline)
        let final = try #require(last.first)
        guard case .repeated(let r) = final else { Issue.record("expected a repeat"); return }
        #expect(r.count == 50)
        #expect(r.title == "WARNING in hello_init")
        #expect(r.firstSeen == 100)
        #expect(abs(r.lastSeen - 104.9) < 1e-9)
        #expect(r.text == news.first?.crashReport.text)
        #expect(d.deadline == nil)
    }

    @Test func hungTaskRepeatsTwoMinutesApartAreCounted() throws {
        var d = CrashDetector()
        #expect(d.feed(Self.warning(shift: 0), now: 0).count == 1)
        let again = d.feed(Self.warning(shift: 120), now: 120)
        guard case .repeated(let r) = try #require(again.first) else { Issue.record("expected a repeat"); return }
        #expect(r.count == 2)
        #expect(d.deadline == nil)
    }

    @Test func theSameTitleLongAfterIsANewReport() {
        var d = CrashDetector(repeatWindow: 60)
        let a = d.feed(Self.warning(shift: 0), now: 0)
        let b = d.feed(Self.warning(shift: 100), now: 100)
        #expect(a.count == 1 && b.count == 1)
        guard case .report = a[0], case .report = b[0] else { Issue.record("expected two new reports"); return }
    }

    @Test func aReplayedKernelLogIsNoNewReport() {
        // `dmesg` in the guest prints the same report with the same timestamps again.
        var d = CrashDetector()
        #expect(d.feed(Self.warning(shift: 0), now: 0).count == 1)
        #expect(d.feed(crashBytes("root@lab:~# dmesg\n") + Self.warning(shift: 0), now: 30).isEmpty)
        #expect(d.tick(now: 40).isEmpty)
        #expect(d.deadline == nil)
    }
}

// MARK: bounds, garbage, cost

@Suite struct CrashDetectorRobustnessTests {
    @Test func reportsAndLinesAreBounded() throws {
        var d = CrashDetector()
        var log = crashBytes("[    1.000000] BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]\n")
        for i in 0..<10_000 { log += crashBytes("[    1.\(String(100000 + i).dropFirst())] line \(i) \(String(repeating: "x", count: 100))\n") }
        let events = d.feed(log, now: 0)
        let r = try #require(events.first?.crashReport)
        #expect(r.truncated)
        let lines = r.text.split(separator: "\n")
        #expect(lines.count <= CrashDetector.maxReportLines)
        #expect(r.text.utf8.count <= CrashDetector.maxReportBytes + 200)
        #expect(!d.isCollecting)
        // A megabyte without a newline.
        _ = d.feed([UInt8](repeating: UInt8(ascii: "A"), count: 1 << 20), now: 1)
        _ = d.feed(crashBytes("\n"), now: 1)
        #expect(d.lastLine.utf8.count == CrashDetector.maxLineBytes)
        let longHeader = crashBytes("[    2.000000] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2 ") + [UInt8](repeating: 0x41, count: 100_000)
            + crashBytes("\n[    2.000001] RIP: 0010:f+0x1/0x2\n")
        let e2 = d.feed(longHeader, now: 2) + d.tick(now: 3)
        #expect(crashTitles(e2) == ["WARNING in f"])
        #expect(e2.first.map { $0.crashReport.text.utf8.count <= CrashDetector.maxLineBytes + 40 } == true)
    }

    @Test(.timeLimit(.minutes(1)))
    func garbageNeverCrashes() {
        var rng = CrashRNG(0x6A5BA6E)
        var d = CrashDetector()
        let words = ["BUG: ", "WARNING: ", "INFO: task ", "Kernel panic - not syncing: ", "kernel BUG at ", "Oops: [#1]",
                     "general protection fault: ", "UBSAN: ", "Call Trace:\n", "RIP: 0010:", "---[ end trace ",
                     "\n[   1.000000] ", "[ T1] ", "\u{1B}[", "\r", "=====================\n", "+0x1/0x2", " at ", ".c:"]
        var now = 0.0
        for _ in 0..<2000 {
            var chunk: [UInt8] = []
            for _ in 0..<rng.below(64) {
                if rng.below(3) == 0 {
                    chunk += crashBytes(words[rng.below(words.count)])
                } else {
                    chunk += (0..<rng.below(40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                }
            }
            now += Double(rng.below(1000)) / 1000
            let events = d.feed(chunk, now: now) + d.tick(now: now)
            for e in events { #expect(e.crashReport.title.utf8.count <= 120) }
        }
        // Plain random bytes, a few MB.
        var random = [UInt8](repeating: 0, count: 4 << 20)
        for i in random.indices { random[i] = UInt8(truncatingIfNeeded: rng.next()) }
        _ = d.feed(random, now: now + 1)
        _ = d.finish(now: now + 2)
        // Mutated real reports.
        for sample in CrashSamples.all {
            var b = sample.log
            for _ in 0..<20 where !b.isEmpty { b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            _ = crashEvents(b, pieces: rng.pieces(b))
        }
    }

    /// Ordinary console traffic: a shell's output, a build, boot messages with timestamps.
    static func ordinaryConsole(bytes target: Int) -> [UInt8] {
        let lines = [
            "root@lab:~# ls -l /usr/lib/x86_64-linux-gnu | head",
            "-rw-r--r-- 1 root root   145216 Jan  3  2023 libgcc_s.so.1",
            "drwxr-xr-x 2 root root     4096 Dec  2 01:28 security",
            "  CC [M]  /root/hello/hello.o",
            "  MODPOST /root/hello/Module.symvers",
            "make[1]: Leaving directory '/usr/src/linux-headers-6.1.0-57-amd64'",
            "[    3.612298] EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.",
            "[    1.624432] input: AT Translated Set 2 keyboard as /devices/platform/i8042/serio0/input/input0",
            "[   12.045736] sysrq: Show Blocked State",
            "Mem:         1003264      123456      812345        1234       67463      856789",
            "kernel: bug-free build of the day, with warnings disabled and info logs off",
            "/usr/bin/python3 -c 'print(\"Integration tests: Skipped 3, Bugs found 0, Warnings 12\")'",
            "\u{1B}[0m\u{1B}[01;34mbin\u{1B}[0m  \u{1B}[01;34mboot\u{1B}[0m  \u{1B}[01;34mdev\u{1B}[0m  \u{1B}[01;32mrun.sh\u{1B}[0m",
            "\u{1B}[1;32mroot@lab\u{1B}[0m:\u{1B}[1;34m~\u{1B}[0m# make -j2 \u{1B}[6n",
        ]
        var out: [UInt8] = []
        out.reserveCapacity(target + 200)
        var i = 0
        while out.count < target {
            out += crashBytes(lines[i % lines.count])
            out += [0x0D, 0x0A]
            i += 1
        }
        return out
    }

    @Test func throughputOnOrdinaryOutput() {
        let data = Self.ordinaryConsole(bytes: 8 << 20)
        var d = CrashDetector()
        var events = 0
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        data.withUnsafeBufferPointer { buf in
            var i = 0
            while i < buf.count {
                let n = min(4096, buf.count - i)
                events += d.feed(UnsafeBufferPointer(rebasing: buf[i..<(i + n)]), now: 0).count
                i += n
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &end)
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        let mb = Double(data.count) / 1e6
        print("CrashDetector throughput: \(Int(mb)) MB of ordinary console output in \(Int(seconds * 1000)) ms = \(Int(mb / seconds)) MB/s")
        #expect(events == 0)
        #expect(!d.isCollecting)
        #expect(!d.lastLine.isEmpty && !d.lastLine.contains("\u{1B}"))
    }
}

private extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}
