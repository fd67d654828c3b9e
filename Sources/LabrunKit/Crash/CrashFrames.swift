/// Picks the function a report's title names, the way syzkaller's pkg/report does: walk the
/// report in "parts" (a line to find, such as `RIP:` or `Call Trace:`, then the frames of a stack
/// trace), skip the frames of generic code (locking, allocation, printing, sanitizer runtime,
/// string and list helpers, …), and take the first frame left, or let an extractor choose one
/// (stalls: the caller of the syscall or work entry; hung tasks: the first that is not waiting).
///
/// The skip lists and anchor frames follow syzkaller's choices (Apache-2.0), written here as
/// plain prefix/suffix/substring rules: no regular expressions.
enum CrashFrames {
    /// One step of a walk over the report's lines.
    enum Part: Sendable {
        /// The first line (from the current one on) that the matcher accepts; it may yield frames.
        case line(@Sendable ([UInt8]) -> [String]?)
        /// The frames of a stack trace, from the current line up to the next stack start (`Call
        /// Trace`, `Allocated by task N:`, `Freed by task N:`, `backtrace:`, …) or the end, or up to
        /// a line the next part accepts.
        case trace
    }

    enum Extractor: Sendable {
        case first, stall, hang
    }

    /// How to find the title's frame.
    struct Spec: Sendable {
        var parts: [Part]
        var fallback: [Part]? = nil
        var skip: [FramePattern] = []
        var extractor: Extractor = .first
    }

    /// The frames the spec selects, one per trace part; "corrupted" when a trace had none left.
    static func frames(_ spec: Spec, in lines: [[UInt8]]) -> [String] {
        let skip = globalSkip + spec.skip
        let (results, ok) = walk(spec.parts, lines: lines, skip: skip, extractor: spec.extractor)
        if ok { return results }
        guard let fallback = spec.fallback else { return results }
        return walk(fallback, lines: lines, skip: skip, extractor: spec.extractor).0
    }

    private static func walk(_ parts: [Part], lines: [[UInt8]], skip: [FramePattern],
                             extractor: Extractor) -> ([String], Bool) {
        var li = 0
        var raw: [String] = []
        var results: [String] = []
        var ok = true
        var traces = 0
        var pi = 0
        func take(_ frames: [String]) {
            for f in frames where !f.isEmpty && !skip.contains(where: { $0.matches(f) }) { raw.append(f) }
        }
        while true {
            let isTrace: Bool
            if pi < parts.count, case .trace = parts[pi] { isTrace = true } else { isTrace = false }
            if pi == parts.count || (isTrace && traces > 0) {
                let key = pick(raw, extractor)
                if key.isEmpty {
                    results.append("corrupted")
                    ok = false
                } else {
                    results.append(key)
                }
                raw = []
            }
            if pi == parts.count { break }
            switch parts[pi] {
            case .trace:
                traces += 1
                while li < lines.count {
                    let ln = lines[li]
                    li += 1
                    if isFaultInjection(ln) {
                        ok = false
                        break
                    }
                    if isStackStart(ln) { break }
                    if pi + 1 < parts.count, case .line(let next) = parts[pi + 1], let got = next(ln) {
                        take(got)
                        pi += 1
                        break
                    }
                    if let fs = lineFrames(ln) { take(fs) }
                }
            case .line(let matcher):
                while li < lines.count {
                    let ln = lines[li]
                    li += 1
                    if isFaultInjection(ln) {
                        ok = false
                        break
                    }
                    if let got = matcher(ln) {
                        take(got)
                        break
                    }
                }
            }
            pi += 1
        }
        return (results, ok)
    }

    private static func pick(_ raw: [String], _ extractor: Extractor) -> String {
        guard !raw.isEmpty else { return "" }
        let stripped = raw.map(stripSyscallPrefix)
        switch extractor {
        case .first: return stripped[0]
        case .stall: return stallFrame(stripped)
        case .hang: return hangFrame(stripped)
        }
    }

