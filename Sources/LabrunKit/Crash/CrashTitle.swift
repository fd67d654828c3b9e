/// Makes a report's one-line title the way syzkaller's pkg/report does, so that labrun's titles
/// read like syzbot's: the header's form decides the wording (`KASAN: use-after-free Read in`,
/// `BUG: unable to handle kernel paging request in`, `INFO: task hung in`, …) and a stack frame
/// chosen by `CrashFrames` names the function. A header in no known form gives its own line as
/// the title. Then `CrashTitleNormalizer` replaces numbers and addresses.
///
/// The forms are syzkaller's (Apache-2.0), matched here by hand-written code, not expressions.
/// Added by labrun: `Watchdog detected hard LOCKUP` → `BUG: hard lockup in FUNC`, a lone
/// `Oops: … [#N]` → `Oops in FUNC`.
enum CrashTitle {
    typealias Line = [UInt8]

    /// One form of a header: whether line 0 (from the header on) has it, and the title it makes
    /// from the report's lines (line 0 from the header, then each line's message), or nil when
    /// the report lacks what the form needs (then the next form is tried).
    struct Form: Sendable {
        var kind: CrashReport.Kind
        /// False for the catch-alls (`BUG:` alone), which do not make a bare line a report.
        var specific = true
        var matches: @Sendable (Line) -> Bool
        /// A stricter test of a line alone, for `hasSpecificForm` (when `matches` is loose
        /// because the form may continue on the next lines).
        var strict: (@Sendable (Line) -> Bool)? = nil
        var title: @Sendable ([Line]) -> String?
    }

    /// The report's kind and title.
    static func describe(_ header: CrashHeader, lines: [Line]) -> (CrashReport.Kind, String) {
        guard let l0 = lines.first else { return (defaultKind(header), "") }
        for f in forms(header) where f.matches(l0) {
            if let t = f.title(lines) { return (f.kind, CrashTitleNormalizer.normalize(t)) }
        }
        return (defaultKind(header), CrashTitleNormalizer.normalize(String(decoding: l0, as: UTF8.self)))
    }

    /// Whether a line (from the header on) is in one of the header's specific forms.
    static func hasSpecificForm(_ header: CrashHeader, _ line: Line) -> Bool {
        forms(header).contains { $0.specific && ($0.strict ?? $0.matches)(line) }
    }

    static func defaultKind(_ h: CrashHeader) -> CrashReport.Kind {
        switch h {
        case .bug, .info, .kernelBUG, .capitalKernelBUG: return .bug
        case .warning: return .warning
        case .generalProtectionFault: return .generalProtectionFault
        case .kernelPanic: return .panic
        case .ubsan: return .ubsan
        case .hardLockup: return .hardLockup
        case .unableToHandle, .stackSegment, .doubleFault, .divideError, .invalidOpcode, .int3, .internalError,
             .unhandledFault, .oops:
            return .oops
        }
    }

    static func forms(_ h: CrashHeader) -> [Form] {
        switch h {
        case .bug: return bugForms
        case .warning: return warningForms
        case .info: return infoForms
        case .kernelPanic: return panicForms
        case .kernelBUG: return kernelBUGForms
        case .ubsan: return ubsanForms
        case .generalProtectionFault:
            return [Form(kind: .generalProtectionFault, matches: { l in
                has(l, "general protection fault") && l.dropFirst(24).contains(UInt8(ascii: ":"))
            }, title: { "general protection fault in \(frame(ripStack, $0))" })]
        case .unableToHandle:
            return [Form(kind: .oops, matches: { after($0, "Unable to handle kernel ", oneOf: unableKinds) != nil }, title: { ls in
                guard let what = after(ls[0], "Unable to handle kernel ", oneOf: unableKinds) else { return nil }
                return "BUG: unable to handle kernel \(what) in \(frame(ripStack, ls))"
            })]
        case .stackSegment:
            return [Form(kind: .oops, matches: { has($0, "stack segment: ") }, title: { "stack segment fault in \(frame(ripStack, $0))" })]
        case .doubleFault:
            return [Form(kind: .oops, matches: { has($0, "PANIC: double fault") }, title: { "PANIC: double fault in \(frame(ripOnly, $0))" })]
        case .capitalKernelBUG:
            return [Form(kind: .bug, specific: false, matches: { has($0, "Kernel BUG ") }, title: { "kernel BUG \(rest($0[0], 11))" })]
        case .divideError:
            return [Form(kind: .oops, matches: { has($0, "divide error: ") || has($0, "divide_error: ") },
                         title: { "divide error in \(frame(ripOnly, $0))" })]
        case .invalidOpcode:
            return [Form(kind: .oops, matches: { has($0, "invalid opcode: ") }, title: { "invalid opcode in \(frame(ripOnly, $0))" })]
        case .int3:
            return [Form(kind: .oops, matches: { has($0, "int3: ") }, title: { "int3 in \(frame(ripStack, $0))" })]
        case .internalError:
            return [Form(kind: .oops, matches: { has($0, "Internal error:") }, title: { "Internal error in \(frame(ripStack, $0))" })]
        case .unhandledFault:
            return [Form(kind: .oops, matches: { has($0, "Unhandled fault:") }, title: { "Unhandled fault in \(frame(ripStack, $0))" })]
        case .hardLockup:
            return [Form(kind: .hardLockup, matches: { has($0, "Watchdog detected hard LOCKUP") },
                         title: { "BUG: hard lockup in \(frame(stallStack, $0))" })]
        case .oops:
            return [Form(kind: .oops, matches: { has($0, "Oops:") }, title: { "Oops in \(frame(ripStack, $0))" })]
        }
    }

    // MARK: stacks

