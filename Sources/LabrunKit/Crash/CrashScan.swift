import Glibc

/// The header line that starts a kernel report. The order is the precedence when one line holds
/// two of them (syzkaller's order of "oops" groups, plus labrun's hard-lockup and `Oops:` last).
enum CrashHeader: Int, CaseIterable, Sendable {
    case bug                     // "BUG:"
    case warning                 // "WARNING:"
    case info                    // "INFO:"
    case unableToHandle          // "Unable to handle kernel" (arm)
    case generalProtectionFault  // "general protection fault"
    case stackSegment            // "stack segment: "
    case kernelPanic             // "Kernel panic"
    case doubleFault             // "PANIC: double fault"
    case kernelBUG               // "kernel BUG"
    case capitalKernelBUG        // "Kernel BUG"
    case divideError             // "divide error:", "divide_error:"
    case invalidOpcode           // "invalid opcode:"
    case int3                    // "int3:"
    case ubsan                   // "UBSAN:"
    case internalError           // "Internal error:" (arm64)
    case unhandledFault          // "Unhandled fault:" (arm)
    case hardLockup              // "Watchdog detected hard LOCKUP"
    case oops                    // "Oops: … [#N]"

    var bit: UInt32 { 1 << UInt32(rawValue) }

    /// Most headers must start a word (`BUG:` is no header in `DEBUG:`); these long ones are
    /// found glued to the end of an unfinished line too, as syzkaller finds them.
    var mayBeGlued: Bool {
        self == .generalProtectionFault || self == .kernelPanic || self == .kernelBUG || self == .capitalKernelBUG
    }

    static let gluedBits: UInt32 = allCases.filter(\.mayBeGlued).reduce(0) { $0 | $1.bit }

    /// Such a line inside an open report (same context) is a part of it, not a new report: the
    /// `Oops:`/`invalid opcode:` line after `BUG: …`/`kernel BUG at`, and a panic the report caused.
    var continuesReport: Bool {
        switch self {
        case .kernelPanic, .invalidOpcode, .doubleFault, .internalError, .oops: return true
        default: return false
        }
    }

    /// The literal(s) the header is recognised by.
    var literals: [StaticString] {
        switch self {
        case .bug: return ["BUG:"]
        case .warning: return ["WARNING:"]
        case .info: return ["INFO:"]
        case .unableToHandle: return ["Unable to handle kernel"]
        case .generalProtectionFault: return ["general protection fault"]
        case .stackSegment: return ["stack segment: "]
        case .kernelPanic: return ["Kernel panic"]
        case .doubleFault: return ["PANIC: double fault"]
        case .kernelBUG: return ["kernel BUG"]
        case .capitalKernelBUG: return ["Kernel BUG"]
        case .divideError: return ["divide error:", "divide_error:"]
        case .invalidOpcode: return ["invalid opcode:"]
        case .int3: return ["int3:"]
        case .ubsan: return ["UBSAN:"]
        case .internalError: return ["Internal error:"]
        case .unhandledFault: return ["Unhandled fault:"]
        case .hardLockup: return ["Watchdog detected hard LOCKUP"]
        case .oops: return ["Oops:"]
        }
    }
}

/// Byte-level helpers for console lines: the per-line hot scan, cleaning, and the kernel's line
/// prefix (`[  12.345678]`, optionally `[T123]`/`[C0]`). No allocation on the hot path.
enum CrashScan {
    /// Bytes 64…127 that can start a header: B W I U K P O g s k d i.
    static let headerStartMask: UInt64 = {
        var m: UInt64 = 0
        for c in "BWIUKPOgskdi".utf8 { m |= 1 << UInt64(c - 64) }
        return m
    }()

    @inline(__always) static func isWordByte(_ b: UInt8) -> Bool {
        (b &- 0x30) < 10 || ((b | 0x20) &- 0x61) < 26 || b == 0x5F
    }

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { (b &- 0x30) < 10 }