    /// `__x64_sys_write` → `sys_write`: the shortest of the frame less one of the syscall prefixes.
    static func stripSyscallPrefix(_ frame: String) -> String {
        var best = frame
        for p in ["SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
                  "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_"]
            where frame.hasPrefix(p) && frame.utf8.count - p.utf8.count < best.utf8.count {
            best = String(frame.dropFirst(p.count))
        }
        return best
    }

    /// Stalls and lockups: the frame before the first "anchor" (a syscall, work, timer or
    /// softirq entry, or a discriminating file or socket operation), so that a loop's random
    /// position does not decide the title.
    static func stallFrame(_ frames: [String]) -> String {
        var prev = frames[0]
        for f in frames {
            if stallAnchors.contains(where: { $0.matches(f) }) {
                return f.contains("smp_call_function") ? "smp_call_function" : prev
            }
            prev = f
        }
        return ""
    }

    /// Hung tasks: hangs in synchronize_rcu()/rtnl_lock() are grouped under those; otherwise the
    /// first frame that is not scheduling, locking or waiting.
    static func hangFrame(_ frames: [String]) -> String {
        for f in frames {
            if f.contains("rtnl_lock") { return f }
            for anchor in ["synchronize_rcu", "synchronize_srcu", "synchronize_net", "synchronize_sched"] where f.contains(anchor) {
                return "synchronize_rcu"
            }
        }
        let waiting = ["sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait",
                       "synchronize", "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier"]
        return frames.first(where: { f in !waiting.contains(where: { f.contains($0) }) }) ?? ""
    }

    // MARK: lines

    /// The frames of a stack-trace line: `frame`, or arm's `[<pc>] (f) from [<pc>] (g+0x…)` (f and g).
    /// powerpc's `… (unreliable)` frames are no frames (syzkaller drops them with the `? ` ones).
    @Sendable static func lineFrames(_ l: [UInt8]) -> [String]? {
        if CrashScan.has(l, at: l.count - 13, " (unreliable)") { return nil }
        if let f = frame(l) { return [f] }
        var i = 0
        while i < l.count && l[i] == 0x20 { i += 1 }
        guard let e = pcEnd(l, i), CrashScan.has(l, at: e, " (") else { return nil }
        var j = e + 2
        let s = j
        while j < l.count && (CrashScan.isWordByte(l[j]) || l[j] == UInt8(ascii: ".")) { j += 1 }
        guard j > s, CrashScan.has(l, at: j, ") from "), let e2 = pcEnd(l, j + 7), CrashScan.has(l, at: e2, " ("),
              let f = function(l, at: e2 + 2) else { return nil }
        return [String(decoding: l[s..<j], as: UTF8.self), f]
    }

    /// A stack-trace frame line: `^ *([<pc>] ){0,2}FUNC[.+]` (FUNC = `[A-Za-z0-9_]+`).
    @Sendable static func frame(_ l: [UInt8]) -> String? {
        var i = 0
        while i < l.count && l[i] == 0x20 { i += 1 }
        for _ in 0..<2 {
            guard let e = pcEnd(l, i), e < l.count, l[e] == 0x20 else { break }
            i = e + 1
        }
        return function(l, at: i)
    }

    /// `FUNC` followed by `.` or `+` at `i`.
    static func function(_ l: [UInt8], at i: Int) -> String? {
        var j = i
        while j < l.count && CrashScan.isWordByte(l[j]) { j += 1 }
        guard j > i, j < l.count, l[j] == UInt8(ascii: ".") || l[j] == UInt8(ascii: "+") else { return nil }
        return String(decoding: l[i..<j], as: UTF8.self)
    }