    static let ripStack = CrashFrames.Spec(parts: [.line(CrashFrames.rip), .line(CrashFrames.callTrace), .trace])
    static let ripOnly = CrashFrames.Spec(parts: [.line(CrashFrames.rip)])
    static let callTraceStack = CrashFrames.Spec(parts: [.line(CrashFrames.callTrace), .trace])
    static let stallStack = CrashFrames.Spec(parts: [.line(CrashFrames.rip), .line(CrashFrames.callTrace), .trace],
                                             extractor: .stall)

    static func callTraceStack(skip: [String], extractor: CrashFrames.Extractor = .first) -> CrashFrames.Spec {
        CrashFrames.Spec(parts: [.line(CrashFrames.callTrace), .trace], skip: FramePattern.list(skip), extractor: extractor)
    }

    /// A WARNING's frame: the `RIP:` line (or powerpc's `--- interrupt: N at FUNC`) and what
    /// follows; failing that, the call trace.
    static func warningStack(_ skip: [String] = []) -> CrashFrames.Spec {
        CrashFrames.Spec(parts: [.line(ripOrInterrupt), .trace], fallback: [.line(CrashFrames.callTrace), .trace],
                         skip: FramePattern.list(skip))
    }

    @Sendable static func ripOrInterrupt(_ l: Line) -> [String]? {
        if let r = CrashFrames.rip(l) { return r }
        guard let p = CrashScan.firstIndex(of: "--- interrupt: ", in: l) else { return nil }
        var i = p + 15
        let d = i
        while i < l.count && CrashScan.isDigit(l[i]) { i += 1 }
        guard i > d, CrashScan.has(l, at: i, " at "), let f = CrashFrames.function(l, at: i + 4) else { return nil }
        return [f]
    }

    static func frame(_ spec: CrashFrames.Spec, _ lines: [Line]) -> String {
        CrashFrames.frames(spec, in: lines).first ?? "corrupted"
    }

    // MARK: BUG:

    static let bugForms: [Form] = [
        Form(kind: .kasan, matches: { has($0, "BUG: KASAN:") }, title: { ls in
            // BUG: KASAN: TYPE in FUNC … (a later line) … (Read|Write) (of size|at addr) HEX
            guard let (type, _) = kasanHeader(ls[0]) else { return nil }
            guard let rw = ls.dropFirst().lazy.compactMap(readOrWrite).first else { return nil }
            let spec = CrashFrames.Spec(parts: [.line({ kasanHeader($0).map { [$0.1] } }), .line(CrashFrames.callTrace), .trace],
                                        skip: FramePattern.list(["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"]))
            return "KASAN: \(type) \(rw) in \(frame(spec, ls))"
        }),
        Form(kind: .kasan, matches: { has($0, "BUG: KASAN:") }, title: { ls in
            guard kasanInvalidFree(ls[0]) != nil else { return nil }
            let spec = CrashFrames.Spec(parts: [.line({ kasanInvalidFree($0).map { [$0] } }), .line(CrashFrames.callTrace), .trace],
                                        skip: FramePattern.list(["slab_", "kfree", "vunmap", "vfree"]))
            return "KASAN: invalid-free in \(frame(spec, ls))"
        }),
        // Old KASAN: "BUG: KASAN: TYPE on address …", a later line "… (Read|Write) of size N …".
        Form(kind: .kasan, matches: { has($0, "BUG: KASAN: ") }, title: { ls in
            var i = 12
            while i < ls[0].count && ((ls[0][i] >= 0x61 && ls[0][i] <= 0x7A) || ls[0][i] == UInt8(ascii: "-")) { i += 1 }
            guard i > 12, CrashScan.has(ls[0], at: i, " on address") else { return nil }
            guard let rw = ls.dropFirst().lazy.compactMap(readOrWriteOfSize).first else { return nil }
            return "KASAN: \(String(decoding: ls[0][12..<i], as: UTF8.self)) \(rw)"
        }),
        Form(kind: .kasan, matches: { has($0, "BUG: KASAN: ") }, title: { "KASAN: \(rest($0[0], 12))" }),
        Form(kind: .bug, matches: { has($0, "BUG: KCSAN: ") }, title: { "KCSAN: \(rest($0[0], 12))" }),
        // syzkaller takes KMSAN's function from the origin's stack; labrun names the header's.
        Form(kind: .bug, matches: { has($0, "BUG: KMSAN: ") }, title: { ls in
            guard let p = CrashScan.firstIndex(of: " in ", in: ls[0], from: 12),
                  let f = CrashFrames.function(ls[0], at: p + 4) else { return nil }
            return "KMSAN: \(String(decoding: ls[0][12..<p], as: UTF8.self)) in \(f)"
        }),
        Form(kind: .kfence, matches: { kfence($0, kinds: ["use-after-free", "out-of-bounds"], access: true) != nil }, title: { ls in
            guard let (what, rw) = kfence(ls[0], kinds: ["use-after-free", "out-of-bounds"], access: true) else { return nil }
            return "KFENCE: \(what) \(rw) in \(frame(kfenceStack, ls))"
        }),
        Form(kind: .kfence, matches: { kfence($0, kinds: ["invalid free"], access: false) != nil },
             title: { "KFENCE: invalid free in \(frame(kfenceStack, $0))" }),
        Form(kind: .kfence, matches: { kfence($0, kinds: ["invalid"], access: true) != nil }, title: { ls in
            guard let (_, rw) = kfence(ls[0], kinds: ["invalid"], access: true) else { return nil }
            return "KFENCE: invalid \(rw) in \(frame(kfenceStack, ls))"
        }),
        Form(kind: .kfence, matches: { kfence($0, kinds: ["memory corruption"], access: false) != nil },
             title: { "KFENCE: memory corruption in \(frame(kfenceStack, $0))" }),
        Form(kind: .oops, matches: { l in
            ["BUG: unable to handle kernel paging request", "BUG: unable to handle page fault for address",
             "BUG: Unable to handle kernel data access"].contains { has(l, $0) }
        }, title: { "BUG: unable to handle kernel paging request in \(frame(ripStack, $0))" }),
        Form(kind: .oops, matches: { l in
            ["BUG: unable to handle kernel NULL pointer dereference", "BUG: kernel NULL pointer dereference",
             "BUG: Kernel NULL pointer dereference"].contains { has(l, $0) }
        }, title: { "BUG: unable to handle kernel NULL pointer dereference in \(frame(ripStack, $0))" }),
        Form(kind: .oops, matches: { has($0, "BUG: unable to handle kernel") || has($0, "BUG: Unable to handle kernel") },
             title: { _ in "BUG: unable to handle kernel" }),
        Form(kind: .bug, matches: { spinlockBug($0) != nil }, title: { ls in
            guard let (lock, what) = spinlockBug(ls[0]) else { return nil }
            return "BUG: \(lock) \(what) in \(frame(callTraceStack(skip: ["spin_", "_lock", "_unlock"]), ls))"
        }),
        Form(kind: .softLockup, matches: { has($0, "BUG: soft lockup") }, title: { "BUG: soft lockup in \(frame(stallStack, $0))" }),
        Form(kind: .bug, matches: { contains($0, "still has locks held!") }, title: { ls in
            guard let f = ls.dropFirst().lazy.compactMap({ CrashFrames.pcFunction($0, last: true)?.first }).first else { return nil }
            return "BUG: still has locks held in \(f)"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: scheduling while atomic") },
             title: { "BUG: scheduling while atomic in \(frame(callTraceStack(skip: ["schedule"]), $0))" }),
        Form(kind: .bug, matches: { has($0, "BUG: lock held when returning to user space") }, title: { ls in
            guard let f = functionAfter(ls, marker: "leaving the kernel with locks still held") else { return nil }
            return "BUG: lock held when returning to user space in \(f)"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: bad unlock balance detected!") }, title: { ls in
            let spec = CrashFrames.Spec(parts: [.line({ CrashFrames.pcFunction($0) }), .line(CrashFrames.callTrace), .trace])
            return "BUG: bad unlock balance in \(frame(spec, ls))"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: held lock freed!") }, title: { ls in
            guard let f = ls.dropFirst().lazy.compactMap({ CrashFrames.pcFunction($0, last: true)?.first }).first else { return nil }
            return "BUG: held lock freed in \(f)"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: Bad rss-counter state") }, title: { _ in "BUG: Bad rss-counter state" }),
        Form(kind: .bug, matches: { has($0, "BUG: non-zero nr_ptes on freeing mm") }, title: { _ in "BUG: non-zero nr_ptes on freeing mm" }),
        Form(kind: .bug, matches: { has($0, "BUG: non-zero nr_pmds on freeing mm") }, title: { _ in "BUG: non-zero nr_pmds on freeing mm" }),
        Form(kind: .bug, matches: { has($0, "BUG: Dentry ") && contains($0, " still in use") }, title: { ls in
            // "… still in use (N) [unmount of FS DEV]"
            guard let p = CrashScan.firstIndex(of: " still in use (", in: ls[0]) else { return nil }
            var i = p + 15
            let d = i
            while i < ls[0].count && CrashScan.isDigit(ls[0][i]) { i += 1 }
            guard i > d, CrashScan.has(ls[0], at: i, ") [unmount of "),
                  let close = ls[0][(i + 14)...].firstIndex(of: UInt8(ascii: "]")), close > i + 14 else { return nil }
            return "BUG: Dentry still in use in unmount"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: Bad page state") || has($0, "BUG: Bad page cache") }, title: { ls in
            let what = has(ls[0], "BUG: Bad page state") ? "state" : "cache"
            let spec = CrashFrames.Spec(parts: [.line(CrashFrames.containing("page last allocated")), .trace],
                                        skip: FramePattern.list(["free_page", "put_page", "get_page", "update_page", "release_page",
                                                                 "free_unref", "^folio", "^_folio", "^__folio", "^___folio",
                                                                 "truncate_inode_pages", "page_frag_free", "alloc", "vmap", "page_owner"]))
            return "BUG: Bad page \(what) in \(frame(spec, ls))"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: Bad page map") }, title: { _ in "BUG: Bad page map" }),
        Form(kind: .bug, matches: { has($0, "BUG: workqueue lockup") }, title: { _ in "BUG: workqueue lockup" }),
        Form(kind: .bug, matches: { has($0, "BUG: sleeping function called from invalid context at ") },
             title: { "BUG: sleeping function called from invalid context in \(frame(callTraceStack, $0))" }),
        Form(kind: .bug, matches: { preemptibleUse($0) != nil }, title: { ls in
            guard let what = preemptibleUse(ls[0]) else { return nil }
            let spec = callTraceStack(skip: ["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"])
            return "BUG: using \(what)() in preemptible code in \(frame(spec, ls))"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: workqueue leaked lock or atomic") }, title: { ls in
            // a later line ending in "last function: FUNC"
            for l in ls.dropFirst() {
                guard let p = CrashScan.firstIndex(of: "last function: ", in: l) else { continue }
                let name = l[(p + 15)...]
                if !name.isEmpty && name.allSatisfy(CrashScan.isWordByte) {
                    return "BUG: workqueue leaked lock or atomic in \(String(decoding: name, as: UTF8.self))"
                }
            }
            return nil
        }),
        Form(kind: .bug, matches: { has($0, "BUG: memory leak") }, title: { ls in
            let spec = CrashFrames.Spec(parts: [.line(CrashFrames.leakBacktrace), .trace],
                                        skip: FramePattern.list(["kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get",
                                                                 "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create", "strdup",
                                                                 "strndup", "memdup"]))
            return "memory leak in \(frame(spec, ls))"
        }),
        Form(kind: .bug, matches: { has($0, "BUG: ") && contains($0, "stack guard page was hit at") },
             title: { "BUG: stack guard page was hit in \(frame(stallStack, $0))" }),
        Form(kind: .warning, matches: { has($0, "BUG: Invalid wait context") },
             title: { "WARNING: locking bug in \(frame(callTraceStack(skip: ["lock_sock", "release_sock"]), $0))" }),
        Form(kind: .bug, specific: false, matches: { isBare($0, 4) }, title: { _ in "BUG: corrupted" }),
    ]

    static let kfenceStack = CrashFrames.Spec(parts: [.line({ kfenceHeaderFunction($0).map { [$0] } }), .trace])

    // MARK: WARNING:

    static let warningForms: [Form] = [
        Form(kind: .warning, matches: { fileThen($0, "lib/debugobjects.c", [" debug_print", " debug_check", " at"]) },
             title: { "WARNING: ODEBUG bug in \(frame(warningStack(["debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap", "vfree", "__free_", "debug_check", "kobject_"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "mm/usercopy.c", [" usercopy_warn", " at"]) },
             title: { "WARNING: bad usercopy in \(frame(warningStack(["usercopy", "__check"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "lib/kobject.c", [" kobject_", " at"]) },
             title: { "WARNING: kobject bug in \(frame(warningStack(["kobject_"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "fs/proc/generic.c", [" proc_register", " at"]) },
             title: { "WARNING: proc registration bug in \(frame(warningStack(["proc_"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "lib/refcount.c", [" refcount_", " at"]) },
             title: { "WARNING: refcount bug in \(frame(warningStack(["refcount", "kobject_"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "kernel/locking/lockdep.c", ["lock_"]) },
             title: { "WARNING: locking bug in \(frame(warningStack(["lock_sock", "release_sock"]), $0))" }),
        Form(kind: .warning, matches: { has($0, "WARNING: ") && contains($0, "still has locks held!") }, title: { ls in
            guard let f = ls.dropFirst().lazy.compactMap(lastAtFunction).first else { return nil }
            return "WARNING: still has locks held in \(f)"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: lock held when returning to user space") }, title: { ls in
            guard let f = functionAfter(ls, marker: "leaving the kernel with locks still held") else { return nil }
            return "WARNING: lock held when returning to user space in \(f)"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: Nested lock was not taken") },
             title: { "WARNING: nested lock was not taken in \(frame(warningStack(), $0))" }),
        Form(kind: .warning, matches: kmallocWarning,
             title: { "WARNING: kmalloc bug in \(frame(warningStack(["kmalloc", "krealloc", "slab", "kmem"]), $0))" }),
        Form(kind: .warning, matches: { fileThen($0, "mm/vmalloc.c", ["__vmalloc_node"]) },
             title: { "WARNING: zero-size vmalloc in \(frame(warningStack(), $0))" }),
        Form(kind: .warning, matches: { has($0, "WARNING: ") && CrashScan.firstIndex(of: " usb_submit_urb", in: $0, from: 8) != nil }, title: {
            let skip = ["usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"]
            return "WARNING in \(frame(warningStack(skip), $0))/usb_submit_urb"
        }),
        // "WARNING: kernel/foo.c:12 at 0x0, CPU#0: …" (Linux 6.19+)
        Form(kind: .warning, matches: { l in
            guard has(l, "WARNING: "), let e = sourceEnd(l, 9), CrashScan.has(l, at: e, " at 0x") else { return false }
            var i = e + 6
            let d = i
            while i < l.count && CrashScan.isDigit(l[i]) { i += 1 }
            return i > d && CrashScan.has(l, at: i, ", CPU#")
        }, title: { "WARNING in \(frame(warningStack(), $0))" }),
        // "WARNING: CPU: 0 PID: 1 at path/file.c:12 func+0x1/0x2" (the usual form)
        Form(kind: .warning, matches: { has($0, "WARNING: ") && atSourceFunction($0) },
             title: { "WARNING in \(frame(warningStack(), $0))" }),
        // "WARNING: path/file.c:12 at func+0x1/0x2"
        Form(kind: .warning, matches: { l in
            guard has(l, "WARNING: "), let e = sourceEnd(l, 9), CrashScan.has(l, at: e, " at ") else { return false }
            return CrashFrames.function(l, at: e + 4) != nil
        }, title: { "WARNING in \(frame(warningStack(), $0))" }),
        // "WARNING: [cond] path/file.c:12 at func+0x1/0x2, CPU#0: …"
        Form(kind: .warning, matches: { l in
            guard has(l, "WARNING: ["), let close = l.lastIndex(of: UInt8(ascii: "]")) else { return false }
            var from = 10
            while let b = CrashScan.firstIndex(of: "] ", in: l, from: from), b <= close {
                if let e = sourceEnd(l, b + 2), CrashScan.has(l, at: e, " at "), CrashFrames.function(l, at: e + 4) != nil { return true }
                from = b + 1
            }
            return false
        }, title: { "WARNING in \(frame(warningStack(), $0))" }),
        Form(kind: .warning, matches: { has($0, "WARNING: possible circular locking dependency detected") }, title: { ls in
            guard ls.dropFirst().contains(where: { contains($0, "is trying to acquire lock") }) else { return nil }
            let spec = CrashFrames.Spec(parts: [.line(CrashFrames.atFunction), .line(CrashFrames.atFunction), .trace],
                                        skip: FramePattern.list(["process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"]))
            return "possible deadlock in \(frame(spec, ls))"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: possible irq lock inversion dependency detected") }, title: { ls in
            guard let f = functionAfter(ls, marker: "just changed the state of lock") else { return nil }
            return "possible deadlock in \(f)"
        }),
        Form(kind: .warning, matches: { l in
            has(l, "WARNING: ") && CrashScan.firstIndex(of: "-safe -> ", in: l).map {
                CrashScan.firstIndex(of: "-unsafe lock order detected", in: l, from: $0) != nil } == true
        }, title: { ls in
            let became: @Sendable (Line) -> [String]? = { l in
                guard let p = CrashScan.firstIndex(of: "which became ", in: l),
                      CrashScan.firstIndex(of: " at:", in: l, from: p + 13) != nil else { return nil }
                return []
            }
            return "possible deadlock in \(frame(CrashFrames.Spec(parts: [.line(became), .trace]), ls))"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: possible recursive locking detected") }, title: { ls in
            guard let f = functionAfter(ls, marker: "is trying to acquire lock") else { return nil }
            return "possible deadlock in \(f)"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: inconsistent lock state") }, title: { ls in
            guard functionAfter(ls, marker: "takes") != nil else { return nil }
            return "inconsistent lock state in \(frame(callTraceStack, ls))"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: suspicious RCU usage") }, title: { ls in
            guard ls.dropFirst().contains(where: containsSource) else { return nil }
            return "WARNING: suspicious RCU usage in \(frame(callTraceStack(skip: ["rcu", "kmem", "slab"]), ls))"
        }),
        // "WARNING: kernel stack regs at HEX in TASK has bad 'REG' value"
        Form(kind: .warning, matches: { stackCheck($0, "WARNING: kernel stack regs at ", then: " has bad '") != nil }, title: { ls in
            guard let p = stackCheck(ls[0], "WARNING: kernel stack regs at ", then: " has bad '") else { return nil }
            let v = ls[0][p...].prefix { $0 != UInt8(ascii: "'") }
            guard !v.isEmpty, CrashScan.has(ls[0], at: p + v.count, "' value") else { return nil }
            return "WARNING: kernel stack regs has bad '\(String(decoding: v, as: UTF8.self))' value"
        }),
        Form(kind: .warning, matches: { stackCheck($0, "WARNING: kernel stack frame pointer at ", then: " has bad value") != nil },
             title: { _ in "WARNING: kernel stack frame pointer has bad value" }),
        Form(kind: .warning, matches: { has($0, "WARNING: bad unlock balance detected!") }, title: { ls in
            let spec = CrashFrames.Spec(parts: [.line({ CrashFrames.pcFunction($0) }), .line(CrashFrames.callTrace), .trace])
            return "WARNING: bad unlock balance in \(frame(spec, ls))"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: held lock freed!") }, title: { ls in
            guard let f = ls.dropFirst().lazy.compactMap(lastAtFunction).first else { return nil }
            return "WARNING: held lock freed in \(f)"
        }),
        Form(kind: .warning, matches: { has($0, "WARNING: kernel stack regs ") && contains($0, " has bad 'bp' value") },
             title: { _ in "WARNING: kernel stack regs has bad value" }),
        Form(kind: .warning, matches: { has($0, "WARNING: kernel stack frame pointer ") && contains($0, " has bad value") },
             title: { _ in "WARNING: kernel stack regs has bad value" }),
        Form(kind: .warning, specific: false, matches: { isBare($0, 8) }, title: { _ in "WARNING: corrupted" }),
    ]

    // MARK: INFO:

    static let infoForms: [Form] = [
        Form(kind: .rcuStall, matches: rcuStall, title: { ls in
            let spec = CrashFrames.Spec(parts: [.line(CrashFrames.containing("apic_timer_interrupt")), .line(CrashFrames.rip), .trace],
                                        fallback: [.line({ l in
                                            CrashScan.contains(l, "apic_timer_interrupt") || CrashScan.contains(l, "Exception stack")
                                                || CrashScan.contains(l, "el1h_64_irq") ? [] : nil
                                        }), .trace],
                                        skip: FramePattern.list(["apic_timer_interrupt", "rcu"]), extractor: .stall)
            return "INFO: rcu detected stall in \(frame(spec, ls))"
        }),
        Form(kind: .warning, matches: { has($0, "INFO: trying to register non-static key") },
             title: { "INFO: trying to register non-static key in \(frame(callTraceStack(skip: ["stack", "lock", "IRQ"]), $0))" }),
        Form(kind: .warning, matches: { has($0, "INFO: suspicious RCU usage") }, title: { ls in
            guard ls.dropFirst().contains(where: containsSource) else { return nil }
            return "INFO: suspicious RCU usage in \(frame(callTraceStack(skip: ["rcu", "kmem", "slab"]), ls))"
        }),
        // The task's name may hold a newline: the form may go on over the next lines.
        Form(kind: .hungTask, matches: { has($0, "INFO: task ") }, strict: { taskBlocked($0) }, title: { ls in
            guard taskBlocked(firstLines(ls)) else { return nil }
            return "INFO: task hung in \(frame(callTraceStack(skip: [], extractor: .hang), ls))"
        }),
        Form(kind: .hungTask, matches: { has($0, "INFO: task ") }, strict: { taskCantDie($0) }, title: { ls in
            guard taskCantDie(firstLines(ls)) else { return nil }
            return "INFO: task can't die in \(frame(callTraceStack(skip: ["schedule"]), ls))"
        }),
        Form(kind: .bug, matches: { has($0, "INFO: Freed in ") || has($0, "INFO: Allocated in ") }, title: { ls in
            let l = ls[0]
            let freed = has(l, "INFO: Freed in ")
            return "INFO: \(freed ? "Freed" : "Allocated") in \(rest(l, freed ? 15 : 19))"
        }),
        Form(kind: .bug, specific: false, matches: { isBare($0, 5) }, title: { _ in "INFO: corrupted" }),
    ]

    // MARK: Kernel panic

    static let panicForms: [Form] = [
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: stack-protector:") }, title: { ls in
            let p = "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "
            guard has(ls[0], p), let f = CrashFrames.function(ls[0], at: p.utf8.count) else { return nil }
            return "kernel panic: stack is corrupted in \(f)"
        }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: stack-protector:") }, title: { ls in
            let p = "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "
            guard has(ls[0], p), ls[0].count > p.utf8.count, CrashFrames.isLowerHex(ls[0][p.utf8.count]) else { return nil }
            return "kernel panic: stack is corrupted in \(frame(callTraceStack(skip: ["stack_chk"]), ls))"
        }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: corrupted stack end") }, title: { ls in
            guard has(ls[0], "Kernel panic - not syncing: corrupted stack end detected inside scheduler") else { return nil }
            return "kernel panic: corrupted stack end in \(frame(callTraceStack(skip: ["schedule", "retint_kernel"], extractor: .stall), ls))"
        }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: kernel stack overflow") },
             title: { "kernel stack overflow in \(frame(callTraceStack(skip: ["bad_stack"], extractor: .stall), $0))" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: Attempted to kill init!") },
             title: { _ in "kernel panic: Attempted to kill init!" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: Couldn't open N_TTY ldisc for ") },
             title: { _ in "kernel panic: Couldn't open N_TTY ldisc" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: Fatal exception") }, title: { _ in "kernel panic: Fatal exception" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: panic_on_warn set") }, title: { _ in "kernel panic: panic_on_warn set" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: hung_task: blocked tasks") },
             title: { _ in "kernel panic: hung_task: blocked tasks" }),
        Form(kind: .panic, matches: { has($0, "Kernel panic - not syncing: ") }, title: { "kernel panic: \(rest($0[0], 28))" }),
    ]

    // MARK: kernel BUG, UBSAN

    static let kernelBUGForms: [Form] = [
        Form(kind: .bug, matches: { has($0, "kernel BUG at mm/usercopy.c") },
             title: { "BUG: bad usercopy in \(frame(callTraceStack(skip: ["usercopy", "__check"]), $0))" }),
        Form(kind: .bug, matches: { has($0, "kernel BUG at lib/list_debug.c") },
             title: { "BUG: corrupted list in \(frame(callTraceStack, $0))" }),
        Form(kind: .bug, matches: { has($0, "kernel BUG at ") }, title: { ls in
            let spec = CrashFrames.Spec(parts: [.line(CrashFrames.rip), .line(CrashFrames.callTrace), .trace], skip: [.prefix("skb_")])
            return "kernel BUG in \(frame(spec, ls))"
        }),
    ]

    static let ubsanForms: [Form] = [
        Form(kind: .ubsan, matches: { has($0, "UBSAN: Undefined behaviour in") },
             title: { "UBSAN: undefined-behaviour in \(frame(callTraceStack(skip: ["ubsan", "overflow"]), $0))" }),
        Form(kind: .ubsan, matches: { has($0, "UBSAN: array-index-out-of-bounds in") },
             title: { "UBSAN: array-index-out-of-bounds in \(frame(callTraceStack(skip: ["ubsan", "overflow"]), $0))" }),
        Form(kind: .ubsan, matches: { has($0, "UBSAN: ") && CrashScan.firstIndex(of: " in", in: $0, from: 7) != nil }, title: { ls in
            guard let p = CrashScan.firstIndex(of: " in", in: ls[0], from: 7) else { return nil }
            let what = String(decoding: ls[0][7..<p], as: UTF8.self)
            return "UBSAN: \(what) in \(frame(callTraceStack(skip: ["ubsan", "overflow"]), ls))"
        }),
    ]

    // MARK: matchers

    static func has(_ l: Line, _ s: String) -> Bool {
        let u = s.utf8
        guard l.count >= u.count else { return false }
        return zip(l, u).allSatisfy { $0 == $1 }
    }

    static func contains(_ l: Line, _ s: String) -> Bool { l.crashContains(s.utf8) }

    /// The line from byte `from` on, as text.
    static func rest(_ l: Line, _ from: Int) -> String {
        String(decoding: l[Swift.min(from, l.count)...], as: UTF8.self)
    }

    /// `HEADER` with nothing but blanks after it.
    static func isBare(_ l: Line, _ headerLength: Int) -> Bool {
        l.dropFirst(headerLength).allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// `prefix` followed by one of `words` (the first that fits); the word.
    static func after(_ l: Line, _ prefix: String, oneOf words: [String]) -> String? {
        guard has(l, prefix) else { return nil }
        let tail = Array(l.dropFirst(prefix.utf8.count))
        return words.first { has(tail, $0) }
    }

    static let unableKinds = ["paging request", "NULL pointer dereference", "access to user memory"]

    /// `BUG: KASAN: TYPE in FUNC` (TYPE = `[a-z-]+`): TYPE and FUNC.
    static func kasanHeader(_ l: Line) -> (String, String)? {
        guard let p = CrashScan.firstIndex(of: "BUG: KASAN: ", in: l) else { return nil }
        var i = p + 12
        let t = i
        while i < l.count && ((l[i] >= 0x61 && l[i] <= 0x7A) || l[i] == UInt8(ascii: "-")) { i += 1 }
        guard i > t, CrashScan.has(l, at: i, " in "), let f = CrashFrames.function(l, at: i + 4) else { return nil }
        return (String(decoding: l[t..<i], as: UTF8.self), f)
    }

    /// `BUG: KASAN: double-free or invalid-free in FUNC` (or `double-free`, `invalid-free`): FUNC.
    static func kasanInvalidFree(_ l: Line) -> String? {
        guard let p = CrashScan.firstIndex(of: "BUG: KASAN: ", in: l) else { return nil }
        for w: StaticString in ["double-free or invalid-free in ", "double-free in ", "invalid-free in "]
            where CrashScan.has(l, at: p + 12, w) {
            if let f = CrashFrames.function(l, at: p + 12 + w.utf8CodeUnitCount) { return f }
        }
        return nil
    }

    /// The last `(Read|Write) (of size|at addr) HEX` on a line: Read or Write.
    static func readOrWrite(_ l: Line) -> String? {
        var best: (at: Int, word: String)?
        for word in ["Read", "Write"] {
            var from = 0
            while let r = l[from...].crashRange(of: word.utf8) {
                let i = r.upperBound
                if CrashScan.has(l, at: i, " of size ") || CrashScan.has(l, at: i, " at addr "),
                   i + 9 < l.count, CrashFrames.isLowerHex(l[i + 9]), r.lowerBound > (best?.at ?? -1) {
                    best = (r.lowerBound, word)
                }
                from = r.lowerBound + 1
            }
        }
        return best?.word
    }

    /// `PREFIX[0-9a-f]+ in [^ ]*THEN`: the position after THEN.
    static func stackCheck(_ l: Line, _ prefix: String, then: StaticString) -> Int? {
        guard has(l, prefix) else { return nil }
        var i = prefix.utf8.count
        let h = i
        while i < l.count && CrashFrames.isLowerHex(l[i]) { i += 1 }
        guard i > h, CrashScan.has(l, at: i, " in ") else { return nil }
        i += 4
        while i < l.count && l[i] != 0x20 { i += 1 }
        return CrashScan.has(l, at: i, then) ? i + then.utf8CodeUnitCount : nil
    }

    /// The last `(Read|Write) of size N` on a line: Read or Write.
    static func readOrWriteOfSize(_ l: Line) -> String? {
        var best: (at: Int, word: String)?
        for word in ["Read", "Write"] {
            var from = 0
            while let r = l[from...].crashRange(of: word.utf8) {
                if CrashScan.has(l, at: r.upperBound, " of size "), r.upperBound + 9 < l.count,
                   CrashScan.isDigit(l[r.upperBound + 9]), r.lowerBound > (best?.at ?? -1) {
                    best = (r.lowerBound, word)
                }
                from = r.lowerBound + 1
            }
        }
        return best?.word
    }

    /// `BUG: KFENCE: KIND (read|write) in FUNC` (with `access`) or `BUG: KFENCE: KIND in FUNC`:
    /// KIND and the access.
    static func kfence(_ l: Line, kinds: [String], access: Bool) -> (String, String)? {
        guard has(l, "BUG: KFENCE: ") else { return nil }
        let tail = Array(l.dropFirst(13))
        for k in kinds where has(tail, k) {
            var i = k.utf8.count
            var rw = ""
            if access {
                guard i < tail.count, tail[i] == 0x20 else { continue }
                let t = Array(tail[(i + 1)...])
                if has(t, "read") { rw = "read" } else if has(t, "write") { rw = "write" } else { continue }
                i += 1 + rw.utf8.count
            }
            guard CrashScan.has(tail, at: i, " in "), CrashFrames.function(tail, at: i + 4) != nil else { continue }
            return (k, rw)
        }
        return nil
    }

    /// `BUG: KFENCE: [a-z -]+ in FUNC`: FUNC (the rightmost ` in ` that a function follows).
    static func kfenceHeaderFunction(_ l: Line) -> String? {
        guard let p = CrashScan.firstIndex(of: "BUG: KFENCE: ", in: l) else { return nil }
        let s = p + 13
        var e = s
        while e < l.count && ((l[e] >= 0x61 && l[e] <= 0x7A) || l[e] == UInt8(ascii: "-") || l[e] == 0x20) { e += 1 }
        var i = e
        while i > s {
            i -= 1
            if CrashScan.has(l, at: i, " in "), i > s, let f = CrashFrames.function(l, at: i + 4) { return f }
        }
        return nil
    }

    static func spinlockBug(_ l: Line) -> (String, String)? {
        guard has(l, "BUG: ") else { return nil }
        let tail = Array(l.dropFirst(5))
        for lock in ["spinlock", "rwlock"] where has(tail, lock + " ") {
            let t = Array(tail.dropFirst(lock.utf8.count + 1))
            for w in ["lockup suspected", "already unlocked", "recursion", "cpu recursion", "bad magic", "wrong owner",
                      "wrong CPU", "trylock failure on UP"] where has(t, w) {
                return (lock, w)
            }
        }
        return nil
    }

    /// `BUG: using NAME() in preemptible`: NAME.
    static func preemptibleUse(_ l: Line) -> String? {
        guard has(l, "BUG: using ") else { return nil }
        var i = 11
        while i < l.count && ((l[i] >= 0x61 && l[i] <= 0x7A) || l[i] == UInt8(ascii: "_")) { i += 1 }
        guard i > 11, CrashScan.has(l, at: i, "() in preemptible") else { return nil }
        return String(decoding: l[11..<i], as: UTF8.self)
    }

    /// `WARNING: … FILE … then one of `next`, as syzkaller's `WARNING: .*FILE.* (?:a|b)`.
    static func fileThen(_ l: Line, _ file: String, _ next: [String]) -> Bool {
        guard has(l, "WARNING: "), let r = l[9...].crashRange(of: file.utf8) else { return false }
        let tail = l[r.upperBound...]
        return next.contains { tail.crashContains($0.utf8) }
    }

    /// `WARNING: .*mm/.*\.c.* k?.?malloc`.
    @Sendable static func kmallocWarning(_ l: Line) -> Bool {
        guard has(l, "WARNING: "), let m = l[9...].crashRange(of: "mm/".utf8),
              let c = l[m.upperBound...].crashRange(of: ".c".utf8) else { return false }
        var i = c.upperBound
        while i < l.count {
            if l[i] == 0x20 {
                // " malloc", " Xmalloc", " kXmalloc"
                if CrashScan.has(l, at: i + 1, "malloc") || CrashScan.has(l, at: i + 2, "malloc")
                    || (i + 1 < l.count && l[i + 1] == UInt8(ascii: "k") && CrashScan.has(l, at: i + 3, "malloc")) {
                    return true
                }
            }
            i += 1
        }
        return false
    }

    /// The end of a `{{SRC}}` (`[A-Za-z0-9-_/.]+\.[a-z]+:[0-9]+`) starting at `s`.
    static func sourceEnd(_ l: Line, _ s: Int) -> Int? {
        func isPathByte(_ b: UInt8) -> Bool {
            CrashScan.isWordByte(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "/") || b == UInt8(ascii: ".")
        }
        var e = s
        while e < l.count && isPathByte(l[e]) { e += 1 }
        guard e < l.count, l[e] == UInt8(ascii: ":"), let dot = l[s..<e].lastIndex(of: UInt8(ascii: ".")), dot > s,
              dot + 1 < e, l[(dot + 1)..<e].allSatisfy({ $0 >= 0x61 && $0 <= 0x7A }) else { return nil }
        var i = e + 1
        let d = i
        while i < l.count && CrashScan.isDigit(l[i]) { i += 1 }
        return i > d ? i : nil
    }

    /// Whether a `{{SRC}}` occurs on the line.
    @Sendable static func containsSource(_ l: Line) -> Bool {
        for (i, b) in l.enumerated() where b == UInt8(ascii: ":") && i + 1 < l.count && CrashScan.isDigit(l[i + 1]) {
            var s = i
            while s > 0 {
                let c = l[s - 1]
                guard CrashScan.isWordByte(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: "/") || c == UInt8(ascii: ".") else { break }
                s -= 1
            }
            // any start within the run works; the longest run is the best try
            var t = s
            while t < i {
                if sourceEnd(l, t) != nil { return true }
                t += 1
            }
        }
        return false
    }

    /// `WARNING: .* at {{SRC}} {{FUNC}}`: some ` at ` followed by a source position, a space and a function.
    static func atSourceFunction(_ l: Line) -> Bool {
        var from = 9
        while let p = CrashScan.firstIndex(of: " at ", in: l, from: from) {
            if let e = sourceEnd(l, p + 4), e < l.count, l[e] == 0x20, CrashFrames.function(l, at: e + 1) != nil { return true }
            from = p + 1
        }
        return false
    }

    /// The last `at: FUNC` on a line.
    @Sendable static func lastAtFunction(_ l: Line) -> String? {
        var found: String?
        var from = 0
        while let p = CrashScan.firstIndex(of: "at:", in: l, from: from) {
            var i = p + 3
            if i < l.count, let e = CrashFrames.pcEnd(l, i + 1), l[i] == 0x20 { i = e }
            while i < l.count && l[i] == 0x20 { i += 1 }
            if i > p + 3, let f = CrashFrames.function(l, at: i) { found = f }
            from = p + 1
        }
        return found
    }

    /// After a line holding `marker`, the first later line's `at: ([<pc>] +)?FUNC`.
    static func functionAfter(_ ls: [Line], marker: String) -> String? {
        guard let m = ls.indices.dropFirst().first(where: { contains(ls[$0], marker) }) else { return nil }
        return ls[(m + 1)...].lazy.compactMap { CrashFrames.atFunction($0)?.first }.first
    }

    /// `INFO: rcu_(preempt|sched|bh|tasks) (self-)?detected( expedited)? stall`.
    @Sendable static func rcuStall(_ l: Line) -> Bool {
        guard has(l, "INFO: rcu_") else { return false }
        var t = Array(l.dropFirst(10))
        guard let flavour = ["preempt ", "sched ", "bh ", "tasks "].first(where: { has(t, $0) }) else { return false }
        t.removeFirst(flavour.utf8.count)
        if has(t, "self-") { t.removeFirst(5) }
        guard has(t, "detected") else { return false }
        t.removeFirst(8)
        if has(t, " expedited") { t.removeFirst(10) }
        return has(t, " stall")
    }

    /// The first three lines joined by newlines (for forms that may span lines).
    static func firstLines(_ ls: [Line]) -> Line {
        var out: Line = []
        for (i, l) in ls.prefix(3).enumerated() {
            if i > 0 { out.append(0x0A) }
            out += l
        }
        return out
    }

    /// `INFO: task {{TASK}} blocked (in I/O wait )?for more than N seconds` (TASK: up to 100 bytes).
    static func taskBlocked(_ l: Line) -> Bool {
        guard has(l, "INFO: task ") else { return false }
        var from = 11
        while let p = CrashScan.firstIndex(of: " blocked ", in: l, from: from), p <= 111 {
            var i = p + 9
            if CrashScan.has(l, at: i, "in I/O wait ") { i += 12 }
            if CrashScan.has(l, at: i, "for more than ") {
                i += 14
                let d = i
                while i < l.count && CrashScan.isDigit(l[i]) { i += 1 }
                if i > d && CrashScan.has(l, at: i, " seconds") { return true }
            }
            from = p + 1
        }
        return false
    }

    /// `INFO: task {{TASK}} can't die for more than .* seconds`.
    static func taskCantDie(_ l: Line) -> Bool {
        guard has(l, "INFO: task "), let p = CrashScan.firstIndex(of: " can't die for more than ", in: l, from: 11), p <= 111 else {
            return false
        }
        return CrashScan.firstIndex(of: " seconds", in: l, from: p + 25) != nil
    }
}