    @inline(__always) static func has(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ lit: StaticString) -> Bool {
        let len = lit.utf8CodeUnitCount
        return n - i >= len && memcmp(p + i, lit.utf8Start, len) == 0
    }

    /// What one pass over a line found.
    struct Scan {
        /// `CrashHeader.bit`s of the headers the line may hold (at a word start).
        var headers: UInt32 = 0
        /// The line holds control bytes (ESC, CR, …) and must be cleaned before use.
        var dirty = false
    }

    /// The hot path: one pass over the line, a table test per byte and a short compare where a
    /// header's first letter starts a word.
    static func scan(_ p: UnsafePointer<UInt8>, _ n: Int) -> Scan {
        var s = Scan()
        let mask = headerStartMask
        var i = 0
        while i < n {
            let b = p[i]
            if b >= 64 {
                if b < 128 && (mask >> UInt64(b &- 64)) & 1 != 0 {
                    if i == 0 || !isWordByte(p[i &- 1]) {
                        s.headers |= headerAt(p, i, n, b)
                    } else if (b | 0x20) == UInt8(ascii: "k") || b == UInt8(ascii: "g") {
                        // "…accessgeneral protection fault: …": only the long headers may be glued.
                        if i &+ 1 < n && p[i &+ 1] == UInt8(ascii: "e") { s.headers |= headerAt(p, i, n, b) & CrashHeader.gluedBits }
                    }
                }
            } else if b < 0x20 && b != 0x09 {
                s.dirty = true
            }
            i &+= 1
        }
        return s
    }

    @inline(__always) static func headerAt(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ b: UInt8) -> UInt32 {
        switch b {
        case UInt8(ascii: "B"):
            return has(p, i, n, "BUG:") ? CrashHeader.bug.bit : 0
        case UInt8(ascii: "W"):
            if has(p, i, n, "WARNING:") { return CrashHeader.warning.bit }
            return has(p, i, n, "Watchdog detected hard LOCKUP") ? CrashHeader.hardLockup.bit : 0
        case UInt8(ascii: "I"):
            if has(p, i, n, "INFO:") { return CrashHeader.info.bit }
            return has(p, i, n, "Internal error:") ? CrashHeader.internalError.bit : 0
        case UInt8(ascii: "U"):
            if has(p, i, n, "UBSAN:") { return CrashHeader.ubsan.bit }
            if has(p, i, n, "Unable to handle kernel") { return CrashHeader.unableToHandle.bit }
            return has(p, i, n, "Unhandled fault:") ? CrashHeader.unhandledFault.bit : 0
        case UInt8(ascii: "K"):
            if has(p, i, n, "Kernel panic") { return CrashHeader.kernelPanic.bit }
            return has(p, i, n, "Kernel BUG") ? CrashHeader.capitalKernelBUG.bit : 0
        case UInt8(ascii: "k"):
            return has(p, i, n, "kernel BUG") ? CrashHeader.kernelBUG.bit : 0
        case UInt8(ascii: "P"):
            return has(p, i, n, "PANIC: double fault") ? CrashHeader.doubleFault.bit : 0
        case UInt8(ascii: "O"):
            return has(p, i, n, "Oops:") ? CrashHeader.oops.bit : 0
        case UInt8(ascii: "g"):
            return has(p, i, n, "general protection fault") ? CrashHeader.generalProtectionFault.bit : 0
        case UInt8(ascii: "s"):
            return has(p, i, n, "stack segment: ") ? CrashHeader.stackSegment.bit : 0
        case UInt8(ascii: "d"):
            return has(p, i, n, "divide error:") || has(p, i, n, "divide_error:") ? CrashHeader.divideError.bit : 0
        case UInt8(ascii: "i"):
            if has(p, i, n, "invalid opcode:") { return CrashHeader.invalidOpcode.bit }
            return has(p, i, n, "int3:") ? CrashHeader.int3.bit : 0
        default:
            return 0
        }
    }