    /// The end of a `[<ffffffff81234567>]` (or `[ffff…]`, `[<0x…>]`) at `i`.
    static func pcEnd(_ l: [UInt8], _ i: Int) -> Int? {
        guard i < l.count, l[i] == UInt8(ascii: "[") else { return nil }
        var j = i + 1
        if j < l.count && l[j] == UInt8(ascii: "<") { j += 1 }
        if CrashScan.has(l, at: j, "0x") && j + 2 < l.count && isLowerHex(l[j + 2]) { j += 2 }
        let h = j
        while j < l.count && isLowerHex(l[j]) { j += 1 }
        guard j > h else { return nil }
        if j < l.count && l[j] == UInt8(ascii: ">") { j += 1 }
        guard j < l.count, l[j] == UInt8(ascii: "]") else { return nil }
        return j + 1
    }

    static func isLowerHex(_ b: UInt8) -> Bool { CrashScan.isDigit(b) || (b >= 0x61 && b <= 0x66) }

    /// `(?:IP|NIP|pc |PC is at):? …`: the faulting instruction's function from `RIP: 0010:foo+0x1/0x2`,
    /// `IP: [<…>] foo+…`, arm64's `pc : foo+…`; a match without a frame for `RIP: 0033:0x7f…` or `(null)`.
    @Sendable static func rip(_ l: [UInt8]) -> [String]? {
        var p = 0
        while p < l.count {
            var q: Int?
            if CrashScan.has(l, at: p, "IP") { q = p + 2 }
            else if CrashScan.has(l, at: p, "NIP") { q = p + 3 }
            else if CrashScan.has(l, at: p, "pc ") { q = p + 3 }
            else if CrashScan.has(l, at: p, "PC is at") { q = p + 8 }
            if var r = q {
                if r < l.count && l[r] == UInt8(ascii: ":") { r += 1 }
                if r < l.count && l[r] == 0x20, let m = ripOperand(l, r + 1) { return m }
            }
            p += 1
        }
        return nil
    }

    private static func ripOperand(_ l: [UInt8], _ start: Int) -> [String]? {
        var afterDigits: Int?
        var d = start
        while d < l.count && CrashScan.isDigit(l[d]) { d += 1 }
        if d > start && d < l.count && l[d] == UInt8(ascii: ":") { afterDigits = d + 1 }
        // (?:[0-9]+:)?(?:PC +){0,2}FUNC
        for s in [afterDigits, start].compactMap({ $0 }) {
            var i = s
            for _ in 0..<2 {
                guard let e = pcEnd(l, i), e < l.count, l[e] == 0x20 else { break }
                i = e
                while i < l.count && l[i] == 0x20 { i += 1 }
            }
            if let f = function(l, at: i) { return [f] }
        }
        // (?:[0-9]+:)?0x[0-9a-f]+
        for s in [afterDigits, start].compactMap({ $0 }) {
            if CrashScan.has(l, at: s, "0x") && s + 2 < l.count && isLowerHex(l[s + 2]) { return [] }
        }
        // (null) forms
        if let s = afterDigits ?? Optional(start), CrashScan.firstIndex(of: "(null)", in: l, from: s) != nil { return [] }
        return nil
    }

    /// `[<pc>] +FUNC` anywhere; with `last`, the last such on the line.
    @Sendable static func pcFunction(_ l: [UInt8], last: Bool = false) -> [String]? {
        var found: String?
        var i = 0
        while i < l.count {
            if l[i] == UInt8(ascii: "["), let e = pcEnd(l, i), e < l.count, l[e] == 0x20 {
                var j = e
                while j < l.count && l[j] == 0x20 { j += 1 }
                if let f = function(l, at: j) {
                    found = f
                    if !last { return [f] }
                }
            }
            i += 1
        }
        return found.map { [$0] }
    }

    /// `at: (?:[<pc>] +)?FUNC`, the first on the line.
    @Sendable static func atFunction(_ l: [UInt8]) -> [String]? {
        var from = 0
        while let a = CrashScan.firstIndex(of: "at: ", in: l, from: from) {
            var i = a + 4
            if let e = pcEnd(l, i), e < l.count, l[e] == 0x20 {
                var j = e
                while j < l.count && l[j] == 0x20 { j += 1 }
                if let f = function(l, at: j) { return [f] }
            }
            if let f = function(l, at: i) { return [f] }
            i = a + 1
            from = i
        }
        return nil
    }

