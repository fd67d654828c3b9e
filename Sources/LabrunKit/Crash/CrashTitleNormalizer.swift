/// Makes titles stable across runs the way syzkaller does: executor numbers go, addresses become
/// `ADDR`, IPv4 addresses `IP`, `file.c:123` becomes `file.c:LINE`, `func+0x1/0x2` becomes `func`,
/// `CPU#1` becomes `CPU`, other numbers `NUM`; then at most 120 bytes, printable ASCII, single
/// spaces. Each rule is applied until it changes nothing, in syzkaller's order, written as byte
/// scans (no regular expressions).
enum CrashTitleNormalizer {
    static func normalize(_ title: String) -> String {
        var s = Array(title.utf8)
        let rules: [([UInt8]) -> [UInt8]] = [
            { executor($0, "syz-executor", dot: true) }, { executor($0, "syzkaller", dot: false) },
            address, ipAddress, sourceLine, functionOffset, cpuNumber, number, longNumber,
        ]
        for rule in rules {
            var rounds = 0
            while rounds < 32 {
                let t = rule(s)
                if t == s { break }
                s = t
                rounds += 1
            }
        }
        return sanitize(s)
    }

    /// Printable ASCII only, tabs as spaces, no double spaces, trimmed, from the first 120 bytes.
    static func sanitize(_ s: [UInt8]) -> String {
        var out: [UInt8] = []
        var prev = UInt8(ascii: " ")
        for var c in s.prefix(120) {
            if c == 0x09 { c = 0x20 } else if c < 0x20 || c >= 0x7F { continue }
            if c == 0x20 && prev == 0x20 { continue }
            out.append(c)
            prev = c
        }
        while out.last == 0x20 { out.removeLast() }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isDigit(_ b: UInt8) -> Bool { CrashScan.isDigit(b) }
    private static func isAlnum(_ b: UInt8) -> Bool { isDigit(b) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A) }
    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }
    private static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x61 && b <= 0x66) }
    private static func isLowerAlnum(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x61 && b <= 0x7A) }

    private static func run(_ s: [UInt8], from i: Int, _ pred: (UInt8) -> Bool) -> Int {
        var j = i
        while j < s.count && pred(s[j]) { j += 1 }
        return j - i
    }

    private static func has(_ s: [UInt8], _ i: Int, _ lit: StaticString) -> Bool { CrashScan.has(s, at: i, lit) }

    /// `NAME\.?[0-9]+((/|:)[0-9]+)?` → NAME (the dot only for syz-executor).
    static func executor(_ s: [UInt8], _ name: StaticString, dot: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        let len = name.utf8CodeUnitCount
        while i < s.count {
            if has(s, i, name) {
                var j = i + len
                if dot && j < s.count && s[j] == UInt8(ascii: ".") && j + 1 < s.count && isDigit(s[j + 1]) { j += 1 }
                let d = run(s, from: j, isDigit)
                if d > 0 {
                    j += d
                    if j < s.count && (s[j] == UInt8(ascii: "/") || s[j] == UInt8(ascii: ":")) {
                        let e = run(s, from: j + 1, isDigit)
                        if e > 0 { j += 1 + e }
                    }
                    out.append(contentsOf: s[i..<(i + len)])
                    i = j
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}` → `${1}ADDR`.
    static func address(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if !isAlnum(s[i]) {
                let j = i + 1
                var end: Int?
                if has(s, j, "0x") {
                    let h = run(s, from: j + 2, isHex)
                    if h >= 6 { end = j + 2 + h }
                }
                if end == nil {
                    let h = run(s, from: j, isHex)
                    if h >= 6 { end = j + h }
                }
                if let e = end {
                    out.append(s[i])
                    out.append(contentsOf: "ADDR".utf8)
                    i = e
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `[0-9]{1,3}(\.[0-9]{1,3}){3}` → `IP`.
    static func ipAddress(_ s: [UInt8]) -> [UInt8] {
        func group(_ pos: Int, _ k: Int) -> Int? {
            for len in stride(from: 3, through: 1, by: -1) {
                guard pos + len <= s.count, s[pos..<(pos + len)].allSatisfy(isDigit) else { continue }
                if k == 3 { return pos + len }
                if pos + len < s.count && s[pos + len] == UInt8(ascii: "."), let e = group(pos + len + 1, k + 1) { return e }
            }
            return nil
        }
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if isDigit(s[i]), let e = group(i, 0) {
                out.append(contentsOf: "IP".utf8)
                i = e
                continue
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `(\.\w+)(:[0-9]+)+` → `${1}:LINE`.
    static func sourceLine(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if s[i] == UInt8(ascii: ".") {
                let w = run(s, from: i + 1, CrashScan.isWordByte)
                if w > 0 {
                    var k = i + 1 + w
                    var groups = 0
                    while k < s.count && s[k] == UInt8(ascii: ":") {
                        let d = run(s, from: k + 1, isDigit)
                        guard d > 0 else { break }
                        k += 1 + d
                        groups += 1
                    }
                    if groups > 0 {
                        out.append(contentsOf: s[i..<(i + 1 + w)])
                        out.append(contentsOf: ":LINE".utf8)
                        i = k
                        continue
                    }
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+` → `${1}`.
    static func functionOffset(_ s: [UInt8]) -> [UInt8] {
        func isNameByte(_ b: UInt8) -> Bool { isAlnum(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") }
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if isLetter(s[i]) {
                let r = run(s, from: i + 1, isNameByte)
                let k = i + 1 + r
                if r > 0 && has(s, k, "+0x") {
                    let a = run(s, from: k + 3, isLowerAlnum)
                    if a > 0 && has(s, k + 3 + a, "/0x") {
                        let b = run(s, from: k + 6 + a, isLowerAlnum)
                        if b > 0 {
                            out.append(contentsOf: s[i..<k])
                            i = k + 6 + a + b
                            continue
                        }
                    }
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `CPU#[0-9]+` → `CPU`.
    static func cpuNumber(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if has(s, i, "CPU#") {
                let d = run(s, from: i + 4, isDigit)
                if d > 0 {
                    out.append(contentsOf: "CPU".utf8)
                    i += 4 + d
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `(\W)(\d+)(\W|$)` → `${1}NUM${3}`.
    static func number(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if !CrashScan.isWordByte(s[i]) {
                let d = run(s, from: i + 1, isDigit)
                let e = i + 1 + d
                if d > 0 && (e == s.count || !CrashScan.isWordByte(s[e])) {
                    out.append(s[i])
                    out.append(contentsOf: "NUM".utf8)
                    if e < s.count { out.append(s[e]) }
                    i = Swift.min(e + 1, s.count)
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// Seven or more digits → `NUM`.
    static func longNumber(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            let d = run(s, from: i, isDigit)
            if d >= 7 {
                out.append(contentsOf: "NUM".utf8)
                i += d
            } else if d > 0 {
                out.append(contentsOf: s[i..<(i + d)])
                i += d
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}
