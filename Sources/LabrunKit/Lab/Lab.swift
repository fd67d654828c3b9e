/// A lab directory: its three image layers, the kernel it boots, its shared folder, its
/// settings and its run directory. Every command goes through one of these.
public struct Lab: Sendable {
    public static let baseName = "debian-rootfs-base.img"
    public static let goldenName = "debian-rootfs.qcow2"
    public static let runtimeName = "debian-runtime.qcow2"
    public static let undoName = "debian-runtime.qcow2.undo"

    public let root: String
    public let config: LabConfig

    public init(root: String, config: LabConfig) {
        self.root = root
        self.config = config
    }

    /// Opens the lab at `root` (reading lab.conf if present).
    public static func open(_ root: String) throws(LabrunError) -> Lab {
        let absolute = absolutePath(root)
        guard FileStatus.of(absolute)?.isDirectory == true else {
            throw LabrunError("lab directory \(absolute) does not exist; create one with `labrun init DIR`")
        }
        let canonical = realPath(absolute) ?? absolute
        var config = LabConfig()
        let confPath = canonical + "/lab.conf"
        if fileExists(confPath) {
            guard let bytes = readSmallFile(confPath, limit: 256 * 1024) else {
                throw LabrunError("cannot read \(confPath)")
            }
            guard let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
                throw LabrunError("\(confPath) is not a text file; fix or delete it")
            }
            config = try LabConfig.parse(text, file: confPath)
        }
        return Lab(root: canonical, config: config)
    }

    /// The lab to use: --lab, else LABRUN_LAB, else the nearest directory upwards from the
    /// current one that holds a lab (lab.conf or a lab image), else the current directory.
    public static func locate(explicit: String?) throws(LabrunError) -> Lab {
        if let explicit { return try open(explicit) }
        if let env = environmentValue("LABRUN_LAB"), !env.isEmpty { return try open(env) }
        let cwd = currentDirectory()
        var dir = cwd
        while true {
            for marker in ["lab.conf", goldenName, runtimeName] where fileExists(dir + "/" + marker) {
                return try open(dir)
            }
            if dir == "/" || dir.isEmpty { break }
            dir = parentDirectory(dir)
        }
        return try open(cwd)
    }

    public var basePath: String { root + "/" + Lab.baseName }
    public var goldenPath: String { resolve(config.golden) ?? root + "/" + Lab.goldenName }
    public var runtimePath: String { root + "/" + Lab.runtimeName }
    public var undoPath: String { root + "/" + Lab.undoName }
    /// The backing file name a runtime layer records: relative when the golden image sits in
    /// the lab (so the lab can move), else its path.
    public var runtimeBacking: String { parentDirectory(goldenPath) == root ? Lab.goldenName : goldenPath }
    public var sharedPath: String { resolve(config.shared) ?? root + "/shared" }
    public var guestBuildDirectory: String { root + "/guest-build" }
    /// The console log (`labrun log`), rotated as console.log.1 …
    public var consoleLogPath: String { root + "/console.log" }

    /// The kernel: lab.conf's, else the built default guest's vmlinux (fast under TCG), else vmlinuz.
    public var kernelPath: String {
        if let k = resolve(config.kernel) { return k }
        let vmlinux = guestBuildDirectory + "/vmlinux"
        return isReadable(vmlinux) ? vmlinux : guestBuildDirectory + "/vmlinuz"
    }
    public var initrdPath: String? {
        if let i = resolve(config.initrd) { return i }
        let def = guestBuildDirectory + "/initrd.img"
        return isReadable(def) || config.kernel == nil ? def : nil
    }

    /// A path from lab.conf: relative ones are relative to the lab.
    public func resolve(_ path: String?) -> String? {
        guard let path, !path.isEmpty else { return nil }
        return path.hasPrefix("/") ? path : root + "/" + path
    }

    public var runDirectory: RunDirectory { RunDirectory(lab: root) }

    /// Which file the golden image is (device:inode): every guest rebuild publishes a new
    /// file, so a changed identity means the runtime layer was made on another golden image.
    public var goldenIdentity: String? {
        guard let st = FileStatus.of(goldenPath) else { return nil }
        return "\(st.device):\(st.inode)"
    }

    /// Records the golden image's current identity in lab.conf (labs made by `labrun init`).
    public func recordGoldenIdentity() throws(LabrunError) {
        guard let id = goldenIdentity else { return }
        let path = root + "/lab.conf"
        let old = readSmallFile(path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var lines = old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.trimmed.hasPrefix("golden_id") }
        while lines.last == "" { lines.removeLast() }
        lines.append("golden_id = \(id)")
        do { try (lines.joined(separator: "\n") + "\n").write(toFile: path) } catch { throw error.asLabrunError }
    }
}

func absolutePath(_ p: String) -> String {
    p.hasPrefix("/") ? p : currentDirectory() + "/" + p
}


func parentDirectory(_ p: String) -> String {
    guard let slash = p.lastIndex(of: "/") else { return "/" }
    let parent = String(p[..<slash])
    return parent.isEmpty ? "/" : parent
}