    @Sendable static func callTrace(_ l: [UInt8]) -> [String]? {
        CrashScan.contains(l, "Call Trace:") || CrashScan.contains(l, "Call trace:") || CrashScan.contains(l, "Backtrace:") ? [] : nil
    }

    static func containing(_ lit: StaticString) -> @Sendable ([UInt8]) -> [String]? {
        { CrashScan.contains($0, lit) ? [] : nil }
    }

    /// A frame of fault injection (`should_fail+0x…`, `should_failslab.cold+0x…`): its stack is
    /// often mixed into a report, which then has no trustworthy frame (syzkaller's "corrupted lines").
    static func isFaultInjection(_ l: [UInt8]) -> Bool {
        var i = 0
        if CrashScan.has(l, at: 0, " ["), let e = pcEnd(l, 1) { i = e }
        guard CrashScan.has(l, at: i, " should_fail") else { return false }
        i += 12
        if CrashScan.has(l, at: i, "slab") { i += 4 }
        if i < l.count && l[i] == UInt8(ascii: ".") {
            i += 1
            while i < l.count && (CrashScan.isDigit(l[i]) || (l[i] >= 0x61 && l[i] <= 0x7A) || l[i] == UInt8(ascii: ".")) { i += 1 }
        }
        return CrashScan.has(l, at: i, "+0x")
    }

    /// Where a new stack trace starts.
    @Sendable static func isStackStart(_ l: [UInt8]) -> Bool {
        if CrashScan.contains(l, "Call Trace") || CrashScan.contains(l, "Call trace") || CrashScan.contains(l, "Backtrace:")
            || CrashScan.contains(l, "Allocated:") || CrashScan.contains(l, "Freed:")
            || CrashScan.contains(l, "Uninit was stored to memory at") {
            return true
        }
        for lit: StaticString in ["Allocated by task ", "Freed by task "] {
            if let p = CrashScan.firstIndex(of: lit, in: l) {
                var i = p + lit.utf8CodeUnitCount
                let d = i
                while i < l.count && CrashScan.isDigit(l[i]) { i += 1 }
                if i > d && i < l.count && l[i] == UInt8(ascii: ":") { return true }
            }
        }
        // "[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:" (a leak's backtrace, not "stack backtrace:")
        var from = 1
        while let p = CrashScan.firstIndex(of: " backtrace", in: l, from: from) {
            if l[p - 1] != UInt8(ascii: "k"), backtraceColon(l, p + 10) { return true }
            from = p + 1
        }
        return false
    }

    /// `backtrace` is followed by `:` or ` (crc hex):` at `i`.
    static func backtraceColon(_ l: [UInt8], _ i: Int) -> Bool {
        if i < l.count && l[i] == UInt8(ascii: ":") { return true }
        guard CrashScan.has(l, at: i, " (crc ") else { return false }
        var j = i + 6
        while j < l.count && (CrashScan.isDigit(l[j]) || ((l[j] | 0x20) >= 0x61 && (l[j] | 0x20) <= 0x66)) { j += 1 }
        return CrashScan.has(l, at: j, "):")
    }

    /// kmemleak's `backtrace:` or `backtrace (crc …):` line.
    @Sendable static func leakBacktrace(_ l: [UInt8]) -> [String]? {
        var from = 0
        while let p = CrashScan.firstIndex(of: "backtrace", in: l, from: from) {
            if backtraceColon(l, p + 9) { return [] }
            from = p + 1
        }
        return nil
    }

    // MARK: frames to skip

