/// Which accelerator QEMU uses.
public enum Accelerator: String, Sendable, CaseIterable {
    case auto, kvm, tcg
}

/// The guest architecture of a lab.
public enum Architecture: String, Sendable, CaseIterable {
    case x86_64, aarch64
}

/// `lab.conf`: optional `key = value` lines; `#` starts a comment. Unknown keys and bad
/// values are errors that name the line, so a typo never silently changes the VM.
public struct LabConfig: Equatable, Sendable {
    public var memoryMiB: Int = 256
    public var cpus: Int = 1
    public var accel: Accelerator = .auto
    public var arch: Architecture = .x86_64
    public var kernel: String?
    /// The modules of lab.conf's kernel (an INSTALL_MOD_PATH directory; see KernelModules).
    public var modules: String?
    public var initrd: String?
    public var append: String?
    public var qemu: String?
    public var golden: String?
    /// The golden image's identity when this lab's runtime layer was made on it (`labrun init`).
    public var goldenID: String?
    public var gdbPort: Int = 1234
    public var sshPort: Int?
    public var shared: String?
    /// Where boot checkpoints live (default: `.labrun-checkpoints` beside the golden image);
    /// "off" keeps none.
    public var checkpoints: String?
    /// The console log: on (default) or off; each file's size limit and how many files.
    public var consoleLog = true
    /// What happens when the guest kernel panics.
    public var onPanic: PanicAction = .pause
    /// Crash reports are looked for on the console (off: for measuring what it costs).
    public var crashDetection = true
    public var logSize: Int64 = 16 << 20
    public var logFiles = 4

    public init() {}

    public static let keys = ["mem", "cpus", "accel", "arch", "kernel", "modules", "initrd", "append", "qemu", "golden", "golden_id", "gdb_port", "ssh_port", "shared", "checkpoints", "log", "log_size", "log_files", "on_panic", "crash_detection"]

    public static func parse(_ text: String, file: String = "lab.conf") throws(LabrunError) -> LabConfig {
        var c = LabConfig()
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmed
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw LabrunError("\(file):\(n + 1): expected `key = value`, got \"\(line.prefix(60))\"")
            }
            let key = line[..<eq].trimmed
            let value = line[line.index(after: eq)...].trimmed
            func bad(_ what: String) -> LabrunError { LabrunError("\(file):\(n + 1): \(key) = \(value.prefix(60)): \(what)") }
            guard !value.isEmpty else { throw bad("empty value") }
            switch key {
            case "mem": guard let m = parseMemory(value) else { throw bad("expected MiB, like 256, 512M or 1G") }; c.memoryMiB = m
            case "cpus": guard let n = Int(value), (1...64).contains(n) else { throw bad("expected 1 to 64") }; c.cpus = n
            case "accel": guard let a = Accelerator(rawValue: value) else { throw bad("expected auto, kvm or tcg") }; c.accel = a
            case "arch": guard let a = Architecture(rawValue: value) else { throw bad("expected x86_64 or aarch64") }; c.arch = a
            case "kernel": c.kernel = value
            case "modules": c.modules = value
            case "initrd": c.initrd = value
            case "append": c.append = value
            case "qemu": c.qemu = value
            case "golden": c.golden = value
            case "golden_id": c.goldenID = value
            case "shared": c.shared = value
            case "checkpoints": c.checkpoints = value
            case "crash_detection": guard value == "on" || value == "off" else { throw bad("expected on or off") }; c.crashDetection = value == "on"
            case "on_panic": guard let a = PanicAction(rawValue: value) else { throw bad("expected pause, snapshot, reboot or poweroff") }; c.onPanic = a
            case "log": guard value == "on" || value == "off" else { throw bad("expected on or off") }; c.consoleLog = value == "on"
            case "log_size": guard let m = parseMemory(value), m >= 1 else { throw bad("expected a size, like 16M") }; c.logSize = Int64(m) << 20
            case "log_files": guard let n = Int(value), (1...100).contains(n) else { throw bad("expected 1 to 100") }; c.logFiles = n
            case "gdb_port": guard let p = Int(value), (1...65535).contains(p) else { throw bad("expected a port 1-65535") }; c.gdbPort = p
            case "ssh_port": guard let p = Int(value), (1...65535).contains(p) else { throw bad("expected a port 1-65535") }; c.sshPort = p
            default: throw LabrunError("\(file):\(n + 1): unknown key \"\(key.prefix(40))\" (known: \(keys.joined(separator: ", ")))")
            }
        }
        return c
    }

    /// "256", "256M", "256MiB", "1G", "1GiB" → MiB.
    public static func parseMemory(_ s: String) -> Int? {
        var digits = s.uppercased()
        var factor = 1
        for (suffix, f) in [("GIB", 1024), ("GB", 1024), ("G", 1024), ("MIB", 1), ("MB", 1), ("M", 1)] where digits.hasSuffix(suffix) {
            digits = String(digits.dropLast(suffix.count))
            factor = f
            break
        }
        guard let n = Int(digits), n > 0, n * factor >= 64, n * factor <= 1 << 20 else { return nil }
        return n * factor
    }
}
