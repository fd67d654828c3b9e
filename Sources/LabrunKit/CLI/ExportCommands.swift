import FoundationEssentials

/// `labrun export FILE` and `labrun import FILE DIR` (issue 15 §5): the lab's disk as one
/// standalone qcow2 (no backing file), and a new lab made from such a file.
///
/// Both write under a temporary name beside the result (`FILE.PID.part`), check it with
/// qemu-img, and rename it into place only at the end: a failure, Ctrl-C or SIGTERM leaves
/// no half-written file under the final name (and removes the temporary one).
extension LabrunCLI {
    static func export(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["compress", "force"], options: ["snapshot"], positionals: 1...1).parse(args, command: "export")
        let controller = try context.controller()
        try controller.requireRuntime()
        let target = try OutputFile(a.positionals[0], force: a.flag("force"), protected: controller.layerPaths)
        let snapshot = a.option("snapshot")
        if let snapshot, snapshot.isEmpty { throw .usage("export: --snapshot needs a name") }
        let compress = a.flag("compress")
        let interruption = try CommandInterruption()
        let img = try controller.qemuImg()
        let runtime = controller.lab.runtimePath
        let started = monotonicSeconds()
        var progress = ProgressLine("exporting")
        let route = try controller.route(for: "export the lab's disk")
        var how: String
        do throws(LabrunError) {
            switch route {
            case .offline:
                if let snapshot { try requireSnapshot(snapshot, in: try img.snapshots(runtime)) }
                try img.convert(runtime, to: target.part, snapshot: snapshot, compress: compress,
                                interruption: interruption) { progress.show($0) }
                progress.end()
                try requireClean(img, target.part)
                // The copy holds what the guest sees, byte for byte (a snapshot cannot be
                // opened for comparing: qemu-img compare takes no -l).
                if snapshot == nil, let diff = try img.compare(runtime, target.part) {
                    throw LabrunError("the copy differs from \(Lab.runtimeName): \(diff)")
                }
                how = snapshot == nil ? "VM stopped; checked and compared with \(Lab.runtimeName)" : "VM stopped; checked"
            case .live(let link):
                if let snapshot {
                    // A snapshot's clusters never change while it exists (the running QEMU
                    // copies a cluster before writing one a snapshot shares), and the golden and
                    // base layers are only read: qemu-img may read them beside the running VM
                    // (-U). Only deleting the snapshot meanwhile would spoil the copy, so its
                    // ID is checked before and after.
                    let before = try requireSnapshot(snapshot, in: link.send(.snapshot(.list)).outcome?.snapshots ?? [])
                    try img.convert(runtime, to: target.part, snapshot: snapshot, compress: compress, shareLocks: true,
                                    interruption: interruption) { progress.show($0) }
                    progress.end()
                    let after = try controller.requireSupervisor().send(.snapshot(.list)).outcome?.snapshots ?? []
                    guard after.contains(where: { $0.name == snapshot && $0.id == before.id }) else {
                        throw LabrunError("snapshot '\(snapshot)' was deleted or replaced while it was being exported; nothing was written")
                    }
                    how = "VM running; read from the snapshot beside it; checked"
                } else {
                    // LABRUN_EXPORT_SPEED (bytes/s) slows the job down, for tests of cancelling it.
                    let speed = environmentValue("LABRUN_EXPORT_SPEED").flatMap { Int($0) } ?? 0
                    guard let size = try img.info(runtime, backingChain: false, shareLocks: true).first?.virtualSize else {
                        throw LabrunError("qemu-img gives no size for \(runtime)")
                    }
                    try img.createEmpty(target.part, virtualSize: Int64(size))
                    try liveBackup(link, to: target.part, compress: compress, speed: speed, interruption: interruption) { progress.show($0) }
                    progress.end()
                    how = "VM running, copied by a QEMU backup job without pausing it; checked"
                }
                // QEMU lets go of the file as the job ends; wait for that before checking it.
                let deadline = monotonicSeconds() + 5
                while ImageLock.isLocked(target.part) && monotonicSeconds() < deadline { sleepSeconds(0.05) }
                try requireClean(img, target.part)
            }
            try target.commit()
        } catch {
            progress.end()
            target.discard()
            if interruption.check() { throw interruption.error("export") }
            throw error
        }
        let size = FileStatus.of(target.path).map { formatBytes(UInt64($0.size)) } ?? "?"
        let what = snapshot.map { "snapshot '\($0)' of the lab's disk" } ?? "the lab's disk"
        say("exported \(what) to \(target.path) (\(size)\(compress ? ", compressed" : ""), standalone qcow2) in \(Messages.formatSeconds(monotonicSeconds() - started)) (\(how))")
        return 0
    }

    static func importLab(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(flags: ["force"], positionals: 2...2).parse(args, command: "import")
        let file = absolutePath(a.positionals[0])
        let dir = absolutePath(a.positionals[1])
        let source = try context.controller().lab
        guard fileExists(source.kernelPath) else {
            throw LabrunError("the lab \(source.root) has no kernel to boot the imported disk with: run `make guest` there, or pass --lab LAB")
        }
        let img = try QemuImg()
        try requireStandalone(img, file)
        let golden = dir + "/" + Lab.goldenName
        let runtime = dir + "/" + Lab.runtimeName
        if !a.flag("force"), fileExists(golden) || fileExists(runtime) || fileExists(dir + "/lab.conf") {
            throw LabrunError("\(dir) already holds a lab; use --force to replace it")
        }
        if realPath(file) == realPath(golden) || realPath(file) == realPath(runtime) {
            throw LabrunError("\(file) is the target lab's own image; copy it elsewhere first")
        }
        let createdDir = !fileExists(dir)
        guard makeDirectory(dir), makeDirectory(dir + "/shared") else { throw LabrunError("cannot create \(dir)") }
        try ImageLock.requireUnlocked([runtime, golden], action: "replace the lab in \(dir)")
        let target = try OutputFile(golden, force: true, protected: [])
        let interruption = try CommandInterruption()
        var progress = ProgressLine("importing")
        let started = monotonicSeconds()
        do throws(LabrunError) {
            // A fresh qcow2, not a byte copy: compressed clusters are unpacked once here
            // instead of at every read, and stray internal snapshots stay behind.
            try img.convert(file, to: target.part, interruption: interruption) { progress.show($0) }
            progress.end()
            try requireClean(img, target.part)
            if let diff = try img.compare(file, target.part) { throw LabrunError("the copy differs from \(file): \(diff)") }
            // The golden layer is only ever read: keep it so.
            try? setPermissions(target.part, 0o444)
            try target.commit()
            removeFile(runtime)
            var conf = "# labrun lab imported from \(file), booting the kernel of \(source.root)\n"
            conf += "arch = \(source.config.arch.rawValue)\n"
            conf += "kernel = \(realPath(source.kernelPath) ?? source.kernelPath)\n"
            if let initrd = source.initrdPath { conf += "initrd = \(realPath(initrd) ?? initrd)\n" }
            conf += "mem = \(source.config.memoryMiB)\ncpus = \(source.config.cpus)\n"
            if let append = source.config.append { conf += "append = \(append)\n" }
            do { try conf.write(toFile: dir + "/lab.conf") } catch { throw error.asLabrunError }
            let lab = try Lab.open(dir)
            // The runtime layer: a fresh overlay on the imported image (reset comes back to it).
            _ = try LabController(lab: lab).ensureRuntimeLayer()
            try lab.recordGoldenIdentity()
        } catch {
            progress.end()
            target.discard()
            if createdDir {
                for name in ["lab.conf", Lab.runtimeName, Lab.goldenName] { removeFile(dir + "/" + name) }
                _ = removeDirectory(dir + "/shared")
                _ = removeDirectory(dir)
            }
            if interruption.check() { throw interruption.error("import") }
            throw error
        }
        say("imported \(file) into a new lab \(dir) in \(Messages.formatSeconds(monotonicSeconds() - started)): it is the lab's golden image (checked and compared), with a fresh runtime layer on it and the kernel of \(source.root); boot it with `labrun --lab \(dir) boot`")
        return 0
    }

    /// The snapshot named `name` in `list`, or a one-line refusal.
    @discardableResult
    private static func requireSnapshot(_ name: String, in list: [SnapshotInfo]) throws(LabrunError) -> SnapshotInfo {
        guard let s = list.first(where: { $0.name == name }) else {
            throw LabrunError("no snapshot named '\(name)' in \(Lab.runtimeName); `labrun snapshot list` shows them")
        }
        return s
    }

    /// `qemu-img check` must find nothing wrong with the image just written.
    private static func requireClean(_ img: QemuImg, _ path: String) throws(LabrunError) {
        let r = try img.check(path, repair: false)
        guard r.status == .clean else { throw LabrunError("the copy failed its check: \(r.explanation)") }
    }

    /// Refuses, in one line, a file that is not a standalone qcow2 image.
    private static func requireStandalone(_ img: QemuImg, _ file: String) throws(LabrunError) {
        guard fileExists(file) else { throw LabrunError("\(file) does not exist") }
        guard !isDirectory(file) else { throw LabrunError("\(file) is a directory, not an image") }
        let info: ImageInfo
        do throws(LabrunError) {
            guard let i = try img.info(file, backingChain: false).first else { throw LabrunError("qemu-img says nothing about \(file)") }
            info = i
        } catch { throw LabrunError("not imported: \(file) cannot be read as an image: \(error.message)") }
        guard info.format == "qcow2" else {
            throw LabrunError("not imported: \(file) is \(info.format), not qcow2; import takes a file made by `labrun export`")
        }
        if let backing = info.backingFilename {
            throw LabrunError("not imported: \(file) has a backing file (\(backing)), so it is not standalone; `labrun export` makes one that is")
        }
        let check = try img.check(file, repair: false)
        if case .leaks = check.status {} else if check.status != .clean {
            throw LabrunError("not imported: \(file) failed its check: \(check.explanation)")
        }
    }

    /// A live export through the supervisor: it runs the backup job into `part` and relays
    /// its progress. A signal closes the connection, which makes the supervisor cancel the
    /// job and remove `part` (removed here too, at once).
    private static func liveBackup(_ link: SupervisorConnection, to part: String, compress: Bool, speed: Int,
                                   interruption: CommandInterruption, progress: (Double) -> Void) throws(LabrunError) {
        let fd = link.fd
        defer { fd.close() }
        do {
            try fd.writeAll(ControlRequest(.export(path: part, compress: compress, speed: speed)).encodedLine())
            try fd.setNonBlocking(true)
        } catch { throw LabrunError("the supervisor closed the control connection: \(error.errno)") }
        var lines = LineBuffer(limit: 1 << 20)
        while true {
            if interruption.check() {
                fd.close()
                removeFile(part)
                throw interruption.error("export")
            }
            var set = PollSet()
            set.add(fd)
            set.add(interruption.readEnd)
            let ready = (try? set.wait(timeout: -1)) ?? [:]
            guard ready[fd] != nil else { continue }
            switch fd.read() {
            case .success(let bytes) where !bytes.isEmpty:
                for r in try ControlClient.responses(bytes, &lines) {
                    if !r.final {
                        if let t = r.transfer { progress(t.percent) } else if let m = r.message { printError(m) }
                        continue
                    }
                    if !r.ok { throw LabrunError(r.message ?? "the supervisor refused the export", exitCode: r.exitCode ?? 1) }
                    return
                }
            case .failure(.wouldBlock): continue
            default:
                throw LabrunError("the supervisor closed the connection before the export ended (did the VM stop?)")
            }
        }
    }
}