    /// Frames of generic code that never names a bug (syzkaller's list).
    static let globalSkip: [FramePattern] = FramePattern.list([
        "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
        "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
        "print_address_description", "panic", "invalid_op", "report_bug", "fixup_bug", "print_report",
        "print_usage_bug", "do_error", "_trap$", "do_trap", "show_stack", "dump_stack", "walk_stack",
        "dump_backtrace", "warn_slowpath", "warn_alloc", "warn_bogus", "__warn", "alloc_page",
        "malloc", "zalloc", "calloc", "krealloc", "kmem_cache", "allocate_slab",
        "__alloc_frozen_pages_noprof", "folio_alloc", "folio_unlock", "filemap_alloc_folio",
        "__filemap_get_folio", "find_or_create_page", "do_read_cache_folio", "read_cache_page",
        "pagecache_get_page", "grab_cache_page_write_begin", "slab_", "debug_object",
        "timer_is_static_object", "work_is_static_object", "__might_fault", "print_unlock", "imbalance_bug",
        "lockdep", "bh_enable", "bh_disable", "perf_trace", "lock_acquire", "lock_release", "lock_class",
        "mark_lock", "reacquire_held_locks", "mark_held_locks", "raw_spin_rq", "spin_lock", "spin_trylock",
        "spin_unlock", "read_lock", "read_trylock", "write_lock", "write_trylock", "read_unlock",
        "write_unlock", "^down$", "down_read", "down_write", "down_trylock", "up_read", "up_write",
        "^mutex_", "^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
        "set_bit", "clear_bit", "change_bit", "test_bit", "__wake_up", "^refcount_", "^kref_",
        "ref_tracker", "seqprop_assert", "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup",
        "strcmp", "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen", "strstr", "strnstr",
        "strnlen", "strchr", "strdup", "strndup", "copy_to_user", "copy_from_user", "copy_to_iter",
        "copy_from_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter", "^copyin$",
        "^copyout$", "put_user", "get_user", "might_fault", "might_sleep", "list_add", "list_del",
        "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "_indirect_thunk_", "string",
        "pointer", "snprintf", "scnprintf", "kasprintf", "kvasprintf", "printk", "va_format", "dev_info",
        "dev_notice", "dev_warn", "dev_err", "dev_alert", "dev_crit", "dev_emerg", "program_check_exception",
        "program_check_common", "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync",
        "try_to_grab_pending", "flush_workqueue", "drain_workqueue", "destroy_workqueue", "queue_work",
        "finish_wait", "kthread_stop", "kobject_", "add_uevent_var", "get_device_parent", "device_add",
        "device_del", "device_unregister", "device_destroy", "device_release", "devres_release_all",
        "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
        "rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file",
        "tty_unregister_device", "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs",
        "usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb", "^complete$", "wait_for_completion",
        "^kfree$", "^kvfree$", "kfree_skb", "readb$", "readw$", "readl$", "readq$", "writeb$", "writew$",
        "writel$", "writeq$", "logic_in", "logic_out", "crc_itu_t", "__might_resched", "assertfail",
        "^iput$", "^iput_final$", "^ihold$", "hex_dump_to_buffer", "print_hex_dump", "^klist_",
        "trace_hardirq", "trace_softirq", "lockdep_hardirq", "lockdep_softirq", "^lock_page", "^unlock_page",
        "stack_trace_consume_entry", "arch_stack_walk", "stack_trace_save", "insert_work",
        "__queue_delayed_work", "queue_delayed_work_on", "ida_free", "do_kernel_fault",
        "do_translation_fault", "do_mem_abort", "el1_abort", "el1h_64_sync", "print_tainted", "xas_start",
        "xas_load", "xas_find", "find_lock_entries", "truncate_inode_pages_range", "__phys_addr",
        "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup", "extract_user_to_sg",
        "extract_iter_to_sg", "drop_nlink", "^get_taint$", "^put_device$", "lock_timer_base",
        "__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer", "fast_dput", "dput", "mark_buffer_dirty",
    ]) + [.crcDigits, .onceNocheck, .atomicOp]

