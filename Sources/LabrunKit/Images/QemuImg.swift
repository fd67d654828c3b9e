import FoundationEssentials

/// The `qemu-img` tool: every call passes an argv array (never a shell), asks for
/// `--output=json` where qemu-img has it, and turns a failure into a `LabrunError` carrying
/// qemu-img's own error line.
///
/// The snapshot methods are the raw operations; the name-safety policy lives in `OfflineSnapshots`.
public struct QemuImg: Sendable {
    /// The path of the qemu-img executable.
    public let executable: String

    /// Finds qemu-img on PATH (or checks `executable` when it contains a slash).
    public init(executable: String = "qemu-img") throws(LabrunError) {
        guard let found = findExecutable(executable) else {
            throw LabrunError("\(executable) not found; install it with `apt-get install qemu-utils`")
        }
        self.executable = found
    }

    /// `qemu-img info --output=json [--backing-chain] [-U]`: one layer, or the whole chain top first.
    /// `shareLocks` (-U) reads an image another process holds; its numbers may then be stale.
    public func info(_ path: String, backingChain: Bool, shareLocks: Bool = false) throws(LabrunError) -> [ImageInfo] {
        var args = ["info", "--output=json"]
        if backingChain { args.append("--backing-chain") }
        if shareLocks { args.append("-U") }
        let out = try run(args + [imageArgument(path)])
        return try ImageInfo.decode(out.standardOutput)
    }

    /// The validated backing chain of `path`, top first.
    public func chain(_ path: String, shareLocks: Bool = false) throws(LabrunError) -> ImageChain {
        let chain = try ImageChain(info(path, backingChain: true, shareLocks: shareLocks))
        try chain.validate()
        return chain
    }

    /// The internal snapshots of `path`, oldest first.
    public func snapshots(_ path: String, shareLocks: Bool = false) throws(LabrunError) -> [SnapshotInfo] {
        try info(path, backingChain: false, shareLocks: shareLocks).first?.snapshots ?? []
    }

    /// `qemu-img snapshot -c NAME`: a disk-only snapshot. Creates a duplicate if the name exists.
    public func createSnapshot(_ path: String, name: String) throws(LabrunError) {
        try run(["snapshot", "-c", name, imageArgument(path)])
    }

    /// `qemu-img snapshot -a NAME`: reverts the disk. qemu-img looks the argument up as an ID first.
    public func applySnapshot(_ path: String, name: String) throws(LabrunError) {
        try run(["snapshot", "-a", name, imageArgument(path)])
    }

    /// `qemu-img snapshot -d NAME`: deletes the first snapshot with that ID or name.
    public func deleteSnapshot(_ path: String, name: String) throws(LabrunError) {
        try run(["snapshot", "-d", name, imageArgument(path)])
    }

    /// `qemu-img create -f qcow2 -F FORMAT -b BACKING PATH`: an empty overlay, replacing any file
    /// at `path`. `backing` is stored exactly as given; a relative one is resolved against the
    /// overlay's directory (not the current directory), by qemu-img now and by QEMU later.
    public func createOverlay(path: String, backing: String, backingFormat: String) throws(LabrunError) {
        try run(["create", "-q", "-f", "qcow2", "-F", backingFormat, "-b", backing, imageArgument(path)])
    }

    /// `qemu-img rebase -u -F FORMAT -b BACKING PATH`: rewrites only the backing file name in
    /// the header (the data is already right for it).
    public func setBacking(path: String, backing: String, backingFormat: String) throws(LabrunError) {
        try run(["rebase", "-u", "-F", backingFormat, "-b", backing, imageArgument(path)])
    }

    /// `qemu-img check --output=json [-r leaks]`. Only a failure to start qemu-img throws; every
    /// qemu-img outcome, including "locked" and "unsupported", is in the result.
    public func check(_ path: String, repair: Bool) throws(LabrunError) -> CheckResult {
        let args = ["check", "--output=json"] + (repair ? ["-r", "leaks"] : []) + [imageArgument(path)]
        let out = try run(args, acceptingAnyStatus: true)
        let code: Int32 = if case .exited(let c) = out.status { c } else { 1 }
        return CheckResult(exitCode: code, json: out.standardOutput, errorLine: Self.errorLine(out))
    }

    @discardableResult
    private func run(_ arguments: [String], acceptingAnyStatus: Bool = false) throws(LabrunError) -> Spawner.Output {
        let out: Spawner.Output
        do { out = try Spawner.run(executable, arguments) } catch { throw error.asLabrunError }
        if !acceptingAnyStatus && !out.status.isSuccess { throw LabrunError(Self.errorLine(out)) }
        return out
    }

    /// qemu-img's own error line ("qemu-img: Could not open …"), or the exit status when it said nothing.
    static func errorLine(_ out: Spawner.Output) -> String {
        let lines = out.stderr.split(separator: "\n").map(\.trimmed).filter { !$0.isEmpty }
        return lines.first { $0.hasPrefix("qemu-img: ") } ?? lines.last ?? "qemu-img failed (\(out.status))"
    }

    /// A relative path that starts with '-' or contains ':' would be read as an option or a
    /// protocol prefix ("nbd:…", "json:…"); "./" keeps it a plain file name.
    private func imageArgument(_ path: String) -> String {
        !path.hasPrefix("/") && (path.hasPrefix("-") || path.contains(":")) ? "./" + path : path
    }
}