/// A file written under a temporary name in its own directory and renamed into place only
/// once complete.
struct OutputFile {
    /// The final name.
    let path: String
    /// Where it is written meanwhile: `FILE.PID.part` (this process's own name, so two
    /// commands never share one, and a supervisor cleaning up late never hits a newer one).
    let part: String
    let force: Bool

    /// Refuses an existing `path` unless `force`, a directory, one of `protected` (the lab's
    /// own layers) and a directory that cannot be written, each in one line.
    init(_ given: String, force: Bool, protected: [String]) throws(LabrunError) {
        let path = absolutePath(given)
        self.path = path
        self.force = force
        part = path + ".\(currentProcessID).part"
        let dir = parentDirectory(path)
        if isDirectory(path) { throw LabrunError("\(path) is a directory; give a file name") }
        if let real = realPath(path), protected.compactMap(realPath).contains(real) {
            throw LabrunError("\(path) is one of the lab's own images; export to another file")
        }
        if fileExists(path) && !force { throw LabrunError("\(path) already exists; use --force to replace it") }
        guard isDirectory(dir) else { throw LabrunError("cannot write \(path): directory \(dir) does not exist") }
        guard isReadWritable(dir) && isSearchable(dir) else { throw LabrunError("cannot write \(path): directory \(dir) is not writable") }
        removeFile(part)
    }

    /// Flushes the finished file and renames it into place.
    func commit() throws(LabrunError) {
        do {
            try FileStream.sync(part)
            try renameFile(part, path)
        } catch { throw LabrunError("cannot put the result in place at \(path): \(error)") }
    }

    /// Removes the unfinished file.
    func discard() { removeFile(part) }
}