    /// Where a stall's representative frame ends (syzkaller's anchor frames).
    static let stallAnchors: [FramePattern] = FramePattern.list([
        "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
        "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq",
        "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
        "smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
        "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write",
        "call_read_iter", "call_write_iter", "new_sync_read", "new_sync_write", "vfs_ioctl", "ksys_ioctl",
        "compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl", "blkdev_ioctl", "do_iter_readv_writev",
        "^call_mmap", "mmap_region", "do_mmap", "do_dentry_open", "vfs_open", "^sock_sendmsg",
        "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$", "kernel_setsockopt",
        "sock_common_setsockopt", "^listen$", "kernel_listen", "sk_common_release", "^sock_mmap",
        "^accept$", "kernel_accept", "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl",
        "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg", "^netlink_dump", "^socketpair", "^connect", "^ioctl",
        "^sys_socketpair", "^sys_connect", "^sys_ioctl", "__do_fault", "do_page_fault", "^page_fault$",
        "__fput", "task_work_run", "exit_to_usermode", "smp_call_function", "tasklet_action",
        "tasklet_hi_action",
    ])
}

/// A rule for a function name, written `foo` (contains), `^foo` (prefix), `foo$` (suffix) or
/// `^foo$` (equals); plus three rules syzkaller writes as patterns.
enum FramePattern: Sendable {
    case contains(String), prefix(String), suffix(String), exact(String)
    /// `^crc\d+`
    case crcDigits
    /// `(read|write)_once_.*nocheck`
    case onceNocheck
    /// `atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)`
    case atomicOp

    static func list(_ specs: [String]) -> [FramePattern] { specs.map(parse) }

    static func parse(_ s: String) -> FramePattern {
        let head = s.hasPrefix("^"), tail = s.hasSuffix("$")
        let core = String(s.dropFirst(head ? 1 : 0).dropLast(tail ? 1 : 0))
        switch (head, tail) {
        case (true, true): return .exact(core)
        case (true, false): return .prefix(core)
        case (false, true): return .suffix(core)
        case (false, false): return .contains(core)
        }
    }

    func matches(_ f: String) -> Bool {
        switch self {
        case .contains(let s): return f.utf8.crashContains(s.utf8)
        case .prefix(let s): return f.hasPrefix(s)
        case .suffix(let s): return f.hasSuffix(s)
        case .exact(let s): return f == s
        case .crcDigits:
            return f.hasPrefix("crc") && f.utf8.dropFirst(3).first.map(CrashScan.isDigit) == true
        case .onceNocheck:
            for w in ["read_once_", "write_once_"] {
                if let r = f.utf8.crashRange(of: w.utf8), f.utf8[r.upperBound...].crashContains("nocheck".utf8) { return true }
            }
            return false
        case .atomicOp:
            let u = Array(f.utf8)
            var from = 0
            while let p = CrashScan.firstIndex(of: "atomic", in: u, from: from) {
                var i = p + 6
                if CrashScan.has(u, at: i, "64") { i += 2 }
                if CrashScan.has(u, at: i, "_") {
                    let rest = String(decoding: u[(i + 1)...], as: UTF8.self)
                    for op in ["dec", "inc", "read", "set", "or", "xor", "and", "add", "sub", "fetch", "xchg", "cmpxchg", "try"]
                        where rest.hasPrefix(op) {
                        return true
                    }
                }
                from = p + 1
            }
            return false
        }
    }
}

extension Collection where Element == UInt8 {
    /// The first range where `needle` occurs.
    func crashRange<N: Collection>(of needle: N) -> Range<Index>? where N.Element == UInt8 {
        guard let first = needle.first else { return startIndex..<startIndex }
        var i = startIndex
        while i != endIndex {
            if self[i] == first {
                var a = i, b = needle.startIndex
                while a != endIndex && b != needle.endIndex && self[a] == needle[b] {
                    formIndex(after: &a)
                    needle.formIndex(after: &b)
                }
                if b == needle.endIndex { return i..<a }
            }
            formIndex(after: &i)
        }
        return nil
    }

    /// Whether `needle` occurs.
    func crashContains<N: Collection>(_ needle: N) -> Bool where N.Element == UInt8 { crashRange(of: needle) != nil }
}