    /// Appends the line without terminal noise to `out`: what came before the last carriage
    /// return is dropped (the terminal overwrote it), ANSI escape sequences (CSI, OSC, DCS, and
    /// two-byte ones) and the other control bytes but TAB are removed. UTF-8 is left alone.
    static func clean(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt8]) {
        var start = 0
        var k = n
        while k > 0 {
            k -= 1
            if p[k] == 0x0D { start = k + 1; break }
        }
        var i = start
        while i < n {
            let b = p[i]
            if b == 0x1B {
                i += 1
                guard i < n else { break }
                let c = p[i]
                if c == UInt8(ascii: "[") {
                    // CSI: parameters and intermediates (0x20…0x3F), then one final byte (0x40…0x7E).
                    i += 1
                    while i < n && p[i] >= 0x20 && p[i] <= 0x3F { i += 1 }
                    if i < n && p[i] >= 0x40 && p[i] <= 0x7E { i += 1 }
                } else if c == UInt8(ascii: "]") || c == UInt8(ascii: "P") || c == UInt8(ascii: "X")
                            || c == UInt8(ascii: "^") || c == UInt8(ascii: "_") {
                    // OSC/DCS/SOS/PM/APC: up to BEL or ESC \ (or the end of the line).
                    i += 1
                    while i < n {
                        if p[i] == 0x07 { i += 1; break }
                        if p[i] == 0x1B { i += 1; if i < n && p[i] == UInt8(ascii: "\\") { i += 1 }; break }
                        i += 1
                    }
                } else {
                    // ESC, intermediates (0x20…0x2F), one final byte.
                    while i < n && p[i] >= 0x20 && p[i] <= 0x2F { i += 1 }
                    if i < n { i += 1 }
                }
                continue
            }
            if b >= 0x20 || b == 0x09 { out.append(b) }
            i += 1
        }
    }

    /// Whether the line holds anything but blanks.
    static func isVisible(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var i = 0
        while i < n {
            if p[i] > 0x20 { return true }
            i += 1
        }
        return false
    }

    /// A line's kernel prefix.
    struct Prefix: Equatable {
        /// Where the message starts: after `[  12.345678] ` (and `[T123] `), or 0.
        var messageStart = 0
        /// The line has a kernel timestamp (at its start, or after junk such as a shell prompt
        /// that the kernel's line interrupted).
        var timestamped = false
        /// The printk caller (`T123` or `C0`, CONFIG_PRINTK_CALLER), empty when there is none.
        var caller: [UInt8] = []
        /// The timestamp's digits, e.g. `12.345678`.
        var stamp: [UInt8] = []
    }

    /// Finds the kernel prefix: the first `[ seconds.micros]` (then an optional `[T123]`/`[C0]`)
    /// followed by a space, within the line's first 256 bytes.
    static func prefix(_ l: [UInt8]) -> Prefix {
        let limit = min(l.count, 256)
        var j = 0
        while j < limit {
            if l[j] == UInt8(ascii: "["), let p = prefix(l, at: j) { return p }
            j += 1
        }
        return Prefix()
    }

    private static func prefix(_ l: [UInt8], at j: Int) -> Prefix? {
        let n = l.count
        var i = j + 1
        while i < n && l[i] == 0x20 { i += 1 }
        let stampStart = i
        let intStart = i
        while i < n && isDigit(l[i]) { i += 1 }
        guard i > intStart, i < n, l[i] == UInt8(ascii: ".") else { return nil }
        i += 1
        let fracStart = i
        while i < n && isDigit(l[i]) { i += 1 }
        guard i > fracStart, i < n, l[i] == UInt8(ascii: "]") else { return nil }
        var p = Prefix()
        p.stamp = Array(l[stampStart..<i])
        i += 1
        if i < n && l[i] == UInt8(ascii: "[") {
            var k = i + 1
            while k < n && l[k] == 0x20 { k += 1 }
            let callerStart = k
            if k < n && (l[k] == UInt8(ascii: "T") || l[k] == UInt8(ascii: "C")) {
                k += 1
                let digits = k
                while k < n && isDigit(l[k]) { k += 1 }
                if k > digits && k < n && l[k] == UInt8(ascii: "]") {
                    p.caller = Array(l[callerStart..<k])
                    i = k + 1
                }
            }
        }
        guard i < n, l[i] == 0x20 else {
            // "[   12.3]" alone (an empty message) still counts as a kernel line.
            guard i == n else { return nil }
            p.timestamped = true
            p.messageStart = n
            return p
        }
        p.timestamped = true
        p.messageStart = i + 1
        return p
    }

    /// The first position of `lit` in `l` at or after `from` at a word start (or anywhere, with `glued`).
    static func find(_ lit: StaticString, in l: [UInt8], from: Int = 0, glued: Bool = false) -> Int? {
        let len = lit.utf8CodeUnitCount
        guard len > 0, l.count - from >= len else { return nil }
        return l.withUnsafeBufferPointer { buf -> Int? in
            let p = buf.baseAddress!
            var i = from
            while i + len <= l.count {
                if p[i] == lit.utf8Start[0] && (glued || i == 0 || !isWordByte(p[i - 1])) && memcmp(p + i, lit.utf8Start, len) == 0 {
                    return i
                }
                i += 1
            }
            return nil
        }
    }

    /// Picks the header a line starts a report with, in precedence order, or nil when the
    /// line's candidates are all excluded: known harmless messages (as syzkaller's
    /// suppressions), a user-space `general protection fault … error:N in …` line, a header in
    /// none of its specific forms on a line without a kernel timestamp (`BUG:`, `WARNING:`,
    /// `INFO:`, `Oops:` are common words in programs' output too), or an end marker.
    /// A header found on a line.
    struct Found: Equatable {
        var header: CrashHeader
        /// Where it starts in the line.
        var offset: Int
        /// It continues an open report of its context instead of starting one: the header does
        /// (`Oops:`, a panic, …), or it comes after one that does on the same line (arm64's
        /// `Internal error: Oops - BUG: … [#1]`).
        var continues: Bool
    }

    static func header(in l: [UInt8], candidates: UInt32, prefix: Prefix) -> Found? {
        if contains(l, "---[ end ") { return nil }
        for h in CrashHeader.allCases where candidates & h.bit != 0 {
            var pos: Int?
            for lit in h.literals {
                if let p = find(lit, in: l, glued: h.mayBeGlued), p < (pos ?? Int.max) { pos = p }
            }
            guard let at = pos else { continue }
            let rest = Array(l[at...])
            if isSuppressed(h, l, rest) { continue }
            switch h {
            case .oops:
                if !contains(rest, " [#") { continue }
            case .generalProtectionFault:
                if rest.firstIndex(of: UInt8(ascii: ":")) == nil { continue }
            case .divideError, .invalidOpcode, .int3, .stackSegment, .internalError:
                if !prefix.timestamped && !contains(rest, " [#") { continue }
            default:
                break
            }
            if !prefix.timestamped && !CrashTitle.hasSpecificForm(h, rest) { continue }
            var continues = h.continuesReport
            if !continues {
                for c: StaticString in ["Internal error:", "Oops:", "invalid opcode:"] {
                    if let p = find(c, in: l), p < at { continues = true }
                }
            }
            return Found(header: h, offset: at, continues: continues)
        }
        return nil
    }

    /// Known lines with a header word that are no kernel bug (syzkaller's suppressions, less
    /// its own tools' messages).
    static func isSuppressed(_ h: CrashHeader, _ line: [UInt8], _ rest: [UInt8]) -> Bool {
        switch h {
        case .bug:
            return contains(line, "ODEBUG:") || contains(line, "Boot_DEBUG:") || contains(line, "xlog_status:")
        case .warning:
            let phrases: [StaticString] = [
                "WARNING: /etc/ssh/moduli does not exist", "WARNING: workqueue cpumask: online intersect",
                "WARNING: The mand mount option", "WARNING: the mand mount option", "WARNING: Unsupported flag value",
                "WARNING: Unprivileged eBPF is enabled", "WARNING: fbcon: Driver", "WARNING: kernel not compiled with CPU_SRSO",
                "EXT4-fs", "EXT4-FS", "): WARNING",
            ]
            if phrases.contains(where: { contains(line, $0) }) { return true }
            let lower = line.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
            if contains(lower, " uses deprecated v2 capabilities") || contains(lower, " uses wireless extensions") { return true }
            return contains(rest, "WARNING: See https") && contains(rest, " for mitigation options.")
        case .info:
            let phrases: [StaticString] = [
                "INFO: lockdep is turned off", "INFO: Stall ended before state dump start", "INFO: NMI handler",
                "INFO: recovery required on readonly filesystem", "rmt_storage:INFO:",
            ]
            if phrases.contains(where: { contains(line, $0) }) { return true }
            // "(handler|interrupt).*took too long"
            for w: StaticString in ["handler", "interrupt"] {
                if let p = firstIndex(of: w, in: line), firstIndex(of: "took too long", in: line, from: p) != nil { return true }
            }
            return false
        case .generalProtectionFault:
            // User space: "traps: a.out[123] general protection fault ip:… sp:… error:0 in a.out[…]".
            guard let e = firstIndex(of: " error:", in: rest) else { return false }
            var i = e + 7
            let d = i
            while i < rest.count && isDigit(rest[i]) { i += 1 }
            return i > d && has(rest, at: i, " in ")
        default:
            return false
        }
    }

    /// Whether the message marks a report's end: `---[ end trace …` or `---[ end Kernel panic …`.
    static func isEndMarker(_ l: [UInt8], from: Int) -> Bool {
        guard let p = firstIndex(of: "---[ end ", in: l, from: from) else { return false }
        return has(l, at: p + 9, "trace") || has(l, at: p + 9, "Kernel panic")
    }

    /// Whether the message is a sanitizer's closing rule: 20 or more `=` and nothing else.
    static func isRule(_ l: [UInt8], from: Int) -> Bool {
        var n = 0
        for i in from..<l.count {
            if l[i] == UInt8(ascii: "=") { n += 1 } else if l[i] != 0x20 { return false }
        }
        return n >= 20
    }

    /// A panic that a report in progress caused (and belongs to it): after an oops
    /// (`Fatal exception`), with panic_on_warn, panic_on_oops, hung_task_panic, softlockup_panic,
    /// hardlockup_panic, panic_on_rcu_stall, or when the oops killed init.
    static func isConsequentialPanic(_ rest: [UInt8]) -> Bool {
        let causes: [StaticString] = [
            "Fatal exception", "panic_on_warn", "panic_on_oops", "hung_task", "softlockup", "LOCKUP",
            "RCU Stall", "Attempted to kill init",
        ]
        return causes.contains(where: { contains(rest, $0) })
    }

    // MARK: plain byte search

    static func has(_ l: [UInt8], at i: Int, _ lit: StaticString) -> Bool {
        let len = lit.utf8CodeUnitCount
        guard i >= 0, l.count - i >= len else { return false }
        let p = lit.utf8Start
        for k in 0..<len where l[i + k] != p[k] { return false }
        return true
    }

    static func firstIndex(of lit: StaticString, in l: [UInt8], from: Int = 0) -> Int? {
        let len = lit.utf8CodeUnitCount
        guard from >= 0, len > 0, l.count - from >= len else { return nil }
        let first = lit.utf8Start[0]
        var i = from
        while i + len <= l.count {
            if l[i] == first && has(l, at: i, lit) { return i }
            i += 1
        }
        return nil
    }

    static func contains(_ l: [UInt8], _ lit: StaticString) -> Bool { firstIndex(of: lit, in: l) != nil }
}
